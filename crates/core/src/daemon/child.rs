//! One backup as a child process. The daemon stays responsive meanwhile: the watchdog task
//! keeps pinging, a stop is passed on as SIGTERM (the backup restarts what it stopped, and the
//! daemon waits for it), a reload is remembered for after the run.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::mpsc;

use super::{DaemonError, DaemonEvent, local_time};
use crate::systemd::notify::{self, ServiceManager};

/// The command line of one backup run. The caller builds it (it knows its own binary and
/// arguments); the daemon only runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupCommand {
    /// The program, an absolute path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// What happened around a run, for the loop to act on afterwards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunOutcome {
    /// A stop came during the run: the daemon stops now.
    pub stop: bool,
    /// A reload came during the run: the settings are resolved again now.
    pub reload: bool,
}

/// Runs `command` once and waits for it, whatever `events` say. `on_tick` runs at each tick
/// of `ticks` meanwhile: the freshness check must not wait for a run that hangs.
pub(super) async fn run_backup(
    command: &BackupCommand,
    events: &mut mpsc::Receiver<DaemonEvent>,
    manager: &ServiceManager,
    ticks: &mut tokio::time::Interval,
    mut on_tick: impl AsyncFnMut(),
) -> Result<RunOutcome, DaemonError> {
    let mut process = tokio::process::Command::new(&command.program);
    process.args(&command.args);
    // The backup is not the service's main process: it must not talk to systemd itself.
    for name in notify::ENV {
        process.env_remove(name);
    }
    let mut child = process.spawn().map_err(DaemonError::Spawn)?;
    let started = Timestamp::now();
    manager.notify("STATUS=backing up");
    tracing::info!("backup started");
    let mut outcome = RunOutcome::default();
    let mut listening = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(DaemonError::Wait)?,
            _ = ticks.tick() => on_tick().await,
            event = events.recv(), if listening => match event {
                Some(DaemonEvent::Stop) => stop_child(&child, &mut outcome, manager),
                Some(DaemonEvent::Reload) => {
                    tracing::info!("SIGHUP: the configuration is reloaded after this backup");
                    outcome.reload = true;
                }
                // Nobody left to tell us to stop: stop, once, the safe way.
                None => {
                    listening = false;
                    stop_child(&child, &mut outcome, manager);
                }
            },
        }
    };
    let finished = Finished::from(status);
    if finished == Finished::Ok {
        tracing::info!("backup finished: {finished}");
    } else {
        tracing::warn!("backup finished: {finished}");
    }
    manager.notify(&last_backup_status(started, finished, &TimeZone::system()));
    Ok(outcome)
}

/// Passes a stop on to the backup, which starts the containers it stopped before it exits.
fn stop_child(child: &tokio::process::Child, outcome: &mut RunOutcome, manager: &ServiceManager) {
    outcome.stop = true;
    manager.notify(
        "STOPPING=1\nSTATUS=stopping: the running backup starts the containers it stopped first",
    );
    tracing::warn!("stopping: waiting for the backup to start the containers it stopped");
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
        && let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
    {
        tracing::warn!(%error, "cannot pass SIGTERM on to the backup");
    }
}

/// How a backup process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// Exit code 0.
    Ok,
    /// Another exit code.
    Code(i32),
    /// No exit code: a signal ended it.
    Signal,
}

impl From<ExitStatus> for Finished {
    fn from(status: ExitStatus) -> Self {
        match status.code() {
            Some(0) => Self::Ok,
            Some(code) => Self::Code(code),
            None => Self::Signal,
        }
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Code(code) => write!(f, "exit code {code}"),
            Self::Signal => f.write_str("killed by a signal"),
        }
    }
}

/// The `STATUS=` line after a run, until the next one.
fn last_backup_status(started: Timestamp, finished: Finished, tz: &TimeZone) -> String {
    let local = local_time(started, tz, "%Y-%m-%d %H:%M");
    format!("STATUS=last backup {local}: {finished}")
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    #[test]
    fn exit_statuses_say_how_the_backup_ended() {
        // Raw wait statuses: the exit code in the second byte, a signal in the first.
        assert_eq!(Finished::from(ExitStatus::from_raw(0)), Finished::Ok);
        assert_eq!(
            Finished::from(ExitStatus::from_raw(3 << 8)),
            Finished::Code(3)
        );
        assert_eq!(Finished::from(ExitStatus::from_raw(9)), Finished::Signal);
        assert_eq!(Finished::Ok.to_string(), "ok");
        assert_eq!(Finished::Code(1).to_string(), "exit code 1");
        assert_eq!(Finished::Signal.to_string(), "killed by a signal");
    }

    #[test]
    fn the_status_line_names_the_start_and_the_result() {
        let started: Timestamp = "2026-12-04T02:00:30Z".parse().unwrap();
        assert_eq!(
            last_backup_status(started, Finished::Code(1), &TimeZone::UTC),
            "STATUS=last backup 2026-12-04 02:00: exit code 1"
        );
    }

    #[tokio::test]
    async fn a_stop_during_the_backup_is_passed_on_and_waited_for() {
        let (events, mut receiver) = mpsc::channel(4);
        let command = BackupCommand {
            program: "/bin/sh".into(),
            // Exits 7 on SIGTERM, like a backup that restarted what it stopped and then failed.
            args: ["-c", "trap 'kill $!; exit 7' TERM; sleep 30 & wait"]
                .map(OsString::from)
                .to_vec(),
        };
        events.send(DaemonEvent::Reload).await.unwrap();
        let run = tokio::spawn(async move {
            run_backup(
                &command,
                &mut receiver,
                &ServiceManager::default(),
                &mut hourly(),
                async || {},
            )
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        events.send(DaemonEvent::Stop).await.unwrap();
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("the child must end on SIGTERM")
            .unwrap()
            .unwrap();
        assert_eq!(
            outcome,
            RunOutcome {
                stop: true,
                reload: true
            }
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let (_events, mut receiver) = mpsc::channel(1);
        let command = BackupCommand {
            program: "/nonexistent/kopi-docka".into(),
            args: Vec::new(),
        };
        let error = run_backup(
            &command,
            &mut receiver,
            &ServiceManager::default(),
            &mut hourly(),
            async || {},
        )
        .await
        .unwrap_err();
        assert!(matches!(error, DaemonError::Spawn(_)), "{error}");
    }

    fn hourly() -> tokio::time::Interval {
        let start = tokio::time::Instant::now() + std::time::Duration::from_hours(1);
        tokio::time::interval_at(start, std::time::Duration::from_hours(1))
    }

    /// The periodic check (the daemon's freshness alert) keeps running while a backup hangs.
    #[tokio::test]
    async fn checks_keep_running_while_a_backup_hangs() {
        let (_events, mut receiver) = mpsc::channel(1);
        let command = BackupCommand {
            program: "/bin/sleep".into(),
            args: vec![OsString::from("2")],
        };
        let period = std::time::Duration::from_millis(200);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut checks = 0;
        run_backup(
            &command,
            &mut receiver,
            &ServiceManager::default(),
            &mut ticks,
            async || checks += 1,
        )
        .await
        .unwrap();
        assert!(
            checks >= 3,
            "{checks} checks during a 2 s run, one due every 200 ms"
        );
    }
}
