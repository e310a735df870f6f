//! Writes that survive a crash and never expose a half-written or world-readable file.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically: a temp file in the same directory created with
/// `mode` (never wider, whatever the umask), fsync, rename over `path`, fsync of the directory.
/// Readers see the old file or the new one, never a mix.
///
/// The temp file has a random name created exclusively (`tempfile`), so a temp file left by a
/// crash, even one whose name a reused PID would have produced, never blocks a later write.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".tmp-");
    // The mode is given at creation (O_CREAT|O_EXCL), so there is no moment when the file is
    // readable by others, as there would be with a chmod afterwards.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    let written = tmp
        .write_all(contents)
        .and_then(|()| tmp.as_file().sync_all());
    if let Err(error) = written {
        discard(tmp);
        return Err(error);
    }
    if let Err(error) = tmp.persist(path) {
        discard(error.file);
        return Err(error.error);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `entries` as a JSON list with [`write_file`] (mode 0600, the directory created 0700),
/// or removes the file when the list is empty: the journals of what a run still has to undo.
pub fn write_json_list<T: serde::Serialize>(path: &Path, entries: &[T]) -> std::io::Result<()> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        create_dir_all(dir, 0o700)?;
    }
    let json = serde_json::to_vec_pretty(entries).map_err(std::io::Error::other)?;
    write_file(path, &json, 0o600)
}

/// Removes a temp file that will not be renamed into place; says so when that fails too.
fn discard(tmp: tempfile::NamedTempFile) {
    let name = tmp.path().to_owned();
    if let Err(error) = tmp.close() {
        tracing::warn!(path = %name.display(), %error, "cannot remove temporary file");
    }
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_causes_like_anyhow() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer: inner");
    }

    #[test]
    fn a_stale_temp_file_does_not_block_writes() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        // What a crashed writer with this process's PID left behind under the old naming.
        let stale = dir
            .path()
            .join(format!(".journal.json.tmp-{}", std::process::id()));
        std::fs::write(&stale, "half").unwrap();
        write_file(&path, b"new", 0o600).unwrap();
        write_file(&path, b"newer", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "newer");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only the stale file (not ours to remove) and the result are left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                format!(".journal.json.tmp-{}", std::process::id()),
                "journal.json".to_owned()
            ]
        );
    }

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

/// A file that holds secrets could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// Group or others may read it: refusing it makes the leak visible instead of silent.
    #[error(
        "{} holds secrets but others may read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
    },
    /// It cannot be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a file that holds secrets; refuses it when group or others may read it.
pub fn read_private(path: &Path) -> Result<String, PrivateFileError> {
    let read = |source| PrivateFileError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        return Err(PrivateFileError::Exposed {
            path: path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

/// An error and its causes as one line, `outer: cause: cause` (what `{:#}` shows for an
/// `anyhow::Error`), for messages that leave the library as text: pings, notifications.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
