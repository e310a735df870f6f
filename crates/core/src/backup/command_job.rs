//! The external job engine (`[units.<name>] engine = "command"`): the unit's data is backed
//! up by the user's own tool (Duplicati, or any other), and kopi-docka does the orchestration
//! only, the way the seed's Duplicati orchestrator did:
//!
//! 1. pre-backup and pre-stop hooks;
//! 2. stop the unit ([`StoppedUnit`], through the engine or its systemd unit, journaled);
//! 3. post-stop hook, then each `job` command, each given `job-timeout-seconds` to *enqueue*
//!    the job (Duplicati's `run` can block: a command still running then is killed, and the
//!    job counts as enqueued); a command that exits non-zero fails the unit and no later one
//!    runs;
//! 4. poll `status` every `status-interval-seconds` until its standard output matches
//!    `idle-pattern`, for at most `wait-timeout-seconds`;
//! 5. pre-start hook, start the unit again with [`StoppedUnit::restart`] (whatever happened in
//!    steps 3 and 4: failure, timeout, SIGINT/SIGTERM, a panic), post-start and post-backup
//!    hooks.
//!
//! Nothing is written to kopi-docka's repository for such a unit (no restore point): the job's
//! result alone decides the unit's status. Commands follow the hook rules ([`crate::hooks`]):
//! argv without a shell, an absolute program only its owner (root or us) may change, the
//! secrets of kopi-docka's environment removed, output read with a cap.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::config::{Argv, HookPoint, UnitConfig};
use crate::docker::Engine;
use crate::lock::journal::Journal;
use crate::repo::BackupId;
use crate::stop::StoppedUnit;
use crate::unit::Unit;

use super::report::{UnitReport, UnitStatus};
use super::{BackupSettings, Interrupt};

/// Who backs a unit's data up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitEngine {
    /// kopi-docka itself, into its restic-format repository.
    #[default]
    Embedded,
    /// The user's own tool, started by `job` and watched through `status`.
    Command,
}

impl UnitEngine {
    /// Whether this is the default engine (left out of serialised configs and reports).
    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's skip_serializing_if passes a reference"
    )]
    pub fn is_embedded(&self) -> bool {
        *self == Self::Embedded
    }
}

/// Duplicati's `duplicati-server-util status` once nothing runs (`Server state: Running`
/// says nothing about a backup).
pub const DEFAULT_IDLE_PATTERN: &str = r"Active task:\s*(None|Empty)\b";
/// Seconds a job command gets to enqueue its job (the seed's `DUPLICATI_RUN_TIMEOUT`).
pub const DEFAULT_JOB_TIMEOUT_SECONDS: u32 = 25;
/// Seconds between two status polls.
pub const DEFAULT_STATUS_INTERVAL_SECONDS: u32 = 10;
/// Longest wait for the job (the seed's `DUPLICATI_WAIT_TIMEOUT`, 6 hours).
pub const DEFAULT_WAIT_TIMEOUT_SECONDS: u32 = 21_600;
/// Status commands that fail in a row before the wait is given up: a broken status command
/// must not keep the unit down for the whole wait timeout.
const MAX_STATUS_FAILURES: u32 = 3;
/// How long a command's output is still read once it has exited: a job that leaves a
/// background process holding its stdout open must not hold us.
const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// The end of a command's output kept in the report.
const REPORT_TAIL: usize = 2000;

/// A unit's external job, resolved from its `[units.<name>]` table (checked when the config
/// was loaded).
#[derive(Debug, Clone, Serialize)]
pub struct CommandJob {
    /// The commands that start the job, in order.
    pub job: Vec<Argv>,
    /// The command polled until the tool is idle.
    pub status: Argv,
    /// What the status output matches once the tool is idle.
    pub idle_pattern: String,
    /// Seconds each job command (and each status poll) may take.
    pub job_timeout_seconds: u32,
    /// Seconds between two polls.
    pub status_interval_seconds: u32,
    /// Longest wait for the job, the unit stopped.
    pub wait_timeout_seconds: u32,
    #[serde(skip)]
    idle: regex::Regex,
}

impl CommandJob {
    /// The job of a unit whose table says `engine = "command"`; `None` for the embedded engine
    /// (or a table that [`invalid`] rejects).
    pub fn from_config(table: &UnitConfig) -> Option<Self> {
        if table.engine != UnitEngine::Command || table.job.is_empty() {
            return None;
        }
        let idle_pattern = table
            .idle_pattern
            .clone()
            .unwrap_or_else(|| DEFAULT_IDLE_PATTERN.to_owned());
        Some(Self {
            job: table.job.clone(),
            status: table.status.clone()?,
            idle: regex::Regex::new(&idle_pattern).ok()?,
            idle_pattern,
            job_timeout_seconds: table
                .job_timeout_seconds
                .unwrap_or(DEFAULT_JOB_TIMEOUT_SECONDS),
            status_interval_seconds: table
                .status_interval_seconds
                .unwrap_or(DEFAULT_STATUS_INTERVAL_SECONDS),
            wait_timeout_seconds: table
                .wait_timeout_seconds
                .unwrap_or(DEFAULT_WAIT_TIMEOUT_SECONDS),
        })
    }

    /// Whether `output` (a status command's stdout) says the tool is idle.
    pub fn is_idle(&self, output: &str) -> bool {
        self.idle.is_match(output)
    }
}

/// What is wrong with the engine keys of `[units."<name>"]`, if anything.
pub(crate) fn invalid(name: &str, table: &UnitConfig) -> Option<String> {
    let at = format!("[units.\"{name}\"]");
    let command_keys = [
        ("job", !table.job.is_empty()),
        ("status", table.status.is_some()),
        ("idle-pattern", table.idle_pattern.is_some()),
        ("job-timeout-seconds", table.job_timeout_seconds.is_some()),
        (
            "status-interval-seconds",
            table.status_interval_seconds.is_some(),
        ),
        ("wait-timeout-seconds", table.wait_timeout_seconds.is_some()),
    ];
    if table.engine == UnitEngine::Embedded {
        // A key nothing reads is a bug: say so instead of ignoring it.
        return command_keys.iter().find(|(_, set)| *set).map(|(key, _)| {
            format!("{at} sets {key}, which only engine = \"command\" reads; add engine = \"command\" or remove it")
        });
    }
    if table.job.is_empty() {
        return Some(format!(
            "{at} engine = \"command\" needs job = [[\"/absolute/program\", \"args\"...]], the \
             command(s) that start the unit's backup job"
        ));
    }
    if table.status.is_none() {
        return Some(format!(
            "{at} engine = \"command\" needs status = [\"/absolute/program\", \"args\"...], the \
             command whose output says when the job is done"
        ));
    }
    let commands = table
        .job
        .iter()
        .map(|argv| ("job", argv))
        .chain(table.status.iter().map(|argv| ("status", argv)));
    for (key, argv) in commands {
        match argv.as_slice() {
            [] => return Some(format!("{at} {key} has an empty command")),
            [program, ..] if !program.starts_with('/') => {
                return Some(format!(
                    "{at} {key}: `{program}` is not an absolute path (commands run without a \
                     shell or PATH lookup)"
                ));
            }
            _ => {}
        }
    }
    if let Some(pattern) = &table.idle_pattern
        && let Err(error) = regex::Regex::new(pattern)
    {
        return Some(format!("{at} idle-pattern is not a valid regex: {error}"));
    }
    let seconds = [
        ("job-timeout-seconds", table.job_timeout_seconds),
        ("status-interval-seconds", table.status_interval_seconds),
        ("wait-timeout-seconds", table.wait_timeout_seconds),
    ];
    seconds.into_iter().find_map(|(key, value)| match value {
        Some(0) => Some(format!("{at} {key} = 0; give at least 1")),
        Some(n) if n > 7 * 86_400 => Some(format!("{at} {key} = {n} is more than a week")),
        _ => None,
    })
}

/// What the job did, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobReport {
    /// Each job command that ran, in order.
    pub commands: Vec<CommandOutcome>,
    /// The status command said idle after the job was started.
    pub idle: bool,
    /// Status polls made.
    pub polls: u32,
    /// From the first job command to idle (or to giving up).
    pub waited_seconds: f64,
    /// The end of the last status output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
}

/// How one command ended.
#[derive(Debug, Clone, Serialize)]
pub struct CommandOutcome {
    /// What ran.
    pub argv: Argv,
    /// Its exit code (none when it was killed).
    pub exit_code: Option<i32>,
    /// It was still running after `job-timeout-seconds` and was killed.
    pub timed_out: bool,
    /// The end of its stdout and stderr.
    pub output: String,
}

/// Backs up `unit` with its external `job`: stop, job, wait for idle, start. Fills `report`
/// (its status included) and never returns with the unit left stopped, unless the engine
/// refuses to start it (the journal then keeps it for the next run).
#[allow(
    clippy::too_many_arguments,
    reason = "the whole state of one unit's backup, as for the embedded engine"
)]
pub(super) async fn backup_unit(
    engine: &Engine,
    journal: &Journal,
    unit: &Unit,
    settings: &BackupSettings,
    job: &CommandJob,
    backup_id: &BackupId,
    interrupt: &Interrupt,
    report: &mut UnitReport,
) {
    report.engine = UnitEngine::Command;
    let hook = |point| super::unit::hooks(engine, settings, unit, backup_id, point, None);
    let before = match &unit.refused {
        Some(why) => Err(format!("not backed up: {why}; the unit was not touched")),
        None => hook(HookPoint::PreBackup)
            .await
            .map_err(|e| format!("{e}; the unit was not touched")),
    };
    let before = match before {
        Ok(()) if *interrupt.borrow() => Err("interrupted before the unit was stopped".to_owned()),
        Ok(()) => hook(HookPoint::PreStop)
            .await
            .map_err(|e| format!("{e}; the unit was not stopped")),
        Err(error) => Err(error),
    };
    if let Err(error) = before {
        report.interrupted = *interrupt.borrow();
        report.errors.push(error);
        report.status = UnitStatus::Failed;
        return;
    }

    let how = settings.unit_stop(unit.name.as_str());
    let stopped = match StoppedUnit::stop(engine, journal, unit, &how).await {
        Ok(stopped) => stopped,
        Err((stopped, error)) => {
            report.errors.push(error);
            let restart = stopped
                .restart(engine, journal, settings.health_timeout)
                .await;
            report.errors.extend(restart.errors);
            report.killed.extend(restart.killed);
            report.status = UnitStatus::Failed;
            super::unit::post_backup(engine, settings, unit, backup_id, report).await;
            return;
        }
    };
    // Between the stop and the restart: nothing here may skip the restart below.
    let ran = match hook(HookPoint::PostStop).await {
        Ok(()) => run_guarded(job, unit, backup_id, interrupt).await,
        Err(error) => (
            Err(format!("{error}; the job was not started")),
            JobReport::default(),
            false,
        ),
    };
    let mut hook_errors = Vec::new();
    if let Err(error) = hook(HookPoint::PreStart).await {
        hook_errors.push(format!("{error}; the unit is started anyway"));
    }
    let restart = stopped
        .restart(engine, journal, settings.health_timeout)
        .await;
    let verify_failed = restart.errors.is_empty()
        && super::unit::after_start((engine, settings, unit, backup_id), &mut hook_errors).await;
    let (result, job_report, interrupted) = ran;
    report.job = Some(job_report);
    report.interrupted = interrupted;
    report.downtime_seconds = restart.downtime.map(|d| d.as_secs_f64());
    let job_failed = result.is_err();
    report.errors.extend(result.err());
    report.errors.extend(restart.errors);
    report.errors.extend(hook_errors);
    report.warnings.extend(restart.warnings);
    report.killed.extend(restart.killed);
    report.status = if job_failed || verify_failed {
        UnitStatus::Failed
    } else if report.errors.is_empty() {
        UnitStatus::Success
    } else {
        // The job finished; starting or a hook around the start did not.
        UnitStatus::Partial
    };
    super::unit::post_backup(engine, settings, unit, backup_id, report).await;
}

/// [`run_job`] in its own task, so that a panic comes back as an error and the unit is still
/// started. Returns the result, the report and whether an interrupt ended the wait.
async fn run_guarded(
    job: &CommandJob,
    unit: &Unit,
    backup_id: &BackupId,
    interrupt: &Interrupt,
) -> (Result<(), String>, JobReport, bool) {
    let env = JobEnv {
        unit: unit.name.to_string(),
        kind: unit.kind.to_string(),
        backup_id: backup_id.to_string(),
    };
    let task = tokio::spawn(run_job(job.clone(), env, interrupt.clone()).in_current_span());
    task.await.unwrap_or_else(|panic| {
        (
            Err(format!("the job: internal error: {panic}")),
            JobReport::default(),
            false,
        )
    })
}

/// What job and status commands are told through their environment (as hooks are).
#[derive(Debug, Clone)]
struct JobEnv {
    unit: String,
    kind: String,
    backup_id: String,
}

/// Runs the job commands, then polls the status command until idle, the wait timeout or an
/// interrupt.
async fn run_job(
    job: CommandJob,
    env: JobEnv,
    mut interrupt: Interrupt,
) -> (Result<(), String>, JobReport, bool) {
    let mut report = JobReport::default();
    let started = Instant::now();
    let enqueue = Duration::from_secs(u64::from(job.job_timeout_seconds));
    for argv in &job.job {
        tracing::info!(unit = %env.unit, command = %argv.join(" "), "starting the backup job");
        let outcome = match run_command(argv, &env, enqueue).await {
            Ok(outcome) => outcome,
            Err(error) => return (Err(format!("job {error}")), report, false),
        };
        let failed = !outcome.timed_out && outcome.exit_code != Some(0);
        let message = describe_exit(&outcome, job.job_timeout_seconds);
        report.commands.push(outcome);
        if failed {
            return (Err(format!("job {message}")), report, false);
        }
        tracing::info!(unit = %env.unit, "job {message}");
    }

    let interval = Duration::from_secs(u64::from(job.status_interval_seconds));
    let wait = Duration::from_secs(u64::from(job.wait_timeout_seconds));
    let deadline = started + wait;
    let mut failures = 0;
    loop {
        // The first poll only after one interval: the tool needs a moment to pick the job up
        // (right after `run`, Duplicati can still say `Active task: None`).
        let pause = interval.min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = interrupt.wait_for(|stop| *stop) => {
                report.waited_seconds = started.elapsed().as_secs_f64();
                return (
                    Err("interrupted while waiting for the job; the job itself may still be \
                         running"
                        .to_owned()),
                    report,
                    true,
                );
            }
        }
        report.polls += 1;
        let polled = run_command(&job.status, &env, enqueue).await;
        report.waited_seconds = started.elapsed().as_secs_f64();
        match polled {
            Ok(outcome) if outcome.exit_code == Some(0) => {
                failures = 0;
                let idle = job.is_idle(&outcome.output);
                report.last_status = Some(outcome.output);
                if idle {
                    report.idle = true;
                    tracing::info!(unit = %env.unit, seconds = report.waited_seconds, "the job is done");
                    return (Ok(()), report, false);
                }
            }
            Ok(outcome) => {
                failures += 1;
                let message = describe_exit(&outcome, job.job_timeout_seconds);
                tracing::warn!(unit = %env.unit, "status {message}");
                report.last_status = Some(outcome.output);
                if failures >= MAX_STATUS_FAILURES {
                    return (
                        Err(format!(
                            "status {message} ({failures} times in a row); gave up waiting"
                        )),
                        report,
                        false,
                    );
                }
            }
            Err(error) => return (Err(format!("status {error}")), report, false),
        }
        if Instant::now() >= deadline {
            let last = report
                .last_status
                .as_deref()
                .map(|s| format!("; the last status said: {}", s.trim()))
                .unwrap_or_default();
            return (
                Err(format!(
                    "the job did not become idle within wait-timeout-seconds ({}s), the status \
                     never matched idle-pattern `{}`{last}; the unit was started again, the \
                     job itself may still be running",
                    job.wait_timeout_seconds, job.idle_pattern
                )),
                report,
                false,
            );
        }
    }
}

/// `<program> exited 0`, `... failed (exit 3): <output>`, `... was killed after 25s`.
fn describe_exit(outcome: &CommandOutcome, timeout: u32) -> String {
    let program = outcome.argv.first().map_or("", String::as_str);
    let output = outcome.output.trim();
    let output = if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    };
    match (outcome.timed_out, outcome.exit_code) {
        (true, _) => format!(
            "{program} still ran after job-timeout-seconds ({timeout}s) and was killed; the job \
             counts as enqueued"
        ),
        (false, Some(0)) => format!("{program} exited 0"),
        (false, Some(code)) => format!("{program} failed (exit {code}){output}"),
        (false, None) => format!("{program} was killed by a signal{output}"),
    }
}

/// Runs one command (hook rules: [`crate::hooks`]); `Err` when it could not be started.
async fn run_command(
    argv: &[String],
    env: &JobEnv,
    timeout: Duration,
) -> Result<CommandOutcome, String> {
    let Some((program, arguments)) = argv.split_first() else {
        return Err("is an empty command".to_owned());
    };
    crate::hooks::check_program(std::path::Path::new(program))
        .map_err(|reason| format!("{program}: {reason}"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .env("KOPI_DOCKA_UNIT", &env.unit)
        .env("KOPI_DOCKA_UNIT_KIND", &env.kind)
        .env("KOPI_DOCKA_BACKUP_ID", &env.backup_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::config::environment::remove_secrets(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| format!("{program}: cannot start: {e}"))?;
    let stdout = tokio::spawn(crate::hooks::drain_capped(child.stdout.take()));
    let stderr = tokio::spawn(crate::hooks::drain_capped(child.stderr.take()));
    let waited = tokio::time::timeout(timeout, child.wait()).await;
    let (exit_code, timed_out) = match waited {
        Ok(Ok(status)) => (status.code(), false),
        Ok(Err(error)) => return Err(format!("{program}: cannot wait for it: {error}")),
        Err(_) => {
            if let Err(error) = child.kill().await {
                tracing::warn!(%error, %program, "cannot kill a command past its timeout");
            }
            (None, true)
        }
    };
    let mut output = String::new();
    for pipe in [stdout, stderr] {
        let abort = pipe.abort_handle();
        match tokio::time::timeout(OUTPUT_GRACE, pipe).await {
            Ok(Ok(text)) => output.push_str(&text),
            Ok(Err(error)) => tracing::debug!(%error, "cannot read a command's output"),
            Err(_) => {
                abort.abort();
                output.push_str("[output still held open by a background process; not read]\n");
            }
        }
    }
    for line in output.lines() {
        tracing::info!(unit = %env.unit, %program, "{line}");
    }
    Ok(CommandOutcome {
        argv: argv.to_vec(),
        exit_code,
        timed_out,
        output: tail(&output),
    })
}

/// The end of `text`, at most [`REPORT_TAIL`] bytes, cut at a character boundary.
fn tail(text: &str) -> String {
    let text = text.trim_end();
    if text.len() <= REPORT_TAIL {
        return text.to_owned();
    }
    let mut start = text.len() - REPORT_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml: &str) -> UnitConfig {
        toml::from_str(toml).unwrap()
    }

    /// Duplicati's idle lines match the default pattern; a running task does not.
    #[test]
    fn default_pattern_matches_duplicatis_idle_states() {
        let job = CommandJob::from_config(&table(
            "engine = \"command\"\njob = [[\"/bin/true\"]]\nstatus = [\"/bin/true\"]",
        ))
        .unwrap();
        assert!(job.is_idle("Server state: Running\nActive task: None\n"));
        assert!(job.is_idle("Server state: Running\nActive task: Empty\n"));
        assert!(!job.is_idle("Server state: Running\nActive task: Backup 3\n"));
        assert!(!job.is_idle("Server state: Running\n"));
        assert_eq!(job.job_timeout_seconds, DEFAULT_JOB_TIMEOUT_SECONDS);
    }

    /// Missing, relative or stray keys are refused with what to write instead.
    #[test]
    fn engine_keys_are_checked() {
        let cases = [
            ("job = [[\"/bin/true\"]]", "only engine = \"command\" reads"),
            ("engine = \"command\"", "needs job"),
            (
                "engine = \"command\"\njob = [[\"/bin/true\"]]",
                "needs status",
            ),
            (
                "engine = \"command\"\njob = [[\"true\"]]\nstatus = [\"/bin/true\"]",
                "not an absolute path",
            ),
            (
                "engine = \"command\"\njob = [[\"/bin/true\"]]\nstatus = [\"/bin/true\"]\nidle-pattern = \"(\"",
                "not a valid regex",
            ),
            (
                "engine = \"command\"\njob = [[\"/bin/true\"]]\nstatus = [\"/bin/true\"]\nwait-timeout-seconds = 0",
                "at least 1",
            ),
        ];
        for (text, expected) in cases {
            let message = invalid("app", &table(text)).unwrap_or_default();
            assert!(message.contains(expected), "{text}: {message}");
        }
        assert_eq!(
            invalid(
                "app",
                &table("engine = \"command\"\njob = [[\"/bin/true\"]]\nstatus = [\"/bin/true\"]")
            ),
            None
        );
    }
}
