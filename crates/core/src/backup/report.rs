//! What a backup run reports: per unit and for the whole run, kept as JSON in the state
//! directory and as a `type=run` snapshot in the repository.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::repo::{BackupId, Part, Scope, SnapshotMeta, WriteRepo};
use crate::state::StateDir;
use crate::stop::KilledContainer;
use crate::unit::{CoverageSummary, Unit, UnitKind};

/// How a unit's backup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Every snapshot taken, every container running again.
    Success,
    /// Some snapshots taken, some not.
    Partial,
    /// No consistent restore point was made.
    Failed,
}

impl UnitStatus {
    /// Its name in reports and run records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    /// The status named `text` in a report, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Success, Self::Partial, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for UnitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One snapshot made for the unit.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRecord {
    /// Snapshot id.
    pub id: String,
    /// What it holds.
    #[serde(flatten)]
    pub part: Part,
    /// New bytes stored for this part by this run, warm pass included.
    pub bytes_added: u64,
    /// Files read because new or changed.
    pub files_read: u64,
}

/// Result of backing up one unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// Unit name.
    pub name: String,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// Shared by all its snapshots.
    pub backup_id: BackupId,
    /// Outcome.
    pub status: UnitStatus,
    /// First stop to last start, when anything was stopped.
    pub downtime_seconds: Option<f64>,
    /// How the cold pass read the data: frozen by filesystem snapshots (the unit was down for
    /// stop + snapshot + start only) or read while stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_pass: Option<crate::fs_snapshot::ColdPassKind>,
    /// Cold snapshots (the restore point), its marker last when the point is complete.
    pub snapshots: Vec<SnapshotRecord>,
    /// The point's marker was written: every planned part was saved.
    pub complete: bool,
    /// Bytes the repository grew by for this unit: every snapshot, the warm pass included
    /// (also when the cold pass then failed).
    pub bytes_added: u64,
    /// What went wrong.
    pub errors: Vec<String>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// Containers the engine had to kill when they were stopped (each cost its whole stop
    /// timeout of downtime); [`KilledContainer::hint`] says what to change.
    pub killed: Vec<KilledContainer>,
    /// Coverage counts.
    pub coverage: CoverageSummary,
    /// True when the run was interrupted.
    pub interrupted: bool,
    /// A database dump failed: the unit failed, whatever else was saved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dump_failed: bool,
    /// Wall time of the whole unit backup.
    pub duration_seconds: f64,
    /// Who backed the data up: left out for kopi-docka itself, `command` for the unit's own
    /// tool ([`super::command_job`]).
    #[serde(
        default,
        skip_serializing_if = "super::command_job::UnitEngine::is_embedded"
    )]
    pub engine: super::command_job::UnitEngine,
    /// What the unit's own backup job did (`engine = "command"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<super::command_job::JobReport>,
}

/// The report of one backup run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Identifies the run (also the backup id of its run-report snapshot).
    pub run_id: BackupId,
    /// When it started (UTC).
    pub started_at: jiff::Timestamp,
    /// When it ended (UTC).
    pub finished_at: jiff::Timestamp,
    /// Host that ran it.
    pub host: String,
    /// Containers a killed earlier run had left stopped, started first.
    pub restarted_from_journal: Vec<String>,
    /// The engine-configuration snapshot (scope `full`).
    pub docker_config: Option<SnapshotRecord>,
    /// One entry per unit.
    pub units: Vec<UnitReport>,
    /// Errors outside any unit.
    pub errors: Vec<String>,
}

/// Keeps the run report twice: as JSON in `<state_dir>/runs/` (0600) and as a `type=run`
/// snapshot in the repository, so the history survives the loss of the host. Returns what
/// could not be saved.
pub async fn save_run(
    repo: &WriteRepo,
    state_dir: &StateDir,
    staging_dir: &Path,
    report: &RunReport,
) -> Vec<String> {
    let mut problems = Vec::new();
    // The record says which repository the run wrote to (`history::repository_key`).
    let json = serde_json::to_value(report)
        .map(|mut doc| {
            doc["repository"] = crate::history::repository_key(&repo.settings().location).into();
            doc
        })
        .and_then(|doc| serde_json::to_vec_pretty(&doc));
    let json = match json {
        Ok(json) => json,
        Err(error) => return vec![format!("cannot encode the run report: {error}")],
    };
    let name = format!("{}.json", report.run_id);
    let runs = state_dir.runs();
    if let Err(error) = crate::durable::create_dir_all(&runs, 0o700)
        .and_then(|()| crate::durable::write_file(&runs.join(&name), &json, 0o600))
    {
        problems.push(format!(
            "cannot save the run report in {}: {error}",
            runs.display()
        ));
    }
    let staging = staging_dir.join(format!("run-{}", report.run_id));
    let meta = SnapshotMeta {
        unit: None,
        part: Part::Run,
        backup_id: report.run_id.clone(),
        scope: Scope::Minimal,
        pass: None,
    };
    let saved = match crate::durable::create_dir_all(&staging, 0o700)
        .and_then(|()| std::fs::write(staging.join("run.json"), &json))
    {
        Ok(()) => repo
            .snapshot(staging.clone(), meta, None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = saved {
        problems.push(format!(
            "cannot save the run report in the repository: {error}"
        ));
    }
    if let Err(error) = std::fs::remove_dir_all(&staging) {
        tracing::debug!(%error, "cannot remove the run staging dir");
    }
    problems
}

/// The most recent report of `unit` among the run reports in `<state_dir>/runs`, if any:
/// the basis of a dry run's time estimate.
pub fn last_unit_report(
    state_dir: &StateDir,
    unit: &Unit,
) -> Option<(jiff::Timestamp, f64, Option<f64>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(state_dir.runs())
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    // Run ids start with the UTC time, so names sort by time.
    files.sort();
    files.iter().rev().find_map(|file| {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        let started: jiff::Timestamp = doc["started_at"].as_str()?.parse().ok()?;
        doc["units"].as_array()?.iter().find_map(|u| {
            let same =
                u["name"] == unit.name.as_str() && u["kind"] == unit.kind.to_string().as_str();
            same.then(|| {
                (
                    started,
                    u["duration_seconds"].as_f64().unwrap_or(0.0),
                    u["downtime_seconds"].as_f64(),
                )
            })
        })
    })
}

impl From<crate::repo::SnapshotInfo> for SnapshotRecord {
    fn from(info: crate::repo::SnapshotInfo) -> Self {
        let summary = info.summary;
        Self {
            id: info.id,
            part: info.meta.part,
            bytes_added: summary.map_or(0, |s| s.bytes_added_packed),
            files_read: summary.map_or(0, |s| s.files_new + s.files_changed),
        }
    }
}
