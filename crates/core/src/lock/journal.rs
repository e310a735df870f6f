//! The journal of containers kopi-docka stopped and has not started again.
//!
//! It is written (atomically, fsynced) BEFORE a container is stopped and cleared after it runs
//! again. A process killed with SIGKILL or a power cut leaves it behind; the next run starts
//! those containers first. A journal entry for a container that already runs is harmless:
//! starting a running container does nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One container we are about to stop or have stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedContainer {
    /// Container id.
    pub id: String,
    /// Container name, for messages.
    pub name: String,
    /// The unit it belongs to.
    pub unit: String,
    /// Position in the unit's start order (dependencies first).
    pub start_rank: usize,
    /// When the entry was written.
    pub recorded_at: jiff::Timestamp,
    /// Set when the entry is a systemd unit stopped with `systemctl` (its containers went with
    /// it): `id` is then [`Service::journal_id`](crate::systemd::control::Service::journal_id)
    /// and `name` the unit's name; recovery starts it with `systemctl start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<crate::systemd::control::Service>,
}

/// The journal file.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal file at `path` (the state directory knows where: [`crate::state::StateDir::journal`]).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, in start order. A missing journal is an empty one.
    pub fn pending(&self) -> std::io::Result<Vec<StoppedContainer>> {
        let mut entries: Vec<StoppedContainer> = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        entries.sort_by(|a, b| (&a.unit, a.start_rank).cmp(&(&b.unit, b.start_rank)));
        Ok(entries)
    }

    /// Adds entries (durably) before the containers are stopped.
    pub fn record(&self, new: &[StoppedContainer]) -> std::io::Result<()> {
        let mut entries = self.pending()?;
        entries.retain(|e| !new.iter().any(|n| n.id == e.id));
        entries.extend_from_slice(new);
        self.write(&entries)
    }

    /// Removes the entry of a container that runs again.
    pub fn clear(&self, id: &str) -> std::io::Result<()> {
        let mut entries = self.pending()?;
        let before = entries.len();
        entries.retain(|e| e.id != id);
        if entries.len() == before {
            Ok(())
        } else {
            self.write(&entries)
        }
    }

    fn write(&self, entries: &[StoppedContainer]) -> std::io::Result<()> {
        crate::durable::write_json_list(&self.path, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, rank: usize) -> StoppedContainer {
        StoppedContainer {
            id: id.into(),
            name: format!("c-{id}"),
            unit: "u".into(),
            start_rank: rank,
            recorded_at: jiff::Timestamp::UNIX_EPOCH,
            systemd: None,
        }
    }

    #[test]
    fn record_clear_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::at(dir.path().join("state/stopped-containers.json"));
        assert!(journal.pending().unwrap().is_empty());
        journal.record(&[entry("b", 1), entry("a", 0)]).unwrap();
        let ids: Vec<_> = journal
            .pending()
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        journal.clear("a").unwrap();
        journal.clear("b").unwrap();
        assert!(!journal.path().exists(), "an empty journal leaves no file");
    }

    #[test]
    fn recording_again_replaces_and_unknown_ids_change_nothing() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::at(dir.path().join("state/stopped-containers.json"));
        // Nothing to record, nothing there: no error, no file.
        journal.record(&[]).unwrap();
        journal.clear("nobody").unwrap();
        assert!(!journal.path().exists());

        let mut other_unit = entry("z", 0);
        other_unit.unit = "a-unit".into();
        journal
            .record(&[entry("a", 0), entry("b", 1), other_unit])
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(journal.path()), 0o600);
        assert_eq!(mode(journal.path().parent().unwrap()), 0o700);
        // The same container recorded again (a second stop) is one entry, the newer one.
        let mut again = entry("a", 2);
        again.name = "renamed".into();
        journal.record(&[again]).unwrap();
        let entries = journal.pending().unwrap();
        let seen: Vec<_> = entries
            .iter()
            .map(|e| {
                (
                    e.unit.as_str(),
                    e.id.as_str(),
                    e.start_rank,
                    e.name.as_str(),
                )
            })
            .collect();
        // Sorted by unit, then by start rank.
        assert_eq!(
            seen,
            vec![
                ("a-unit", "z", 0, "c-z"),
                ("u", "b", 1, "c-b"),
                ("u", "a", 2, "renamed"),
            ]
        );
        let written = std::fs::read(journal.path()).unwrap();
        journal.clear("nobody").unwrap();
        assert_eq!(std::fs::read(journal.path()).unwrap(), written);
        journal.clear("z").unwrap();
        assert_eq!(journal.pending().unwrap().len(), 2);
    }

    #[test]
    fn a_damaged_journal_is_an_error_not_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::at(dir.path().join("stopped-containers.json"));
        std::fs::write(journal.path(), b"{ not json").unwrap();
        assert!(journal.pending().is_err());
        assert!(journal.record(&[entry("a", 0)]).is_err());
        assert_eq!(std::fs::read(journal.path()).unwrap(), b"{ not json");
        // Unreadable (here: a directory) is an error too; only a missing file is empty.
        assert!(Journal::at(dir.path().to_path_buf()).pending().is_err());
    }
}
