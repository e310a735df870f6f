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
