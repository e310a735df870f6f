//! The journal of a restore's swaps, its recovery after a crash, and the list of rollback
//! copies restores left behind.
//!
//! A restore stages and swaps its volumes and binds one after the other. Before the first swap
//! it writes `<state>/restore-swaps.json` (atomically, fsynced: [`crate::durable`]) and adds
//! each target to it before that target is swapped; it removes the file once every target is
//! swapped (or put back). A restore killed in between (SIGKILL, power cut) leaves the file, and
//! the next run that holds the run lock ([`recover`]: restore, backup, `admin restart-stopped`,
//! the daemon) rolls every listed target **back** before any container is started again.
//!
//! Back, not forward: targets are staged one at a time, so the ones after the crash have no
//! complete staged copy to roll forward to, while every swapped one still has its previous
//! content in its private directory. Rolling back always ends with the whole unit at one
//! point in time; the restore can simply be run again.
//!
//! What each target's private directory holds tells how far its swap got (see [`put_back`]),
//! so the journal needs no per-target state.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::nofollow::{self, PrivateDir};
use crate::state::StateDir;

/// One target of a restore and its private directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapEntry {
    /// The live path.
    pub target: PathBuf,
    /// Its private directory beside it (`data` staged, `rollback` the previous content).
    pub private: PathBuf,
    /// Staging is complete and the renames may have begun (before that, recovery only
    /// removes the private directory).
    #[serde(default)]
    pub swapping: bool,
}

/// The journal file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwapJournalDoc {
    /// The unit being restored.
    pub unit: String,
    /// The point restored.
    pub backup_id: String,
    /// When the restore began swapping.
    pub started: jiff::Timestamp,
    /// Every target swapped or about to be, in order.
    pub entries: Vec<SwapEntry>,
}

/// The journal of one restore in progress.
#[derive(Debug)]
pub struct SwapJournal {
    path: PathBuf,
    doc: SwapJournalDoc,
}

/// The journal or a target could not be written, read or put back.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct SwapError {
    /// The file or target.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Why rollback copies could not be pruned.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A backup or restore is going on.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// The list of copies could not be read or written.
    #[error(transparent)]
    Swap(#[from] SwapError),
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> SwapError + '_ {
    move |source| SwapError {
        path: path.to_path_buf(),
        source,
    }
}

impl SwapJournal {
    /// A journal for restoring `unit` from `backup_id`; nothing is written until [`Self::add`].
    pub fn new(state_dir: &StateDir, unit: &str, backup_id: &str) -> Self {
        Self {
            path: state_dir.restore_swaps(),
            doc: SwapJournalDoc {
                unit: unit.to_owned(),
                backup_id: backup_id.to_owned(),
                started: jiff::Timestamp::now(),
                entries: Vec::new(),
            },
        }
    }

    /// Records `entry` durably; call before swapping it.
    pub fn add(&mut self, entry: SwapEntry) -> Result<(), SwapError> {
        self.doc.entries.push(entry);
        self.write()
    }

    /// Records durably that the last entry's staging is complete and its renames begin.
    pub fn swapping(&mut self) -> Result<(), SwapError> {
        if let Some(last) = self.doc.entries.last_mut() {
            last.swapping = true;
        }
        self.write()
    }

    /// Puts every entry back, newest first (a restore that failed or was interrupted);
    /// returns what could not be put back. The journal stays when something could not.
    pub fn roll_back(self) -> Vec<String> {
        let mut errors = Vec::new();
        for entry in self.doc.entries.iter().rev() {
            if let Err(e) = put_back(entry) {
                errors.push(format!(
                    "cannot roll back {}: {e}; its previous content is in {}",
                    entry.target.display(),
                    entry.private.display()
                ));
            }
        }
        if errors.is_empty()
            && let Err(e) = self.finish()
        {
            errors.push(e.to_string());
        }
        errors
    }

    fn write(&self) -> Result<(), SwapError> {
        let json = serde_json::to_vec_pretty(&self.doc).map_err(|e| SwapError {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        if let Some(dir) = self.path.parent() {
            crate::durable::create_dir_all(dir, 0o700).map_err(err(dir))?;
        }
        crate::durable::write_file(&self.path, &json, 0o600).map_err(err(&self.path))
    }

    /// Every target is swapped (or put back): the journal goes.
    pub fn finish(self) -> Result<(), SwapError> {
        remove_file(&self.path)
    }
}

fn remove_file(path: &Path) -> Result<(), SwapError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err(dir))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(path)(e)),
    }
}

/// Puts a target back to its content before the restore, whatever point its swap reached:
/// - `data` still in the private dir: the second rename was not done; if `rollback` is there
///   (the first was), it goes back to the live path;
/// - `data` gone: the restored copy is live; it moves aside and `rollback` (if the target had
///   content) goes back.
///
/// Then the private directory is removed. An absent private directory means there is nothing
/// left to do.
pub fn put_back(entry: &SwapEntry) -> Result<(), SwapError> {
    let target = &entry.target;
    if !entry.swapping {
        return remove_private(&entry.private, true);
    }
    let name = nofollow::file_name(target).map_err(err(target))?;
    let parent = match nofollow::open_dir(target.parent().unwrap_or(Path::new("/")), None) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(target)(e)),
    };
    let private_name = nofollow::file_name(&entry.private).map_err(err(&entry.private))?;
    let private = match PrivateDir::open(&parent, private_name) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(&entry.private)(e)),
    };
    let has = |dir, n: &str| nofollow::exists_in(dir, n).map_err(err(&entry.private));
    let has_rollback = has(&private.fd, "rollback")?;
    if !has(&private.fd, "data")?
        && nofollow::exists_in(&parent, name.to_str().unwrap_or_default()).map_err(err(target))?
    {
        nofollow::rename(&parent, name, &private.fd, OsStr::new("failed")).map_err(err(target))?;
    }
    if has_rollback {
        nofollow::rename(&private.fd, OsStr::new("rollback"), &parent, name)
            .map_err(err(target))?;
    }
    nofollow::sync(&parent).map_err(err(target))?;
    nofollow::remove_in(&parent, private_name).map_err(err(&entry.private))?;
    nofollow::sync(&parent).map_err(err(target))
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwapRecovery {
    /// The unit whose interrupted restore was rolled back, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Targets put back to their previous content.
    pub rolled_back: Vec<PathBuf>,
    /// What could not be put back (the journal stays for the next run).
    pub errors: Vec<String>,
}

/// Rolls back the restore an earlier run left half-done (see the module docs). Only the holder
/// of the run lock may call it, before it starts any container.
pub fn recover(state_dir: &StateDir) -> SwapRecovery {
    let path = state_dir.restore_swaps();
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return SwapRecovery::default(),
        Err(e) => {
            return SwapRecovery {
                errors: vec![format!("cannot read {}: {e}", path.display())],
                ..SwapRecovery::default()
            };
        }
    };
    let doc: SwapJournalDoc = match serde_json::from_slice(&text) {
        Ok(doc) => doc,
        Err(e) => {
            return SwapRecovery {
                errors: vec![format!(
                    "cannot read {} ({e}); look at it, put the listed targets back from their \
                     private directories, then remove it",
                    path.display()
                )],
                ..SwapRecovery::default()
            };
        }
    };
    tracing::warn!(unit = %doc.unit, backup_id = %doc.backup_id, "an interrupted restore left some volumes or binds swapped; rolling them back");
    let mut report = SwapRecovery {
        unit: Some(doc.unit.clone()),
        ..SwapRecovery::default()
    };
    for entry in doc.entries.iter().rev() {
        match put_back(entry) {
            Ok(()) => {
                tracing::warn!(target = %entry.target.display(), "rolled back to its content before the interrupted restore");
                report.rolled_back.push(entry.target.clone());
            }
            Err(e) => report.errors.push(format!(
                "cannot roll back {} after an interrupted restore: {e}; its previous content is \
                 in {}",
                entry.target.display(),
                entry.private.display()
            )),
        }
    }
    if report.errors.is_empty()
        && let Err(e) = remove_file(&path)
    {
        report.errors.push(e.to_string());
    }
    report
}

/// A rollback copy a restore kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackCopy {
    /// The previous content.
    pub path: PathBuf,
    /// The private directory holding it (removed by a prune).
    pub private: PathBuf,
    /// The live path it was replaced at.
    pub target: PathBuf,
    /// The unit restored.
    pub unit: String,
    /// The point restored over it.
    pub backup_id: String,
    /// When.
    pub created: jiff::Timestamp,
    /// Its size in bytes (when listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

fn read_copies(state_dir: &StateDir) -> Result<Vec<RollbackCopy>, SwapError> {
    let path = state_dir.rollback_copies();
    match std::fs::read(&path) {
        Ok(text) => serde_json::from_slice(&text).map_err(|e| SwapError {
            path,
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(err(&path)(e)),
    }
}

fn write_copies(state_dir: &StateDir, copies: &[RollbackCopy]) -> Result<(), SwapError> {
    let path = state_dir.rollback_copies();
    let json = serde_json::to_vec_pretty(copies).map_err(|e| SwapError {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    if let Some(dir) = path.parent() {
        crate::durable::create_dir_all(dir, 0o700).map_err(err(dir))?;
    }
    crate::durable::write_file(&path, &json, 0o600).map_err(err(&path))
}

/// Adds rollback copies a restore kept to the list.
pub fn register(state_dir: &StateDir, new: Vec<RollbackCopy>) -> Result<(), SwapError> {
    if new.is_empty() {
        return Ok(());
    }
    let mut copies = read_copies(state_dir)?;
    copies.extend(new);
    write_copies(state_dir, &copies)
}

/// The rollback copies that still exist, oldest first, with their sizes.
pub fn list(state_dir: &StateDir) -> Result<Vec<RollbackCopy>, SwapError> {
    let mut copies: Vec<RollbackCopy> = read_copies(state_dir)?
        .into_iter()
        .filter(|c| std::fs::symlink_metadata(&c.path).is_ok())
        .map(|mut c| {
            c.bytes = Some(crate::backup::tree_size(&c.path));
            c
        })
        .collect();
    copies.sort_by_key(|c| c.created);
    Ok(copies)
}

/// Bytes the listed rollback copies hold on the filesystem of `dev`.
pub fn bytes_on_device(state_dir: &StateDir, dev: u64) -> (usize, u64) {
    let Ok(copies) = list(state_dir) else {
        return (0, 0);
    };
    copies
        .iter()
        .filter(|c| {
            std::fs::symlink_metadata(&c.path)
                .is_ok_and(|m| std::os::unix::fs::MetadataExt::dev(&m) == dev)
        })
        .fold((0, 0), |(n, b), c| (n + 1, b + c.bytes.unwrap_or(0)))
}

/// What a prune did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Copies removed.
    pub removed: Vec<RollbackCopy>,
    /// Copies kept (younger than the limit).
    pub kept: Vec<RollbackCopy>,
    /// Copies that could not be removed.
    pub errors: Vec<String>,
}

/// Removes the rollback copies created before `before` (all when `None`), holding the run lock
/// so no restore creates or rolls back one meanwhile ([`PruneError::Lock`] when a run is going
/// on).
pub fn prune(
    state_dir: &StateDir,
    before: Option<jiff::Timestamp>,
) -> Result<PruneReport, PruneError> {
    // No restore may create or roll back a copy while they are removed; another run holding
    // the lock is an answer (busy), not something to wait for.
    let _run_lock = crate::lock::Lock::try_acquire(
        &state_dir.locks(),
        crate::lock::RUN_LOCK,
        crate::lock::LockMode::Exclusive,
    )?;
    let mut report = PruneReport::default();
    let mut remaining = Vec::new();
    for copy in list(state_dir)? {
        if before.is_some_and(|b| copy.created >= b) {
            report.kept.push(copy.clone());
            remaining.push(copy);
            continue;
        }
        match remove_private(&copy.private, false) {
            Ok(()) => report.removed.push(copy),
            Err(e) => {
                report.errors.push(e.to_string());
                remaining.push(copy);
            }
        }
    }
    write_copies(state_dir, &remaining)?;
    Ok(report)
}

/// Removes a restore's private directory, refusing anything that is not one (a symlink or a
/// directory someone else made in its place). `absent_ok`: one that is gone is fine.
pub fn remove_private(private: &Path, absent_ok: bool) -> Result<(), SwapError> {
    let name = nofollow::file_name(private).map_err(err(private))?;
    let parent = match nofollow::open_dir(private.parent().unwrap_or(Path::new("/")), None) {
        Ok(fd) => fd,
        Err(e) if absent_ok && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(private)(e)),
    };
    match PrivateDir::open(&parent, name) {
        Ok(_) => {}
        Err(e) if absent_ok && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(private)(e)),
    }
    nofollow::remove_in(&parent, name).map_err(err(private))?;
    nofollow::sync(&parent).map_err(err(private))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::{Lock, LockError, LockMode, RUN_LOCK};

    #[test]
    fn prune_takes_the_run_lock_and_refuses_while_a_run_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = StateDir::new(dir.path());
        let run = Lock::try_acquire(&state_dir.locks(), RUN_LOCK, LockMode::Exclusive).unwrap();
        let refused = prune(&state_dir, None).unwrap_err();
        assert!(
            matches!(refused, PruneError::Lock(LockError::Busy { .. })),
            "{refused}"
        );
        drop(run);
        let report = prune(&state_dir, None).unwrap();
        assert!(report.removed.is_empty() && report.errors.is_empty());
        // The prune released the lock again.
        drop(Lock::try_acquire(&state_dir.locks(), RUN_LOCK, LockMode::Exclusive).unwrap());
    }
}
