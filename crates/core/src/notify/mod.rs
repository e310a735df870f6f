//! Notifications: one message per run, summarising every unit, to webhooks, chat services and
//! email.
//!
//! Rules this module owns:
//! - Destinations are Apprise-style URLs (`ntfys://`, `tgram://`, `mailtos://` ...) so users of
//!   the original can paste theirs, or `http(s)://` endpoints with a `kind`. `https` stays
//!   `https` (the original downgraded webhooks to plain HTTP).
//! - URLs carry secrets. They may come from a file or the environment, and they never appear
//!   in an error, a log line or a report: errors name the target by its scheme or source.
//! - Every delivery has a timeout. A failed delivery is reported to the caller, never an
//!   error of the run that triggered it.

mod destination;
mod smtp;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use destination::Destination;

use crate::backup::{RunReport, UnitStatus};
use crate::config::{NotificationTarget, NotificationsConfig};

/// Why a delivery failed. Never contains the URL (it holds secrets).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The URL (or its file or variable) is unusable.
    #[error("{target}: {reason}")]
    Target {
        /// The target, described without its secret.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The endpoint did not accept the message.
    #[error("{target}: {reason}")]
    Delivery {
        /// The target, described without its secret.
        target: String,
        /// What happened (HTTP status, SMTP reply, timeout).
        reason: String,
    },
}

/// How a run went, for the message and its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Every unit succeeded, no warnings.
    Success,
    /// Every unit succeeded, with warnings.
    Warning,
    /// A unit failed, or the run had errors.
    Failure,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Short title (subject line).
    pub title: String,
    /// Plain-text body, one line per unit.
    pub body: String,
    /// How it went.
    pub level: Level,
}

impl Level {
    /// The level of a run.
    pub fn of(report: &RunReport) -> Self {
        let failed = !report.errors.is_empty()
            || report.units.iter().any(|u| u.status != UnitStatus::Success);
        if failed {
            Self::Failure
        } else if report.units.iter().any(|u| !u.warnings.is_empty()) {
            Self::Warning
        } else {
            Self::Success
        }
    }

    /// The word used in titles and for Apprise's `type`.
    pub fn word(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Failure => "failure",
        }
    }
}

/// The one message summarising a run.
pub fn run_message(report: &RunReport) -> Message {
    let level = Level::of(report);
    let total = report.units.len();
    let failed = report
        .units
        .iter()
        .filter(|u| u.status != UnitStatus::Success)
        .count();
    let title = match level {
        Level::Success => format!("kopi-docka on {}: backup OK ({total} units)", report.host),
        Level::Warning => format!(
            "kopi-docka on {}: backup OK with warnings ({total} units)",
            report.host
        ),
        Level::Failure if failed > 0 => format!(
            "kopi-docka on {}: BACKUP FAILED for {failed} of {total} units",
            report.host
        ),
        Level::Failure => format!("kopi-docka on {}: BACKUP RUN HAD ERRORS", report.host),
    };
    let mut lines = Vec::new();
    for u in &report.units {
        let status = match u.status {
            UnitStatus::Success => "ok",
            UnitStatus::Partial => "PARTIAL",
            UnitStatus::Failed => "FAILED",
        };
        let added: u64 = u.snapshots.iter().map(|s| s.bytes_added).sum();
        let down = u
            .downtime_seconds
            .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
        lines.push(format!(
            "{status} {} {}: {} snapshots, {added} bytes added, {down}, took {:.0}s",
            u.kind,
            u.name,
            u.snapshots.len(),
            u.duration_seconds
        ));
        lines.extend(u.errors.iter().map(|e| format!("  error: {e}")));
        lines.extend(u.warnings.iter().map(|w| format!("  warning: {w}")));
    }
    lines.extend(report.errors.iter().map(|e| format!("error: {e}")));
    for name in &report.restarted_from_journal {
        lines.push(format!(
            "started {name}, left stopped by a killed earlier run"
        ));
    }
    let took = report.finished_at.duration_since(report.started_at);
    lines.push(format!(
        "run {} started {}, took {:.0}s",
        report.run_id,
        report.started_at,
        took.as_secs_f64()
    ));
    Message {
        title,
        body: lines.join("\n"),
        level,
    }
}

/// The message `admin notification test` and `setup` send, for the host named `host`.
pub fn test_message(host: &str) -> Message {
    Message {
        title: format!("kopi-docka on {host}: test notification"),
        body: "If you read this, kopi-docka can reach you here.".into(),
        level: Level::Success,
    }
}

/// True when `config` asks for a message at `level`.
pub fn wanted(config: &NotificationsConfig, level: Level) -> bool {
    match level {
        Level::Success => config.on_success,
        Level::Warning => config.on_warning,
        Level::Failure => config.on_failure,
    }
}

/// The result of one delivery, for reports (no secret in it).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The target, described without its secret.
    pub target: String,
    /// `None` when delivered; why not otherwise.
    pub error: Option<String>,
}

/// Sends `message` to every target, each with the configured timeout. Never fails: each
/// target's outcome is in the result.
pub async fn send_all(config: &NotificationsConfig, message: &Message) -> Vec<Delivery> {
    let timeout = Duration::from_secs(u64::from(config.timeout_seconds.max(1)));
    let mut out = Vec::new();
    for target in &config.targets {
        let result = match Destination::resolve(target) {
            Ok(destination) => destination.send(message, timeout).await,
            Err(error) => Err(error),
        };
        out.push(Delivery {
            target: target.describe(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    out
}

/// Resolves a secret that may be given inline, in a file (first line) or in an environment
/// variable. `None` when none is given.
pub fn secret(
    inline: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(value) = inline {
        return Ok(Some(value.trim().to_owned()));
    }
    if let Some(file) = file {
        use std::os::unix::fs::MetadataExt as _;
        let mode = std::fs::metadata(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?
            .mode();
        // Like the repository password file: a secret others can read is not used.
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} has mode {:04o}: group and others may read it, so it is not used; \
                 chmod 600 it",
                file.display(),
                mode & 0o7777
            ));
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let line = text.lines().next().unwrap_or_default().trim().to_owned();
        if line.is_empty() {
            return Err(format!("{} is empty", file.display()));
        }
        return Ok(Some(line));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(value) if !value.trim().is_empty() => Ok(Some(value.trim().to_owned())),
            _ => Err(format!("${var} is not set")),
        };
    }
    Ok(None)
}

impl Destination {
    /// The destination a configured target names (reads its file or variable).
    pub fn resolve(target: &NotificationTarget) -> Result<Self, NotifyError> {
        let err = |reason: String| NotifyError::Target {
            target: target.describe(),
            reason,
        };
        let url = secret(
            target.url.as_deref(),
            target.url_file.as_deref(),
            target.url_env.as_deref(),
        )
        .map_err(err)?
        .ok_or_else(|| err("no url, url-file or url-env".into()))?;
        Self::parse(&url, target.kind.as_deref()).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::UnitReport;
    use crate::repo::BackupId;
    use crate::unit::{CoverageSummary, UnitKind};

    fn unit(name: &str, status: UnitStatus, warnings: &[&str]) -> UnitReport {
        UnitReport {
            name: name.into(),
            kind: UnitKind::Stack,
            backup_id: BackupId::new(jiff::Timestamp::UNIX_EPOCH, 1),
            status,
            downtime_seconds: Some(2.5),
            cold_pass: None,
            snapshots: Vec::new(),
            complete: status == UnitStatus::Success,
            bytes_added: 0,
            errors: if status == UnitStatus::Success {
                Vec::new()
            } else {
                vec!["disk full".into()]
            },
            warnings: warnings.iter().map(|w| (*w).to_owned()).collect(),
            coverage: CoverageSummary::default(),
            killed: Vec::new(),
            interrupted: false,
            dump_failed: false,
            duration_seconds: 12.0,
            engine: crate::backup::command_job::UnitEngine::Embedded,
            job: None,
        }
    }

    fn report(units: Vec<UnitReport>) -> RunReport {
        RunReport {
            run_id: BackupId::new(jiff::Timestamp::UNIX_EPOCH, 2),
            started_at: jiff::Timestamp::UNIX_EPOCH,
            finished_at: jiff::Timestamp::UNIX_EPOCH,
            host: "nas".into(),
            restarted_from_journal: Vec::new(),
            docker_config: None,
            units,
            errors: Vec::new(),
        }
    }

    #[test]
    fn one_message_per_run_with_the_right_level() {
        let ok = run_message(&report(vec![unit("a", UnitStatus::Success, &[])]));
        assert_eq!(ok.level, Level::Success);
        assert_eq!(ok.title, "kopi-docka on nas: backup OK (1 units)");

        let warned = run_message(&report(vec![
            unit("a", UnitStatus::Success, &[]),
            unit("b", UnitStatus::Success, &["not protected: bind /x"]),
        ]));
        assert_eq!(warned.level, Level::Warning);
        assert!(
            warned.body.contains("  warning: not protected: bind /x"),
            "{}",
            warned.body
        );

        let failed = run_message(&report(vec![
            unit("a", UnitStatus::Success, &[]),
            unit("b", UnitStatus::Failed, &[]),
        ]));
        assert_eq!(failed.level, Level::Failure);
        assert_eq!(
            failed.title,
            "kopi-docka on nas: BACKUP FAILED for 1 of 2 units"
        );
        assert!(
            failed.body.contains("FAILED stack b: 0 snapshots"),
            "{}",
            failed.body
        );
        assert!(
            failed.body.contains("  error: disk full"),
            "{}",
            failed.body
        );

        let config = NotificationsConfig::default();
        assert!(!wanted(&config, Level::Success));
        assert!(wanted(&config, Level::Warning) && wanted(&config, Level::Failure));
    }

    #[test]
    fn secret_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "jsons://example.com/x\nignored\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = secret(None, Some(&file), None).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            secret(None, Some(&file), None).unwrap().as_deref(),
            Some("jsons://example.com/x")
        );
        assert!(secret(None, None, Some("KOPI_DOCKA_TEST_UNSET_VARIABLE")).is_err());
        assert_eq!(secret(None, None, None), Ok(None));
    }
}
