//! `admin service status` as data: what systemd says about our units, the last run on this
//! host, and whether a backup or a daemon is running (their locks).

use std::path::Path;

use serde::Serialize;

use crate::config::LoadedConfig;
use crate::history::{self, RunSummary};
use crate::lock::{self, DAEMON_LOCK, LockState, RUN_LOCK};
use crate::systemd::{self, UnitState};

/// The service's state on this host.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// A systemd manager runs on this host (else the unit states are unknown).
    pub systemd: bool,
    /// The backup service, the timer and the daemon service.
    pub units: Vec<UnitState>,
    /// The latest run recorded on this host.
    pub last_run: Option<RunSummary>,
    /// The run lock: held while a backup runs.
    pub lock: LockState,
    /// The daemon lock: held while a daemon runs.
    pub daemon_lock: LockState,
}

/// Looks at the units in `unit_dir`, the run records and the locks; changes nothing (not even
/// a lock file is created).
pub fn status(loaded: &LoadedConfig, unit_dir: &Path) -> ServiceStatus {
    let state_dir = loaded.env.state_dir();
    let locks = state_dir.locks();
    ServiceStatus {
        systemd: systemd::booted(),
        units: systemd::state(unit_dir),
        last_run: history::load_local_for(loaded)
            .records
            .last()
            .map(history::RunRecord::summary),
        lock: lock::peek(&locks, RUN_LOCK),
        daemon_lock: lock::peek(&locks, DAEMON_LOCK),
    }
}
