//! Stopping and starting the systemd units that own containers.
//!
//! A container of a `podman generate systemd --new` or Quadlet unit runs with `--rm
//! --replace`: stopped through the engine it is deleted, and systemd then either restarts it
//! behind our back or has nothing left to start. A `*-stack.service` that wraps `podman-compose`
//! or `docker compose` owns its containers the same way. Such units are stopped and started
//! with `systemctl`, of the system manager or of a user's `--user` manager, never through the
//! engine ([`crate::stop`] decides which containers go which way).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::docker::Engine;

/// A systemd unit that owns containers, and whose manager runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The unit's full name (`container-web.service`, `cryptpad-stack.service`).
    pub unit: String,
    /// The user whose `--user` manager runs it; `None`: the engine's manager (the system
    /// manager for a rootful engine, the socket owner's user manager for a rootless one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Named in the configuration (`[units.<name>] systemd-unit`), not found on a container's
    /// `PODMAN_SYSTEMD_UNIT` label: it must exist; a label may name a unit that does not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub configured: bool,
}

impl Service {
    /// The journal's key of this unit (journal entries of containers are keyed by their id).
    pub fn journal_id(&self) -> String {
        format!(
            "systemd:{}:{}",
            self.user.as_deref().unwrap_or(""),
            self.unit
        )
    }
}

/// `cryptpad`, `cryptpad-stack` and `cryptpad-stack.service` name the same stack: its name
/// without the `.service` suffix and the `-stack` the seed orchestrator's units carry.
pub fn stack_name(name: &str) -> &str {
    let name = name.strip_suffix(".service").unwrap_or(name);
    name.strip_suffix("-stack").unwrap_or(name)
}

/// A unit name as systemd wants it: `.service` added when no unit type is given.
pub fn unit_name(name: &str) -> String {
    const TYPES: [&str; 6] = [
        ".service", ".socket", ".target", ".timer", ".scope", ".slice",
    ];
    if TYPES.iter().any(|t| name.ends_with(t)) {
        name.to_owned()
    } else {
        format!("{name}.service")
    }
}

/// Which manager runs a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// `systemctl` (PID 1).
    System,
    /// `systemctl --user` of this user's manager (lingering, or logged in).
    User {
        /// Login name.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
        /// Its home directory (`/etc/passwd`): where its unit files live.
        home: PathBuf,
    },
}

impl std::fmt::Display for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("the system manager"),
            Self::User { name, .. } => write!(f, "the user manager of {name}"),
        }
    }
}

impl From<Account> for Manager {
    fn from(account: Account) -> Self {
        Self::User {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
            home: account.home,
        }
    }
}

impl Manager {
    /// The manager of `service`: its user's, or the engine's (see [`Service::user`]).
    pub fn of(service: &Service, engine: &Engine) -> Result<Self, String> {
        match &service.user {
            Some(user) => Self::user(user),
            None => {
                match Account::engine_owner(engine).map_err(|e| format!("{}: {e}", service.unit))? {
                    Some(owner) => Ok(Self::from(owner)),
                    None => Ok(Self::System),
                }
            }
        }
    }

    /// The `--user` manager of a login name or uid from `/etc/passwd`.
    fn user(user: &str) -> Result<Self, String> {
        Account::lookup(user).map(Self::from)
    }

    fn systemctl(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("systemctl");
        if let Self::User { uid, gid, .. } = self {
            cmd.arg("--user");
            let runtime = PathBuf::from(format!("/run/user/{uid}"));
            cmd.env("XDG_RUNTIME_DIR", &runtime).env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", runtime.join("bus").display()),
            );
            // Root reaches another user's manager as that user (`-M user@` needs machined,
            // which most hosts lack); the user reaches its own as itself.
            if rustix::process::geteuid().as_raw() != *uid {
                cmd.uid(*uid).gid(*gid);
            }
        }
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// `LoadState` and `ActiveState` of `unit`.
    pub async fn state(&self, unit: &str) -> Result<UnitState, String> {
        let out = self
            .run(
                &["show", "--property=LoadState,ActiveState", "--", unit],
                Duration::from_secs(30),
            )
            .await?;
        let value = |key: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(UnitState {
            loaded: value("LoadState") == "loaded",
            active: value("ActiveState"),
        })
    }

    /// The unit's files: its unit file, the file it was generated from (a Quadlet
    /// `.container`, `.volume`, `.network`, `.pod` or `.kube` file) and its drop-ins, as the
    /// manager reports them; files under `/run` (generated) and `/usr` (the distribution's)
    /// are left out.
    pub async fn files(&self, unit: &str) -> Result<Vec<PathBuf>, String> {
        let out = self
            .run(
                &[
                    "show",
                    "--property=FragmentPath,SourcePath,DropInPaths",
                    "--",
                    unit,
                ],
                Duration::from_secs(30),
            )
            .await?;
        let mut files: Vec<PathBuf> = Vec::new();
        for value in out
            .lines()
            .filter_map(|l| l.split_once('=').map(|(_, v)| v))
        {
            for path in value.split_whitespace().map(PathBuf::from) {
                let ours = !path.starts_with("/run") && !path.starts_with("/usr");
                if path.is_absolute() && ours && !files.contains(&path) {
                    files.push(path);
                }
            }
        }
        Ok(files)
    }

    /// `systemctl daemon-reload`: the manager reads unit files put back by a restore (and
    /// Quadlet generates their units again).
    pub async fn daemon_reload(&self) -> Result<(), String> {
        self.run(&["daemon-reload"], Duration::from_mins(2))
            .await
            .map(drop)
    }

    /// `systemctl restart`, then the unit must be active: what a restore does to a unit that
    /// is active while its containers are gone (a `RemainAfterExit=` stack), so its start
    /// command runs again.
    pub async fn restart(&self, unit: &str, timeout: Duration) -> Result<(), String> {
        self.run(&["restart", "--", unit], timeout).await?;
        self.expect_active(unit).await
    }

    /// The services a socket unit activates (its `Triggers=`); a template (`x@.service`, the
    /// instances of an `Accept=yes` socket) is left out: it cannot be stopped or started.
    pub async fn triggers(&self, socket: &str) -> Result<Vec<String>, String> {
        let out = self
            .run(
                &["show", "--property=Triggers", "--", socket],
                Duration::from_secs(30),
            )
            .await?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("Triggers="))
            .flat_map(str::split_whitespace)
            .filter(|unit| !unit.contains("@."))
            .map(str::to_owned)
            .collect())
    }

    /// `systemctl stop` of `units`, in one transaction: returns when their stop jobs are done.
    pub async fn stop(&self, units: &[&str], timeout: Duration) -> Result<(), String> {
        let args: Vec<&str> = ["stop", "--"]
            .into_iter()
            .chain(units.iter().copied())
            .collect();
        self.run(&args, timeout).await.map(drop)
    }

    /// `systemctl start`, then the unit must be active.
    pub async fn start(&self, unit: &str, timeout: Duration) -> Result<(), String> {
        self.run(&["start", "--", unit], timeout).await?;
        self.expect_active(unit).await
    }

    async fn expect_active(&self, unit: &str) -> Result<(), String> {
        let state = self.state(unit).await?;
        if state.active == "active" {
            Ok(())
        } else {
            Err(format!(
                "{unit} is {} after its start ({self})",
                state.active
            ))
        }
    }

    async fn run(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let command = format!("systemctl {}", args.join(" "));
        let output = tokio::time::timeout(timeout, self.systemctl().args(args).output())
            .await
            .map_err(|_| {
                format!(
                    "`{command}` ({self}) did not finish in {}s",
                    timeout.as_secs()
                )
            })?
            .map_err(|e| format!("`{command}` ({self}): {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "`{command}` ({self}) failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

/// Owner and mode of a unit file, as recorded in the recipe's `systemd/units.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOwner {
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Permission bits (`0o644`).
    pub mode: u32,
}

/// What the manager says about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// The manager has a unit file for it.
    pub loaded: bool,
    /// `active`, `inactive`, `failed`, `activating`...
    pub active: String,
}

impl UnitState {
    /// Running or on its way (policy `previous`: such a unit is started again).
    pub fn is_up(&self) -> bool {
        matches!(self.active.as_str(), "active" | "activating" | "reloading")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_normalised() {
        for name in ["cryptpad", "cryptpad-stack", "cryptpad-stack.service"] {
            assert_eq!(stack_name(name), "cryptpad");
        }
        assert_eq!(stack_name("container-web.service"), "container-web");
        assert_eq!(unit_name("cryptpad-stack"), "cryptpad-stack.service");
        assert_eq!(unit_name("web.socket"), "web.socket");
    }
}
