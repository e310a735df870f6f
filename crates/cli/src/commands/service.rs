//! `kopi-docka admin service write-units | daemon | status`

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::daemon::{self, BackupCommand, DaemonSettings, ServiceStatus};
use kopi_docka_core::lock::LockState;
use kopi_docka_core::schedule::Schedule;
use kopi_docka_core::systemd::notify::ServiceManager;
use kopi_docka_core::systemd::{self, units};

use super::UsageError;
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
    let loaded = super::load_config(global)?;
    let on_calendar = timer_calendar(&loaded, args.schedule.as_deref())?;
    let binary = std::env::current_exe().context("finding the kopi-docka binary")?;
    let config = loaded
        .path
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("resolving the config path")?;
    let writable = units::writable_dirs(&loaded, config.as_deref());
    let options = units::UnitOptions {
        binary,
        config,
        on_calendar,
        writable,
    };
    let rendered = units::render(&options);
    let written = units::write(&args.output_dir, &rendered, args.force)?;
    for (path, outcome) in &written {
        let verb = match outcome {
            units::WriteOutcome::Created => "created  ",
            units::WriteOutcome::Unchanged => "unchanged",
            units::WriteOutcome::Replaced => "replaced ",
        };
        printer.line(&format!("{verb} {}", path.display()));
    }
    if args.output_dir == Path::new(units::DEFAULT_UNIT_DIR) {
        printer.line(
            "next: systemctl daemon-reload && systemctl enable --now kopi-docka.timer\n\
             (or, instead of the timer: systemctl enable --now kopi-docka.service)",
        );
    }
    Ok(ExitCode::Ok)
}

/// The timer's `OnCalendar=`: `--schedule`, else `[daemon] schedule` when it is a calendar
/// expression, else the default. systemd understands more than the daemon's subset, so an
/// expression `systemd-analyze calendar` accepts is fine for the timer too.
fn timer_calendar(loaded: &LoadedConfig, flag: Option<&str>) -> anyhow::Result<String> {
    let Some(text) = flag else {
        return Ok(loaded.config.daemon.schedule.on_calendar().map_or_else(
            // `[daemon] schedule` is an interval: the timer keeps the built-in default.
            || kopi_docka_core::config::defaults::schedule().to_string(),
            str::to_owned,
        ));
    };
    match text.parse::<Schedule>() {
        Ok(schedule) if schedule.on_calendar().is_some() => Ok(text.to_owned()),
        Ok(_) => Err(UsageError(format!(
            "the timer needs a calendar expression (such as `daily` or `*-*-* 02:00:00`); \
             `{text}` is an interval, which only the daemon understands"
        ))
        .into()),
        Err(_) if systemd::calendar_accepted(text) => Ok(text.to_owned()),
        Err(error) => Err(UsageError(error.to_string()).into()),
    }
}

async fn daemon(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    // Handlers first: a SIGTERM during start-up must not kill us half-way.
    let events = signals::daemon_events()?;
    let manager = ServiceManager::from_env()?;
    let settings = daemon_settings(global, args)?;
    daemon::run(&manager, settings, || daemon_settings(global, args), events).await?;
    Ok(ExitCode::Ok)
}

/// What the daemon runs with; resolved again on SIGHUP.
fn daemon_settings(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<DaemonSettings> {
    let loaded = super::load_config(global)?;
    let schedule = match &args.schedule {
        Some(text) => text
            .parse::<Schedule>()
            .map_err(|e| UsageError(e.to_string()))?,
        None => loaded.config.daemon.schedule.clone(),
    };
    let units = if args.units.is_empty() {
        loaded.config.daemon.units.clone()
    } else {
        args.units.clone()
    };
    let backup = backup_command(global, &loaded, &units)?;
    Ok(DaemonSettings {
        loaded,
        schedule,
        units,
        backup,
    })
}

/// The daemon's backup: `kopi-docka [--config PATH] [-v...] backup --wait [--unit NAME...]`.
fn backup_command(
    global: &GlobalArgs,
    loaded: &LoadedConfig,
    units: &[String],
) -> anyhow::Result<BackupCommand> {
    let program = std::env::current_exe().context("finding the kopi-docka binary")?;
    let mut args: Vec<OsString> = Vec::new();
    if let Some(config) = &loaded.path {
        args.extend(["--config".into(), config.into()]);
    }
    args.extend(std::iter::repeat_n(
        "-v".into(),
        usize::from(global.verbose),
    ));
    args.extend(["backup".into(), "--wait".into()]);
    for unit in units {
        args.extend(["--unit".into(), unit.into()]);
    }
    Ok(BackupCommand { program, args })
}

fn status(global: &GlobalArgs, args: &JsonArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let report = daemon::status(&loaded, Path::new(units::DEFAULT_UNIT_DIR));
    if args.json {
        printer.json(&report)?;
    } else {
        printer.out(&render_status(&report));
    }
    Ok(ExitCode::Ok)
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
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%Y-%m-%d %H:%M %Z")
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
                run.started_at
                    .to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M %Z"),
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
