//! Restoring a volume's or a bind's content in place, with a rollback copy.
//!
//! The content is restored into a private directory beside the target ([`PrivateDir`]: a
//! random name created exclusively, mode 0700, same filesystem), as `data`, and written only
//! through that directory's file descriptor, so no local user can redirect it. Its filesystem
//! is synced, then two renames relative to directory descriptors swap it in: the old content
//! becomes `rollback` in the private directory, `data` becomes the target; both directories
//! are synced. Until the swap the old content is untouched, so a failure or an interrupt while
//! restoring leaves it in place; after the swap, [`super::swaps::put_back`] puts it back.
//! Nothing goes through /tmp and no helper container is needed; ownership, modes and extended
//! attributes come from the snapshot.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::RestoreError;
use super::nofollow::{self, PrivateDir};
use super::swaps::{SwapEntry, SwapJournal};
use crate::backup::Interrupt;
use crate::repo::{Repo, RestoreMode};

/// Test-only fault injection: when `KOPI_DOCKA_FAILPOINT` names `restore:<target path>`, the
/// restore of that target fails after its content is staged, before the swap; with
/// `hold-after-swap:<target path>` the restore stops (forever) right after that target was
/// swapped, for a test to kill it there. The tests use them to prove the rollback of a unit
/// whose other volumes were already swapped in; there is no other reliable way to make a real
/// restore fail or die at that exact moment. (The drill has its own point,
/// `drill-before-verify:`, in debug builds.)
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
    /// The private directory holding the rollback copy.
    #[serde(skip)]
    pub private: PathBuf,
}

/// A target's content restored into its private directory, not swapped in yet.
#[derive(Debug)]
pub struct Staged {
    target: PathBuf,
    parent: OwnedFd,
    private: PrivateDir,
    restored: u64,
    bytes: u64,
}

/// Refuses targets a rename cannot swap (mount points).
pub fn preflight(target: &Path) -> Result<(), RestoreError> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    if let (Ok(meta), Ok(parent_meta)) =
        (std::fs::symlink_metadata(target), std::fs::metadata(parent))
        && meta.dev() != parent_meta.dev()
    {
        return Err(RestoreError::MountPoint {
            path: target.to_path_buf(),
        });
    }
    Ok(())
}

/// Restores snapshot `id` into a new private directory beside `target` (a path without
/// symlinks: [`nofollow::resolve_trusted`]), recorded in `journal` first so that a crash
/// leaves nothing behind the next run does not clean up. On an interrupt or a failure the
/// private directory is removed and the target is untouched.
pub async fn stage(
    repo: &Repo,
    id: &str,
    target: &Path,
    journal: &mut SwapJournal,
    interrupt: &Interrupt,
) -> Result<Staged, RestoreError> {
    let name = nofollow::file_name(target).map_err(RestoreError::io(target))?;
    let parent = nofollow::open_parent(target).map_err(RestoreError::io(target))?;
    let prefix = format!(".{}.kopi-docka-", name.to_string_lossy());
    let private = PrivateDir::create(&parent, &prefix).map_err(RestoreError::io(target))?;
    let private_path = target.with_file_name(&private.name);
    let recorded = journal.add(SwapEntry {
        target: target.to_path_buf(),
        private: private_path.clone(),
        swapping: false,
    });
    if let Err(error) = recorded {
        discard(&parent, &private);
        return Err(RestoreError::Swap(error));
    }
    let staging = private.path().join("data");
    let mut interrupt = interrupt.clone();
    let restore = repo.restore(id.to_owned(), staging.clone(), RestoreMode::EmptyOnly);
    tokio::pin!(restore);
    let restored = tokio::select! {
        result = &mut restore => result,
        _ = interrupt.wait_for(|stop| *stop) => {
            // rustic_core's restore cannot be cancelled. Removing its target makes its next
            // write fail, so it ends soon; then whatever it wrote meanwhile goes too.
            discard(&parent, &private);
            if tokio::time::timeout(ABANDON_WAIT, &mut restore).await.is_err() {
                tracing::warn!("the abandoned restore is still running");
                // It writes through this descriptor's number: never let the number be reused.
                std::mem::forget(private);
                return Err(RestoreError::Interrupted);
            }
            discard(&parent, &private);
            return Err(RestoreError::Interrupted);
        }
    };
    let report = match restored {
        Ok(report) => report,
        Err(error) => {
            discard(&parent, &private);
            return Err(error.into());
        }
    };
    if failpoint("restore", target) {
        discard(&parent, &private);
        return Err(RestoreError::Injected {
            path: target.to_path_buf(),
        });
    }
    // Thousands of files: one syncfs makes them durable before the swap points at them.
    nofollow::sync_filesystem(&private.fd).map_err(RestoreError::io(&private_path))?;
    Ok(Staged {
        target: target.to_path_buf(),
        parent,
        private,
        restored: report.restored,
        bytes: report.bytes,
    })
}

fn discard(parent: &OwnedFd, private: &PrivateDir) {
    if let Err(error) = nofollow::remove_in(parent, &private.name) {
        tracing::warn!(%error, name = %private.name.to_string_lossy(), "cannot remove the staging copy");
    }
}

/// Swaps a staged copy in (see the module docs); `journal` learns first that it begins.
pub async fn swap(staged: Staged, journal: &mut SwapJournal) -> Result<Swapped, RestoreError> {
    let Staged {
        target,
        parent,
        private,
        restored,
        bytes,
    } = staged;
    let private_path = target.with_file_name(&private.name);
    journal.swapping().map_err(RestoreError::Swap)?;
    let name = nofollow::file_name(&target).map_err(RestoreError::io(&target))?;
    let had_content =
        nofollow::exists_in(&parent, &name.to_string_lossy()).map_err(RestoreError::io(&target))?;
    let (data, rollback) = (OsStr::new("data"), OsStr::new("rollback"));
    if had_content {
        nofollow::rename(&parent, name, &private.fd, rollback)
            .map_err(RestoreError::io(&target))?;
    }
    if let Err(error) = nofollow::rename(&private.fd, data, &parent, name) {
        if had_content && let Err(e) = nofollow::rename(&private.fd, rollback, &parent, name) {
            tracing::error!(error = %e, rollback = %private_path.display(), "cannot put the previous content back");
        }
        return Err(RestoreError::io(&target)(error));
    }
    for fd in [&private.fd, &parent] {
        nofollow::sync(fd).map_err(RestoreError::io(&target))?;
    }
    tracing::info!(target = %target.display(), "swapped in");
    if failpoint("hold-after-swap", &target) {
        tracing::warn!(target = %target.display(), "failpoint: holding after the swap");
        std::future::pending::<()>().await;
    }
    Ok(Swapped {
        rollback: had_content.then(|| private_path.join("rollback")),
        target,
        restored,
        bytes,
        private: private_path,
    })
}

fn failpoint(name: &str, target: &Path) -> bool {
    std::env::var_os(FAILPOINT_ENV).is_some_and(|v| {
        v.to_string_lossy()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|p| Path::new(p) == target)
    })
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
