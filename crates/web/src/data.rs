//! What the pages and the API show, built from the core's calls only: discovery, the run
//! records, the restore points in the repository, the freshness rule. Every value here is
//! `Serialize` (the API's JSON) and rendered to HTML by `html`.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::docker::Engine;
use kopi_docka_core::history::{self, RunRecord};
use kopi_docka_core::repo::{Repo, RepoSettings, SnapshotFilter};
use kopi_docka_core::restore::points::{self, RestorePoint};
use kopi_docka_core::unit::{self, Unit};
use serde::Serialize;

use kopi_docka_core::restore::drill_log::{self, DrillRecord};

/// ok / warn / fail, as colours and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Fresh, no gaps, last run and drill fine.
    Ok,
    /// Fresh, but something needs a look (a failed run or drill, a coverage gap).
    Warn,
    /// Overdue, never backed up, or refused.
    Fail,
}

impl Health {
    /// Its word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }
}

/// The overview: every unit of this host.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The host name backups are recorded under.
    pub host: String,
    /// The engine, when it answers (`docker 28.2.2`).
    pub engine: Option<String>,
    /// Why the unit list comes from the run records instead of the engine.
    pub engine_error: Option<String>,
    /// When this was computed.
    pub now: Timestamp,
    /// One row per unit, worst first.
    pub units: Vec<UnitRow>,
}

/// One unit in the overview.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRow {
    /// Unit name.
    pub name: String,
    /// `stack` or `standalone`.
    pub kind: Option<String>,
    /// Start of its last successful backup.
    pub last_success: Option<Timestamp>,
    /// Hours since then.
    pub age_hours: Option<f64>,
    /// Its freshness threshold (`max-age-hours`).
    pub max_age_hours: u32,
    /// Older than the threshold, or never backed up.
    pub overdue: bool,
    /// The status of its last backup.
    pub last_status: Option<String>,
    /// Downtime of its last backup.
    pub last_downtime_seconds: Option<f64>,
    /// Mounts that should be protected and are not.
    pub coverage_gaps: usize,
    /// Its last drill from the dashboard.
    pub last_drill: Option<DrillRecord>,
    /// Overall.
    pub health: Health,
    /// Why it is not ok.
    pub reasons: Vec<String>,
}

/// The engine's units (or, engine down, the names in the run records) and the engine's name.
async fn discover(loaded: &LoadedConfig) -> (Option<Vec<Unit>>, Option<String>, Option<String>) {
    let target = match loaded.engine_target() {
        Ok(target) => target,
        Err(error) => return (None, None, Some(error.to_string())),
    };
    let engine = match Engine::connect(target).await {
        Ok(engine) => engine,
        Err(error) => return (None, None, Some(error.to_string())),
    };
    let name = Some(engine.identity().to_string());
    match unit::discover_configured(&engine, loaded).await {
        Ok(units) => (Some(units), name, None),
        Err(error) => (None, name, Some(error.to_string())),
    }
}

/// The overview of this host.
pub async fn overview(loaded: &LoadedConfig, now: Timestamp) -> Overview {
    let (units, engine, engine_error) = discover(loaded).await;
    let records = history::load_local_for(loaded).records;
    let drills = drill_log::load(&loaded.env.state_dir());
    let mut rows: Vec<UnitRow> = match &units {
        Some(units) => units
            .iter()
            .map(|u| row(loaded, u.name.as_str(), Some(u), &records, &drills, now))
            .collect(),
        None => recorded_names(&records)
            .iter()
            .map(|name| row(loaded, name, None, &records, &drills, now))
            .collect(),
    };
    rows.sort_by(|a, b| b.health.cmp(&a.health).then_with(|| a.name.cmp(&b.name)));
    Overview {
        host: host_name(loaded),
        engine,
        engine_error,
        now,
        units: rows,
    }
}

/// The host name snapshots and run records of this configuration carry.
pub fn host_name(loaded: &LoadedConfig) -> String {
    loaded
        .config
        .repository
        .hostname
        .clone()
        .unwrap_or_else(kopi_docka_core::repo::this_hostname)
}

fn recorded_names(records: &[RunRecord]) -> Vec<String> {
    let mut names: Vec<String> = records
        .iter()
        .flat_map(|r| r.units.iter().map(|u| u.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The threshold that applies to `name`, as the freshness check has it.
fn max_age_hours(config: &kopi_docka_core::config::Config, name: &str) -> u32 {
    config
        .units
        .get(name)
        .and_then(|u| u.max_age_hours)
        .unwrap_or(config.monitoring.max_age_hours)
}

#[allow(clippy::cast_precision_loss, reason = "hours for display")]
fn hours_since(then: Timestamp, now: Timestamp) -> f64 {
    now.duration_since(then).as_secs_f64() / 3600.0
}

fn row(
    loaded: &LoadedConfig,
    name: &str,
    unit: Option<&Unit>,
    records: &[RunRecord],
    drills: &BTreeMap<String, DrillRecord>,
    now: Timestamp,
) -> UnitRow {
    let config = &loaded.config;
    let names = [name.to_owned()];
    // The daemon's own freshness rule, not a second copy of it.
    let overdue = history::overdue(records, &names, config, now);
    let last_success = history::stats(records)
        .into_iter()
        .find(|s| s.name == name)
        .and_then(|s| s.last_success);
    let last = records
        .iter()
        .rev()
        .find_map(|r| r.units.iter().find(|u| u.name == name));
    let coverage_gaps = unit.map_or(0, |u| u.coverage.summary.not_protected);
    let last_drill = drills.get(name).cloned();
    let mut reasons = Vec::new();
    let mut health = Health::Ok;
    let max_age = max_age_hours(config, name);
    if !overdue.is_empty() {
        health = Health::Fail;
        reasons.push(match last_success {
            Some(_) => format!("no successful backup within {max_age} h"),
            None => "never backed up successfully".to_owned(),
        });
    }
    if let Some(u) = unit {
        if let Some(why) = &u.refused {
            health = Health::Fail;
            reasons.push(format!("refused: {why}"));
        }
        for error in &u.policy_errors {
            health = Health::Fail;
            reasons.push(error.clone());
        }
    }
    let mut warn = |why: String| {
        health = health.max(Health::Warn);
        reasons.push(why);
    };
    if let Some(last) = last
        && last.failed()
    {
        warn(format!("last backup: {}", last.status));
    }
    if coverage_gaps > 0 {
        warn(format!("{coverage_gaps} mount(s) not protected"));
    }
    if let Some(drill) = &last_drill
        && !drill.passed
    {
        warn("last drill failed".to_owned());
    }
    UnitRow {
        name: name.to_owned(),
        kind: unit
            .map(|u| u.kind.to_string())
            .or_else(|| last.and_then(|l| l.kind.clone())),
        last_success,
        age_hours: last_success.map(|t| hours_since(t, now)),
        max_age_hours: max_age,
        overdue: !overdue.is_empty(),
        last_status: last.map(|l| l.status.to_string()),
        last_downtime_seconds: last.and_then(|l| l.downtime_seconds),
        coverage_gaps,
        last_drill,
        health,
        reasons,
    }
}

/// One run of a unit, for its history table and charts.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRun {
    /// The run.
    pub run_id: String,
    /// When it started.
    pub started_at: Timestamp,
    /// The unit's status in it.
    pub status: String,
    /// Its downtime.
    pub downtime_seconds: Option<f64>,
    /// Its wall time.
    pub duration_seconds: Option<f64>,
    /// New bytes stored.
    pub bytes_added: u64,
}

/// A unit's page.
#[derive(Debug, Clone, Serialize)]
pub struct UnitPage {
    /// The overview row.
    pub row: UnitRow,
    /// The unit on the engine (containers, mounts, coverage), when it answers.
    pub unit: Option<Unit>,
    /// Its restore points in the repository, newest first.
    pub points: Vec<RestorePoint>,
    /// Why the points could not be listed.
    pub points_error: Option<String>,
    /// Its runs, oldest first.
    pub runs: Vec<UnitRun>,
    /// The restore command for the chosen point (`?point=`), else for the newest complete one.
    pub restore_command: Option<String>,
    /// The point that command restores.
    pub chosen_point: Option<String>,
    /// The hooks that run for it, in run order: the global ones, then the unit's own.
    pub hooks: Vec<UnitHook>,
}

/// One hook of a unit's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitHook {
    /// `pre-stop`, `verify`, ...
    pub point: &'static str,
    /// `[hooks]` (every unit) or `[units."<name>".hooks]` (this one).
    pub from: &'static str,
    /// Where it runs: `host`, or `container <name>[ as <user>]`.
    pub runs: String,
    /// The command, its words as configured.
    pub argv: Vec<String>,
}

/// The hooks of `name` in run order: per point, the global one first (as they run).
fn unit_hooks(loaded: &LoadedConfig, name: &str) -> Vec<UnitHook> {
    use kopi_docka_core::config::Hook;
    let config = &loaded.config;
    let own = kopi_docka_core::unit::unit_config(config, name).map(|u| &u.hooks);
    let mut hooks = Vec::new();
    for (point, global) in config.hooks.points() {
        let unit = own.and_then(|set| set.get(point));
        for (from, hook) in [("[hooks]", global), ("this unit", unit)] {
            let Some(hook) = hook else { continue };
            let (runs, argv) = match hook {
                Hook::Host(argv) => ("host".to_owned(), argv.clone()),
                Hook::Container(c) => (
                    match &c.user {
                        Some(user) => format!("container {} as {user}", c.container),
                        None => format!("container {}", c.container),
                    },
                    c.argv.clone(),
                ),
            };
            hooks.push(UnitHook {
                point: point.as_str(),
                from,
                runs,
                argv,
            });
        }
    }
    hooks
}

/// A unit's page; `None` when neither the engine nor the records know it.
pub async fn unit_page(
    loaded: &LoadedConfig,
    name: &str,
    chosen: Option<&str>,
    now: Timestamp,
) -> Option<UnitPage> {
    let (units, _, _) = discover(loaded).await;
    let unit = units
        .as_ref()
        .and_then(|all| all.iter().find(|u| u.name.as_str() == name).cloned());
    let records = history::load_local_for(loaded).records;
    let runs: Vec<UnitRun> = records
        .iter()
        .filter_map(|r| {
            r.units.iter().find(|u| u.name == name).map(|u| UnitRun {
                run_id: r.run_id.clone(),
                started_at: r.started_at,
                status: u.status.to_string(),
                downtime_seconds: u.downtime_seconds,
                duration_seconds: u.duration_seconds,
                bytes_added: u.bytes_added,
            })
        })
        .collect();
    if unit.is_none() && runs.is_empty() {
        return None;
    }
    let drills = drill_log::load(&loaded.env.state_dir());
    let row = row(loaded, name, unit.as_ref(), &records, &drills, now);
    let (points, points_error) = match unit_points(loaded, name).await {
        Ok(points) => (points, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let point = match chosen {
        Some(id) => points.iter().find(|p| p.backup_id.as_str() == id),
        None => points.iter().find(|p| p.complete),
    };
    Some(UnitPage {
        row,
        unit,
        restore_command: point.map(|p| restore_command(loaded, p)),
        chosen_point: point.map(|p| p.backup_id.to_string()),
        points,
        points_error,
        runs,
        hooks: unit_hooks(loaded, name),
    })
}

async fn open_repo(loaded: &LoadedConfig) -> Result<Repo, String> {
    let settings = RepoSettings::from_config(loaded).map_err(|e| e.to_string())?;
    Repo::open(settings, Arc::new(kopi_docka_core::progress::Silent))
        .await
        .map_err(|e| e.to_string())
}

/// This host's restore points of `name`, newest first.
async fn unit_points(loaded: &LoadedConfig, name: &str) -> Result<Vec<RestorePoint>, String> {
    let repo = open_repo(loaded).await?;
    let snapshots = repo
        .snapshots(SnapshotFilter {
            host: Some(repo.settings().hostname.clone()),
            unit: Some(name.to_owned()),
            ..SnapshotFilter::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(points::group(&snapshots))
}

/// `kopi-docka [--config PATH] restore --unit NAME --backup-id ID`, quoted for a shell.
pub fn restore_command(loaded: &LoadedConfig, point: &RestorePoint) -> String {
    let mut words = vec!["kopi-docka".to_owned()];
    if let Some(path) = &loaded.path {
        words.push("--config".to_owned());
        words.push(shell_quote(&path.display().to_string()));
    }
    words.extend([
        "restore".to_owned(),
        "--unit".to_owned(),
        shell_quote(&point.unit),
        "--backup-id".to_owned(),
        shell_quote(point.backup_id.as_str()),
    ]);
    if !point.complete {
        words.push("--allow-incomplete".to_owned());
    }
    words.join(" ")
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The run history, filtered like `kopi-docka history`.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct HistoryFilter {
    /// Only runs with this unit.
    pub unit: Option<String>,
    /// Only failed runs.
    #[serde(default, deserialize_with = "checkbox")]
    pub failed: bool,
    /// Only runs since this time (`2026-11-01`, `7d`).
    pub since: Option<String>,
    /// Only the newest N (text: an empty form field is no limit).
    pub limit: Option<String>,
}

fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(matches!(text.as_deref(), Some("1" | "true" | "on" | "yes")))
}

/// The runs of this host, newest first, after `filter`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// The filter applied.
    pub filter: HistoryFilter,
    /// Why `since` was ignored.
    pub filter_error: Option<String>,
    /// The runs.
    pub runs: Vec<RunRecord>,
}

/// This host's runs after `filter`, newest first.
pub fn history_page(loaded: &LoadedConfig, filter: HistoryFilter) -> HistoryPage {
    let mut runs = history::load_local_for(loaded).records;
    let mut filter_error = None;
    let since = filter
        .since
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| {
            let parsed = history::parse_time(s.trim());
            if parsed.is_none() {
                filter_error = Some(format!(
                    "since = {s:?}: not a date (2026-11-01, 2026-11-01T02:00:00+01:00, 7d)"
                ));
            }
            parsed
        });
    let unit = filter.unit.as_deref().filter(|u| !u.is_empty());
    runs.retain(|r| {
        since.is_none_or(|t| r.started_at >= t)
            && unit.is_none_or(|u| r.units.iter().any(|x| x.name == u))
            && (!filter.failed
                || match unit {
                    Some(u) => r.units.iter().any(|x| x.name == u && x.failed()),
                    None => r.failed(),
                })
    });
    runs.reverse();
    match filter.limit.as_deref().map(str::trim) {
        None | Some("") => {}
        Some(text) => match text.parse() {
            Ok(limit) => runs.truncate(limit),
            Err(_) => filter_error = Some(format!("limit = {text:?}: not a number")),
        },
    }
    HistoryPage {
        filter,
        filter_error,
        runs,
    }
}

/// Every host that wrote run records to the repository.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    /// This host's name.
    pub this_host: String,
    /// Hosts by name.
    pub hosts: Vec<FleetHost>,
    /// Run records that could not be read.
    pub unreadable: usize,
}

/// One host of the fleet, as its run records in the repository show it.
#[derive(Debug, Clone, Serialize)]
pub struct FleetHost {
    /// Its name.
    pub host: String,
    /// Its latest run.
    pub last_run: Option<Timestamp>,
    /// Its units, judged by this host's thresholds.
    pub units: Vec<FleetUnit>,
    /// Worst of its units.
    pub health: Health,
}

/// One unit of another (or this) host.
#[derive(Debug, Clone, Serialize)]
pub struct FleetUnit {
    /// Unit name.
    pub name: String,
    /// Its last successful backup.
    pub last_success: Option<Timestamp>,
    /// Hours since then.
    pub age_hours: Option<f64>,
    /// The threshold.
    pub max_age_hours: u32,
    /// Its last backup's status.
    pub last_status: Option<String>,
    /// ok, warn (last run failed), fail (overdue).
    pub health: Health,
}

/// The fleet from the run records in the repository (`type=run` snapshots of every host).
pub async fn fleet(loaded: &LoadedConfig, now: Timestamp) -> Result<Fleet, String> {
    let repo = open_repo(loaded).await?;
    let scratch = loaded
        .env
        .cache_dir()
        .join(format!("web-fleet-{}", std::process::id()));
    let loaded_records = history::load_from_repo(&repo, None, &scratch).await;
    if let Err(error) = std::fs::remove_dir_all(&scratch)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %scratch.display(), "cannot remove the scratch dir");
    }
    let loaded_records = loaded_records.map_err(|e| e.to_string())?;
    let mut by_host: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
    for record in loaded_records.records {
        let host = record.host.clone().unwrap_or_else(|| "?".to_owned());
        by_host.entry(host).or_default().push(record);
    }
    let hosts = by_host
        .into_iter()
        .map(|(host, records)| fleet_host(loaded, host, &records, now))
        .collect();
    Ok(Fleet {
        this_host: host_name(loaded),
        hosts,
        unreadable: loaded_records.unreadable.len(),
    })
}

fn fleet_host(
    loaded: &LoadedConfig,
    host: String,
    records: &[RunRecord],
    now: Timestamp,
) -> FleetHost {
    let names = recorded_names(records);
    let overdue = history::overdue(records, &names, &loaded.config, now);
    let stats = history::stats(records);
    let units: Vec<FleetUnit> = names
        .iter()
        .map(|name| {
            let last_success = stats
                .iter()
                .find(|s| &s.name == name)
                .and_then(|s| s.last_success);
            let last = records
                .iter()
                .rev()
                .find_map(|r| r.units.iter().find(|u| &u.name == name));
            let health = if overdue.iter().any(|o| &o.unit == name) {
                Health::Fail
            } else if last.is_some_and(history::UnitRecord::failed) {
                Health::Warn
            } else {
                Health::Ok
            };
            FleetUnit {
                name: name.clone(),
                last_success,
                age_hours: last_success.map(|t| hours_since(t, now)),
                max_age_hours: max_age_hours(&loaded.config, name),
                last_status: last.map(|l| l.status.to_string()),
                health,
            }
        })
        .collect();
    FleetHost {
        host,
        last_run: records.last().map(|r| r.started_at),
        health: units.iter().map(|u| u.health).max().unwrap_or(Health::Ok),
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_commands_are_quoted_for_a_shell() {
        assert_eq!(shell_quote("web-1"), "web-1");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
