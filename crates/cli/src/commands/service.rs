//! `kopi-docka admin service write-units | daemon | status`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kopi_docka_core::daemon::{self, ServiceStatus};
use kopi_docka_core::lock::LockState;
use kopi_docka_core::systemd::notify::ServiceManager;
use kopi_docka_core::systemd::units;
use kopi_docka_web::Dashboard;
use serde::Serialize;

use crate::cli::{DaemonArgs, GlobalArgs, JsonArgs, ServiceCommand, WriteUnitsArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::signals;

/// Runs an `admin service` subcommand.
pub async fn run(
    global: &GlobalArgs,
    command: ServiceCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::WriteUnits(args) => write_units(global, &args, printer),
        ServiceCommand::Daemon(args) => daemon(global, &args).await,
        ServiceCommand::Status(args) => status(global, &args, printer),
    }
}

fn write_units(
    global: &GlobalArgs,
    args: &WriteUnitsArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let on_calendar = crate::settings::timer_calendar(&loaded, args.schedule.as_deref())?;
    let binary = std::env::current_exe().context("finding the kopi-docka binary")?;
    let config = loaded
        .path
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("resolving the config path")?;
    let default_dir = if args.user {
        units::user_unit_dir().context("no home directory ($HOME): name one with --output-dir")?
    } else {
        PathBuf::from(units::DEFAULT_UNIT_DIR)
    };
    let dir = args.output_dir.clone().unwrap_or(default_dir.clone());
    let written = if args.user {
        units::write_user_for(config, binary, on_calendar, &dir, args.force)?
    } else {
        units::write_for(&loaded, config, binary, on_calendar, &dir, args.force)?
    };
    printer.report(&UnitsWritten {
        files: written
            .into_iter()
            .map(|(path, outcome)| UnitFile { path, outcome })
            .collect(),
        installed: dir == default_dir,
        user: args.user,
    })?;
    Ok(ExitCode::Ok)
}

/// The unit files `write-units` wrote, kept or replaced.
#[derive(Serialize)]
struct UnitsWritten {
    /// Each unit file and what happened to it.
    files: Vec<UnitFile>,
    /// Written into systemd's own directory (the human text then says how to enable them).
    installed: bool,
    /// User-level units (`--user`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    user: bool,
}

/// One unit file.
#[derive(Serialize)]
struct UnitFile {
    path: PathBuf,
    outcome: units::WriteOutcome,
}

impl crate::render::Render for UnitsWritten {
    fn human(&self) -> String {
        let mut out = String::new();
        for file in &self.files {
            let verb = match file.outcome {
                units::WriteOutcome::Created => "created  ",
                units::WriteOutcome::Unchanged => "unchanged",
                units::WriteOutcome::Replaced => "replaced ",
            };
            // Writing into a String cannot fail.
            let _ = writeln!(out, "{verb} {}", file.path.display());
        }
        if self.installed && self.user {
            out.push_str(
                "next: systemctl --user daemon-reload && systemctl --user enable --now \
                 kopi-docka.timer\n\
                 and once, so that the timer runs without a login: loginctl enable-linger $USER\n",
            );
        } else if self.installed {
            out.push_str(
                "next: systemctl daemon-reload && systemctl enable --now kopi-docka.timer\n\
                 (or, instead of the timer: systemctl enable --now kopi-docka.service)\n",
            );
        }
        out
    }
}

async fn daemon(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    // Handlers first: a SIGTERM during start-up must not kill us half-way.
    let events = signals::daemon_events()?;
    let manager = ServiceManager::from_env()?;
    let settings = crate::settings::daemon(global, args)?;
    // The dashboard is bound before the daemon says READY, so a taken port or a public
    // address fails the start instead of going unnoticed. It keeps the settings of the start
    // (a reload does not move it).
    let dashboard = match crate::settings::web(global, &settings.loaded)? {
        Some(web) => Some(Dashboard::bind(web).await?),
        None => None,
    };
    let handle = dashboard.as_ref().map(Dashboard::handle);
    if let Some(dashboard) = dashboard {
        tokio::spawn(async move {
            if let Err(error) = dashboard.serve().await {
                tracing::error!("the dashboard stopped: {error}");
            }
        });
    }
    daemon::run(
        &manager,
        settings,
        || crate::settings::daemon(global, args),
        events,
    )
    .await?;
    // A backup started from the dashboard gets the same safe stop as the daemon's own.
    if let Some(handle) = handle {
        handle.stop().await;
    }
    Ok(ExitCode::Ok)
}

fn status(global: &GlobalArgs, _: &JsonArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    printer.report(&daemon::status(&loaded, Path::new(units::DEFAULT_UNIT_DIR)))?;
    Ok(ExitCode::Ok)
}

impl crate::render::Render for ServiceStatus {
    fn human(&self) -> String {
        render_status(self)
    }
}

fn render_status(status: &ServiceStatus) -> String {
    // Writing into a String cannot fail.
    let mut out = String::new();
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
    if !status.systemd {
        out.push_str("systemd: not running on this host (unit states unknown)\n");
    }
    for unit in &status.units {
        let next = unit
            .next_run
            .map(|t| {
                format!(
                    ", next run {}",
                    crate::render::zoned(t).strftime("%Y-%m-%d %H:%M %Z")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<26} {}, {}, {}{next}",
            unit.name,
            if unit.installed {
                "installed"
            } else {
                "not installed"
            },
            or(&unit.enabled, "enabled: unknown"),
            or(&unit.active, "state unknown"),
        );
    }
    match &status.last_run {
        Some(run) => {
            let _ = writeln!(
                out,
                "last run: {} ({}): {}",
                crate::render::zoned(run.started_at).strftime("%Y-%m-%d %H:%M %Z"),
                run.run_id,
                run.result
            );
        }
        None => out.push_str("last run: none recorded on this host\n"),
    }
    let _ = writeln!(
        out,
        "run lock: {} (a backup is {}running)\ndaemon:   {}",
        status.lock,
        if status.lock == LockState::Held {
            ""
        } else {
            "not "
        },
        if status.daemon_lock == LockState::Held {
            "running"
        } else {
            "not running"
        }
    );
    out
}

#[cfg(test)]
mod status_tests;
