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
//!
//! The file is removed when the lock is released, so they do not pile up (one per container
//! ever backed up). Removing a lock file is only sound together with a check on taking it: a
//! run that opened the file just before the holder removed it would otherwise lock the removed
//! inode while a third run locks a new file under the same name. So the holder unlinks while it
//! still holds the `flock`, and a taker, once it holds the `flock`, compares the inode it
//! locked with the one the path names now (fstat against lstat); if they differ or the path is
//! gone, it lost the race and starts again. A docker-group user cannot unlink root's file in
//! the sticky directory; that file then stays, which is harmless (the next run reuses it).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};

use super::LockError;
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

/// A held host-wide container lock. Dropping it removes the lock file (while still holding
/// the lock), then releases the lock.
#[derive(Debug)]
#[must_use = "the lock is released when dropped"]
pub struct ContainerLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl Drop for ContainerLock {
    fn drop(&mut self) {
        // Unlinked under the lock: a run that opened this inode meanwhile finds it no longer
        // named by the path once it has the lock, and starts again (see the module docs).
        // Not ours to remove (root's file, we are a docker-group user) or already gone: the
        // next run reuses it.
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::debug!(path = %self.path.display(), %error, "container lock file stays");
        }
        // Dropping `_file` (after this) closes it, which releases the flock.
    }
}

/// Takes the host-wide lock of container `id` without waiting.
pub fn try_lock_container(endpoint: &DockerHost, id: &str) -> Result<ContainerLock, LockError> {
    try_lock_path(&path(endpoint, id), &|uid| may_use_engine(endpoint, uid))
}

/// Takes the lock at `path` without waiting; `trusted_owner` says whether a file of another
/// uid (not root, not us) may be used.
fn try_lock_path(
    path: &Path,
    trusted_owner: &dyn Fn(u32) -> bool,
) -> Result<ContainerLock, LockError> {
    // Every lost race means another run took and released the lock in between; a handful in a
    // row means something keeps replacing the file.
    for _ in 0..64 {
        let file = open_checked(path, trusted_owner)?;
        if let Some(lock) = lock_opened(file, path)? {
            return Ok(lock);
        }
        // The holder removed it after we opened it: the lock now lives in a new file.
        tracing::debug!(path = %path.display(), "container lock file was replaced; trying again");
    }
    Err(io(
        path,
        std::io::Error::other("it keeps being replaced while kopi-docka tries to lock it"),
    ))
}

/// Locks `file` (opened at `path`); `None` when the lock was won on an inode that `path` no
/// longer names (its holder removed it meanwhile): the caller opens the path again.
fn lock_opened(file: std::fs::File, path: &Path) -> Result<Option<ContainerLock>, LockError> {
    match super::flock_with_grace(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
            return Err(LockError::Busy {
                path: path.to_path_buf(),
                holder: Some(
                    "another kopi-docka run on this host: another user or state directory".into(),
                ),
            });
        }
        Err(errno) => return Err(io(path, errno.into())),
    }
    if still_named_by(&file, path).map_err(|e| io(path, e))? {
        Ok(Some(ContainerLock {
            _file: file,
            path: path.to_path_buf(),
        }))
    } else {
        Ok(None)
    }
}

fn io(path: &Path, source: std::io::Error) -> LockError {
    LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (or creates) the lock file and checks that it is a regular file of a trusted owner.
fn open_checked(
    path: &Path,
    trusted_owner: &dyn Fn(u32) -> bool,
) -> Result<std::fs::File, LockError> {
    let file = std::fs::File::from(open_or_create(path).map_err(|e| io(path, e.into()))?);
    let meta = file.metadata().map_err(|e| io(path, e))?;
    if !meta.is_file() {
        return Err(io(
            path,
            std::io::Error::other("not a regular file; remove it"),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me && !trusted_owner(meta.uid()) {
        return Err(io(
            path,
            std::io::Error::other(format!(
                "it belongs to uid {}, who cannot use the container engine: someone may be \
                 trying to interfere with backups; remove it as root after checking",
                meta.uid()
            )),
        ));
    }
    if meta.uid() == me && meta.mode() & 0o044 != 0o044 {
        // Another engine user must be able to open it to lock it (umask may have hidden it).
        if let Err(error) = rustix::fs::fchmod(&file, Mode::from_raw_mode(0o644)) {
            tracing::debug!(%error, "cannot make the container lock readable");
        }
    }
    Ok(file)
}

/// Whether `path` still names the inode `file` is open on.
fn still_named_by(file: &std::fs::File, path: &Path) -> std::io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
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
    let Ok(account) = crate::account::Account::lookup(&uid.to_string()) else {
        return false;
    };
    if account.gid == gid {
        return true;
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups.lines().any(|line| {
        let f: Vec<&str> = line.split(':').collect();
        f.len() > 3 && f[2].parse() == Ok(gid) && f[3].split(',').any(|m| m == account.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn nobody_else(_: u32) -> bool {
        false
    }

    #[test]
    fn the_lock_file_is_removed_on_release_and_excludes_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kopi-docka-container-x.lock");
        let held = try_lock_path(&path, &nobody_else).unwrap();
        assert!(path.exists());
        assert!(matches!(
            try_lock_path(&path, &nobody_else),
            Err(LockError::Busy { .. })
        ));
        drop(held);
        assert!(!path.exists(), "the released lock left its file behind");
        drop(try_lock_path(&path, &nobody_else).unwrap());
        assert!(!path.exists());
    }

    /// The race the inode check closes: B opens the file, A (the holder) removes it and
    /// releases, C creates a new file and locks it; B's flock on the old inode then succeeds,
    /// and without the check B and C would both hold "the" lock.
    #[test]
    fn a_taker_that_opened_a_removed_file_does_not_get_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kopi-docka-container-race.lock");
        let a = try_lock_path(&path, &nobody_else).unwrap();
        let b_file = open_checked(&path, &nobody_else).unwrap();
        drop(a);
        let c = try_lock_path(&path, &nobody_else).unwrap();
        let b = lock_opened(b_file, &path).unwrap();
        assert!(
            b.is_none(),
            "B locked a removed inode and would believe it holds the lock C holds"
        );
        // And the whole acquire, which opens the path again, finds C's lock.
        assert!(matches!(
            try_lock_path(&path, &nobody_else),
            Err(LockError::Busy { .. })
        ));
        drop(c);
    }

    /// Many takers at once on one name: never two inside at the same time.
    #[test]
    fn concurrent_takers_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("kopi-docka-container-many.lock"));
        let inside = Arc::new(AtomicUsize::new(0));
        let entered = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, inside, entered) = (path.clone(), inside.clone(), entered.clone());
                std::thread::spawn(move || {
                    for _ in 0..3000 {
                        if let Ok(lock) = try_lock_path(&path, &nobody_else) {
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                            entered.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            drop(lock);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(entered.load(Ordering::SeqCst) > 0);
        assert!(!path.exists());
    }
}
