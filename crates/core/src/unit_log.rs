//! Each unit's daily log file, beside the journal-friendly log on stderr:
//! `<state>/logs/<unit>/<YYYY-MM-DD>.log` (UTC date; directories 0700, files 0600), the
//! seed orchestrator's `backup-<stack>-<date>.log`.
//!
//! A backup run wraps each unit in a span and [`attach`]es the unit's file of the day to it;
//! the [`layer`] the binary installs appends every event inside that span (info and above of
//! kopi-docka's own events, warnings of the libraries) to that file, one line each, so a
//! unit's file holds its lines and no other unit's. A unit whose run passes midnight keeps
//! writing to the file of the day it started. [`prune`] removes the files older than
//! `[backup] unit-log-days`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Registry};

/// The open file of one unit's day, kept in its span's extensions.
struct UnitLogFile(Mutex<std::fs::File>);

/// The layer that writes the events inside [`attach`]ed spans to their unit's file. The
/// binary installs it beside its stderr or journald layer.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let targets = Targets::new()
        .with_target("kopi_docka_core", LevelFilter::INFO)
        .with_target("kopi_docka", LevelFilter::INFO)
        .with_target("opendal", LevelFilter::OFF)
        .with_default(LevelFilter::WARN);
    UnitLogLayer.with_filter(targets)
}

/// The file `unit`'s lines of a run on `date` go to.
pub fn file_for(logs: &Path, unit: &str, date: jiff::civil::Date) -> PathBuf {
    logs.join(unit).join(format!("{date}.log"))
}

/// A unit name that is one plain path component (names are checked by discovery; a refused
/// one never gets a file).
fn safe_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Sends the events inside `span` to `unit`'s file of today (UTC) under `logs`, created 0600
/// in a 0700 directory. Returns the file; `Err` says why there is none (the run goes on).
/// Without the [`layer`] installed (a library user, a test) the file is created but stays
/// empty.
pub fn attach(span: &tracing::Span, logs: &Path, unit: &str) -> Result<PathBuf, String> {
    if !safe_component(unit) {
        return Err(format!("unit name `{unit}` cannot name a log directory"));
    }
    let Some(id) = span.id() else {
        // No subscriber wants the span: nobody would write the file either.
        return Err("logging is off".to_owned());
    };
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let path = file_for(logs, unit, today);
    let dir = logs.join(unit);
    crate::durable::create_dir_all(&dir, 0o700)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
        })
        .map(|file| {
            // `get_default` takes an FnMut: the file moves out of an Option, once.
            let mut file = Some(file);
            tracing::dispatcher::get_default(|dispatch| {
                if let Some(registry) = dispatch.downcast_ref::<Registry>()
                    && let Some(span) = registry.span(&id)
                    && let Some(file) = file.take()
                {
                    span.extensions_mut().insert(UnitLogFile(Mutex::new(file)));
                }
            });
            path.clone()
        })
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// Removes the daily files older than `days` days before `today` (and unit directories left
/// empty). Returns what could not be removed.
pub fn prune(logs: &Path, days: u32, today: jiff::civil::Date) -> Vec<String> {
    let Ok(units) = std::fs::read_dir(logs) else {
        return Vec::new();
    };
    let oldest = today
        .checked_sub(jiff::Span::new().days(i64::from(days)))
        .unwrap_or(today);
    let mut problems = Vec::new();
    for dir in units.filter_map(Result::ok).map(|e| e.path()) {
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for file in files.filter_map(Result::ok).map(|e| e.path()) {
            let date = file
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|d| d.parse::<jiff::civil::Date>().ok());
            if date.is_some_and(|d| d < oldest)
                && let Err(error) = std::fs::remove_file(&file)
            {
                problems.push(format!("cannot remove {}: {error}", file.display()));
            }
        }
        // Only succeeds once empty: a unit that still has files keeps its directory.
        if std::fs::remove_dir(&dir).is_ok() {
            tracing::debug!(dir = %dir.display(), "removed an empty unit log directory");
        }
    }
    problems
}

/// Writes events to the file of the nearest enclosing span that has one.
struct UnitLogLayer;

impl<S> Layer<S> for UnitLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let extensions = span.extensions();
            let Some(UnitLogFile(file)) = extensions.get::<UnitLogFile>() else {
                continue;
            };
            let line = format_line(event);
            if let Ok(mut file) = file.lock() {
                // A full disk must not stop a backup, and a failure to log cannot be logged
                // from inside the logger: the line still went to stderr or the journal.
                let _ = file.write_all(line.as_bytes());
            }
            return;
        }
    }
}

/// `2026-12-05T21:10:14.123Z  INFO kopi_docka_core::stop: stopped container=app-db-1`.
fn format_line(event: &tracing::Event<'_>) -> String {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut line = format!(
        "{now} {:>5} {}: {}",
        meta.level(),
        meta.target(),
        fields.message
    );
    line.push_str(&fields.rest);
    line.push('\n');
    line
}

/// An event's message and its other fields as ` key=value`.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            // Writing into a String cannot fail.
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Lines inside a unit's span go to its file of the day (0600, in a 0700 directory); the
    /// other unit's lines and lines outside any unit do not.
    #[test]
    fn a_units_lines_go_to_its_file_only() {
        let logs = tempfile::tempdir().unwrap();
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            let (one, two) = (
                tracing::info_span!("unit", unit = "one"),
                tracing::info_span!("unit", unit = "two"),
            );
            let file_one = attach(&one, logs.path(), "one").unwrap();
            let file_two = attach(&two, logs.path(), "two").unwrap();
            one.in_scope(|| {
                tracing::info!(container = "one-db", "stopped");
                tracing::debug!("not at info");
            });
            two.in_scope(|| tracing::info!(container = "two-db", "stopped"));
            tracing::info!("outside any unit");
            let text = std::fs::read_to_string(&file_one).unwrap();
            assert!(
                text.contains("stopped container=\"one-db\"")
                    || text.contains("stopped container=one-db"),
                "{text}"
            );
            assert!(
                !text.contains("two-db")
                    && !text.contains("outside")
                    && !text.contains("not at info"),
                "{text}"
            );
            assert!(
                std::fs::read_to_string(&file_two)
                    .unwrap()
                    .contains("two-db")
            );
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&file_one), 0o600);
            assert_eq!(mode(file_one.parent().unwrap()), 0o700);
        });
        assert!(attach(&tracing::Span::none(), logs.path(), "../x").is_err());
    }

    /// Files older than the kept days go, newer ones and other files stay.
    #[test]
    fn prune_keeps_the_last_days() {
        let logs = tempfile::tempdir().unwrap();
        let today: jiff::civil::Date = "2026-12-05".parse().unwrap();
        for (unit, day) in [
            ("a", "2026-11-04"),
            ("a", "2026-11-05"),
            ("a", "2026-12-05"),
            ("b", "2026-01-01"),
        ] {
            std::fs::create_dir_all(logs.path().join(unit)).unwrap();
            std::fs::write(logs.path().join(unit).join(format!("{day}.log")), "x").unwrap();
        }
        std::fs::write(logs.path().join("a").join("notes.txt"), "x").unwrap();
        assert!(prune(logs.path(), 30, today).is_empty());
        let left = |unit: &str| {
            let mut names: Vec<String> = std::fs::read_dir(logs.path().join(unit))
                .map(|d| {
                    d.map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            names
        };
        assert_eq!(left("a"), ["2026-11-05.log", "2026-12-05.log", "notes.txt"]);
        assert!(
            !logs.path().join("b").exists(),
            "an emptied unit directory goes"
        );
    }
}
