//! The systemd units that ran a unit's containers, brought back by a restore: their files from
//! the recipe's `systemd/` (unit file, Quadlet source, drop-ins; see `backup::recipe`) put
//! back with their owners and modes, then the manager reloaded; the unit is then stopped and
//! started through systemd ([`crate::stop`]), and a unit whose containers are gone is started
//! through its unit, never recreated through the engine ([`super::StartPlan::Systemd`]).
//!
//! Rules:
//! - a file identical to the recipe's is left alone; a missing one is created; a different one
//!   is renamed aside to `<name>.kopi-docka-<time>.bak` first (never overwritten without a
//!   copy), and the plan says so before anything happens;
//! - every file written needs trust: a unit file runs commands as its manager's user (root for
//!   the system manager);
//! - files go only into the directories systemd and Quadlet read (`/etc/systemd/system`,
//!   `/etc/containers/systemd`, and under the user's home `.config/systemd/user`,
//!   `.config/containers/systemd`): a recipe cannot name any other path;
//! - a user's unit files belong to that user (their numeric owner on the new host, which may
//!   differ from the old one), and so do the directories created for them in the home; system
//!   unit files get their recorded owner and mode.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RestoreError;
use super::nofollow;
use super::recipe::Recipe;
use crate::docker::Engine;
use crate::systemd::control::{FileOwner, Manager, Service};

/// One entry of the recipe's `systemd/units.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedService {
    /// The unit and its manager.
    pub service: Service,
    /// Its files at backup time (absolute paths; copies under `systemd/<path>`).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Owner and mode of each of `files` (recipes of earlier versions have none).
    #[serde(default)]
    pub owners: Vec<FileOwner>,
}

/// The recipe's recorded units (empty when it has none).
pub fn recorded(recipe: &Recipe) -> Result<Vec<RecordedService>, RestoreError> {
    let path = recipe.dir.join("systemd").join("units.json");
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RestoreError::io(&path)(e)),
    };
    serde_json::from_slice(&text).map_err(|e| RestoreError::Recipe {
        path,
        reason: e.to_string(),
    })
}

/// What a restore does with one unit file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitFileAction {
    /// Missing: created.
    Create,
    /// Identical to the recipe's: not touched.
    Same,
    /// Different: kept aside as `*.kopi-docka-<time>.bak`, then replaced.
    Replace,
}

/// A unit file of the recipe, as planned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitFilePlan {
    /// Where it goes (where it was at backup time).
    pub path: PathBuf,
    /// The unit it belongs to.
    pub unit: String,
    /// The user whose `--user` manager reads it; none: the system manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What happens to it.
    pub action: UnitFileAction,
}

/// What the restore needs to write a planned unit file.
#[derive(Debug, Clone)]
pub(super) struct UnitFileSource {
    from: PathBuf,
    owner: FileOwner,
    manager: Manager,
}

/// The recipe's unit files against the host.
pub(super) fn plan(
    engine: &Engine,
    recorded: &[RecordedService],
    recipe: &Recipe,
) -> Result<(Vec<UnitFileSource>, Vec<UnitFilePlan>), RestoreError> {
    let mut sources = Vec::new();
    let mut plans = Vec::new();
    for entry in recorded {
        let unit = &entry.service.unit;
        let refused = |reason: String| RestoreError::SystemdUnit {
            unit: unit.clone(),
            reason,
        };
        if entry.files.is_empty() {
            continue;
        }
        let manager = Manager::of(&entry.service, engine).map_err(&refused)?;
        for (i, path) in entry.files.iter().enumerate() {
            if !allowed(&manager, path) {
                return Err(refused(format!(
                    "the recipe puts its file at {}, which is not a unit directory of {manager}",
                    path.display()
                )));
            }
            let from = recipe
                .dir
                .join("systemd")
                .join(path.strip_prefix("/").unwrap_or(path));
            let new = std::fs::read(&from).map_err(RestoreError::io(&from))?;
            let mode = entry.owners.get(i).map_or_else(
                || {
                    std::fs::metadata(&from).map_or(0o644, |m| {
                        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
                    })
                },
                |o| o.mode,
            );
            // A user's files are that user's, by its uid on this host; the system's keep the
            // recorded owner (root, as a rule).
            let owner = match &manager {
                Manager::User { uid, gid, .. } => FileOwner {
                    uid: *uid,
                    gid: *gid,
                    mode,
                },
                Manager::System => entry.owners.get(i).copied().unwrap_or(FileOwner {
                    uid: 0,
                    gid: 0,
                    mode,
                }),
            };
            let action = match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_file() && std::fs::read(path).is_ok_and(|old| old == new) => {
                    UnitFileAction::Same
                }
                Ok(_) => UnitFileAction::Replace,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => UnitFileAction::Create,
                Err(e) => return Err(RestoreError::io(path)(e)),
            };
            plans.push(UnitFilePlan {
                path: path.clone(),
                unit: unit.clone(),
                user: match &manager {
                    Manager::User { name, .. } => Some(name.clone()),
                    Manager::System => None,
                },
                action,
            });
            sources.push(UnitFileSource {
                from,
                owner,
                manager: manager.clone(),
            });
        }
    }
    Ok((sources, plans))
}

/// The directories a unit file may be restored into: those the manager (and Quadlet) reads.
fn allowed(manager: &Manager, path: &Path) -> bool {
    let dirs: Vec<PathBuf> = match manager {
        Manager::System => vec![
            "/etc/systemd/system".into(),
            "/etc/containers/systemd".into(),
        ],
        Manager::User { home, .. } => vec![
            home.join(".config/systemd/user"),
            home.join(".config/containers/systemd"),
        ],
    };
    let plain = path
        .components()
        .all(|c| !matches!(c, std::path::Component::ParentDir));
    plain && path.is_absolute() && dirs.iter().any(|d| path.starts_with(d) && path != d)
}

/// Writes the planned unit files that are missing or different (the replaced ones kept
/// aside), then reloads each manager that got a file. Returns each file written with the
/// copy of what it replaced.
pub(super) async fn put_back(
    sources: &[UnitFileSource],
    plans: &[UnitFilePlan],
    stamp: &str,
) -> Result<Vec<(PathBuf, Option<PathBuf>)>, RestoreError> {
    let mut written = Vec::new();
    let mut reload: Vec<&Manager> = Vec::new();
    for (source, plan) in sources.iter().zip(plans) {
        if plan.action == UnitFileAction::Same {
            continue;
        }
        if let Manager::User { home, uid, gid, .. } = &source.manager {
            owned_dirs(home, plan.path.parent().unwrap_or(home), *uid, *gid)?;
        }
        let backup = super::recipe::place_file_as(
            &source.from,
            &plan.path,
            stamp,
            source.owner.mode,
            Some((source.owner.uid, source.owner.gid)),
        )?;
        tracing::info!(file = %plan.path.display(), unit = %plan.unit, "unit file put back");
        written.push((plan.path.clone(), backup));
        if !reload.contains(&&source.manager) {
            reload.push(&source.manager);
        }
    }
    for manager in reload {
        manager
            .daemon_reload()
            .await
            .map_err(|reason| RestoreError::SystemdUnit {
                unit: "daemon-reload".into(),
                reason,
            })?;
        tracing::info!(%manager, "reloaded after putting unit files back");
    }
    Ok(written)
}

/// Creates the missing directories from `home` down to `dir`, owned by the user (systemd
/// ignores a user's unit directory that is not the user's to change, and so would the user).
fn owned_dirs(home: &Path, dir: &Path, uid: u32, gid: u32) -> Result<(), RestoreError> {
    let Ok(rel) = dir.strip_prefix(home) else {
        return Ok(());
    };
    let io = |e| RestoreError::io(dir)(e);
    let mut fd = nofollow::open_dir(home, None).map_err(io)?;
    for name in rel {
        let exists = nofollow::exists_in(&fd, &name.to_string_lossy()).map_err(io)?;
        let child = nofollow::open_child(&fd, name, Some(0o755)).map_err(io)?;
        if !exists {
            rustix::fs::fchown(
                &child,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| io(e.into()))?;
        }
        fd = child;
    }
    Ok(())
}

/// The services a restore starts when the unit's containers are gone: the configured unit
/// (`[units.<name>] systemd-unit`), else each recorded unit whose files the recipe holds (a
/// unit that existed at backup time; a label alone may name a unit that never did).
pub(super) fn to_start(configured: Option<&Service>, recorded: &[RecordedService]) -> Vec<Service> {
    if let Some(service) = configured {
        return vec![service.clone()];
    }
    let mut out: Vec<Service> = Vec::new();
    for entry in recorded.iter().filter(|e| !e.files.is_empty()) {
        if !out.contains(&entry.service) {
            out.push(entry.service.clone());
        }
    }
    out
}

/// Starts `services` through their managers (restarted when active: a stack unit whose
/// containers are gone runs its start command again). Returns the errors.
pub(super) async fn start(
    engine: &Engine,
    services: &[Service],
    timeout: std::time::Duration,
) -> Vec<String> {
    let mut errors = Vec::new();
    for service in services {
        let started = async {
            let manager = Manager::of(service, engine)?;
            let state = manager.state(&service.unit).await?;
            if state.is_up() {
                manager.restart(&service.unit, timeout).await?;
            } else {
                manager.start(&service.unit, timeout).await?;
            }
            tracing::info!(unit = %service.unit, %manager, "started through systemd");
            Ok::<(), String>(())
        };
        if let Err(error) = started.await {
            errors.push(format!(
                "systemd unit {} did not start: {error}",
                service.unit
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_files_go_only_into_unit_directories() {
        let user = Manager::User {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
        };
        assert!(allowed(
            &Manager::System,
            Path::new("/etc/systemd/system/container-web.service")
        ));
        assert!(allowed(
            &Manager::System,
            Path::new("/etc/containers/systemd/web.container")
        ));
        assert!(!allowed(&Manager::System, Path::new("/etc/shadow")));
        assert!(!allowed(
            &Manager::System,
            Path::new("/etc/systemd/system/../../shadow")
        ));
        assert!(allowed(
            &user,
            Path::new("/home/alice/.config/systemd/user/app-stack.service")
        ));
        assert!(!allowed(
            &user,
            Path::new("/etc/systemd/system/app-stack.service")
        ));
        assert!(!allowed(&user, Path::new("/home/alice/.bashrc")));
    }
}
