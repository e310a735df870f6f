//! A whole backup run: recover what a killed run left stopped, discover and select the units,
//! preflight, back up each unit, the engine's configuration, the run record, the DR bundle
//! and the monitoring after it. Also the dry run's plan, which is the same selection as data.
//!
//! Nothing here prints: problems the user should see come back as strings beside the report.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tracing::Instrument as _;

pub use super::preflight::{StagingError, check_staging_space};
use super::{
    BackupSettings, Interrupt, RunReport, UnitStatus, backup_docker_config, backup_unit,
    last_unit_report, new_backup_id, save_run, tree_size,
};
use crate::config::{ConfigError, LoadedConfig};
use crate::docker::{DockerError, Engine};
use crate::durable::error_chain;
use crate::error::{Class, classify};
use crate::lock::LockError;
use crate::monitor::{self, Ping};
use crate::progress::ProgressSink;
use crate::repo::{RepoError, RepoSettings, Scope, WriteRepo};
use crate::unit::{self, ContainerState, CoverageEntry, Unit, UnitKind};

/// What a run does, resolved from the configuration and the command line.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// `[backup]` and hooks, with overrides applied.
    pub backup: BackupSettings,
    /// Units to back up by name; empty means all.
    pub units: Vec<String>,
    /// Wait for another run to finish instead of failing at once.
    pub wait: bool,
}

/// Why a run ended before it had a report.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine endpoint in the configuration or `$DOCKER_HOST` is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository cannot be opened.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The engine failed while discovering units.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The run lock is held, or cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A unit named on the command line does not exist.
    #[error(transparent)]
    UnknownUnits(#[from] UnknownUnits),
    /// No room to stage recipes.
    #[error(transparent)]
    Staging(#[from] StagingError),
}

/// Units asked for by name that discovery did not find: never a silent skip.
#[derive(Debug, Clone, thiserror::Error)]
pub struct UnknownUnits {
    /// The names not found.
    pub unknown: Vec<String>,
    /// The units that exist, as (name, kind).
    pub known: Vec<(String, UnitKind)>,
}

impl fmt::Display for UnknownUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unknown: Vec<String> = self.unknown.iter().map(|n| format!("`{n}`")).collect();
        let known: Vec<String> = self
            .known
            .iter()
            .map(|(name, kind)| format!("{name} ({kind})"))
            .collect();
        write!(
            f,
            "unknown unit{} {}; known units: {}",
            if self.unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )
    }
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every unit backed up, no error outside them.
    Success,
    /// Some units (or something outside them) failed.
    Partial,
    /// Every unit failed.
    Failed,
    /// Stopped by SIGINT/SIGTERM: never a success.
    Interrupted,
}

impl RunReport {
    /// The run's outcome; `interrupted` is whether the run was asked to stop.
    pub fn outcome(&self, interrupted: bool) -> Outcome {
        if interrupted || self.units.iter().any(|u| u.interrupted) {
            return Outcome::Interrupted;
        }
        let ok = self
            .units
            .iter()
            .filter(|u| u.status == UnitStatus::Success)
            .count();
        if ok == self.units.len() && self.errors.is_empty() {
            Outcome::Success
        } else if ok == 0 && self.units.iter().all(|u| u.status == UnitStatus::Failed) {
            Outcome::Failed
        } else {
            Outcome::Partial
        }
    }
}

/// What [`run`] returns: the result, and what the user should know whatever the result.
#[derive(Debug)]
pub struct RunOutput {
    /// Problems beside the run (a failed ping, a bundle not refreshed), in order.
    pub warnings: Vec<String>,
    /// The run, or why it ended before it had a report.
    pub result: Result<Ran, RunError>,
}

/// A run that got as far as its report.
#[derive(Debug)]
pub struct Ran {
    /// The report (also saved in the state dir and the repository).
    pub report: RunReport,
    /// Whether the run was asked to stop.
    pub interrupted: bool,
    /// Problems of metrics, pings and notifications after the report.
    pub after_run: Vec<String>,
}

/// The units named in `names` (all when none). An unknown name is an error that lists the
/// known ones.
pub fn select<'a>(all: &'a [Unit], names: &[String]) -> Result<Vec<&'a Unit>, UnknownUnits> {
    if names.is_empty() {
        return Ok(all.iter().collect());
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !all.iter().any(|u| u.is_named(n)))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(UnknownUnits {
            unknown,
            known: all.iter().map(|u| (u.name.to_string(), u.kind)).collect(),
        });
    }
    Ok(all
        .iter()
        .filter(|u| names.iter().any(|n| u.is_named(n)))
        .collect())
}

/// Runs a backup of the selected units; `interrupt` is set on SIGINT/SIGTERM.
///
/// A run that ends before it has a report (engine down, repository unreachable, wrong
/// password) still pings `/fail` and sends its notification: a run that did not happen must
/// be heard of as loudly as one that failed. Only a usage error or a run lock held by another
/// run (which reports itself) stays quiet: nothing was attempted.
pub async fn run(
    loaded: &LoadedConfig,
    settings: &RunSettings,
    interrupt: &Interrupt,
    progress: Arc<dyn ProgressSink>,
) -> RunOutput {
    let mut warnings = Vec::new();
    let result = async {
        let repo_settings = RepoSettings::from_config(loaded)?;
        let engine = Engine::connect(loaded.engine_target()?).await?;
        run_units(
            loaded,
            &engine,
            repo_settings,
            settings,
            interrupt,
            progress,
            &mut warnings,
        )
        .await
    }
    .await;
    // Units asked for that do not exist are a usage error, but one a scheduled run (`[daemon]
    // units`) makes with nobody watching: heard of like any failed run.
    if let Err(error) = &result
        && (matches!(error, RunError::UnknownUnits(_))
            || !matches!(classify(error), Class::Usage | Class::Locked))
    {
        let aborted = monitor::run_aborted(&loaded.config, &error_chain(error)).await;
        warnings.extend(aborted);
    }
    RunOutput { warnings, result }
}

async fn run_units(
    loaded: &LoadedConfig,
    engine: &Engine,
    repo_settings: RepoSettings,
    settings: &RunSettings,
    interrupt: &Interrupt,
    progress: Arc<dyn ProgressSink>,
    warnings: &mut Vec<String>,
) -> Result<Ran, RunError> {
    let started_at = jiff::Timestamp::now();
    let backup = &settings.backup;
    let state_dir = loaded.env.state_dir();
    // Held for the whole run: the journal and the containers are ours alone.
    let run_lock = crate::lock::run_lock(&state_dir, settings.wait, interrupt).await?;
    let (journal, snapshots) = (state_dir.journal(), state_dir.fs_snapshots());
    let journals = (&journal, &snapshots);
    // A run killed with SIGKILL or a power cut left containers stopped: they come first.
    let recovered =
        crate::stop::recover(engine, &state_dir, &run_lock, backup.health_timeout).await;
    let restarted = recovered.started_names();
    for name in &restarted {
        tracing::warn!(container = %name, "started a container a previous run left stopped");
    }

    let all = unit::discover_configured(engine, loaded).await?;
    for warning in unit::unmatched_config_names(&loaded.config, &all) {
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
    let units = select(&all, &settings.units)?;

    if let Err(error) = monitor::ping(&loaded.config.monitoring, Ping::Start, "").await {
        warnings.push(error);
    }
    // Preflight before anything stops: room to stage recipes, the repository reachable, the
    // password right, and no other kopi-docka writing to it.
    check_staging_space(&backup.staging_dir)?;
    let repo = WriteRepo::open(repo_settings, progress).await?;

    // The run's time limit abandons the units the way SIGTERM does: the units see one
    // interrupt that is set by either.
    let (limited, limit) = time_limited(interrupt, backup.run_time_limit);
    let mut reports = back_up_units(
        engine,
        &repo,
        journals,
        &units,
        (backup, &state_dir),
        &limited,
    )
    .await;
    limit.abort();
    let timed_out = *limited.borrow() && !*interrupt.borrow();
    let mut run_errors = recovered.errors;
    if timed_out {
        let error = format!(
            "the run took longer than run-time-limit-seconds ({}s) and was abandoned: the unit in \
             progress was started again without a complete restore point, units not reached yet \
             were not backed up",
            backup.run_time_limit.as_secs()
        );
        tracing::error!("{error}");
        run_errors.push(error);
        // Not a stop anyone asked for: a failure, not an interruption.
        for r in &mut reports {
            if r.interrupted {
                r.interrupted = false;
                r.status = UnitStatus::Failed;
            }
        }
    }
    let docker_config = if backup.scope == Scope::Full && !*limited.borrow() {
        let id = new_backup_id();
        match backup_docker_config(&repo, &backup.staging_dir, &id).await {
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
        run_id: new_backup_id(),
        started_at,
        finished_at: jiff::Timestamp::now(),
        host: repo.settings().hostname.clone(),
        restarted_from_journal: restarted,
        docker_config,
        units: reports,
        errors: run_errors,
    };
    for problem in save_run(&repo, &state_dir, &backup.staging_dir, &report).await {
        tracing::warn!("{problem}");
        report.errors.push(problem);
    }
    if report.units.iter().any(|u| u.status == UnitStatus::Success)
        && let Err(error) = crate::dr::refresh(loaded, &repo).await
    {
        let error = crate::durable::error_chain(&error);
        tracing::warn!("disaster-recovery bundle not refreshed: {error}");
        warnings.push(format!(
            "the disaster-recovery bundle was not refreshed: {error}"
        ));
    }
    let after_run = monitor::after_run(loaded, &report).await;
    Ok(Ran {
        interrupted: *interrupt.borrow(),
        report,
        after_run,
    })
}

/// Backs up `units` one after the other until the (time-limited) interrupt is set, each in
/// its span, whose lines also go to the unit's daily log file.
async fn back_up_units(
    engine: &Engine,
    repo: &WriteRepo,
    journals: (
        &crate::lock::journal::Journal,
        &crate::fs_snapshot::SnapshotJournal,
    ),
    units: &[&Unit],
    (backup, state_dir): (&super::BackupSettings, &crate::state::StateDir),
    limited: &Interrupt,
) -> Vec<super::UnitReport> {
    let logs = unit_logs(state_dir, backup.unit_log_days);
    let mut reports = Vec::new();
    for unit in units {
        if *limited.borrow() {
            break;
        }
        // Everything logged inside the span also goes to the unit's daily file.
        let span = tracing::info_span!("unit", unit = %unit.name);
        if let Some(logs) = &logs
            && let Err(error) = crate::unit_log::attach(&span, logs, unit.name.as_str())
        {
            tracing::warn!(unit = %unit.name, "no daily log file for the unit: {error}");
        }
        let report = async {
            tracing::info!(unit = %unit.name, kind = %unit.kind, "backing up");
            backup_unit(engine, repo, journals, unit, backup, limited).await
        }
        .instrument(span)
        .await;
        reports.push(report);
    }
    reports
}

/// Where the units' daily log files go (`None` with `unit-log-days = 0`), after removing the
/// files older than that.
fn unit_logs(state_dir: &crate::state::StateDir, days: u32) -> Option<std::path::PathBuf> {
    if days == 0 {
        return None;
    }
    let logs = state_dir.unit_logs();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    for problem in crate::unit_log::prune(&logs, days, today) {
        tracing::warn!("{problem}");
    }
    Some(logs)
}

/// An interrupt that is set when `interrupt` is, or when `limit` has passed; the task that
/// sets it, to abort when the run ends.
fn time_limited(
    interrupt: &Interrupt,
    limit: std::time::Duration,
) -> (Interrupt, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(*interrupt.borrow());
    let mut outer = interrupt.clone();
    let task = tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(limit) => {}
            _ = outer.wait_for(|stop| *stop) => {}
        }
        // Nobody listens once the run has ended: nothing to tell.
        let _ = tx.send(true);
    });
    (rx, task)
}

/// What a backup run would do: `--dry-run` is this value rendered.
#[derive(Debug, Clone, Serialize)]
pub struct BackupPlan {
    /// What would be included.
    pub scope: Scope,
    /// Whether a warm pass would run.
    pub warm_pass: bool,
    /// One entry per selected unit.
    pub units: Vec<UnitPlan>,
}

/// What a backup run would do with one unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitPlan {
    /// Stack or standalone.
    pub kind: UnitKind,
    /// Unit name.
    pub name: String,
    /// Running containers in the order they would be stopped.
    pub stop_order: Vec<String>,
    /// The cold pass the unit would get (`[backup] cold-pass` and its mounts' filesystems). A
    /// nested subvolume, looked for only by a real run, can still turn `snapshot` into `read`.
    pub cold_pass: crate::fs_snapshot::ColdPassKind,
    /// Why the unit would not be backed up under `cold-pass = "snapshot"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_pass_refused: Option<String>,
    /// Each container's policy (`stop`, `dump` with engine and database, `skip`).
    pub services: Vec<ServicePolicy>,
    /// Why the unit would not be backed up at all (a refused name, a label error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Volumes backed up, by name.
    pub volumes: Vec<PlannedItem>,
    /// Bind mounts backed up, by host path.
    pub binds: Vec<PlannedItem>,
    /// From the unit's last run, when there was one.
    pub estimate: Option<Estimate>,
    /// Coverage entries that are not backed up.
    pub gaps: Vec<CoverageEntry>,
    /// `engine = "command"`: the unit's own backup job, run while the unit is stopped instead
    /// of kopi-docka's passes (its volumes and binds are then the job's business).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<super::command_job::CommandJob>,
    /// The systemd unit that stops and starts it (`systemctl`, never the engine's API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd: Option<crate::systemd::control::Service>,
    /// Stopped containers started afterwards (restore state `always`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_after: Vec<String>,
    /// Socket units stopped, with the services they trigger, before the unit, and put back
    /// as they were afterwards (`freeze-sockets`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze_sockets: Vec<String>,
}

/// What a plan says about how `unit` is stopped beyond its stop order: the systemd unit that
/// does it, the stopped containers restore state `always` starts, the frozen sockets.
fn stop_extras(
    unit: &Unit,
    how: &crate::stop::UnitStop,
) -> (
    Option<crate::systemd::control::Service>,
    Vec<String>,
    Vec<String>,
) {
    if unit.refused.is_some() {
        return (None, Vec::new(), Vec::new());
    }
    let systemd = unit.containers.iter().find_map(|c| c.systemd.clone());
    let start_after = unit
        .containers
        .iter()
        .filter(|c| {
            c.state != ContainerState::Running
                && c.policy.stops()
                && c.restore_state.unwrap_or(how.restore_state)
                    == crate::config::RestoreState::Always
        })
        .map(|c| c.name.clone())
        .collect();
    (systemd, start_after, how.freeze_sockets.clone())
}

/// A container's policy in a plan or a listing.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePolicy {
    /// Container name.
    pub container: String,
    /// What a backup does with it.
    #[serde(flatten)]
    pub policy: unit::Policy,
    /// Seconds it gets to stop, when set for it (`kopi-docka.stop-timeout`, config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
}

/// A volume or bind in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedItem {
    /// Volume name or host path.
    pub name: String,
    /// Bytes of regular files, when sizes were asked for.
    pub bytes: Option<u64>,
    /// Its filesystem and whether it can be snapshotted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<crate::fs_snapshot::FsSupport>,
    /// Globs of what inside it is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// How long the unit's last backup took.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Estimate {
    /// When that run started (UTC).
    pub last_run: jiff::Timestamp,
    /// Wall time of that unit's backup.
    pub seconds: f64,
    /// Its downtime, when anything was stopped.
    pub downtime_seconds: Option<f64>,
}

/// The cold pass a unit would get: `read` when nothing of it runs (nothing is stopped).
fn cold_pass_of(
    unit: &Unit,
    mode: crate::fs_snapshot::ColdPassMode,
) -> Result<crate::fs_snapshot::ColdPassKind, String> {
    if !unit
        .containers
        .iter()
        .any(|c| c.state == ContainerState::Running)
    {
        return Ok(crate::fs_snapshot::ColdPassKind::Read);
    }
    let running = |p: fn(&unit::Policy) -> bool| {
        unit.containers
            .iter()
            .any(|c| c.state == ContainerState::Running && p(&c.policy))
    };
    // Only `snapshot-live` services run among those whose files are copied: nothing stops.
    if running(|p| *p == unit::Policy::SnapshotLive) && !running(unit::Policy::stops) {
        return Ok(crate::fs_snapshot::ColdPassKind::SnapshotLive);
    }
    let volumes = unit
        .volumes
        .iter()
        .filter(|v| v.verdict.is_backed_up())
        .map(|v| (format!("volume {}", v.name), v.filesystem.as_ref()));
    let binds = unit
        .binds
        .iter()
        .filter(|b| b.verdict.is_backed_up())
        .map(|b| {
            (
                format!("bind {}", b.source.display()),
                b.filesystem.as_ref(),
            )
        });
    crate::fs_snapshot::decide(mode, volumes.chain(binds))
}

/// Discovers and selects the units and says what a run would do with them, without stopping
/// or writing anything. With `sizes`, walks every volume and bind to count its bytes.
pub async fn plan(
    loaded: &LoadedConfig,
    settings: &RunSettings,
    sizes: bool,
) -> Result<BackupPlan, RunError> {
    // The repository settings are checked as a real run would, though nothing is written.
    RepoSettings::from_config(loaded)?;
    let engine = Engine::connect(loaded.engine_target()?).await?;
    let all = unit::discover_configured(&engine, loaded).await?;
    let units = select(&all, &settings.units)?;
    let state_dir = loaded.env.state_dir();
    let size = |path: &Path| sizes.then(|| tree_size(path));
    let units = units
        .into_iter()
        .map(|unit| {
            (
                unit,
                stop_extras(unit, &settings.backup.unit_stop(unit.name.as_str())),
            )
        })
        .map(|(unit, (systemd, start_after, freeze_sockets))| UnitPlan {
            kind: unit.kind,
            name: unit.name.to_string(),
            stop_order: unit
                .containers
                .iter()
                .rev()
                // A refused unit is never touched.
                .filter(|c| {
                    c.state == ContainerState::Running && c.policy.stops() && unit.refused.is_none()
                })
                .map(|c| c.name.clone())
                .collect(),
            cold_pass: cold_pass_of(unit, settings.backup.cold_pass)
                .unwrap_or(crate::fs_snapshot::ColdPassKind::Read),
            cold_pass_refused: cold_pass_of(unit, settings.backup.cold_pass).err(),
            services: unit
                .containers
                .iter()
                .map(|c| ServicePolicy {
                    container: c.name.clone(),
                    policy: c.policy.clone(),
                    stop_timeout: c.stop_timeout,
                })
                .collect(),
            refused: unit.refused.clone(),
            volumes: unit
                .volumes
                .iter()
                .filter(|v| v.verdict.is_backed_up())
                .map(|v| PlannedItem {
                    name: v.name.clone(),
                    bytes: v.data_path().and_then(size),
                    filesystem: v.filesystem.clone(),
                    exclude: v.exclude.clone(),
                })
                .collect(),
            binds: unit
                .binds
                .iter()
                .filter(|b| b.verdict.is_backed_up())
                .map(|b| PlannedItem {
                    name: b.source.display().to_string(),
                    bytes: size(&b.source),
                    filesystem: b.filesystem.clone(),
                    exclude: b.exclude.clone(),
                })
                .collect(),
            estimate: last_unit_report(&state_dir, unit).map(
                |(last_run, seconds, downtime_seconds)| Estimate {
                    last_run,
                    seconds,
                    downtime_seconds,
                },
            ),
            gaps: unit
                .coverage
                .entries
                .iter()
                .filter(|e| !e.verdict.is_backed_up())
                .cloned()
                .collect(),
            job: settings.backup.command_job(unit).cloned(),
            systemd,
            start_after,
            freeze_sockets,
        })
        // A unit backed up by its own job: its volumes and binds are the job's business.
        .map(|mut plan| {
            if plan.job.is_some() {
                plan.volumes.clear();
                plan.binds.clear();
            }
            plan
        })
        .collect();
    Ok(BackupPlan {
        scope: settings.backup.scope,
        warm_pass: settings.backup.warm_pass,
        units,
    })
}
