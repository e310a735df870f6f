//! Backups and drills started from the dashboard: the same `kopi-docka` command the daemon's
//! timer runs, as a child process. The child takes the run lock itself, without `--wait`: a
//! run already going on (timer, daemon, command line) refuses it, as the command line would.
//! The dashboard checks the lock first to say so at once, and runs one job at a time.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use kopi_docka_core::lock::{self, LockState, RUN_LOCK};
use kopi_docka_core::systemd::notify;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::sync::watch;

use crate::WebSettings;
use crate::drills;

/// How many finished jobs are remembered (for the live view and `/api/jobs`).
const KEEP: usize = 20;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `kopi-docka backup --unit NAME`.
    Backup,
    /// `kopi-docka restore --drill --unit NAME --yes --json`.
    Drill,
}

impl JobKind {
    /// The word in the URL and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::Drill => "drill",
        }
    }

    /// From the URL.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "backup" => Some(Self::Backup),
            "drill" => Some(Self::Drill),
            _ => None,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// The child runs.
    Running,
    /// It exited 0.
    Succeeded,
    /// It exited otherwise, or could not start.
    Failed,
}

/// One job, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Its number in this daemon's life.
    pub id: u64,
    /// Backup or drill.
    pub kind: JobKind,
    /// The unit.
    pub unit: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// Running, succeeded, failed.
    pub state: JobState,
    /// The child's exit code.
    pub exit_code: Option<i32>,
    /// The child's log lines so far (its progress).
    pub lines: Vec<String>,
}

/// Why a job was not started.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The dashboard runs one already.
    #[error("the dashboard is already running {} of {} (job {})", .0.kind.as_str(), .0.unit, .0.id)]
    Busy(Box<Job>),
    /// Another run holds the run lock.
    #[error(
        "another kopi-docka run holds the run lock (a backup or restore is going on): try again \
         when it has finished"
    )]
    RunLock,
    /// The child cannot be started.
    #[error("cannot start kopi-docka: {0}")]
    Spawn(String),
}

/// The jobs of this daemon.
#[derive(Debug, Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    jobs: VecDeque<Job>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    pid: Option<u32>,
    done: watch::Receiver<bool>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain data behind: go on with it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every remembered job, newest first.
    pub fn list(&self) -> Vec<Job> {
        self.lock().jobs.iter().rev().cloned().collect()
    }

    /// One job.
    pub fn get(&self, id: u64) -> Option<Job> {
        self.lock().jobs.iter().find(|j| j.id == id).cloned()
    }

    /// The running job, if any.
    pub fn running(&self) -> Option<Job> {
        self.lock()
            .jobs
            .iter()
            .find(|j| j.state == JobState::Running)
            .cloned()
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().jobs.iter_mut().find(|j| j.id == id) {
            change(job);
        }
    }

    /// Starts `kind` of `unit`, or says why not.
    pub fn start(
        self: &Arc<Self>,
        settings: &WebSettings,
        kind: JobKind,
        unit: &str,
    ) -> Result<Job, Refused> {
        let mut inner = self.lock();
        if let Some(job) = inner.jobs.iter().find(|j| j.state == JobState::Running) {
            return Err(Refused::Busy(Box::new(job.clone())));
        }
        let locks = settings.loaded.env.state_dir().locks();
        if lock::peek(&locks, RUN_LOCK) == LockState::Held {
            return Err(Refused::RunLock);
        }
        let mut command = child_command(settings, kind, unit);
        let mut child = command.spawn().map_err(|e| Refused::Spawn(e.to_string()))?;
        inner.next_id += 1;
        let job = Job {
            id: inner.next_id,
            kind,
            unit: unit.to_owned(),
            started_at: Timestamp::now(),
            finished_at: None,
            state: JobState::Running,
            exit_code: None,
            lines: Vec::new(),
        };
        tracing::info!(job = job.id, unit, "dashboard started a {}", kind.as_str());
        let (done_tx, done) = watch::channel(false);
        inner.running = Some(Running {
            pid: child.id(),
            done,
        });
        inner.jobs.push_back(job.clone());
        while inner.jobs.len() > KEEP {
            inner.jobs.pop_front();
        }
        drop(inner);
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        let jobs = self.clone();
        let id = job.id;
        let unit = unit.to_owned();
        tokio::spawn(async move {
            let reader = stderr.map(|stderr| {
                let jobs = jobs.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let line = plain(&line);
                        jobs.update(id, |job| job.lines.push(line));
                    }
                })
            });
            let mut out = String::new();
            if let Some(mut stdout) = stdout
                && let Err(error) = stdout.read_to_string(&mut out).await
            {
                tracing::warn!(%error, "cannot read the {}'s output", kind.as_str());
            }
            let status = child.wait().await;
            if let Some(reader) = reader
                && let Err(error) = reader.await
            {
                tracing::warn!(%error, "reading the child's log failed");
            }
            let code = status
                .as_ref()
                .ok()
                .and_then(std::process::ExitStatus::code);
            let succeeded = code == Some(0);
            if kind == JobKind::Drill {
                let tail = jobs.get(id).map(|j| j.lines).unwrap_or_default();
                // With `--json` the drill's verdict is on stdout, not in its log: show what
                // failed in the live view too. (The drill records its verdict itself.)
                let errors = drills::errors(&out, succeeded, &tail);
                jobs.update(id, |job| add_drill_errors(&mut job.lines, &errors));
            }
            jobs.update(id, |job| {
                job.finished_at = Some(Timestamp::now());
                job.exit_code = code;
                job.state = if succeeded {
                    JobState::Succeeded
                } else {
                    JobState::Failed
                };
            });
            tracing::info!(
                job = id,
                unit,
                ?code,
                "dashboard {} finished",
                kind.as_str()
            );
            jobs.lock().running = None;
            // Nobody waiting for it is fine: the receiver lives in `running`, gone now.
            done_tx.send_replace(true);
        });
        Ok(job)
    }

    /// SIGTERM to the running child (it starts what it stopped), then waits for its end.
    pub async fn stop(&self) {
        let running = self
            .lock()
            .running
            .as_ref()
            .map(|r| (r.pid, r.done.clone()));
        let Some((pid, mut done)) = running else {
            return;
        };
        if let Some(pid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
            && let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        {
            tracing::warn!(%error, "cannot pass SIGTERM on to the dashboard's job");
        }
        tracing::info!("waiting for the job the dashboard started");
        if done.wait_for(|d| *d).await.is_err() {
            tracing::debug!("the job ended before we could wait for it");
        }
    }
}

/// `kopi-docka [--config …] backup --unit=NAME` or `… restore --drill --unit=NAME --yes --json`,
/// its output piped.
fn child_command(settings: &WebSettings, kind: JobKind, unit: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(&settings.command.program);
    command.args(&settings.command.args);
    let unit_arg = format!("--unit={unit}");
    match kind {
        JobKind::Backup => command.args(["backup", unit_arg.as_str()]),
        JobKind::Drill => {
            command.args(["restore", "--drill", unit_arg.as_str(), "--yes", "--json"])
        }
    };
    // Like the daemon's own backup: the child is not the service's main process.
    for name in notify::ENV {
        command.env_remove(name);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Adds what a drill's report says failed to its log lines (those not already there: without a
/// report the errors are the log's last lines).
fn add_drill_errors(lines: &mut Vec<String>, errors: &[String]) {
    for error in errors {
        if !lines.contains(error) {
            lines.push(format!("drill failed: {error}"));
        }
    }
}

/// A log line without terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_says_what_failed_once() {
        let mut lines = vec!["error: no restore point".to_owned()];
        let errors = [
            "error: no restore point".to_owned(),
            "secrets are redacted".to_owned(),
        ];
        add_drill_errors(&mut lines, &errors);
        assert_eq!(
            lines,
            [
                "error: no restore point",
                "drill failed: secrets are redacted"
            ]
        );
    }

    #[test]
    fn colour_codes_are_dropped() {
        assert_eq!(plain("\u{1b}[32m INFO\u{1b}[0m backup"), " INFO backup");
        assert_eq!(plain("plain"), "plain");
    }
}
