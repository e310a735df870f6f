//! What `setup` did, as a report (JSON with `--json`, text otherwise).

use std::fmt::Write as _;
use std::path::PathBuf;

use kopi_docka_core::bootstrap::RepositoryAction;
use serde::Serialize;

use crate::render::Render;

/// What the setup wrote and found.
#[derive(Serialize)]
pub struct SetupReport {
    pub config: PathBuf,
    pub repository: String,
    pub password_file: PathBuf,
    pub password_generated: bool,
    pub repository_action: RepositoryAction,
    pub snapshots: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_config: Option<PathBuf>,
    /// The private env file with the backend's credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// The SSH key setup generated (or reused) for an SFTP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<PathBuf>,
    /// The Tailscale peer chosen as the SFTP server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tailscale_peer: Option<String>,
    /// The timer's calendar expression.
    pub schedule: Option<String>,
    /// The systemd units.
    pub units: Units,
    /// The file with the notification URL a test message reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<PathBuf>,
    /// The disaster-recovery bundle written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dr_bundle: Option<PathBuf>,
}

/// What happened to the systemd units.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Units {
    /// No schedule was chosen.
    NotScheduled,
    /// Written (into systemd's directory when `installed`).
    Written {
        /// The unit files.
        files: Vec<PathBuf>,
        /// In `/etc/systemd/system`.
        installed: bool,
    },
    /// Not written here; the command to run.
    Command {
        /// Why not.
        why: String,
        /// What to run.
        command: String,
    },
}

impl Render for SetupReport {
    fn human(&self) -> String {
        render(self)
    }
}

fn render(r: &SetupReport) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(out, "wrote {} (mode 0600)", r.config.display());
    if let Some(b) = &r.previous_config {
        let _ = writeln!(out, "  the previous config is kept as {}", b.display());
    }
    match r.repository_action {
        RepositoryAction::Connected => {
            let _ = writeln!(
                out,
                "connected to the existing repository {} ({} snapshots kept)",
                r.repository, r.snapshots
            );
        }
        RepositoryAction::Created => {
            let _ = writeln!(out, "created the repository {}", r.repository);
        }
    }
    if let Some(peer) = &r.tailscale_peer {
        let _ = writeln!(out, "  on the Tailscale peer {peer}");
    }
    let _ = writeln!(out, "password file: {}", r.password_file.display());
    if let Some(file) = &r.env_file {
        let _ = writeln!(out, "credentials: {} (mode 0600)", file.display());
    }
    if let Some(key) = &r.ssh_key {
        let _ = writeln!(out, "ssh key: {}", key.display());
    }
    match (&r.schedule, &r.units) {
        (Some(s), Units::Written { files, installed }) => {
            let _ = writeln!(out, "schedule: {s}");
            for file in files {
                let _ = writeln!(out, "  wrote {}", file.display());
            }
            if *installed {
                let _ = writeln!(
                    out,
                    "  next: systemctl daemon-reload && systemctl enable --now kopi-docka.timer"
                );
            }
        }
        (Some(s), Units::Command { why, command }) => {
            let _ = writeln!(
                out,
                "schedule: {s} (units not written: {why}); to install them run:\n  {command}"
            );
        }
        _ => {
            let _ = writeln!(out, "schedule: none (run `kopi-docka backup` yourself)");
        }
    }
    if let Some(file) = &r.notification {
        let _ = writeln!(
            out,
            "notifications: the URL in {} (test message sent)",
            file.display()
        );
    }
    match &r.dr_bundle {
        Some(file) => {
            let _ = writeln!(
                out,
                "disaster-recovery bundle: {} (store it away from this machine)",
                file.display()
            );
        }
        None if r.password_generated => {
            let _ = writeln!(
                out,
                "Keep a copy of the password elsewhere, or make a disaster-recovery bundle now:\n  \
                 kopi-docka disaster-recovery export"
            );
        }
        None => {}
    }
    let _ = writeln!(
        out,
        "Next: `kopi-docka units` to see what will be backed up, then `kopi-docka backup`."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    #[test]
    fn renders_a_created_repository() {
        assert_renders!(
            "setup_created",
            &SetupReport {
                config: "/etc/kopi-docka/config.toml".into(),
                repository: "/srv/backup/kopi-docka".into(),
                password_file: "/etc/kopi-docka/repository.password".into(),
                password_generated: true,
                repository_action: RepositoryAction::Created,
                snapshots: 0,
                previous_config: None,
                env_file: None,
                ssh_key: None,
                tailscale_peer: None,
                schedule: None,
                units: Units::NotScheduled,
                notification: None,
                dr_bundle: None,
            }
        );
    }

    #[test]
    fn renders_a_connected_repository() {
        assert_renders!(
            "setup_connected",
            &SetupReport {
                config: "/etc/kopi-docka/config.toml".into(),
                repository: "sftp://backup@100.101.102.103:22//srv/kopi-docka".into(),
                password_file: "/root/kopi-docka.password".into(),
                password_generated: false,
                repository_action: RepositoryAction::Connected,
                snapshots: 42,
                previous_config: Some(
                    "/etc/kopi-docka/config.toml.kopi-docka-20261122T030000Z.bak".into()
                ),
                env_file: None,
                ssh_key: Some("/etc/kopi-docka/ssh/id_ed25519".into()),
                tailscale_peer: Some("nas".into()),
                schedule: Some("*-*-* 02:00:00".into()),
                units: Units::Written {
                    files: vec![
                        "/etc/systemd/system/kopi-docka.service".into(),
                        "/etc/systemd/system/kopi-docka.timer".into(),
                    ],
                    installed: true,
                },
                notification: Some("/etc/kopi-docka/notification.url".into()),
                dr_bundle: Some("/root/kopi-docka-dr-nas-20261122T030000Z.age".into()),
            }
        );
    }

    #[test]
    fn renders_units_to_install_by_hand() {
        assert_renders!(
            "setup_units_command",
            &SetupReport {
                config: "/home/me/.config/kopi-docka/config.toml".into(),
                repository: "s3:https://s3.eu-central-1.amazonaws.com/bucket/host1".into(),
                password_file: "/home/me/.config/kopi-docka/repository.password".into(),
                password_generated: true,
                repository_action: RepositoryAction::Created,
                snapshots: 0,
                previous_config: None,
                env_file: Some("/home/me/.config/kopi-docka/repository.env".into()),
                ssh_key: None,
                tailscale_peer: None,
                schedule: Some("daily".into()),
                units: Units::Command {
                    why: "writing units needs root".into(),
                    command: "sudo kopi-docka --config /home/me/.config/kopi-docka/config.toml \
                              admin service write-units"
                        .into(),
                },
                notification: None,
                dr_bundle: None,
            }
        );
    }
}
