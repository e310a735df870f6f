//! Locks between kopi-docka processes.
//!
//! rustic_core takes no repository locks and ignores restic's, so kopi-docka keeps its own: an
//! `flock` on a file in the state directory, one per repository location. Writers (backup,
//! forget, prune, password change) hold it exclusively; readers (listing, check, restore) share
//! it. The kernel drops the lock when the process dies, so a crash never leaves it stale.
//!
//! [`journal`] holds the other half of crash safety: the persisted list of containers we
//! stopped and have not started again.

pub mod host;
pub mod journal;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use serde::Serialize;

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many readers.
    Shared,
    /// One writer, no readers.
    Exclusive,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Could not take a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another kopi-docka process is using this{holder}; try again when it has finished \
         (lock file {path})",
        holder = holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote into the lock file, if anything.
        holder: Option<String>,
    },
    /// The lock file cannot be created or locked.
    #[error("cannot use lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Lock {
    /// Takes the lock named `key` in `dir` without waiting.
    pub fn try_acquire(dir: &Path, key: &str, mode: LockMode) -> Result<Self, LockError> {
        let path = dir.join(format!("{key}.lock"));
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::durable::create_dir_all(dir, 0o700).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let op = match mode {
            LockMode::Shared => FlockOperation::NonBlockingLockShared,
            LockMode::Exclusive => FlockOperation::NonBlockingLockExclusive,
        };
        if let Err(errno) = flock_with_grace(&file, op) {
            if errno == rustix::io::Errno::WOULDBLOCK {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty());
                return Err(LockError::Busy { path, holder });
            }
            return Err(io(errno.into()));
        }
        if mode == LockMode::Exclusive {
            // Tell a waiting process who holds it. Best effort: the flock is what protects.
            let note = format!("pid {}", std::process::id());
            if let Err(error) = file
                .set_len(0)
                .and_then(|()| (&file).write_all(note.as_bytes()))
            {
                tracing::debug!(%error, "cannot note the lock holder");
            }
        }
        Ok(Self { _file: file })
    }
}

/// How long a take "without waiting" keeps trying before it says busy. Real holders are runs
/// that last seconds to hours; what lets go within this grace is a copy of a descriptor of our
/// own: a child that another thread is spawning (an `ssh` the SFTP backend starts or ends)
/// holds every descriptor of the process until it execs, and a `flock` lives until the last
/// copy is closed. Without the grace, a lock dropped and taken again at once (open, then
/// init) could be refused as held by "another process" that is a child of ours.
const BUSY_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// `flock` without blocking, retried for [`BUSY_GRACE`] while it would block.
pub(crate) fn flock_with_grace(file: &std::fs::File, op: FlockOperation) -> rustix::io::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_GRACE;
    loop {
        match flock(file, op) {
            Err(errno)
                if errno == rustix::io::Errno::WOULDBLOCK
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The lock every run that stops or starts containers holds (backup, restart-stopped), so two
/// runs never touch the same containers or the journal at once.
pub const RUN_LOCK: &str = "run";

/// The lock only one daemon per state directory holds.
pub const DAEMON_LOCK: &str = "daemon";

/// Whether a lock is held, as a status display says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// Nobody holds it (or its file does not exist yet).
    Free,
    /// Another process holds it.
    Held,
    /// The lock file cannot be opened or locked.
    Unknown,
}

impl LockState {
    /// The state a probe's result says: busy is held, any other error unknown.
    pub fn of<T>(probe: &Result<T, LockError>) -> Self {
        match probe {
            Ok(_) => Self::Free,
            Err(LockError::Busy { .. }) => Self::Held,
            Err(LockError::Io { .. }) => Self::Unknown,
        }
    }

    /// `free`, `held` or `unknown`: the word `--json` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Held => "held",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for LockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the lock `key` in `dir` is held, without holding it longer than the look takes.
/// A lock file that does not exist is free: looking never creates one.
pub fn peek(dir: &Path, key: &str) -> LockState {
    if !dir.join(format!("{key}.lock")).exists() {
        return LockState::Free;
    }
    LockState::of(&Lock::try_acquire(dir, key, LockMode::Shared))
}

/// Takes the run lock in `state_dir`; with `wait`, waits for another run to finish (until
/// `interrupt` is set), which is what a timer-started backup behind a long one wants.
pub async fn run_lock(
    state_dir: &crate::state::StateDir,
    wait: bool,
    interrupt: &tokio::sync::watch::Receiver<bool>,
) -> Result<Lock, LockError> {
    let dir = state_dir.locks();
    loop {
        match Lock::try_acquire(&dir, RUN_LOCK, LockMode::Exclusive) {
            Err(LockError::Busy { .. }) if wait && !*interrupt.borrow() => {
                tracing::info!("another kopi-docka run is going on; waiting for it");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

/// A file-name-safe key for a repository location (FNV-1a, stable across versions).
pub fn key_for(location: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in location.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("repository-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_shared_shares() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_for("/srv/repo");
        let a = Lock::try_acquire(dir.path(), &key, LockMode::Shared).unwrap();
        let b = Lock::try_acquire(dir.path(), &key, LockMode::Shared).unwrap();
        assert!(matches!(
            Lock::try_acquire(dir.path(), &key, LockMode::Exclusive),
            Err(LockError::Busy { .. })
        ));
        drop((a, b));
        let w = Lock::try_acquire(dir.path(), &key, LockMode::Exclusive).unwrap();
        let err = Lock::try_acquire(dir.path(), &key, LockMode::Shared).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(w);
        assert_ne!(key_for("/a"), key_for("/b"));
        assert_eq!(key_for("/srv/repo"), key);
    }

    /// A copy of the descriptor held for a moment (a child between fork and exec) is waited
    /// out, not reported as another process's lock.
    #[test]
    fn a_holder_that_lets_go_within_the_grace_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let held = Lock::try_acquire(dir.path(), RUN_LOCK, LockMode::Exclusive).unwrap();
        let (started, told) = std::sync::mpsc::channel();
        let path = dir.path().to_owned();
        let taker = std::thread::spawn(move || {
            started.send(()).unwrap();
            Lock::try_acquire(&path, RUN_LOCK, LockMode::Exclusive).map(drop)
        });
        told.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(held);
        taker
            .join()
            .unwrap()
            .expect("a lock released 100 ms into the grace was reported busy");
    }

    #[test]
    fn peek_says_free_held_unknown_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        assert_eq!(peek(&locks, RUN_LOCK), LockState::Free);
        assert!(
            !locks.exists(),
            "looking must not create the lock directory"
        );

        let held = Lock::try_acquire(&locks, DAEMON_LOCK, LockMode::Exclusive).unwrap();
        assert_eq!(peek(&locks, DAEMON_LOCK), LockState::Held);
        assert_eq!(peek(&locks, RUN_LOCK), LockState::Free);
        drop(held);
        assert_eq!(peek(&locks, DAEMON_LOCK), LockState::Free);

        let io = LockError::Io {
            path: locks.join("x.lock"),
            source: std::io::Error::other("denied"),
        };
        assert_eq!(LockState::of::<()>(&Err(io)), LockState::Unknown);
    }

    #[test]
    fn lock_state_serializes_as_the_words_status_shows() {
        for (state, word) in [
            (LockState::Free, "free"),
            (LockState::Held, "held"),
            (LockState::Unknown, "unknown"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), word);
            assert_eq!(state.to_string(), word);
        }
    }
}
