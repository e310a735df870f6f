//! Writes that survive a crash and never expose a half-written or world-readable file.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

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
