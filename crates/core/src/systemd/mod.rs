//! Everything kopi-docka knows about systemd: the unit files it writes ([`units`]), the
//! notification protocol its daemon speaks ([`notify`]), and what systemd says about the
//! installed units ([`state`]). Without systemd, each of these degrades to "not available"
//! instead of failing.

pub mod control;
pub mod notify;
pub mod units;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// A unit file exists with content we did not write.
    #[error(
        "{} differ(s) from what kopi-docka would write: kopi-docka never overwrites your edits. \
         Move them into a drop-in (`systemctl edit <unit>`), or replace the file with --force \
         (write to another --output-dir first to compare)",
        list(paths)
    )]
    Modified {
        /// The changed files.
        paths: Vec<PathBuf>,
    },
    /// Reading or writing a unit file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The notification socket cannot be used.
    #[error("NOTIFY_SOCKET {socket}: {source}")]
    Notify {
        /// The socket as named in the environment.
        socket: String,
        /// Why.
        source: std::io::Error,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What systemd says about one of our units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    /// Unit name.
    pub name: &'static str,
    /// The unit file exists in the unit directory.
    pub installed: bool,
    /// `ActiveState` (`active`, `inactive`, `failed`, ...); `None` without a running systemd.
    pub active: Option<String>,
    /// `UnitFileState` (`enabled`, `disabled`, ...); `None` without a running systemd.
    pub enabled: Option<String>,
    /// The timer's next elapse (timers only, when systemd knows it).
    pub next_run: Option<jiff::Timestamp>,
    /// `Result` of the last run (`success`, `exit-code`, ...), when systemd knows it.
    pub result: Option<String>,
}

/// Whether a systemd manager runs on this host (the check `sd_booted()` makes).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The state of our three units: files in `unit_dir`, plus `systemctl show` when systemd runs.
pub fn state(unit_dir: &Path) -> Vec<UnitState> {
    let manager = booted();
    [units::BACKUP_SERVICE, units::TIMER, units::DAEMON_SERVICE]
        .into_iter()
        .map(|name| {
            let installed = unit_dir.join(name).is_file();
            let props = if manager { show(name) } else { Vec::new() };
            let get = |key: &str| {
                props
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
                    .filter(|v| !v.is_empty())
            };
            let next_run = get("NextElapseUSecRealtime")
                .and_then(|value| match value.strip_prefix('@') {
                    // `--timestamp=unix` prints `@SECONDS`; older versions print microseconds.
                    Some(seconds) => seconds.parse::<i64>().ok().map(|s| s * 1_000_000),
                    None => value.parse::<i64>().ok(),
                })
                .filter(|usec| *usec > 0 && *usec != i64::MAX)
                .and_then(|usec| jiff::Timestamp::from_microsecond(usec).ok());
            UnitState {
                name,
                installed,
                active: get("ActiveState"),
                enabled: get("UnitFileState"),
                next_run,
                result: get("Result"),
            }
        })
        .collect()
}

/// True when `systemd-analyze calendar` (if installed) accepts `expression`: systemd
/// understands more calendar expressions than the daemon's own subset.
pub fn calendar_accepted(expression: &str) -> bool {
    std::process::Command::new("systemd-analyze")
        .args(["calendar", "--", expression])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `systemctl show` properties of one unit; empty when systemctl fails or is missing.
fn show(unit: &str) -> Vec<(String, String)> {
    let output = std::process::Command::new("systemctl")
        .args([
            "show",
            "--timestamp=unix",
            "-p",
            "ActiveState,UnitFileState,NextElapseUSecRealtime,Result",
            unit,
        ])
        .output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Ok(out) => {
            tracing::debug!(unit, stderr = %String::from_utf8_lossy(&out.stderr), "systemctl show failed");
            Vec::new()
        }
        Err(error) => {
            tracing::debug!(unit, %error, "cannot run systemctl");
            Vec::new()
        }
    }
}
