//! Filesystem snapshots for the cold pass: what the filesystem under each mount of a unit can
//! do, and frozen copies of the mounts taken while the unit is stopped.
//!
//! Two ways to freeze a mount in milliseconds, whatever its size:
//! - **btrfs**: a read-only snapshot of the subvolume that contains the path (`btrfs subvolume
//!   snapshot -r`); the mount's data is the same sub-path inside the snapshot;
//! - **reflink** (XFS made with `reflink=1`, btrfs without `btrfs-progs`): every file under the
//!   path cloned with `FICLONE` into a staging directory on the same filesystem (no data is
//!   copied; owners, modes, times and extended attributes are).
//!
//! Snapshots and clones live in `.kopi-docka-snapshots/` at the root of the filesystem's mount.
//! Each is written to the journal ([`journal`]) BEFORE it is made and leaves it after it was
//! removed, so a run killed in between leaves an entry the next run (or `admin
//! restart-stopped`) removes ([`recover`]).
//!
//! ZFS and LVM thin snapshots are not supported: nothing here can test them.

mod clone;
pub mod journal;
mod probe;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use journal::{FrozenEntry, SnapshotJournal};
pub use probe::{nested_mount, probe};

/// The directory at the root of a filesystem's mount where snapshots and clones are made.
pub const SNAPSHOT_DIR: &str = ".kopi-docka-snapshots";

/// `[backup] cold-pass`: how the cold pass reads a stopped unit's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColdPassMode {
    /// Snapshot when every mount of the unit can be snapshotted, read otherwise.
    #[default]
    Auto,
    /// Always snapshot; a unit with a mount that cannot be snapshotted is not backed up.
    Snapshot,
    /// Read the data while the unit is stopped (warm pass first).
    Read,
}

/// The cold pass a unit got (or would get).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColdPassKind {
    /// Every mount frozen while stopped, read after the unit runs again.
    Snapshot,
    /// Read while the unit is stopped.
    Read,
    /// Nothing stopped: the `snapshot-live` services' mounts frozen by one atomic btrfs
    /// snapshot while they ran (crash-consistent).
    SnapshotLive,
}

impl fmt::Display for ColdPassKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Snapshot => "snapshot",
            Self::Read => "read",
            Self::SnapshotLive => "snapshot-live",
        })
    }
}

/// The filesystem a path lives on (by its `statfs` magic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filesystem {
    /// btrfs.
    Btrfs,
    /// XFS.
    Xfs,
    /// ext2/3/4.
    Ext4,
    /// ZFS (snapshots not supported yet).
    Zfs,
    /// overlayfs.
    Overlay,
    /// NFS.
    Nfs,
    /// tmpfs.
    Tmpfs,
    /// Anything else.
    Other,
}

impl fmt::Display for Filesystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Btrfs => "btrfs",
            Self::Xfs => "xfs",
            Self::Ext4 => "ext4",
            Self::Zfs => "zfs",
            Self::Overlay => "overlay",
            Self::Nfs => "nfs",
            Self::Tmpfs => "tmpfs",
            Self::Other => "other",
        })
    }
}

/// How a mount is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A read-only btrfs snapshot of the containing subvolume.
    BtrfsSnapshot,
    /// `FICLONE` copies of the files into a staging directory.
    Reflink,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BtrfsSnapshot => "snapshot",
            Self::Reflink => "reflink",
        })
    }
}

/// What the filesystem under one mount allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsSupport {
    /// The filesystem.
    pub filesystem: Filesystem,
    /// How it can be frozen; `None` when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Why it cannot be frozen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Display for FsSupport {
    /// `btrfs: snapshot`, `xfs: reflink`, `ext4: read`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.method {
            Some(method) => write!(f, "{}: {method}", self.filesystem),
            None => write!(f, "{}: read", self.filesystem),
        }
    }
}

/// The cold pass `mode` gives a unit whose mounts are on `mounts` (one per backed-up volume
/// and bind, `None` where it was not probed). `Err` says why `snapshot` cannot be honoured.
pub fn decide<'a>(
    mode: ColdPassMode,
    mounts: impl IntoIterator<Item = (String, Option<&'a FsSupport>)>,
) -> Result<ColdPassKind, String> {
    if mode == ColdPassMode::Read {
        return Ok(ColdPassKind::Read);
    }
    let mut any = false;
    for (name, support) in mounts {
        any = true;
        if support.and_then(|s| s.method).is_none() {
            let why = support.map_or_else(
                || "its filesystem is unknown".to_owned(),
                |s| {
                    format!(
                        "it is on {}{}",
                        s.filesystem,
                        s.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    )
                },
            );
            return match mode {
                ColdPassMode::Snapshot => Err(format!(
                    "[backup] cold-pass = \"snapshot\", but {name} cannot be snapshotted: {why}; \
                     set cold-pass = \"auto\" to read such units while they are stopped"
                )),
                _ => Ok(ColdPassKind::Read),
            };
        }
    }
    Ok(if any {
        ColdPassKind::Snapshot
    } else {
        ColdPassKind::Read
    })
}

/// A frozen copy of one mount: where to read it, and what to remove afterwards.
#[derive(Debug, Clone)]
pub struct Frozen {
    /// The journal entry (the snapshot or staging directory).
    pub entry: FrozenEntry,
    /// The mount's data inside it.
    pub data: PathBuf,
}

/// Freezes the mount at `path` with `method` (blocking: call it from `spawn_blocking`). The
/// journal has the entry before anything is made; on failure, whatever was made is removed.
pub fn freeze(
    journal: &SnapshotJournal,
    path: &Path,
    method: Method,
    unit: &str,
    name: &str,
) -> Result<Frozen, String> {
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let root = probe::mount_root(&canonical)
        .ok_or_else(|| format!("no mount found for {}", canonical.display()))?;
    let dir = root.join(SNAPSHOT_DIR);
    crate::durable::create_dir_all(&dir, 0o700)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let target = dir.join(name);
    let entry = FrozenEntry {
        path: target.clone(),
        method,
        unit: unit.to_owned(),
        recorded_at: jiff::Timestamp::now(),
    };
    journal
        .record(&entry)
        .map_err(|e| format!("cannot write {}: {e}", journal.path().display()))?;
    let made = match method {
        Method::BtrfsSnapshot => {
            let subvolume = probe::subvolume_root(&canonical).map_err(|e| {
                format!("cannot find the btrfs subvolume of {}: {e}", path.display())
            })?;
            btrfs(&["subvolume", "snapshot", "-r"], &[&subvolume, &target]).map(|()| {
                let inside = canonical.strip_prefix(&subvolume).unwrap_or(Path::new(""));
                target.join(inside)
            })
        }
        Method::Reflink => {
            let skip = std::fs::symlink_metadata(&dir)
                .map(|m| {
                    use std::os::unix::fs::MetadataExt as _;
                    (m.dev(), m.ino())
                })
                .ok();
            crate::durable::create_dir_all(&target, 0o700)
                .and_then(|()| clone::clone_tree(&canonical, &target.join("data"), skip))
                .map(|()| target.join("data"))
                .map_err(|e| format!("cannot clone {}: {e}", path.display()))
        }
    };
    match made {
        Ok(data) => Ok(Frozen { entry, data }),
        Err(error) => {
            if let Err(cleanup) = thaw(journal, &entry) {
                tracing::warn!(%cleanup, "cannot remove a failed snapshot");
            }
            Err(error)
        }
    }
}

/// The one btrfs subvolume that holds every path of `paths` (blocking), so that one snapshot
/// freezes them all at the same instant (`kopi-docka.policy=snapshot-live`); `Err` says why
/// there is none.
pub fn common_subvolume(paths: &[PathBuf]) -> Result<PathBuf, String> {
    let mut common: Option<(PathBuf, PathBuf)> = None;
    for path in paths {
        let canonical = std::fs::canonicalize(path)
            .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
        let support = probe(&canonical);
        if support.method != Some(Method::BtrfsSnapshot) {
            return Err(format!(
                "{} is on {} (an atomic snapshot needs btrfs and btrfs-progs)",
                path.display(),
                support.filesystem
            ));
        }
        if let Some(inner) = nested_mount(&canonical)
            .map_err(|e| format!("cannot look for nested mounts in {}: {e}", path.display()))?
        {
            return Err(format!(
                "{} holds {}, another subvolume or mount, which a snapshot would leave empty",
                path.display(),
                inner.display()
            ));
        }
        let subvolume = probe::subvolume_root(&canonical)
            .map_err(|e| format!("cannot find the btrfs subvolume of {}: {e}", path.display()))?;
        match &common {
            None => common = Some((subvolume, path.clone())),
            Some((first, first_path)) if *first != subvolume => {
                return Err(format!(
                    "{} (subvolume {}) and {} (subvolume {}) are on different subvolumes, \
                     and no one snapshot holds both",
                    first_path.display(),
                    first.display(),
                    path.display(),
                    subvolume.display()
                ));
            }
            Some(_) => {}
        }
    }
    common
        .map(|(subvolume, _)| subvolume)
        .ok_or_else(|| "no mounts to snapshot".to_owned())
}

/// Freezes every path of `paths` with one read-only snapshot of their common subvolume
/// (blocking); returns the snapshot and each path's data inside it, in order.
pub fn freeze_together(
    journal: &SnapshotJournal,
    paths: &[PathBuf],
    unit: &str,
    name: &str,
) -> Result<(FrozenEntry, Vec<PathBuf>), String> {
    let subvolume = common_subvolume(paths)?;
    let frozen = freeze(journal, &subvolume, Method::BtrfsSnapshot, unit, name)?;
    let data = paths
        .iter()
        .map(|path| {
            let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            let inside = canonical.strip_prefix(&subvolume).unwrap_or(Path::new(""));
            frozen.data.join(inside)
        })
        .collect();
    Ok((frozen.entry, data))
}

/// Removes a snapshot or clone and its journal entry (blocking). Removing one that is gone
/// already is not an error.
pub fn thaw(journal: &SnapshotJournal, entry: &FrozenEntry) -> Result<(), String> {
    remove(entry)?;
    journal
        .clear(&entry.path)
        .map_err(|e| format!("cannot update {}: {e}", journal.path().display()))
}

fn remove(entry: &FrozenEntry) -> Result<(), String> {
    // Only what we made: a directory named by us under a `.kopi-docka-snapshots`.
    let ours = entry
        .path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == SNAPSHOT_DIR);
    if !ours {
        return Err(format!(
            "refusing to remove {}: not under a {SNAPSHOT_DIR} directory",
            entry.path.display()
        ));
    }
    match std::fs::symlink_metadata(&entry.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", entry.path.display())),
        Ok(_) => {}
    }
    match entry.method {
        Method::BtrfsSnapshot if probe::is_subvolume(&entry.path) => {
            btrfs(&["subvolume", "delete"], &[&entry.path])
        }
        // A journaled name that never became a snapshot (killed before) is a plain directory.
        Method::BtrfsSnapshot | Method::Reflink => std::fs::remove_dir_all(&entry.path)
            .map_err(|e| format!("cannot remove {}: {e}", entry.path.display())),
    }
}

fn btrfs(args: &[&str], paths: &[&Path]) -> Result<(), String> {
    let output = std::process::Command::new("btrfs")
        .args(args)
        .args(paths)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run btrfs (btrfs-progs): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "btrfs {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovered {
    /// Snapshots and clones a killed run had left, removed now.
    pub removed: Vec<PathBuf>,
    /// Those that could not be removed (they stay in the journal).
    pub errors: Vec<String>,
}

/// Removes every snapshot and clone left in the journal by a run that died (blocking). Only
/// the holder of the run lock may call it.
pub fn recover(journal: &SnapshotJournal) -> Recovered {
    let mut done = Recovered::default();
    let entries = match journal.pending() {
        Ok(entries) => entries,
        Err(error) => {
            done.errors
                .push(format!("cannot read {}: {error}", journal.path().display()));
            return done;
        }
    };
    for entry in entries {
        match thaw(journal, &entry) {
            Ok(()) => done.removed.push(entry.path),
            Err(error) => done.errors.push(error),
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn support(method: Option<Method>) -> FsSupport {
        FsSupport {
            filesystem: if method.is_some() {
                Filesystem::Btrfs
            } else {
                Filesystem::Ext4
            },
            method,
            reason: method.is_none().then(|| "ext4 cannot snapshot".to_owned()),
        }
    }

    #[test]
    fn the_mode_and_the_mounts_decide_the_cold_pass() {
        let yes = support(Some(Method::BtrfsSnapshot));
        let no = support(None);
        let both = || vec![("a".to_owned(), Some(&yes)), ("b".to_owned(), Some(&no))];
        let all = || vec![("a".to_owned(), Some(&yes))];
        assert_eq!(
            decide(ColdPassMode::Auto, all()),
            Ok(ColdPassKind::Snapshot)
        );
        assert_eq!(decide(ColdPassMode::Auto, both()), Ok(ColdPassKind::Read));
        assert_eq!(decide(ColdPassMode::Read, all()), Ok(ColdPassKind::Read));
        assert_eq!(
            decide(ColdPassMode::Snapshot, all()),
            Ok(ColdPassKind::Snapshot)
        );
        let refused = decide(ColdPassMode::Snapshot, both()).unwrap_err();
        assert!(refused.contains("b cannot be snapshotted"), "{refused}");
        assert!(refused.contains("ext4"), "{refused}");
        assert_eq!(
            decide(ColdPassMode::Auto, vec![("c".to_owned(), None)]),
            Ok(ColdPassKind::Read)
        );
        assert_eq!(
            decide(ColdPassMode::Snapshot, Vec::new()),
            Ok(ColdPassKind::Read)
        );
    }

    #[test]
    fn only_our_own_directories_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SnapshotJournal::at(dir.path().join("fs-snapshots.json"));
        let victim = dir.path().join("precious");
        std::fs::create_dir(&victim).unwrap();
        let entry = FrozenEntry {
            path: victim.clone(),
            method: Method::Reflink,
            unit: "u".into(),
            recorded_at: jiff::Timestamp::UNIX_EPOCH,
        };
        journal.record(&entry).unwrap();
        let done = recover(&journal);
        assert!(victim.exists());
        assert_eq!(done.errors.len(), 1, "{done:?}");
        assert!(done.errors[0].contains("refusing"), "{done:?}");
        assert_eq!(journal.pending().unwrap().len(), 1, "it stays journaled");

        let ours = dir.path().join(SNAPSHOT_DIR).join("x");
        std::fs::create_dir_all(ours.join("data/deep")).unwrap();
        let entry = FrozenEntry {
            path: ours.clone(),
            ..entry
        };
        journal.clear(&victim).unwrap();
        journal.record(&entry).unwrap();
        let done = recover(&journal);
        assert_eq!(done.removed, vec![ours.clone()]);
        assert!(!ours.exists());
        assert!(journal.pending().unwrap().is_empty());
    }
}
