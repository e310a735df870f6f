//! Which filesystem a path lives on and how it can be frozen, from `statfs`, `lstat` and
//! `/proc/self/mountinfo`. Nothing here writes.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{Filesystem, FsSupport, Method, SNAPSHOT_DIR};

const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;
const XFS_SUPER_MAGIC: u64 = 0x5846_5342;
const EXT4_SUPER_MAGIC: u64 = 0xEF53;
const ZFS_SUPER_MAGIC: u64 = 0x2FC1_2FC1;
const OVERLAY_SUPER_MAGIC: u64 = 0x794C_7630;
const NFS_SUPER_MAGIC: u64 = 0x6969;
const TMPFS_MAGIC: u64 = 0x0102_1994;
/// The inode number of every btrfs subvolume's root directory.
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

/// What the filesystem under `path` allows for the cold pass.
pub fn probe(path: &Path) -> FsSupport {
    let magic = match rustix::fs::statfs(path) {
        // `f_type` is signed on some targets; the magic numbers are 32-bit.
        #[allow(
            clippy::cast_sign_loss,
            clippy::cast_possible_truncation,
            clippy::unnecessary_cast,
            reason = "f_type holds a 32-bit magic number in a word of either sign"
        )]
        Ok(stat) => u64::from(stat.f_type as u32),
        Err(error) => {
            return FsSupport {
                filesystem: Filesystem::Other,
                method: None,
                reason: Some(format!("cannot statfs {}: {error}", path.display())),
            };
        }
    };
    let filesystem = match magic {
        BTRFS_SUPER_MAGIC => Filesystem::Btrfs,
        XFS_SUPER_MAGIC => Filesystem::Xfs,
        EXT4_SUPER_MAGIC => Filesystem::Ext4,
        ZFS_SUPER_MAGIC => Filesystem::Zfs,
        OVERLAY_SUPER_MAGIC => Filesystem::Overlay,
        NFS_SUPER_MAGIC => Filesystem::Nfs,
        TMPFS_MAGIC => Filesystem::Tmpfs,
        _ => Filesystem::Other,
    };
    let (method, reason) = match filesystem {
        Filesystem::Btrfs => match subvolume_root(path) {
            Ok(_) if btrfs_progs() => (Some(Method::BtrfsSnapshot), None),
            // Without the tool, cloning works all the same.
            Ok(_) | Err(_) => (Some(Method::Reflink), None),
        },
        Filesystem::Xfs => {
            if xfs_reflink(path) {
                (Some(Method::Reflink), None)
            } else {
                (
                    None,
                    Some("XFS without reflink (made without mkfs.xfs -m reflink=1)".to_owned()),
                )
            }
        }
        Filesystem::Zfs => (None, Some("ZFS snapshots are not supported yet".to_owned())),
        other => (
            None,
            Some(format!("{other} cannot snapshot or clone files")),
        ),
    };
    FsSupport {
        filesystem,
        method,
        reason,
    }
}

/// True when `btrfs` (btrfs-progs) is on the `PATH`.
fn btrfs_progs() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join("btrfs")).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        })
    })
}

/// True when the XFS filesystem under `path` was made with `reflink=1`
/// (`XFS_IOC_FSGEOMETRY_V1`, flag `XFS_FSOP_GEOM_FLAGS_REFLINK`).
fn xfs_reflink(path: &Path) -> bool {
    const GEOMETRY_V1: rustix::ioctl::Opcode = rustix::ioctl::opcode::read::<[u8; 112]>(b'X', 100);
    const FLAGS_OFFSET: usize = 92;
    const REFLINK: u32 = 0x0010_0000;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: XFS_IOC_FSGEOMETRY_V1 writes a `struct xfs_fsop_geom_v1`, 112 bytes, which is
    // exactly the output buffer's size; any byte pattern is a valid `[u8; 112]`.
    #[allow(unsafe_code, reason = "an ioctl rustix has no safe wrapper for")]
    let geometry = unsafe {
        rustix::ioctl::ioctl(
            &file,
            rustix::ioctl::Getter::<GEOMETRY_V1, [u8; 112]>::new(),
        )
    };
    geometry.is_ok_and(|g| {
        let mut flags = [0u8; 4];
        flags.copy_from_slice(&g[FLAGS_OFFSET..FLAGS_OFFSET + 4]);
        u32::from_ne_bytes(flags) & REFLINK != 0
    })
}

/// True when `path` is the root of a btrfs subvolume.
pub fn is_subvolume(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_dir() && m.ino() == BTRFS_FIRST_FREE_OBJECTID)
}

/// The root of the btrfs subvolume that holds `path`: the highest ancestor on the same device
/// (every subvolume has a device number of its own).
pub fn subvolume_root(path: &Path) -> std::io::Result<PathBuf> {
    let dev = std::fs::symlink_metadata(path)?.dev();
    let mut root = path.to_path_buf();
    while let Some(parent) = root.parent() {
        if std::fs::symlink_metadata(parent)?.dev() != dev {
            break;
        }
        root = parent.to_path_buf();
    }
    if is_subvolume(&root) {
        Ok(root)
    } else {
        Err(std::io::Error::other(format!(
            "{} is no subvolume root",
            root.display()
        )))
    }
}

/// The mount point of the filesystem that holds `path` (canonical): the longest mount point
/// in `/proc/self/mountinfo` that contains it.
pub fn mount_root(path: &Path) -> Option<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|mount| path.starts_with(mount))
        .max_by_key(|mount| mount.components().count())
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Ok(text) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(byte) = u8::from_str_radix(text, 8)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first directory under `path` that is on another device (a nested btrfs subvolume or a
/// mount point): a btrfs snapshot holds it as an empty directory. Our own snapshot
/// directory is not looked into. Blocking: walks every directory.
pub fn nested_mount(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let root = std::fs::symlink_metadata(path)?;
    if !root.is_dir() {
        return Ok(None);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() || entry.file_name() == SNAPSHOT_DIR {
                continue;
            }
            let child = entry.path();
            if std::fs::symlink_metadata(&child)?.dev() != root.dev() {
                return Ok(Some(child));
            }
            stack.push(child);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn the_root_filesystem_has_a_mount_and_a_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert!(mount_root(&canonical).is_some());
        let support = probe(dir.path());
        assert_eq!(support.method.is_none(), support.reason.is_some());
        assert_eq!(nested_mount(dir.path()).unwrap(), None);
    }
}
