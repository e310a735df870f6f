//! The unit algorithm: a cold backup of one unit with minimal downtime and a guaranteed
//! restart.
//!
//! Order per unit:
//! 1. stage the recipe and networks (needs the engine, not stopped containers) and snapshot them;
//! 2. **warm pass**: snapshot every volume and bind while the unit runs, so the repository
//!    already holds the bulk;
//! 3. record the containers to stop in the journal (durably), then stop the running ones in
//!    reverse start order; containers under `kopi-docka.policy=dump` or `skip` keep running
//!    ([`crate::unit::policy`]);
//! 4. **dumps**: with every other service stopped, the now idle databases are dumped through
//!    the engine's exec API into the same restore point ([`super::dump`]); a failed dump skips
//!    the cold pass and leaves the point incomplete. Then the **cold pass**: snapshot again;
//!    the warm snapshot is the parent, so only changed files are read;
//! 5. start exactly the containers we stopped, in start order, and wait for their health;
//! 6. only when every planned part (recipe, networks, each volume, bind and dump) was saved by a
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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::HookPoint;
use crate::docker::Engine;
use crate::fs_snapshot::{self, ColdPassKind, ColdPassMode, Frozen, FsSupport, SnapshotJournal};
use crate::hooks::HookContext;
use crate::lock::journal::Journal;
use crate::repo::{
    BackupId, Cancel, Part, Pass, RepoError, Scope, SnapshotMeta, UnitRef, WriteRepo,
};
use crate::stop::StoppedUnit;
use crate::unit::{ContainerState, Coverage, Policy, Unit, UnitKind};

use super::report::{SnapshotRecord, UnitReport, UnitStatus};
use super::{BackupSettings, Interrupt, new_backup_id, recipe};

/// Backs up one unit. Never returns with a container of ours left stopped, unless the engine
/// refuses to start it (then the journal keeps it for the next run, and the report says so).
pub async fn backup_unit(
    engine: &Engine,
    repo: &WriteRepo,
    journals: (&Journal, &SnapshotJournal),
    unit: &Unit,
    settings: &BackupSettings,
    interrupt: &Interrupt,
) -> UnitReport {
    let started = Instant::now();
    let mut report = match settings.command_job(unit) {
        // The unit's own tool backs it up: kopi-docka only stops and starts it around the job.
        Some(job) => {
            let backup_id = new_backup_id();
            let mut report = empty_report(unit, &backup_id);
            super::command_job::backup_unit(
                engine,
                journals.0,
                unit,
                settings,
                job,
                &backup_id,
                interrupt,
                &mut report,
            )
            .await;
            report
        }
        None => backup_unit_timed(engine, repo, journals, unit, settings, interrupt).await,
    };
    report.duration_seconds = started.elapsed().as_secs_f64();
    report
}

/// The report of a unit before anything was done to it.
fn empty_report(unit: &Unit, backup_id: &BackupId) -> UnitReport {
    UnitReport {
        name: unit.name.to_string(),
        kind: unit.kind,
        backup_id: backup_id.clone(),
        status: UnitStatus::Success,
        downtime_seconds: None,
        cold_pass: None,
        snapshots: Vec::new(),
        complete: false,
        bytes_added: 0,
        errors: Vec::new(),
        warnings: gap_warnings(&unit.coverage),
        killed: Vec::new(),
        coverage: unit.coverage.summary,
        interrupted: false,
        dump_failed: false,
        duration_seconds: 0.0,
        engine: super::command_job::UnitEngine::Embedded,
        job: None,
    }
}

async fn backup_unit_timed(
    engine: &Engine,
    repo: &WriteRepo,
    journals: (&Journal, &SnapshotJournal),
    unit: &Unit,
    settings: &BackupSettings,
    interrupt: &Interrupt,
) -> UnitReport {
    let backup_id = new_backup_id();
    let mut report = empty_report(unit, &backup_id);
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

    let mut sources = data_sources(unit);
    let running: Vec<&crate::unit::Container> = unit
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .collect();

    // A unit refused for its name is never touched (`unit::names`), nor one whose mounts
    // cannot have the cold pass the configuration demands.
    let stops = running.iter().any(|c| c.policy.stops());
    let cold = match &unit.refused {
        Some(why) => Err(format!("not backed up: {why}")),
        None => plan_cold_pass(settings, &sources, stops).await,
    };
    let pre_backup = match cold {
        Err(error) => Err(error),
        Ok((kind, warning)) => {
            report.cold_pass = Some(kind);
            report.warnings.extend(warning);
            point_hooks((engine, settings, unit, &backup_id), HookPoint::PreBackup).await
        }
    };
    let cold = report.cold_pass.unwrap_or(ColdPassKind::Read);
    if let Err(error) = pre_backup {
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

    // 2. Warm pass (only useful when something will be stopped and read while stopped: a
    //    snapshot cold pass takes the same milliseconds whatever changed).
    if settings.warm_pass && !running.is_empty() && cold == ColdPassKind::Read {
        warm_pass(repo, &mut sources, &meta, interrupt, &mut report).await;
        tracing::info!(unit = %unit.name, "warm pass done");
    }

    report.interrupted = *interrupt.borrow();
    let abort = if report.interrupted {
        Some("interrupted before the unit was stopped".to_owned())
    } else {
        let pre_stop = point_hooks((engine, settings, unit, &backup_id), HookPoint::PreStop);
        pre_stop
            .await
            .err()
            .map(|e| format!("{e}; the unit was not stopped"))
    };
    if let Some(error) = abort {
        report.errors.push(error);
        report.status = UnitStatus::Failed;
        forget_warm(repo, &sources, &mut report).await;
        count_bytes(&sources, &mut report);
        return report;
    }

    // 3-5. Stop, cold pass, restart.
    let (cold_failed, taken, verify_failed) = stop_snapshot_restart(
        engine,
        repo,
        journals,
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
    crate::failpoint::hold("hold-before-marker", unit.name.as_str()).await;
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

    let (ctx, flags) = ((engine, settings), (cold_failed, verify_failed));
    finish(ctx, unit, &backup_id, flags, taken, &mut report).await;
    report
}

/// Writes the point's marker when every planned part (recipe and networks unless the scope is
/// minimal, each source) was saved; the report says whether the point is complete.
async fn commit_point(
    repo: &WriteRepo,
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
    let planned = sources.len() + recipe + unit.dumped().count();
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
    repo: &WriteRepo,
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
            let exclude = source.exclude.clone();
            async move {
                repo.snapshot_cancellable(path, warm_meta, exclude, cancel)
                    .await
            }
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
    repo: &WriteRepo,
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
            .map(SnapshotRecord::from)
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
    (engine, settings): (&Engine, &BackupSettings),
    unit: &Unit,
    backup_id: &BackupId,
    (cold_failed, verify_failed): (bool, bool),
    taken: usize,
    report: &mut UnitReport,
) {
    report.status = if !cold_failed && report.errors.is_empty() {
        UnitStatus::Success
    } else if taken > 0 && !report.dump_failed && !verify_failed {
        UnitStatus::Partial
    } else {
        UnitStatus::Failed
    };
    post_backup(engine, settings, unit, backup_id, report).await;
}

/// The post-backup hook, with the unit's status; its failure makes a success partial (the
/// point is kept). Both engines end a unit with it.
pub(super) async fn post_backup(
    engine: &Engine,
    settings: &BackupSettings,
    unit: &Unit,
    backup_id: &BackupId,
    report: &mut UnitReport,
) {
    let status = report.status.as_str();
    if let Err(error) = hooks(
        engine,
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
/// Returns whether the cold pass failed, how many snapshots it took, and whether the verify
/// hook failed.
#[allow(
    clippy::too_many_arguments,
    reason = "the whole state of one unit's backup"
)]
async fn stop_snapshot_restart(
    engine: &Engine,
    repo: &WriteRepo,
    (journal, snapshots): (&Journal, &SnapshotJournal),
    unit: &Unit,
    settings: &BackupSettings,
    backup_id: &BackupId,
    sources: &[Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    interrupt: &Interrupt,
    report: &mut UnitReport,
) -> (bool, usize, bool) {
    let how = settings.unit_stop(unit.name.as_str());
    let stopped = match StoppedUnit::stop(engine, journal, unit, &how).await {
        Ok(stopped) => stopped,
        Err((stopped, error)) => {
            report.errors.push(error);
            let restart = stopped
                .restart(engine, journal, settings.health_timeout)
                .await;
            report.errors.extend(restart.errors);
            report.killed.extend(restart.killed);
            return (true, 0, false);
        }
    };
    let mut hook_errors = Vec::new();
    // The downtime budget runs from the stop: dumps spend it, the cold pass gets the rest.
    let down_since = Instant::now();
    let deadline = tokio::time::Instant::from_std(down_since + settings.max_downtime);
    let limits = || super::dump::DumpLimits {
        deadline: Some(deadline),
        interrupt: interrupt.clone(),
    };
    // Frozen copies (snapshot cold pass), read once the unit runs again.
    let mut frozen: Vec<(Source, Frozen)> = Vec::new();
    let (mut records, mut errors, mut interrupted) =
        match point_hooks((engine, settings, unit, backup_id), HookPoint::PostStop).await {
            Ok(()) => match dump_all(engine, repo, unit, meta, limits).await {
                (dumps, errors) if !errors.is_empty() => {
                    report.dump_failed = true;
                    let mut errors = errors;
                    errors.push(
                        "the cold pass was skipped: without its dump the point cannot be \
                         complete"
                            .into(),
                    );
                    (dumps, errors, false)
                }
                (dumps, _) => {
                    let left = BackupSettings {
                        max_downtime: settings.max_downtime.saturating_sub(down_since.elapsed()),
                        ..settings.clone()
                    };
                    let (mut records, errors, interrupted, done) = freeze_or_read(
                        repo,
                        (unit, backup_id),
                        snapshots,
                        sources,
                        (&left, meta),
                        interrupt,
                        report,
                    )
                    .await;
                    frozen = done;
                    records.splice(0..0, dumps);
                    (records, errors, interrupted)
                }
            },
            Err(error) => (
                Vec::new(),
                vec![format!("{error}; the cold pass was skipped")],
                false,
            ),
        };
    if let Err(error) = point_hooks((engine, settings, unit, backup_id), HookPoint::PreStart).await
    {
        hook_errors.push(format!("{error}; the unit is started anyway"));
    }
    let restart = stopped
        .restart(engine, journal, settings.health_timeout)
        .await;
    let verify_failed = restart.errors.is_empty()
        && after_start((engine, settings, unit, backup_id), &mut hook_errors).await;
    report.downtime_seconds = restart.downtime.map(|d| d.as_secs_f64());
    if report.cold_pass == Some(ColdPassKind::SnapshotLive) {
        // Never stopped.
        report.downtime_seconds = Some(0.0);
    }
    if !frozen.is_empty() {
        let (more, failed, cut) =
            read_frozen(repo, snapshots, frozen, meta, interrupt, report).await;
        records.extend(more);
        errors.extend(failed);
        interrupted |= cut;
    }
    report.interrupted = interrupted;
    let cold_failed = !errors.is_empty();
    report.errors.extend(errors);
    report.errors.extend(restart.errors);
    report.errors.extend(hook_errors);
    report.warnings.extend(restart.warnings);
    report.killed.extend(restart.killed);
    let taken = records.len();
    report.snapshots.extend(records);
    (cold_failed, taken, verify_failed)
}

/// Dumps every `dump` service of the unit (they run; the others are stopped by now). Returns
/// the saved dumps and one error per failed one.
async fn dump_all(
    engine: &Engine,
    repo: &WriteRepo,
    unit: &Unit,
    meta: &impl Fn(Part) -> SnapshotMeta,
    limits: impl Fn() -> super::dump::DumpLimits,
) -> (Vec<SnapshotRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for (container, spec) in unit.dumped() {
        if container.state != ContainerState::Running {
            errors.push(format!(
                "{} dump of {}: the container is not running, so its database cannot be \
                 dumped; start it, or set kopi-docka.policy=stop to copy its files instead",
                spec.engine, container.name
            ));
            continue;
        }
        let part = Part::Dump {
            container: container.name.clone(),
            engine: spec.engine,
        };
        match super::dump::dump(
            engine,
            repo,
            (&container.id, &container.name),
            spec,
            meta(part),
            limits(),
        )
        .await
        {
            Ok(info) => records.push(SnapshotRecord::from(info)),
            Err(error) => errors.push(error.to_string()),
        }
    }
    (records, errors)
}

/// Stages and snapshots the recipe and networks; errors go into the report.
async fn recipe_step(
    engine: &Engine,
    repo: &WriteRepo,
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

/// Post-start, then verify, once the unit runs again; their errors go to `hook_errors`.
/// Returns whether verify failed.
pub(super) async fn after_start(
    ctx: (&Engine, &BackupSettings, &Unit, &BackupId),
    hook_errors: &mut Vec<String>,
) -> bool {
    let mut verify_failed = false;
    if let Err(error) = point_hooks(ctx, HookPoint::PostStart).await {
        hook_errors.push(error);
    }
    // The unit is back: does it work? Its point (taken while it was stopped) stands; the
    // unit's backup is failed, so the run and its notification say so.
    if let Err(error) = point_hooks(ctx, HookPoint::Verify).await {
        verify_failed = true;
        hook_errors.push(format!(
            "{error}; the unit runs again and its restore point was kept, but its backup \
                 counts as failed"
        ));
    }
    verify_failed
}

/// [`hooks`] without a status (every point but post-backup).
async fn point_hooks(
    (engine, settings, unit, backup_id): (&Engine, &BackupSettings, &Unit, &BackupId),
    point: HookPoint,
) -> Result<(), String> {
    hooks(engine, settings, unit, backup_id, point, None).await
}

/// Runs the global, then the unit's hook for `point`. The first failure is returned.
pub(super) async fn hooks(
    engine: &Engine,
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
    let sets = std::iter::once(&settings.hooks).chain(
        settings
            .unit_table(unit.name.as_str())
            .map(|table| &table.hooks),
    );
    let in_unit = crate::hooks::InUnit { engine, unit };
    crate::hooks::run_point(sets, point, &context, settings.hook_timeout, Some(in_unit))
        .await
        .map_err(|e| e.to_string())
}

async fn forget_warm(repo: &WriteRepo, sources: &[Source], report: &mut UnitReport) {
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
        Part::Dump { container, engine } => format!("{engine} dump of {container}"),
    }
}

/// A volume or bind to back up.
#[derive(Clone)]
struct Source {
    part: Part,
    /// The host path to read.
    path: PathBuf,
    /// Its warm-pass snapshot, once taken: the cold pass's parent.
    warm: Option<String>,
    /// Bytes its warm-pass snapshot stored.
    warm_bytes: u64,
    /// What its filesystem allows.
    filesystem: Option<FsSupport>,
    /// Mounted by a running `snapshot-live` service: frozen together with that service's
    /// other mounts by one snapshot while it runs, never read live.
    live: bool,
    /// Exclude globs, relative to its root (also in a frozen copy).
    exclude: Vec<String>,
}

/// The cold pass of a unit with these sources: `snapshot_live` when every source belongs to
/// a running `snapshot-live` service, else what [`choose_cold_pass`] says for the others.
async fn plan_cold_pass(
    settings: &BackupSettings,
    sources: &[Source],
    stops: bool,
) -> Result<(ColdPassKind, Option<String>), String> {
    let live = check_live(sources).await?;
    let (kind, warning) = choose_cold_pass(settings, sources, stops).await?;
    // Nothing else to freeze or read: the unit is never stopped.
    if live && sources.iter().all(|s| s.live) {
        return Ok((ColdPassKind::SnapshotLive, warning));
    }
    Ok((kind, warning))
}

/// Whether the unit has mounts of running `snapshot-live` services, checked while it runs:
/// `Err` (the unit is not touched) when one snapshot cannot freeze them all at once.
async fn check_live(sources: &[Source]) -> Result<bool, String> {
    let paths: Vec<PathBuf> = sources
        .iter()
        .filter(|s| s.live)
        .map(|s| s.path.clone())
        .collect();
    if paths.is_empty() {
        return Ok(false);
    }
    tokio::task::spawn_blocking(move || fs_snapshot::common_subvolume(&paths))
        .await
        .unwrap_or_else(|panic| Err(format!("internal error: {panic}")))
        .map(|_| true)
        .map_err(|why| {
            format!(
                "kopi-docka.policy=snapshot-live needs one atomic btrfs snapshot of all the \
                 service's mounts, but {why}; put them on one btrfs subvolume, or use \
                 kopi-docka.policy=stop"
            )
        })
}

/// The cold pass this unit gets, and a warning when `auto` fell back to reading. `Err` when
/// `[backup] cold-pass = "snapshot"` cannot be honoured (the unit is not touched).
async fn choose_cold_pass(
    settings: &BackupSettings,
    sources: &[Source],
    stops: bool,
) -> Result<(ColdPassKind, Option<String>), String> {
    // Nothing stopped, nothing to freeze: the data is read as it is.
    if !stops {
        return Ok((ColdPassKind::Read, None));
    }
    let kind = fs_snapshot::decide(
        settings.cold_pass,
        sources
            .iter()
            .filter(|s| !s.live)
            .map(|s| (describe(&s.part), s.filesystem.as_ref())),
    )?;
    if kind == ColdPassKind::Read {
        return Ok((kind, None));
    }
    // A btrfs snapshot holds a nested subvolume or mount as an empty directory: such a mount
    // is read instead (looked for now, while the unit still runs).
    let btrfs: Vec<(String, PathBuf)> = sources
        .iter()
        .filter(|s| {
            !s.live
                && s.filesystem.as_ref().and_then(|f| f.method)
                    == Some(fs_snapshot::Method::BtrfsSnapshot)
        })
        .map(|s| (describe(&s.part), s.path.clone()))
        .collect();
    let nested = tokio::task::spawn_blocking(move || {
        btrfs.into_iter().find_map(|(name, path)| match fs_snapshot::nested_mount(&path) {
            Ok(None) => None,
            Ok(Some(inner)) => Some(format!(
                "{name} holds {}, another subvolume or mount, which a snapshot would leave empty",
                inner.display()
            )),
            Err(error) => Some(format!("{name}: cannot look for nested mounts: {error}")),
        })
    })
    .await
    .unwrap_or_else(|panic| Some(format!("internal error: {panic}")));
    match (nested, settings.cold_pass) {
        (None, _) => Ok((kind, None)),
        (Some(why), ColdPassMode::Snapshot) => Err(format!(
            "[backup] cold-pass = \"snapshot\", but {why}; set cold-pass = \"auto\" to read it \
             while the unit is stopped"
        )),
        (Some(why), _) => Ok((
            ColdPassKind::Read,
            Some(format!("cold pass reads instead of snapshotting: {why}")),
        )),
    }
}

/// The cold pass while the unit is stopped: under the snapshot cold pass every mount that can
/// is frozen (and read later, once the unit runs again); a mount that could not be frozen is
/// read now, within what is left of the downtime budget.
async fn freeze_or_read(
    repo: &WriteRepo,
    (unit, backup_id): (&Unit, &BackupId),
    snapshots: &SnapshotJournal,
    sources: &[Source],
    (settings, meta): (&BackupSettings, &impl Fn(Part) -> SnapshotMeta),
    interrupt: &Interrupt,
    report: &mut UnitReport,
) -> (
    Vec<SnapshotRecord>,
    Vec<String>,
    bool,
    Vec<(Source, Frozen)>,
) {
    let freezing = Instant::now();
    let (live, sources): (Vec<Source>, Vec<Source>) = sources.iter().cloned().partition(|s| s.live);
    let mut frozen = Vec::new();
    let mut live_error = None;
    if !live.is_empty() {
        match freeze_live(snapshots, (unit, backup_id), &live).await {
            Ok(done) => frozen = done,
            Err(error) => live_error = Some(error),
        }
    }
    let read_now = match report.cold_pass {
        Some(ColdPassKind::Snapshot) if !sources.is_empty() => {
            let (done, failed) = freeze_all(
                snapshots,
                (unit, backup_id),
                &sources,
                settings.max_downtime,
                interrupt,
            )
            .await;
            if done.is_empty() {
                report.cold_pass = Some(ColdPassKind::Read);
            }
            frozen.extend(done);
            for (source, error) in &failed {
                report.warnings.push(format!(
                    "{}: no snapshot ({error}); read while the unit was stopped",
                    describe(&source.part)
                ));
            }
            failed.into_iter().map(|(s, _)| s).collect()
        }
        _ => sources,
    };
    let budget = settings.max_downtime.saturating_sub(freezing.elapsed());
    let (records, mut errors, interrupted) =
        cold_pass(repo, &read_now, meta, Some(budget), interrupt.clone()).await;
    errors.extend(live_error);
    (records, errors, interrupted, frozen)
}

/// The snapshot cold pass: the frozen copies (the data as it was at the stop) read while the
/// unit runs again, then removed (what cannot be removed is a warning in `report`).
async fn read_frozen(
    repo: &WriteRepo,
    snapshots: &SnapshotJournal,
    frozen: Vec<(Source, Frozen)>,
    meta: &impl Fn(Part) -> SnapshotMeta,
    interrupt: &Interrupt,
    report: &mut UnitReport,
) -> (Vec<SnapshotRecord>, Vec<String>, bool) {
    let from_snapshots: Vec<Source> = frozen
        .iter()
        .map(|(source, copy)| Source {
            path: copy.data.clone(),
            ..source.clone()
        })
        .collect();
    let read = cold_pass(repo, &from_snapshots, meta, None, interrupt.clone()).await;
    report.warnings.extend(thaw_all(snapshots, frozen).await);
    read
}

/// Freezes the mounts of the running `snapshot-live` services with one atomic snapshot of
/// their common subvolume. Never read live: without the snapshot they are not backed up.
async fn freeze_live(
    journal: &SnapshotJournal,
    (unit, backup_id): (&Unit, &BackupId),
    live: &[Source],
) -> Result<Vec<(Source, Frozen)>, String> {
    let started = Instant::now();
    let (journal, paths) = (
        journal.clone(),
        live.iter().map(|s| s.path.clone()).collect::<Vec<_>>(),
    );
    let (unit_name, name) = (unit.name.to_string(), format!("{backup_id}-live"));
    let (entry, data) = tokio::task::spawn_blocking(move || {
        fs_snapshot::freeze_together(&journal, &paths, &unit_name, &name)
    })
    .await
    .unwrap_or_else(|panic| Err(format!("internal error: {panic}")))
    .map_err(|error| format!("snapshot-live: no snapshot ({error}); its mounts were not read"))?;
    tracing::info!(
        unit = %unit.name,
        snapshot = %entry.path.display(),
        seconds = started.elapsed().as_secs_f64(),
        "live snapshot taken"
    );
    Ok(live
        .iter()
        .zip(data)
        .map(|(source, data)| {
            (
                source.clone(),
                Frozen {
                    entry: entry.clone(),
                    data,
                },
            )
        })
        .collect())
}

/// Freezes every source (the unit is stopped). Returns the frozen copies and the sources that
/// could not be frozen, with why. An interrupt or the end of the downtime `budget` stops
/// freezing: the rest is "not frozen" (and the read of it then fails at once).
async fn freeze_all(
    journal: &SnapshotJournal,
    (unit, backup_id): (&Unit, &BackupId),
    sources: &[Source],
    budget: Duration,
    interrupt: &Interrupt,
) -> (Vec<(Source, Frozen)>, Vec<(Source, String)>) {
    let started = Instant::now();
    let mut frozen = Vec::new();
    let mut failed = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let Some(method) = source.filesystem.as_ref().and_then(|f| f.method) else {
            failed.push((source.clone(), "its filesystem cannot snapshot".to_owned()));
            continue;
        };
        if *interrupt.borrow() {
            failed.push((source.clone(), "interrupted".to_owned()));
            continue;
        }
        if started.elapsed() >= budget {
            failed.push((
                source.clone(),
                "max-downtime-seconds reached while freezing".to_owned(),
            ));
            continue;
        }
        let (journal, path) = (journal.clone(), source.path.clone());
        let (unit_name, name) = (unit.name.to_string(), format!("{backup_id}-{index}"));
        let made = tokio::task::spawn_blocking(move || {
            fs_snapshot::freeze(&journal, &path, method, &unit_name, &name)
        })
        .await
        .unwrap_or_else(|panic| Err(format!("internal error: {panic}")));
        match made {
            Ok(copy) => {
                tracing::info!(part = %describe(&source.part), snapshot = %copy.entry.path.display(), "frozen");
                frozen.push((source.clone(), copy));
            }
            Err(error) => failed.push((source.clone(), error)),
        }
    }
    tracing::info!(
        unit = %unit.name,
        seconds = started.elapsed().as_secs_f64(),
        frozen = frozen.len(),
        "snapshots taken"
    );
    (frozen, failed)
}

/// Removes the frozen copies; returns a warning for each that stays (the journal keeps it for
/// the next run).
async fn thaw_all(journal: &SnapshotJournal, frozen: Vec<(Source, Frozen)>) -> Vec<String> {
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || {
        // Mounts frozen together share one snapshot: removed once.
        let mut seen = std::collections::BTreeSet::new();
        frozen
            .into_iter()
            .filter(|(_, copy)| seen.insert(copy.entry.path.clone()))
            .filter_map(|(_, copy)| {
                fs_snapshot::thaw(&journal, &copy.entry).err().map(|error| {
                    format!(
                        "snapshot {} was not removed ({error}); the next run tries again",
                        copy.entry.path.display()
                    )
                })
            })
            .collect()
    })
    .await
    .unwrap_or_else(|panic| vec![format!("removing the snapshots: internal error: {panic}")])
}

/// Volumes and binds that are backed up.
fn data_sources(unit: &Unit) -> Vec<Source> {
    let live_users: Vec<&str> = unit
        .containers
        .iter()
        .filter(|c| c.state == ContainerState::Running && c.policy == Policy::SnapshotLive)
        .map(|c| c.name.as_str())
        .collect();
    let live = |used_by: &[String]| used_by.iter().any(|u| live_users.contains(&u.as_str()));
    let volumes = unit
        .volumes
        .iter()
        .filter(|v| v.verdict.is_backed_up())
        .filter_map(|v| {
            v.data_path().map(|m| {
                (
                    Part::Volume {
                        volume: v.name.clone(),
                    },
                    m.to_path_buf(),
                    v.filesystem.clone(),
                    live(&v.used_by),
                    v.exclude.clone(),
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
                b.filesystem.clone(),
                live(&b.used_by),
                b.exclude.clone(),
            )
        });
    volumes
        .chain(binds)
        .map(|(part, path, filesystem, live, exclude)| Source {
            part,
            path,
            warm: None,
            warm_bytes: 0,
            filesystem,
            live,
            exclude,
        })
        .collect()
}

async fn stage_and_snapshot(
    engine: &Engine,
    repo: &WriteRepo,
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
        records.push(SnapshotRecord::from(info));
    }
    Ok(records)
}

/// The cold pass, bounded by the downtime budget (none when it reads frozen copies while the
/// unit runs) and the interrupt. Returns the snapshots taken, the errors, and whether it was
/// interrupted.
async fn cold_pass(
    repo: &WriteRepo,
    sources: &[Source],
    meta: &impl Fn(Part) -> SnapshotMeta,
    budget: Option<Duration>,
    mut interrupt: Interrupt,
) -> (Vec<SnapshotRecord>, Vec<String>, bool) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let deadline = budget.map(|b| tokio::time::Instant::now() + b);
    let over_budget = || async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    for Source {
        part,
        path,
        warm,
        exclude,
        ..
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
            let exclude = exclude.clone();
            async move {
                repo.snapshot_while_stopped(path, meta, (parent, exclude), cancel)
                    .await
            }
        });
        let abandoned = tokio::select! {
            joined = &mut snapshot => {
                match joined {
                    Ok(Ok(info)) => records.push(SnapshotRecord::from(info)),
                    Ok(Err(error)) => errors.push(format!("{}: {error}", describe(part))),
                    Err(panic) => errors.push(format!("{}: internal error: {panic}", describe(part))),
                }
                None
            }
            () = over_budget() => Some((format!(
                "cold pass exceeded max-downtime-seconds ({}s) at {}; the unit was restarted \
                 without a complete backup",
                budget.unwrap_or_default().as_secs(), describe(part)
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
                Ok(Ok(Ok(info))) => records.push(SnapshotRecord::from(info)),
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
