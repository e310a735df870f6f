//! The state directory and its layout: the only code that knows the names inside it.
//!
//! ```text
//! <state>/locks/                  run.lock, daemon.lock, one lock per repository
//! <state>/runs/                   one JSON report per run (0600)
//! <state>/logs/<unit>/            each unit's daily log, <YYYY-MM-DD>.log (0600, `unit_log`)
//! <state>/stopped-containers.json the journal of containers a run stopped
//! <state>/fs-snapshots.json     the journal of filesystem snapshots a run made (`fs_snapshot`)
//! <state>/overdue-alerts.json     which overdue alerts were sent
//! <state>/restore-swaps.json      the swaps of a restore in progress (rolled back if left)
//! <state>/rollback-copies.json    rollback copies restores kept (`admin rollback-copies`)
//! ```

use std::path::{Path, PathBuf};

use crate::lock::journal::Journal;

/// Where kopi-docka keeps its own state ([`crate::config::Environment::state_dir`]).
///
/// It dereferences to its [`Path`] for display and for code that needs the directory itself;
/// what lives inside it is reached through its methods, never by joining names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The state directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The lock files: the run lock, the daemon lock, repository locks.
    pub fn locks(&self) -> PathBuf {
        self.0.join("locks")
    }

    /// Each unit's daily log files ([`crate::unit_log`]).
    pub fn unit_logs(&self) -> PathBuf {
        self.0.join("logs")
    }

    /// The run reports, one JSON file per run.
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs")
    }

    /// The journal of containers a run stopped and has not started again.
    pub fn journal(&self) -> Journal {
        Journal::at(self.0.join("stopped-containers.json"))
    }

    /// Where SFTP runs keep their generated ssh config and control sockets (one directory per
    /// process, see [`crate::repo::sftp`]).
    pub fn ssh_dir(&self) -> PathBuf {
        self.0.join("ssh")
    }

    /// The journal of filesystem snapshots and clones a run made and has not removed.
    pub fn fs_snapshots(&self) -> crate::fs_snapshot::SnapshotJournal {
        crate::fs_snapshot::SnapshotJournal::at(self.0.join("fs-snapshots.json"))
    }

    /// The journal of a restore's swaps while it swaps (`restore::swaps`).
    pub fn restore_swaps(&self) -> PathBuf {
        self.0.join("restore-swaps.json")
    }

    /// The rollback copies restores kept.
    pub fn rollback_copies(&self) -> PathBuf {
        self.0.join("rollback-copies.json")
    }

    /// Which overdue alerts were already sent.
    pub fn overdue_alerts(&self) -> PathBuf {
        self.0.join("overdue-alerts.json")
    }
}

impl std::ops::Deref for StateDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for StateDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}
