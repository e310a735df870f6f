//! The repository engine on real repositories in temp dirs, and interop with Debian's restic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kopi_docka_core::config::{RepositoryLocation, RetentionConfig};
use kopi_docka_core::progress::Silent;
use kopi_docka_core::repo::{
    BackupId, Cancel, Part, Pass, PasswordSource, Repo, RepoError, RepoSettings, RestoreMode,
    Scope, SnapshotFilter, SnapshotMeta, UnitRef, WriteRepo, backend_spec,
};
use kopi_docka_core::unit::{DumpEngine, UnitKind, UnitName};
use support::tree::{self, CompareOptions};

struct Fixture {
    dir: tempfile::TempDir,
    settings: RepoSettings,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("password");
        std::fs::write(&pw, "correct horse battery staple\n").unwrap();
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let location = RepositoryLocation::Local(dir.path().join("repo"));
        let settings = RepoSettings {
            backend: backend_spec(&location, &std::collections::BTreeMap::new()).unwrap(),
            location,
            password: PasswordSource::File(pw),
            hostname: "kdtest-host".into(),
            compression: 1,
            retention: RetentionConfig::default(),
            cache_dir: dir.path().join("cache"),
            lock_dir: dir.path().join("locks"),
            ssh_dir: dir.path().join("ssh"),
        };
        Self { dir, settings }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn repo_dir(&self) -> PathBuf {
        self.path("repo")
    }

    async fn init(&self) -> WriteRepo {
        WriteRepo::init(self.settings.clone(), Arc::new(Silent))
            .await
            .unwrap()
    }

    async fn open(&self) -> Result<Repo, RepoError> {
        Repo::open(self.settings.clone(), Arc::new(Silent)).await
    }

    async fn open_write(&self) -> Result<WriteRepo, RepoError> {
        WriteRepo::open(self.settings.clone(), Arc::new(Silent)).await
    }

    fn restic(&self, args: &[&str]) -> std::process::Output {
        self.restic_with_path(args, None)
    }

    /// restic with `args`, then `path` (a backup source or restore target) when given; panics
    /// when it cannot run, returns its output either way.
    fn restic_with_path(&self, args: &[&str], path: Option<&Path>) -> std::process::Output {
        let mut cmd = Command::new("restic");
        cmd.args(["--no-cache", "-r"])
            .arg(self.repo_dir())
            .arg("--password-file")
            .arg(self.path("password"))
            .args(args);
        if let Some(path) = path {
            cmd.arg(path);
        }
        cmd.output()
            .expect("restic is installed (scripts/test.sh installs it)")
    }
}

/// A retention policy of `keep-last` and `keep-daily` only.
fn keep(last: u32, daily: u32) -> RetentionConfig {
    RetentionConfig {
        keep_last: last,
        keep_hourly: 0,
        keep_daily: daily,
        keep_weekly: 0,
        keep_monthly: 0,
        keep_yearly: 0,
        keep_within: None,
    }
}

/// How many snapshots of ours the repository holds.
async fn snapshot_count(repo: &Repo) -> usize {
    repo.snapshots(SnapshotFilter::default())
        .await
        .unwrap()
        .len()
}

fn volume_meta(unit: &str, volume: &str, id: &str) -> SnapshotMeta {
    SnapshotMeta {
        unit: Some(UnitRef {
            name: UnitName::new(unit),
            kind: UnitKind::Stack,
        }),
        part: Part::Volume {
            volume: volume.into(),
        },
        backup_id: BackupId::try_from(id.to_owned()).unwrap(),
        scope: Scope::Standard,
        pass: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rich_tree_round_trips_through_our_restore_and_restic() {
    let fx = Fixture::new();
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    tree::build_rich_tree(&source);
    // The source holds what the comparisons below speak of (comparing it with itself, as this
    // line once did, could never fail).
    assert!(
        tree::is_sparse(&source.join("files/sparse")),
        "a sparse source"
    );
    assert!(
        std::os::unix::fs::FileTypeExt::is_socket(
            &std::fs::symlink_metadata(source.join("special/socket"))
                .unwrap()
                .file_type()
        ),
        "a socket in the source"
    );

    let repo = fx.init().await;
    let meta = volume_meta("app", "app_data", "20261122T000000Z-0001");
    let snap = repo
        .snapshot(source.clone(), meta.clone(), None)
        .await
        .unwrap();
    assert_eq!(snap.meta, meta);
    assert_eq!(snap.path, "/kopi-docka/stack/app/volumes/app_data");
    assert_eq!(snap.host, "kdtest-host");

    // Our restore: everything, including the root's own mode, owner and mtime.
    let ours = fx.path("restored-ours");
    let report = repo
        .restore(snap.id.clone(), ours.clone(), RestoreMode::EmptyOnly)
        .await
        .unwrap();
    assert!(report.restored > 10, "{report:?}");
    tree::assert_trees_equal(&source, &ours, &CompareOptions::default());

    // restic 0.14 lists it with our tags, checks the repository and restores the same content.
    let out = fx.restic(&["snapshots", "--json", "--tag", "kopi-docka,unit=app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags: Vec<&str> = listed[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"backup_id=20261122T000000Z-0001"),
        "{tags:?}"
    );
    assert!(tags.contains(&"volume=app_data"), "{tags:?}");
    let check = fx.restic(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // restic 0.14 has no `id:path` syntax: restore the snapshot and look under its path.
    let theirs_root = fx.path("restored-restic");
    let out = fx.restic_with_path(&["restore", &snap.id, "--target"], Some(&theirs_root));
    assert!(
        out.status.success(),
        "restic restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = theirs_root.join(snap.path.trim_start_matches('/'));
    // restic knows nothing of our root metadata record (the root comes back 0755 root:root
    // with the restore time), and restic 0.14 itself restores neither sparse files (no
    // `--sparse` before 0.15), sockets, nor non-UTF-8 symlink targets (read lossily).
    // Everything else is identical.
    let known_gap = CompareOptions {
        ignore_root_metadata: true,
        ignore_sparseness: true,
        ..CompareOptions::default()
    };
    assert!(
        tree::is_sparse(&ours.join("files/sparse")),
        "our restore keeps holes"
    );
    let differences = tree::compare_trees(&source, &theirs, &known_gap);
    assert_eq!(
        differences,
        vec![
            r#""links/non_utf8_target": symlink target: a="../names/caf\xe9" b="../names/caf\xef\xbf\xbd""#,
            r#""special/socket": presence: only in a (socket)"#,
        ],
        "restic 0.14 restore differs beyond its known gaps"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn we_read_a_repository_written_by_restic() {
    let fx = Fixture::new();
    let out = fx.restic(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = fx.path("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file.txt"), "written by restic\n").unwrap();
    let out = fx.restic_with_path(
        &["backup", "--tag", "foreign", "--host", "other"],
        Some(&data),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let repo = fx.open_write().await.unwrap();
    assert!(
        repo.snapshots(SnapshotFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "foreign snapshots are not ours"
    );
    let check = repo.check(Some(100.0)).await.unwrap();
    assert!(check.ok, "{check:?}");
    // We can add our snapshots to it, and restic still checks it.
    let snap = repo
        .snapshot(data.clone(), volume_meta("u", "v", "b1"), None)
        .await
        .unwrap();
    let back = fx.path("back");
    repo.restore(snap.id, back.clone(), RestoreMode::EmptyOnly)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(back.join("sub/file.txt")).unwrap(),
        "written by restic\n"
    );
    drop(repo);
    assert!(fx.restic(&["check"]).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn second_snapshot_reads_only_changed_files() {
    let fx = Fixture::new();
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    for i in 0..20 {
        std::fs::write(
            source.join(format!("f{i}")),
            format!("content {i}\n").repeat(100),
        )
        .unwrap();
    }
    let repo = fx.init().await;
    let first = repo
        .snapshot(source.clone(), volume_meta("u", "v", "b1"), None)
        .await
        .unwrap();
    assert_eq!(first.summary.unwrap().files_new, 20);
    std::fs::write(source.join("f3"), "changed\n").unwrap();
    let second = repo
        .snapshot(source.clone(), volume_meta("u", "v", "b2"), None)
        .await
        .unwrap();
    let summary = second.summary.unwrap();
    assert_eq!(
        (
            summary.files_new,
            summary.files_changed,
            summary.files_unmodified
        ),
        (0, 1, 19)
    );
}

/// A database dump is stored as one file that only its owner may read (it holds every secret
/// of the database), dated when it was taken; a cancelled one saves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_dump_is_owner_only_dated_and_cancellable() {
    let fx = Fixture::new();
    let repo = fx.init().await;
    let meta = SnapshotMeta {
        part: Part::Dump {
            container: "db".into(),
            engine: DumpEngine::Postgres,
        },
        ..volume_meta("u", "v", "b1")
    };
    let dump = || std::io::Cursor::new(b"CREATE ROLE app PASSWORD 'kdtest';".to_vec());
    let before = std::time::SystemTime::now();
    let snap = repo
        .snapshot_stream(meta.clone(), "all.sql".into(), dump(), Cancel::default())
        .await
        .unwrap();
    let after = std::time::SystemTime::now();
    // A restored file without a stored mtime would carry the time of the restore: keep that
    // apart from `after` by more than the file system clock's tick (a few ms).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let target = fx.path("target");
    repo.restore(snap.id.clone(), target.clone(), RestoreMode::EmptyOnly)
        .await
        .unwrap();
    let file = std::fs::metadata(target.join("all.sql")).unwrap();
    assert_eq!(file.permissions().mode() & 0o777, 0o600);
    let mtime = file.modified().unwrap();
    assert!(
        (before..=after).contains(&mtime),
        "{before:?} {mtime:?} {after:?}"
    );

    let cancel = Cancel::default();
    cancel.cancel();
    let cancelled = repo
        .snapshot_stream(meta, "all.sql".into(), dump(), cancel)
        .await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    assert_eq!(snapshot_count(&repo).await, 1);
}

/// A volume's exclude globs leave their files out of its snapshot; a cancelled snapshot (the
/// run was interrupted) saves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn excluded_files_are_left_out_and_a_cancelled_snapshot_saves_nothing() {
    let fx = Fixture::new();
    let source = fx.path("source");
    std::fs::create_dir_all(source.join("cache")).unwrap();
    std::fs::write(source.join("keep.txt"), "kept").unwrap();
    std::fs::write(source.join("cache/page.tmp"), "left out").unwrap();
    let repo = fx.init().await;
    let snap = repo
        .snapshot_cancellable(
            source.clone(),
            volume_meta("u", "v", "b1"),
            vec!["*.tmp".into()],
            Cancel::default(),
        )
        .await
        .unwrap();
    let target = fx.path("target");
    repo.restore(snap.id.clone(), target.clone(), RestoreMode::EmptyOnly)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("keep.txt")).unwrap(),
        "kept"
    );
    assert!(target.join("cache").is_dir());
    assert!(!target.join("cache/page.tmp").exists());

    let cancel = Cancel::default();
    cancel.cancel();
    let cancelled = repo
        .snapshot_cancellable(source, volume_meta("u", "v", "b2"), Vec::new(), cancel)
        .await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    assert_eq!(snapshot_count(&repo).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_modes_protect_a_non_empty_target() {
    let fx = Fixture::new();
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a"), "A").unwrap();
    let repo = fx.init().await;
    let snap = repo
        .snapshot(source, volume_meta("u", "v", "b1"), None)
        .await
        .unwrap();
    let target = fx.path("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("extra"), "keep me?").unwrap();

    let err = repo
        .restore(snap.id.clone(), target.clone(), RestoreMode::EmptyOnly)
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::TargetNotEmpty { .. }), "{err}");
    assert!(!target.join("a").exists(), "nothing written when refused");

    let merged = repo
        .restore(snap.id.clone(), target.clone(), RestoreMode::Merge)
        .await
        .unwrap();
    assert_eq!(merged.additional, 1);
    assert!(target.join("extra").exists() && target.join("a").exists());

    repo.restore(snap.id, target.clone(), RestoreMode::Delete)
        .await
        .unwrap();
    assert!(!target.join("extra").exists());
    assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "A");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_exactly_the_policy_and_never_foreign_snapshots() {
    let mut fx = Fixture::new();
    fx.settings.retention = keep(2, 3);
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("f"), "x").unwrap();
    let repo = fx.init().await;
    // Two snapshots a day for 5 days, newest 2026-11-05 12:00.
    let mut times = Vec::new();
    for day in 1..=5 {
        for hour in [0, 12] {
            let t: jiff::Timestamp = format!("2026-11-0{day}T{hour:02}:00:00Z").parse().unwrap();
            let snap = repo
                .snapshot(
                    source.clone(),
                    volume_meta("u", "v", &format!("d{day}h{hour}")),
                    Some(t),
                )
                .await
                .unwrap();
            times.push((snap.id, t));
        }
    }
    // An older backup of the same unit with another volume: retention counts restore points
    // of the unit (all snapshots of a backup id together), not snapshots per path, so this
    // point is as old as it looks and goes.
    repo.snapshot(
        source.clone(),
        volume_meta("u", "other", "x1"),
        Some("2026-10-01T00:00:00Z".parse().unwrap()),
    )
    .await
    .unwrap();
    drop(repo);
    // A foreign snapshot in the same repository, far older than any policy keeps.
    let out = fx.restic_with_path(
        &["backup", "--host", "kdtest-host", "--tag", "manual"],
        Some(&source),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let repo = fx.open_write().await.unwrap();
    let now: jiff::Timestamp = "2026-11-06T00:00:00Z".parse().unwrap();
    let dry = repo.retention_plan(now).await.unwrap();
    assert_eq!(dry.removed, 0);
    assert_eq!(snapshot_count(&repo).await, 11, "dry run removes nothing");
    let report = repo.forget(now).await.unwrap();
    // keep-last 2: 05 12:00, 05 00:00; keep-daily 3: newest of 05, 04, 03.
    let expected: Vec<String> = ["d5h12", "d5h0", "d4h12", "d3h12"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let mut kept: Vec<String> = repo
        .snapshots(SnapshotFilter {
            unit: Some("u".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.meta.part == Part::Volume { volume: "v".into() })
        .map(|s| s.meta.backup_id.to_string())
        .collect();
    kept.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(kept, want);
    assert_eq!(report.removed, 7);
    let others = repo.snapshots(SnapshotFilter::default()).await.unwrap();
    assert!(
        !others.iter().any(|s| s.meta.backup_id.as_str() == "x1"),
        "an old point is not kept for having a path of its own"
    );
    let prune = repo.prune().await.unwrap();
    assert!(!prune.dry_run);
    drop(repo);
    let foreign = fx.restic(&["snapshots", "--json", "--tag", "manual"]);
    let foreign: serde_json::Value = serde_json::from_slice(&foreign.stdout).unwrap();
    assert_eq!(
        foreign.as_array().unwrap().len(),
        1,
        "the foreign snapshot survives forget and prune"
    );
    assert!(fx.restic(&["check", "--read-data"]).status.success());
}

/// Retention decides whole points: the policy counts complete points only, an incomplete point
/// stays while it is newer than the newest complete one, warm copies always go.
#[tokio::test(flavor = "multi_thread")]
async fn retention_counts_whole_points_and_drops_warm_copies() {
    let mut fx = Fixture::new();
    fx.settings.retention = keep(1, 0);
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("f"), "x").unwrap();
    let repo = fx.init().await;
    let save = |part: Part, id: &str, pass: Pass, time: &str| {
        let meta = SnapshotMeta {
            pass: Some(pass),
            part,
            ..volume_meta("u", "v", id)
        };
        let (repo, source, time) = (repo.clone(), source.clone(), time.parse().unwrap());
        async move { repo.snapshot(source, meta, Some(time)).await.unwrap() }
    };
    let vol = || Part::Volume { volume: "v".into() };
    // b1: complete (recipe, volume, marker). b2: its pre-stop hook failed (recipe, a warm copy).
    save(Part::Recipe, "b1", Pass::Final, "2026-11-01T00:00:00Z").await;
    save(vol(), "b1", Pass::Final, "2026-11-01T00:00:01Z").await;
    save(
        Part::Point { parts: 2 },
        "b1",
        Pass::Final,
        "2026-11-01T00:00:02Z",
    )
    .await;
    save(Part::Recipe, "b2", Pass::Final, "2026-11-02T00:00:00Z").await;
    save(vol(), "b2", Pass::Warm, "2026-11-02T00:00:01Z").await;
    // b4: a second failed run, newer still: every incomplete point newer than the newest
    // complete one is kept, not only the newest of them.
    save(Part::Recipe, "b4", Pass::Final, "2026-11-02T12:00:00Z").await;
    // b0: a failed run whose time ties with b1's newest snapshot: a tie keeps it (the safe side).
    save(Part::Recipe, "b0", Pass::Final, "2026-11-01T00:00:02Z").await;
    let ids = |snaps: Vec<kopi_docka_core::repo::SnapshotInfo>| {
        let mut ids: Vec<String> = snaps
            .iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s.meta.backup_id,
                    s.path.rsplit('/').next().unwrap()
                )
            })
            .collect();
        ids.sort();
        ids
    };
    let now: jiff::Timestamp = "2026-11-03T00:00:00Z".parse().unwrap();
    let report = repo.forget(now).await.unwrap();
    assert_eq!(
        report.removed, 1,
        "only the warm copy: {:?}",
        report.decisions
    );
    assert_eq!(
        ids(repo.snapshots(SnapshotFilter::default()).await.unwrap()),
        [
            "b0:recipe",
            "b1:point",
            "b1:recipe",
            "b1:v",
            "b2:recipe",
            "b4:recipe"
        ],
        "keep-last 1 keeps the complete point whole, and the incomplete ones not older than it"
    );

    // A newer complete point: the older complete one and the incomplete one go, whole.
    save(Part::Recipe, "b3", Pass::Final, "2026-11-03T00:00:00Z").await;
    save(vol(), "b3", Pass::Final, "2026-11-03T00:00:01Z").await;
    save(
        Part::Point { parts: 2 },
        "b3",
        Pass::Final,
        "2026-11-03T00:00:02Z",
    )
    .await;
    let now: jiff::Timestamp = "2026-11-04T00:00:00Z".parse().unwrap();
    let report = repo.forget(now).await.unwrap();
    assert_eq!(report.removed, 6, "{:?}", report.decisions);
    assert_eq!(
        ids(repo.snapshots(SnapshotFilter::default()).await.unwrap()),
        ["b3:point", "b3:recipe", "b3:v"]
    );
}

/// A policy that keeps nothing (the config refuses it when loaded) is refused by the repository
/// too, for a library caller that skipped the config: nothing is forgotten.
#[tokio::test(flavor = "multi_thread")]
async fn retention_that_keeps_nothing_is_refused_and_forgets_nothing() {
    let mut fx = Fixture::new();
    fx.settings.retention = keep(0, 0);
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("f"), "x").unwrap();
    let repo = fx.init().await;
    repo.snapshot(
        source,
        volume_meta("u", "v", "b1"),
        Some("2026-11-01T00:00:00Z".parse().unwrap()),
    )
    .await
    .unwrap();
    let now: jiff::Timestamp = "2026-11-02T00:00:00Z".parse().unwrap();
    let err = repo.forget(now).await.unwrap_err().to_string();
    assert!(err.contains("keep"), "{err}");
    assert_eq!(snapshot_count(&repo).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_fail_clearly_and_change_nothing() {
    // Missing repository.
    let fx = Fixture::new();
    let err = fx.open().await.unwrap_err();
    assert!(matches!(err, RepoError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("kopi-docka admin repo init"),
        "{err}"
    );
    assert!(!fx.repo_dir().exists(), "open never creates the repository");

    // Location is a file.
    std::fs::write(fx.repo_dir(), "not a repo").unwrap();
    let err = fx.open().await.unwrap_err();
    assert!(err.to_string().contains("is a file"), "{err}");
    let err = WriteRepo::init(fx.settings.clone(), Arc::new(Silent))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is a file"), "{err}");
    assert_eq!(
        std::fs::read_to_string(fx.repo_dir()).unwrap(),
        "not a repo"
    );
    std::fs::remove_file(fx.repo_dir()).unwrap();

    // Init twice.
    drop(fx.init().await);
    let err = WriteRepo::init(fx.settings.clone(), Arc::new(Silent))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::AlreadyExists { .. }), "{err}");

    // Wrong password.
    let mut wrong = fx.settings.clone();
    let pw = fx.path("wrong");
    std::fs::write(&pw, "wrong").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    wrong.password = PasswordSource::File(pw.clone());
    let err = Repo::open(wrong.clone(), Arc::new(Silent))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::WrongPassword { .. }), "{err}");

    // Password file readable by others.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Repo::open(wrong, Arc::new(Silent)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", pw.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o644,
        "we never chmod for the user"
    );

    // A writer excludes everyone else.
    let writer = fx.open_write().await.unwrap();
    let err = fx.open().await.unwrap_err();
    assert!(matches!(err, RepoError::Lock(_)), "{err}");
    drop(writer);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_finds_a_corrupted_pack() {
    let fx = Fixture::new();
    let source = fx.path("source");
    std::fs::create_dir(&source).unwrap();
    let noise: Vec<u8> = (0..200_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    std::fs::write(source.join("noise.bin"), &noise).unwrap();
    let repo = fx.init().await;
    repo.snapshot(source, volume_meta("u", "v", "b1"), None)
        .await
        .unwrap();
    assert!(repo.check(Some(100.0)).await.unwrap().ok);
    drop(repo);

    // Flip bytes in the middle of the largest pack file.
    let mut packs: Vec<PathBuf> = walk(&fx.repo_dir().join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap();
    let mut bytes = std::fs::read(pack).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::set_permissions(pack, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(pack, &bytes).unwrap();

    let repo = fx.open().await.unwrap();
    let report = repo.check(Some(100.0)).await.unwrap();
    assert!(!report.ok, "{report:?}");
    assert!(
        report.findings.iter().any(|f| f.level == "error"),
        "{report:?}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn change_password_keeps_the_repository_reachable() {
    let fx = Fixture::new();
    let repo = fx.init().await;
    let new = kopi_docka_core::repo::Password::new("a new secret".into());
    let old = std::fs::read_to_string(fx.path("password")).unwrap();
    repo.change_password(new.clone(), Some(fx.path("password")))
        .await
        .unwrap();
    drop(repo);
    assert_eq!(
        std::fs::read_to_string(fx.path("password")).unwrap(),
        "a new secret\n"
    );
    let repo = fx.open().await.unwrap();
    drop(repo);
    let mut with_old = fx.settings.clone();
    let old_file = fx.path("old-password");
    std::fs::write(&old_file, old).unwrap();
    std::fs::set_permissions(&old_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    with_old.password = PasswordSource::File(old_file);
    let err = Repo::open(with_old, Arc::new(Silent)).await.unwrap_err();
    assert!(
        matches!(err, RepoError::WrongPassword { .. }),
        "old password no longer opens: {err}"
    );
    let repo = fx.open().await.unwrap();
    let stats = repo.stats().await.unwrap();
    assert_eq!(stats.version, 2);
    // The new key has our scrypt parameters too, and restic opens it.
    assert_key_is_ours(&fx);
    let out = fx.restic(&["cat", "config"]);
    assert!(
        out.status.success(),
        "restic opens the new key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seeded bytes that do not compress, so content-defined chunking has something to cut.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// The repository has one key, and it has the scrypt parameters we pass to rustic_core
/// (N=2^15, r=8, p=4; rustic_core's own default is N=2^17, r=8, p=1).
fn assert_key_is_ours(fx: &Fixture) {
    let keys: Vec<_> = std::fs::read_dir(fx.repo_dir().join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(keys.len(), 1);
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys[0]).unwrap()).unwrap();
    assert_eq!(
        (&key["kdf"], &key["N"], &key["r"], &key["p"]),
        (
            &serde_json::json!("scrypt"),
            &serde_json::json!(32768),
            &serde_json::json!(8),
            &serde_json::json!(4)
        ),
        "scrypt parameters of a new key: {key}"
    );
}

/// Our patched `rustic_core` (`vendor/rustic_core`) must keep writing what restic expects: key
/// files restic opens, with the scrypt parameters we chose, and chunk boundaries identical to
/// restic's, or deduplication between the two tools (and with older repositories) is lost.
#[tokio::test(flavor = "multi_thread")]
async fn restic_finds_every_chunk_we_wrote_and_opens_our_keys() {
    let fx = Fixture::new();
    let repo = fx.init().await;
    assert_key_is_ours(&fx);

    let data = fx.path("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("large.bin"), noise(1, 9 << 20)).unwrap();
    // Read at the same time as large.bin by the other archiver thread.
    std::fs::write(data.join("large-copy.bin"), noise(1, 9 << 20)).unwrap();
    std::fs::write(data.join("medium.bin"), noise(2, (3 << 20) / 2)).unwrap();
    std::fs::write(data.join("small.bin"), noise(3, 3000)).unwrap();
    let ours = repo
        .snapshot(data.clone(), volume_meta("u", "v", "b1"), None)
        .await
        .unwrap();
    let summary = ours.summary.unwrap();
    assert_eq!(summary.files_new, 4);
    // Each blob once: 10.5 MiB of distinct data (it does not compress), plus trees.
    assert!(
        summary.bytes_added_packed < 11 << 20,
        "duplicate blobs stored: {summary:?}"
    );
    drop(repo);

    // restic has no parent for this path, so it reads and chunks all four files.
    let out = fx.restic_with_path(
        &["backup", "--json", "--host", "kdtest-restic"],
        Some(&data),
    );
    assert!(
        out.status.success(),
        "restic backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .expect("restic prints a summary");
    assert_eq!(summary["files_new"], 4, "{summary}");
    assert_eq!(
        summary["data_blobs"], 0,
        "restic cut chunks we did not: {summary}"
    );
    assert!(fx.restic(&["check", "--read-data"]).status.success());
}
