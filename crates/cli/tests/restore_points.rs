//! Restore-point integrity against a real engine and a real repository: a run that is killed,
//! interrupted or abandoned, or whose hooks fail, never leaves a point that `restore --latest`,
//! retention or `snapshots` take for a complete one; and what a run reports as added is what
//! the repository grew by.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, docker, volume_mountpoint};

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// A running container `<prefix>-<suffix>` whose volume holds `bytes` of incompressible data.
fn container_with_data(env: &Env, suffix: &str, bytes: usize) -> String {
    let name = format!("{}-{suffix}", env.prefix);
    let data = support::idle_with_volume(&name);
    support::fill_random(&data.join("data.bin"), bytes);
    name
}

/// An executable hook script (mode 0755) in `dir`.
fn hook_script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Polls `done` every 10 ms for up to a minute; panics with `what` when it never holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `snapshots --unit <unit> --json`: (restore points, single snapshots).
fn listing(env: &Env, unit: &str) -> (Vec<Value>, Vec<Value>) {
    let listed = env.json(&["snapshots", "--unit", unit, "--json"]);
    (
        listed["restore_points"].as_array().unwrap().clone(),
        listed["snapshots"].as_array().unwrap().clone(),
    )
}

/// Asserts that no point of `unit` is complete and that `restore --latest` refuses.
fn assert_no_complete_point(env: &Env, unit: &str) {
    let (points, _) = listing(env, unit);
    for point in &points {
        assert_eq!(point["complete"], false, "{point}");
    }
    env.cmd(&["restore", "--unit", unit, "--latest", "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("no complete restore point"));
}

/// Snapshots of `unit` of type `volume` that are not warm-pass copies.
fn cold_volume_snapshots(snapshots: &[Value]) -> Vec<&Value> {
    snapshots
        .iter()
        .filter(|s| s["type"] == "volume" && s["pass"] != "warm")
        .collect()
}

/// SIGKILL between the warm and the cold pass (held open by a slow pre-stop hook, which runs
/// only after the warm pass): the warm copies are no restore point, and retention removes them.
#[test]
fn sigkill_after_the_warm_pass_leaves_no_restore_point() {
    if !support::docker_tests_enabled("sigkill_after_the_warm_pass_leaves_no_restore_point") {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let warm_done = scripts.path().join("warm-pass-done");
    let hold = hook_script(
        scripts.path(),
        "hold",
        &format!("touch {}; sleep 20", warm_done.display()),
    );
    let prefix = support::unique_prefix();
    let name = format!("{prefix}-warm");
    let env = Env::builder()
        .prefix(&prefix)
        .extra(&format!(
            "[units.\"{name}\".hooks]\npre-stop = [\"{hold}\"]\n"
        ))
        .init()
        .build();
    assert_eq!(container_with_data(&env, "warm", 2 << 20), name);
    let started = Instant::now();
    let mut child = env.spawn(&["backup", "--unit", &name]);
    // The log line that proves the warm pass ended (the pre-stop hook, which runs after it and
    // sleeps, holds the window open while we kill).
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (logged, warm_logged) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stderr).map_while(Result::ok) {
            if line.contains("warm pass done") {
                // The test may have given up waiting; nothing to do then.
                let _ = logged.send(());
            }
        }
    });
    warm_logged
        .recv_timeout(Duration::from_mins(1))
        .expect("no `warm pass done` log line");
    wait_until("the pre-stop hook never ran", || {
        assert!(child.try_wait().unwrap().is_none(), "backup ended early");
        warm_done.exists()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running(&name), "nothing was stopped yet");

    assert_no_complete_point(&env, &name);
    let (points, snapshots) = listing(&env, &name);
    assert!(
        points.iter().all(|p| p["volumes"] == serde_json::json!({})),
        "a warm copy was grouped into a point: {points:?}"
    );
    assert!(
        snapshots
            .iter()
            .any(|s| s["type"] == "volume" && s["pass"] == "warm"),
        "the warm copy is in the repository, marked as such: {snapshots:?}"
    );
    assert!(
        cold_volume_snapshots(&snapshots).is_empty(),
        "{snapshots:?}"
    );

    // Retention removes the leftover warm copy.
    env.cmd(&["admin", "repo", "prune"]).assert().success();
    let (_, snapshots) = listing(&env, &name);
    assert!(
        snapshots.iter().all(|s| s["pass"] != "warm"),
        "{snapshots:?}"
    );
    eprintln!(
        "sigkill_after_the_warm_pass_leaves_no_restore_point: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Starts `backup --unit name --no-warm-pass --scope minimal` in the background and returns
/// once it has stopped the container, i.e. during its cold pass.
fn cold_backup_in_progress(env: &Env, name: &str) -> std::process::Child {
    let mut child = env.spawn(&[
        "backup",
        "--unit",
        name,
        "--no-warm-pass",
        "--scope",
        "minimal",
    ]);
    wait_until("the container was never stopped", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup ended before stopping anything"
        );
        !running(name)
    });
    child
}

/// SIGTERM during the cold pass: reading stops, the unit runs again, and no snapshot of the
/// abandoned pass appears, neither before nor after the restart.
#[test]
fn sigterm_during_the_cold_pass_saves_nothing() {
    if !support::docker_tests_enabled("sigterm_during_the_cold_pass_saves_nothing") {
        return;
    }
    let env = Env::builder().init().build();
    let name = container_with_data(&env, "term", 400 << 20);
    let child = cold_backup_in_progress(&env, &name);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    support::sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let after = signalled.elapsed();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(running(&name));
    let (points, snapshots) = listing(&env, &name);
    assert!(
        cold_volume_snapshots(&snapshots).is_empty(),
        "the abandoned cold pass saved a snapshot: {snapshots:?}"
    );
    assert!(points.is_empty(), "{points:?}");
    eprintln!(
        "sigterm_during_the_cold_pass_saves_nothing: exited {:.1}s after SIGTERM",
        after.as_secs_f64()
    );
}

/// A cold pass longer than `max-downtime-seconds` is abandoned: it stops reading, the unit runs
/// again, and no snapshot is saved after the restart.
#[test]
fn max_downtime_abandons_the_cold_pass_without_a_snapshot() {
    if !support::docker_tests_enabled("max_downtime_abandons_the_cold_pass_without_a_snapshot") {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nmax-downtime-seconds = 1\n")
        .init()
        .build();
    let name = container_with_data(&env, "bounded", 400 << 20);
    let started = Instant::now();
    let out = env
        .cmd(&[
            "backup",
            "--unit",
            &name,
            "--no-warm-pass",
            "--scope",
            "minimal",
            "--json",
        ])
        .assert()
        .code(1);
    let took = started.elapsed();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = &report["units"][0];
    assert!(
        unit["errors"].to_string().contains("max-downtime-seconds"),
        "{unit}"
    );
    assert!(running(&name));
    let (points, snapshots) = listing(&env, &name);
    assert!(
        cold_volume_snapshots(&snapshots).is_empty(),
        "the abandoned cold pass saved a snapshot after the restart: {snapshots:?}"
    );
    assert!(points.is_empty(), "{points:?}");
    eprintln!(
        "max_downtime_abandons_the_cold_pass_without_a_snapshot: {:.1}s",
        took.as_secs_f64()
    );
}

/// A config `name` for this installation (beside its own config, for the password file) with
/// a post-stop hook that fails.
fn failing_post_stop_config<'a>(env: &Env, scripts: &Path, name: &'a str, extra: &str) -> &'a str {
    let fail = hook_script(scripts, "fail", "echo 'cannot flush' >&2; exit 4");
    env.write_config(name, &format!("{extra}[hooks]\npost-stop = [\"{fail}\"]\n"));
    name
}

/// One complete point, then one whose post-stop hook failed (recipe and networks, no volume).
/// Returns (complete id, incomplete id).
fn complete_then_incomplete(env: &Env, name: &str, extra: &str) -> (String, String) {
    let scripts = tempfile::tempdir().unwrap();
    let good = env.json(&["backup", "--unit", name, "--json"]);
    assert_eq!(good["units"][0]["status"], "success", "{good}");
    let failing = failing_post_stop_config(env, scripts.path(), "failing.toml", extra);
    let out = env
        .cmd_with(failing, &["backup", "--unit", name, "--json"])
        .assert()
        .code(1);
    let bad: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        bad["units"][0]["errors"]
            .to_string()
            .contains("cannot flush"),
        "{bad}"
    );
    assert!(running(name));
    (
        good["units"][0]["backup_id"].as_str().unwrap().to_owned(),
        bad["units"][0]["backup_id"].as_str().unwrap().to_owned(),
    )
}

/// A failing hook leaves an incomplete point: `snapshots` says so, `--latest` skips it (and
/// says so), restoring it needs `--allow-incomplete`.
#[test]
fn a_failing_hook_leaves_an_incomplete_point_that_latest_skips() {
    if !support::docker_tests_enabled("a_failing_hook_leaves_an_incomplete_point_that_latest_skips")
    {
        return;
    }
    let started = Instant::now();
    let env = Env::builder().init().build();
    let name = container_with_data(&env, "hooked", 1 << 20);
    let (good, bad) = complete_then_incomplete(&env, &name, "");

    let (points, _) = listing(&env, &name);
    let point = |id: &str| {
        points
            .iter()
            .find(|p| p["backup_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(point(&good)["complete"], true, "{points:?}");
    assert_eq!(point(&bad)["complete"], false, "{points:?}");
    let text = env.cmd(&["snapshots", "--unit", &name]).assert().success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    let bad_line = text.lines().find(|l| l.contains(&bad)).unwrap();
    assert!(bad_line.to_lowercase().contains("incomplete"), "{text}");

    let out = env
        .cmd(&[
            "restore",
            "--unit",
            &name,
            "--latest",
            "--dry-run",
            "--json",
        ])
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["point"]["backup_id"], good.as_str(), "{plan}");
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("incomplete") && stderr.contains(&bad),
        "--latest says what it skipped: {stderr}"
    );

    env.cmd(&["restore", "--unit", &name, "--backup-id", &bad, "--dry-run"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--allow-incomplete"));
    let out = env
        .cmd(&[
            "restore",
            "--unit",
            &name,
            "--backup-id",
            &bad,
            "--allow-incomplete",
            "--dry-run",
            "--json",
        ])
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["point"]["backup_id"], bad.as_str(), "{plan}");
    eprintln!(
        "a_failing_hook_leaves_an_incomplete_point_that_latest_skips: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Retention counts whole points: with keep-last 1, a newer incomplete point neither pushes
/// the complete one out nor takes half of it (per snapshot path, the recipe of the incomplete
/// point would "replace" the complete point's recipe).
#[test]
fn retention_keeps_or_forgets_whole_points() {
    if !support::docker_tests_enabled("retention_keeps_or_forgets_whole_points") {
        return;
    }
    let started = Instant::now();
    let policy = "[retention]\nkeep-last = 1\nkeep-daily = 0\nkeep-weekly = 0\n\
                  keep-monthly = 0\nkeep-yearly = 0\n";
    let env = Env::builder().extra(policy).init().build();
    let name = container_with_data(&env, "kept", 1 << 20);
    let (good, bad) = complete_then_incomplete(&env, &name, policy);
    env.cmd(&["admin", "repo", "prune"]).assert().success();

    let (points, _) = listing(&env, &name);
    let point = |id: &str| points.iter().find(|p| p["backup_id"] == id).cloned();
    let kept = point(&good).expect("the complete point is kept");
    assert_eq!(kept["complete"], true, "{kept}");
    assert!(
        kept["recipe"].is_object() && kept["networks"].is_object(),
        "{kept}"
    );
    assert_eq!(kept["volumes"].as_object().unwrap().len(), 1, "{kept}");
    // The incomplete point is newer than the newest complete one: kept whole, for a look.
    let newer = point(&bad).expect("the newer incomplete point is kept");
    assert!(newer["recipe"].is_object(), "{newer}");

    // A third, complete backup: the first point goes, and the incomplete one with it (whole).
    env.json(&["backup", "--unit", &name, "--json"]);
    env.cmd(&["admin", "repo", "prune"]).assert().success();
    let (points, snapshots) = listing(&env, &name);
    assert_eq!(points.len(), 1, "{points:?}");
    assert_eq!(points[0]["complete"], true);
    assert!(
        snapshots
            .iter()
            .all(|s| s["backup_id"] == points[0]["backup_id"]),
        "no half point is left: {snapshots:?}"
    );
    eprintln!(
        "retention_keeps_or_forgets_whole_points: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Bytes of every file below `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// What a run reports as added is what the repository grew by, warm pass included.
#[test]
fn reported_bytes_added_match_repository_growth() {
    if !support::docker_tests_enabled("reported_bytes_added_match_repository_growth") {
        return;
    }
    let started = Instant::now();
    let env = Env::builder().init().build();
    let name = container_with_data(&env, "grow", 24 << 20);
    let before = dir_bytes(&env.repo());
    let report = env.json(&["backup", "--unit", &name, "--json"]);
    let growth = dir_bytes(&env.repo()) - before;
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    let reported: u64 = unit["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes_added"].as_u64().unwrap())
        .sum();
    // The repository also holds snapshot and index files and the run report: small.
    assert!(
        reported <= growth && growth - reported < 512 << 10,
        "reported {reported} bytes added, the repository grew by {growth}: {unit}"
    );
    assert_eq!(unit["bytes_added"], reported, "{unit}");
    eprintln!(
        "reported_bytes_added_match_repository_growth: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// `disaster-recovery import --restore-all` on a wiped host restores the newest complete point
/// of each unit and names the newer incomplete one it skipped.
#[test]
fn restore_all_skips_incomplete_points() {
    if !support::docker_tests_enabled("restore_all_skips_incomplete_points") {
        return;
    }
    let started = Instant::now();
    let passphrase = "kdtest-correct-horse-battery";
    let env = Env::builder()
        .config_at("etc/config.toml")
        .extra(
            "[disaster-recovery]\nbundle-dir = \"../bundles\"\npassphrase-file = \
             \"../dr-passphrase\"\nkeep = 1\n[backup]\nhealth-timeout-seconds = 30\n",
        )
        .init()
        .build();
    support::write_private(&env.path("dr-passphrase"), &format!("{passphrase}\n"));
    let name = container_with_data(&env, "dr", 64 << 10);
    let volume = format!("{name}-data");
    std::fs::write(volume_mountpoint(&volume).join("payload"), "complete").unwrap();
    let good = env.json(&["backup", "--unit", &name, "--json"]);
    let good = good["units"][0]["backup_id"].as_str().unwrap().to_owned();
    let bundles: Vec<PathBuf> = std::fs::read_dir(env.path("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let bundle = env.path("bundle.age");
    std::fs::copy(&bundles[0], &bundle).unwrap();

    std::fs::write(volume_mountpoint(&volume).join("payload"), "never saved").unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let failing = failing_post_stop_config(&env, scripts.path(), "etc/failing.toml", "");
    let out = env
        .cmd_with(failing, &["backup", "--unit", &name, "--json"])
        .assert()
        .code(1);
    let bad: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let bad = bad["units"][0]["backup_id"].as_str().unwrap().to_owned();

    // A new host.
    docker(&["rm", "-f", &name]);
    docker(&["volume", "rm", &volume]);
    for dir in ["etc", "state", "cache", "bundles"] {
        std::fs::remove_dir_all(env.path(dir)).unwrap();
    }
    let out = env
        .cmd(&[
            "disaster-recovery",
            "import",
            bundle.to_str().unwrap(),
            "--passphrase-file",
        ])
        .arg(env.path("dr-passphrase"))
        .args(["--restore-all", "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let restored = &report["restored"][0];
    assert_eq!(
        restored["outcome"]["backup_id"],
        good.as_str(),
        "{report:#}"
    );
    assert_eq!(
        restored["skipped_incomplete"],
        serde_json::json!([bad]),
        "{report:#}"
    );
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("incomplete"), "{stderr}");
    assert!(running(&name));
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&volume).join("payload")).unwrap(),
        "complete"
    );
    eprintln!(
        "restore_all_skips_incomplete_points: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// The point of `backup_id` in `unit`'s listing.
fn point_of(env: &Env, unit: &str, backup_id: &str) -> Value {
    let (points, _) = listing(env, unit);
    points
        .into_iter()
        .find(|p| p["backup_id"] == backup_id)
        .unwrap_or_else(|| panic!("no point {backup_id} of {unit}"))
}

/// The backup id of the only point of `unit` (the killed run's).
fn only_point(env: &Env, unit: &str) -> String {
    let (points, _) = listing(env, unit);
    assert_eq!(points.len(), 1, "{points:#?}");
    points[0]["backup_id"].as_str().unwrap().to_owned()
}

/// The next run after a crash: `restore --latest` picks its new complete point, not the
/// killed run's.
fn next_run_makes_the_latest_complete_point(env: &Env, unit: &str, killed: &str) -> Value {
    let report = env.json(&["backup", "--unit", unit, "--json"]);
    let u = &report["units"][0];
    assert_eq!(u["status"], "success", "{report:#}");
    assert_eq!(u["complete"], true, "{report:#}");
    let fresh = u["backup_id"].as_str().unwrap();
    assert_ne!(fresh, killed);
    let out = env
        .cmd(&["restore", "--unit", unit, "--latest", "--dry-run", "--json"])
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(plan["point"]["backup_id"], fresh, "{plan}");
    assert_eq!(point_of(env, unit, killed)["complete"], false);
    report
}

/// docs/backup.md, crash table, "while the unit is started": SIGKILL after the first of a
/// stack's two containers was started again (a debug-build failpoint holds the run there).
/// The repository holds every part but no marker: the point is incomplete and `--latest`
/// refuses it; the container not yet started stays in the journal and the next run starts it.
#[test]
fn sigkill_while_the_unit_is_started_leaves_an_incomplete_point_and_a_journal() {
    if !support::docker_tests_enabled(
        "sigkill_while_the_unit_is_started_leaves_an_incomplete_point_and_a_journal",
    ) {
        return;
    }
    let mut env = Env::builder()
        .extra("[backup]\nhealth-timeout-seconds = 30\n")
        .init()
        .build();
    let (stack, _dir) = env.stack("");
    let (db, web) = (format!("{stack}_db_1"), format!("{stack}_web_1"));
    let mut child = env.spawn_logged_with(
        &["backup", "--unit", &stack],
        &[("KOPI_DOCKA_FAILPOINT", &format!("hold-after-start:{db}"))],
    );
    child.wait_for_line("the first start", |l| {
        l.contains("failpoint: holding at hold-after-start")
    });
    child.signal(support::Signal::KILL);
    let killed = child.finish();
    assert!(!killed.status.success());
    let backup_id = only_point(&env, &stack);
    assert!(running(&db), "db was started before the kill");
    assert!(!running(&web), "web was not started yet");
    let journal = std::fs::read_to_string(env.path("state/stopped-containers.json")).unwrap();
    assert!(
        journal.contains(&web) && !journal.contains(&db),
        "{journal}"
    );

    // Every part, no marker.
    let point = point_of(&env, &stack, &backup_id);
    assert_eq!(point["complete"], false, "{point:#}");
    assert!(
        point["recipe"].is_object() && point["networks"].is_object(),
        "{point:#}"
    );
    assert_eq!(point["volumes"].as_object().unwrap().len(), 2, "{point:#}");
    assert_no_complete_point(&env, &stack);

    let report = next_run_makes_the_latest_complete_point(&env, &stack, &backup_id);
    assert_eq!(
        report["restarted_from_journal"],
        serde_json::json!([web]),
        "{report:#}"
    );
    assert!(running(&db) && running(&web));
    assert!(!env.path("state/stopped-containers.json").exists());
}

/// docs/backup.md, crash table, "after the unit was started, before the marker": SIGKILL
/// there (a debug-build failpoint) leaves every part and no marker: an incomplete point that
/// `snapshots` shows as such and `--latest` refuses; the containers run and nothing is left
/// in the journal.
#[test]
fn sigkill_after_the_start_before_the_marker_leaves_an_incomplete_point() {
    if !support::docker_tests_enabled(
        "sigkill_after_the_start_before_the_marker_leaves_an_incomplete_point",
    ) {
        return;
    }
    let env = Env::builder().init().build();
    let name = container_with_data(&env, "nomarker", 1 << 20);
    let mut child = env.spawn_logged_with(
        &["backup", "--unit", &name],
        &[(
            "KOPI_DOCKA_FAILPOINT",
            &format!("hold-before-marker:{name}"),
        )],
    );
    child.wait_for_line("the marker", |l| {
        l.contains("failpoint: holding at hold-before-marker")
    });
    child.signal(support::Signal::KILL);
    let killed = child.finish();
    assert!(!killed.status.success());
    let backup_id = only_point(&env, &name);
    assert!(running(&name), "started before the kill");
    assert!(!env.path("state/stopped-containers.json").exists());

    let point = point_of(&env, &name, &backup_id);
    assert_eq!(point["complete"], false, "{point:#}");
    assert_eq!(point["status"], "incomplete", "{point:#}");
    assert!(point["recipe"].is_object(), "{point:#}");
    assert_eq!(point["volumes"].as_object().unwrap().len(), 1, "{point:#}");
    assert_no_complete_point(&env, &name);
    let text = env.cmd(&["snapshots", "--unit", &name]).assert().success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(text.contains("INCOMPLETE"), "{text}");

    let report = next_run_makes_the_latest_complete_point(&env, &name, &backup_id);
    assert_eq!(report["restarted_from_journal"], serde_json::json!([]));
}
