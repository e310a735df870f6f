//! [`prepare`]: what a restore will do, as data, before it does anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::points::RestorePoint;

use super::recipe::Recipe;
use super::start::ComposeTool;
use super::{data, networks, nofollow, recipe, start, trust};
use crate::repo::RestoreMode;
use crate::stop::{ContainerRef, StopTarget};
use crate::unit::{ContainerState, UnitKind};

use super::{Parts, RestoreContext, RestoreError, RestoreRequest};

/// A volume or bind to restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataPlan {
    /// Volume name or bind source as backed up.
    pub name: String,
    /// Volume or bind.
    pub kind: DataKind,
    /// Snapshot to restore.
    pub snapshot: String,
    /// Its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The live path (None for a volume that does not exist yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// Whether there is current content (kept as a rollback copy).
    pub exists: bool,
}

/// Volume or bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    /// Named volume.
    Volume,
    /// Bind mount source.
    Bind,
}

/// How the unit is brought up afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum StartPlan {
    /// Nothing is started (`--no-start`; the stopped containers stay stopped).
    None,
    /// The unit's containers exist: start the ones we stop.
    RestartStopped,
    /// `compose up -d` from the restored compose files.
    Compose {
        /// `docker compose` or `docker-compose`.
        tool: String,
        /// Compose files.
        files: Vec<PathBuf>,
        /// Services to start (those that ran at backup time).
        services: Vec<String>,
    },
    /// Containers recreated from their saved configuration.
    Recreate {
        /// Container names in start order.
        containers: Vec<String>,
    },
    /// The unit's containers are gone and systemd units make them: `systemctl [--user] start`
    /// (restart when active) of each, never a recreation through the engine.
    Systemd {
        /// The units, with the user whose manager runs each.
        services: Vec<crate::systemd::control::Service>,
    },
}

/// A database dump a restore loads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpLoad {
    /// The database container.
    pub container: String,
    /// Its compose service (stacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What was dumped.
    #[serde(flatten)]
    pub spec: crate::unit::DumpSpec,
    /// The dump's snapshot.
    pub snapshot: String,
}

/// A network as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkPlan {
    /// Name.
    pub name: String,
    /// How the engine's network compares with the recorded one.
    pub state: NetworkState,
    /// What differs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// A recorded network against the engine's network of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkState {
    /// The engine has no network of that name: it is created.
    Missing,
    /// The engine's network matches the recorded one.
    Same,
    /// It differs (recreated only with `--recreate-networks`).
    Differs,
}

impl std::fmt::Display for NetworkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing",
            Self::Same => "same",
            Self::Differs => "differs",
        })
    }
}

/// What a restore will do; shown before it does it.
#[derive(Debug, Serialize, Deserialize)]
// `NetworkPlan::state` is a `&'static str`: a plan is read only from static text (test fixtures).
pub struct RestorePlan {
    /// The point.
    pub point: RestorePoint,
    /// Where compose files go (stacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_dir: Option<PathBuf>,
    /// Files placed: destination and whether an existing different file is replaced (it is
    /// kept as `*.kopi-docka-<time>.bak`).
    pub files: Vec<(PathBuf, bool)>,
    /// The files of the systemd units that ran the containers, put back before anything is
    /// stopped (the manager is reloaded when one is written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unit_files: Vec<super::units::UnitFilePlan>,
    /// Networks.
    pub networks: Vec<NetworkPlan>,
    /// Volumes and binds.
    pub data: Vec<DataPlan>,
    /// Running containers that are stopped for the restore.
    pub stop: Vec<String>,
    /// Database dumps loaded into their fresh database before the rest of the unit starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dumps: Vec<DumpLoad>,
    /// Afterwards.
    pub start: StartPlan,
    /// Things to know.
    pub warnings: Vec<String>,
    /// What the recipe asks for beyond a plain restore (files outside the project directory,
    /// privileged containers, host namespaces, capabilities, devices, host-internal binds):
    /// the restore refuses unless [`RestorePlan::trust`] was called ([`super::trust`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs_trust: Vec<String>,
    #[serde(skip)]
    pub(super) internal: Internal,
}

impl RestorePlan {
    /// The user confirmed [`RestorePlan::needs_trust`] (on a terminal, or `--trust-recipe`).
    pub fn trust(&mut self) {
        self.internal.trusted = true;
    }

    /// Whether the restore may go ahead as far as trust goes.
    pub fn trusted(&self) -> bool {
        self.needs_trust.is_empty() || self.internal.trusted
    }
}

#[derive(Debug, Default)]
pub(super) struct Internal {
    pub(super) recipe: Option<Recipe>,
    pub(super) file_sources: Vec<PathBuf>,
    pub(super) unit_sources: Vec<super::units::UnitFileSource>,
    pub(super) network_docs: Vec<Value>,
    pub(super) stop: Vec<StopTarget>,
    pub(super) compose_tool: Option<ComposeTool>,
    pub(super) stamp: String,
    pub(super) recreate_networks: bool,
    pub(super) env_values: BTreeMap<String, String>,
    pub(super) trusted: bool,
}

/// The plan for `request` made again once the run lock is held, which is what gets executed:
/// refused with [`RestoreError::PlanChanged`] when it differs from `confirmed`, the plan the
/// user saw and confirmed before the lock (a restore waiting at a prompt never holds the lock).
/// The confirmed plan's trust carries over.
pub async fn prepare_confirmed(
    ctx: &RestoreContext<'_>,
    request: RestoreRequest,
    confirmed: RestorePlan,
) -> Result<RestorePlan, RestoreError> {
    let shown = serde_json::to_value(&confirmed).map_err(|e| RestoreError::Io {
        path: PathBuf::from("<restore plan>"),
        source: std::io::Error::other(e),
    })?;
    let trusted = confirmed.internal.trusted;
    // Dropped first: a plan removes its unpacked recipe, which the new one unpacks again.
    drop(confirmed);
    let mut plan = prepare(ctx, request).await?;
    if serde_json::to_value(&plan).ok().as_ref() != Some(&shown) {
        return Err(RestoreError::PlanChanged);
    }
    plan.internal.trusted = trusted;
    Ok(plan)
}

/// Reads the point's recipe and networks, looks at the engine, and says what a restore of
/// `request` will do. Changes nothing but the private working directory.
pub async fn prepare(
    ctx: &RestoreContext<'_>,
    request: RestoreRequest,
) -> Result<RestorePlan, RestoreError> {
    let point = &request.point;
    let stamp = crate::durable::stamp(jiff::Timestamp::now());
    let recipe = match &point.recipe {
        Some(snap) => Some(read_recipe(ctx, &snap.id, &stamp).await?),
        None => None,
    };
    let all_containers = ctx.engine.inspect_all_containers().await?;
    let unit_exists = all_containers.iter().any(|c| belongs_to(c, point));
    let mut warnings = Vec::new();
    if recipe.is_none() {
        let wants_recipe = request.parts.recipe && request.parts != Parts::ALL;
        if wants_recipe
            || request.parts.networks && request.parts != Parts::ALL
            || (request.start && !unit_exists)
        {
            return Err(RestoreError::NoRecipe {
                unit: point.unit.clone(),
                backup_id: point.backup_id.to_string(),
            });
        }
        warnings.push("this point has no recipe (scope minimal): only data is restored".into());
    }
    let project_dir = match (&recipe, point.kind) {
        (Some(r), UnitKind::Stack) => request
            .compose_dir
            .clone()
            .or_else(|| r.working_dir().map(Path::to_path_buf))
            .or_else(|| Some(ctx.work_dir.join("compose").join(&point.unit))),
        _ => None,
    };
    // The recorded project directory comes from the repository; --compose-dir from the user.
    if request.compose_dir.is_none()
        && let Some(dir) = &project_dir
        && let Some(why) = trust::refused_target(dir)
    {
        return Err(RestoreError::RefusedTarget {
            path: dir.clone(),
            why: format!(
                "{why} (the recipe's project directory; --compose-dir DIR puts it elsewhere)"
            ),
        });
    }
    let (file_sources, files) = plan_files(recipe.as_ref(), project_dir.as_deref(), request.parts)?;
    let mut needs_trust: Vec<String> = files
        .iter()
        .filter(|(to, _)| project_dir.as_deref().is_none_or(|d| !to.starts_with(d)))
        .map(|(to, _)| format!("a file outside the project directory: {}", to.display()))
        .collect();
    let (recorded_units, unit_sources, unit_files) =
        plan_unit_files(ctx, recipe.as_ref(), request.parts, &mut needs_trust)?;
    let (network_docs, networks) = plan_networks(ctx, point, request.parts, &stamp).await?;
    let data = plan_data(ctx, &request, recipe.as_ref(), project_dir.as_deref()).await?;
    let dumps = plan_dumps(&request, recipe.as_ref(), &all_containers, &mut warnings)?;
    let configured = ctx.systemd.as_ref();
    let stop = to_stop(&all_containers, &data, recipe.as_ref(), point, configured);
    let services = super::units::to_start(ctx.systemd.as_ref(), &recorded_units);
    let (start, compose_tool) = plan_start(
        &request,
        recipe.as_ref(),
        unit_exists,
        project_dir.as_deref(),
        services,
    )
    .await?;
    let from_recipe = !files.is_empty()
        || matches!(
            start,
            StartPlan::Compose { .. } | StartPlan::Recreate { .. }
        );
    if from_recipe && let Some(r) = &recipe {
        needs_trust.extend(privileges(r));
    }
    Ok(RestorePlan {
        needs_trust,
        point: request.point.clone(),
        project_dir,
        files,
        unit_files,
        networks,
        stop: stop.iter().map(|t| t.container.name.clone()).collect(),
        dumps,
        data,
        start,
        warnings,
        internal: Internal {
            recipe,
            file_sources,
            unit_sources,
            network_docs,
            stop,
            compose_tool,
            stamp,
            recreate_networks: request.recreate_networks,
            env_values: request.env_values,
            trusted: false,
        },
    })
}

type UnitFiles = (
    Vec<super::units::RecordedService>,
    Vec<super::units::UnitFileSource>,
    Vec<super::units::UnitFilePlan>,
);

/// The recipe's systemd units and their files against the host; each file that would be
/// written needs trust (its commands run as root or as the user).
fn plan_unit_files(
    ctx: &RestoreContext<'_>,
    recipe: Option<&Recipe>,
    parts: Parts,
    needs_trust: &mut Vec<String>,
) -> Result<UnitFiles, RestoreError> {
    let (Some(recipe), true) = (recipe, parts.recipe) else {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    };
    let recorded = super::units::recorded(recipe)?;
    let (sources, files) = super::units::plan(ctx.engine, &recorded, recipe)?;
    needs_trust.extend(
        files
            .iter()
            .filter(|f| f.action != super::units::UnitFileAction::Same)
            .map(|f| {
                format!(
                    "a systemd unit file (its commands run as {}): {}",
                    f.user.as_deref().unwrap_or("root"),
                    f.path.display()
                )
            }),
    );
    Ok((recorded, sources, files))
}

/// The dumps to load: with the volumes, into a database container that does not exist yet
/// (it is created on a fresh volume). One that exists keeps its data: refused, before
/// anything is touched.
fn plan_dumps(
    request: &RestoreRequest,
    recipe: Option<&Recipe>,
    all_containers: &[bollard::models::ContainerInspectResponse],
    warnings: &mut Vec<String>,
) -> Result<Vec<DumpLoad>, RestoreError> {
    let point = &request.point;
    if point.dumps.is_empty() || !request.parts.volumes || !request.volumes.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (container, dump) in &point.dumps {
        // --no-start loads nothing anyway: the warning below says where the file is.
        if let Some(how) = crate::backup::dump::restored_by_hand(dump.engine)
            && request.start
        {
            return Err(RestoreError::DumpRestoredByHand {
                backup_id: point.backup_id.to_string(),
                container: container.clone(),
                engine: dump.engine,
                how,
            });
        }
        let exists = all_containers
            .iter()
            .any(|c| c.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(container));
        if exists {
            return Err(RestoreError::DumpNeedsFreshDatabase {
                backup_id: point.backup_id.to_string(),
                container: container.clone(),
                engine: dump.engine,
            });
        }
        let recorded = recipe.and_then(|r| {
            r.manifest
                .unit
                .containers
                .iter()
                .find(|c| c.name == *container)
        });
        let spec = match recorded.and_then(|c| c.policy.dump()) {
            Some(spec) if spec.engine == dump.engine => spec.clone(),
            _ => crate::unit::DumpSpec {
                engine: dump.engine,
                database: None,
                path: None,
            },
        };
        if !request.start {
            warnings.push(format!(
                "the {} dump of {container} is not loaded (--no-start: no server runs to load it into); take it with --target-dir",
                dump.engine
            ));
            continue;
        }
        out.push(DumpLoad {
            container: container.clone(),
            service: recorded.and_then(|c| c.service.clone()),
            spec,
            snapshot: dump.snapshot.id.clone(),
        });
    }
    Ok(out)
}

/// What the recipe's compose files and saved container configurations ask of the host.
pub(super) fn privileges(recipe: &Recipe) -> Vec<String> {
    let mut out = Vec::new();
    let root = recipe.dir.join("compose");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
                continue;
            }
            let is_yaml = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
            let Some(doc) = is_yaml
                .then(|| std::fs::read(&path).ok())
                .flatten()
                .and_then(|text| serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(&text).ok())
            else {
                continue;
            };
            let name = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            out.extend(trust::compose_privileges(&name, &doc));
        }
    }
    for c in &recipe.manifest.unit.containers {
        if let Ok(inspect) = recipe.inspect(&c.name) {
            out.extend(trust::inspect_privileges(&c.name, &inspect));
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) async fn read_recipe(
    ctx: &RestoreContext<'_>,
    snapshot: &str,
    stamp: &str,
) -> Result<Recipe, RestoreError> {
    let dir = ctx.work_dir.join(format!("recipe-{stamp}"));
    data::remove_any(&dir)?;
    ctx.repo
        .restore(snapshot.to_owned(), dir.clone(), RestoreMode::EmptyOnly)
        .await
        .inspect_err(|_| remove_plaintext(&dir))?;
    // Once loaded, the recipe removes its directory when dropped.
    Recipe::load(&dir).inspect_err(|_| remove_plaintext(&dir))
}

/// Removes a recipe copy that never became a [`Recipe`] (its env files are plain text).
fn remove_plaintext(dir: &Path) {
    if let Err(error) = data::remove_any(dir) {
        tracing::warn!(dir = %dir.display(), %error, "cannot remove the restored recipe copy");
    }
}

pub(super) fn belongs_to(
    container: &bollard::models::ContainerInspectResponse,
    point: &RestorePoint,
) -> bool {
    match point.kind {
        UnitKind::Stack => container
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(crate::docker::compose::label::PROJECT))
            .is_some_and(|p| *p == point.unit),
        UnitKind::Standalone => container
            .name
            .as_deref()
            .is_some_and(|n| n.trim_start_matches('/') == point.unit),
    }
}

type FilePlans = (Vec<PathBuf>, Vec<(PathBuf, bool)>);

fn plan_files(
    recipe: Option<&Recipe>,
    project_dir: Option<&Path>,
    parts: Parts,
) -> Result<FilePlans, RestoreError> {
    let (Some(recipe), Some(project_dir), true) = (recipe, project_dir, parts.recipe) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut sources = Vec::new();
    let mut plans = Vec::new();
    for (from, to) in recipe.project_files(project_dir)? {
        let overwrites = match (std::fs::read(&from), std::fs::read(&to)) {
            (Ok(a), Ok(b)) => a != b,
            _ => false,
        };
        sources.push(from);
        plans.push((to, overwrites));
    }
    Ok((sources, plans))
}

async fn plan_networks(
    ctx: &RestoreContext<'_>,
    point: &RestorePoint,
    parts: Parts,
    stamp: &str,
) -> Result<(Vec<Value>, Vec<NetworkPlan>), RestoreError> {
    let (Some(snap), true) = (&point.networks, parts.networks) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let docs = networks::read_recorded(
        ctx.repo,
        &snap.id,
        &ctx.work_dir,
        &format!("networks-{stamp}"),
    )
    .await?;
    let mut plans = Vec::new();
    for doc in &docs {
        let Some(name) = doc.get("Name").and_then(Value::as_str) else {
            continue;
        };
        let (state, differences) = match ctx.engine.find_network_json(name).await? {
            None => (NetworkState::Missing, Vec::new()),
            Some(existing) => {
                let d = networks::differences(doc, &existing);
                let state = if d.is_empty() {
                    NetworkState::Same
                } else {
                    NetworkState::Differs
                };
                (state, d)
            }
        };
        plans.push(NetworkPlan {
            name: name.to_owned(),
            state,
            differences,
        });
    }
    Ok((docs, plans))
}

async fn plan_data(
    ctx: &RestoreContext<'_>,
    request: &RestoreRequest,
    recipe: Option<&Recipe>,
    project_dir: Option<&Path>,
) -> Result<Vec<DataPlan>, RestoreError> {
    let point = &request.point;
    let mut plans = Vec::new();
    if request.parts.volumes {
        for (name, snap) in &point.volumes {
            if !request.volumes.is_empty() && !request.volumes.contains(name) {
                continue;
            }
            let target = match ctx.engine.inspect_volume_json(name).await? {
                Some(doc) => Some(nofollow::resolve_parent(&local_mountpoint(name, &doc)?)?),
                None => None,
            };
            let exists = target.as_deref().is_some_and(dir_has_content);
            if let Some(t) = &target {
                data::preflight(t)?;
            }
            plans.push(DataPlan {
                name: name.clone(),
                kind: DataKind::Volume,
                snapshot: snap.id.clone(),
                size: snap.size,
                target,
                exists,
            });
        }
    }
    if request.parts.binds {
        let original = recipe.and_then(Recipe::working_dir);
        for (source, snap) in &point.binds {
            if !request.binds.is_empty() && !request.binds.contains(source) {
                continue;
            }
            let target = nofollow::resolve_parent(&match project_dir {
                Some(dir) => recipe::relocate(source, original, dir),
                None => source.clone(),
            })?;
            if let Some(why) = trust::refused_target(&target) {
                return Err(RestoreError::RefusedTarget { path: target, why });
            }
            data::preflight(&target)?;
            plans.push(DataPlan {
                name: source.to_string_lossy().into_owned(),
                kind: DataKind::Bind,
                snapshot: snap.id.clone(),
                size: snap.size,
                exists: std::fs::symlink_metadata(&target).is_ok(),
                target: Some(target),
            });
        }
    }
    check_space(&ctx.state_dir, &plans)?;
    Ok(plans)
}

/// Refuses a restore whose parts do not all fit: per filesystem, the sizes of every part that
/// lands there against its free space. Nothing is freed while a restore runs (the current
/// content stays as a rollback copy), so the whole size is needed. A volume that does not
/// exist yet is counted on the filesystem of the other volumes, when there is one.
fn check_space(state_dir: &crate::state::StateDir, plans: &[DataPlan]) -> Result<(), RestoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let existing = |p: &Path| -> PathBuf {
        p.ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new("/"))
            .to_path_buf()
    };
    let volume_home = plans
        .iter()
        .find(|d| d.kind == DataKind::Volume && d.target.is_some())
        .and_then(|d| d.target.as_deref())
        .map(existing);
    // dev -> (a path there, bytes, part names)
    let mut per_fs: BTreeMap<u64, (PathBuf, u64, Vec<String>)> = BTreeMap::new();
    for d in plans {
        let Some(place) = d
            .target
            .as_deref()
            .map(existing)
            .or_else(|| volume_home.clone())
        else {
            continue;
        };
        let dev = std::fs::metadata(&place)
            .map_err(RestoreError::io(&place))?
            .dev();
        let entry = per_fs.entry(dev).or_insert_with(|| (place, 0, Vec::new()));
        entry.1 += d.size.unwrap_or(0);
        entry.2.push(d.name.clone());
    }
    for (dev, (place, needed, names)) in per_fs {
        let free = crate::backup::free_bytes(&place).map_err(RestoreError::io(&place))?;
        if free < needed {
            let (rollback_copies, rollback_bytes) = super::swaps::bytes_on_device(state_dir, dev);
            return Err(RestoreError::NoSpace {
                path: place,
                parts: names.join(", "),
                needed,
                free,
                rollback_copies,
                rollback_bytes,
            });
        }
    }
    Ok(())
}

/// Where a local volume's data is restored: its mountpoint, or for a volume created with
/// `o=bind,device=PATH` the directory `PATH` (the engine mounts it on the mountpoint only while
/// a container uses the volume; data put in the mountpoint would be hidden then).
pub(super) fn local_mountpoint(name: &str, doc: &Value) -> Result<PathBuf, RestoreError> {
    let driver = doc.get("Driver").and_then(Value::as_str).unwrap_or("local");
    let options = doc
        .get("Options")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)));
    let backing = crate::unit::LocalBacking::from_options(options).map_err(|why| {
        RestoreError::DeviceVolume {
            name: name.to_owned(),
            why,
        }
    })?;
    match (backing, doc.get("Mountpoint").and_then(Value::as_str)) {
        (crate::unit::LocalBacking::Bind(device), _) if driver == "local" => Ok(device),
        (crate::unit::LocalBacking::Mounted { fs_type, device }, _) if driver == "local" => {
            Err(RestoreError::DeviceVolume {
                name: name.to_owned(),
                why: format!("it is mounted from {fs_type} `{device}`, not kept on this host"),
            })
        }
        (_, Some(m)) if driver == "local" && !m.is_empty() => Ok(PathBuf::from(m)),
        _ => Err(RestoreError::NotLocal {
            name: name.to_owned(),
            driver: driver.to_owned(),
        }),
    }
}

fn dir_has_content(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

/// Running containers that mount a planned volume or bind, in the unit's start order. Those
/// of the point's unit go through `configured` (`[units.<name>] systemd-unit`) when the config
/// maps it to a systemd unit, others through their `PODMAN_SYSTEMD_UNIT` label's unit.
fn to_stop(
    containers: &[bollard::models::ContainerInspectResponse],
    data: &[DataPlan],
    recipe: Option<&Recipe>,
    point: &RestorePoint,
    configured: Option<&crate::systemd::control::Service>,
) -> Vec<StopTarget> {
    let volumes: BTreeSet<&str> = data
        .iter()
        .filter(|d| d.kind == DataKind::Volume)
        .map(|d| d.name.as_str())
        .collect();
    let binds: Vec<&Path> = data
        .iter()
        .filter(|d| d.kind == DataKind::Bind)
        .filter_map(|d| d.target.as_deref())
        .collect();
    let mut out = Vec::new();
    for c in containers {
        let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        let uses = c.mounts.iter().flatten().any(|m| {
            m.name.as_deref().is_some_and(|n| volumes.contains(n))
                || m.source.as_deref().is_some_and(|s| {
                    let s = Path::new(s);
                    binds.iter().any(|b| s.starts_with(b) || b.starts_with(s))
                })
        });
        if running && uses {
            let name = c
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/');
            let labels = c.config.as_ref().and_then(|c| c.labels.as_ref());
            let unit = labels
                .and_then(|l| l.get(crate::docker::compose::label::PROJECT).cloned())
                .unwrap_or_else(|| name.to_owned());
            // A container of a systemd unit is stopped and started through it.
            let systemd = configured
                .filter(|_| belongs_to(c, point))
                .cloned()
                .or_else(|| labels.and_then(crate::unit::systemd_service));
            out.push(StopTarget {
                container: ContainerRef {
                    id: c.id.clone().unwrap_or_default(),
                    name: name.to_owned(),
                },
                unit,
                // A restore stops with `[backup] stop-timeout-seconds` (never shorter than the
                // container's own): the per-service one is a backup setting.
                stop_timeout: None,
                systemd,
                role: crate::stop::TargetRole::Running,
                auto_remove: c
                    .host_config
                    .as_ref()
                    .and_then(|h| h.auto_remove)
                    .unwrap_or(false),
            });
        }
    }
    let order = recipe
        .map(|r| r.manifest.unit.start_order.clone())
        .unwrap_or_default();
    out.sort_by_key(|t| {
        order
            .iter()
            .position(|o| *o == t.container.name)
            .unwrap_or(usize::MAX)
    });
    out
}

async fn plan_start(
    request: &RestoreRequest,
    recipe: Option<&Recipe>,
    unit_exists: bool,
    project_dir: Option<&Path>,
    services: Vec<crate::systemd::control::Service>,
) -> Result<(StartPlan, Option<ComposeTool>), RestoreError> {
    let point = &request.point;
    if !request.start {
        return Ok((StartPlan::None, None));
    }
    if unit_exists {
        return Ok((StartPlan::RestartStopped, None));
    }
    // Gone containers that systemd units make: those units start them.
    if !services.is_empty() {
        return Ok((StartPlan::Systemd { services }, None));
    }
    let recipe = recipe.ok_or_else(|| RestoreError::NoRecipe {
        unit: point.unit.clone(),
        backup_id: point.backup_id.to_string(),
    })?;
    let unit = &recipe.manifest.unit;
    match point.kind {
        UnitKind::Stack => {
            let dir = project_dir.unwrap_or(Path::new("."));
            let podman = unit.containers.iter().any(|c| {
                recipe.inspect(&c.name).is_ok_and(|i| {
                    i["Config"]["Labels"][super::start::PODMAN_COMPOSE_LABEL].is_string()
                })
            });
            let Some(tool) = ComposeTool::for_stack(podman).await else {
                return Err(RestoreError::ComposeMissing {
                    unit: point.unit.clone(),
                    dir: dir.display().to_string(),
                    tool: if podman {
                        "`podman-compose` (it made this stack; Debian: `apt install podman-compose`)"
                    } else {
                        "`docker compose` or `docker-compose` (Debian: `apt install \
                         docker-compose`, or Docker's docker-compose-plugin)"
                    },
                });
            };
            let all_ran = unit
                .containers
                .iter()
                .all(|c| c.state == ContainerState::Running);
            let services: BTreeSet<String> = if all_ran {
                BTreeSet::new()
            } else {
                unit.containers
                    .iter()
                    .filter(|c| c.state == ContainerState::Running)
                    .filter_map(|c| c.service.clone())
                    .collect()
            };
            Ok((
                StartPlan::Compose {
                    tool: tool.display().into(),
                    files: recipe.compose_files(dir),
                    services: services.into_iter().collect(),
                },
                Some(tool),
            ))
        }
        UnitKind::Standalone => {
            for c in &unit.containers {
                let inspect = recipe.inspect(&c.name)?;
                let missing: Vec<String> = start::redacted_env(&inspect)
                    .into_iter()
                    .filter(|n| !request.env_values.contains_key(n))
                    .collect();
                if !missing.is_empty() {
                    return Err(RestoreError::RedactedEnv { names: missing });
                }
                let fields = start::redacted_config(&inspect);
                if !fields.is_empty() {
                    return Err(RestoreError::RedactedConfig {
                        container: c.name.clone(),
                        fields,
                    });
                }
            }
            Ok((
                StartPlan::Recreate {
                    containers: unit.containers.iter().map(|c| c.name.clone()).collect(),
                },
                None,
            ))
        }
    }
}
