//! `kopi-docka backup` and `kopi-docka admin restart-stopped`

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kopi_docka_core::backup::{self, BackupSettings, RunReport, UnitStatus};
use kopi_docka_core::config::{self, LoadedConfig};
use kopi_docka_core::docker::Engine;
use kopi_docka_core::lock::journal::Journal;
use kopi_docka_core::lock::{Lock, LockError, LockMode, RUN_LOCK};
use kopi_docka_core::monitor::{self, Ping};
use kopi_docka_core::repo::{Password, Repo, RepoError, RepoSettings, Scope, write_password_file};
use kopi_docka_core::unit::{self, ContainerState, MountRules, Unit};

use super::snapshots::human_bytes;
use crate::cli::{BackupArgs, GlobalArgs, ScopeArg};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;

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
    let started_at = jiff::Timestamp::now();
    let mut loaded = super::load_config(global)?;
    if loaded.path.is_none() && !args.dry_run {
        loaded = first_run(loaded, printer).await?;
    }
    let repo_settings = RepoSettings::from_config(&loaded)?;
    let settings = backup_settings(&loaded, args);

    let engine = Engine::connect(loaded.docker_host()?).await?;
    crate::signals::install_once();
    let interrupt = crate::signals::subscribe();
    // Held for the whole run: the journal and the containers are ours alone.
    let _run_lock = if args.dry_run {
        None
    } else {
        Some(run_lock(&loaded.env.state_dir(), args.wait, &interrupt).await?)
    };
    let journal = Journal::in_dir(&loaded.env.state_dir());
    // A run killed with SIGKILL or a power cut left containers stopped: they come first.
    let (restarted, journal_errors) = if args.dry_run {
        (Vec::new(), Vec::new())
    } else {
        backup::restart_journaled(&engine, &journal, settings.health_timeout).await
    };
    for name in &restarted {
        tracing::warn!(container = %name, "started a container a previous run left stopped");
    }

    let rules = MountRules::new(&loaded.config.discovery, &loaded.repository_location());
    let all = unit::discover(&engine, &rules).await?;
    let units = select(&all, &args.units)?;

    if args.dry_run {
        printer.out(&render_plan(
            &units,
            &settings,
            &loaded.env.state_dir(),
            args.sizes,
        ));
        return Ok(ExitCode::Ok);
    }

    if let Err(error) = monitor::ping(&loaded.config.monitoring, Ping::Start, "").await {
        printer.notice(&format!("warning: {error}"));
    }
    // Preflight before anything stops: room to stage recipes, the repository reachable, the
    // password right, and no other kopi-docka writing to it.
    check_staging_space(&settings)?;
    let repo = Repo::open(
        repo_settings,
        LockMode::Exclusive,
        Arc::new(CliProgress::new()),
    )
    .await?;

    let mut reports = Vec::new();
    for unit in units {
        if *interrupt.borrow() {
            break;
        }
        tracing::info!(unit = %unit.name, kind = %unit.kind, "backing up");
        reports
            .push(backup::backup_unit(&engine, &repo, &journal, unit, &settings, &interrupt).await);
    }
    let docker_config = if settings.scope == Scope::Full && !*interrupt.borrow() {
        let id = backup::new_backup_id();
        match backup::backup_docker_config(&repo, &settings.staging_dir, &id).await {
            Ok(record) => record,
            Err(error) => {
                for r in &mut reports {
                    r.warnings.push(error.clone());
                }
                None
            }
        }
    } else {
        None
    };

    let mut report = RunReport {
        run_id: backup::new_backup_id(),
        started_at,
        finished_at: jiff::Timestamp::now(),
        host: repo.settings().hostname.clone(),
        restarted_from_journal: restarted,
        docker_config,
        units: reports,
        errors: journal_errors,
    };
    let problems = backup::save_run(
        &repo,
        &loaded.env.state_dir(),
        &settings.staging_dir,
        &report,
    )
    .await;
    for problem in problems {
        tracing::warn!("{problem}");
        report.errors.push(problem);
    }
    if report.units.iter().any(|u| u.status == UnitStatus::Success) {
        super::dr::refresh_after_backup(&loaded, &repo, printer).await;
    }
    publish(&loaded, &report, args.json, printer).await?;
    Ok(exit_code(&report, *interrupt.borrow()))
}

/// Prints the report, then metrics, pings and notifications: their problems are shown, never
/// a reason for the run to fail.
async fn publish(
    loaded: &LoadedConfig,
    report: &RunReport,
    json: bool,
    printer: &Printer,
) -> anyhow::Result<()> {
    if json {
        printer.json(report)?;
    } else {
        printer.out(&render_report(report));
    }
    for problem in monitor::after_run(&loaded.config, &loaded.env.state_dir(), report).await {
        printer.notice(&format!("warning: {problem}"));
    }
    Ok(())
}

fn exit_code(report: &RunReport, interrupted: bool) -> ExitCode {
    if interrupted || report.units.iter().any(|u| u.interrupted) {
        return ExitCode::Interrupted;
    }
    let ok = report
        .units
        .iter()
        .filter(|u| u.status == UnitStatus::Success)
        .count();
    if ok == report.units.len() && report.errors.is_empty() {
        ExitCode::Ok
    } else if ok == 0 && report.units.iter().all(|u| u.status == UnitStatus::Failed) {
        ExitCode::Failed
    } else {
        ExitCode::Partial
    }
}

/// Fails when the staging filesystem is nearly full.
fn check_staging_space(settings: &BackupSettings) -> anyhow::Result<()> {
    let free = backup::free_bytes(&settings.staging_dir)
        .with_context(|| format!("checking free space for {}", settings.staging_dir.display()))?;
    if free < backup::MIN_STAGING_FREE_BYTES {
        bail!(
            "only {} free for staging in {}; free some space (or set KOPI_DOCKA_CACHE_DIR) \
             before a backup stops anything",
            human_bytes(free),
            settings.staging_dir.display()
        );
    }
    Ok(())
}

/// `[backup]` and the hooks from the config, with the command line's overrides.
fn backup_settings(loaded: &LoadedConfig, args: &BackupArgs) -> BackupSettings {
    let mut settings =
        BackupSettings::from_config(&loaded.config, loaded.env.cache_dir().join("staging"));
    if let Some(scope) = args.scope {
        settings.scope = match scope {
            ScopeArg::Minimal => Scope::Minimal,
            ScopeArg::Standard => Scope::Standard,
            ScopeArg::Full => Scope::Full,
        };
    }
    settings.warm_pass &= !args.no_warm_pass;
    settings
}

/// No config anywhere: create the default one (local repository, random 256-bit password in a
/// 0600 file beside it), initialise the repository, and say so loudly.
async fn first_run(loaded: LoadedConfig, printer: &Printer) -> anyhow::Result<LoadedConfig> {
    let config_path = loaded.env.default_config_path();
    let dir = config_path.parent().unwrap_or(std::path::Path::new("/"));
    let password_path = dir.join("repository.password");
    let repository = loaded.env.default_repository();
    kopi_docka_core::durable::create_dir_all(dir, 0o700)
        .with_context(|| format!("creating {}", dir.display()))?;
    if !password_path.exists() {
        let password = Password::generate().context("generating a password")?;
        write_password_file(&password_path, &password)
            .with_context(|| format!("writing {}", password_path.display()))?;
    }
    let text = format!(
        "# Created by the first `kopi-docka backup`. Every key: docs/configuration.md\n\
         [repository]\nlocation = \"{}\"\npassword-file = \"repository.password\"\n",
        repository.display()
    );
    kopi_docka_core::durable::write_file(&config_path, text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let loaded = config::load(Some(&config_path), loaded.env)?;
    let settings = RepoSettings::from_config(&loaded)?;
    match Repo::init(settings, Arc::new(CliProgress::new())).await {
        Ok(_) | Err(RepoError::AlreadyExists { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    printer.notice(&format!(
        "FIRST RUN: created {config}\n\
         \x20 repository: {repo}\n\
         \x20 password:   {pw} (random, 256 bits)\n\
         Without that password nobody can read these backups. Keep a copy somewhere else now\n\
         (a password manager), or make a disaster-recovery bundle:\n\
         \x20 kopi-docka disaster-recovery export",
        config = config_path.display(),
        repo = repository.display(),
        pw = password_path.display(),
    ));
    Ok(loaded)
}

/// Takes the run lock, waiting for it with `wait` (until interrupted).
pub(crate) async fn run_lock(
    state_dir: &std::path::Path,
    wait: bool,
    interrupt: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Lock> {
    let dir = state_dir.join("locks");
    loop {
        match Lock::try_acquire(&dir, RUN_LOCK, LockMode::Exclusive) {
            Err(LockError::Busy { .. }) if wait && !*interrupt.borrow() => {
                tracing::info!("another kopi-docka run is going on; waiting for it");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The units named on the command line (all when none). An unknown name is an error that lists
/// the known ones: never a silent skip.
fn select<'a>(all: &'a [Unit], names: &[String]) -> anyhow::Result<Vec<&'a Unit>> {
    if names.is_empty() {
        return Ok(all.iter().collect());
    }
    let unknown: Vec<&String> = names
        .iter()
        .filter(|n| !all.iter().any(|u| u.name.as_str() == n.as_str()))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<String> = all
            .iter()
            .map(|u| format!("{} ({})", u.name, u.kind))
            .collect();
        bail!(UsageError(format!(
            "unknown unit{} {}; known units: {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    Ok(all
        .iter()
        .filter(|u| names.iter().any(|n| n == u.name.as_str()))
        .collect())
}

/// A mistake on the command line (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn render_plan(
    units: &[&Unit],
    settings: &BackupSettings,
    state_dir: &std::path::Path,
    sizes: bool,
) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "dry run: nothing is stopped or written (scope {}, warm pass {})",
        settings.scope,
        if settings.warm_pass { "on" } else { "off" }
    );
    for unit in units {
        let _ = writeln!(out, "\n{} {}", unit.kind, unit.name);
        let stop: Vec<&str> = unit
            .containers
            .iter()
            .rev()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.name.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  stop order:  {}",
            if stop.is_empty() {
                "(nothing running)".to_owned()
            } else {
                stop.join(" -> ")
            }
        );
        let size = |path: &std::path::Path| {
            if sizes {
                format!(" ({})", human_bytes(backup::tree_size(path)))
            } else {
                String::new()
            }
        };
        for v in unit.volumes.iter().filter(|v| v.verdict.is_backed_up()) {
            let bytes = v.mountpoint.as_deref().map(size).unwrap_or_default();
            let _ = writeln!(out, "  volume:      {}{bytes}", v.name);
        }
        for b in unit.binds.iter().filter(|b| b.verdict.is_backed_up()) {
            let _ = writeln!(
                out,
                "  bind:        {}{}",
                b.source.display(),
                size(&b.source)
            );
        }
        match backup::last_unit_report(state_dir, unit) {
            Some((when, took, down)) => {
                let local = when
                    .to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M");
                let down =
                    down.map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
                let _ = writeln!(out, "  estimate:    ~{took:.0}s, {down} (last run {local})");
            }
            None => {
                let _ = writeln!(out, "  estimate:    none yet (no earlier run of this unit)");
            }
        }
        for line in super::units::coverage_gaps(unit) {
            let _ = writeln!(out, "  {line}");
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
        let added: u64 = u.snapshots.iter().map(|s| s.bytes_added).sum();
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
    let _run_lock = Lock::try_acquire(
        &loaded.env.state_dir().join("locks"),
        RUN_LOCK,
        LockMode::Exclusive,
    )
    .context("a backup is running; it starts the containers it stopped itself")?;
    let journal = Journal::in_dir(&loaded.env.state_dir());
    let health = Duration::from_secs(u64::from(loaded.config.backup.health_timeout_seconds));
    let (started, errors) = backup::restart_journaled(&engine, &journal, health).await;
    for name in &started {
        printer.line(&format!("started {name}"));
    }
    if started.is_empty() && errors.is_empty() {
        printer.line("no container was left stopped");
    }
    if !errors.is_empty() {
        return Err(anyhow::anyhow!(errors.join("; ")))
            .context("some containers could not be started");
    }
    Ok(ExitCode::Ok)
}
