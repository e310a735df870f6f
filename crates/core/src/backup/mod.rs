//! Backing up: the unit algorithm ([`unit`]), the whole run ([`run`]), what they report
//! ([`report`]), the checks before anything stops ([`preflight`]), the recipe a restore
//! recreates a unit from ([`recipe`]) and the engine's own configuration ([`engine_config`]).

pub mod command_job;
pub mod dump;
pub mod engine_config;
pub mod preflight;
pub mod recipe;
pub mod report;
pub mod run;
pub mod unit;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use std::collections::BTreeMap;

use crate::config::{Config, HookSet, UnitConfig};
use crate::repo::{BackupId, Scope};

pub use engine_config::{DOCKER_CONFIG_FILES, backup_docker_config};
pub use preflight::{MIN_STAGING_FREE_BYTES, free_bytes, tree_size};
pub use report::{RunReport, SnapshotRecord, UnitReport, UnitStatus, last_unit_report, save_run};
pub use unit::backup_unit;

/// Settings of one backup run.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// What to include.
    pub scope: Scope,
    /// Do the warm pass.
    pub warm_pass: bool,
    /// How the cold pass reads a stopped unit.
    pub cold_pass: crate::fs_snapshot::ColdPassMode,
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
    /// `[units.<name>]` tables (their hooks, timeouts, restore state, frozen sockets).
    pub units: BTreeMap<String, UnitConfig>,
    /// How long one hook may run.
    pub hook_timeout: Duration,
    /// How long the whole run may take.
    pub run_time_limit: Duration,
    /// Days each unit's daily log file is kept (0: none written).
    pub unit_log_days: u32,
    /// The external jobs of the units with `engine = "command"`, by the name in the config.
    pub unit_jobs: BTreeMap<String, command_job::CommandJob>,
}

impl BackupSettings {
    /// From the configuration (`[backup]`, `[hooks]`, `[units.*]`).
    pub fn from_config(full: &Config, staging_dir: PathBuf) -> Self {
        let config = &full.backup;
        Self {
            hooks: full.hooks.clone(),
            units: full.units.clone(),
            hook_timeout: config.hook_timeout(),
            scope: config.scope,
            warm_pass: config.warm_pass,
            cold_pass: config.cold_pass,
            stop_timeout: config.stop_timeout_seconds,
            health_timeout: config.health_timeout(),
            max_downtime: config.max_downtime(),
            run_time_limit: config.run_time_limit(),
            unit_log_days: config.unit_log_days,
            staging_dir,
            unit_jobs: full
                .units
                .iter()
                .filter_map(|(name, unit)| {
                    command_job::CommandJob::from_config(unit).map(|job| (name.clone(), job))
                })
                .collect(),
        }
    }

    /// The external job of `unit`, when its table says `engine = "command"` (matched as
    /// [`crate::unit::unit_config`] matches names).
    pub fn command_job(&self, unit: &crate::unit::Unit) -> Option<&command_job::CommandJob> {
        use crate::systemd::control::stack_name;
        let name = unit.name.as_str();
        self.unit_jobs.get(name).or_else(|| {
            self.unit_jobs
                .iter()
                .find(|(key, _)| stack_name(key) == stack_name(name))
                .map(|(_, job)| job)
        })
    }
}

impl BackupSettings {
    /// The `[units.<name>]` table of `unit`: its own name, or another spelling of the same
    /// stack (`cryptpad-stack.service`), as [`crate::unit::unit_config`] finds it.
    pub fn unit_table(&self, unit: &str) -> Option<&UnitConfig> {
        use crate::systemd::control::stack_name;
        self.units.get(unit).or_else(|| {
            self.units
                .iter()
                .find(|(key, _)| stack_name(key) == stack_name(unit))
                .map(|(_, table)| table)
        })
    }

    /// How `unit` is stopped and started: its table's keys over `[backup]`'s.
    pub fn unit_stop(&self, unit: &str) -> crate::stop::UnitStop {
        let table = self.unit_table(unit);
        crate::stop::UnitStop {
            stop_timeout: table
                .and_then(|t| t.stop_timeout_seconds)
                .unwrap_or(self.stop_timeout),
            own_stop_timeout: table.and_then(|t| t.stop_timeout_seconds),
            start_timeout: table
                .and_then(|t| t.start_timeout_seconds)
                .map(|s| Duration::from_secs(u64::from(s))),
            restore_state: table.and_then(|t| t.restore_state).unwrap_or_default(),
            freeze_sockets: table.map(|t| t.freeze_sockets.clone()).unwrap_or_default(),
            systemd_user: table.and_then(|t| t.systemd_user.clone()),
        }
    }
}

/// Set to `true` when the run must stop (SIGINT/SIGTERM).
pub type Interrupt = watch::Receiver<bool>;

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
