//! Paths a restore writes to, resolved and opened so that a symlink another local user plants
//! cannot redirect the writes (to `/etc`, `/usr`, anywhere).
//!
//! Rules:
//! - [`resolve_trusted`] follows a symlink on the way to a target only when root (or we) own
//!   it: an administrator's `/srv -> /data/srv` works, a user's `~/app/data -> /etc` does not;
//! - [`open_dir`] then walks the resolved path one component at a time with `O_NOFOLLOW`, so a
//!   symlink put there after the plan makes the restore fail instead of following it;
//! - [`PrivateDir`] is where a restore stages its copy: a directory with a random name created
//!   exclusively (like `mkdtemp`), mode 0700, in the target's directory (same filesystem), and
//!   written only through its file descriptor (`/proc/self/fd/N`), so renaming it away and
//!   planting a symlink in its place changes nothing.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_LINKS: usize = 40;

/// A path a restore must not write through.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    /// A symlink on the way belongs to another user.
    #[error(
        "{} is a symlink owned by uid {owner}: a restore running as root does not follow \
         symlinks other users can change (it could be redirected to /etc). Remove the link or \
         restore into a directory with `--target-dir DIR`",
        link.display()
    )]
    UntrustedSymlink {
        /// The link.
        link: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Too many symlinks, or a path that is not absolute.
    #[error("{}: {reason}", path.display())]
    Unresolvable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

/// `path` (absolute) with every symlink on the way resolved, following only symlinks owned by
/// root or by us. Components that do not exist yet are kept as they are (they will be created
/// as directories, never followed). The last component is resolved too.
pub fn resolve_trusted(path: &Path) -> Result<PathBuf, UnsafePath> {
    if !path.is_absolute() {
        return Err(UnsafePath::Unresolvable {
            path: path.to_path_buf(),
            reason: "not an absolute path",
        });
    }
    let mut todo: VecDeque<OsString> = normal_parts(path).collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                resolved = candidate;
                resolved.extend(todo.drain(..).filter(|p| p != ".."));
                return Ok(resolved);
            }
            Err(source) => {
                return Err(UnsafePath::Io {
                    path: candidate,
                    source,
                });
            }
        };
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        if !trusted_owner(owner) {
            return Err(UnsafePath::UntrustedSymlink {
                link: candidate,
                owner,
            });
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(UnsafePath::Unresolvable {
                path: path.to_path_buf(),
                reason: "too many levels of symbolic links",
            });
        }
        let target = std::fs::read_link(&candidate).map_err(|source| UnsafePath::Io {
            path: candidate.clone(),
            source,
        })?;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        for p in normal_parts(&target).collect::<Vec<_>>().into_iter().rev() {
            todo.push_front(p);
        }
    }
    Ok(resolved)
}

/// `path` with its parent resolved by [`resolve_trusted`]; the last component is kept as it
/// is (a symlink there is renamed aside by the restore, never followed).
pub fn resolve_parent(path: &Path) -> Result<PathBuf, UnsafePath> {
    let name = file_name(path).map_err(|source| UnsafePath::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(resolve_trusted(path.parent().unwrap_or(Path::new("/")))?.join(name))
}

/// The components of `path` that name something (`..` kept as a name, `.` and `/` dropped).
fn normal_parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(p) => Some(p.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens the directory `path` (absolute, without `..`) from `/`, one component at a time,
/// never following a symlink; missing directories are created with `create` when given.
pub fn open_dir(path: &Path, create: Option<u32>) -> std::io::Result<OwnedFd> {
    let mut fd = rustix::fs::open("/", dir_flags(), Mode::empty())?;
    for c in path.components() {
        let name = match c {
            Component::Normal(name) => name,
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir | Component::Prefix(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} has a `..` component", path.display()),
                ));
            }
        };
        fd = open_child(&fd, name, create)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(fd)
}

/// Opens (creating it with `create` when given and missing) the directory `name` in `parent`
/// without following a symlink.
pub fn open_child(parent: &OwnedFd, name: &OsStr, create: Option<u32>) -> std::io::Result<OwnedFd> {
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) if create.is_some() => {
            let mode = Mode::from_raw_mode(create.unwrap_or(0o755));
            match rustix::fs::mkdirat(parent, name, mode) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(rustix::fs::openat(
                parent,
                name,
                dir_flags(),
                Mode::empty(),
            )?)
        }
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is a symlink or not a directory; a restore does not follow it",
                Path::new(name).display()
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The path through which the process reaches the directory `fd` is open on, whatever it is
/// called now: writes through it cannot be redirected by renames or symlinks.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Whether `name` exists in `dir` (a symlink counts, and is not followed).
pub fn exists_in(dir: &OwnedFd, name: &str) -> std::io::Result<bool> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Renames `from` in `from_dir` to `to` in `to_dir` (neither followed if a symlink).
pub fn rename(
    from_dir: &OwnedFd,
    from: &OsStr,
    to_dir: &OwnedFd,
    to: &OsStr,
) -> std::io::Result<()> {
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

/// Removes `name` in `dir`, a file or a whole tree, without following symlinks.
pub fn remove_in(dir: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    let path = fd_path(dir).join(name);
    // std's remove_dir_all opens each level with O_NOFOLLOW (the CVE-2022-21658 fix).
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
        Ok(_) => std::fs::remove_file(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// fsync of a directory (or file) open as `fd`.
pub fn sync(fd: &OwnedFd) -> std::io::Result<()> {
    Ok(rustix::fs::fsync(fd)?)
}

/// Everything written on the filesystem `fd` is on: a restored tree is thousands of files,
/// and one `syncfs` makes them all durable before the swap points the live path at them.
pub fn sync_filesystem(fd: &OwnedFd) -> std::io::Result<()> {
    Ok(rustix::fs::syncfs(fd)?)
}

/// A private staging directory of a restore: see the module docs.
#[derive(Debug)]
pub struct PrivateDir {
    /// Its name in the parent.
    pub name: OsString,
    /// The directory.
    pub fd: OwnedFd,
}

impl PrivateDir {
    /// Creates `<prefix><random>` in `parent`, mode 0700, failing rather than reusing anything
    /// that exists; checks after creation that what it opened is the directory it made.
    pub fn create(parent: &OwnedFd, prefix: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(12)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(fd_path(parent))?;
        let name = dir
            .path()
            .file_name()
            .map(OsStr::to_os_string)
            .unwrap_or_default();
        // Keep it: the caller owns its lifetime (it may become a rollback copy).
        let _kept = dir.keep();
        Self::open(parent, &name)
    }

    /// Opens an existing private directory `name` in `parent`; refuses it unless it is a real
    /// directory owned by us with mode 0700 (what [`PrivateDir::create`] makes).
    pub fn open(parent: &OwnedFd, name: &OsStr) -> std::io::Result<Self> {
        let fd = rustix::fs::openat(parent, name, dir_flags(), Mode::empty())?;
        let stat = rustix::fs::fstat(&fd)?;
        let me = rustix::process::geteuid().as_raw();
        if stat.st_uid != me || stat.st_mode & 0o777 != 0o700 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a private directory of this user (owner {}, mode {:o})",
                    Path::new(name).display(),
                    stat.st_uid,
                    stat.st_mode & 0o7777
                ),
            ));
        }
        Ok(Self {
            name: name.to_os_string(),
            fd,
        })
    }

    /// The path through its file descriptor (see [`fd_path`]).
    pub fn path(&self) -> PathBuf {
        fd_path(&self.fd)
    }
}

/// The file name of `path` as an `OsStr`, refusing paths without one (`/`, `..`).
pub fn file_name(path: &Path) -> std::io::Result<&OsStr> {
    path.file_name()
        .filter(|n| !n.as_bytes().is_empty())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })
}

/// Opens the parent directory of `path` (which must be resolved already) without following
/// symlinks, creating missing directories with mode 0755.
pub fn open_parent(path: &Path) -> std::io::Result<OwnedFd> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    open_dir(parent, Some(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_own_links_and_keeps_missing_parts() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let got = resolve_trusted(&dir.path().join("link/new/deeper")).unwrap();
        assert_eq!(got, real.join("new/deeper"));
        std::os::unix::fs::symlink("real", dir.path().join("rel")).unwrap();
        assert_eq!(resolve_trusted(&dir.path().join("rel")).unwrap(), real);
    }

    #[test]
    fn open_dir_refuses_a_symlink_on_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let error = open_dir(&dir.path().join("link/x"), Some(0o755)).unwrap_err();
        assert!(error.to_string().contains("symlink"), "{error}");
        assert!(!real.join("x").exists());
        open_dir(&dir.path().join("real/x"), Some(0o755)).unwrap();
        assert!(real.join("x").is_dir());
    }

    #[test]
    fn private_dirs_are_random_0700_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let parent = open_dir(dir.path(), None).unwrap();
        let a = PrivateDir::create(&parent, ".x.kopi-docka-").unwrap();
        let b = PrivateDir::create(&parent, ".x.kopi-docka-").unwrap();
        assert_ne!(a.name, b.name);
        let meta = std::fs::metadata(dir.path().join(&a.name)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
        std::fs::write(a.path().join("f"), "x").unwrap();
        assert!(dir.path().join(&a.name).join("f").exists());
        std::fs::create_dir(dir.path().join("open")).unwrap();
        std::fs::set_permissions(
            dir.path().join("open"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert!(PrivateDir::open(&parent, OsStr::new("open")).is_err());
    }
}
