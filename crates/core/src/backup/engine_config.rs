//! The engine's own configuration (`full` scope): daemon.json and friends.

use std::path::Path;

use crate::repo::{BackupId, Part, Scope, SnapshotMeta, WriteRepo};

use super::report::SnapshotRecord;

/// The engine's own configuration files, snapshotted once per `full` run.
pub const DOCKER_CONFIG_FILES: &[&str] = &[
    "/etc/docker/daemon.json",
    "/etc/systemd/system/docker.service.d",
];

/// Snapshots the engine's configuration ([`DOCKER_CONFIG_FILES`], those that exist) once per
/// run. `Ok(None)` when none exists.
pub async fn backup_docker_config(
    repo: &WriteRepo,
    staging_dir: &Path,
    backup_id: &BackupId,
) -> Result<Option<SnapshotRecord>, String> {
    let staging = staging_dir.join(format!("docker-config-{backup_id}"));
    let copy = || -> std::io::Result<bool> {
        let mut any = false;
        for source in DOCKER_CONFIG_FILES.iter().map(Path::new) {
            if !source.exists() {
                continue;
            }
            any = true;
            let dest = staging.join(source.strip_prefix("/").unwrap_or(source));
            std::fs::create_dir_all(dest.parent().unwrap_or(&staging))?;
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(source)
                .arg(&dest)
                .status()?;
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "cp -a {} failed",
                    source.display()
                )));
            }
        }
        Ok(any)
    };
    let result = match copy() {
        Ok(false) => Ok(None),
        Ok(true) => {
            let meta = SnapshotMeta {
                unit: None,
                part: Part::DockerConfig,
                backup_id: backup_id.clone(),
                scope: Scope::Full,
                pass: None,
            };
            repo.snapshot(staging.clone(), meta, None)
                .await
                .map(|info| Some(SnapshotRecord::from(info)))
                .map_err(|e| format!("docker config: {e}"))
        }
        Err(error) => Err(format!("staging the docker config: {error}")),
    };
    if let Err(error) = std::fs::remove_dir_all(&staging)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, "cannot remove the docker-config staging dir");
    }
    result
}
