//! Filesystem-fidelity fixtures for backup/restore tests: [`build_rich_tree`] creates a tree
//! holding every file kind and metadata aspect a restore has to reproduce, and
//! [`compare_trees`] lists every way in which two trees differ.
//!
//! Linux only. Building the tree needs root: device nodes, foreign owners and setuid bits
//! cannot be created otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]
#![allow(
    dead_code,
    reason = "every test binary compiles this module and each uses a different part of it"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, Metadata, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt, lchown, symlink};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Length of `files/sparse`; only a few bytes at its start, middle and last byte hold data.
pub const SPARSE_LEN: u64 = 64 * MIB;

/// Owner ids without a passwd or group entry: a restore has to keep numbers, not names.
const ODD_UID: u32 = 1234;
const ODD_GID: u32 = 5678;
/// The id Postgres-like images run as, the usual owner of a database volume.
const PG_ID: u32 = 999;
/// The `disk` group, the usual group of block devices.
const DISK_GID: u32 = 6;

/// Creates, under `root` (an existing, empty directory), a tree with every file kind and every
/// piece of metadata a faithful restore has to reproduce, and gives `root` itself odd metadata
/// (mode 0750, owner 999:998). Needs root on a filesystem with xattrs and POSIX ACLs.
pub fn build_rich_tree(root: &Path) {
    let mut entries = fs::read_dir(root).unwrap_or_else(|e| fail("read_dir", root, e));
    assert!(
        entries.next().is_none(),
        "{} must be an empty directory",
        root.display()
    );
    regular_files(&root.join("files"));
    permissions(&root.join("perms"));
    symlinks(&root.join("links"));
    hard_links(&root.join("hardlinks"));
    special_files(&root.join("special"));
    empty_dirs(root);
    xattrs(&root.join("xattrs"));
    odd_names(&root.join("names"));
    deep_path(&root.join("deep"));
    chown(root, PG_ID, 998);
    chmod(root, 0o750);
    // Every change inside a directory bumps its mtime, so all times are set once the tree is
    // complete.
    set_fixed_mtimes(root);
}

fn regular_files(dir: &Path) {
    mkdir(dir, 0o755);
    write_file(&dir.join("empty"), 0o644, 0, 1);
    write_file(&dir.join("one_byte"), 0o644, 1, 2);
    write_file(&dir.join("four_kib"), 0o644, 4 * KIB, 3);
    // Spans several content-defined chunks (rustic's average is 1 MiB) and ends mid-block.
    write_file(&dir.join("three_mib"), 0o644, 3 * MIB + 4321, 4);

    let sparse = dir.join("sparse");
    let file = File::create(&sparse).unwrap_or_else(|e| fail("create", &sparse, e));
    file.set_len(SPARSE_LEN)
        .unwrap_or_else(|e| fail("set_len", &sparse, e));
    for (offset, data) in [
        (0, &b"head"[..]),
        (SPARSE_LEN / 2, b"middle"),
        (SPARSE_LEN - 1, b"!"),
    ] {
        file.write_all_at(data, offset)
            .unwrap_or_else(|e| fail("write", &sparse, e));
    }
    chmod(&sparse, 0o644);

    write_file(&dir.join("odd_owner"), 0o644, 100, 5);
    chown(&dir.join("odd_owner"), ODD_UID, ODD_GID);
    chmod(&dir.join("odd_owner"), 0o640);
    write_file(&dir.join("setuid"), 0o755, 200, 6);
    chmod(&dir.join("setuid"), 0o4755);
    write_file(&dir.join("setgid"), 0o755, 300, 7);
    // chown clears setuid/setgid, so the mode goes on after the owner.
    chown(&dir.join("setgid"), 0, ODD_GID);
    chmod(&dir.join("setgid"), 0o2755);
}

fn permissions(dir: &Path) {
    mkdir(dir, 0o755);

    let setgid = dir.join("setgid_dir");
    mkdir(&setgid, 0o775);
    chown(&setgid, 0, ODD_GID);
    chmod(&setgid, 0o2775);
    // Created after the parent became setgid, so both inherit its group and the subdirectory
    // also its setgid bit: a restore has to end up with the same, in whatever order it creates
    // entries and sets their metadata.
    write_file(&setgid.join("inherited_group"), 0o644, 10, 8);
    mkdir(&setgid.join("inherited_setgid"), 0o2755);

    let sticky = dir.join("sticky_dir");
    mkdir(&sticky, 0o1777);
    write_file(&sticky.join("someone_elses"), 0o644, 20, 9);
    chown(&sticky.join("someone_elses"), ODD_UID, ODD_GID);

    let pgdata = dir.join("pgdata");
    mkdir(&pgdata, 0o700);
    write_file(&pgdata.join("PG_VERSION"), 0o600, 3, 10);
    mkdir(&pgdata.join("base"), 0o700);
    write_file(&pgdata.join("base").join("1"), 0o600, 8 * KIB, 11);
    for path in [
        pgdata.join("base").join("1"),
        pgdata.join("base"),
        pgdata.join("PG_VERSION"),
        pgdata,
    ] {
        chown(&path, PG_ID, PG_ID);
    }
}

fn symlinks(dir: &Path) {
    mkdir(dir, 0o755);
    let targets: [(&str, &[u8]); 6] = [
        ("relative", b"../files/four_kib"),
        ("absolute", b"/etc/passwd"),
        ("dangling", b"does/not/exist"),
        ("to_dir", b"../perms/sticky_dir"),
        ("non_utf8_target", b"../names/caf\xe9"),
        ("owned", b"../files/one_byte"),
    ];
    for (name, target) in targets {
        let link = dir.join(name);
        symlink(OsStr::from_bytes(target), &link).unwrap_or_else(|e| fail("symlink", &link, e));
    }
    // A symlink has an owner of its own, distinct from its target's.
    chown(&dir.join("owned"), ODD_UID, ODD_UID);
}

fn hard_links(dir: &Path) {
    mkdir(dir, 0o755);
    write_file(&dir.join("pair_a"), 0o644, 10 * KIB, 12);
    link(&dir.join("pair_a"), &dir.join("pair_b"));

    write_file(&dir.join("trio_a"), 0o600, 5 * KIB, 13);
    chown(&dir.join("trio_a"), ODD_UID, ODD_GID);
    link(&dir.join("trio_a"), &dir.join("trio_b"));
    mkdir(&dir.join("sub"), 0o755);
    link(&dir.join("trio_a"), &dir.join("sub").join("trio_c"));
}

fn special_files(dir: &Path) {
    mkdir(dir, 0o755);
    mknod(&dir.join("fifo"), FileType::Fifo, 0, 0);
    chmod(&dir.join("fifo"), 0o640);

    let socket = dir.join("socket");
    // The socket file outlives the listener; nothing ever listens on it again.
    drop(UnixListener::bind(&socket).unwrap_or_else(|e| fail("bind", &socket, e)));
    chmod(&socket, 0o660);

    mknod(&dir.join("null"), FileType::CharacterDevice, 1, 3);
    chmod(&dir.join("null"), 0o666);
    mknod(&dir.join("loop200"), FileType::BlockDevice, 7, 200);
    chown(&dir.join("loop200"), 0, DISK_GID);
    chmod(&dir.join("loop200"), 0o660);
}

fn empty_dirs(root: &Path) {
    mkdir(&root.join("empty"), 0o755);
    let mut nested = root.join("nested_empty");
    mkdir(&nested, 0o755);
    for name in ["a", "b", "c"] {
        nested.push(name);
        mkdir(&nested, 0o755);
    }
    mkdir(&root.join("nested_empty").join("private"), 0o700);
    chown(&root.join("nested_empty").join("private"), ODD_UID, ODD_GID);
}

fn xattrs(dir: &Path) {
    mkdir(dir, 0o755);
    let binary = b"\0\x01\x02\xfe\xff\0\n";

    let file = dir.join("file");
    write_file(&file, 0o644, 50, 14);
    set_xattr(&file, "user.kopi", b"docka");
    set_xattr(&file, "user.binary", binary);
    set_xattr(&file, "user.empty", b"");

    let xdir = dir.join("dir");
    mkdir(&xdir, 0o755);
    set_xattr(&xdir, "user.kopi", b"docka");
    set_xattr(&xdir, "user.binary", binary);

    let acl_file = dir.join("acl_file");
    write_file(&acl_file, 0o640, 60, 15);
    // Setting an access ACL also rewrites the group bits of the mode (to the mask).
    set_xattr(
        &acl_file,
        "system.posix_acl_access",
        &acl(&[
            (ACL_USER_OBJ, 6, ACL_NO_ID),
            (ACL_USER, 4, ODD_UID),
            (ACL_GROUP_OBJ, 4, ACL_NO_ID),
            (ACL_GROUP, 6, ODD_GID),
            (ACL_MASK, 6, ACL_NO_ID),
            (ACL_OTHER, 0, ACL_NO_ID),
        ]),
    );

    let acl_dir = dir.join("default_acl_dir");
    mkdir(&acl_dir, 0o750);
    // Created before the default ACL, so it has none: a restore that sets the directory's
    // default ACL before creating its entries would give this file an ACL it never had.
    write_file(&acl_dir.join("before_default"), 0o644, 70, 16);
    set_xattr(
        &acl_dir,
        "system.posix_acl_default",
        &acl(&[
            (ACL_USER_OBJ, 7, ACL_NO_ID),
            (ACL_USER, 7, ODD_UID),
            (ACL_GROUP_OBJ, 5, ACL_NO_ID),
            (ACL_MASK, 7, ACL_NO_ID),
            (ACL_OTHER, 5, ACL_NO_ID),
        ]),
    );
    // Created after the default ACL, so they inherit from it: the file an access ACL, the
    // directory an access and a default ACL.
    let inherited = acl_dir.join("inherited");
    File::create(&inherited).unwrap_or_else(|e| fail("create", &inherited, e));
    let inherited_dir = acl_dir.join("inherited_dir");
    fs::create_dir(&inherited_dir).unwrap_or_else(|e| fail("mkdir", &inherited_dir, e));
}

fn odd_names(dir: &Path) {
    mkdir(dir, 0o755);
    let long = [b'x'; 255];
    let names: [&[u8]; 8] = [
        b"caf\xe9",
        b"\xff\xfe",
        b"with space",
        b"new\nline",
        b"-leading-dash",
        b"back\\slash*?[",
        "unicode-\u{e9}t\u{e9}-\u{1f980}".as_bytes(),
        &long,
    ];
    for (seed, name) in (100..).zip(names) {
        write_file(&dir.join(OsStr::from_bytes(name)), 0o644, 16, seed);
    }
    let odd_dir = dir.join(OsStr::from_bytes(b"dir\xe9"));
    mkdir(&odd_dir, 0o755);
    write_file(&odd_dir.join("inner"), 0o644, 16, 99);
}

fn deep_path(dir: &Path) {
    let mut path = dir.to_owned();
    mkdir(&path, 0o755);
    for level in 1..=20 {
        path.push(format!("level{level:02}"));
        mkdir(&path, 0o755);
    }
    write_file(&path.join("leaf"), 0o644, 42, 17);
}

/// Gives every entry its own nanosecond-precise time in 2020, directories last and deepest
/// first, so no later step inside a directory moves its mtime again.
fn set_fixed_mtimes(root: &Path) {
    let tree = walk(root);
    let mut dirs = Vec::new();
    for (index, entry) in (0_i64..).zip(tree.values()) {
        let time = Timespec {
            tv_sec: 1_600_000_000 + index * 3_607,
            tv_nsec: (123_456_789 + index * 1_000_003) % 1_000_000_000,
        };
        if entry.meta.is_dir() {
            let depth = entry.path.components().count();
            dirs.push((depth, &entry.path, time));
        } else {
            set_mtime(&entry.path, time);
        }
    }
    dirs.sort_by_key(|&(depth, _, _)| std::cmp::Reverse(depth));
    for (_, path, time) in dirs {
        set_mtime(path, time);
    }
}

fn set_mtime(path: &Path, time: Timespec) {
    let times = Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| fail("utimensat", path, e));
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap_or_else(|e| fail("mkdir", path, e));
    chmod(path, mode);
}

/// Writes `len` deterministic bytes that neither compress nor deduplicate, so a chunker
/// finds real chunk boundaries.
fn write_file(path: &Path, mode: u32, len: u64, seed: u64) {
    let mut file = File::create(path).unwrap_or_else(|e| fail("create", path, e));
    let mut rng = SplitMix64(seed);
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap();
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n])
            .unwrap_or_else(|e| fail("write", path, e));
        left -= n as u64;
    }
    chmod(path, mode);
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| fail("chmod", path, e));
}

/// `lchown`, so a symlink gets an owner of its own rather than changing its target's.
fn chown(path: &Path, uid: u32, gid: u32) {
    lchown(path, Some(uid), Some(gid)).unwrap_or_else(|e| fail("lchown", path, e));
}

fn link(original: &Path, link: &Path) {
    fs::hard_link(original, link).unwrap_or_else(|e| fail("link", link, e));
}

fn mknod(path: &Path, kind: FileType, major: u32, minor: u32) {
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(CWD, path, kind, Mode::from_raw_mode(0o600), dev)
        .unwrap_or_else(|e| fail("mknod", path, e));
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| fail(&format!("setxattr {name}"), path, e));
}

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
/// The id of entries that name no user or group (`*_OBJ`, mask, other).
const ACL_NO_ID: u32 = u32::MAX;
const ACL_XATTR_VERSION: u32 = 2;

/// Encodes `(tag, rwx bits, id)` entries as the kernel's `system.posix_acl_*` xattr value.
/// Entries have to be sorted by tag, then id, as the kernel rejects any other order.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut value = ACL_XATTR_VERSION.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        value.extend_from_slice(&tag.to_le_bytes());
        value.extend_from_slice(&perm.to_le_bytes());
        value.extend_from_slice(&id.to_le_bytes());
    }
    value
}

/// Renders a `system.posix_acl_*` value the way `getfacl` would (`u::rw-,u:1234:r--,...`),
/// or `None` if it is not a well-formed ACL.
fn describe_acl(value: &[u8]) -> Option<String> {
    let body = value.strip_prefix(&ACL_XATTR_VERSION.to_le_bytes()[..])?;
    if body.len() % 8 != 0 {
        return None;
    }
    let entries: Option<Vec<String>> = body
        .chunks_exact(8)
        .map(|e| {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let prefix = match tag {
                ACL_USER_OBJ => "u:".to_owned(),
                ACL_USER => format!("u:{id}"),
                ACL_GROUP_OBJ => "g:".to_owned(),
                ACL_GROUP => format!("g:{id}"),
                ACL_MASK => "m:".to_owned(),
                ACL_OTHER => "o:".to_owned(),
                _ => return None,
            };
            let rwx: String = [(4, 'r'), (2, 'w'), (1, 'x')]
                .iter()
                .map(|&(bit, c)| if perm & bit == 0 { '-' } else { c })
                .collect();
            Some(format!("{prefix}:{rwx}"))
        })
        .collect();
    Some(entries?.join(","))
}

fn fail(what: &str, path: &Path, err: impl fmt::Display) -> ! {
    panic!("{what} {}: {err}", path.display())
}

/// `true` if fewer bytes are allocated to the file at `path` than its length: it has holes.
pub fn is_sparse(path: &Path) -> bool {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| fail("lstat", path, e));
    meta.blocks() * 512 < meta.len()
}

/// The kind of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix domain socket.
    Socket,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
}

impl Kind {
    fn of(meta: &Metadata) -> Self {
        let ft = meta.file_type();
        if ft.is_dir() {
            Self::Dir
        } else if ft.is_symlink() {
            Self::Symlink
        } else if ft.is_fifo() {
            Self::Fifo
        } else if ft.is_socket() {
            Self::Socket
        } else if ft.is_char_device() {
            Self::CharDevice
        } else if ft.is_block_device() {
            Self::BlockDevice
        } else {
            Self::File
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::CharDevice => "char device",
            Self::BlockDevice => "block device",
        })
    }
}

/// One aspect [`compare_trees`] checks; each reported difference names its aspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aspect {
    /// The entry exists in only one of the trees.
    Presence,
    /// File, directory, symlink, fifo, socket or device.
    FileType,
    /// The bytes of a regular file.
    Content,
    /// The length of a regular file.
    Size,
    /// All 12 permission bits, setuid, setgid and sticky included.
    Mode,
    /// The numeric owner.
    Uid,
    /// The numeric group.
    Gid,
    /// The modification time, to the nanosecond.
    Mtime,
    /// Where a symlink points.
    SymlinkTarget,
    /// Major and minor number of a device node.
    Rdev,
    /// Every extended attribute, ACLs (`system.posix_acl_*`) included.
    Xattrs,
    /// A file with holes in the first tree is fully allocated in the second.
    Sparseness,
    /// Which paths share an inode.
    HardLinks,
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Presence => "presence",
            Self::FileType => "file type",
            Self::Content => "content",
            Self::Size => "size",
            Self::Mode => "mode",
            Self::Uid => "uid",
            Self::Gid => "gid",
            Self::Mtime => "mtime",
            Self::SymlinkTarget => "symlink target",
            Self::Rdev => "rdev",
            Self::Xattrs => "xattrs",
            Self::Sparseness => "sparseness",
            Self::HardLinks => "hard links",
        })
    }
}

/// An aspect left out of a comparison: for every entry, or only for entries of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ignore {
    /// What is not compared.
    pub aspect: Aspect,
    /// Where it is not compared: entries of this kind (in the first tree), or all if `None`.
    pub kind: Option<Kind>,
}

/// What [`compare_trees`] leaves out, so a test can name a known gap of a backup engine
/// precisely instead of giving up on the whole comparison. Access and change times are never
/// compared: no restore can reproduce them.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Skip mode, owner, mtime and xattrs of the two roots themselves.
    pub ignore_root_metadata: bool,
    /// Xattr names starting with any of these are dropped on both sides.
    pub ignore_xattr_prefixes: Vec<String>,
    /// Do not report a sparse file that came back fully allocated (same as ignoring
    /// [`Aspect::Sparseness`]).
    pub ignore_sparseness: bool,
    /// Further aspects left out, everywhere or for one kind of entry.
    pub ignore: Vec<Ignore>,
}

impl CompareOptions {
    /// These options, also ignoring `aspect` for every entry.
    #[must_use]
    pub fn ignoring(mut self, aspect: Aspect) -> Self {
        self.ignore.push(Ignore { aspect, kind: None });
        self
    }

    /// These options, also ignoring `aspect` for entries of `kind`.
    #[must_use]
    pub fn ignoring_for(mut self, kind: Kind, aspect: Aspect) -> Self {
        self.ignore.push(Ignore {
            aspect,
            kind: Some(kind),
        });
        self
    }

    fn ignores(&self, kind: Kind, aspect: Aspect) -> bool {
        (aspect == Aspect::Sparseness && self.ignore_sparseness)
            || self
                .ignore
                .iter()
                .any(|i| i.aspect == aspect && i.kind.is_none_or(|k| k == kind))
    }
}

/// Compares the trees under `a` and `b` (without following symlinks) and returns one line per
/// difference, in path order with hard-link differences last. Each line reads
/// `"<relative path>": <aspect>: <details>`, the path quoted with non-ASCII bytes escaped and
/// the root shown as `"."`, the aspect as [`Aspect`] displays. Entries beneath a directory
/// that is missing, or not a directory, on one side are not listed one by one.
pub fn compare_trees(a: &Path, b: &Path, opts: &CompareOptions) -> Vec<String> {
    let tree_a = walk(a);
    let tree_b = walk(b);
    let mut out = Vec::new();
    let mut lone_dirs: BTreeSet<&[u8]> = BTreeSet::new();
    let all: BTreeSet<&Vec<u8>> = tree_a.keys().chain(tree_b.keys()).collect();
    for rel in all {
        if ancestors(rel).any(|dir| lone_dirs.contains(dir)) {
            continue;
        }
        let (side, entry) = match (tree_a.get(rel), tree_b.get(rel)) {
            (Some(ea), Some(eb)) => {
                let same_kind = compare_entry(rel, ea, eb, opts, &mut out);
                if !same_kind && (ea.meta.is_dir() || eb.meta.is_dir()) {
                    lone_dirs.insert(rel);
                }
                continue;
            }
            (Some(entry), None) => ("a", entry),
            (None, Some(entry)) => ("b", entry),
            (None, None) => unreachable!("every path comes from one of the trees"),
        };
        let kind = Kind::of(&entry.meta);
        if kind == Kind::Dir {
            lone_dirs.insert(rel);
        }
        if !opts.ignores(kind, Aspect::Presence) {
            report(
                &mut out,
                rel,
                Aspect::Presence,
                &format!("only in {side} ({kind})"),
            );
        }
    }
    compare_hard_links(&tree_a, &tree_b, opts, &mut out);
    out
}

/// Panics listing every difference [`compare_trees`] finds between `a` and `b`.
pub fn assert_trees_equal(a: &Path, b: &Path, opts: &CompareOptions) {
    let diffs = compare_trees(a, b, opts);
    assert!(
        diffs.is_empty(),
        "{} differs from {} in {} ways:\n  {}",
        b.display(),
        a.display(),
        diffs.len(),
        diffs.join("\n  ")
    );
}

struct Entry {
    path: PathBuf,
    meta: Metadata,
}

/// Every entry of a tree by its relative path as raw bytes (the root is the empty path).
type Tree = BTreeMap<Vec<u8>, Entry>;

fn walk(root: &Path) -> Tree {
    let meta = fs::symlink_metadata(root).unwrap_or_else(|e| fail("lstat", root, e));
    assert!(meta.is_dir(), "{} is not a directory", root.display());
    let mut tree = Tree::new();
    walk_dir(root, &[], &mut tree);
    tree.insert(
        Vec::new(),
        Entry {
            path: root.to_owned(),
            meta,
        },
    );
    tree
}

fn walk_dir(dir: &Path, rel: &[u8], tree: &mut Tree) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| fail("read_dir", dir, e)) {
        let entry = entry.unwrap_or_else(|e| fail("read_dir", dir, e));
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| fail("lstat", &path, e));
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(entry.file_name().as_bytes());
        if meta.is_dir() {
            walk_dir(&path, &child, tree);
        }
        tree.insert(child, Entry { path, meta });
    }
}

/// The proper ancestors of a relative path, the root excluded.
fn ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &rel[..i])
}

fn show_path(rel: &[u8]) -> String {
    if rel.is_empty() {
        "\".\"".to_owned()
    } else {
        format!("\"{}\"", rel.escape_ascii())
    }
}

fn report(out: &mut Vec<String>, rel: &[u8], aspect: Aspect, detail: &str) {
    out.push(format!("{}: {aspect}: {detail}", show_path(rel)));
}

/// Returns `false` if the entries differ in kind, and so were not compared any further.
fn compare_entry(
    rel: &[u8],
    a: &Entry,
    b: &Entry,
    opts: &CompareOptions,
    out: &mut Vec<String>,
) -> bool {
    let kind = Kind::of(&a.meta);
    let kind_b = Kind::of(&b.meta);
    if kind != kind_b {
        // Everything else follows from the type, and would only bury the real difference.
        if !opts.ignores(kind, Aspect::FileType) {
            report(out, rel, Aspect::FileType, &format!("a={kind} b={kind_b}"));
        }
        return false;
    }
    let skip_metadata = rel.is_empty() && opts.ignore_root_metadata;
    let mut check = |aspect: Aspect, va: String, vb: String| {
        let metadata = matches!(
            aspect,
            Aspect::Mode | Aspect::Uid | Aspect::Gid | Aspect::Mtime
        );
        if va != vb && !opts.ignores(kind, aspect) && !(metadata && skip_metadata) {
            report(out, rel, aspect, &format!("a={va} b={vb}"));
        }
    };
    let (ma, mb) = (&a.meta, &b.meta);
    check(
        Aspect::Mode,
        format!("{:04o}", ma.mode() & 0o7777),
        format!("{:04o}", mb.mode() & 0o7777),
    );
    check(Aspect::Uid, ma.uid().to_string(), mb.uid().to_string());
    check(Aspect::Gid, ma.gid().to_string(), mb.gid().to_string());
    check(
        Aspect::Mtime,
        format!("{}.{:09}", ma.mtime(), ma.mtime_nsec()),
        format!("{}.{:09}", mb.mtime(), mb.mtime_nsec()),
    );
    match kind {
        Kind::File => {
            check(Aspect::Size, ma.len().to_string(), mb.len().to_string());
            if !opts.ignores(kind, Aspect::Content)
                && let Some(offset) = first_content_difference(&a.path, &b.path)
            {
                report(
                    out,
                    rel,
                    Aspect::Content,
                    &format!("first difference at byte {offset}"),
                );
            }
            if !opts.ignores(kind, Aspect::Sparseness) && is_sparse(&a.path) && !is_sparse(&b.path)
            {
                report(
                    out,
                    rel,
                    Aspect::Sparseness,
                    &format!(
                        "a is sparse ({} of {} bytes allocated), b is not ({} allocated)",
                        ma.blocks() * 512,
                        ma.len(),
                        mb.blocks() * 512
                    ),
                );
            }
        }
        Kind::Symlink => {
            let target = |e: &Entry| {
                let t = fs::read_link(&e.path).unwrap_or_else(|err| fail("readlink", &e.path, err));
                show_bytes(t.as_os_str().as_bytes())
            };
            check(Aspect::SymlinkTarget, target(a), target(b));
        }
        Kind::CharDevice | Kind::BlockDevice => {
            let dev = |m: &Metadata| {
                let rdev = m.rdev();
                format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
            };
            check(Aspect::Rdev, dev(ma), dev(mb));
        }
        Kind::Dir | Kind::Fifo | Kind::Socket => {}
    }
    if !opts.ignores(kind, Aspect::Xattrs) && !skip_metadata {
        compare_xattrs(rel, a, b, opts, out);
    }
    true
}

fn compare_xattrs(rel: &[u8], a: &Entry, b: &Entry, opts: &CompareOptions, out: &mut Vec<String>) {
    let xa = read_xattrs(&a.path, &opts.ignore_xattr_prefixes);
    let xb = read_xattrs(&b.path, &opts.ignore_xattr_prefixes);
    let names: BTreeSet<&Vec<u8>> = xa.keys().chain(xb.keys()).collect();
    for name in names {
        let (va, vb) = (xa.get(name), xb.get(name));
        if va != vb {
            let show = |v: Option<&Vec<u8>>| match v {
                None => "absent".to_owned(),
                Some(v) if name.starts_with(b"system.posix_acl_") => {
                    describe_acl(v).unwrap_or_else(|| show_bytes(v))
                }
                Some(v) => show_bytes(v),
            };
            let detail = format!("{}: a={} b={}", name.escape_ascii(), show(va), show(vb));
            report(out, rel, Aspect::Xattrs, &detail);
        }
    }
}

fn show_bytes(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    if bytes.len() <= MAX {
        format!("\"{}\"", bytes.escape_ascii())
    } else {
        format!(
            "\"{}\"... ({} bytes)",
            bytes[..MAX].escape_ascii(),
            bytes.len()
        )
    }
}

/// Every xattr of `path` itself (never of a symlink's target), name to value.
fn read_xattrs(path: &Path, ignore_prefixes: &[String]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut xattrs = BTreeMap::new();
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(size) => size,
        Err(rustix::io::Errno::OPNOTSUPP) => return xattrs,
        Err(e) => fail("listxattr", path, e),
    };
    let mut names = vec![0; size];
    let len =
        rustix::fs::llistxattr(path, &mut names).unwrap_or_else(|e| fail("listxattr", path, e));
    names.truncate(len);
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if ignore_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_bytes()))
        {
            continue;
        }
        let what = || format!("getxattr {}", name.escape_ascii());
        let name_os = OsStr::from_bytes(name);
        let size =
            rustix::fs::lgetxattr_query(path, name_os).unwrap_or_else(|e| fail(&what(), path, e));
        let mut value = vec![0; size];
        let len = rustix::fs::lgetxattr(path, name_os, &mut value)
            .unwrap_or_else(|e| fail(&what(), path, e));
        value.truncate(len);
        xattrs.insert(name.to_vec(), value);
    }
    xattrs
}

/// The offset of the first byte that differs within the length of the shorter file, read in
/// bounded chunks so a large file never has to fit in memory.
fn first_content_difference(a: &Path, b: &Path) -> Option<u64> {
    const CHUNK: usize = 1 << 20;
    let open = |p: &Path| File::open(p).unwrap_or_else(|e| fail("open", p, e));
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0; CHUNK], vec![0; CHUNK]);
    let mut offset = 0_u64;
    loop {
        let na = read_full(&mut fa, &mut ba).unwrap_or_else(|e| fail("read", a, e));
        let nb = read_full(&mut fb, &mut bb).unwrap_or_else(|e| fail("read", b, e));
        let n = na.min(nb);
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Some(offset + i as u64);
        }
        if n < CHUNK {
            return None;
        }
        offset += CHUNK as u64;
    }
}

/// Reads until `buf` is full or the file ends, so both files advance in step.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Compares which paths share an inode. Only paths present in both trees count: a missing
/// path is reported as such already.
fn compare_hard_links(a: &Tree, b: &Tree, opts: &CompareOptions, out: &mut Vec<String>) {
    let common = |rel: &[u8]| a.contains_key(rel) && b.contains_key(rel);
    let groups_a = link_groups(a, &common);
    let groups_b = link_groups(b, &common);
    let describe = |group: &[&[u8]], groups: &HashMap<&[u8], Vec<&[u8]>>| {
        let seen: BTreeSet<Vec<&[u8]>> = group
            .iter()
            .map(|rel| groups.get(rel).cloned().unwrap_or_else(|| vec![*rel]))
            .collect();
        seen.iter()
            .map(|g| show_group(g))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (set_a, set_b) = (distinct(&groups_a), distinct(&groups_b));
    for group in set_a.difference(&set_b) {
        if !opts.ignores(Kind::of(&a[group[0]].meta), Aspect::HardLinks) {
            let detail = format!("a={} b={}", show_group(group), describe(group, &groups_b));
            report(out, group[0], Aspect::HardLinks, &detail);
        }
    }
    for group in set_b.difference(&set_a) {
        // A group split in b was reported above; only links b added are left.
        let within_one_a_group = groups_a
            .get(group[0])
            .is_some_and(|ga| group.iter().all(|rel| ga.contains(rel)));
        if !within_one_a_group && !opts.ignores(Kind::of(&a[group[0]].meta), Aspect::HardLinks) {
            let detail = format!("a={} b={}", describe(group, &groups_a), show_group(group));
            report(out, group[0], Aspect::HardLinks, &detail);
        }
    }
}

fn distinct<'t>(groups: &HashMap<&'t [u8], Vec<&'t [u8]>>) -> BTreeSet<Vec<&'t [u8]>> {
    groups.values().cloned().collect()
}

/// Each path that shares its inode with another path of the tree, mapped to all of those paths
/// (sorted, itself included).
fn link_groups<'t>(
    tree: &'t Tree,
    keep: &dyn Fn(&[u8]) -> bool,
) -> HashMap<&'t [u8], Vec<&'t [u8]>> {
    let mut by_inode: HashMap<(u64, u64), Vec<&[u8]>> = HashMap::new();
    for (rel, entry) in tree {
        if !entry.meta.is_dir() && keep(rel) {
            by_inode
                .entry((entry.meta.dev(), entry.meta.ino()))
                .or_default()
                .push(rel);
        }
    }
    let mut groups = HashMap::new();
    for mut group in by_inode.into_values().filter(|g| g.len() > 1) {
        group.sort_unstable();
        for rel in &group {
            groups.insert(*rel, group.clone());
        }
    }
    groups
}

fn show_group(group: &[&[u8]]) -> String {
    let paths: Vec<String> = group.iter().map(|rel| show_path(rel)).collect();
    format!("{{{}}}", paths.join(", "))
}
