//! Checks before anything stops: room to stage recipes, sizes for the dry run.

use std::path::{Path, PathBuf};

/// Bytes of regular files below `path` (not following symlinks), for `--dry-run --sizes`.
pub fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| tree_size(&e.path()))
            .sum()
    })
}

/// Staging needs room for a unit's recipe (compose and env files, inspect output): small, but
/// a full disk must be found before anything stops, not while the unit is down.
pub const MIN_STAGING_FREE_BYTES: u64 = 64 << 20;

/// Free bytes for an unprivileged writer on the filesystem that holds `path` (or its nearest
/// existing ancestor).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let stat = rustix::fs::statvfs(existing)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The staging directory cannot take a unit's recipe.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// Its free space cannot be read.
    #[error("checking free space for {}", dir.display())]
    Check {
        /// The staging directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its filesystem is nearly full.
    #[error(
        "only {free} bytes free for staging in {}; free some space (or set \
         KOPI_DOCKA_CACHE_DIR) before a backup stops anything",
        dir.display()
    )]
    Low {
        /// Free bytes.
        free: u64,
        /// The staging directory.
        dir: PathBuf,
    },
}

/// Fails when the staging filesystem is nearly full: found before anything stops, not while
/// a unit is down.
pub fn check_staging_space(staging_dir: &Path) -> Result<(), StagingError> {
    let free = free_bytes(staging_dir).map_err(|source| StagingError::Check {
        dir: staging_dir.to_owned(),
        source,
    })?;
    if free < MIN_STAGING_FREE_BYTES {
        return Err(StagingError::Low {
            free,
            dir: staging_dir.to_owned(),
        });
    }
    Ok(())
}
