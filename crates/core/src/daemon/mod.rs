//! The daemon: backs up on its own schedule and keeps systemd informed (`Type=notify`,
//! `STATUS=`, the watchdog).
//!
//! It owns the schedule loop (the next run counts from the last recorded run or the last
//! attempt, whichever is later; sleeps are cut short so wall-clock changes are noticed), the
//! journal recovery at start, the freshness check (`freshness`), each backup as a child
//! process (`child`, run from a [`BackupCommand`]) and the status report ([`ServiceStatus`]).
//!
//! Signals are not its business: the caller installs the handlers and sends [`DaemonEvent`]s.
//! A stop during a backup is passed on to the child, which starts what it stopped; the daemon
//! waits for it. Nothing here prints: what happens goes to `tracing` and to systemd.

mod child;
mod freshness;
mod status;

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

pub use child::BackupCommand;
pub use status::{ServiceStatus, status};

use crate::config::LoadedConfig;
use crate::docker::Engine;
use crate::history;
use crate::lock::{DAEMON_LOCK, Lock, LockError, LockMode};
use crate::schedule::Schedule;
use crate::stop;
use crate::systemd::notify::ServiceManager;

/// What the daemon runs with; the caller resolves it again on reload.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// The configuration (and where it came from).
    pub loaded: LoadedConfig,
    /// When to back up.
    pub schedule: Schedule,
    /// The units the daemon is responsible for; empty means all.
    pub units: Vec<String>,
    /// How to run one backup.
    pub backup: BackupCommand,
}

/// What the caller tells a running daemon (SIGTERM/SIGINT and SIGHUP, in the CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonEvent {
    /// Stop: after the running backup, if any, has started what it stopped.
    Stop,
    /// Resolve the settings again (after the running backup, if any).
    Reload,
}

/// Why the daemon could not run on.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the daemon lock of this state directory, or it cannot be taken.
    #[error("another kopi-docka daemon uses this state directory")]
    Locked(#[source] LockError),
    /// The backup process cannot be started.
    #[error("starting the backup")]
    Spawn(#[source] std::io::Error),
    /// Waiting for the backup process failed.
    #[error("waiting for the backup")]
    Wait(#[source] std::io::Error),
}

/// The longest the daemon sleeps before it looks at the wall clock again.
pub const WAKE_UP_EVERY: Duration = Duration::from_mins(5);

/// How often the daemon looks for overdue units between runs.
pub const FRESHNESS_EVERY: Duration = Duration::from_hours(1);

/// Runs the daemon until [`DaemonEvent::Stop`] (or until `events` has no sender left).
///
/// Takes the daemon lock, starts the watchdog, starts containers a killed run left stopped,
/// says `READY=1`, then backs up whenever `settings.schedule` says so. On
/// [`DaemonEvent::Reload`], `reload` gives the new settings; when it fails, the old ones stay
/// (and the error is logged).
pub async fn run<E: fmt::Display>(
    manager: &ServiceManager,
    mut settings: DaemonSettings,
    mut reload: impl FnMut() -> Result<DaemonSettings, E>,
    mut events: mpsc::Receiver<DaemonEvent>,
) -> Result<(), DaemonError> {
    let state_dir = settings.loaded.env.state_dir();
    let _daemon_lock = Lock::try_acquire(&state_dir.locks(), DAEMON_LOCK, LockMode::Exclusive)
        .map_err(DaemonError::Locked)?;
    manager.spawn_watchdog();
    recover_journal(&settings.loaded).await;
    manager.notify("READY=1\nSTATUS=started");
    tracing::info!(schedule = %settings.schedule, "daemon started");
    // Missed backups are found even when backups stop running entirely: at start, after every
    // run, and every hour.
    freshness::check(&settings).await;
    let mut freshness_ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + FRESHNESS_EVERY,
        FRESHNESS_EVERY,
    );

    let mut reload_due = false;
    // A run that failed before writing its record (engine down) still counts as a run: an
    // interval schedule must not turn into a retry loop.
    let mut last_attempt: Option<Timestamp> = None;
    let mut announced = None;
    loop {
        if std::mem::take(&mut reload_due) {
            settings = reloaded(&mut reload, settings);
            // Say it again, even when unchanged: the reload is visible in `systemctl status`.
            announced = None;
        }
        let now = Timestamp::now();
        let tz = TimeZone::system();
        let last_run = history::last_run_started(&settings.loaded.env.state_dir());
        let next = next_run(&settings.schedule, now, last_run, last_attempt, &tz);
        if announced != Some(next) {
            announced = Some(next);
            let local = local_time(next, &tz, "%Y-%m-%d %H:%M:%S %Z");
            manager.notify(&format!("STATUS=idle; next backup {local}"));
            tracing::info!(next = %local, "waiting for the next backup");
        }
        tokio::select! {
            () = tokio::time::sleep(sleep_until(now, next)) => {
                if Timestamp::now() < next {
                    continue;
                }
                last_attempt = Some(Timestamp::now());
                let outcome = child::run_backup(
                    &settings.backup,
                    &mut events,
                    manager,
                    &mut freshness_ticks,
                    async || freshness::check(&settings).await,
                )
                .await?;
                reload_due = outcome.reload;
                if outcome.stop {
                    break;
                }
                freshness::check(&settings).await;
            }
            event = events.recv() => match event {
                Some(DaemonEvent::Reload) => reload_due = true,
                // Nobody left to tell us to stop: stop now, while it is safe.
                Some(DaemonEvent::Stop) | None => break,
            },
            _ = freshness_ticks.tick() => freshness::check(&settings).await,
        }
    }
    manager.notify("STOPPING=1\nSTATUS=stopped");
    tracing::info!("daemon stopped");
    Ok(())
}

/// When the next backup is due: the schedule's next time after `now`, counting an interval
/// from the later of the last recorded run and the last attempt.
fn next_run(
    schedule: &Schedule,
    now: Timestamp,
    last_run: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
    tz: &TimeZone,
) -> Timestamp {
    schedule.next_after(now, last_run.max(last_attempt), tz)
}

/// How long to sleep before looking again. Sleeping is monotonic, schedules are wall-clock:
/// never longer than [`WAKE_UP_EVERY`], so a suspend or a clock step is noticed within minutes
/// (the loop recomputes the next run).
fn sleep_until(now: Timestamp, next: Timestamp) -> Duration {
    Duration::try_from(now.duration_until(next))
        .unwrap_or(Duration::ZERO)
        .min(WAKE_UP_EVERY)
}

/// `at` in `tz`, for `STATUS=` lines and logs.
fn local_time(at: Timestamp, tz: &TimeZone, format: &str) -> String {
    at.to_zoned(tz.clone()).strftime(format).to_string()
}

/// The new settings after a reload; the old ones when the new config is broken (said loudly).
fn reloaded<E: fmt::Display>(
    reload: &mut impl FnMut() -> Result<DaemonSettings, E>,
    old: DaemonSettings,
) -> DaemonSettings {
    match reload() {
        Ok(new) => {
            tracing::info!(schedule = %new.schedule, "configuration reloaded");
            new
        }
        Err(error) => {
            tracing::error!("configuration NOT reloaded, keeping the old one: {error:#}");
            old
        }
    }
}

/// Starts containers a killed run left stopped, like every backup does first: the daemon may
/// be the first kopi-docka process after a crash or power cut.
async fn recover_journal(loaded: &LoadedConfig) {
    let engine = match loaded.engine_target() {
        Ok(host) => Engine::connect(host).await,
        Err(error) => {
            tracing::warn!("{error}");
            return;
        }
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(error) => {
            tracing::warn!("cannot check for containers left stopped: {error}");
            return;
        }
    };
    let health = loaded.config.backup.health_timeout();
    let report = match stop::recover_now(&engine, &loaded.env.state_dir(), health).await {
        Ok(report) => report,
        Err(LockError::Busy { .. }) => {
            tracing::info!("a backup is running; it starts the containers it stopped itself");
            return;
        }
        Err(error) => {
            tracing::warn!("{error}");
            return;
        }
    };
    for container in report.started {
        tracing::warn!(container = %container.name, "started a container a killed run left stopped");
    }
    for error in report.errors {
        tracing::error!("{error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_interval_counts_from_the_later_of_last_run_and_last_attempt() {
        let every_6h: Schedule = "every 6h".parse().unwrap();
        let now = at("2026-12-04T12:00:00Z");
        let tz = TimeZone::UTC;
        // Nothing ever ran or was tried: at once.
        assert_eq!(next_run(&every_6h, now, None, None, &tz), now);
        // Only a record: six hours after it.
        let run = at("2026-12-04T10:00:00Z");
        assert_eq!(
            next_run(&every_6h, now, Some(run), None, &tz),
            at("2026-12-04T16:00:00Z")
        );
        // A later attempt that left no record (engine down) wins: no retry loop.
        let attempt = at("2026-12-04T11:30:00Z");
        assert_eq!(
            next_run(&every_6h, now, Some(run), Some(attempt), &tz),
            at("2026-12-04T17:30:00Z")
        );
        assert_eq!(
            next_run(&every_6h, now, None, Some(attempt), &tz),
            at("2026-12-04T17:30:00Z")
        );
        // An older attempt does not pull the record back.
        assert_eq!(
            next_run(
                &every_6h,
                now,
                Some(run),
                Some(at("2026-12-04T01:00:00Z")),
                &tz
            ),
            at("2026-12-04T16:00:00Z")
        );
        // Long overdue: now, not in the past.
        assert_eq!(
            next_run(&every_6h, now, Some(at("2026-12-01T00:00:00Z")), None, &tz),
            now
        );
    }

    #[test]
    fn a_calendar_ignores_past_runs() {
        let daily: Schedule = "*-*-* 02:00:00".parse().unwrap();
        let now = at("2026-12-04T12:00:00Z");
        let tomorrow = at("2026-12-05T02:00:00Z");
        assert_eq!(next_run(&daily, now, None, None, &TimeZone::UTC), tomorrow);
        assert_eq!(
            next_run(&daily, now, Some(now), Some(now), &TimeZone::UTC),
            tomorrow
        );
    }

    #[test]
    fn sleeps_are_capped_so_the_wall_clock_is_checked() {
        let now = at("2026-12-04T12:00:00Z");
        assert_eq!(
            sleep_until(now, at("2026-12-04T12:01:00Z")),
            Duration::from_mins(1)
        );
        assert_eq!(sleep_until(now, at("2026-12-05T12:00:00Z")), WAKE_UP_EVERY);
        assert_eq!(sleep_until(now, now), Duration::ZERO);
        assert_eq!(sleep_until(now, at("2026-12-04T11:00:00Z")), Duration::ZERO);
    }

    #[test]
    fn a_broken_reload_keeps_the_old_settings() {
        let old = settings("every 1h");
        let kept = reloaded(&mut || Err::<DaemonSettings, _>("broken"), old.clone());
        assert_eq!(kept.schedule, old.schedule);
        let new = reloaded(&mut || Ok::<_, String>(settings("daily")), old);
        assert_eq!(new.schedule.as_str(), "daily");
    }

    fn settings(schedule: &str) -> DaemonSettings {
        use crate::config::Environment;
        DaemonSettings {
            loaded: LoadedConfig::defaults_in(Environment::bare(false)),
            schedule: schedule.parse().unwrap(),
            units: Vec::new(),
            backup: BackupCommand {
                program: "/bin/true".into(),
                args: Vec::new(),
            },
        }
    }
}
