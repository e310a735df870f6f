//! The journal of filesystem snapshots and clones a run made and has not removed yet.
//!
//! Written (atomically, fsynced) BEFORE a snapshot is made and cleared after it was removed,
//! like the journal of stopped containers: a run killed in between leaves the entry, and the
//! next run removes what it names.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Method;

/// One snapshot or clone directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenEntry {
    /// The snapshot (btrfs) or staging directory (reflink), under `.kopi-docka-snapshots`.
    pub path: PathBuf,
    /// How it was made, hence how it is removed.
    pub method: Method,
    /// The unit it was made for, for messages.
    pub unit: String,
    /// When the entry was written.
    pub recorded_at: jiff::Timestamp,
}

/// The journal file (`<state>/fs-snapshots.json`).
#[derive(Debug, Clone)]
pub struct SnapshotJournal {
    path: PathBuf,
}

impl SnapshotJournal {
    /// The journal at `path` ([`crate::state::StateDir::fs_snapshots`] knows where).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry. A missing journal is an empty one; a damaged one is an error.
    pub fn pending(&self) -> std::io::Result<Vec<FrozenEntry>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Adds an entry (durably) before the snapshot is made.
    pub fn record(&self, entry: &FrozenEntry) -> std::io::Result<()> {
        let mut entries = self.pending()?;
        entries.retain(|e| e.path != entry.path);
        entries.push(entry.clone());
        self.write(&entries)
    }

    /// Removes the entry of a snapshot that is gone.
    pub fn clear(&self, path: &Path) -> std::io::Result<()> {
        let mut entries = self.pending()?;
        let before = entries.len();
        entries.retain(|e| e.path != path);
        if entries.len() == before {
            return Ok(());
        }
        self.write(&entries)
    }

    fn write(&self, entries: &[FrozenEntry]) -> std::io::Result<()> {
        crate::durable::write_json_list(&self.path, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_clear_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SnapshotJournal::at(dir.path().join("state/fs-snapshots.json"));
        assert!(journal.pending().unwrap().is_empty());
        let entry = |p: &str| FrozenEntry {
            path: PathBuf::from(p),
            method: Method::BtrfsSnapshot,
            unit: "u".into(),
            recorded_at: jiff::Timestamp::UNIX_EPOCH,
        };
        journal.record(&entry("/a")).unwrap();
        journal.record(&entry("/b")).unwrap();
        journal.record(&entry("/a")).unwrap();
        assert_eq!(journal.pending().unwrap().len(), 2);
        journal.clear(Path::new("/a")).unwrap();
        journal.clear(Path::new("/nothing")).unwrap();
        assert_eq!(journal.pending().unwrap(), vec![entry("/b")]);
        journal.clear(Path::new("/b")).unwrap();
        assert!(!journal.path().exists(), "an empty journal leaves no file");
        std::fs::write(journal.path(), b"[ broken").unwrap();
        assert!(journal.pending().is_err());
        assert!(journal.record(&entry("/c")).is_err());
    }
}
