//! The host-wide lock on one container: runs with different state directories (root's and a
//! docker-group user's, two configurations) never stop the same container at once.
//!
//! One lock file per engine endpoint and container, `kopi-docka-<hash>.lock`, in `/run/lock`
//! (a tmpfs, emptied at boot), else the temporary directory. Both are world-writable and
//! sticky, so the file is opened without following symlinks, must be a regular file, and must
//! belong to someone who could use the engine anyway: root, the user running kopi-docka, or a
//! member of the group that owns the engine's socket. A file anyone else made (a local user
//! who wants to block backups, or to unlink and replace it to break the exclusion) is refused
//! with an error that names it: kopi-docka fails closed rather than stop a container without
//! the lock. A new file is made readable by all (0644, no secret in it) so that another
//! engine user can lock it too; `flock` needs no write access.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags, flock};

use super::{Lock, LockError};
use crate::config::DockerHost;

/// Where the host-wide locks live.
pub fn dir() -> PathBuf {
    let run_lock = Path::new("/run/lock");
    if run_lock.is_dir() {
        run_lock.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The lock file of container `id` on `endpoint`.
pub fn path(endpoint: &DockerHost, id: &str) -> PathBuf {
    let key = super::key_for(&format!("{endpoint}\0{id}"));
    let hash = key.trim_start_matches("repository-");
    dir().join(format!("kopi-docka-container-{hash}.lock"))
}

/// Opens the lock file, creating it when missing. An existing file is opened without
/// `O_CREAT`: with `fs.protected_regular` (set by systemd on most hosts) `O_CREAT` on another
/// user's file in a sticky directory fails even for root, and root's run would then fail after
/// a docker-group user's run made the file.
fn open_or_create(path: &Path) -> rustix::io::Result<rustix::fd::OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    loop {
        match rustix::fs::open(path, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => {}
            opened => return opened,
        }
        match rustix::fs::open(
            path,
            flags | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(0o644),
        ) {
            // Made by another run in between: open that one.
            Err(rustix::io::Errno::EXIST) => {}
            created => return created,
        }
    }
}

/// Takes the host-wide lock of container `id` without waiting.
pub fn try_lock_container(endpoint: &DockerHost, id: &str) -> Result<Lock, LockError> {
    let path = path(endpoint, id);
    let io = |source: std::io::Error| LockError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::from(open_or_create(&path).map_err(|e| io(e.into()))?);
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(io(std::io::Error::other("not a regular file; remove it")));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me && !may_use_engine(endpoint, meta.uid()) {
        return Err(io(std::io::Error::other(format!(
            "it belongs to uid {}, who cannot use the container engine: someone may be trying to \
             interfere with backups; remove it as root after checking",
            meta.uid()
        ))));
    }
    if meta.uid() == me && meta.mode() & 0o044 != 0o044 {
        // Another engine user must be able to open it to lock it (umask may have hidden it).
        if let Err(error) = rustix::fs::fchmod(&file, Mode::from_raw_mode(0o644)) {
            tracing::debug!(%error, "cannot make the container lock readable");
        }
    }
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Lock { _file: file }),
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => Err(LockError::Busy {
            path,
            holder: Some(
                "another kopi-docka run on this host: another user or state directory".into(),
            ),
        }),
        Err(errno) => Err(io(errno.into())),
    }
}

/// Whether `uid` is in the group that owns the engine's unix socket (the `docker` group).
fn may_use_engine(endpoint: &DockerHost, uid: u32) -> bool {
    let DockerHost::Unix(socket) = endpoint else {
        return false;
    };
    let Ok(socket) = std::fs::metadata(socket) else {
        return false;
    };
    let gid = socket.gid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let Some((name, primary)) = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid))
            .then(|| (f[0].to_owned(), f[3].parse::<u32>().ok()))
    }) else {
        return false;
    };
    if primary == Some(gid) {
        return true;
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups.lines().any(|line| {
        let f: Vec<&str> = line.split(':').collect();
        f.len() > 3 && f[2].parse() == Ok(gid) && f[3].split(',').any(|m| m == name)
    })
}
