//! Writes that survive a crash and never expose a half-written or world-readable file.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically: a temp file in the same directory created with
/// `mode` (never wider, whatever the umask), fsync, rename over `path`, fsync of the directory.
/// Readers see the old file or the new one, never a mix.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err()
        && tmp.exists()
        && let Err(error) = std::fs::remove_file(&tmp)
    {
        tracing::warn!(path = %tmp.display(), %error, "cannot remove temporary file");
    }
    result
}

/// Creates a directory and its parents with `mode` for the ones it creates.
pub fn create_dir_all(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
}

/// The UTC time as used in file names kopi-docka creates: `20261122T020000Z`.
pub fn stamp(now: jiff::Timestamp) -> String {
    now.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Where [`keep_aside`] moves `path`: `<name>.kopi-docka-<stamp>.bak` beside it.
pub fn aside_path(path: &Path, stamp: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".kopi-docka-{stamp}.bak"));
    path.with_file_name(name)
}

/// Renames an existing `path` to [`aside_path`] before it is replaced, so nothing is
/// overwritten without a copy. Returns the new name; `None` when `path` did not exist.
pub fn keep_aside(path: &Path, stamp: &str) -> std::io::Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let aside = aside_path(path, stamp);
    std::fs::rename(path, &aside)?;
    Ok(Some(aside))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_aside_renames_existing_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert_eq!(keep_aside(&path, "S").unwrap(), None);
        std::fs::write(&path, "old").unwrap();
        let aside = keep_aside(&path, "S").unwrap().unwrap();
        assert!(aside.ends_with("config.toml.kopi-docka-S.bak"));
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "old");
        assert!(!path.exists());
        assert_eq!(
            stamp("2026-11-22T02:03:04Z".parse().unwrap()),
            "20261122T020304Z"
        );
    }
}
