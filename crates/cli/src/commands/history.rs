//! `kopi-docka history`

use std::fmt::Write as _;

use kopi_docka_core::history::{self, RecordSource, RunRecord};
use serde::Serialize;

use super::UsageError;
use crate::cli::{GlobalArgs, HistoryArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::{Render, human_bytes, zoned};

/// Past runs, or (`--stats`) statistics per unit.
#[derive(Serialize)]
struct Output {
    source: RecordSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    runs: Option<Vec<RunRecord>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<Vec<history::UnitStats>>,
    unreadable: Vec<String>,
}

impl Render for Output {
    fn human(&self) -> String {
        match (&self.runs, &self.stats) {
            (_, Some(stats)) => render_stats(stats),
            (Some(runs), None) => render(runs, self.source),
            (None, None) => render(&[], self.source),
        }
    }
}

/// Lists past runs.
pub async fn run(
    global: &GlobalArgs,
    args: &HistoryArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|text| {
            history::parse_time(text).ok_or_else(|| {
                UsageError(format!(
                    "--since `{text}` is not a date (2026-11-01), a time with an offset \
                     (2026-11-01T02:00:00+01:00), or a span back from now (7d, 12h)"
                ))
            })
        })
        .transpose()?;
    let loaded = crate::settings::config(global)?;
    let (found, source) = history::load(&loaded).await?;
    for (path, why) in &found.unreadable {
        tracing::warn!(path = %path.display(), "skipped an unreadable run record: {why}");
    }
    let runs = select(found.records, args, since);
    let unreadable = found
        .unreadable
        .iter()
        .map(|(p, why)| format!("{}: {why}", p.display()))
        .collect();
    let stats = args.stats.then(|| history::stats(&runs));
    printer.report(&Output {
        source,
        runs: (!args.stats).then_some(runs),
        stats,
        unreadable,
    })?;
    Ok(ExitCode::Ok)
}

/// Applies the filters; newest first.
fn select(
    records: Vec<RunRecord>,
    args: &HistoryArgs,
    since: Option<jiff::Timestamp>,
) -> Vec<RunRecord> {
    let mut runs: Vec<RunRecord> = records
        .into_iter()
        .rev()
        .filter(|r| since.is_none_or(|s| r.started_at >= s))
        .filter_map(|mut r| {
            if let Some(unit) = &args.unit {
                r.units.retain(|u| &u.name == unit);
                if r.units.is_empty() {
                    return None;
                }
                if args.failed && !r.units.iter().any(history::UnitRecord::failed) {
                    return None;
                }
            } else if args.failed && !r.failed() {
                return None;
            }
            Some(r)
        })
        .collect();
    if let Some(n) = args.last {
        runs.truncate(n);
    }
    runs
}

fn local(t: jiff::Timestamp) -> String {
    zoned(t).strftime("%Y-%m-%d %H:%M %Z").to_string()
}

fn duration(seconds: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "display of a non-negative wall time"
    )]
    let s = seconds.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn render(runs: &[RunRecord], source: RecordSource) -> String {
    let mut out = String::new();
    if matches!(source, RecordSource::Repository) {
        out.push_str("(from the repository: no run records on this host)\n");
    }
    if runs.is_empty() {
        out.push_str("no runs match\n");
    }
    for run in runs {
        // Writing into a String cannot fail.
        let _ = writeln!(out, "{}  {}", local(run.started_at), run.run_id);
        for u in &run.units {
            let mut facts: Vec<String> = u.duration_seconds.map(duration).into_iter().collect();
            facts.push(
                u.downtime_seconds
                    .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s")),
            );
            facts.push(format!(
                "{} snapshots, {} added",
                u.snapshots,
                human_bytes(u.bytes_added)
            ));
            let _ = writeln!(
                out,
                "  {:<8} {} {}: {}",
                u.status,
                u.kind.as_deref().unwrap_or("unit"),
                u.name,
                facts.join(", ")
            );
            for e in &u.errors {
                let _ = writeln!(out, "           error: {e}");
            }
        }
        for e in &run.errors {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    out
}

fn render_stats(stats: &[history::UnitStats]) -> String {
    let mut out = String::new();
    if stats.is_empty() {
        out.push_str("no runs match\n");
    }
    for s in stats {
        let durations = s.duration_seconds.map_or_else(
            || "duration unknown".to_owned(),
            |(min, mean, max)| {
                format!(
                    "took {} / {} / {} (min/mean/max)",
                    duration(min),
                    duration(mean),
                    duration(max)
                )
            },
        );
        let _ = writeln!(
            out,
            "{}: {} runs, {} ok, {} failed; {durations}; max downtime {}; last success {}",
            s.name,
            s.runs,
            s.succeeded,
            s.failed,
            s.max_downtime_seconds
                .map_or_else(|| "none".to_owned(), |d| format!("{d:.1}s")),
            s.last_success.map_or_else(|| "never".to_owned(), local),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{assert_renders, fixtures};
    use history::{RecordedStatus, UnitRecord};

    fn unit(name: &str, status: &str, duration: f64, downtime: Option<f64>) -> UnitRecord {
        UnitRecord {
            name: name.into(),
            kind: Some(
                if name == "portainer" {
                    "standalone"
                } else {
                    "stack"
                }
                .into(),
            ),
            status: RecordedStatus::parse(status),
            duration_seconds: Some(duration),
            downtime_seconds: downtime,
            bytes_added: 7_340_032,
            snapshots: 4,
            errors: if status == "success" {
                Vec::new()
            } else {
                vec![format!(
                    "volume {name}_data: read error: input/output error"
                )]
            },
        }
    }

    /// Newest first, as `select` returns them.
    fn runs() -> Vec<RunRecord> {
        vec![
            RunRecord {
                run_id: "20261122T030000Z-0001".into(),
                started_at: fixtures::time("2026-11-22T03:00:00Z"),
                finished_at: Some(fixtures::time("2026-11-22T03:02:40Z")),
                host: Some(fixtures::HOST.into()),
                units: vec![
                    unit("nextcloud", "success", 31.4, Some(1.2)),
                    unit("portainer", "failed", 95.0, None),
                ],
                errors: vec![
                    "the disaster-recovery bundle was not refreshed: no passphrase".into(),
                ],
                repository: None,
            },
            RunRecord {
                run_id: "20261121T030000Z-0002".into(),
                started_at: fixtures::time("2026-11-21T03:00:00Z"),
                finished_at: None,
                host: None,
                units: vec![unit("nextcloud", "success", 29.0, Some(0.9))],
                errors: Vec::new(),
                repository: None,
            },
        ]
    }

    #[test]
    fn renders_runs() {
        assert_renders!(
            "history",
            &Output {
                source: RecordSource::Local,
                runs: Some(runs()),
                stats: None,
                unreadable: vec![
                    "/var/lib/kopi-docka/runs/broken.json: expected value at line 1".into()
                ],
            }
        );
    }

    #[test]
    fn renders_runs_from_the_repository() {
        assert_renders!(
            "history_repository_empty",
            &Output {
                source: RecordSource::Repository,
                runs: Some(Vec::new()),
                stats: None,
                unreadable: Vec::new(),
            }
        );
    }

    #[test]
    fn renders_stats() {
        assert_renders!(
            "history_stats",
            &Output {
                source: RecordSource::Local,
                runs: None,
                stats: Some(history::stats(&runs())),
                unreadable: Vec::new(),
            }
        );
    }
}
