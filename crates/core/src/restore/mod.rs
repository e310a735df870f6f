//! Restoring a unit from a restore point: recipe, networks, volumes and binds, then start.
//!
//! Two phases. [`prepare`] reads the repository and the engine and returns a [`RestorePlan`]:
//! pure data that says what will be created, overwritten, stopped and started, and that the
//! CLI shows before asking. [`execute`] consumes the plan. Rules it keeps:
//! - volumes are created when missing, with their recorded driver, options and labels;
//! - only running containers that mount a restored volume or bind are stopped, through
//!   [`StoppedUnit`] (journaled), and exactly those are started again;
//! - every volume and bind is restored beside its target and swapped in ([`data`]); if any part
//!   fails, every part already swapped is put back, so the unit never mixes two points in time;
//! - an interrupt (SIGINT/SIGTERM) rolls back the same way and leaves the stopped containers
//!   stopped, for the user to decide;
//! - existing networks are never recreated by stopping containers.

pub mod data;
pub mod drill;
pub mod networks;
pub mod points;
pub mod recipe;
pub mod start;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use points::{PointError, PointSelector, RestorePoint, UnitNewest, group, newest_per_unit};

use crate::backup::Interrupt;
use crate::config::{HookPoint, HookSet, LoadedConfig};
use crate::docker::Engine;
use crate::hooks::HookContext;
use crate::lock::journal::Journal;
use crate::repo::{Repo, RepoError, RestoreMode};
use crate::stop::{ContainerRef, StopTarget, StoppedUnit};
use crate::unit::{ContainerState, UnitKind};
use networks::NetworkOutcome;
use recipe::Recipe;
use start::ComposeTool;

/// What can go wrong in a restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The engine failed.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The recipe cannot be read.
    #[error("the recipe is unreadable: {path}: {reason}")]
    Recipe {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The point has no recipe, and one is needed.
    #[error(
        "restore point {backup_id} of {unit} has no recipe (it was made with scope `minimal`), \
         so there is nothing to recreate the unit from.\nRestore its data only: \
         `kopi-docka restore --unit {unit} --backup-id {backup_id} --only volumes,binds \
         --no-start` (into existing containers), or into a directory with `--target-dir DIR`."
    )]
    NoRecipe {
        /// Unit.
        unit: String,
        /// Backup.
        backup_id: String,
    },
    /// Neither compose implementation is installed.
    #[error(
        "starting stack {unit} needs `docker compose` or `docker-compose`, and neither is on PATH.\n\
         Install one (Debian: `apt install docker-compose`, or Docker's docker-compose-plugin), \
         or restore without starting: add `--no-start`, then start it yourself from {dir}."
    )]
    ComposeMissing {
        /// Unit.
        unit: String,
        /// Where the compose files go.
        dir: String,
    },
    /// Compose failed.
    #[error("`{command}` failed: {output}")]
    Compose {
        /// The command.
        command: String,
        /// Its output, shortened.
        output: String,
    },
    /// Redacted environment values nobody supplied.
    #[error(
        "the saved configuration has redacted secret values for {names:?}; supply them in an env \
         file (`NAME=value` lines, mode 0600) with `--env-file FILE`"
    )]
    RedactedEnv {
        /// Variable names.
        names: Vec<String>,
    },
    /// A target is a mount point: a rename cannot swap it.
    #[error(
        "{path} is a mount point, so it cannot be swapped with a restored copy; restore it with \
         `--target-dir DIR` and copy the files into place yourself"
    )]
    MountPoint {
        /// The target.
        path: PathBuf,
    },
    /// Not enough room for the restored copy beside the current one.
    #[error(
        "{path} has {free} bytes free but the restore needs {needed}; free space there (the \
         current content is kept until the restored copy is complete)"
    )]
    NoSpace {
        /// The filesystem.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// A volume has no local mountpoint.
    #[error(
        "volume {name} has no local mountpoint (driver {driver}); restore it with --target-dir"
    )]
    NotLocal {
        /// Volume.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// The pre-restore hook failed.
    #[error("{0}; nothing was restored")]
    Hook(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// The test failpoint fired.
    #[error("injected failure restoring {path}")]
    Injected {
        /// The target.
        path: PathBuf,
    },
    /// The private working directory cannot be created.
    #[error("creating {}", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl RestoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Which parts of a point to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(clippy::struct_excessive_bools, reason = "four independent switches")]
pub struct Parts {
    /// Compose and env files.
    pub recipe: bool,
    /// Networks.
    pub networks: bool,
    /// Named volumes.
    pub volumes: bool,
    /// Bind mount sources.
    pub binds: bool,
}

impl Parts {
    /// Everything.
    pub const ALL: Self = Self {
        recipe: true,
        networks: true,
        volumes: true,
        binds: true,
    };
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The point to restore.
    pub point: RestorePoint,
    /// Parts.
    pub parts: Parts,
    /// Only these volumes (empty: all).
    pub volumes: Vec<String>,
    /// Only these binds (empty: all).
    pub binds: Vec<PathBuf>,
    /// Where the compose files go (default: the original project directory).
    pub compose_dir: Option<PathBuf>,
    /// Start the unit afterwards.
    pub start: bool,
    /// Recreate existing networks whose configuration differs (when nothing is attached).
    pub recreate_networks: bool,
    /// Values for redacted environment variables.
    pub env_values: BTreeMap<String, String>,
}

impl RestoreRequest {
    /// Everything of `point`, started afterwards: what `disaster-recovery import
    /// --restore-all` does for each unit.
    pub fn whole(point: RestorePoint) -> Self {
        Self {
            point,
            parts: Parts::ALL,
            volumes: Vec::new(),
            binds: Vec::new(),
            compose_dir: None,
            start: true,
            recreate_networks: false,
            env_values: BTreeMap::new(),
        }
    }

    /// The volumes and binds asked for by name must be in the point: a typo must not restore
    /// nothing and call it a success.
    pub fn check_subset(&self) -> Result<(), PointError> {
        let point = &self.point;
        if let Some(v) = self
            .volumes
            .iter()
            .find(|v| !point.volumes.contains_key(*v))
        {
            return Err(PointError::NoVolume {
                backup_id: point.backup_id.to_string(),
                volume: v.clone(),
                has: point.volumes.keys().cloned().collect(),
            });
        }
        if let Some(b) = self.binds.iter().find(|b| !point.binds.contains_key(*b)) {
            return Err(PointError::NoBind {
                backup_id: point.backup_id.to_string(),
                bind: b.display().to_string(),
                has: point
                    .binds
                    .keys()
                    .map(|p| p.display().to_string())
                    .collect(),
            });
        }
        Ok(())
    }
}

/// Everything a restore needs besides the request.
#[derive(Debug)]
pub struct RestoreContext<'a> {
    /// The engine.
    pub engine: &'a Engine,
    /// The repository.
    pub repo: &'a Repo,
    /// The stopped-containers journal.
    pub journal: &'a Journal,
    /// A private working directory (recipes are read here).
    pub work_dir: PathBuf,
    /// Global hooks and the unit's hooks.
    pub hooks: Vec<HookSet>,
    /// How long one hook may run.
    pub hook_timeout: Duration,
    /// Seconds before a stopping container is killed.
    pub stop_timeout: u32,
    /// How long to wait for health after a start.
    pub health_timeout: Duration,
    /// Set on SIGINT/SIGTERM.
    pub interrupt: Interrupt,
}

impl<'a> RestoreContext<'a> {
    /// The context for restoring `unit` under `loaded`: its hooks and timeouts, and a private
    /// working directory in the cache directory (created here).
    pub fn new(
        loaded: &LoadedConfig,
        engine: &'a Engine,
        repo: &'a Repo,
        journal: &'a Journal,
        unit: &str,
        interrupt: Interrupt,
    ) -> Result<Self, RestoreError> {
        let config = &loaded.config;
        let work_dir = loaded.env.cache_dir().join("restore");
        crate::durable::create_dir_all(&work_dir, 0o700).map_err(|source| {
            RestoreError::WorkDir {
                path: work_dir.clone(),
                source,
            }
        })?;
        Ok(Self {
            engine,
            repo,
            journal,
            work_dir,
            hooks: std::iter::once(config.hooks.clone())
                .chain(config.units.get(unit).map(|u| u.hooks.clone()))
                .collect(),
            hook_timeout: config.backup.hook_timeout(),
            stop_timeout: config.backup.stop_timeout_seconds,
            health_timeout: config.backup.health_timeout(),
            interrupt,
        })
    }
}

/// Restores `point` completely and starts its unit, without asking: [`prepare`] then
/// [`execute`] for a caller with nobody to show the plan to.
pub async fn restore_point(
    loaded: &LoadedConfig,
    engine: &Engine,
    repo: &Repo,
    journal: &Journal,
    point: RestorePoint,
    interrupt: &Interrupt,
) -> Result<RestoreOutcome, RestoreError> {
    let ctx = RestoreContext::new(
        loaded,
        engine,
        repo,
        journal,
        &point.unit,
        interrupt.clone(),
    )?;
    let plan = prepare(&ctx, RestoreRequest::whole(point)).await?;
    execute(&ctx, plan).await
}

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
    /// Networks.
    pub networks: Vec<NetworkPlan>,
    /// Volumes and binds.
    pub data: Vec<DataPlan>,
    /// Running containers that are stopped for the restore.
    pub stop: Vec<String>,
    /// Afterwards.
    pub start: StartPlan,
    /// Things to know.
    pub warnings: Vec<String>,
    #[serde(skip)]
    internal: Internal,
}

#[derive(Debug, Default)]
struct Internal {
    recipe: Option<Recipe>,
    file_sources: Vec<PathBuf>,
    network_docs: Vec<Value>,
    stop: Vec<StopTarget>,
    compose_tool: Option<ComposeTool>,
    stamp: String,
    recreate_networks: bool,
    env_values: BTreeMap<String, String>,
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
    let (file_sources, files) = plan_files(recipe.as_ref(), project_dir.as_deref(), request.parts)?;
    let (network_docs, networks) = plan_networks(ctx, point, request.parts, &stamp).await?;
    let data = plan_data(ctx, &request, recipe.as_ref(), project_dir.as_deref()).await?;
    let stop = to_stop(&all_containers, &data, recipe.as_ref());
    let (start, compose_tool) = plan_start(
        &request,
        recipe.as_ref(),
        unit_exists,
        project_dir.as_deref(),
    )
    .await?;
    Ok(RestorePlan {
        point: request.point.clone(),
        project_dir,
        files,
        networks,
        stop: stop.iter().map(|t| t.container.name.clone()).collect(),
        data,
        start,
        warnings,
        internal: Internal {
            recipe,
            file_sources,
            network_docs,
            stop,
            compose_tool,
            stamp,
            recreate_networks: request.recreate_networks,
            env_values: request.env_values,
        },
    })
}

async fn read_recipe(
    ctx: &RestoreContext<'_>,
    snapshot: &str,
    stamp: &str,
) -> Result<Recipe, RestoreError> {
    let dir = ctx.work_dir.join(format!("recipe-{stamp}"));
    data::remove_any(&dir)?;
    ctx.repo
        .restore(snapshot.to_owned(), dir.clone(), RestoreMode::EmptyOnly)
        .await?;
    Recipe::load(&dir)
}

fn belongs_to(container: &bollard::models::ContainerInspectResponse, point: &RestorePoint) -> bool {
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
                Some(doc) => Some(local_mountpoint(name, &doc)?),
                None => None,
            };
            let exists = target.as_deref().is_some_and(dir_has_content);
            if let Some(t) = &target {
                data::preflight(t, snap.size)?;
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
            let target = match project_dir {
                Some(dir) => recipe::relocate(source, original, dir),
                None => source.clone(),
            };
            data::preflight(&target, snap.size)?;
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
    Ok(plans)
}

fn local_mountpoint(name: &str, doc: &Value) -> Result<PathBuf, RestoreError> {
    let driver = doc.get("Driver").and_then(Value::as_str).unwrap_or("local");
    match doc.get("Mountpoint").and_then(Value::as_str) {
        Some(m) if driver == "local" && !m.is_empty() => Ok(PathBuf::from(m)),
        _ => Err(RestoreError::NotLocal {
            name: name.to_owned(),
            driver: driver.to_owned(),
        }),
    }
}

fn dir_has_content(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
}

/// Running containers that mount a planned volume or bind, in the unit's start order.
fn to_stop(
    containers: &[bollard::models::ContainerInspectResponse],
    data: &[DataPlan],
    recipe: Option<&Recipe>,
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
            let unit = c
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(crate::docker::compose::label::PROJECT).cloned())
                .unwrap_or_else(|| name.to_owned());
            out.push(StopTarget {
                container: ContainerRef {
                    id: c.id.clone().unwrap_or_default(),
                    name: name.to_owned(),
                },
                unit,
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
) -> Result<(StartPlan, Option<ComposeTool>), RestoreError> {
    let point = &request.point;
    if !request.start {
        return Ok((StartPlan::None, None));
    }
    if unit_exists {
        return Ok((StartPlan::RestartStopped, None));
    }
    let recipe = recipe.ok_or_else(|| RestoreError::NoRecipe {
        unit: point.unit.clone(),
        backup_id: point.backup_id.to_string(),
    })?;
    let unit = &recipe.manifest.unit;
    match point.kind {
        UnitKind::Stack => {
            let dir = project_dir.unwrap_or(Path::new("."));
            let Some(tool) = ComposeTool::find().await else {
                return Err(RestoreError::ComposeMissing {
                    unit: point.unit.clone(),
                    dir: dir.display().to_string(),
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
    /// Containers left stopped.
    pub left_stopped: Vec<String>,
    /// Every restored part was put back to its previous content.
    pub rolled_back: bool,
    /// SIGINT/SIGTERM.
    pub interrupted: bool,
    /// What the user should know.
    pub warnings: Vec<String>,
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
        left_stopped: Vec::new(),
        rolled_back: false,
        interrupted: false,
        warnings: plan.warnings.clone(),
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
    let stamp = &plan.internal.stamp;
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
            return;
        }
    };
    let mut swapped: Vec<DataOutcome> = Vec::new();
    let mut failure = None;
    for item in &plan.data {
        if *ctx.interrupt.borrow() {
            failure = Some(RestoreError::Interrupted);
            break;
        }
        match restore_item(ctx, plan, item, stamp).await {
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
        roll_back(&swapped, stamp, outcome);
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
    outcome.data = swapped;
    start_unit(ctx, plan, stopped, outcome).await;
}

async fn restore_item(
    ctx: &RestoreContext<'_>,
    plan: &RestorePlan,
    item: &DataPlan,
    stamp: &str,
) -> Result<DataOutcome, RestoreError> {
    let target = match (&item.target, item.kind) {
        (Some(t), _) => t.clone(),
        (None, _) => create_volume(ctx, plan, &item.name).await?,
    };
    tracing::info!(name = %item.name, target = %target.display(), "restoring");
    let swapped =
        data::restore_in_place(ctx.repo, &item.snapshot, &target, stamp, &ctx.interrupt).await?;
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

fn roll_back(swapped: &[DataOutcome], stamp: &str, outcome: &mut RestoreOutcome) {
    for done in swapped.iter().rev() {
        match done.swapped.undo(stamp) {
            Ok(()) => tracing::warn!(name = %done.name, "rolled back to its previous content"),
            Err(error) => outcome.errors.push(format!(
                "cannot roll back {}: {error}; its previous content is at {}",
                done.name,
                done.swapped
                    .rollback
                    .as_deref()
                    .map_or_else(|| "(none)".into(), |p| p.display().to_string())
            )),
        }
    }
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
            outcome.left_stopped = stopped.leave_stopped(ctx.journal);
            let (Some(tool), Some(dir)) = (&plan.internal.compose_tool, &plan.project_dir) else {
                return;
            };
            match start::compose_up(tool, ctx.engine, &plan.point.unit, dir, files, services).await
            {
                Ok(()) => wait_for_unit(ctx, plan, outcome).await,
                Err(error) => outcome.errors.push(error.to_string()),
            }
        }
        StartPlan::Recreate { containers } => {
            outcome.left_stopped = stopped.leave_stopped(ctx.journal);
            if let Err(error) = recreate(ctx, plan, containers, outcome).await {
                outcome.errors.push(error.to_string());
            }
        }
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
    crate::hooks::run_point(&ctx.hooks, point, hook_ctx, ctx.hook_timeout)
        .await
        .map_err(|e| e.to_string())
}

/// One part restored into a directory.
#[derive(Debug, Serialize)]
pub struct ExtractedPart {
    /// What it is (`recipe`, `networks`, `volume NAME`, `bind PATH`).
    pub part: String,
    /// Where it went.
    pub path: PathBuf,
    /// Files and directories written.
    pub restored: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Restores the selected parts as plain files under `dir` (`recipe/`, `networks/`,
/// `volumes/NAME/`, `binds/PATH`), touching no container. `dir` must be empty or absent.
pub async fn extract(
    repo: &Repo,
    request: &RestoreRequest,
    dir: &Path,
) -> Result<Vec<ExtractedPart>, RestoreError> {
    let point = &request.point;
    let mut jobs: Vec<(String, String, PathBuf)> = Vec::new();
    if request.parts.recipe
        && let Some(s) = &point.recipe
    {
        jobs.push(("recipe".into(), s.id.clone(), dir.join("recipe")));
    }
    if request.parts.networks
        && let Some(s) = &point.networks
    {
        jobs.push(("networks".into(), s.id.clone(), dir.join("networks")));
    }
    if request.parts.volumes {
        for (name, s) in &point.volumes {
            if request.volumes.is_empty() || request.volumes.contains(name) {
                jobs.push((
                    format!("volume {name}"),
                    s.id.clone(),
                    dir.join("volumes").join(name),
                ));
            }
        }
    }
    if request.parts.binds {
        for (source, s) in &point.binds {
            if request.binds.is_empty() || request.binds.contains(source) {
                let rel = source.strip_prefix("/").unwrap_or(source);
                jobs.push((
                    format!("bind {}", source.display()),
                    s.id.clone(),
                    dir.join("binds").join(rel),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (part, id, path) in jobs {
        let report = repo
            .restore(id, path.clone(), RestoreMode::EmptyOnly)
            .await?;
        out.push(ExtractedPart {
            part,
            path,
            restored: report.restored,
            bytes: report.bytes,
        });
    }
    Ok(out)
}
