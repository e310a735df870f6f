//! Cold backup of a unit with minimal downtime and a guaranteed restart.
//!
//! Order per unit:
//! 1. stage the recipe and networks (needs the engine, not stopped containers) and snapshot them;
//! 2. **warm pass**: snapshot every volume and bind while the unit runs, so the repository
//!    already holds the bulk;
//! 3. record the containers to stop in the journal (durably), then stop the running ones in
//!    reverse start order;
//! 4. **cold pass**: snapshot again; the warm snapshot is the parent, so only changed files are
//!    read;
//! 5. start exactly the containers we stopped, in start order, and wait for their health;
//! 6. only when every planned part (recipe, networks, each volume and bind) was saved by a
//!    cold pass that ran to its end: write the point's marker, last
//!    ([`PointStatus`](crate::repo::PointStatus));
//! 7. forget the warm snapshots. They are tagged `pass=warm` from the start, so a run killed
//!    before this step leaves copies that nobody takes for a restore point.
//!
//! An abandoned cold pass (max downtime, SIGINT/SIGTERM) cancels the snapshot in progress and
//! waits for it to return before the unit is started again: nothing is read, and no snapshot
//! saved, once the unit runs.
//!
//! Steps 3 to 5 go through [`StoppedUnit`](crate::stop::StoppedUnit): stopping returns it, and
//! the only way to get rid of it is its `restart`. Whatever happens in between (a snapshot
//! error, a hung repository past the downtime budget, a panic in the cold pass, SIGINT/SIGTERM),
//! the code below reaches that call before it returns.

pub mod recipe;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use std::collections::BTreeMap;

use crate::config::{Config, HookPoint, HookSet};
use crate::docker::Engine;
use crate::hooks::HookContext;
use crate::lock::journal::Journal;
use crate::repo::{BackupId, Cancel, Part, Pass, Repo, RepoError, Scope, SnapshotMeta, UnitRef};
use crate::state::StateDir;
use crate::stop::StoppedUnit;
use crate::unit::{ContainerState, Coverage, CoverageSummary, Unit, UnitKind};

/// Settings of one backup run.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// What to include.
    pub scope: Scope,
    /// Do the warm pass.
    pub warm_pass: bool,
    /// Seconds before a stopping container is killed.
    pub stop_timeout: u32,
    /// How long to wait for health after a start.
    pub health_timeout: Duration,
    /// Budget from the first stop to the end of the cold pass.
    pub max_downtime: Duration,
    /// Where recipes are staged (emptied after each unit).
    pub staging_dir: PathBuf,
    /// Global hooks.
    pub hooks: HookSet,
    /// Hooks per unit name.
    pub unit_hooks: BTreeMap<String, HookSet>,
    /// How long one hook may run.
    pub hook_timeout: Duration,
}

impl BackupSettings {
    /// From the configuration (`[backup]`, `[hooks]`, `[units.*]`).
    pub fn from_config(full: &Config, staging_dir: PathBuf) -> Self {
        let config = &full.backup;
        Self {
            hooks: full.hooks.clone(),
            unit_hooks: full
                .units
                .iter()
                .map(|(name, unit)| (name.clone(), unit.hooks.clone()))
                .collect(),
            hook_timeout: config.hook_timeout(),
            scope: config.scope,
            warm_pass: config.warm_pass,
            stop_timeout: config.stop_timeout_seconds,
            health_timeout: config.health_timeout(),
            max_downtime: config.max_downtime(),
            staging_dir,
        }
    }
}

/// How a unit's backup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Every snapshot taken, every container running again.
    Success,
    /// Some snapshots taken, some not.
    Partial,
    /// No consistent restore point was made.
    Failed,
}

/// One snapshot made for the unit.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRecord {
    /// Snapshot id.
    pub id: String,
    /// What it holds.
    #[serde(flatten)]
    pub part: Part,
    /// New bytes stored for this part by this run, warm pass included.
    pub bytes_added: u64,
    /// Files read because new or changed.
    pub files_read: u64,
}

/// Result of backing up one unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// Unit name.
    pub name: String,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// Shared by all its snapshots.
    pub backup_id: BackupId,
    /// Outcome.
    pub status: UnitStatus,
    /// First stop to last start, when anything was stopped.
    pub downtime_seconds: Option<f64>,
    /// Cold snapshots (the restore point), its marker last when the point is complete.
    pub snapshots: Vec<SnapshotRecord>,
    /// The point's marker was written: every planned part was saved.
    pub complete: bool,
    /// Bytes the repository grew by for this unit: every snapshot, the warm pass included
    /// (also when the cold pass then failed).
    pub bytes_added: u64,
    /// What went wrong.
    pub errors: Vec<String>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// Coverage counts.
    pub coverage: CoverageSummary,
    /// True when the run was interrupted.
    pub interrupted: bool,
    /// Wall time of the whole unit backup.
    pub duration_seconds: f64,
}

/// Set to `true` when the run must stop (SIGINT/SIGTERM).
pub type Interrupt = watch::Receiver<bool>;

/// Backs up one unit. Never returns with a container of ours left stopped, unless the engine
/// refuses to start it (then the journal keeps it for the next run, and the report says so).
pub async fn backup_unit(
    engine: &Engine,
    repo: &Repo,
    journal: &Journal,
    unit: &Unit,
    settings: &BackupSettings,
    interrupt: &Interrupt,
) -> UnitReport {
    let started = Instant::now();
    let mut report = backup_unit_timed(engine, repo, journal, unit, settings, interrupt).await;
    report.duration_seconds = started.elapsed().as_secs_f64();
    report
}

async fn backup_unit_timed(
    engine: &Engine,
    repo: &Repo,
    journal: &Journal,
    unit: &Unit,
    settings: &BackupSettings,
    interrupt: &Interrupt,
) -> UnitReport {
    let backup_id = new_backup_id();
    let mut report = UnitReport {
        name: unit.name.to_string(),
        kind: unit.kind,
        backup_id: backup_id.clone(),
        status: UnitStatus::Success,
        downtime_seconds: None,
        snapshots: Vec::new(),
        complete: false,
        bytes_added: 0,
        errors: Vec::new(),
        warnings: gap_warnings(&unit.coverage),
        coverage: unit.coverage.summary,
        interrupted: false,
        duration_seconds: 0.0,
    };
    let meta = |part: Part| SnapshotMeta {
        unit: Some(UnitRef {
            name: unit.name.clone(),
            kind: unit.kind,
        }),
        part,
        backup_id: backup_id.clone(),
        scope: settings.scope,
        pass: Some(Pass::Final),
    };

    if let Err(error) = hooks(settings, unit, &backup_id, HookPoint::PreBackup, None).await {
        report
            .errors
            .push(format!("{error}; the unit was not touched"));
        report.status = UnitStatus::Failed;
        return report;
    }

    // 1. Recipe and networks.
    if settings.scope != Scope::Minimal {
        recipe_step(engine, repo, unit, &backup_id, settings, &meta, &mut report).await;
    }

    let mut sources = data_sources(unit);
    let running: Vec<&crate::unit::Container> = unit
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .collect();

    // 2. Warm pass (only useful when something will be stopped).
    if settings.warm_pass && !running.is_empty() {
        warm_pass(repo, &mut sources, &meta, interrupt, &mut report).await;
        tracing::info!(unit = %unit.name, "warm pass done");
    }

    if *interrupt.borrow() {
        report.interrupted = true;
        report.status = UnitStatus::Failed;
        report
            .errors
            .push("interrupted before the unit was stopped".into());
        forget_warm(repo, &sources, &mut report).await;
        count_bytes(&sources, &mut report);
        return report;
    }

    if let Err(error) = hooks(settings, unit, &backup_id, HookPoint::PreStop, None).await {
        report
            .errors
            .push(format!("{error}; the unit was not stopped"));
        report.status = UnitStatus::Failed;
        forget_warm(repo, &sources, &mut report).await;
        count_bytes(&sources, &mut report);
        return report;
    }

    // 3-5. Stop, cold pass, restart.
    let (cold_failed, taken) = stop_snapshot_restart(
        engine,
        repo,
        journal,
        unit,
        settings,
        &backup_id,
        &sources,
        &meta,
        interrupt,
        &mut report,
    )
    .await;

    // 6. The marker, last: only a point with every planned part is complete.
    if !cold_failed && !report.interrupted {
        commit_point(
            repo,
            unit,
            &backup_id,
            settings,
            &sources,
            &meta,
            &mut report,
        )
        .await;
    }

    // 7. Warm snapshots are not consistent: never restore points.
    forget_warm(repo, &sources, &mut report).await;
    count_bytes(&sources, &mut report);

    finish(settings, unit, &backup_id, cold_failed, taken, &mut report).await;
    report
}

/// Writes the point's marker when every planned part (recipe and networks unless the scope is
/// minimal, each source) was saved; the report says whether the point is complete.
async fn commit_point(
    repo: &Repo,
    unit: &Unit,
    backup_id: &BackupId,
    settings: &BackupSettings,
    sources: &[Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    report: &mut UnitReport,
) {
    let recipe = if settings.scope == Scope::Minimal {
        0
    } else {
        2
    };
    let planned = sources.len() + recipe;
    if planned == 0 || report.snapshots.len() != planned {
        return;
    }
    match write_marker(repo, unit, backup_id, settings, meta, &report.snapshots).await {
        Ok(record) => {
            report.snapshots.push(record);
            report.complete = true;
        }
        Err(error) => report.errors.push(format!(
            "{error}; the restore point is incomplete (restore it with --allow-incomplete)"
        )),
    }
}

/// Snapshots every source while the unit runs (tagged `pass=warm`), so the cold pass reads
/// only what changed. SIGINT/SIGTERM abandons the snapshot in progress.
async fn warm_pass(
    repo: &Repo,
    sources: &mut [Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    interrupt: &Interrupt,
    report: &mut UnitReport,
) {
    for source in sources {
        if *interrupt.borrow() {
            break;
        }
        let warm_meta = SnapshotMeta {
            pass: Some(Pass::Warm),
            ..meta(source.part.clone())
        };
        let cancel = Cancel::new();
        let mut snapshot = tokio::spawn({
            let (repo, path, cancel) = (repo.clone(), source.path.clone(), cancel.clone());
            async move { repo.snapshot_cancellable(path, warm_meta, cancel).await }
        });
        let mut interrupt = interrupt.clone();
        let joined = tokio::select! {
            joined = &mut snapshot => joined,
            _ = interrupt.wait_for(|stop| *stop) => {
                cancel.cancel();
                snapshot.await
            }
        };
        match joined {
            Ok(Ok(info)) => {
                source.warm_bytes = info.summary.map_or(0, |s| s.bytes_added_packed);
                source.warm = Some(info.id);
            }
            Ok(Err(RepoError::Cancelled)) => {}
            // The cold pass will try again; a warm failure only costs downtime.
            Ok(Err(error)) => report
                .warnings
                .push(format!("warm pass of {}: {error}", describe(&source.part))),
            Err(panic) => report.warnings.push(format!(
                "warm pass of {}: internal error: {panic}",
                describe(&source.part)
            )),
        }
    }
}

/// Adds the warm pass's bytes to the cold snapshot of the same part (it stored them), and
/// totals what the unit added to the repository.
fn count_bytes(sources: &[Source], report: &mut UnitReport) {
    let mut orphaned = 0;
    for source in sources.iter().filter(|s| s.warm_bytes > 0) {
        match report.snapshots.iter_mut().find(|r| r.part == source.part) {
            Some(record) => record.bytes_added += source.warm_bytes,
            None => orphaned += source.warm_bytes,
        }
    }
    report.bytes_added = orphaned + report.snapshots.iter().map(|r| r.bytes_added).sum::<u64>();
}

/// What a point's marker holds: the parts it commits, for people and `restic dump`.
#[derive(Serialize)]
struct MarkerDoc<'a> {
    backup_id: &'a BackupId,
    unit: &'a str,
    kind: UnitKind,
    tool_version: &'static str,
    parts: Vec<MarkerPart<'a>>,
}

#[derive(Serialize)]
struct MarkerPart<'a> {
    #[serde(flatten)]
    part: &'a Part,
    snapshot: &'a str,
}

/// Writes the marker that makes the point complete: a snapshot of `point.json`, tagged
/// `type=point` with the number of parts.
async fn write_marker(
    repo: &Repo,
    unit: &Unit,
    backup_id: &BackupId,
    settings: &BackupSettings,
    meta: &impl Fn(Part) -> SnapshotMeta,
    parts: &[SnapshotRecord],
) -> Result<SnapshotRecord, String> {
    let doc = MarkerDoc {
        backup_id,
        unit: unit.name.as_str(),
        kind: unit.kind,
        tool_version: crate::VERSION,
        parts: parts
            .iter()
            .map(|r| MarkerPart {
                part: &r.part,
                snapshot: &r.id,
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&doc).map_err(|e| format!("point marker: {e}"))?;
    let count = u32::try_from(parts.len()).map_err(|e| format!("point marker: {e}"))?;
    let staging = settings
        .staging_dir
        .join(format!("point-{}-{}-{backup_id}", unit.kind, unit.name));
    let saved = match crate::durable::create_dir_all(&staging, 0o700)
        .and_then(|()| std::fs::write(staging.join("point.json"), &json))
    {
        Ok(()) => repo
            .snapshot(staging.clone(), meta(Part::Point { parts: count }), None)
            .await
            .map(record)
            .map_err(|e| format!("point marker: {e}")),
        Err(error) => Err(format!("staging the point marker: {error}")),
    };
    if let Err(error) = std::fs::remove_dir_all(&staging) {
        tracing::debug!(%error, "cannot remove the point marker staging dir");
    }
    saved
}

/// Sets the unit's status and runs the post-backup hook with it.
async fn finish(
    settings: &BackupSettings,
    unit: &Unit,
    backup_id: &BackupId,
    cold_failed: bool,
    taken: usize,
    report: &mut UnitReport,
) {
    report.status = if !cold_failed && report.errors.is_empty() {
        UnitStatus::Success
    } else if taken > 0 {
        UnitStatus::Partial
    } else {
        UnitStatus::Failed
    };
    let status = match report.status {
        UnitStatus::Success => "success",
        UnitStatus::Partial => "partial",
        UnitStatus::Failed => "failed",
    };
    if let Err(error) = hooks(
        settings,
        unit,
        backup_id,
        HookPoint::PostBackup,
        Some(status),
    )
    .await
    {
        report.errors.push(error);
        if report.status == UnitStatus::Success {
            report.status = UnitStatus::Partial;
        }
    }
}

/// Stops the unit, runs the cold pass, and starts the unit again whatever happened in between.
/// Returns whether the cold pass failed and how many snapshots it took.
#[allow(
    clippy::too_many_arguments,
    reason = "the whole state of one unit's backup"
)]
async fn stop_snapshot_restart(
    engine: &Engine,
    repo: &Repo,
    journal: &Journal,
    unit: &Unit,
    settings: &BackupSettings,
    backup_id: &BackupId,
    sources: &[Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    interrupt: &Interrupt,
    report: &mut UnitReport,
) -> (bool, usize) {
    let stopped = match StoppedUnit::stop(engine, journal, unit, settings.stop_timeout).await {
        Ok(stopped) => stopped,
        Err((stopped, error)) => {
            report.errors.push(error);
            let restart = stopped
                .restart(engine, journal, settings.health_timeout)
                .await;
            report.errors.extend(restart.errors);
            return (true, 0);
        }
    };
    let mut hook_errors = Vec::new();
    let (records, errors, interrupted) =
        match hooks(settings, unit, backup_id, HookPoint::PostStop, None).await {
            Ok(()) => {
                cold_pass(
                    repo,
                    sources,
                    meta,
                    settings.max_downtime,
                    interrupt.clone(),
                )
                .await
            }
            Err(error) => (
                Vec::new(),
                vec![format!("{error}; the cold pass was skipped")],
                false,
            ),
        };
    if let Err(error) = hooks(settings, unit, backup_id, HookPoint::PreStart, None).await {
        hook_errors.push(format!("{error}; the unit is started anyway"));
    }
    let restart = stopped
        .restart(engine, journal, settings.health_timeout)
        .await;
    if restart.errors.is_empty()
        && let Err(error) = hooks(settings, unit, backup_id, HookPoint::PostStart, None).await
    {
        hook_errors.push(error);
    }
    report.downtime_seconds = restart.downtime.map(|d| d.as_secs_f64());
    report.interrupted = interrupted;
    let cold_failed = !errors.is_empty();
    report.errors.extend(errors);
    report.errors.extend(restart.errors);
    report.errors.extend(hook_errors);
    report.warnings.extend(restart.warnings);
    let taken = records.len();
    report.snapshots.extend(records);
    (cold_failed, taken)
}

/// Stages and snapshots the recipe and networks; errors go into the report.
async fn recipe_step(
    engine: &Engine,
    repo: &Repo,
    unit: &Unit,
    backup_id: &BackupId,
    settings: &BackupSettings,
    meta: &impl Fn(Part) -> SnapshotMeta,
    report: &mut UnitReport,
) {
    let staging = settings
        .staging_dir
        .join(format!("{}-{}-{backup_id}", unit.kind, unit.name));
    match stage_and_snapshot(engine, repo, unit, backup_id, &staging, meta).await {
        Ok(records) => report.snapshots.extend(records),
        Err(error) => report.errors.push(error),
    }
    if let Err(error) = std::fs::remove_dir_all(&staging)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        report.warnings.push(format!(
            "cannot remove staging dir {}: {error}",
            staging.display()
        ));
    }
}

/// Runs the global, then the unit's hook for `point`. The first failure is returned.
async fn hooks(
    settings: &BackupSettings,
    unit: &Unit,
    backup_id: &BackupId,
    point: HookPoint,
    status: Option<&str>,
) -> Result<(), String> {
    let kind = unit.kind.to_string();
    let context = HookContext {
        unit: unit.name.as_str(),
        kind: &kind,
        backup_id: backup_id.as_str(),
        status,
    };
    let sets = std::iter::once(&settings.hooks).chain(settings.unit_hooks.get(unit.name.as_str()));
    crate::hooks::run_point(sets, point, &context, settings.hook_timeout)
        .await
        .map_err(|e| e.to_string())
}

async fn forget_warm(repo: &Repo, sources: &[Source], report: &mut UnitReport) {
    let warm_ids: Vec<String> = sources.iter().filter_map(|s| s.warm.clone()).collect();
    if warm_ids.is_empty() {
        return;
    }
    if let Err(error) = repo.forget_ids(warm_ids).await {
        report
            .warnings
            .push(format!("cannot forget the warm-pass snapshots: {error}"));
    }
}

fn gap_warnings(coverage: &Coverage) -> Vec<String> {
    coverage
        .entries
        .iter()
        .filter(|e| e.verdict.status == crate::unit::CoverageStatus::NotProtected)
        .map(|e| {
            format!(
                "not protected: {} {}: {}",
                e.kind,
                e.identifier,
                e.detail.as_deref().unwrap_or("")
            )
        })
        .collect()
}

fn describe(part: &Part) -> String {
    match part {
        Part::Volume { volume } => format!("volume {volume}"),
        Part::Bind { bind } => format!("bind {}", bind.display()),
        Part::Recipe => "recipe".into(),
        Part::Networks => "networks".into(),
        Part::DockerConfig => "docker config".into(),
        Part::Run => "run report".into(),
        Part::Point { .. } => "point marker".into(),
    }
}

/// A volume or bind to back up.
struct Source {
    part: Part,
    /// The host path to read.
    path: PathBuf,
    /// Its warm-pass snapshot, once taken: the cold pass's parent.
    warm: Option<String>,
    /// Bytes its warm-pass snapshot stored.
    warm_bytes: u64,
}

/// Volumes and binds that are backed up.
fn data_sources(unit: &Unit) -> Vec<Source> {
    let volumes = unit
        .volumes
        .iter()
        .filter(|v| v.verdict.is_backed_up())
        .filter_map(|v| {
            v.mountpoint.clone().map(|m| {
                (
                    Part::Volume {
                        volume: v.name.clone(),
                    },
                    m,
                )
            })
        });
    let binds = unit
        .binds
        .iter()
        .filter(|b| b.verdict.is_backed_up())
        .map(|b| {
            (
                Part::Bind {
                    bind: b.source.clone(),
                },
                b.source.clone(),
            )
        });
    volumes
        .chain(binds)
        .map(|(part, path)| Source {
            part,
            path,
            warm: None,
            warm_bytes: 0,
        })
        .collect()
}

async fn stage_and_snapshot(
    engine: &Engine,
    repo: &Repo,
    unit: &Unit,
    backup_id: &BackupId,
    staging: &Path,
    meta: &impl Fn(Part) -> SnapshotMeta,
) -> Result<Vec<SnapshotRecord>, String> {
    let recipe_dir = staging.join("recipe");
    let networks_dir = staging.join("networks");
    crate::durable::create_dir_all(&recipe_dir, 0o700).map_err(|e| format!("staging: {e}"))?;
    recipe::stage(engine, unit, backup_id, &recipe_dir)
        .await
        .map_err(|e| e.to_string())?;
    recipe::stage_networks(engine, unit, &networks_dir)
        .await
        .map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    for (part, dir) in [(Part::Recipe, recipe_dir), (Part::Networks, networks_dir)] {
        let info = repo
            .snapshot(dir, meta(part.clone()), None)
            .await
            .map_err(|e| format!("{}: {e}", describe(&part)))?;
        records.push(record(info));
    }
    Ok(records)
}

fn record(info: crate::repo::SnapshotInfo) -> SnapshotRecord {
    let summary = info.summary;
    SnapshotRecord {
        id: info.id,
        part: info.meta.part,
        bytes_added: summary.map_or(0, |s| s.bytes_added_packed),
        files_read: summary.map_or(0, |s| s.files_new + s.files_changed),
    }
}

/// The cold pass, bounded by the downtime budget and the interrupt. Returns the snapshots
/// taken, the errors, and whether it was interrupted.
async fn cold_pass(
    repo: &Repo,
    sources: &[Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    budget: Duration,
    mut interrupt: Interrupt,
) -> (Vec<SnapshotRecord>, Vec<String>, bool) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + budget;
    for Source {
        part, path, warm, ..
    } in sources
    {
        if *interrupt.borrow() {
            errors.push(format!("interrupted before {}", describe(part)));
            return (records, errors, true);
        }
        // A spawned task turns a panic into an error instead of unwinding past the restart.
        let cancel = Cancel::new();
        let mut snapshot = tokio::spawn({
            let (repo, cancel) = (repo.clone(), cancel.clone());
            let (path, meta, parent) = (path.clone(), meta(part.clone()), warm.clone());
            async move {
                repo.snapshot_while_stopped(path, meta, parent, cancel)
                    .await
            }
        });
        let abandoned = tokio::select! {
            joined = &mut snapshot => {
                match joined {
                    Ok(Ok(info)) => records.push(record(info)),
                    Ok(Err(error)) => errors.push(format!("{}: {error}", describe(part))),
                    Err(panic) => errors.push(format!("{}: internal error: {panic}", describe(part))),
                }
                None
            }
            () = tokio::time::sleep_until(deadline) => Some((format!(
                "cold pass exceeded max-downtime-seconds ({}s) at {}; the unit was restarted \
                 without a complete backup",
                budget.as_secs(), describe(part)
            ), false)),
            _ = interrupt.wait_for(|stop| *stop) => {
                Some((format!("interrupted during {}", describe(part)), true))
            }
        };
        if let Some((error, interrupted)) = abandoned {
            // Stop reading now, and wait until the snapshot has given up: nothing may be read
            // or saved once the unit runs again.
            cancel.cancel();
            // Bounded: a hung repository must not keep the unit down. A snapshot that has not
            // returned by then sees the flag when it resumes and saves nothing.
            let waited = Instant::now();
            match tokio::time::timeout(CANCEL_WAIT, &mut snapshot).await {
                // It was saved before it saw the flag: true, but part of no complete point.
                Ok(Ok(Ok(info))) => records.push(record(info)),
                Ok(Ok(Err(RepoError::Cancelled))) => {}
                Ok(Ok(Err(other))) => errors.push(format!("{}: {other}", describe(part))),
                Ok(Err(panic)) => {
                    errors.push(format!("{}: internal error: {panic}", describe(part)));
                }
                Err(_) => errors.push(format!(
                    "{}: the abandoned snapshot did not stop within {}s (a hung repository?); \
                     the unit is started anyway",
                    describe(part),
                    CANCEL_WAIT.as_secs()
                )),
            }
            tracing::info!(
                part = %describe(part),
                seconds = waited.elapsed().as_secs_f64(),
                "cold pass abandoned"
            );
            errors.push(error);
            return (records, errors, interrupted);
        }
    }
    (records, errors, false)
}

/// How long an abandoned cold-pass snapshot may take to stop before the unit is started anyway.
/// It stops at its next chunk of data (milliseconds) unless the repository itself hangs.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// A new backup id: the time now plus 16 random bits.
pub fn new_backup_id() -> BackupId {
    let mut random = [0_u8; 2];
    if let Err(error) = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
    {
        tracing::debug!(%error, "no /dev/urandom; backup id suffix from the clock");
        random = jiff::Timestamp::now().subsec_nanosecond().to_le_bytes()[..2]
            .try_into()
            .unwrap_or([0, 0]);
    }
    BackupId::new(jiff::Timestamp::now(), u16::from_le_bytes(random))
}

/// The engine's own configuration files, snapshotted once per `full` run.
pub const DOCKER_CONFIG_FILES: &[&str] = &[
    "/etc/docker/daemon.json",
    "/etc/systemd/system/docker.service.d",
];

/// Snapshots the engine's configuration ([`DOCKER_CONFIG_FILES`], those that exist) once per
/// run. `Ok(None)` when none exists.
pub async fn backup_docker_config(
    repo: &Repo,
    staging_dir: &Path,
    backup_id: &BackupId,
) -> Result<Option<SnapshotRecord>, String> {
    let staging = staging_dir.join(format!("docker-config-{backup_id}"));
    let copy = || -> std::io::Result<bool> {
        let mut any = false;
        for source in DOCKER_CONFIG_FILES.iter().map(Path::new) {
            if !source.exists() {
                continue;
            }
            any = true;
            let dest = staging.join(source.strip_prefix("/").unwrap_or(source));
            std::fs::create_dir_all(dest.parent().unwrap_or(&staging))?;
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(source)
                .arg(&dest)
                .status()?;
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "cp -a {} failed",
                    source.display()
                )));
            }
        }
        Ok(any)
    };
    let result = match copy() {
        Ok(false) => Ok(None),
        Ok(true) => {
            let meta = SnapshotMeta {
                unit: None,
                part: Part::DockerConfig,
                backup_id: backup_id.clone(),
                scope: Scope::Full,
                pass: None,
            };
            repo.snapshot(staging.clone(), meta, None)
                .await
                .map(|info| Some(record(info)))
                .map_err(|e| format!("docker config: {e}"))
        }
        Err(error) => Err(format!("staging the docker config: {error}")),
    };
    if let Err(error) = std::fs::remove_dir_all(&staging)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, "cannot remove the docker-config staging dir");
    }
    result
}

/// The report of one backup run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Identifies the run (also the backup id of its run-report snapshot).
    pub run_id: BackupId,
    /// When it started (UTC).
    pub started_at: jiff::Timestamp,
    /// When it ended (UTC).
    pub finished_at: jiff::Timestamp,
    /// Host that ran it.
    pub host: String,
    /// Containers a killed earlier run had left stopped, started first.
    pub restarted_from_journal: Vec<String>,
    /// The engine-configuration snapshot (scope `full`).
    pub docker_config: Option<SnapshotRecord>,
    /// One entry per unit.
    pub units: Vec<UnitReport>,
    /// Errors outside any unit.
    pub errors: Vec<String>,
}

/// Keeps the run report twice: as JSON in `<state_dir>/runs/` (0600) and as a `type=run`
/// snapshot in the repository, so the history survives the loss of the host. Returns what
/// could not be saved.
pub async fn save_run(
    repo: &Repo,
    state_dir: &StateDir,
    staging_dir: &Path,
    report: &RunReport,
) -> Vec<String> {
    let mut problems = Vec::new();
    let json = match serde_json::to_vec_pretty(report) {
        Ok(json) => json,
        Err(error) => return vec![format!("cannot encode the run report: {error}")],
    };
    let name = format!("{}.json", report.run_id);
    let runs = state_dir.runs();
    if let Err(error) = crate::durable::create_dir_all(&runs, 0o700)
        .and_then(|()| crate::durable::write_file(&runs.join(&name), &json, 0o600))
    {
        problems.push(format!(
            "cannot save the run report in {}: {error}",
            runs.display()
        ));
    }
    let staging = staging_dir.join(format!("run-{}", report.run_id));
    let meta = SnapshotMeta {
        unit: None,
        part: Part::Run,
        backup_id: report.run_id.clone(),
        scope: Scope::Minimal,
        pass: None,
    };
    let saved = match crate::durable::create_dir_all(&staging, 0o700)
        .and_then(|()| std::fs::write(staging.join("run.json"), &json))
    {
        Ok(()) => repo
            .snapshot(staging.clone(), meta, None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = saved {
        problems.push(format!(
            "cannot save the run report in the repository: {error}"
        ));
    }
    if let Err(error) = std::fs::remove_dir_all(&staging) {
        tracing::debug!(%error, "cannot remove the run staging dir");
    }
    problems
}

/// The most recent report of `unit` among the run reports in `<state_dir>/runs`, if any:
/// the basis of a dry run's time estimate.
pub fn last_unit_report(
    state_dir: &StateDir,
    unit: &Unit,
) -> Option<(jiff::Timestamp, f64, Option<f64>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(state_dir.runs())
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    // Run ids start with the UTC time, so names sort by time.
    files.sort();
    files.iter().rev().find_map(|file| {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        let started: jiff::Timestamp = doc["started_at"].as_str()?.parse().ok()?;
        doc["units"].as_array()?.iter().find_map(|u| {
            let same =
                u["name"] == unit.name.as_str() && u["kind"] == unit.kind.to_string().as_str();
            same.then(|| {
                (
                    started,
                    u["duration_seconds"].as_f64().unwrap_or(0.0),
                    u["downtime_seconds"].as_f64(),
                )
            })
        })
    })
}

/// Bytes of regular files below `path` (not following symlinks), for `--dry-run --sizes`.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| tree_size(&e.path()))
            .sum()
    })
}

/// Staging needs room for a unit's recipe (compose and env files, inspect output): small, but
/// a full disk must be found before anything stops, not while the unit is down.
pub const MIN_STAGING_FREE_BYTES: u64 = 64 << 20;

/// Free bytes for an unprivileged writer on the filesystem that holds `path` (or its nearest
/// existing ancestor).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
