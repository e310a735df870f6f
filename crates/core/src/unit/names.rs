//! Names and paths from the engine, checked before they become paths, arguments or file names.
//!
//! Labels are set by whoever creates a container: `docker run --label
//! com.docker.compose.project.config_files=/etc/shadow` is all it takes to aim another stack's
//! recipe at a host secret, and a FIFO there would hang discovery. So:
//! - unit, container, service and volume names with `/`, `..`, NUL, control characters or a
//!   leading `-` are refused ([`engine_name`]);
//! - a recorded path must be absolute, without `..` and NUL ([`host_path`]);
//! - a project's working directory must be a directory outside the system trees
//!   ([`working_dir`]);
//! - a project file is read only when it is a regular file inside that working directory,
//!   not a hard link owned by someone else, and at most [`MAX_PROJECT_FILE`] bytes; it is opened
//!   with `O_NONBLOCK` and checked again on the open descriptor ([`read_project_file`]), so a
//!   FIFO or a device swapped in after discovery is never read.
//!
//! What is refused is reported (a warning, a `not protected` coverage entry); it never ends a
//! run.

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

/// The largest compose or env file read (compose files are a few KiB).
pub const MAX_PROJECT_FILE: u64 = 4 * 1024 * 1024;

/// System trees no compose project lives in. `/var/lib/docker` is not among them: a manager
/// container (Portainer) keeps its stacks in a volume there.
const SYSTEM_DIRS: &[&str] = &[
    "/proc", "/sys", "/dev", "/run", "/var/run", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32",
    "/lib64", "/boot",
];

/// Checks a unit, container, service or volume name from the engine.
pub fn engine_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains('/') {
        "it contains `/`"
    } else if name.contains("..") {
        "it contains `..`"
    } else if name.contains('\0') {
        "it contains NUL"
    } else if name.chars().any(char::is_control) {
        "it contains control characters"
    } else if name.starts_with('-') {
        "it starts with `-` (it would read as an option)"
    } else {
        return Ok(());
    };
    Err(format!(
        "the name {:?} is refused: {why}",
        name.escape_debug().to_string()
    ))
}

/// A host path as recorded by the engine or a label: absolute, no `..`, no NUL. Returns it
/// without `.` components and trailing slashes.
pub fn host_path(text: &str) -> Result<PathBuf, String> {
    if text.contains('\0') {
        return Err("it contains NUL".into());
    }
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err("it is not an absolute path".into());
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err("it contains `..`".into());
    }
    Ok(path.components().collect())
}

/// Checks a project's working directory on this host: a directory, not `/` and not in a
/// system tree. Returns it canonical (symlinks resolved), the base project files must be in.
pub fn working_dir(dir: &Path) -> Result<PathBuf, String> {
    let canonical = dir
        .canonicalize()
        .map_err(|e| format!("working directory {}: {e}", dir.display()))?;
    if !canonical.is_dir() {
        return Err(format!(
            "working directory {} is not a directory",
            dir.display()
        ));
    }
    if canonical == Path::new("/") || SYSTEM_DIRS.iter().any(|s| canonical.starts_with(s)) {
        return Err(format!(
            "working directory {} is a system directory, not a compose project",
            dir.display()
        ));
    }
    Ok(canonical)
}

/// Reads a compose or env file when it is safe to (see the module docs). `base` is the
/// canonical working directory from [`working_dir`].
pub fn read_project_file(path: &Path, base: &Path) -> Result<Vec<u8>, String> {
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !canonical.starts_with(base) {
        return Err(format!(
            "{} is outside the project's working directory {}",
            path.display(),
            base.display()
        ));
    }
    // stat before open: opening a device can have effects of its own.
    let meta = std::fs::metadata(&canonical).map_err(|e| format!("{}: {e}", path.display()))?;
    check_file(path, &meta, base)?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW;
    let mut file = std::fs::File::from(
        rustix::fs::open(canonical.as_path(), flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("{}: {e}", path.display()))?,
    );
    // Again on what was opened: the path may have been swapped meanwhile.
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    check_file(path, &meta, base)?;
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_PROJECT_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PROJECT_FILE {
        return Err(too_big(path));
    }
    Ok(bytes)
}

fn check_file(path: &Path, meta: &std::fs::Metadata, base: &Path) -> Result<(), String> {
    if !meta.file_type().is_file() {
        return Err(format!(
            "{} is not a regular file (a FIFO, device or directory is never read)",
            path.display()
        ));
    }
    if meta.len() > MAX_PROJECT_FILE {
        return Err(too_big(path));
    }
    // A hard link is how a file from elsewhere (on the same filesystem) appears inside the
    // project; one owned by someone other than the project's owner is not the project's.
    let owner = std::fs::metadata(base).map(|m| m.uid()).ok();
    if meta.nlink() > 1 && owner != Some(meta.uid()) {
        return Err(format!(
            "{} is a hard link owned by uid {}, not by the owner of the project directory",
            path.display(),
            meta.uid()
        ));
    }
    Ok(())
}

fn too_big(path: &Path) -> String {
    format!(
        "{} is larger than {} MiB: not a compose or env file",
        path.display(),
        MAX_PROJECT_FILE / 1024 / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["web", "my-app_1", "a.b", "kdtest-1234abcd-stack"] {
            assert_eq!(engine_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a/b", "..", "a..b", "x\0y", "-p", "line\nbreak", "/abs"] {
            let error = engine_name(bad).unwrap_err();
            assert!(error.contains("refused"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn host_paths_are_checked() {
        assert_eq!(host_path("/srv/./app/"), Ok(PathBuf::from("/srv/app")));
        assert!(host_path("srv/app").is_err());
        assert!(host_path("/srv/../etc").is_err());
        assert!(host_path("/srv/a\0b").is_err());
    }

    #[test]
    fn project_files_are_read_only_when_safe() {
        let dir = tempfile::tempdir().unwrap();
        let base = working_dir(dir.path()).unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").unwrap();
        assert_eq!(
            read_project_file(&dir.path().join("docker-compose.yml"), &base).unwrap(),
            b"services: {}\n"
        );
        // Outside the working dir, directly or through a symlink.
        assert!(read_project_file(Path::new("/etc/hostname"), &base).is_err());
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("link.yml")).unwrap();
        let error = read_project_file(&dir.path().join("link.yml"), &base).unwrap_err();
        assert!(error.contains("outside"), "{error}");
        // A FIFO: refused at once, never opened for a blocking read.
        let fifo = dir.path().join("fifo.yml");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let error = read_project_file(&fifo, &base).unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        // Too big.
        let big = dir.path().join("big.yml");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_PROJECT_FILE + 1)
            .unwrap();
        assert!(
            read_project_file(&big, &base)
                .unwrap_err()
                .contains("larger")
        );
        // System directories are no working directories.
        assert!(working_dir(Path::new("/etc")).is_err());
        assert!(working_dir(Path::new("/")).is_err());
    }
}
