//! Restoring a volume's or a bind's content in place, with a rollback copy.
//!
//! The content is restored into a staging sibling of the target (same directory, so same
//! filesystem), then swapped in with two renames: the old content becomes the rollback copy,
//! the staging copy becomes the target. Until the swap the old content is untouched, so a
//! failure or an interrupt while restoring leaves it in place; after the swap, [`Swapped::undo`]
//! puts it back. Nothing goes through /tmp and no helper container is needed; ownership,
//! modes and extended attributes come from the snapshot.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::RestoreError;
use crate::backup::Interrupt;
use crate::repo::{Repo, RestoreMode};

/// Test-only fault injection: when `KOPI_DOCKA_FAILPOINT` names `restore:<target path>`, the
/// restore of that target fails after its content is staged, before the swap. The tests use
/// it to prove the rollback of a unit whose other volumes were already swapped in; there is no
/// other reliable way to make a real restore fail at that exact moment. (The drill has its own
/// point, `drill-before-verify:`, in debug builds.)
pub(super) const FAILPOINT_ENV: &str = "KOPI_DOCKA_FAILPOINT";

/// How long an interrupted restore waits for the abandoned rustic_core restore to give up.
const ABANDON_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A target whose content was replaced.
#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    /// The live path (a volume's `_data`, a bind source).
    pub target: PathBuf,
    /// Where the previous content now is; `None` when there was none.
    pub rollback: Option<PathBuf>,
    /// Files and directories written.
    pub restored: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// `dir/.name.kopi-docka-<what>-<stamp>`: hidden, beside the target, on its filesystem.
pub fn sibling(target: &Path, what: &str, stamp: &str) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.kopi-docka-{what}-{stamp}"))
}

/// Refuses targets a rename cannot swap (mount points) and targets without room for a second
/// copy of the snapshot (`size` bytes) beside the current content.
pub fn preflight(target: &Path, size: Option<u64>) -> Result<(), RestoreError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let existing_parent = parent
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if let (Ok(meta), Ok(parent_meta)) =
        (std::fs::symlink_metadata(target), std::fs::metadata(parent))
        && meta.dev() != parent_meta.dev()
    {
        return Err(RestoreError::MountPoint {
            path: target.to_path_buf(),
        });
    }
    if let Some(size) = size {
        let free = crate::backup::free_bytes(existing_parent)
            .map_err(RestoreError::io(existing_parent))?;
        if free < size {
            return Err(RestoreError::NoSpace {
                path: existing_parent.to_path_buf(),
                needed: size,
                free,
            });
        }
    }
    Ok(())
}

/// Restores snapshot `id` over `target` as described in the module docs. On an interrupt the
/// staging copy is abandoned (and removed) and the target is untouched.
pub async fn restore_in_place(
    repo: &Repo,
    id: &str,
    target: &Path,
    stamp: &str,
    interrupt: &Interrupt,
) -> Result<Swapped, RestoreError> {
    let staging = sibling(target, "restoring", stamp);
    remove_abandoned(target)?;
    if let Some(parent) = target.parent() {
        crate::durable::create_dir_all(parent, 0o755).map_err(RestoreError::io(parent))?;
    }
    let mut interrupt = interrupt.clone();
    let restore = repo.restore(id.to_owned(), staging.clone(), RestoreMode::EmptyOnly);
    tokio::pin!(restore);
    let restored = tokio::select! {
        result = &mut restore => result,
        _ = interrupt.wait_for(|stop| *stop) => {
            // rustic_core's restore cannot be cancelled. Removing its target makes its next
            // write fail, so it ends soon; then whatever it wrote meanwhile goes too.
            if let Err(error) = remove_any(&staging) {
                tracing::warn!(%error, "cannot remove the abandoned staging copy");
            }
            if tokio::time::timeout(ABANDON_WAIT, &mut restore).await.is_err() {
                tracing::warn!("the abandoned restore is still running");
            }
            if let Err(error) = remove_any(&staging) {
                tracing::warn!(%error, path = %staging.display(), "cannot remove the abandoned staging copy");
            }
            return Err(RestoreError::Interrupted);
        }
    };
    let report = match restored {
        Ok(report) => report,
        Err(error) => {
            if let Err(e) = remove_any(&staging) {
                tracing::warn!(error = %e, path = %staging.display(), "cannot remove the staging copy");
            }
            return Err(error.into());
        }
    };
    if failpoint(target) {
        remove_any(&staging)?;
        return Err(RestoreError::Injected {
            path: target.to_path_buf(),
        });
    }
    let rollback = sibling(target, "rollback", stamp);
    let had_content = std::fs::symlink_metadata(target).is_ok();
    if had_content {
        std::fs::rename(target, &rollback).map_err(RestoreError::io(target))?;
    }
    if let Err(error) = std::fs::rename(&staging, target) {
        if had_content && let Err(e) = std::fs::rename(&rollback, target) {
            tracing::error!(error = %e, rollback = %rollback.display(), "cannot put the previous content back");
        }
        return Err(RestoreError::io(target)(error));
    }
    Ok(Swapped {
        target: target.to_path_buf(),
        rollback: had_content.then_some(rollback),
        restored: report.restored,
        bytes: report.bytes,
    })
}

impl Swapped {
    /// Puts the previous content back (or removes the restored content when there was none).
    pub fn undo(&self, stamp: &str) -> Result<(), RestoreError> {
        let failed = sibling(&self.target, "failed", stamp);
        std::fs::rename(&self.target, &failed).map_err(RestoreError::io(&self.target))?;
        if let Some(rollback) = &self.rollback {
            std::fs::rename(rollback, &self.target).map_err(RestoreError::io(rollback))?;
        }
        remove_any(&failed)
    }
}

fn failpoint(target: &Path) -> bool {
    std::env::var_os(FAILPOINT_ENV).is_some_and(|v| {
        v.to_string_lossy()
            .strip_prefix("restore:")
            .is_some_and(|p| Path::new(p) == target)
    })
}

/// Removes staging copies an interrupted or killed restore of `target` left behind.
fn remove_abandoned(target: &Path) -> Result<(), RestoreError> {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Ok(());
    };
    let prefix = format!(".{}.kopi-docka-restoring-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(path = %entry.path().display(), "removing an abandoned staging copy");
            remove_any(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes a file or a directory tree; absent is fine.
pub fn remove_any(path: &Path) -> Result<(), RestoreError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(RestoreError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_are_hidden_beside_the_target() {
        assert_eq!(
            sibling(
                Path::new("/var/lib/docker/volumes/app_db/_data"),
                "rollback",
                "S"
            ),
            Path::new("/var/lib/docker/volumes/app_db/._data.kopi-docka-rollback-S")
        );
        assert_eq!(
            sibling(Path::new("/srv/app/config.yml"), "restoring", "S"),
            Path::new("/srv/app/.config.yml.kopi-docka-restoring-S")
        );
    }

    #[test]
    fn undo_puts_the_previous_content_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("data");
        let rollback = sibling(&target, "rollback", "S");
        std::fs::create_dir(&rollback).unwrap();
        std::fs::write(rollback.join("old"), "old").unwrap();
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("new"), "new").unwrap();
        let swapped = Swapped {
            target: target.clone(),
            rollback: Some(rollback.clone()),
            restored: 1,
            bytes: 3,
        };
        swapped.undo("S").unwrap();
        assert_eq!(std::fs::read_to_string(target.join("old")).unwrap(), "old");
        assert!(!target.join("new").exists());
        assert!(!rollback.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
