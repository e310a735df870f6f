//! Past runs, read back from the run reports [`crate::backup::save_run`] keeps: the JSON files
//! in `<state_dir>/runs/`, or the `type=run` snapshots in the repository when the local state
//! is gone.
//!
//! Rules this module owns:
//! - Records written by any version are read: every field but the start time may be missing,
//!   and unknown fields are ignored. A file that cannot be read at all is counted and named,
//!   never a crash.
//! - Times are UTC timestamps. A time without an offset (as older tools wrote) is taken as UTC,
//!   so naive and aware times never meet in a comparison (the original's history crashed
//!   there).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::backup::UnitStatus;
use crate::config::{LoadedConfig, RepositoryLocation};
use crate::repo::{Repo, RepoError, RepoSettings, RestoreMode, SnapshotFilter};
use crate::state::StateDir;

/// One run, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run id (also the file name).
    pub run_id: String,
    /// When it started (UTC).
    pub started_at: Timestamp,
    /// When it ended, if recorded.
    pub finished_at: Option<Timestamp>,
    /// Host that ran it.
    pub host: Option<String>,
    /// One entry per unit.
    pub units: Vec<UnitRecord>,
    /// Errors outside any unit.
    pub errors: Vec<String>,
    /// The key of the repository the run wrote to ([`repository_key`]); `None` in records of
    /// versions that did not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// One unit's result within a run.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRecord {
    /// Unit name.
    pub name: String,
    /// `stack` or `standalone`, when recorded.
    pub kind: Option<String>,
    /// The backup's status, `unknown` when the record has none (or one we do not know).
    pub status: RecordedStatus,
    /// Wall time of the unit's backup.
    pub duration_seconds: Option<f64>,
    /// First stop to last start.
    pub downtime_seconds: Option<f64>,
    /// New bytes stored, summed over its snapshots.
    pub bytes_added: u64,
    /// How many snapshots it made.
    pub snapshots: usize,
    /// What went wrong.
    pub errors: Vec<String>,
}

impl UnitRecord {
    /// True unless the unit succeeded.
    pub fn failed(&self) -> bool {
        self.status.0 != Some(UnitStatus::Success)
    }
}

/// A unit's status as a run record holds it: the backup's [`UnitStatus`], or unknown for a
/// record without one (or from a version with statuses this one does not know). Shown and
/// serialised by name, `unknown` for the latter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedStatus(pub Option<UnitStatus>);

impl RecordedStatus {
    /// The status a record names.
    pub fn parse(text: &str) -> Self {
        Self(UnitStatus::parse(text))
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        self.0.map_or("unknown", UnitStatus::as_str)
    }
}

impl std::fmt::Display for RecordedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for RecordedStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A run in one line: for status displays.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// When it started.
    pub started_at: Timestamp,
    /// `ok`, or how many units failed.
    pub result: String,
}

impl RunRecord {
    /// True when a unit failed or the run itself had errors.
    pub fn failed(&self) -> bool {
        !self.errors.is_empty() || self.units.iter().any(UnitRecord::failed)
    }

    /// The one-line form.
    pub fn summary(&self) -> RunSummary {
        let failed = self.units.iter().filter(|u| u.failed()).count();
        let result = if !self.failed() {
            format!("ok ({} units)", self.units.len())
        } else if failed > 0 {
            format!("{failed} of {} units failed", self.units.len())
        } else {
            format!("errors: {}", self.errors.join("; "))
        };
        RunSummary {
            run_id: self.run_id.clone(),
            started_at: self.started_at,
            result,
        }
    }

    /// Reads a record from a run report's JSON, whatever version wrote it. `None` when it
    /// has no usable start time.
    pub fn from_json(doc: &Value, fallback_id: &str) -> Option<Self> {
        let started_at = timestamp(&doc["started_at"])?;
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let units = doc["units"]
            .as_array()
            .map(|units| {
                units
                    .iter()
                    .filter_map(|u| {
                        let snapshots = u["snapshots"].as_array();
                        Some(UnitRecord {
                            name: u["name"].as_str()?.to_owned(),
                            kind: u["kind"].as_str().map(str::to_owned),
                            status: RecordedStatus::parse(u["status"].as_str().unwrap_or("")),
                            duration_seconds: u["duration_seconds"].as_f64(),
                            downtime_seconds: u["downtime_seconds"].as_f64(),
                            // The unit's own figure (warm pass included) where the record has
                            // one; records of earlier versions only have their snapshots'.
                            bytes_added: u["bytes_added"].as_u64().unwrap_or_else(|| {
                                snapshots.map_or(0, |s| {
                                    s.iter().filter_map(|s| s["bytes_added"].as_u64()).sum()
                                })
                            }),
                            snapshots: snapshots.map_or(0, Vec::len),
                            errors: strings(&u["errors"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            run_id: doc["run_id"].as_str().unwrap_or(fallback_id).to_owned(),
            started_at,
            finished_at: timestamp(&doc["finished_at"]),
            host: doc["host"].as_str().map(str::to_owned),
            units,
            errors: strings(&doc["errors"]),
            repository: doc["repository"].as_str().map(str::to_owned),
        })
    }
}

/// A timestamp in any form a record may hold: RFC 3339 with an offset, a civil time without
/// one (taken as UTC), or seconds since the epoch.
pub fn timestamp(value: &Value) -> Option<Timestamp> {
    if let Some(seconds) = value.as_f64() {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "whole seconds are precise enough for history"
        )]
        return Timestamp::from_second(seconds as i64).ok();
    }
    parse_time(value.as_str()?)
}

/// Parses a time given by a user or a record: RFC 3339 with an offset, a civil date or time
/// without one (UTC), or a span back from now such as `7d` or `24h`.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    if let Ok(zoned) = text.parse::<jiff::Zoned>() {
        return Some(zoned.timestamp());
    }
    if let Ok(civil) = text.parse::<jiff::civil::DateTime>() {
        return civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    let span: jiff::Span = text.parse().ok()?;
    let back = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()?;
    Timestamp::now().checked_sub(back).ok()
}

/// Records, oldest first, and the files that could not be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Loaded {
    /// Readable records, oldest first.
    pub records: Vec<RunRecord>,
    /// Files skipped, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Loaded {
    /// Only the records of runs that wrote to the repository with this key. Records from
    /// versions that did not say which repository they wrote to are kept.
    #[must_use]
    pub fn of_repository(mut self, key: &str) -> Self {
        self.records
            .retain(|r| r.repository.as_deref().is_none_or(|k| k == key));
        self
    }
}

/// What a local run record says about the repository it was written to: the repository
/// lock's hash of its location ([`crate::lock::key_for`]; the location itself may hold
/// credentials and is not written). Two configurations with different repositories on one
/// host share the state directory; their run records are told apart by it.
pub fn repository_key(location: &RepositoryLocation) -> String {
    let text = match location {
        RepositoryLocation::Local(path) => {
            path.components().collect::<PathBuf>().display().to_string()
        }
        remote @ RepositoryLocation::Remote { .. } => remote.to_string(),
    };
    crate::lock::key_for(&text)
        .trim_start_matches("repository-")
        .to_owned()
}

/// The local run records of the configured repository.
pub fn load_local_for(loaded: &LoadedConfig) -> Loaded {
    load_local(&loaded.env.state_dir())
        .of_repository(&repository_key(&loaded.repository_location()))
}

/// Reads every run record in `<state_dir>/runs`, whichever repository the runs wrote to.
pub fn load_local(state_dir: &StateDir) -> Loaded {
    let mut loaded = Loaded::default();
    let Ok(entries) = std::fs::read_dir(state_dir.runs()) else {
        return loaded;
    };
    for path in entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()))
            .and_then(|doc| {
                RunRecord::from_json(&doc, &id).ok_or_else(|| "no started_at".to_owned())
            });
        match parsed {
            Ok(record) => loaded.records.push(record),
            Err(why) => loaded.unreadable.push((path, why)),
        }
    }
    loaded.records.sort_by_key(|r| r.started_at);
    loaded
}

/// Start time of the latest local run, if any: the base of an interval schedule.
pub fn last_run_started(state_dir: &StateDir) -> Option<Timestamp> {
    load_local(state_dir).records.last().map(|r| r.started_at)
}

/// Where run records came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSource {
    /// `<state_dir>/runs`.
    Local,
    /// The `type=run` snapshots (the local state is gone).
    Repository,
}

/// This host's run records: the local ones, else (a new or wiped host) the repository's,
/// read through a scratch directory in the cache that is removed afterwards.
pub async fn load(loaded: &LoadedConfig) -> Result<(Loaded, RecordSource), RepoError> {
    let state_dir = loaded.env.state_dir();
    let local = load_local_for(loaded);
    if !local.records.is_empty() {
        return Ok((local, RecordSource::Local));
    }
    tracing::info!(
        dir = %state_dir.runs().display(),
        "no local run records; reading the repository's"
    );
    let repo = Repo::open(
        RepoSettings::from_config(loaded)?,
        Arc::new(crate::progress::Silent),
    )
    .await?;
    let scratch = loaded
        .env
        .cache_dir()
        .join(format!("history-{}", std::process::id()));
    let host = Some(repo.settings().hostname.clone());
    let result = load_from_repo(&repo, host, &scratch).await;
    if let Err(error) = std::fs::remove_dir_all(&scratch)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %scratch.display(), "cannot remove the scratch dir");
    }
    Ok((result?, RecordSource::Repository))
}

/// Reads the run records stored in the repository (`type=run` snapshots) of `host` (all
/// hosts when `None`), restoring each small report into `scratch`.
pub async fn load_from_repo(
    repo: &Repo,
    host: Option<String>,
    scratch: &Path,
) -> Result<Loaded, RepoError> {
    let snapshots = repo
        .snapshots(SnapshotFilter {
            host,
            ..SnapshotFilter::default()
        })
        .await?;
    let mut loaded = Loaded::default();
    for snapshot in snapshots
        .into_iter()
        .filter(|s| matches!(s.meta.part, crate::repo::Part::Run))
    {
        let target = scratch.join(&snapshot.id);
        let read = async {
            repo.restore(snapshot.id.clone(), target.clone(), RestoreMode::EmptyOnly)
                .await
                .map_err(|e| e.to_string())?;
            let bytes = std::fs::read(target.join("run.json")).map_err(|e| e.to_string())?;
            let doc: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            RunRecord::from_json(&doc, snapshot.meta.backup_id.as_str())
                .ok_or_else(|| "no started_at".to_owned())
        };
        match read.await {
            Ok(record) => loaded.records.push(record),
            Err(why) => loaded
                .unreadable
                .push((PathBuf::from(format!("snapshot {}", snapshot.id)), why)),
        }
        if let Err(error) = std::fs::remove_dir_all(&target) {
            tracing::debug!(%error, "cannot remove a restored run report");
        }
    }
    loaded.records.sort_by_key(|r| r.started_at);
    Ok(loaded)
}

/// Per-unit statistics over some records.
#[derive(Debug, Clone, Serialize)]
pub struct UnitStats {
    /// Unit name.
    pub name: String,
    /// Runs that included it.
    pub runs: usize,
    /// Of those, successful.
    pub succeeded: usize,
    /// Of those, not successful.
    pub failed: usize,
    /// Shortest, mean and longest wall time.
    pub duration_seconds: Option<(f64, f64, f64)>,
    /// Longest downtime.
    pub max_downtime_seconds: Option<f64>,
    /// Last successful backup.
    pub last_success: Option<Timestamp>,
}

/// Statistics per unit, by unit name.
pub fn stats(records: &[RunRecord]) -> Vec<UnitStats> {
    let mut by_unit: std::collections::BTreeMap<&str, UnitStats> =
        std::collections::BTreeMap::new();
    let mut durations: std::collections::BTreeMap<&str, Vec<f64>> =
        std::collections::BTreeMap::new();
    for run in records {
        for unit in &run.units {
            let entry = by_unit.entry(&unit.name).or_insert_with(|| UnitStats {
                name: unit.name.clone(),
                runs: 0,
                succeeded: 0,
                failed: 0,
                duration_seconds: None,
                max_downtime_seconds: None,
                last_success: None,
            });
            entry.runs += 1;
            if unit.failed() {
                entry.failed += 1;
            } else {
                entry.succeeded += 1;
                entry.last_success = entry.last_success.max(Some(run.started_at));
            }
            if let Some(down) = unit.downtime_seconds {
                entry.max_downtime_seconds =
                    Some(entry.max_downtime_seconds.unwrap_or(0.0).max(down));
            }
            if let Some(d) = unit.duration_seconds {
                durations.entry(&unit.name).or_default().push(d);
            }
        }
    }
    for (name, list) in durations {
        if let Some(entry) = by_unit.get_mut(name)
            && !list.is_empty()
        {
            let min = list.iter().copied().fold(f64::INFINITY, f64::min);
            let max = list.iter().copied().fold(0.0, f64::max);
            #[allow(clippy::cast_precision_loss, reason = "a count of runs")]
            let mean = list.iter().sum::<f64>() / list.len() as f64;
            entry.duration_seconds = Some((min, mean, max));
        }
    }
    by_unit.into_values().collect()
}

/// A unit whose last successful backup is older than its threshold (or that never had one).
#[derive(Debug, Clone, Serialize)]
pub struct Overdue {
    /// Unit name.
    pub unit: String,
    /// Its last successful backup, if any.
    pub last_success: Option<Timestamp>,
    /// The threshold that applies.
    pub max_age_hours: u32,
}

/// Units in `units` (names) whose last success in `records` is older than their threshold
/// (`[units.<name>] max-age-hours`, else `[monitoring] max-age-hours`) at `now`.
pub fn overdue(
    records: &[RunRecord],
    units: &[String],
    config: &crate::config::Config,
    now: Timestamp,
) -> Vec<Overdue> {
    let stats = stats(records);
    units
        .iter()
        .filter_map(|name| {
            let max_age_hours = config
                .units
                .get(name)
                .and_then(|u| u.max_age_hours)
                .unwrap_or(config.monitoring.max_age_hours);
            let last_success = stats
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.last_success);
            let limit = now
                .checked_sub(jiff::SignedDuration::from_hours(i64::from(max_age_hours)))
                .unwrap_or(Timestamp::MIN);
            let late = last_success.is_none_or(|t| t < limit);
            late.then(|| Overdue {
                unit: name.clone(),
                last_success,
                max_age_hours,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_another_repository_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.runs()).unwrap();
        let here = repository_key(&RepositoryLocation::Local("/srv/repo".into()));
        let there = repository_key(&RepositoryLocation::Local("/srv/repo-2".into()));
        for (id, repository) in [("a", Some(&here)), ("b", Some(&there)), ("c", None)] {
            let mut doc = serde_json::json!({
                "run_id": id,
                "started_at": "2026-11-01T02:00:00Z",
                "units": [{"name": id, "status": "success"}],
            });
            if let Some(key) = repository {
                doc["repository"] = key.as_str().into();
            }
            std::fs::write(state.runs().join(format!("{id}.json")), doc.to_string()).unwrap();
        }
        let ids = |loaded: Loaded| -> Vec<String> {
            let mut ids: Vec<String> = loaded.records.into_iter().map(|r| r.run_id).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(load_local(&state).of_repository(&here)), ["a", "c"]);
        assert_eq!(ids(load_local(&state).of_repository(&there)), ["b", "c"]);
        assert_eq!(ids(load_local(&state)), ["a", "b", "c"]);
    }

    #[test]
    fn a_repository_key_names_the_location_not_its_spelling() {
        let key =
            |text: &str| repository_key(&RepositoryLocation::try_from(text.to_owned()).unwrap());
        assert_eq!(key("/srv/repo"), key("/srv/repo/"));
        assert_eq!(key("/srv/repo"), key("/srv//repo"));
        assert_ne!(key("/srv/repo"), key("/srv/repo-2"));
        assert_ne!(key("sftp:nas:/srv/repo"), key("sftp:nas:/srv/repo-2"));
        assert_eq!(key("/srv/repo").len(), 16);
        assert!(!key("rest:http://u:secret@host/r").contains("secret"));
    }

    #[test]
    fn records_of_every_version_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(&runs).unwrap();
        // Current format.
        std::fs::write(
            runs.join("b.json"),
            r#"{"run_id":"b","started_at":"2026-11-20T02:00:00Z","finished_at":"2026-11-20T02:05:00Z",
               "host":"nas","units":[{"name":"app","kind":"stack","status":"success",
               "duration_seconds":300.0,"downtime_seconds":12.5,
               "snapshots":[{"bytes_added":10},{"bytes_added":5}],"errors":[]}],"errors":[]}"#,
        )
        .unwrap();
        // An older record: no offset, no host, missing unit fields, an extra field.
        std::fs::write(
            runs.join("a.json"),
            r#"{"started_at":"2026-11-19 02:00:00","units":[{"name":"app","status":"failed","errors":["boom"]}],"future":1}"#,
        )
        .unwrap();
        std::fs::write(runs.join("c.json"), "{not json").unwrap();
        let loaded = load_local(&crate::state::StateDir::new(dir.path()));
        assert_eq!(loaded.records.len(), 2);
        assert_eq!(loaded.unreadable.len(), 1);
        let (old, new) = (&loaded.records[0], &loaded.records[1]);
        assert_eq!(old.run_id, "a");
        assert_eq!(old.started_at.to_string(), "2026-11-19T02:00:00Z");
        assert!(old.failed());
        assert_eq!(new.units[0].bytes_added, 15);
        assert_eq!(new.units[0].snapshots, 2);
        let stats = stats(&loaded.records);
        assert_eq!(
            (stats[0].runs, stats[0].succeeded, stats[0].failed),
            (2, 1, 1)
        );
        assert_eq!(stats[0].last_success, Some(new.started_at));

        let mut config = crate::config::Config::default();
        let units = vec!["app".to_owned(), "never".to_owned()];
        let now: Timestamp = "2026-11-21T01:00:00Z".parse().unwrap();
        let late: Vec<String> = overdue(&loaded.records, &units, &config, now)
            .into_iter()
            .map(|o| o.unit)
            .collect();
        assert_eq!(late, ["never"]);
        config.monitoring.max_age_hours = 12;
        assert_eq!(overdue(&loaded.records, &units, &config, now).len(), 2);
    }

    #[test]
    fn user_times_in_every_form() {
        let utc: Timestamp = "2026-11-19T00:00:00Z".parse().unwrap();
        assert_eq!(parse_time("2026-11-19"), Some(utc));
        assert_eq!(parse_time("2026-11-19T00:00:00"), Some(utc));
        assert_eq!(parse_time("2026-11-19T01:00:00+01:00"), Some(utc));
        let week = parse_time("7d").unwrap();
        let expected = Timestamp::now() - jiff::SignedDuration::from_hours(168);
        assert!((week.as_second() - expected.as_second()).abs() < 5);
        assert_eq!(parse_time("yesterday-ish"), None);
    }
}
