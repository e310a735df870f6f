//! Restoring a unit from a restore point: recipe, networks, volumes and binds, then start.
//!
//! Two phases. [`prepare`] reads the repository and the engine and returns a [`RestorePlan`]:
//! pure data that says what will be created, overwritten, stopped and started, and that the
//! CLI shows before asking. [`execute`] consumes the plan. Rules it keeps:
//! - volumes are created when missing, with their recorded driver, options and labels;
//! - only running containers that mount a restored volume or bind are stopped, through
//!   [`StoppedUnit`] (journaled), and exactly those are started again;
//! - every volume and bind is restored into a private directory beside its target and swapped
//!   in ([`data`]), every swap recorded in a journal first ([`swaps`]); if any part fails, every
//!   part already swapped is put back, and a restore killed between swaps is rolled back by the
//!   next run, so the unit never mixes two points in time;
//! - targets are resolved and written without following symlinks other users own
//!   ([`nofollow`]);
//! - an interrupt (SIGINT/SIGTERM) rolls back the same way and leaves the stopped containers
//!   stopped, for the user to decide;
//! - existing networks are never recreated by stopping containers.

pub mod data;
pub mod drill;
pub mod drill_log;
pub mod error;
pub mod execute;
pub mod extract;
pub mod networks;
pub mod nofollow;
pub mod plan;
pub mod points;
pub mod recipe;
pub mod start;
pub mod swaps;
pub mod trust;
pub mod units;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use error::RestoreError;
pub use execute::{DataOutcome, RestoreOutcome, execute, volume_request};
pub use extract::{ExtractedPart, extract};
pub use plan::{
    DataKind, DataPlan, NetworkPlan, NetworkState, RestorePlan, StartPlan, prepare,
    prepare_confirmed,
};
use plan::{local_mountpoint, read_recipe};
pub use points::{PointError, PointSelector, RestorePoint, UnitNewest, group, newest_per_unit};

use crate::backup::Interrupt;
use crate::config::{HookSet, LoadedConfig};
use crate::docker::Engine;
use crate::lock::journal::Journal;
use crate::repo::Repo;
use crate::state::StateDir;
use recipe::Recipe;

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
    /// The state directory (the swap journal, the list of rollback copies).
    pub state_dir: StateDir,
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
    /// How long `compose up` may take (`[backup] compose-timeout-seconds`).
    pub compose_timeout: Duration,
    /// Set on SIGINT/SIGTERM.
    pub interrupt: Interrupt,
    /// The systemd unit the config maps the unit to (`[units.<name>] systemd-unit`): its
    /// containers are stopped and started through it, and it makes them when they are gone.
    pub systemd: Option<crate::systemd::control::Service>,
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
            state_dir: loaded.env.state_dir(),
            work_dir,
            hooks: std::iter::once(config.hooks.clone())
                .chain(config.units.get(unit).map(|u| u.hooks.clone()))
                .collect(),
            hook_timeout: config.backup.hook_timeout(),
            stop_timeout: config.backup.stop_timeout_seconds,
            health_timeout: config.backup.health_timeout(),
            compose_timeout: config.backup.compose_timeout(),
            interrupt,
            systemd: crate::unit::unit_config(config, unit).and_then(|table| {
                let name = table.systemd_unit.as_deref()?;
                Some(crate::systemd::control::Service {
                    unit: crate::systemd::control::unit_name(name),
                    user: table.systemd_user.clone(),
                    configured: true,
                })
            }),
        })
    }
}

/// Restores `point` completely and starts its unit, without asking: [`prepare`] then
/// [`execute`] for a caller with nobody to show the plan to. `trusted` is `--trust-recipe`:
/// without it a recipe that needs trust is refused ([`RestoreError::Untrusted`]).
pub async fn restore_point(
    loaded: &LoadedConfig,
    engine: &Engine,
    repo: &Repo,
    journal: &Journal,
    point: RestorePoint,
    interrupt: &Interrupt,
    trusted: bool,
) -> Result<RestoreOutcome, RestoreError> {
    let ctx = RestoreContext::new(
        loaded,
        engine,
        repo,
        journal,
        &point.unit,
        interrupt.clone(),
    )?;
    let mut plan = prepare(&ctx, RestoreRequest::whole(point)).await?;
    if trusted {
        plan.trust();
    }
    execute(&ctx, plan).await
}
