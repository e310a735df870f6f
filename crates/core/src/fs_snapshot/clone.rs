//! Reflink copies: a tree cloned file by file with `FICLONE` (no data copied), with owners,
//! modes, times and extended attributes, so a backup of the copy reads like one of the
//! original. Change times and inode numbers are new (the kernel sets them).

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

/// Clones `src` (a directory, file, symlink or special file) to `dst`, which must not exist.
/// The directory with (device, inode) `skip` is left out (our own snapshot directory, when
/// the tree holds it). Hard links stay hard links.
pub fn clone_tree(src: &Path, dst: &Path, skip: Option<(u64, u64)>) -> std::io::Result<()> {
    clone_inner(src, dst, skip, &mut HashMap::new())
}

fn clone_inner(
    src: &Path,
    dst: &Path,
    skip: Option<(u64, u64)>,
    linked: &mut HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(src)?;
    let kind = meta.file_type();
    if !kind.is_dir() && meta.nlink() > 1 {
        if let Some(first) = linked.get(&(meta.dev(), meta.ino())) {
            return std::fs::hard_link(first, dst);
        }
        linked.insert((meta.dev(), meta.ino()), dst.to_path_buf());
    }
    if kind.is_dir() {
        std::fs::create_dir(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let child = entry.path();
            if entry.file_type()?.is_dir()
                && let Some(skip) = skip
            {
                let m = std::fs::symlink_metadata(&child)?;
                if (m.dev(), m.ino()) == skip {
                    continue;
                }
            }
            clone_inner(&child, &dst.join(entry.file_name()), skip, linked)?;
        }
    } else if kind.is_file() {
        let from = std::fs::File::open(src)?;
        let to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dst)?;
        rustix::fs::ioctl_ficlone(&to, &from)?;
    } else if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else {
        rustix::fs::mknodat(
            CWD,
            dst,
            FileType::from_raw_mode(meta.mode()),
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )?;
    }
    copy_metadata(src, dst, &meta)
}

/// Owner, then mode (a chown clears set-id bits), extended attributes, then times (last:
/// the others change them).
fn copy_metadata(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    let symlink = meta.file_type().is_symlink();
    if !symlink {
        rustix::fs::chmodat(
            CWD,
            dst,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            AtFlags::empty(),
        )?;
    }
    copy_xattrs(src, dst)?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn copy_xattrs(src: &Path, dst: &Path) -> std::io::Result<()> {
    let size = match rustix::fs::llistxattr_query(src) {
        Ok(size) => size,
        // The filesystem has none.
        Err(rustix::io::Errno::OPNOTSUPP) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(());
    }
    let mut names = vec![0u8; size];
    let len = rustix::fs::llistxattr(src, &mut names[..])?;
    for name in names[..len.min(size)]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let size = rustix::fs::lgetxattr_query(src, name)?;
        let mut value = vec![0u8; size];
        let len = rustix::fs::lgetxattr(src, name, &mut value[..])?;
        rustix::fs::lsetxattr(dst, name, &value[..len.min(size)], XattrFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a filesystem without reflinks (the test's temp dir is usually one), cloning a file
    /// fails, and directories, symlinks and metadata still come through for empty trees.
    #[test]
    fn empty_trees_and_symlinks_keep_their_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::os::unix::fs::symlink("a/b", src.join("link")).unwrap();
        std::fs::set_permissions(
            src.join("a"),
            std::os::unix::fs::PermissionsExt::from_mode(0o750),
        )
        .unwrap();
        let skip = std::fs::symlink_metadata(src.join("a/b")).unwrap();
        clone_tree(
            &src,
            &dir.path().join("dst"),
            Some((skip.dev(), skip.ino())),
        )
        .unwrap();
        let dst = dir.path().join("dst");
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("a/b")
        );
        assert!(
            !dst.join("a/b").exists(),
            "the skipped directory is left out"
        );
        let mode = std::fs::metadata(dst.join("a")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o750);
        let (s, d) = (
            std::fs::metadata(src.join("a")).unwrap(),
            std::fs::metadata(dst.join("a")).unwrap(),
        );
        assert_eq!((s.mtime(), s.mtime_nsec()), (d.mtime(), d.mtime_nsec()));
    }
}
