//! The last drill of each unit, kept in `<state_dir>/drills.json`: every drill records its
//! verdict there (from the command line, the daemon or the dashboard), so the overview can
//! show when a unit last proved that it restores.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::drill::DrillReport;
use crate::state::StateDir;

/// One drill's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// When it ended.
    pub at: Timestamp,
    /// Everything restored, verified, running, and cleaned up.
    pub passed: bool,
    /// The point drilled, when the drill got that far.
    pub backup_id: Option<String>,
    /// What failed.
    pub errors: Vec<String>,
}

impl DrillRecord {
    /// The record of a drill that ran to its report.
    pub fn of(report: &DrillReport) -> Self {
        let mut errors = report.errors.clone();
        errors.extend(report.leftovers.iter().map(|l| format!("left behind: {l}")));
        Self {
            at: Timestamp::now(),
            passed: report.passed,
            backup_id: Some(report.backup_id.clone()),
            errors,
        }
    }

    /// The record of a drill that stopped before it had a report.
    pub fn failed(backup_id: &str, error: String) -> Self {
        Self {
            at: Timestamp::now(),
            passed: false,
            backup_id: Some(backup_id.to_owned()),
            errors: vec![error],
        }
    }
}

fn path(state_dir: &StateDir) -> std::path::PathBuf {
    state_dir.path().join("drills.json")
}

/// Every unit's last drill (none when the file is missing or unreadable).
pub fn load(state_dir: &StateDir) -> BTreeMap<String, DrillRecord> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records `record` as `unit`'s last drill (atomically, 0600).
pub fn save(state_dir: &StateDir, unit: &str, record: DrillRecord) -> std::io::Result<()> {
    let mut all = load(state_dir);
    all.insert(unit.to_owned(), record);
    let text = serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(state_dir.path())?;
    crate::durable::write_file(&path(state_dir), &text, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_drill_of_each_unit_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        assert!(load(&state).is_empty());
        save(&state, "web", DrillRecord::failed("b1", "no point".into())).unwrap();
        let passed = DrillRecord {
            at: Timestamp::now(),
            passed: true,
            backup_id: Some("b2".into()),
            errors: Vec::new(),
        };
        save(&state, "db", passed.clone()).unwrap();
        save(&state, "web", passed.clone()).unwrap();
        let all = load(&state);
        assert_eq!(all.len(), 2);
        assert_eq!(all["web"], passed);
        assert_eq!(all["db"], passed);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path(&state)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
