//! The snapshot cold pass on real filesystems: a btrfs and an XFS (reflink) image on loop
//! devices (mounted once per test binary, `support::loopfs`), a container whose bind mount
//! lives there, and the real binary backing it up and restoring it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::btrfs_engine::btrfs_engine;
use support::loopfs::{self, LoopFs};
use support::tree::{self, CompareOptions};
use support::{Env, IDLE, IMAGE, Signal, docker};

/// Bytes of incompressible data beside the rich tree: enough that reading them takes longer
/// than stopping, freezing and starting an idle container.
const BIG: usize = 192 << 20;

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// A running container `<prefix>-<suffix>` with a bind mount at `<fs.data>/<prefix>-<suffix>`
/// that holds the rich tree and a big random file. Returns (container, bind).
fn container_on(env: &Env, fs: &LoopFs, suffix: &str) -> (String, PathBuf) {
    let name = format!("{}-{suffix}", env.prefix);
    let bind = fs.data.join(&name);
    std::fs::create_dir(&bind).unwrap();
    tree::build_rich_tree(&bind);
    support::fill_random(&bind.join("big.bin"), BIG);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/bind", bind.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    (name, bind)
}

/// A post-start hook: copies the bind as the stopped unit left it to `expected` (`cp -a`: the
/// snapshot cold pass has frozen it by now), then changes the live data. The restore point
/// must hold the copy, not the changes.
fn change_after_the_snapshot(scripts: &Path, bind: &Path, expected: &Path) -> String {
    let hook = scripts.join("post-start.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nset -e\ncp -a '{bind}' '{expected}'\n\
             echo AFTER > '{bind}/after-the-snapshot.txt'\n\
             echo CHANGED > '{bind}/files/small.txt'\n\
             rm -rf '{bind}/hardlinks'\n",
            bind = bind.display(),
            expected = expected.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    hook.display().to_string()
}

fn snapshot_dir_entries(fs: &LoopFs) -> Vec<PathBuf> {
    match std::fs::read_dir(fs.mount.join(".kopi-docka-snapshots")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Backs up with the snapshot cold pass, changes the data after the snapshot, restores, and
/// compares with the tree as it was when the unit stopped.
fn round_trip(fs: &LoopFs, suffix: &str, method: &str) {
    let env = Env::builder().init().build();
    let (name, bind) = container_on(&env, fs, suffix);
    let scripts = tempfile::tempdir().unwrap();
    let expected = env.path("expected");
    let hook = change_after_the_snapshot(scripts.path(), &bind, &expected);
    env.write_config(
        "config.toml",
        &format!("[units.\"{name}\".hooks]\npost-start = [\"{hook}\"]\n"),
    );

    // Detection: `units` says what the cold pass can do with the bind.
    let units = env.json(&["units", "--json"]);
    let unit = units
        .as_array()
        .or_else(|| units["units"].as_array())
        .unwrap()
        .iter()
        .find(|u| u["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {units}"))
        .clone();
    assert_eq!(unit["binds"][0]["filesystem"]["method"], method, "{unit}");

    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["cold_pass"], "snapshot", "{unit}");
    assert!(running(&name));
    assert!(
        expected.join("big.bin").exists(),
        "the post-start hook did not run: {unit}"
    );
    // The unit was down for stop + snapshot + start only: less than the time its data then
    // took to read while it ran.
    let downtime = unit["downtime_seconds"].as_f64().unwrap();
    let total = unit["duration_seconds"].as_f64().unwrap();
    assert!(
        downtime < total - downtime,
        "downtime {downtime}s is not below the rest of the unit's {total}s: {unit}"
    );
    assert!(
        snapshot_dir_entries(fs).is_empty(),
        "snapshots left: {:?}",
        snapshot_dir_entries(fs)
    );
    assert!(!env.path("state/fs-snapshots.json").exists());

    // Restore elsewhere: the data sits at the bind's original path in the point.
    let target = env.path("restored");
    env.cmd(&[
        "restore",
        "--unit",
        &name,
        "--target-dir",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    let restored = target.join("binds").join(bind.strip_prefix("/").unwrap());
    assert!(
        !restored.join("after-the-snapshot.txt").exists(),
        "a change made after the snapshot is in the point"
    );
    // XFS lists each ACL twice: as `system.posix_acl_*` (compared) and under its own name
    // `trusted.SGI_ACL_*`, which any backup of XFS reads too but `cp -a` (the expected copy)
    // leaves out.
    let options = CompareOptions {
        ignore_xattr_prefixes: vec!["trusted.SGI_ACL_".into()],
        ..CompareOptions::default()
    };
    tree::assert_trees_equal(&expected, &restored, &options);

    // And in place: the bind (changed since) goes back to what the point holds.
    env.cmd(&["restore", "--unit", &name, "--only", "binds", "--yes"])
        .assert()
        .success();
    assert!(!bind.join("after-the-snapshot.txt").exists());
    tree::assert_trees_equal(&expected, &bind, &options);
    assert!(running(&name));
    docker(&["rm", "-f", &name]);
    std::fs::remove_dir_all(&bind).unwrap();
}

#[test]
fn btrfs_snapshot_cold_pass_round_trip() {
    if !support::docker_tests_enabled("btrfs_snapshot_cold_pass_round_trip") {
        return;
    }
    round_trip(loopfs::btrfs(), "btrfs", "btrfs_snapshot");
}

#[test]
fn xfs_reflink_cold_pass_round_trip() {
    if !support::docker_tests_enabled("xfs_reflink_cold_pass_round_trip") {
        return;
    }
    round_trip(loopfs::xfs_reflink(), "xfs", "reflink");
}

/// A run killed after the snapshot (while it reads it) leaves the snapshot and its journal
/// entry; `admin restart-stopped` removes both, and the container already runs.
#[test]
fn a_snapshot_left_by_a_killed_run_is_removed() {
    if !support::docker_tests_enabled("a_snapshot_left_by_a_killed_run_is_removed") {
        return;
    }
    let fs = loopfs::btrfs();
    let env = Env::builder().init().build();
    let (name, bind) = container_on(&env, fs, "killed");
    let mut child = env.spawn_logged(&["-v", "backup", "--unit", &name, "--scope", "minimal"]);
    child.wait_for_line("no snapshot was taken", |l| l.contains("snapshots taken"));
    child.wait_for_line("the snapshot was never read", |l| {
        l.contains("starting to backup")
    });
    child.signal(Signal::KILL);
    assert_eq!(child.finish().status.signal(), Some(9));
    let left = snapshot_dir_entries(fs);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(env.path("state/fs-snapshots.json").exists());
    // `doctor` names it.
    let out = env.cmd(&["doctor", "--json"]).output().unwrap();
    let doctor: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "filesystem snapshots")
        .unwrap_or_else(|| panic!("no snapshot check: {doctor}"));
    assert_eq!(check["status"], "warn", "{check}");
    assert!(
        check["message"]
            .as_str()
            .unwrap()
            .contains(&left[0].display().to_string()),
        "{check}"
    );

    let report = env.json(&["admin", "restart-stopped", "--json"]);
    assert_eq!(
        report["snapshots_removed"],
        serde_json::json!([left[0].display().to_string()]),
        "{report}"
    );
    assert!(snapshot_dir_entries(fs).is_empty());
    assert!(!env.path("state/fs-snapshots.json").exists());
    assert!(running(&name));
    docker(&["rm", "-f", &name]);
    std::fs::remove_dir_all(&bind).unwrap();
}

/// `cold-pass = "snapshot"` with a mount that cannot be snapshotted: the unit is not touched
/// (never stopped), the run fails and says why. `read` on btrfs reads while stopped.
#[test]
fn the_cold_pass_mode_is_honoured() {
    if !support::docker_tests_enabled("the_cold_pass_mode_is_honoured") {
        return;
    }
    let env = Env::builder().init().build();
    let name = format!("{}-plain", env.prefix);
    let bind = env.path("plain");
    std::fs::create_dir(&bind).unwrap();
    std::fs::write(bind.join("a.txt"), "a").unwrap();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/bind", bind.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let started = support::started_at(&name);
    env.write_config("config.toml", "[backup]\ncold-pass = \"snapshot\"\n");
    let plan = env.json(&["backup", "--dry-run", "--unit", &name, "--json"]);
    assert!(
        plan["units"][0]["cold_pass_refused"]
            .as_str()
            .is_some_and(|s| s.contains("cannot be snapshotted")),
        "{plan}"
    );
    let out = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .assert()
        .failure();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit}");
    assert!(
        unit["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("cannot be snapshotted") && e.contains("not touched")),
        "{unit}"
    );
    assert_eq!(unit["downtime_seconds"], Value::Null, "{unit}");
    assert_eq!(
        support::started_at(&name),
        started,
        "the container was restarted"
    );

    // `read` on a filesystem that could snapshot: read while stopped, as before.
    let fs = loopfs::btrfs();
    let (other, other_bind) = container_on(&env, fs, "read");
    env.write_config("config.toml", "[backup]\ncold-pass = \"read\"\n");
    let report = env.json(&["backup", "--unit", &other, "--scope", "minimal", "--json"]);
    assert_eq!(report["units"][0]["cold_pass"], "read", "{report}");
    assert_eq!(report["units"][0]["status"], "success", "{report}");
    docker(&["rm", "-f", &other]);
    std::fs::remove_dir_all(&other_bind).unwrap();
}

/// A bind on btrfs that holds another subvolume: a snapshot would hold it as an empty
/// directory, so `auto` reads the unit while stopped instead, says why, and the point holds
/// the nested subvolume's files.
#[test]
fn a_nested_subvolume_is_read_not_snapshotted() {
    if !support::docker_tests_enabled("a_nested_subvolume_is_read_not_snapshotted") {
        return;
    }
    let fs = loopfs::btrfs();
    let env = Env::builder().init().build();
    let name = format!("{}-nested", env.prefix);
    let bind = fs.data.join(&name);
    std::fs::create_dir(&bind).unwrap();
    support::run(
        std::process::Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(bind.join("inner")),
    );
    std::fs::write(bind.join("inner/deep.txt"), "inside").unwrap();
    std::fs::write(bind.join("top.txt"), "top").unwrap();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/bind", bind.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["cold_pass"], "read", "{unit}");
    assert!(
        unit["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("another subvolume or mount")),
        "{unit}"
    );
    let target = env.path("restored");
    env.cmd(&[
        "restore",
        "--unit",
        &name,
        "--target-dir",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    let restored = target.join("binds").join(bind.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored.join("inner/deep.txt")).unwrap(),
        "inside"
    );
    docker(&["rm", "-f", &name]);
    support::run(
        std::process::Command::new("btrfs")
            .args(["subvolume", "delete"])
            .arg(bind.join("inner")),
    );
    std::fs::remove_dir_all(&bind).unwrap();
}

/// A hook script `name` running `body` (`set -e`).
fn hook_script(dir: &Path, name: &str, body: &str) -> String {
    let hook = dir.join(name);
    std::fs::write(&hook, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    hook.display().to_string()
}

/// An idle container `name` on the btrfs engine with the volumes `vol_a` at /a (the rich
/// tree) and `vol_b` at /b (a big random file and a small one); their mountpoints.
fn idle_with_two_volumes(
    engine: &support::btrfs_engine::BtrfsEngine,
    name: &str,
    vol_a: &str,
    vol_b: &str,
) -> (PathBuf, PathBuf) {
    engine.docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "-v",
        &format!("{vol_a}:/a"),
        "-v",
        &format!("{vol_b}:/b"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let (a, b) = (
        engine.volume_mountpoint(vol_a),
        engine.volume_mountpoint(vol_b),
    );
    assert!(a.starts_with(&engine.fs.mount), "{}", a.display());
    tree::build_rich_tree(&a);
    support::fill_random(&b.join("big.bin"), 64 << 20);
    std::fs::write(b.join("small.txt"), "before").unwrap();

    (a, b)
}

/// Named volumes of a second engine whose data root is on btrfs (`support::btrfs_engine`):
/// the volumes are frozen by the snapshot cold pass, changes made after the snapshot are not
/// in the point, the point restores identical (elsewhere and in place), and no snapshot is
/// left.
#[test]
fn named_volumes_on_a_btrfs_engine_use_the_snapshot_cold_pass() {
    if !support::docker_tests_enabled("named_volumes_on_a_btrfs_engine_use_the_snapshot_cold_pass")
    {
        return;
    }
    let engine = btrfs_engine();
    let env = Env::builder().init().build();
    let _resources = engine.resources(&env.prefix);
    let name = format!("{}-vols", env.prefix);
    let (vol_a, vol_b) = (format!("{name}-a"), format!("{name}-b"));
    let (a, b) = idle_with_two_volumes(engine, &name, &vol_a, &vol_b);
    // After the start (the volumes are frozen by now): copy what the point must hold, then
    // change the live data.
    let scripts = tempfile::tempdir().unwrap();
    let expected = env.path("expected");
    let hook = hook_script(
        scripts.path(),
        "post-start.sh",
        &format!(
            "mkdir -p '{e}'\ncp -a '{a}' '{e}/a'\ncp -a '{b}' '{e}/b'\n\
             echo AFTER > '{a}/after-the-snapshot.txt'\necho CHANGED > '{b}/small.txt'\n",
            e = expected.display(),
            a = a.display(),
            b = b.display()
        ),
    );
    env.write_config(
        "config.toml",
        &format!(
            "[docker]\nhost = \"{}\"\n[units.\"{name}\".hooks]\npost-start = [\"{hook}\"]\n",
            engine.host()
        ),
    );

    let units = env.json(&["units", "--json"]);
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {units}"))
        .clone();
    for volume in unit["volumes"].as_array().unwrap() {
        assert_eq!(volume["filesystem"]["method"], "btrfs_snapshot", "{unit}");
    }

    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["cold_pass"], "snapshot", "{unit}");
    assert!(unit["downtime_seconds"].as_f64().is_some(), "{unit}");
    assert!(expected.join("b/big.bin").exists(), "the hook did not run");
    assert_eq!(
        engine.docker(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true"
    );
    let engine_fs = &engine.fs;
    assert!(
        snapshot_dir_entries(engine_fs).is_empty(),
        "snapshots left: {:?}",
        snapshot_dir_entries(engine_fs)
    );
    assert!(!env.path("state/fs-snapshots.json").exists());

    let target = env.path("restored");
    env.cmd(&[
        "restore",
        "--unit",
        &name,
        "--target-dir",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    let options = CompareOptions::default();
    tree::assert_trees_equal(
        &expected.join("a"),
        &target.join("volumes").join(&vol_a),
        &options,
    );
    tree::assert_trees_equal(
        &expected.join("b"),
        &target.join("volumes").join(&vol_b),
        &options,
    );

    // In place: the volumes (changed since) go back to what the point holds.
    env.cmd(&["restore", "--unit", &name, "--only", "volumes", "--yes"])
        .assert()
        .success();
    tree::assert_trees_equal(&expected.join("a"), &a, &options);
    tree::assert_trees_equal(&expected.join("b"), &b, &options);
    assert!(snapshot_dir_entries(engine_fs).is_empty());
}

const POSTGRES_IMAGE: &str = "kdtest/postgres:15";
const PG_PASSWORD: &str = "pg-live-test";

/// `psql` in `container`; its output, or `None` while the server does not answer.
fn psql(container: &str, query: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["exec", "-e"])
        .arg(format!("PGPASSWORD={PG_PASSWORD}"))
        .args([
            container,
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "app",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            query,
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Waits (bounded) until `container`'s server answers `query`; its answer.
fn psql_when_up(container: &str, query: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    loop {
        if let Some(answer) = psql(container, query) {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL in {container} did not answer within two minutes: {}",
            docker(&["logs", "--tail", "30", container])
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A PostgreSQL container under `kopi-docka.policy=snapshot-live` with its data in `data`.
fn live_postgres(name: &str, data: &Path, live: bool) {
    let found = std::process::Command::new("docker")
        .args(["image", "inspect", POSTGRES_IMAGE])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "the test image {POSTGRES_IMAGE} is missing: run scripts/build-db-images.sh (scripts/test.sh does)"
    );
    let mut args = vec![
        "run".to_owned(),
        "-d".into(),
        "--name".into(),
        name.into(),
        "--network".into(),
        "none".into(),
        "-e".into(),
        format!("POSTGRES_PASSWORD={PG_PASSWORD}"),
        "-e".into(),
        "POSTGRES_DB=app".into(),
        "-v".into(),
        format!("{}:/var/lib/postgresql/data", data.display()),
    ];
    if live {
        args.extend(["--label".into(), "kopi-docka.policy=snapshot-live".into()]);
    }
    args.push(POSTGRES_IMAGE.into());
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The writer: `docker exec` of a loop in `container` inserting rows 1, 2, ..., each in its
/// own transaction, printing each number once committed (psql returns after the commit) to
/// `log`.
fn start_writer(container: &str, log: &Path) -> std::process::Child {
    std::process::Command::new("docker")
        .args(["exec", "-e"])
        .arg(format!("PGPASSWORD={PG_PASSWORD}"))
        .args([
            container,
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); psql -h 127.0.0.1 -U postgres -d app -X -q \
             -v ON_ERROR_STOP=1 -c \"insert into rows values ($i)\" || exit 1; echo $i; done",
        ])
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The last row the writer logged as committed.
fn last_committed(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .last()
        .map_or(0, |l| l.parse().unwrap())
}

/// Restores `name`'s point to a target dir, starts a PostgreSQL on the copy of `data` and
/// checks it ran crash recovery and holds rows 1..=`last_before`.
fn assert_restored_copy_recovers(env: &Env, name: &str, data: &Path, last_before: u64) {
    let target = env.path("restored");
    env.cmd(&[
        "restore",
        "--unit",
        name,
        "--target-dir",
        target.to_str().unwrap(),
    ])
    .assert()
    .success();
    let restored = target.join("binds").join(data.strip_prefix("/").unwrap());
    let copy = format!("{}-pgcopy", env.prefix);
    live_postgres(&copy, &restored, false);
    let rows = psql_when_up(
        &copy,
        &format!("select count(*) from rows where id <= {last_before}"),
    );
    assert_eq!(
        rows,
        last_before.to_string(),
        "rows committed before the snapshot are missing"
    );
    let logs = String::from_utf8_lossy(
        &support::run(std::process::Command::new("docker").args(["logs", &copy])).stderr,
    )
    .into_owned();
    assert!(
        logs.contains("automatic recovery in progress") || logs.contains("not properly shut down"),
        "no crash recovery: {logs}"
    );
    docker(&["rm", "-f", &copy]);
}

/// A real PostgreSQL under `snapshot-live`, its data on btrfs, a client inserting numbered
/// rows one transaction each: the backup never stops it (engine events), and the copy
/// restored from the point starts (crash recovery) with every row committed before the
/// snapshot (the last one is recorded by the `post-stop` hook, which runs right before it).
#[test]
fn snapshot_live_postgres_is_never_stopped_and_its_copy_recovers() {
    if !support::docker_tests_enabled(
        "snapshot_live_postgres_is_never_stopped_and_its_copy_recovers",
    ) {
        return;
    }
    let fs = loopfs::btrfs();
    let env = Env::builder().init().build();
    let name = format!("{}-pglive", env.prefix);
    let data = fs.data.join(&name);
    std::fs::create_dir(&data).unwrap();
    live_postgres(&name, &data, true);
    psql_when_up(&name, "create table rows (id bigint primary key)");

    let log = env.path("writer.log");
    let mut writer = start_writer(&name, &log);
    let committed = || last_committed(&log);
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while committed() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer commits nothing"
        );
        assert!(writer.try_wait().unwrap().is_none(), "the writer died");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let scripts = tempfile::tempdir().unwrap();
    let before = env.path("before-snapshot.txt");
    let hook = hook_script(
        scripts.path(),
        "post-stop.sh",
        &format!("tail -n 1 '{}' > '{}'", log.display(), before.display()),
    );
    env.write_config(
        "config.toml",
        &format!("[units.\"{name}\".hooks]\npost-stop = [\"{hook}\"]\n"),
    );
    let plan = env.json(&["backup", "--dry-run", "--unit", &name, "--json"]);
    assert_eq!(plan["units"][0]["cold_pass"], "snapshot_live", "{plan}");
    assert_eq!(
        plan["units"][0]["stop_order"],
        serde_json::json!([]),
        "{plan}"
    );

    let events = support::EngineEvents::start(&env.prefix);
    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["cold_pass"], "snapshot_live", "{unit}");
    assert_eq!(unit["downtime_seconds"], 0.0, "{unit}");
    assert!(unit["complete"].as_bool().unwrap(), "{unit}");
    let last_before: u64 = std::fs::read_to_string(&before)
        .unwrap_or_else(|e| panic!("the post-stop hook did not run: {e}: {unit}"))
        .trim()
        .parse()
        .unwrap();
    assert!(last_before >= 20, "{last_before}");
    // The load went on through the backup.
    assert!(writer.try_wait().unwrap().is_none(), "the writer died");
    let after = committed();
    assert!(
        after > last_before,
        "no row was committed during the backup"
    );
    // A marker event after the backup: every event of the backup has been read once it is.
    let marker = format!("{}-marker", env.prefix);
    docker(&["create", "--name", &marker, IMAGE, "true"]);
    events.wait_for(&marker, "create", events.since());
    docker(&["rm", &marker]);
    let stopped: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| {
            e.name == name
                && ["kill", "die", "stop", "pause", "restart"].contains(&e.action.as_str())
        })
        .collect();
    assert!(stopped.is_empty(), "the database was stopped: {stopped:?}");
    assert!(snapshot_dir_entries(fs).is_empty());
    assert!(!env.path("state/fs-snapshots.json").exists());

    // The restored copy: crash recovery, then every row committed before the snapshot.
    docker(&["rm", "-f", &name]);
    assert!(writer.wait().is_ok());
    assert_restored_copy_recovers(&env, &name, &data, last_before);
    std::fs::remove_dir_all(&data).unwrap();
}

/// `snapshot-live` with mounts that no one snapshot holds (two subvolumes; a filesystem that
/// cannot snapshot): the unit is refused with the reason, and never stopped.
#[test]
fn snapshot_live_without_one_subvolume_is_refused() {
    if !support::docker_tests_enabled("snapshot_live_without_one_subvolume_is_refused") {
        return;
    }
    let fs = loopfs::btrfs();
    let env = Env::builder().init().build();
    let name = format!("{}-split", env.prefix);
    let one = fs.data.join(&name);
    let other = fs.mount.join(format!("{name}-sub"));
    std::fs::create_dir(&one).unwrap();
    support::run(
        std::process::Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(&other),
    );
    let plain = env.path("plain");
    std::fs::create_dir(&plain).unwrap();
    let start = |name: &str, binds: &[&Path]| {
        let mut args = vec![
            "run".to_owned(),
            "-d".into(),
            "--name".into(),
            name.into(),
            "--label".into(),
            "kopi-docka.policy=snapshot-live".into(),
        ];
        for (i, bind) in binds.iter().enumerate() {
            args.extend(["-v".into(), format!("{}:/m{i}", bind.display())]);
        }
        args.extend([IMAGE.into(), "sh".into(), "-c".into(), IDLE.into()]);
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    start(&name, &[&one, &other]);
    let plain_name = format!("{}-plainlive", env.prefix);
    start(&plain_name, &[&plain]);
    let started = (support::started_at(&name), support::started_at(&plain_name));
    for (unit, why) in [
        (&name, "different subvolumes"),
        (&plain_name, "an atomic snapshot needs btrfs"),
    ] {
        let out = env
            .cmd(&["backup", "--unit", unit, "--scope", "minimal", "--json"])
            .assert()
            .failure();
        let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        let unit = &report["units"][0];
        assert_eq!(unit["status"], "failed", "{unit}");
        let error = unit["errors"][0].as_str().unwrap_or_default();
        assert!(
            error.contains("snapshot-live needs one atomic btrfs snapshot")
                && error.contains(why)
                && error.contains("not touched"),
            "{unit}"
        );
    }
    assert_eq!(
        (support::started_at(&name), support::started_at(&plain_name)),
        started,
        "a container was restarted"
    );
    docker(&["rm", "-f", &name, &plain_name]);
    support::run(
        std::process::Command::new("btrfs")
            .args(["subvolume", "delete"])
            .arg(&other),
    );
    std::fs::remove_dir_all(&one).unwrap();
}
