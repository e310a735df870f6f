//! Loop-mounted btrfs and XFS (`reflink=1`) filesystems for the snapshot tests: made once per
//! test binary (a sparse 1 GiB image in the temp dir), unmounted and detached when the test
//! process ends, also when a test fails or the process is killed.
//!
//! The cleanup is a watchdog process of its own (own process group, so a Ctrl-C of the test
//! run does not take it along) that blocks reading a pipe only the test process holds open:
//! when that process ends, however it ends, the pipe closes and the watchdog unmounts (`mount
//! -o loop` sets autoclear: the unmount detaches the loop device) and removes the directory.
//! Needs root, `mkfs.btrfs`/`btrfs` (btrfs-progs) and `mkfs.xfs` (xfsprogs).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::run;

/// A mounted test filesystem.
#[derive(Debug)]
pub struct LoopFs {
    /// The mount point.
    pub mount: PathBuf,
    /// Where tests put their data: a btrfs subvolume `data` (so a path under it is not a
    /// subvolume root), or a plain directory `data` on XFS.
    pub data: PathBuf,
}

/// Which filesystem.
#[derive(Debug, Clone, Copy)]
pub enum LoopKind {
    /// btrfs with a subvolume `data`.
    Btrfs,
    /// XFS made with `-m reflink=1`.
    XfsReflink,
}

/// The btrfs test filesystem of this test binary.
pub fn btrfs() -> &'static LoopFs {
    static FS: OnceLock<LoopFs> = OnceLock::new();
    FS.get_or_init(|| make(LoopKind::Btrfs))
}

/// The XFS (reflink) test filesystem of this test binary.
pub fn xfs_reflink() -> &'static LoopFs {
    static FS: OnceLock<LoopFs> = OnceLock::new();
    FS.get_or_init(|| make(LoopKind::XfsReflink))
}

/// The pipes the watchdogs read: held (never written) until the process ends.
static WATCHDOGS: Mutex<Vec<std::process::ChildStdin>> = Mutex::new(Vec::new());

fn make(kind: LoopKind) -> LoopFs {
    make_with(kind, 1 << 30, "")
}

/// A test filesystem of `kind` in a sparse image of `size` bytes. The watchdog runs the shell
/// code `before_unmount` first (say, stopping a daemon that uses the filesystem).
pub(crate) fn make_with(kind: LoopKind, size: u64, before_unmount: &str) -> LoopFs {
    let name = match kind {
        LoopKind::Btrfs => "btrfs",
        LoopKind::XfsReflink => "xfs",
    };
    let base = std::env::temp_dir().join(format!(
        "{}-loopfs-{name}-{}",
        crate::unique_prefix(),
        std::process::id()
    ));
    let mount = base.join("mnt");
    let image = base.join("image");
    std::fs::create_dir_all(&mount).unwrap();
    watch(&base, &mount, before_unmount);
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(size))
        .unwrap();
    match kind {
        LoopKind::Btrfs => run(Command::new("mkfs.btrfs").arg("-q").arg(&image)),
        LoopKind::XfsReflink => run(Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image)),
    };
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mount));
    let data = mount.join("data");
    match kind {
        LoopKind::Btrfs => {
            run(Command::new("btrfs")
                .args(["subvolume", "create"])
                .arg(&data));
        }
        LoopKind::XfsReflink => std::fs::create_dir(&data).unwrap(),
    }
    LoopFs { mount, data }
}

/// Starts the watchdog that unmounts `mount` and removes `base` once this process is gone.
#[allow(
    clippy::zombie_processes,
    reason = "the watchdog outlives this process by design; init reaps it"
)]
fn watch(base: &Path, mount: &Path, before_unmount: &str) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            r#"cat >/dev/null
               {before_unmount}
               if mountpoint -q "$1"; then umount "$1" || umount -l "$1"; fi
               rm -rf "$2""#
        ))
        .arg("kdtest-loopfs-watchdog")
        .arg(mount)
        .arg(base)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    WATCHDOGS.lock().unwrap().push(child.stdin.take().unwrap());
}
