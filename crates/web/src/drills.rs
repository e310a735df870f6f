//! The last drill of each unit that the dashboard ran, kept in `<state_dir>/web-drills.json`
//! (drills run with `kopi-docka restore --drill` on the command line are not recorded).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kopi_docka_core::state::StateDir;
use serde::{Deserialize, Serialize};

/// One drill's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillRecord {
    /// When it ended.
    pub at: Timestamp,
    /// Everything restored, verified, running.
    pub passed: bool,
    /// The point drilled, when the drill got that far.
    pub backup_id: Option<String>,
    /// What failed.
    pub errors: Vec<String>,
}

fn path(state_dir: &StateDir) -> std::path::PathBuf {
    state_dir.path().join("web-drills.json")
}

/// Every unit's last drill (none when the file is missing or unreadable).
pub fn load(state_dir: &StateDir) -> BTreeMap<String, DrillRecord> {
    std::fs::read(path(state_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Records `record` as `unit`'s last drill.
pub fn save(state_dir: &StateDir, unit: &str, record: DrillRecord) -> std::io::Result<()> {
    let mut all = load(state_dir);
    all.insert(unit.to_owned(), record);
    let text = serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?;
    kopi_docka_core::durable::write_file(&path(state_dir), &text, 0o600)
}

/// The record of a drill from its `--json` report on stdout and its exit code.
pub fn from_output(stdout: &str, succeeded: bool, stderr_tail: &[String]) -> DrillRecord {
    let report: Option<serde_json::Value> = serde_json::from_str(stdout.trim()).ok();
    let passed = report
        .as_ref()
        .and_then(|r| r["passed"].as_bool())
        .unwrap_or(false)
        && succeeded;
    let backup_id = report
        .as_ref()
        .and_then(|r| r["backup_id"].as_str())
        .map(str::to_owned);
    let mut errors: Vec<String> = report
        .as_ref()
        .and_then(|r| r["errors"].as_array())
        .map(|list| {
            list.iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !passed && errors.is_empty() {
        // No report: the drill stopped before it had one; its last log lines say why.
        errors.extend(stderr_tail.iter().rev().take(3).rev().cloned());
    }
    DrillRecord {
        at: Timestamp::now(),
        passed,
        backup_id,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_decides_and_a_missing_one_fails() {
        let ok = from_output(r#"{"passed":true,"backup_id":"b1","errors":[]}"#, true, &[]);
        assert!(ok.passed);
        assert_eq!(ok.backup_id.as_deref(), Some("b1"));
        let failed = from_output("", false, &["error: no restore point".to_owned()]);
        assert!(!failed.passed);
        assert_eq!(failed.errors, ["error: no restore point"]);
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        save(&state, "web", ok).unwrap();
        save(&state, "db", failed).unwrap();
        let all = load(&state);
        assert!(all["web"].passed);
        assert!(!all["db"].passed);
    }
}
