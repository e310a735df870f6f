//! [`execute`]: carrying out a [`RestorePlan`](super::RestorePlan), with rollback.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::networks::NetworkOutcome;
use super::swaps::{self, RollbackCopy, SwapJournal};
use super::{data, networks, nofollow, recipe, start};
use crate::config::HookPoint;
use crate::hooks::HookContext;
use crate::stop::{KilledContainer, StoppedUnit};
use crate::unit::{ContainerState, UnitKind};

use super::plan::{DataKind, DataPlan, RestorePlan, StartPlan, belongs_to, local_mountpoint};
use super::{RestoreContext, RestoreError};

/// A volume or bind as restored.
#[derive(Debug, Clone, Serialize)]
pub struct DataOutcome {
    /// Volume name or bind source.
    pub name: String,
    /// Volume or bind.
    pub kind: DataKind,
    /// The swap.
    #[serde(flatten)]
    pub swapped: data::Swapped,
}

/// What a restore did.
#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    /// Host the point came from.
    pub host: String,
    /// Unit.
    pub unit: String,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// The point.
    pub backup_id: String,
    /// Files placed, with the backup of what they replaced.
    pub files: Vec<(PathBuf, Option<PathBuf>)>,
    /// Networks.
    pub networks: Vec<NetworkOutcome>,
    /// Volumes and binds.
    pub data: Vec<DataOutcome>,
    /// Containers started.
    pub started: Vec<String>,
    /// Database dumps loaded (container names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dumps_loaded: Vec<String>,
    /// Containers left stopped.
    pub left_stopped: Vec<String>,
    /// Every restored part was put back to its previous content.
    pub rolled_back: bool,
    /// SIGINT/SIGTERM.
    pub interrupted: bool,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// Containers the engine had to kill when the restore stopped them (each cost its whole
    /// stop timeout); [`KilledContainer::hint`] says what to change.
    pub killed: Vec<KilledContainer>,
    /// What failed.
    pub errors: Vec<String>,
    /// Wall time.
    pub duration_seconds: f64,
}

impl RestoreOutcome {
    /// True when everything asked for was done.
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && !self.interrupted
    }
}

/// Carries out `plan`. Returns an outcome in every case but a failing pre-restore hook.
pub async fn execute(
    ctx: &RestoreContext<'_>,
    plan: RestorePlan,
) -> Result<RestoreOutcome, RestoreError> {
    let started_at = Instant::now();
    if !plan.trusted() {
        return Err(RestoreError::Untrusted {
            unit: plan.point.unit.clone(),
            items: plan.needs_trust.clone(),
        });
    }
    let point = &plan.point;
    let kind = point.kind.to_string();
    let hook_ctx = HookContext {
        unit: &point.unit,
        kind: &kind,
        backup_id: point.backup_id.as_str(),
        status: None,
    };
    run_hooks(ctx, HookPoint::PreRestore, &hook_ctx)
        .await
        .map_err(RestoreError::Hook)?;
    let mut outcome = RestoreOutcome {
        host: point.host.clone(),
        unit: point.unit.clone(),
        kind: point.kind,
        backup_id: point.backup_id.to_string(),
        files: Vec::new(),
        networks: Vec::new(),
        data: Vec::new(),
        started: Vec::new(),
        dumps_loaded: Vec::new(),
        left_stopped: Vec::new(),
        rolled_back: false,
        interrupted: false,
        warnings: plan.warnings.clone(),
        killed: Vec::new(),
        errors: Vec::new(),
        duration_seconds: 0.0,
    };
    if let Err(error) = restore_definitions(ctx, &plan, &mut outcome).await {
        outcome.errors.push(error.to_string());
    } else {
        restore_data_and_start(ctx, &plan, &mut outcome).await;
    }
    let status = if outcome.ok() { "success" } else { "failed" };
    let hook_ctx = HookContext {
        status: Some(status),
        ..hook_ctx
    };
    if let Err(error) = run_hooks(ctx, HookPoint::PostRestore, &hook_ctx).await {
        outcome.warnings.push(error);
    }
    outcome.duration_seconds = started_at.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Compose and env files, then networks.
async fn restore_definitions(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    outcome: &mut RestoreOutcome,
) -> Result<(), RestoreError> {
    let stamp = &plan.internal.stamp;
    for (from, (to, _)) in plan.internal.file_sources.iter().zip(&plan.files) {
        let backup = recipe::place_file(from, to, stamp)?;
        outcome.files.push((to.clone(), backup));
    }
    // Before anything is stopped: a unit whose file was missing is loaded again, so it can be
    // stopped and started through its manager.
    let written =
        super::units::put_back(&plan.internal.unit_sources, &plan.unit_files, stamp).await?;
    outcome.files.extend(written);
    outcome.networks = networks::restore(
        ctx.engine,
        &plan.internal.network_docs,
        plan.internal.recreate_networks,
    )
    .await?;
    for network in &outcome.networks {
        if let networks::NetworkAction::Differs { differences } = &network.action {
            outcome.warnings.push(format!(
                "network {} exists with another configuration ({}); kept. Recreate it with \
                 --recreate-networks once nothing is attached to it",
                network.name,
                differences.join("; ")
            ));
        }
    }
    Ok(())
}

/// Stops users of the data, restores every volume and bind (all or none), starts the unit.
async fn restore_data_and_start(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    outcome: &mut RestoreOutcome,
) {
    let stopped = match StoppedUnit::stop_containers(
        ctx.engine,
        ctx.journal,
        plan.internal.stop.clone(),
        ctx.stop_timeout,
    )
    .await
    {
        Ok(stopped) => stopped,
        Err((stopped, error)) => {
            outcome
                .errors
                .push(format!("{error}; nothing was restored"));
            let report = stopped
                .restart(ctx.engine, ctx.journal, ctx.health_timeout)
                .await;
            outcome.errors.extend(report.errors);
            outcome.killed = report.killed;
            return;
        }
    };
    // Whatever happens next (restart, compose up, left stopped), these were killed.
    outcome.killed = stopped.killed().to_vec();
    let mut journal = SwapJournal::new(
        &ctx.state_dir,
        &plan.point.unit,
        plan.point.backup_id.as_str(),
    );
    let mut swapped: Vec<DataOutcome> = Vec::new();
    let mut failure = None;
    for item in &plan.data {
        if *ctx.interrupt.borrow() {
            failure = Some(RestoreError::Interrupted);
            break;
        }
        match restore_item(ctx, plan, item, &mut journal).await {
            Ok(done) => swapped.push(done),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if let Some(error) = failure {
        outcome.interrupted = matches!(error, RestoreError::Interrupted);
        outcome.errors.push(format!("restore failed: {error}"));
        roll_back(journal, &swapped, outcome);
        if outcome.interrupted {
            outcome.left_stopped = stopped.leave_stopped(ctx.journal);
        } else {
            let report = stopped
                .restart(ctx.engine, ctx.journal, ctx.health_timeout)
                .await;
            outcome.errors.extend(report.errors);
            outcome.warnings.extend(report.warnings);
        }
        return;
    }
    if let Err(error) = keep_rollback_copies(ctx, plan, &swapped, journal) {
        // Every target is swapped: the unit is at the restored point. The list of copies or
        // the journal's removal failed; the copies themselves are in place.
        outcome.warnings.push(error.to_string());
    }
    outcome.data = swapped;
    start_unit(ctx, plan, stopped, outcome).await;
}

/// Lists the rollback copies for `admin rollback-copies`, removes the private directories of
/// targets that had no content, then the journal: the restore is complete.
fn keep_rollback_copies(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    swapped: &[DataOutcome],
    journal: SwapJournal,
) -> Result<(), RestoreError> {
    let now = jiff::Timestamp::now();
    let mut copies = Vec::new();
    for done in swapped {
        match &done.swapped.rollback {
            Some(path) => copies.push(RollbackCopy {
                path: path.clone(),
                private: done.swapped.private.clone(),
                target: done.swapped.target.clone(),
                unit: plan.point.unit.clone(),
                backup_id: plan.point.backup_id.to_string(),
                created: now,
                bytes: None,
            }),
            None => swaps::remove_private(&done.swapped.private, true)?,
        }
    }
    swaps::register(&ctx.state_dir, copies)?;
    journal.finish()?;
    Ok(())
}

async fn restore_item(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    item: &DataPlan,
    journal: &mut SwapJournal,
) -> Result<DataOutcome, RestoreError> {
    let target = match (&item.target, item.kind) {
        (Some(t), _) => t.clone(),
        (None, _) => nofollow::resolve_trusted(&create_volume(ctx, plan, &item.name).await?)?,
    };
    tracing::info!(name = %item.name, target = %target.display(), "restoring");
    let staged = data::stage(ctx.repo, &item.snapshot, &target, journal, &ctx.interrupt).await?;
    let swapped = data::swap(staged, journal).await?;
    Ok(DataOutcome {
        name: item.name.clone(),
        kind: item.kind,
        swapped,
    })
}

/// Creates a volume as recorded (driver, options, labels); returns its mountpoint.
async fn create_volume(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    name: &str,
) -> Result<PathBuf, RestoreError> {
    let recorded = plan
        .internal
        .recipe
        .as_ref()
        .and_then(|r| r.volumes.get(name));
    let request = volume_request(name, recorded);
    ctx.engine.create_volume(request).await?;
    let doc = ctx
        .engine
        .inspect_volume_json(name)
        .await?
        .unwrap_or(Value::Null);
    local_mountpoint(name, &doc)
}

/// The create request for a volume from its recorded inspect document.
pub fn volume_request(
    name: &str,
    recorded: Option<&Value>,
) -> bollard::models::VolumeCreateRequest {
    let map = |key: &str| -> Option<std::collections::HashMap<String, String>> {
        recorded
            .and_then(|d| d.get(key))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    };
    bollard::models::VolumeCreateRequest {
        name: Some(name.to_owned()),
        driver: recorded
            .and_then(|d| d.get("Driver"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        driver_opts: map("Options"),
        labels: map("Labels"),
        cluster_volume_spec: None,
    }
}

fn roll_back(journal: SwapJournal, swapped: &[DataOutcome], outcome: &mut RestoreOutcome) {
    let errors = journal.roll_back();
    for done in swapped {
        tracing::warn!(name = %done.name, "rolled back to its previous content");
    }
    outcome.errors.extend(errors);
    outcome.rolled_back = true;
    outcome
        .warnings
        .push("every volume and bind restored so far was put back to its previous content".into());
}

async fn start_unit(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    stopped: StoppedUnit,
    outcome: &mut RestoreOutcome,
) {
    match &plan.start {
        StartPlan::None => outcome.left_stopped = stopped.leave_stopped(ctx.journal),
        StartPlan::RestartStopped => {
            let names = stopped.names();
            let report = stopped
                .restart(ctx.engine, ctx.journal, ctx.health_timeout)
                .await;
            outcome.started = names;
            outcome.errors.extend(report.errors);
            outcome.warnings.extend(report.warnings);
        }
        StartPlan::Compose {
            files, services, ..
        } => {
            let (Some(tool), Some(dir)) = (&plan.internal.compose_tool, &plan.project_dir) else {
                outcome.left_stopped = stopped.leave_stopped(ctx.journal);
                return;
            };
            if !plan.dumps.is_empty() {
                // The databases first, on their fresh volumes; loaded before anything that
                // writes to them runs.
                let databases: Vec<String> = plan
                    .dumps
                    .iter()
                    .filter_map(|d| d.service.clone())
                    .collect();
                if databases.len() != plan.dumps.len() {
                    outcome.errors.push(
                        "the recipe records no compose service for a dumped database; nothing \
                         was started (load the dump by hand: --target-dir)"
                            .into(),
                    );
                    outcome.left_stopped = stopped.leave_stopped(ctx.journal);
                    return;
                }
                let up = start::compose_up(
                    tool,
                    ctx.engine,
                    &plan.point.unit,
                    dir,
                    files,
                    &databases,
                    ctx.compose_timeout,
                )
                .await;
                if let Err(error) = up {
                    outcome.errors.push(error.to_string());
                    outcome.left_stopped = stopped.leave_stopped(ctx.journal);
                    return;
                }
                // A database that did not load: nothing that writes to it is started, and
                // what the restore stopped stays stopped (reported) until someone looks.
                if !Box::pin(load_dumps(ctx, plan, outcome)).await {
                    outcome.left_stopped = stopped.leave_stopped(ctx.journal);
                    return;
                }
            }
            // The stopped containers stay journaled while compose runs: a kopi-docka killed
            // meanwhile leaves them to the next run's recovery, not stopped for good.
            let up = start::compose_up(
                tool,
                ctx.engine,
                &plan.point.unit,
                dir,
                files,
                services,
                ctx.compose_timeout,
            )
            .await;
            match up {
                Ok(()) => {
                    outcome.left_stopped = stopped.leave_stopped(ctx.journal);
                    wait_for_unit(ctx, plan, outcome).await;
                }
                Err(error) => {
                    // Compose failed or hung and was killed: what the restore stopped runs
                    // again (on the restored data) rather than stay down.
                    outcome.errors.push(error.to_string());
                    let names = stopped.names();
                    let report = stopped
                        .restart(ctx.engine, ctx.journal, ctx.health_timeout)
                        .await;
                    if report.errors.is_empty() {
                        outcome.started = names;
                    }
                    outcome.errors.extend(report.errors);
                    outcome.warnings.extend(report.warnings);
                }
            }
        }
        StartPlan::Systemd { services } => {
            start_through_systemd(ctx, plan, services, stopped, outcome).await;
        }
        StartPlan::Recreate { containers } => {
            outcome.left_stopped = stopped.leave_stopped(ctx.journal);
            if let Err(error) = recreate(ctx, plan, containers, outcome).await {
                outcome.errors.push(error.to_string());
            } else {
                Box::pin(load_dumps(ctx, plan, outcome)).await;
            }
        }
    }
}

/// Starts the units that make the unit's gone containers ([`StartPlan::Systemd`]), then what
/// the restore stopped: other units' users of the same data, started again as always.
async fn start_through_systemd(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    services: &[crate::systemd::control::Service],
    stopped: StoppedUnit,
    outcome: &mut RestoreOutcome,
) {
    let errors = super::units::start(
        ctx.engine,
        services,
        ctx.health_timeout + std::time::Duration::from_mins(3),
    )
    .await;
    if errors.is_empty() {
        wait_for_unit(ctx, plan, outcome).await;
    }
    outcome.errors.extend(errors);
    let report = stopped
        .restart(ctx.engine, ctx.journal, ctx.health_timeout)
        .await;
    outcome.errors.extend(report.errors);
    outcome.warnings.extend(report.warnings);
}

/// Waits until each database accepts connections, then streams its dump in. Returns false
/// (errors in the outcome) when one failed: the services that write to it are not started.
async fn load_dumps(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    outcome: &mut RestoreOutcome,
) -> bool {
    for load in &plan.dumps {
        let id = match ctx.engine.state(&load.container).await {
            Ok(Some(_)) => load.container.clone(),
            Ok(None) => {
                outcome.errors.push(format!(
                    "{}: the database container was not created; its dump was not loaded",
                    load.container
                ));
                return false;
            }
            Err(error) => {
                outcome.errors.push(error.to_string());
                return false;
            }
        };
        let loaded = async {
            crate::backup::dump::wait_ready(
                ctx.engine,
                &id,
                &load.container,
                &load.spec,
                ctx.health_timeout,
            )
            .await?;
            tracing::info!(container = %load.container, engine = %load.spec.engine, "loading the dump");
            crate::backup::dump::load(
                ctx.engine,
                ctx.repo,
                &id,
                &load.container,
                &load.spec,
                &load.snapshot,
            )
            .await
        };
        match loaded.await {
            Ok(loaded) => {
                outcome.dumps_loaded.push(load.container.clone());
                if !loaded.expected.is_empty() {
                    tracing::info!(container = %load.container, expected = ?loaded.expected, "expected messages while loading the dump");
                }
                outcome.warnings.extend(
                    loaded
                        .notes
                        .iter()
                        .map(|n| format!("{} ({} dump): {n}", load.container, load.spec.engine)),
                );
                // An SQLite app ran on the empty file it created while the dump was loaded
                // under it: it starts again, so nothing it held in memory outlives the load.
                if load.spec.engine == crate::unit::DumpEngine::Sqlite
                    && let Err(error) = restart_after_load(ctx, &id, &load.container).await
                {
                    outcome.errors.push(error);
                    return false;
                }
            }
            Err(error) => {
                outcome.errors.push(format!(
                    "{error}; the services that use it were not started"
                ));
                return false;
            }
        }
    }
    true
}

/// Stops and starts a container whose database file was just replaced.
async fn restart_after_load(
    ctx: &RestoreContext<'_>,
    id: &str,
    container: &str,
) -> Result<(), String> {
    ctx.engine
        .stop(id, ctx.stop_timeout)
        .await
        .map_err(|e| format!("{container}: restarting it after the dump was loaded: {e}"))?;
    match crate::stop::start_and_wait(ctx.engine, id, container, ctx.health_timeout).await {
        Ok(None) => Ok(()),
        Ok(Some(warning)) | Err(warning) => Err(warning),
    }
}

async fn recreate(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    containers: &[String],
    outcome: &mut RestoreOutcome,
) -> Result<(), RestoreError> {
    let Some(recipe) = &plan.internal.recipe else {
        return Ok(());
    };
    for name in containers {
        let inspect = recipe.inspect(name)?;
        let recreation = start::recreation(
            &inspect,
            &plan.internal.env_values,
            &start::Rewrite::default(),
            None,
        )?;
        let id = start::create(ctx.engine, name, recreation).await?;
        let ran = recipe
            .manifest
            .unit
            .containers
            .iter()
            .any(|c| c.name == *name && c.state == ContainerState::Running);
        if !ran {
            outcome.warnings.push(format!(
                "{name} was not running at backup time: created, not started"
            ));
            continue;
        }
        match crate::stop::start_and_wait(ctx.engine, &id, name, ctx.health_timeout).await {
            Ok(warning) => {
                outcome.started.push(name.clone());
                outcome.warnings.extend(warning);
            }
            Err(error) => outcome.errors.push(error),
        }
    }
    Ok(())
}

/// After `compose up`: every container of the project running (and healthy when it has a
/// healthcheck), within the health timeout.
async fn wait_for_unit(ctx: &RestoreContext<'_>, plan: &RestorePlan, outcome: &mut RestoreOutcome) {
    let containers = match ctx.engine.inspect_all_containers().await {
        Ok(c) => c,
        Err(error) => {
            outcome.errors.push(error.to_string());
            return;
        }
    };
    for c in containers.iter().filter(|c| belongs_to(c, &plan.point)) {
        let (Some(id), Some(name)) = (&c.id, &c.name) else {
            continue;
        };
        let name = name.trim_start_matches('/');
        if !c.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            continue;
        }
        match crate::stop::start_and_wait(ctx.engine, id, name, ctx.health_timeout).await {
            Ok(warning) => {
                outcome.started.push(name.to_owned());
                outcome.warnings.extend(warning);
            }
            Err(error) => outcome.errors.push(error),
        }
    }
}

async fn run_hooks(
    ctx: &RestoreContext<'_>,
    point: HookPoint,
    hook_ctx: &HookContext<'_>,
) -> Result<(), String> {
    crate::hooks::run_point(&ctx.hooks, point, hook_ctx, ctx.hook_timeout, None)
        .await
        .map_err(|e| e.to_string())
}
