//! Self-tests of the fixture builder and tree comparator in `kopi_docka_testkit::tree`: a faithful copy
//! of the rich tree compares equal, and each kind of damage is reported as exactly the
//! difference it is. Needs root on Linux.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
use tempfile::TempDir;

use support::tree::{
    Aspect, CompareOptions, Kind, SPARSE_LEN, assert_trees_equal, build_rich_tree, compare_trees,
    is_sparse,
};

/// A rich tree in `a` and a `cp -a` copy of it in `b`, both under one temporary directory.
struct Copied {
    _dir: TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Copied {
    /// `sparse` is cp's `--sparse` mode: `always` keeps the holes, `never` fills them.
    fn new(sparse: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::create_dir(&a).unwrap();
        build_rich_tree(&a);
        let b = dir.path().join("b");
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("--sparse={sparse}"))
            .arg(&a)
            .arg(&b)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a: {status}");
        Self { _dir: dir, a, b }
    }

    fn diffs(&self) -> Vec<String> {
        self.diffs_with(&CompareOptions::default())
    }

    fn diffs_with(&self, opts: &CompareOptions) -> Vec<String> {
        compare_trees(&self.a, &self.b, opts)
    }

    /// Runs `change` on the copy of `rel`, then puts back the mtime of its parent directory,
    /// which changes whenever an entry is added, removed or replaced: the test should see only
    /// the difference it made on purpose.
    fn change(&self, rel: &str, change: impl FnOnce(&Path)) {
        change(&self.b.join(rel));
        let parent = Path::new(rel).parent().unwrap();
        copy_mtime(&self.a.join(parent), &self.b.join(parent));
    }

    /// Gives the copy of `rel` the mtime of the original again, after a change that moved it.
    fn restore_mtime(&self, rel: &str) {
        copy_mtime(&self.a.join(rel), &self.b.join(rel));
    }
}

fn copy_mtime(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).unwrap();
    set_mtime(to, meta.mtime(), meta.mtime_nsec());
}

fn set_mtime(path: &Path, secs: i64, nsecs: i64) {
    let time = Timespec {
        tv_sec: secs,
        tv_nsec: nsecs,
    };
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

#[test]
fn rich_tree_holds_what_it_promises() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    build_rich_tree(root);
    let lstat = |rel: &str| fs::symlink_metadata(root.join(rel)).unwrap();

    let top = lstat(".");
    assert_eq!(
        (top.mode() & 0o7777, top.uid(), top.gid()),
        (0o750, 999, 998)
    );
    assert_eq!(
        (top.mtime(), top.mtime_nsec()),
        (1_600_000_000, 123_456_789)
    );

    assert!(is_sparse(&root.join("files/sparse")));
    assert_eq!(lstat("files/sparse").len(), SPARSE_LEN);
    assert!(!is_sparse(&root.join("files/three_mib")));
    assert_eq!(lstat("files/setuid").mode() & 0o7777, 0o4755);
    assert_eq!(lstat("perms/setgid_dir").mode() & 0o7777, 0o2775);
    assert_eq!(lstat("perms/setgid_dir/inherited_group").gid(), 5678);
    assert_eq!(lstat("perms/sticky_dir").mode() & 0o7777, 0o1777);
    assert_eq!(lstat("hardlinks/trio_a").nlink(), 3);
    assert_eq!(lstat("special/loop200").rdev(), rustix::fs::makedev(7, 200));

    // The symlink's own owner and time, not its target's.
    let (link, target) = (lstat("links/owned"), lstat("files/one_byte"));
    assert_eq!((link.uid(), link.gid()), (1234, 1234));
    assert_eq!(target.uid(), 0);
    assert_ne!(link.mtime(), target.mtime());

    let xattr = |rel: &str, name: &str| {
        let mut value = vec![0; 256];
        let len = rustix::fs::lgetxattr(root.join(rel), name, &mut value).ok()?;
        value.truncate(len);
        Some(value)
    };
    assert_eq!(xattr("xattrs/file", "user.kopi").unwrap(), b"docka");
    assert_eq!(xattr("xattrs/file", "user.empty").unwrap(), b"");
    assert!(xattr("xattrs/acl_file", "system.posix_acl_access").is_some());
    assert!(xattr("xattrs/default_acl_dir", "system.posix_acl_default").is_some());
    assert!(
        xattr(
            "xattrs/default_acl_dir/inherited",
            "system.posix_acl_access"
        )
        .is_some()
    );
    assert!(
        xattr(
            "xattrs/default_acl_dir/before_default",
            "system.posix_acl_access"
        )
        .is_none()
    );

    let deep: PathBuf = (1..=20).map(|l| format!("level{l:02}")).collect();
    assert!(root.join("deep").join(deep).join("leaf").is_file());
}

#[test]
fn tree_equals_itself() {
    let dir = tempfile::tempdir().unwrap();
    build_rich_tree(dir.path());
    assert_trees_equal(dir.path(), dir.path(), &CompareOptions::default());
}

#[test]
fn two_builds_are_identical() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_rich_tree(a.path());
    build_rich_tree(b.path());
    assert_trees_equal(a.path(), b.path(), &CompareOptions::default());
}

#[test]
fn cp_archive_copy_is_equal() {
    let copied = Copied::new("always");
    assert_trees_equal(&copied.a, &copied.b, &CompareOptions::default());
}

#[test]
fn changed_byte_is_reported() {
    let copied = Copied::new("always");
    let offset = 2 * 1024 * 1024 + 5;
    copied.change("files/three_mib", |path| {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[!byte[0]], offset).unwrap();
    });
    copied.restore_mtime("files/three_mib");
    assert_eq!(
        copied.diffs(),
        [format!(
            "\"files/three_mib\": content: first difference at byte {offset}"
        )]
    );
}

#[test]
fn lost_setuid_bit_is_reported() {
    let copied = Copied::new("always");
    copied.change("files/setuid", |path| {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    });
    assert_eq!(copied.diffs(), ["\"files/setuid\": mode: a=4755 b=0755"]);
}

#[test]
fn changed_owner_is_reported() {
    let copied = Copied::new("always");
    copied.change("files/odd_owner", |path| {
        lchown(path, Some(0), Some(0)).unwrap();
    });
    assert_eq!(
        copied.diffs(),
        [
            "\"files/odd_owner\": uid: a=1234 b=0",
            "\"files/odd_owner\": gid: a=5678 b=0",
        ]
    );
}

#[test]
fn directory_mtime_off_by_one_nanosecond_is_reported() {
    let copied = Copied::new("always");
    let meta = fs::metadata(copied.a.join("perms/pgdata")).unwrap();
    let (secs, nsecs) = (meta.mtime(), meta.mtime_nsec());
    set_mtime(&copied.b.join("perms/pgdata"), secs, nsecs + 1);
    assert_eq!(
        copied.diffs(),
        [format!(
            "\"perms/pgdata\": mtime: a={secs}.{nsecs:09} b={secs}.{:09}",
            nsecs + 1
        )]
    );
}

#[test]
fn retargeted_symlink_is_reported() {
    let copied = Copied::new("always");
    copied.change("links/relative", |path| {
        fs::remove_file(path).unwrap();
        symlink("../files/one_byte", path).unwrap();
    });
    copied.restore_mtime("links/relative");
    assert_eq!(
        copied.diffs(),
        ["\"links/relative\": symlink target: a=\"../files/four_kib\" b=\"../files/one_byte\""]
    );
}

#[test]
fn broken_hard_link_is_reported() {
    let copied = Copied::new("always");
    copied.change("hardlinks/pair_b", |path| {
        // An identical copy in every respect but the inode.
        let tmp = path.with_file_name("tmp");
        let status = Command::new("cp")
            .arg("-a")
            .arg(path)
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(status.success());
        fs::rename(&tmp, path).unwrap();
    });
    assert_eq!(
        copied.diffs(),
        [
            "\"hardlinks/pair_a\": hard links: a={\"hardlinks/pair_a\", \"hardlinks/pair_b\"} \
             b={\"hardlinks/pair_a\"} {\"hardlinks/pair_b\"}"
        ]
    );
}

#[test]
fn added_hard_link_is_reported() {
    let copied = Copied::new("always");
    copied.change("files/four_kib", |path| {
        let other = path.with_file_name("one_byte");
        fs::remove_file(&other).unwrap();
        fs::hard_link(path, &other).unwrap();
    });
    let diffs = copied.diffs();
    assert!(
        diffs.contains(
            &"\"files/four_kib\": hard links: a={\"files/four_kib\"} {\"files/one_byte\"} \
              b={\"files/four_kib\", \"files/one_byte\"}"
                .to_owned()
        ),
        "{diffs:#?}"
    );
}

#[test]
fn removed_xattr_and_acl_are_reported() {
    let copied = Copied::new("always");
    rustix::fs::lremovexattr(copied.b.join("xattrs/file"), "user.kopi").unwrap();
    rustix::fs::lremovexattr(copied.b.join("xattrs/acl_file"), "system.posix_acl_access").unwrap();
    assert_eq!(
        copied.diffs(),
        [
            "\"xattrs/acl_file\": xattrs: system.posix_acl_access: \
             a=u::rw-,u:1234:r--,g::r--,g:5678:rw-,m::rw-,o::--- b=absent",
            "\"xattrs/file\": xattrs: user.kopi: a=\"docka\" b=absent",
        ]
    );
}

#[test]
fn extra_file_is_reported() {
    let copied = Copied::new("always");
    copied.change("files/extra", |path| fs::write(path, b"extra").unwrap());
    assert_eq!(
        copied.diffs(),
        ["\"files/extra\": presence: only in b (file)"]
    );
}

#[test]
fn missing_empty_dir_is_reported() {
    let copied = Copied::new("always");
    copied.change("nested_empty/a/b/c", |path| fs::remove_dir(path).unwrap());
    assert_eq!(
        copied.diffs(),
        ["\"nested_empty/a/b/c\": presence: only in a (dir)"]
    );
}

#[test]
fn missing_subtree_is_reported_once() {
    let copied = Copied::new("always");
    copied.change("deep/level01", |path| fs::remove_dir_all(path).unwrap());
    assert_eq!(
        copied.diffs(),
        ["\"deep/level01\": presence: only in a (dir)"]
    );
}

#[test]
fn changed_device_number_is_reported() {
    let copied = Copied::new("always");
    copied.change("special/loop200", |path| {
        let meta = fs::symlink_metadata(path).unwrap();
        fs::remove_file(path).unwrap();
        let dev = rustix::fs::makedev(7, 201);
        rustix::fs::mknodat(CWD, path, FileType::BlockDevice, Mode::empty(), dev).unwrap();
        lchown(path, Some(meta.uid()), Some(meta.gid())).unwrap();
        fs::set_permissions(path, meta.permissions()).unwrap();
    });
    copied.restore_mtime("special/loop200");
    assert_eq!(
        copied.diffs(),
        ["\"special/loop200\": rdev: a=7:200 b=7:201"]
    );
}

#[test]
fn changed_file_type_is_reported_alone() {
    let copied = Copied::new("always");
    copied.change("special/fifo", |path| {
        fs::remove_file(path).unwrap();
        fs::write(path, b"").unwrap();
    });
    assert_eq!(
        copied.diffs(),
        ["\"special/fifo\": file type: a=fifo b=file"]
    );
}

#[test]
fn directory_replaced_by_file_is_reported_alone() {
    let copied = Copied::new("always");
    copied.change("deep/level01", |path| {
        fs::remove_dir_all(path).unwrap();
        fs::write(path, b"").unwrap();
    });
    assert_eq!(
        copied.diffs(),
        ["\"deep/level01\": file type: a=dir b=file"]
    );
}

#[test]
fn filled_holes_are_reported_unless_ignored() {
    let copied = Copied::new("never");
    assert!(!is_sparse(&copied.b.join("files/sparse")));
    let diffs = copied.diffs();
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].starts_with("\"files/sparse\": sparseness: a is sparse ("),
        "{diffs:#?}"
    );
    let opts = CompareOptions {
        ignore_sparseness: true,
        ..CompareOptions::default()
    };
    assert_eq!(copied.diffs_with(&opts), Vec::<String>::new());
}

#[test]
fn root_metadata_is_compared_unless_ignored() {
    let copied = Copied::new("always");
    fs::set_permissions(&copied.b, fs::Permissions::from_mode(0o700)).unwrap();
    lchown(&copied.b, Some(0), None).unwrap();
    assert_eq!(
        copied.diffs(),
        ["\".\": mode: a=0750 b=0700", "\".\": uid: a=999 b=0"]
    );
    let opts = CompareOptions {
        ignore_root_metadata: true,
        ..CompareOptions::default()
    };
    assert_eq!(copied.diffs_with(&opts), Vec::<String>::new());
}

#[test]
fn ignored_xattr_prefix_hides_only_those_xattrs() {
    let copied = Copied::new("always");
    rustix::fs::lremovexattr(copied.b.join("xattrs/file"), "user.kopi").unwrap();
    rustix::fs::lremovexattr(copied.b.join("xattrs/acl_file"), "system.posix_acl_access").unwrap();
    let opts = CompareOptions {
        ignore_xattr_prefixes: vec!["user.".to_owned()],
        ..CompareOptions::default()
    };
    let diffs = copied.diffs_with(&opts);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(diffs[0].starts_with("\"xattrs/acl_file\": xattrs: system.posix_acl_access:"));
}

#[test]
fn aspect_ignored_for_one_kind_is_still_compared_for_others() {
    let copied = Copied::new("always");
    for rel in ["links/owned", "files/one_byte"] {
        let meta = fs::symlink_metadata(copied.a.join(rel)).unwrap();
        set_mtime(&copied.b.join(rel), meta.mtime() + 1, meta.mtime_nsec());
    }
    let opts = CompareOptions::default().ignoring_for(Kind::Symlink, Aspect::Mtime);
    let diffs = copied.diffs_with(&opts);
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert!(
        diffs[0].starts_with("\"files/one_byte\": mtime:"),
        "{diffs:#?}"
    );

    let opts = CompareOptions::default().ignoring(Aspect::Mtime);
    assert_eq!(copied.diffs_with(&opts), Vec::<String>::new());
}
