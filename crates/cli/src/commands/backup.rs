//! `kopi-docka backup` and `kopi-docka admin restart-stopped`

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kopi_docka_core::backup::run::{
    self, BackupPlan, Outcome, RunError, RunSettings, StagingError,
};
use kopi_docka_core::backup::{BackupSettings, RunReport, UnitStatus};
use kopi_docka_core::bootstrap;
use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::docker::Engine;
use kopi_docka_core::monitor;
use kopi_docka_core::repo::{RepoSettings, Scope};
use kopi_docka_core::stop;

use crate::cli::{BackupArgs, GlobalArgs, ScopeArg};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::human_bytes;

/// Backs up the selected units. A run that ends before it has a report (engine down,
/// repository unreachable, wrong password) still pings `/fail` and sends its notification:
/// a run that did not happen must be heard of as loudly as one that failed.
pub async fn run(
    global: &GlobalArgs,
    args: &BackupArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let result = run_units(global, args, printer).await;
    if let Err(error) = &result
        && !args.dry_run
        // Nothing was attempted: a usage error, or another run holds the lock (it reports).
        && !matches!(ExitCode::from_error(error), ExitCode::Usage | ExitCode::Locked)
        && let Ok(loaded) = super::load_config(global)
    {
        for problem in monitor::run_aborted(&loaded.config, &format!("{error:#}")).await {
            printer.notice(&format!("warning: {problem}"));
        }
    }
    result
}

async fn run_units(
    global: &GlobalArgs,
    args: &BackupArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mut loaded = super::load_config(global)?;
    if loaded.path.is_none() && !args.dry_run {
        loaded = first_run(loaded, printer).await?;
    }
    let repo_settings = RepoSettings::from_config(&loaded)?;
    let settings = run_settings(&loaded, args);

    let engine = Engine::connect(loaded.docker_host()?).await?;
    crate::signals::install_once();
    let interrupt = crate::signals::subscribe();

    if args.dry_run {
        let plan = run::plan(&loaded, &engine, &settings, args.sizes)
            .await
            .map_err(run_error)?;
        printer.out(&render_plan(&plan));
        return Ok(ExitCode::Ok);
    }

    let output = run::run(
        &loaded,
        &engine,
        repo_settings,
        &settings,
        &interrupt,
        Arc::new(CliProgress::new()),
    )
    .await;
    for warning in &output.warnings {
        printer.notice(&format!("warning: {warning}"));
    }
    let ran = output.result.map_err(run_error)?;
    if args.json {
        printer.json(&ran.report)?;
    } else {
        printer.out(&render_report(&ran.report));
    }
    // Metrics, pings and notifications: their problems are shown, never a reason to fail.
    for problem in &ran.after_run {
        printer.notice(&format!("warning: {problem}"));
    }
    Ok(match ran.report.outcome(ran.interrupted) {
        Outcome::Success => ExitCode::Ok,
        Outcome::Partial => ExitCode::Partial,
        Outcome::Failed => ExitCode::Failed,
        Outcome::Interrupted => ExitCode::Interrupted,
    })
}

/// The core error as the command line has always shown it; the inner error keeps its type so
/// [`ExitCode::from_error`] classifies it.
fn run_error(error: RunError) -> anyhow::Error {
    match error {
        RunError::Repo(e) => e.into(),
        RunError::Docker(e) => e.into(),
        RunError::Lock(e) => e.into(),
        RunError::UnknownUnits(e) => e.into(),
        RunError::Staging(StagingError::Low { free, dir }) => anyhow::anyhow!(
            "only {} free for staging in {}; free some space (or set KOPI_DOCKA_CACHE_DIR) \
             before a backup stops anything",
            human_bytes(free),
            dir.display()
        ),
        RunError::Staging(e) => e.into(),
    }
}

/// `[backup]` and the hooks from the config, with the command line's overrides.
fn run_settings(loaded: &LoadedConfig, args: &BackupArgs) -> RunSettings {
    let mut backup =
        BackupSettings::from_config(&loaded.config, loaded.env.cache_dir().join("staging"));
    if let Some(scope) = args.scope {
        backup.scope = match scope {
            ScopeArg::Minimal => Scope::Minimal,
            ScopeArg::Standard => Scope::Standard,
            ScopeArg::Full => Scope::Full,
        };
    }
    backup.warm_pass &= !args.no_warm_pass;
    RunSettings {
        backup,
        units: args.units.clone(),
        wait: args.wait,
    }
}

/// No config anywhere: create the default one and the repository, and say so loudly.
async fn first_run(loaded: LoadedConfig, printer: &Printer) -> anyhow::Result<LoadedConfig> {
    let created = bootstrap::first_run(loaded.env, Arc::new(CliProgress::new()))
        .await
        .map_err(super::bootstrap_error)?;
    printer.notice(&format!(
        "FIRST RUN: created {config}\n\
         \x20 repository: {repo}\n\
         \x20 password:   {pw} (random, 256 bits)\n\
         Without that password nobody can read these backups. Keep a copy somewhere else now\n\
         (a password manager), or make a disaster-recovery bundle:\n\
         \x20 kopi-docka disaster-recovery export",
        config = created.config.display(),
        repo = created.repository.display(),
        pw = created.password_file.display(),
    ));
    Ok(created.loaded)
}

fn render_plan(plan: &BackupPlan) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "dry run: nothing is stopped or written (scope {}, warm pass {})",
        plan.scope,
        if plan.warm_pass { "on" } else { "off" }
    );
    let size = |bytes: Option<u64>| {
        bytes
            .map(|b| format!(" ({})", human_bytes(b)))
            .unwrap_or_default()
    };
    for unit in &plan.units {
        let _ = writeln!(out, "\n{} {}", unit.kind, unit.name);
        let _ = writeln!(
            out,
            "  stop order:  {}",
            if unit.stop_order.is_empty() {
                "(nothing running)".to_owned()
            } else {
                unit.stop_order.join(" -> ")
            }
        );
        for v in &unit.volumes {
            let _ = writeln!(out, "  volume:      {}{}", v.name, size(v.bytes));
        }
        for b in &unit.binds {
            let _ = writeln!(out, "  bind:        {}{}", b.name, size(b.bytes));
        }
        match &unit.estimate {
            Some(estimate) => {
                let local = estimate
                    .last_run
                    .to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M");
                let down = estimate
                    .downtime_seconds
                    .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
                let _ = writeln!(
                    out,
                    "  estimate:    ~{:.0}s, {down} (last run {local})",
                    estimate.seconds
                );
            }
            None => {
                let _ = writeln!(out, "  estimate:    none yet (no earlier run of this unit)");
            }
        }
        for entry in &unit.gaps {
            let _ = writeln!(out, "  {}", crate::render::gap_line(entry));
        }
    }
    out
}

fn render_report(report: &RunReport) -> String {
    let mut out = String::new();
    for name in &report.restarted_from_journal {
        let _ = writeln!(
            out,
            "started {name}, left stopped by an earlier run that was killed"
        );
    }
    for u in &report.units {
        let mark = match u.status {
            UnitStatus::Success => "ok     ",
            UnitStatus::Partial => "PARTIAL",
            UnitStatus::Failed => "FAILED ",
        };
        let added = u.bytes_added;
        let downtime = u
            .downtime_seconds
            .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
        let _ = writeln!(
            out,
            "{mark} {} {} [{}]: {} snapshots, {} added, {downtime}",
            u.kind,
            u.name,
            u.backup_id,
            u.snapshots.len(),
            human_bytes(added)
        );
        for e in &u.errors {
            let _ = writeln!(out, "    error: {e}");
        }
        for w in &u.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
    }
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

/// Starts the containers the journal lists, and nothing else.
pub async fn restart_stopped(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let engine = Engine::connect(loaded.docker_host()?).await?;
    let health = Duration::from_secs(u64::from(loaded.config.backup.health_timeout_seconds));
    let report = stop::recover_now(&engine, &loaded.env.state_dir(), health)
        .await
        .context("a backup is running; it starts the containers it stopped itself")?;
    for container in &report.started {
        printer.line(&format!("started {}", container.name));
    }
    if report.started.is_empty() && report.errors.is_empty() {
        printer.line("no container was left stopped");
    }
    if !report.errors.is_empty() {
        return Err(anyhow::anyhow!(report.errors.join("; ")))
            .context("some containers could not be started");
    }
    Ok(ExitCode::Ok)
}
