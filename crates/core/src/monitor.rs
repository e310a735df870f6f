//! Monitoring from outside: healthchecks.io-style pings (also Uptime Kuma push monitors and
//! the like), and a Prometheus textfile-collector file with per-unit metrics.
//!
//! Both are best effort: a failed ping or an unwritable metrics file is reported to the caller,
//! never a reason for a backup to fail.

use std::fmt::Write as _;
use std::time::Duration;

use crate::backup::RunReport;
use crate::config::{Config, LoadedConfig, MonitoringConfig};
use crate::history::{self, RunRecord};
use crate::notify;
use crate::state::StateDir;

/// Which ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// A run starts: `<url>/start`.
    Start,
    /// It succeeded: `<url>`.
    Success,
    /// It failed: `<url>/fail`.
    Fail,
}

/// How long one ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The ping URL for `kind`: the suffix goes before a query string, so
/// `https://hc.example/ping/abc?rid=1` becomes `.../abc/start?rid=1`.
pub fn ping_url(base: &str, kind: Ping) -> String {
    let suffix = match kind {
        Ping::Start => "/start",
        Ping::Success => "",
        Ping::Fail => "/fail",
    };
    match base.split_once('?') {
        Some((path, query)) => format!("{}{suffix}?{query}", path.trim_end_matches('/')),
        None => format!("{}{suffix}", base.trim_end_matches('/')),
    }
}

/// Sends one ping with `log` as its body (truncated to 10 kB). `Ok` when no URL is configured.
pub async fn ping(config: &MonitoringConfig, kind: Ping, log: &str) -> Result<(), String> {
    let Some(base) = notify::secret(
        config.healthcheck_url.as_deref(),
        config.healthcheck_url_file.as_deref(),
        config.healthcheck_url_env.as_deref(),
    )
    .map_err(|e| format!("healthcheck ping: {e}"))?
    else {
        return Ok(());
    };
    let body: String = log.chars().take(10_000).collect();
    let client = reqwest::Client::builder()
        .timeout(PING_TIMEOUT)
        .user_agent(concat!("kopi-docka/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("healthcheck ping: {}", e.without_url()))?;
    // The URL holds the check's secret: errors never show it.
    let response = client
        .post(ping_url(&base, kind))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("healthcheck ping: {}", e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "healthcheck ping: the server answered HTTP {}",
            response.status()
        ))
    }
}

/// The Prometheus text exposition of the latest state of every unit in `records`.
pub fn textfile(records: &[RunRecord]) -> String {
    struct Metric {
        name: &'static str,
        help: &'static str,
    }
    const METRICS: [Metric; 7] = [
        Metric {
            name: "kopi_docka_unit_last_success_timestamp_seconds",
            help: "Unix time of the start of the unit's last successful backup.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_timestamp_seconds",
            help: "Unix time of the start of the unit's last backup.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_success",
            help: "1 when the unit's last backup succeeded, 0 otherwise.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_duration_seconds",
            help: "Wall time of the unit's last backup.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_downtime_seconds",
            help: "How long the unit was stopped during its last backup.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_bytes_added",
            help: "New bytes stored by the unit's last backup.",
        },
        Metric {
            name: "kopi_docka_unit_last_run_snapshots",
            help: "Snapshots made by the unit's last backup.",
        },
    ];
    let stats = history::stats(records);
    let mut latest: std::collections::BTreeMap<&str, (&RunRecord, &history::UnitRecord)> =
        std::collections::BTreeMap::new();
    for run in records {
        for unit in &run.units {
            latest.insert(&unit.name, (run, unit));
        }
    }
    let mut out = String::new();
    #[allow(clippy::cast_precision_loss, reason = "metric values are floats")]
    for (i, metric) in METRICS.iter().enumerate() {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} gauge", metric.name);
        for (name, (run, unit)) in &latest {
            let value = match i {
                0 => stats
                    .iter()
                    .find(|s| s.name == *name)
                    .and_then(|s| s.last_success)
                    .map(|t| t.as_second() as f64),
                1 => Some(run.started_at.as_second() as f64),
                2 => Some(if unit.failed() { 0.0 } else { 1.0 }),
                3 => unit.duration_seconds,
                4 => Some(unit.downtime_seconds.unwrap_or(0.0)),
                5 => Some(unit.bytes_added as f64),
                _ => Some(unit.snapshots as f64),
            };
            if let Some(value) = value {
                let _ = writeln!(
                    out,
                    "{}{{unit=\"{}\",kind=\"{}\"}} {value}",
                    metric.name,
                    label(name),
                    label(unit.kind.as_deref().unwrap_or("unknown"))
                );
            }
        }
    }
    out
}

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// After a run: rewrites the textfile from the local records, pings success or failure, and
/// sends the run's notification when wanted. Returns what went wrong, for the user to see;
/// none of it fails the run.
pub async fn after_run(loaded: &LoadedConfig, report: &RunReport) -> Vec<String> {
    let config = &loaded.config;
    let mut problems = Vec::new();
    if let Some(path) = &config.monitoring.prometheus_textfile {
        let records = history::load_local_for(loaded).records;
        // node_exporter reads it as another user: world-readable, and it holds no secret.
        if let Err(error) =
            crate::durable::write_file(path.as_path(), textfile(&records).as_bytes(), 0o644)
        {
            problems.push(format!(
                "cannot write the Prometheus textfile {path}: {error}"
            ));
        }
    }
    let message = notify::run_message(report);
    let kind = if message.level == notify::Level::Failure {
        Ping::Fail
    } else {
        Ping::Success
    };
    let log = format!("{}\n{}", message.title, message.body);
    if let Err(error) = ping(&config.monitoring, kind, &log).await {
        problems.push(error);
    }
    if notify::wanted(&config.notifications, message.level) {
        for delivery in notify::send_all(&config.notifications, &message).await {
            if let Some(error) = delivery.error {
                problems.push(format!("notification not delivered: {error}"));
            }
        }
    }
    problems
}

/// A run that ended before it could back up anything (`error` says why): pings `/fail` and
/// sends a failure notification. Returns what went wrong on the way.
pub async fn run_aborted(config: &Config, error: &str) -> Vec<String> {
    let host = config
        .repository
        .hostname
        .clone()
        .unwrap_or_else(crate::repo::this_hostname);
    let message = notify::Message {
        title: format!("kopi-docka on {host}: BACKUP RUN FAILED before any unit"),
        body: error.to_owned(),
        level: notify::Level::Failure,
    };
    let mut problems = Vec::new();
    let log = format!("{}\n{}", message.title, message.body);
    if let Err(error) = ping(&config.monitoring, Ping::Fail, &log).await {
        problems.push(error);
    }
    if notify::wanted(&config.notifications, message.level) {
        for delivery in notify::send_all(&config.notifications, &message).await {
            if let Some(error) = delivery.error {
                problems.push(format!("notification not delivered: {error}"));
            }
        }
    }
    problems
}

/// Overdue units that have not been alerted for their current last success, with the one
/// message about all of them. Alerting again needs a new success first (then a new overdue
/// period), so a host that stopped backing up sends one alert, not one per check.
pub fn overdue_alert(
    loaded: &LoadedConfig,
    units: &[String],
    now: jiff::Timestamp,
) -> Option<(notify::Message, Vec<history::Overdue>)> {
    let config = &loaded.config;
    let state_dir = &loaded.env.state_dir();
    let records = history::load_local_for(loaded).records;
    let alerted = load_alerts(state_dir);
    let fresh: Vec<history::Overdue> = history::overdue(&records, units, config, now)
        .into_iter()
        .filter(|o| alerted.get(&o.unit) != Some(&alert_key(o)))
        .collect();
    if fresh.is_empty() {
        return None;
    }
    let lines: Vec<String> = fresh
        .iter()
        .map(|o| match o.last_success {
            Some(t) => format!(
                "{}: last successful backup {t} ({}h ago), threshold {}h",
                o.unit,
                now.duration_since(t).as_hours(),
                o.max_age_hours
            ),
            None => format!(
                "{}: never backed up successfully (threshold {}h)",
                o.unit, o.max_age_hours
            ),
        })
        .collect();
    let message = notify::Message {
        title: format!(
            "kopi-docka on {}: BACKUP OVERDUE for {} unit(s)",
            crate::repo::this_hostname(),
            fresh.len()
        ),
        body: lines.join("\n"),
        level: notify::Level::Failure,
    };
    Some((message, fresh))
}

/// Remembers that `overdue` were alerted (in `<state_dir>/overdue-alerts.json`).
pub fn mark_alerted(state_dir: &StateDir, overdue: &[history::Overdue]) -> std::io::Result<()> {
    let mut alerted = load_alerts(state_dir);
    for o in overdue {
        alerted.insert(o.unit.clone(), alert_key(o));
    }
    let json = serde_json::to_vec_pretty(&alerted).map_err(std::io::Error::other)?;
    crate::durable::create_dir_all(state_dir, 0o700)?;
    crate::durable::write_file(&state_dir.overdue_alerts(), &json, 0o600)
}

/// What an alert was about: the last success it saw.
fn alert_key(o: &history::Overdue) -> String {
    o.last_success
        .map_or_else(|| "never".to_owned(), |t| t.to_string())
}

fn load_alerts(state_dir: &StateDir) -> std::collections::BTreeMap<String, String> {
    std::fs::read(state_dir.overdue_alerts())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_urls() {
        assert_eq!(
            ping_url("https://hc/ping/abc", Ping::Start),
            "https://hc/ping/abc/start"
        );
        assert_eq!(
            ping_url("https://hc/ping/abc/", Ping::Success),
            "https://hc/ping/abc"
        );
        assert_eq!(
            ping_url("https://hc/ping/abc?rid=1", Ping::Fail),
            "https://hc/ping/abc/fail?rid=1"
        );
    }

    #[test]
    fn overdue_alerts_once_per_period() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::state::StateDir::new(dir.path());
        let runs = state.runs();
        std::fs::create_dir_all(&runs).unwrap();
        let write = |id: &str, at: &str| {
            std::fs::write(
                runs.join(format!("{id}.json")),
                format!(r#"{{"run_id":"{id}","started_at":"{at}","units":[{{"name":"app","status":"success"}}]}}"#),
            )
            .unwrap();
        };
        write("a", "2026-11-01T02:00:00Z");
        let loaded = LoadedConfig::defaults_in(crate::config::Environment {
            state_dir_env: Some(dir.path().to_path_buf()),
            ..crate::config::Environment::bare(false)
        });
        let units = ["app".to_owned(), "new".to_owned()];
        let now: jiff::Timestamp = "2026-11-10T00:00:00Z".parse().unwrap();
        let (message, overdue) = overdue_alert(&loaded, &units, now).unwrap();
        assert_eq!(overdue.len(), 2);
        assert!(
            message.title.contains("BACKUP OVERDUE for 2 unit(s)"),
            "{}",
            message.title
        );
        assert!(
            message.body.contains("new: never backed up"),
            "{}",
            message.body
        );
        mark_alerted(&state, &overdue).unwrap();
        assert!(overdue_alert(&loaded, &units, now).is_none());
        // A success, then silence again for longer than the threshold: a new alert.
        write("b", "2026-11-10T02:00:00Z");
        let later: jiff::Timestamp = "2026-11-12T00:00:00Z".parse().unwrap();
        let (_, again) = overdue_alert(&loaded, &units, later).unwrap();
        assert_eq!(
            again.iter().map(|o| o.unit.as_str()).collect::<Vec<_>>(),
            ["app"]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
