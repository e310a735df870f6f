//! `kopi-docka backup` against a real engine and a real repository: what is snapshotted, that
//! containers come back (in order, healthy), that stopped ones stay stopped, and that an
//! interrupted or killed run never leaves a container down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::tree::{self, CompareOptions};
use support::{EngineEvents, Env, IDLE, IMAGE, LoggedChild, Signal, docker, volume_mountpoint};

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, name])
}

fn running(name: &str) -> bool {
    inspect(name, "{{.State.Running}}") == "true"
}

/// An installation with a repository and the default config.
fn installation() -> Env {
    Env::builder().init().build()
}

#[test]
fn backup_snapshots_everything_and_restarts_in_order() {
    if !support::docker_tests_enabled("backup_snapshots_everything_and_restarts_in_order") {
        return;
    }
    let mut env = installation();
    let stack_dir = env.path("stack");
    std::fs::create_dir(&stack_dir).unwrap();
    support::copy_fixture("stack", &stack_dir);
    let stack = format!("{}-stack", env.prefix);
    env.resources.compose_up(&stack, &stack_dir);
    let (db, web) = (format!("{stack}_db_1"), format!("{stack}_web_1"));
    let idle = format!("{}-idle", env.prefix);
    docker(&[
        "create",
        "--name",
        &idle,
        "-v",
        &format!("{idle}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let db_started = inspect(&db, "{{.State.StartedAt}}");

    let out = env
        .cmd(&["backup", "--unit", &stack, "--unit", &idle, "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    check_no_secret_leaks(&env, out.get_output());
    let units = report["units"].as_array().unwrap();
    assert_eq!(units.len(), 2);
    let s = units.iter().find(|u| u["name"] == stack.as_str()).unwrap();
    assert_eq!(s["status"], "success", "{s}");
    assert!(s["downtime_seconds"].as_f64().unwrap() > 0.0);
    let types: Vec<&str> = s["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["recipe", "networks", "volume", "volume", "bind", "point"],
        "the point's marker comes last: {s}"
    );
    assert_eq!(s["complete"], true, "{s}");
    // The cold pass after the warm pass read no file again: nothing changed in between.
    for snap in &s["snapshots"].as_array().unwrap()[2..5] {
        assert_eq!(snap["files_read"], 0, "cold pass re-read files: {snap}");
    }
    let i = units.iter().find(|u| u["name"] == idle.as_str()).unwrap();
    assert_eq!(i["status"], "success");
    assert!(
        i["downtime_seconds"].is_null(),
        "nothing was running, nothing stopped"
    );

    // Running again, dependencies first, healthy; the stopped container stayed stopped.
    assert!(running(&db) && running(&web));
    assert_ne!(
        inspect(&db, "{{.State.StartedAt}}"),
        db_started,
        "db was stopped and started"
    );
    assert!(
        support::started_at(&db) < support::started_at(&web),
        "db starts before web"
    );
    assert_eq!(inspect(&db, "{{.State.Health.Status}}"), "healthy");
    assert_eq!(inspect(&idle, "{{.State.Status}}"), "created");
    assert!(
        !env.path("state/stopped-containers.json").exists(),
        "journal cleared"
    );
    check_run_report(&env);

    // Only cold snapshots remain, all of one backup id.
    let listed = env
        .cmd(&["snapshots", "--unit", &stack, "--json"])
        .assert()
        .success();
    let listed: Value = serde_json::from_slice(&listed.get_output().stdout).unwrap();
    let snaps = listed["snapshots"].as_array().unwrap();
    assert_eq!(
        snaps.len(),
        6,
        "warm-pass snapshots are forgotten (five parts and the marker): {listed}"
    );
    assert!(snaps.iter().all(|x| x["backup_id"] == s["backup_id"]));

    check_recipe_and_networks(&env, snaps, &stack, &web);

    // A second run reads only what changed (the bind and volumes are unchanged).
    let out = env
        .cmd(&["backup", "--unit", &stack, "--json", "--scope", "minimal"])
        .assert()
        .success();
    let again: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let read_files: u64 = again["units"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        // The marker is a new small file every time.
        .filter(|x| x["type"] != "point")
        .map(|x| x["files_read"].as_u64().unwrap())
        .sum();
    assert_eq!(read_files, 0, "{again}");
}

#[test]
fn unknown_unit_lists_the_known_ones() {
    if !support::docker_tests_enabled("unknown_unit_lists_the_known_ones") {
        return;
    }
    let env = installation();
    let name = format!("{}-solo", env.prefix);
    docker(&["create", "--name", &name, IMAGE, "true"]);
    env.cmd(&["backup", "--unit", "no-such-unit"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown unit `no-such-unit`"))
        .stderr(predicates::str::contains(format!("{name} (standalone)")));
}

/// `dry-run` stops and writes nothing, shows the plan and sizes, and estimates from history.
#[test]
fn dry_run_touches_nothing_and_estimates_from_history() {
    if !support::docker_tests_enabled("dry_run_touches_nothing_and_estimates_from_history") {
        return;
    }
    let env = installation();
    let name = format!("{}-plan", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{name}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        "head -c 3000000 /dev/zero > /data/f; trap 'exit 0' TERM; sleep 2147483647 & wait",
    ]);
    let data = volume_mountpoint(&format!("{name}-data"));
    wait_until("the container never wrote its data", || {
        std::fs::metadata(data.join("f")).map_or(0, |m| m.len()) >= 3_000_000
    });
    let started = inspect(&name, "{{.State.StartedAt}}");
    let out = env
        .cmd(&["dry-run", "--unit", &name, "--sizes"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains(&format!("stop order:  {name}")), "{text}");
    assert!(
        text.contains(&format!("volume:      {name}-data (2.9 MiB)")),
        "{text}"
    );
    assert!(text.contains("estimate:    none yet"), "{text}");
    assert_eq!(
        inspect(&name, "{{.State.StartedAt}}"),
        started,
        "nothing was stopped"
    );
    let listed = env.cmd(&["snapshots", "--json"]).assert().success();
    let listed: Value = serde_json::from_slice(&listed.get_output().stdout).unwrap();
    assert_eq!(
        listed["snapshots"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );

    env.cmd(&["backup", "--unit", &name]).assert().success();
    let out = env
        .cmd(&["backup", "--dry-run", "--unit", &name])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("estimate:    ~") && text.contains("down "),
        "{text}"
    );
    // The seed orchestrator's spelling: units as arguments, `all` for every unit.
    let named = env.json(&["backup", "--dry-run", "--json", &name]);
    let all = env.json(&["backup", "all", "--dry-run", "--json"]);
    for plan in [&named, &all] {
        assert!(
            plan["units"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == name.as_str()),
            "{plan:#}"
        );
    }
    assert_eq!(named["units"].as_array().unwrap().len(), 1, "{named:#}");
    env.cmd(&["backup", "all", &name])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`all` alone"));
}

/// SIGTERM while the unit is being started (its healthcheck passes only after 3 s): the start
/// and the health wait complete, then the run exits 130.
#[test]
fn sigterm_while_starting_still_starts_everything() {
    if !support::docker_tests_enabled("sigterm_while_starting_still_starts_everything") {
        return;
    }
    let env = installation();
    let name = format!("{}-slowstart", env.prefix);
    let command = "rm -f /tmp/ready; (sleep 3; touch /tmp/ready) & trap 'exit 0' TERM; sleep 2147483647 & wait";
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--health-cmd",
        "test -f /tmp/ready",
        "--health-interval",
        "1s",
        IMAGE,
        "sh",
        "-c",
        command,
    ]);
    let first_start = inspect(&name, "{{.State.StartedAt}}");
    let child = env.spawn(&[
        "backup",
        "--unit",
        &name,
        "--no-warm-pass",
        "--scope",
        "minimal",
    ]);
    // Stop and start can both fall between two polls: watch the start time instead.
    wait_until("never started again", || {
        inspect(&name, "{{.State.StartedAt}}") != first_start && running(&name)
    });
    assert_ne!(
        inspect(&name, "{{.State.Health.Status}}"),
        "healthy",
        "the signal must come during the health wait"
    );
    support::sigterm(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(running(&name));
    assert_eq!(
        inspect(&name, "{{.State.Health.Status}}"),
        "healthy",
        "kopi-docka waited for health"
    );
    assert!(!env.path("state/stopped-containers.json").exists());
}

/// A cold pass longer than `max-downtime-seconds` is abandoned: the unit runs again at once
/// (the downtime the report and the engine show is the budget, not the time the whole
/// snapshot would take) and the backup is reported failed.
#[test]
fn max_downtime_bounds_the_cold_pass() {
    if !support::docker_tests_enabled("max_downtime_bounds_the_cold_pass") {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nmax-downtime-seconds = 1\n")
        .init()
        .build();
    let name = busy_container(&env, "bounded", 600);
    let events = EngineEvents::start(&env.prefix);
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
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit}");
    assert!(
        unit["errors"].to_string().contains("max-downtime-seconds"),
        "{unit}"
    );
    // Abandoned, not finished: no volume snapshot is a restore point.
    assert_eq!(unit["snapshots"].as_array().unwrap().len(), 0, "{unit}");
    assert!(running(&name));
    // The budget was used up, and the unit was started right after it: stopping and starting
    // an idle container takes well under a second, even on a loaded machine; reading the
    // whole volume takes many.
    let downtime = unit["downtime_seconds"].as_f64().unwrap();
    assert!(
        (1.0..MAX_DOWNTIME_SLACK).contains(&downtime),
        "downtime {downtime}s for a 1s budget: {unit}"
    );
    let stopped = events.find(&name, "kill", events.since()).unwrap();
    let started = events.wait_for(&name, "start", stopped.time);
    let down = started.time.duration_since(stopped.time).unwrap();
    assert!(
        down.as_secs_f64() < MAX_DOWNTIME_SLACK,
        "the engine saw the unit down for {down:?}"
    );
}

/// The upper bound of a downtime with a 1 s budget on a loaded 2-core machine.
const MAX_DOWNTIME_SLACK: f64 = 4.0;

/// An abandoned cold pass (downtime budget exceeded, or SIGTERM) leaves nothing in the
/// repository that `restore` could take for a point of that run: the snapshot it was taking
/// must not be saved after the unit runs again.
#[test]
fn an_abandoned_cold_pass_leaves_no_snapshot() {
    if !support::docker_tests_enabled("an_abandoned_cold_pass_leaves_no_snapshot") {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nmax-downtime-seconds = 1\n")
        .init()
        .build();
    let name = busy_container(&env, "abandoned", 300);
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
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        report["units"][0]["errors"]
            .to_string()
            .contains("max-downtime-seconds")
    );
    assert_no_snapshot_of(&env, &name);

    // The same after SIGTERM during the cold pass, with a budget that is not the limit.
    env.write_config("config.toml", "");
    let child = cold_backup_in_progress(&env, &name);
    child.signal(Signal::TERM);
    let out = child.finish();
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert_no_snapshot_of(&env, &name);
}

/// The repository holds no snapshot of `unit` at all.
fn assert_no_snapshot_of(env: &Env, unit: &str) {
    let listed = env.json(&["snapshots", "--unit", unit, "--json"]);
    assert_eq!(
        listed["snapshots"].as_array().unwrap().len(),
        0,
        "a snapshot of an interrupted or abandoned cold pass is in the repository: {listed:#}"
    );
}

/// A run killed with SIGKILL after stopping containers leaves the journal; the next run (or
/// `admin restart-stopped`) starts them.
#[test]
fn journal_left_by_a_killed_run_restarts_containers() {
    if !support::docker_tests_enabled("journal_left_by_a_killed_run_restarts_containers") {
        return;
    }
    let env = installation();
    let name = format!("{}-victim", env.prefix);
    docker(&["run", "-d", "--name", &name, IMAGE, "sh", "-c", IDLE]);
    let id = inspect(&name, "{{.Id}}");
    std::fs::create_dir_all(env.path("state")).unwrap();
    std::fs::write(
        env.path("state/stopped-containers.json"),
        format!(
            r#"[{{"id":"{id}","name":"{name}","unit":"{name}","start_rank":0,"recorded_at":"2026-01-01T00:00:00Z"}}]"#
        ),
    )
    .unwrap();
    docker(&["stop", "-t", "1", &name]);
    assert!(!running(&name));
    env.cmd(&["admin", "restart-stopped"])
        .assert()
        .success()
        .stdout(predicates::str::contains(format!("started {name}")));
    assert!(running(&name));
    assert!(!env.path("state/stopped-containers.json").exists());
    env.cmd(&["admin", "restart-stopped"])
        .assert()
        .success()
        .stdout(predicates::str::contains("no container was left stopped"));
}

/// SIGTERM while the unit is down: the containers come back and the exit code says
/// "interrupted".
#[test]
fn sigterm_during_the_cold_pass_restarts_and_exits_130() {
    if !support::docker_tests_enabled("sigterm_during_the_cold_pass_restarts_and_exits_130") {
        return;
    }
    let env = installation();
    let name = busy_container(&env, "busy", 400);
    let started = support::started_at(&name);

    let child = cold_backup_in_progress(&env, &name);
    child.signal(Signal::TERM);
    let out = child.finish();
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    assert!(running(&name), "the container runs again after SIGTERM");
    assert!(
        support::started_at(&name) > started,
        "it was stopped and started again"
    );
    assert!(!env.path("state/stopped-containers.json").exists());
}

/// The stack's .env secret and the repository password are in the repository only: never in
/// the report, the log, the run records or the cache.
fn check_no_secret_leaks(env: &Env, output: &std::process::Output) {
    let password = std::fs::read_to_string(env.password_file()).unwrap();
    for secret in ["fixture-secret", password.trim()] {
        support::assert_not_leaked(secret, output, &[&env.path("state"), &env.path("cache")]);
    }
}

/// The run report is kept in the state dir and in the repository.
fn check_run_report(env: &Env) {
    let runs: Vec<_> = std::fs::read_dir(env.path("state/runs")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let all = env.cmd(&["snapshots", "--json"]).assert().success();
    let all: Value = serde_json::from_slice(&all.get_output().stdout).unwrap();
    let run_snaps = all["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["type"] == "run")
        .count();
    assert_eq!(run_snaps, 1, "{all}");
}

/// The recipe: compose layout, env files verbatim, inspect redacted; networks fully inspected.
fn check_recipe_and_networks(env: &Env, snaps: &[Value], stack: &str, web: &str) {
    let recipe = snaps.iter().find(|x| x["type"] == "recipe").unwrap();
    let root = env.restic_restore(recipe);
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert!(read("compose/docker-compose.yml").contains("services:"));
    assert!(
        read("compose/.env").contains("DB_PASSWORD=fixture-secret"),
        ".env is kept verbatim"
    );
    assert!(read("compose/web.env").contains("WEB_MODE=test"));
    let web_inspect = read(&format!("inspect/{web}.json"));
    assert!(
        web_inspect.contains("DB_PASSWORD=***REDACTED***"),
        "{web_inspect}"
    );
    assert!(web_inspect.contains("postgres://app:***REDACTED***@db:5432/app"));
    assert!(!web_inspect.contains("fixture-secret"));
    assert!(read("manifest.json").contains("\"start_order\""));
    let networks = snaps.iter().find(|x| x["type"] == "networks").unwrap();
    let nets = std::fs::read_to_string(env.restic_restore(networks).join("networks.json")).unwrap();
    assert!(nets.contains(&format!("{stack}_backend")) && nets.contains("\"Driver\""));
}

/// SIGTERM while containers are being stopped (a PID-1 `sleep` ignores TERM, so the stop takes
/// the whole stop timeout): the stop finishes, nothing is snapshotted, everything is started
/// again, exit 130.
#[test]
fn sigterm_while_stopping_restarts_and_exits_130() {
    if !support::docker_tests_enabled("sigterm_while_stopping_restarts_and_exits_130") {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nstop-timeout-seconds = 3\n")
        .init()
        .build();
    let name = format!("{}-stubborn", env.prefix);
    let volume = format!("{name}-data");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sleep",
        "2147483647",
    ]);
    std::fs::write(volume_mountpoint(&volume).join("rows"), "data").unwrap();
    let started = support::started_at(&name);
    let events = EngineEvents::start(&env.prefix);
    let child = env.spawn_logged(&[
        "backup",
        "--unit",
        &name,
        "--no-warm-pass",
        "--scope",
        "minimal",
    ]);
    // The engine sends the container SIGTERM first (the `kill` event); it ignores it, so the
    // stop lasts the whole 3 s timeout: the signal comes while it is stopping.
    let stopping = events.wait_for(&name, "kill", events.since());
    child.signal(Signal::TERM);
    let signalled = std::time::SystemTime::now();
    let out = child.finish();
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr);
    let died = events.wait_for(&name, "die", stopping.time);
    assert!(
        died.time > signalled,
        "the signal came after the stop ended"
    );
    assert!(running(&name), "the container runs again");
    assert!(
        support::started_at(&name) > started,
        "it was really stopped, and started again"
    );
    assert!(!env.path("state/stopped-containers.json").exists());
    // Interrupted before the cold pass: nothing of it is a point.
    assert_no_snapshot_of(&env, &name);
}

/// SIGKILL during the cold pass leaves the container down and the journal behind; the next
/// backup starts it first, then backs up normally.
#[test]
fn sigkill_during_the_cold_pass_is_repaired_by_the_next_run() {
    if !support::docker_tests_enabled("sigkill_during_the_cold_pass_is_repaired_by_the_next_run") {
        return;
    }
    let env = installation();
    let name = busy_container(&env, "killed", 400);
    let child = cold_backup_in_progress(&env, &name);
    child.signal(Signal::KILL);
    assert_eq!(child.finish().status.signal(), Some(9), "killed by SIGKILL");
    assert!(
        !running(&name),
        "nothing restarts a SIGKILLed run's containers by itself"
    );
    assert!(
        env.path("state/stopped-containers.json").exists(),
        "the journal survives the kill"
    );

    let out = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["restarted_from_journal"], serde_json::json!([name]));
    assert_eq!(report["units"][0]["status"], "success");
    assert!(running(&name));
    assert!(!env.path("state/stopped-containers.json").exists());
}

/// `chattr +i` on the repository's write paths until dropped: even root cannot write there.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn new(paths: Vec<PathBuf>) -> Self {
        for path in &paths {
            support::run(Command::new("chattr").arg("-R").arg("+i").arg(path));
        }
        Self(paths)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let ok = Command::new("chattr")
                .arg("-R")
                .arg("-i")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!(
                    "warning: could not clear the immutable flag on {}",
                    path.display()
                );
            }
        }
    }
}

/// A repository that cannot be written: the snapshots fail, the unit is started again, the
/// run reports failure.
#[test]
fn unwritable_repository_fails_the_unit_but_restarts_it() {
    if !support::docker_tests_enabled("unwritable_repository_fails_the_unit_but_restarts_it") {
        return;
    }
    let env = installation();
    let name = format!("{}-readonly", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{name}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let started = inspect(&name, "{{.State.StartedAt}}");
    let repo = env.path("repo");
    let frozen = Immutable::new(vec![
        repo.join("data"),
        repo.join("index"),
        repo.join("snapshots"),
    ]);
    let out = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .assert()
        .code(1);
    drop(frozen);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit}");
    assert!(!unit["errors"].as_array().unwrap().is_empty());
    assert!(
        unit["downtime_seconds"].as_f64().is_some(),
        "it was stopped for the cold pass"
    );
    assert!(running(&name), "and started again");
    assert_ne!(inspect(&name, "{{.State.StartedAt}}"), started);
    assert!(!env.path("state/stopped-containers.json").exists());
}

/// Two runs never overlap: a second one exits with code 11 and stops nothing; with `--wait` it
/// runs after the first.
#[test]
fn concurrent_backups_never_overlap() {
    if !support::docker_tests_enabled("concurrent_backups_never_overlap") {
        return;
    }
    let env = installation();
    let name = busy_container(&env, "slow", 300);
    let other = format!("{}-other", env.prefix);
    docker(&["run", "-d", "--name", &other, IMAGE, "sh", "-c", IDLE]);
    let events = EngineEvents::start(&env.prefix);

    let first = cold_backup_in_progress(&env, &name);
    env.cmd(&["backup", "--unit", &other])
        .assert()
        .code(11)
        .stderr(predicates::str::contains("another kopi-docka process"));
    assert_eq!(
        events.find(&other, "kill", events.since()),
        None,
        "the refused run stopped nothing"
    );
    assert!(
        !running(&name),
        "the refused run did not restart the first run's container"
    );
    let waiting = env.spawn_logged(&["backup", "--unit", &other, "--wait", "--json"]);
    let first = first.finish();
    assert_eq!(first.status.code(), Some(0), "{}", first.stderr);
    let waiting = waiting.finish();
    assert_eq!(waiting.status.code(), Some(0), "{}", waiting.stderr);
    assert!(running(&name) && running(&other));

    // It waited: the engine saw it stop `other` only after the first run had started `name`
    // again and had finished.
    let runs: Vec<Value> = std::fs::read_dir(env.path("state/runs"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let first_report = runs
        .iter()
        .find(|r| r["units"][0]["name"] == name.as_str())
        .unwrap();
    let first_end = support::parse_time(first_report["finished_at"].as_str().unwrap());
    let restarted = events.find(&name, "start", events.since()).unwrap();
    let stopped_other = events.find(&other, "kill", events.since()).unwrap();
    assert!(
        stopped_other.time > restarted.time && stopped_other.time > first_end,
        "the waiting run stopped {other} at {:?}, the first run started {name} again at {:?} \
         and finished at {first_end:?}",
        stopped_other.time,
        restarted.time
    );
    let second: Value = serde_json::from_str(&waiting.stdout).unwrap();
    assert_eq!(second["units"][0]["status"], "success", "{second}");
    assert!(
        waiting.stderr.contains("waiting for it"),
        "{}",
        waiting.stderr
    );
}

/// An executable hook script (mode 0755) in `dir`.
fn hook_script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// `[hooks]` with `record global` at every point; `good` adds `record unit` before its stop;
/// `bad` has a failing pre-backup hook.
fn hook_config(record: &str, fail: &str, good: &str, bad: &str) -> String {
    let points = [
        "pre-backup",
        "pre-stop",
        "post-stop",
        "pre-start",
        "post-start",
        "post-backup",
    ];
    let mut lines = vec!["[hooks]".to_owned()];
    lines.extend(
        points
            .iter()
            .map(|p| format!("{p} = [\"{record}\", \"global\"]")),
    );
    lines.push(format!(
        "[units.\"{good}\".hooks]\npre-stop = [\"{record}\", \"unit\"]"
    ));
    lines.push(format!(
        "[units.\"{bad}\".hooks]\npre-backup = [\"{fail}\"]"
    ));
    lines.join("\n") + "\n"
}

/// Hooks run at their points, global before unit ones, with the unit and backup id; a failing
/// pre-backup hook leaves the unit untouched.
#[test]
fn hooks_run_in_order_and_a_failing_pre_backup_hook_stops_nothing() {
    if !support::docker_tests_enabled(
        "hooks_run_in_order_and_a_failing_pre_backup_hook_stops_nothing",
    ) {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let log = scripts.path().join("hooks.log");
    let record = hook_script(
        scripts.path(),
        "record",
        &format!(
            "echo \"$KOPI_DOCKA_HOOK $1 $KOPI_DOCKA_UNIT $KOPI_DOCKA_STATUS\" >> {}",
            log.display()
        ),
    );
    let fail = hook_script(
        scripts.path(),
        "fail",
        "echo 'database dump failed' >&2; exit 3",
    );
    let prefix = support::unique_prefix();
    let (good, bad) = (format!("{prefix}-good"), format!("{prefix}-bad"));
    let extra = hook_config(&record, &fail, &good, &bad);
    let env = Env::builder().prefix(&prefix).extra(&extra).init().build();
    docker(&["run", "-d", "--name", &good, IMAGE, "sh", "-c", IDLE]);
    docker(&["run", "-d", "--name", &bad, IMAGE, "sh", "-c", IDLE]);
    let bad_started = inspect(&bad, "{{.State.StartedAt}}");

    let out = env
        .cmd(&["backup", "--unit", &good, "--unit", &bad, "--json"])
        .assert()
        .code(3);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = |name: &str| {
        report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(unit(&good)["status"], "success");
    assert_eq!(unit(&bad)["status"], "failed");
    let errors = unit(&bad)["errors"].to_string();
    assert!(
        errors.contains("database dump failed") && errors.contains("not touched"),
        "{errors}"
    );
    assert_eq!(
        inspect(&bad, "{{.State.StartedAt}}"),
        bad_started,
        "the failing unit was never stopped"
    );
    assert!(running(&good) && running(&bad));

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let good_lines: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(&good))
        .map(String::as_str)
        .collect();
    let expected = [
        format!("pre-backup global {good} "),
        format!("pre-stop global {good} "),
        format!("pre-stop unit {good} "),
        format!("post-stop global {good} "),
        format!("pre-start global {good} "),
        format!("post-start global {good} "),
        format!("post-backup global {good} success"),
    ];
    assert_eq!(
        good_lines,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let bad_lines: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(&bad))
        .map(String::as_str)
        .collect();
    let only = format!("pre-backup global {bad} ");
    assert_eq!(
        bad_lines,
        vec![only.as_str()],
        "the global pre-backup ran, the unit's failed, then nothing"
    );
}

/// The consistency promise: whatever changes after the warm pass and before the stop is in
/// the restore point, because the cold pass looks at every file again. A pre-stop hook (it runs
/// after the warm pass) makes every kind of change a "reuse the warm copy" or "trust the
/// mtime" shortcut would miss; the point is then restored and compared with the data as it was
/// while the unit was down.
#[test]
fn changes_between_the_warm_and_the_cold_pass_are_in_the_restore_point() {
    if !support::docker_tests_enabled(
        "changes_between_the_warm_and_the_cold_pass_are_in_the_restore_point",
    ) {
        return;
    }
    let env = installation();
    let name = format!("{}-changing", env.prefix);
    let volume = format!("{name}-data");
    let bind = env.path("bind");
    std::fs::create_dir(&bind).unwrap();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        "-v",
        &format!("{}:/bind", bind.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let data = volume_mountpoint(&volume);
    let scripts = tempfile::tempdir().unwrap();
    let hook = data_changed_after_the_warm_pass(&data, &bind, scripts.path());
    env.write_config(
        "config.toml",
        &format!("[units.\"{name}\".hooks]\npre-stop = [\"{hook}\"]\n"),
    );

    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    // The hook ran: the live data is the changed data.
    assert!(data.join("new.txt").exists() && !data.join("deleted.txt").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("set-back.txt")).unwrap(),
        "REWRITTEN CONTNT"
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
    let restored = target.join("volumes").join(&volume);
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(&restored.join("new.txt")), "new\n");
    assert!(
        !restored.join("deleted.txt").exists(),
        "a deleted file came back"
    );
    assert!(
        !restored.join("deleted-dir").exists(),
        "a deleted dir came back"
    );
    assert_eq!(read(&restored.join("same-second.txt")), "BBBBBBBB");
    assert_eq!(read(&restored.join("fresh.txt")), "WRITTEN NOW");
    assert_eq!(read(&restored.join("set-back.txt")), "REWRITTEN CONTNT");
    assert_eq!(read(&restored.join("kept.txt")), "unchanged");
    assert_eq!(read(&restored.join("many/1234")), "ROW 1234");
    assert_eq!(read(&restored.join("many/1233")), "row 1233");
    let restored_bind = target.join("binds").join(bind.strip_prefix("/").unwrap());
    assert_eq!(read(&restored_bind.join("conf.txt")), "version=2");
    // And nothing else differs: every file, mode, owner and mtime as the stopped unit had
    // them, the volume root's 999:999 0700 included.
    tree::assert_trees_equal(&data, &restored, &CompareOptions::default());
    tree::assert_trees_equal(&bind, &restored_bind, &CompareOptions::default());
    let cold_read: u64 = unit["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["files_read"].as_u64().unwrap())
        .sum();
    // new, same-second, fresh, set-back, many/1234, conf: read again in the cold pass; the
    // 2,000 unchanged small files are not.
    assert!(
        (6..100).contains(&cold_read),
        "the cold pass read {cold_read} files: {unit}"
    );
}

/// A created but never started container has nothing to stop, and its volumes are backed up
/// all the same: the point holds their data.
#[test]
fn volumes_of_a_never_started_container_are_in_the_point() {
    if !support::docker_tests_enabled("volumes_of_a_never_started_container_are_in_the_point") {
        return;
    }
    let env = installation();
    let name = format!("{}-created", env.prefix);
    let volume = format!("{name}-data");
    docker(&[
        "create",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let data = volume_mountpoint(&volume);
    std::fs::create_dir(data.join("db")).unwrap();
    std::fs::write(data.join("db/rows"), "rows of a stopped database").unwrap();
    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert!(
        unit["downtime_seconds"].is_null(),
        "nothing was stopped: {unit}"
    );
    assert_eq!(
        inspect(&name, "{{.State.Status}}"),
        "created",
        "and nothing started"
    );
    let parts: Vec<&Value> = unit["snapshots"].as_array().unwrap().iter().collect();
    assert!(
        parts
            .iter()
            .any(|s| s["type"] == "volume" && s["volume"] == volume.as_str()),
        "no snapshot of {volume}: {unit}"
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
    let restored = target.join("volumes").join(&volume);
    assert_eq!(
        std::fs::read_to_string(restored.join("db/rows")).unwrap(),
        "rows of a stopped database"
    );
    tree::assert_trees_equal(
        &data,
        &restored,
        &CompareOptions {
            ignore_root_metadata: true,
            ..CompareOptions::default()
        },
    );
}

/// The engine's events show the order: the dependent (web) is stopped completely before its
/// dependency (db) is asked to stop, and after the cold pass web is started only once db,
/// whose health check passes only 3 s after its start, is healthy.
#[test]
fn stack_stops_dependents_first_and_starts_them_after_a_slow_healthy_dependency() {
    if !support::docker_tests_enabled(
        "stack_stops_dependents_first_and_starts_them_after_a_slow_healthy_dependency",
    ) {
        return;
    }
    let mut env = Env::builder()
        .extra("[backup]\nhealth-timeout-seconds = 60\n")
        .init()
        .build();
    let (stack, _dir) = env.stack(
        "services:\n  db:\n    command: [\"sh\", \"-c\", \"rm -f /tmp/ready; (sleep 3; touch /tmp/ready) & \
         trap 'exit 0' TERM; sleep 2147483647 & wait\"]\n    healthcheck:\n      \
         test: [\"CMD-SHELL\", \"test -f /tmp/ready\"]\n      interval: 1s\n",
    );
    let (db, web) = (format!("{stack}_db_1"), format!("{stack}_web_1"));
    let events = EngineEvents::start(&env.prefix);
    let report = env.json(&["backup", "--unit", &stack, "--scope", "minimal", "--json"]);
    assert_eq!(report["units"][0]["status"], "success", "{report}");

    let since = events.since();
    let web_stopped = events.find(&web, "stop", since).unwrap();
    let db_stopping = events.find(&db, "kill", since).unwrap();
    assert!(
        web_stopped.time <= db_stopping.time,
        "db was asked to stop at {:?}, before web had stopped at {:?}",
        db_stopping.time,
        web_stopped.time
    );
    let db_started = events.find(&db, "start", db_stopping.time).unwrap();
    let db_healthy = events.wait_for(&db, "health_status: healthy", db_started.time);
    let web_started = events.find(&web, "start", web_stopped.time).unwrap();
    let healthy_after = db_healthy.time.duration_since(db_started.time).unwrap();
    assert!(
        healthy_after >= Duration::from_secs(2),
        "the health check was not slow: healthy {healthy_after:?} after the start"
    );
    assert!(
        web_started.time > db_healthy.time,
        "web started at {:?}, db was healthy only at {:?}",
        web_started.time,
        db_healthy.time
    );
    assert!(running(&db) && running(&web));
}

/// A container with `--restart always` is stopped the way the engine does not undo: it stays
/// down for the whole cold pass (the engine starts it only when kopi-docka does, after the
/// snapshot was saved), and its restart policy is unchanged afterwards.
#[test]
fn a_restart_policy_does_not_bring_the_container_back_during_the_cold_pass() {
    if !support::docker_tests_enabled(
        "a_restart_policy_does_not_bring_the_container_back_during_the_cold_pass",
    ) {
        return;
    }
    let env = installation();
    let name = format!("{}-always", env.prefix);
    let volume = format!("{name}-data");
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "always",
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    support::fill_random(&volume_mountpoint(&volume).join("big.bin"), 64 << 20);
    let events = EngineEvents::start(&env.prefix);
    let out = env
        .cmd(&[
            "backup",
            "--unit",
            &name,
            "--no-warm-pass",
            "--scope",
            "minimal",
        ])
        .assert()
        .success();
    let log = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let saved = log
        .lines()
        .find(|l| l.contains("snapshot saved") && l.contains(&volume))
        .unwrap_or_else(|| panic!("no snapshot of {volume} in the log:\n{log}"));
    let saved = support::parse_time(saved.split_whitespace().next().unwrap());
    let died = events.find(&name, "die", events.since()).unwrap();
    let starts: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.name == name && e.action == "start" && e.time > died.time)
        .collect();
    assert_eq!(starts.len(), 1, "started more than once: {starts:#?}");
    assert!(
        starts[0].time > saved,
        "the engine started it at {:?}, before the cold snapshot was saved at {saved:?}",
        starts[0].time
    );
    assert!(running(&name));
    assert_eq!(
        inspect(&name, "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
}

/// Files in `data` and `bind` before the backup, and a pre-stop hook (in `scripts`) that
/// changes them after the warm pass in every way a shortcut could miss; returns the hook.
fn data_changed_after_the_warm_pass(data: &Path, bind: &Path, scripts: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    // A database's volume root: its own owner and mode, which the point must keep.
    std::os::unix::fs::chown(data, Some(999), Some(999)).unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let write = |path: &Path, text: &str| std::fs::write(path, text).unwrap();
    write(&data.join("kept.txt"), "unchanged");
    write(&data.join("deleted.txt"), "deleted before the stop");
    std::fs::create_dir(data.join("deleted-dir")).unwrap();
    write(&data.join("deleted-dir/inner.txt"), "gone with its dir");
    // Rewritten in the same second as its previous write: only the fraction of the mtime moves.
    write(&data.join("same-second.txt"), "AAAAAAAA");
    set_mtime(&data.join("same-second.txt"), "@1700000000.100000000");
    // Rewritten right after the warm pass read it, no time set at all.
    write(&data.join("fresh.txt"), "written now");
    // Rewritten, then its mtime set back exactly: only the ctime tells.
    write(&data.join("set-back.txt"), "original content");
    set_mtime(&data.join("set-back.txt"), "@1577836800.123456789");
    write(&bind.join("conf.txt"), "version=1");
    // Many small files, one of them rewritten with the same size among the unchanged.
    std::fs::create_dir(data.join("many")).unwrap();
    for i in 0..2000 {
        write(&data.join(format!("many/{i:04}")), &format!("row {i:04}"));
    }

    let d = data.display();
    hook_script(
        scripts,
        "change-after-warm-pass",
        &format!(
            "set -e\n\
             echo new > {d}/new.txt\n\
             rm {d}/deleted.txt\n\
             rm -r {d}/deleted-dir\n\
             printf BBBBBBBB > {d}/same-second.txt\n\
             touch -d @1700000000.600000000 {d}/same-second.txt\n\
             printf 'WRITTEN NOW' > {d}/fresh.txt\n\
             printf 'REWRITTEN CONTNT' > {d}/set-back.txt\n\
             touch -d @1577836800.123456789 {d}/set-back.txt\n\
             printf 'ROW 1234' > {d}/many/1234\n\
             printf version=2 > {}/conf.txt\n",
            bind.display()
        ),
    )
}

/// Sets `path`'s mtime with `touch -d` (`@seconds.fraction`).
fn set_mtime(path: &Path, when: &str) {
    support::run(Command::new("touch").arg("-d").arg(when).arg(path));
}

/// Polls `done` every 10 ms for up to a minute; panics with `what` when it never holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `backup --unit name --no-warm-pass --scope minimal` in the background and returns
/// once its log proves the cold pass began: the container was stopped, and then the snapshot
/// of its volume started (the repository's own info line).
fn cold_backup_in_progress(env: &Env, name: &str) -> LoggedChild {
    let mut child = env.spawn_logged(&[
        "-v",
        "backup",
        "--unit",
        name,
        "--no-warm-pass",
        "--scope",
        "minimal",
    ]);
    child.wait_for_line("the container was never stopped", |l| {
        l.contains(" stopped") && l.contains(name)
    });
    child.wait_for_line("the cold pass never started", |l| {
        l.contains("starting to backup")
    });
    assert!(!running(name), "{}", child.log());
    child
}

/// A running container whose volume holds `mib` MiB of incompressible data, so that a cold pass
/// without warm pass takes a while.
fn busy_container(env: &Env, suffix: &str, mib: usize) -> String {
    let name = format!("{}-{suffix}", env.prefix);
    let data = support::idle_with_volume(&name);
    support::fill_random(&data.join("big.bin"), mib << 20);
    name
}

/// Labels are set by whoever runs a container. Crafted ones (a compose file that is
/// /etc/shadow, a FIFO, a working dir with `..`, a project name with `/` or a leading `-`,
/// a container that joins another stack with /etc as its working dir) each give a warning,
/// hang nothing, put nothing of /etc/shadow into the repository, and leave the other units
/// backed up.
#[test]
fn crafted_labels_are_refused_and_the_rest_is_backed_up() {
    if !support::docker_tests_enabled("crafted_labels_are_refused_and_the_rest_is_backed_up") {
        return;
    }
    let mut env = installation();
    let (stack, _dir) = env.stack("");
    let crafted = create_crafted(&env, &stack);
    let p = env.prefix.clone();
    let mut args = vec![
        "backup".to_owned(),
        "--json".to_owned(),
        format!("--unit={stack}"),
    ];
    for (project, _) in &crafted[1..] {
        args.push(format!("--unit={project}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // No hang: a FIFO read would block forever.
    let out = env
        .cmd(&args)
        .timeout(Duration::from_mins(2))
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    for (project, warning) in &crafted {
        assert!(
            stderr.contains(warning),
            "no warning `{warning}` for {project}: {stderr}"
        );
    }
    let unit = |name: &str| {
        report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("no unit {name} in {report:#}"))
            .clone()
    };
    // The victim stack and the units whose files were refused are backed up; the names that
    // cannot become paths are not, and say why.
    for name in [
        stack.clone(),
        format!("{p}-shadow"),
        format!("{p}-fifo"),
        format!("{p}-dotdot"),
    ] {
        let u = unit(&name);
        assert_eq!(u["complete"], true, "{u:#}");
    }
    for name in [format!("{p}/slash"), format!("-{p}-dash")] {
        let u = unit(&name);
        assert_eq!(u["status"], "failed", "{u:#}");
        assert!(u["snapshots"].as_array().unwrap().is_empty(), "{u:#}");
        assert!(
            u["errors"][0].as_str().unwrap().contains("refused"),
            "{u:#}"
        );
    }
    for name in [format!("{p}-fifo"), format!("{p}-shadow")] {
        let warnings = unit(&name)["warnings"].to_string();
        assert!(warnings.contains("refused"), "{name}: {warnings}");
    }
    // The victim's recipe holds its own compose file, read through its own labels.
    let listed = env.json(&["snapshots", "--unit", &stack, "--json"]);
    let recipe = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "recipe")
        .unwrap();
    let root = env.restic_restore(recipe);
    assert!(root.join("compose/docker-compose.yml").is_file());

    assert_shadow_not_in(&env);
}

/// Containers with crafted compose labels (their project names start with the test prefix):
/// (project, the warning it must give). The first joins `stack`.
fn create_crafted(env: &Env, stack: &str) -> Vec<(String, &'static str)> {
    let p = env.prefix.clone();
    let crafted_dir = env.path("crafted");
    std::fs::create_dir(&crafted_dir).unwrap();
    let fifo = crafted_dir.join("docker-compose.yml");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let dir = crafted_dir.to_str().unwrap();
    let dotdot = format!("{dir}/../..");
    let fifo_path = fifo.to_str().unwrap();
    // (container, project, working dir, config files, what the warning says)
    let crafted: [(String, String, &str, &str, &str); 6] = [
        (
            format!("{p}-a-joins"),
            stack.to_owned(),
            "/etc",
            "/etc/shadow",
            "disagree",
        ),
        (
            format!("{p}-shadow"),
            format!("{p}-shadow"),
            dir,
            "/etc/shadow",
            "outside the project's working directory",
        ),
        (
            format!("{p}-fifo"),
            format!("{p}-fifo"),
            dir,
            fifo_path,
            "not a regular file",
        ),
        (
            format!("{p}-dotdot"),
            format!("{p}-dotdot"),
            dotdot.as_str(),
            "docker-compose.yml",
            "contains `..`",
        ),
        (
            format!("{p}-slash"),
            format!("{p}/slash"),
            dir,
            "docker-compose.yml",
            "contains `/`",
        ),
        (
            format!("{p}-dash"),
            format!("-{p}-dash"),
            dir,
            "docker-compose.yml",
            "starts with `-`",
        ),
    ];
    for (container, project, working_dir, files, _) in &crafted {
        docker(&[
            "create",
            "--name",
            container,
            "--label",
            &format!("com.docker.compose.project={project}"),
            "--label",
            "com.docker.compose.service=app",
            "--label",
            &format!("com.docker.compose.project.working_dir={working_dir}"),
            "--label",
            &format!("com.docker.compose.project.config_files={files}"),
            IMAGE,
            "true",
        ]);
    }
    crafted
        .into_iter()
        .map(|(_, project, _, _, warning)| (project, warning))
        .collect()
}

/// Nothing of /etc/shadow in any snapshot of the repository (each restored with restic).
fn assert_shadow_not_in(env: &Env) {
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let needle = shadow.lines().next().unwrap();
    let snapshots: Value = serde_json::from_slice(
        &support::restic(&env.repo(), &env.password_file(), ["snapshots", "--json"]).stdout,
    )
    .unwrap();
    for s in snapshots.as_array().unwrap() {
        let restored =
            env.restic_restore(&serde_json::json!({"id": s["id"], "path": s["paths"][0]}));
        let found = support::files_containing(&restored, needle.as_bytes());
        assert!(
            found.is_empty(),
            "/etc/shadow is in the repository: {found:?}"
        );
    }
    assert!(!snapshots.as_array().unwrap().is_empty());
}

/// A PID 1 that ignores SIGTERM: every stop waits for the whole timeout, then the engine kills.
const IGNORES_TERM: &str = "trap '' TERM; while true; do sleep 1; done";

/// `stop-timeout-seconds` is a floor: a container's own longer stop timeout (compose
/// `stop_grace_period`, `--stop-timeout`) is kept, and a container without one gets the floor.
/// A container the engine had to kill is named in the report with what it cost and a hint.
#[test]
fn stop_timeout_is_a_floor_and_a_killed_container_is_named() {
    if !support::docker_tests_enabled("stop_timeout_is_a_floor_and_a_killed_container_is_named") {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nstop-timeout-seconds = 2\n")
        .init()
        .build();
    let (graceful, plain) = (
        format!("{}-grace8", env.prefix),
        format!("{}-nograce", env.prefix),
    );
    docker(&[
        "run",
        "-d",
        "--name",
        &graceful,
        "--stop-timeout",
        "8",
        IMAGE,
        "sh",
        "-c",
        IGNORES_TERM,
    ]);
    docker(&[
        "run",
        "-d",
        "--name",
        &plain,
        IMAGE,
        "sh",
        "-c",
        IGNORES_TERM,
    ]);
    let events = EngineEvents::start(&env.prefix);
    let out = env
        .cmd(&[
            "backup", "--unit", &graceful, "--unit", &plain, "--scope", "minimal", "--json",
        ])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();

    // The engine's own record: from the stop signal to the kill, each container got the
    // longer of its own timeout and the configured floor.
    for (name, timeout) in [(&graceful, 8_u32), (&plain, 2)] {
        events.assert_killed_after(&report, name, timeout);
        assert!(running(name), "{name} was not started again");
    }
}

/// A container that stops on its signal is not reported as killed, even with the timeout
/// floor far above the time it took.
#[test]
fn a_container_that_stops_on_its_signal_is_not_reported_killed() {
    if !support::docker_tests_enabled("a_container_that_stops_on_its_signal_is_not_reported_killed")
    {
        return;
    }
    let env = installation();
    let name = format!("{}-polite", env.prefix);
    docker(&["run", "-d", "--name", &name, IMAGE, "sh", "-c", IDLE]);
    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["killed"].as_array().unwrap().len(), 0, "{unit}");
}

/// A run past `run-time-limit-seconds` is abandoned like an interrupted one: the unit in
/// progress is started again, no complete point is claimed, and the run reports (and
/// notifies) the limit as a failure.
#[test]
fn a_run_past_its_time_limit_is_abandoned_cleanly() {
    if !support::docker_tests_enabled("a_run_past_its_time_limit_is_abandoned_cleanly") {
        return;
    }
    let env = installation();
    let name = format!("{}-slow", env.prefix);
    // The post-stop hook holds the unit down past the 3 s limit.
    let hook = hook_script(env.dir(), "hold", "sleep 6");
    env.write_config(
        "config.toml",
        &format!(
            "[backup]\nrun-time-limit-seconds = 3\n[units.\"{name}\".hooks]\npost-stop = [\"{hook}\"]\n"
        ),
    );
    let _mountpoint = support::idle_with_volume(&name);
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
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        report["errors"]
            .to_string()
            .contains("run-time-limit-seconds (3s)"),
        "{report}"
    );
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit}");
    assert_eq!(unit["complete"], false, "{unit}");
    assert!(running(&name), "the unit must run again");
    assert_no_snapshot_of(&env, &name);
}

/// Two runs with different state directories (root's and a docker-group user's, two
/// configurations) never stop the same container at once: the second finds it locked
/// host-wide and stops nothing.
#[test]
fn runs_with_different_state_dirs_never_stop_the_same_container_at_once() {
    if !support::docker_tests_enabled(
        "runs_with_different_state_dirs_never_stop_the_same_container_at_once",
    ) {
        return;
    }
    let env = installation();
    let name = format!("{}-shared", env.prefix);
    let hook = hook_script(env.dir(), "hold", "sleep 6");
    env.write_config(
        "config.toml",
        &format!("[units.\"{name}\".hooks]\npost-stop = [\"{hook}\"]\n"),
    );
    let _mountpoint = support::idle_with_volume(&name);
    let events = EngineEvents::start(&env.prefix);
    let first = env.spawn(&["backup", "--unit", &name, "--scope", "minimal"]);
    // The first run holds the unit down (its post-stop hook sleeps).
    events.wait_for(&name, "die", events.since());
    // Its host-wide lock file is there while it holds the lock (this proves the path is the
    // one kopi-docka uses), and gone after both runs (they do not pile up in /run/lock).
    let lock_file = container_lock_file(&name);
    assert!(
        lock_file.exists(),
        "{} while the run holds it",
        lock_file.display()
    );
    let second = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .env("KOPI_DOCKA_STATE_DIR", env.path("state-other"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&second.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&second.stderr)));
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit}");
    assert!(
        unit["errors"]
            .to_string()
            .contains("another kopi-docka run on this host"),
        "{unit}"
    );
    let output = first.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The unit went down once (the first run's stop), not twice.
    let kills = events
        .all()
        .iter()
        .filter(|e| e.name == name && e.action == "die")
        .count();
    assert_eq!(kills, 1, "{:#?}", events.all());
    assert!(running(&name));
    assert!(
        !lock_file.exists(),
        "the runs left their lock file {} behind",
        lock_file.display()
    );
}

/// The host-wide lock file of container `name` on the test engine (the default socket).
fn container_lock_file(name: &str) -> PathBuf {
    let id = docker(&["inspect", "--format", "{{.Id}}", name]);
    let endpoint = kopi_docka_core::config::DockerHost::Unix(
        kopi_docka_core::config::defaults::DOCKER_SOCKET.into(),
    );
    kopi_docka_core::lock::host::path(&endpoint, &id)
}

/// A local user in the engine socket's group (`docker`), removed on drop with its directory.
struct DockerGroupUser {
    name: String,
    uid: u32,
    dir: PathBuf,
}

impl DockerGroupUser {
    fn add(name: &str) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        // useradd names are at most 32 characters: kdtest-xxxxxxxx-u fits.
        let socket_group = docker_socket_group();
        support::run(Command::new("useradd").args([
            "-M",
            "-N",
            "-G",
            &socket_group,
            "-s",
            "/usr/sbin/nologin",
            name,
        ]));
        let id = |flag: &str| -> u32 {
            String::from_utf8_lossy(&support::run(Command::new("id").args([flag, name])).stdout)
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self {
            name: name.to_owned(),
            uid,
            dir,
        }
    }

    /// `kopi-docka <args>` as this user (with its supplementary groups), with its own config,
    /// repository, state and cache in its directory.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &self.name, "--regid"])
            .arg(
                String::from_utf8_lossy(
                    &support::run(Command::new("id").args(["-g", &self.name])).stdout,
                )
                .trim(),
            )
            .arg("--init-groups")
            .arg(assert_cmd::cargo::cargo_bin("kopi-docka"))
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .args(args)
            .env_remove("KOPI_DOCKA_CONFIG")
            .env_remove("DOCKER_HOST")
            .env_remove("KOPI_DOCKA_LOG")
            .env_remove("KOPI_DOCKA_DR_PASSPHRASE")
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", "/nonexistent/kopi-docka-test-config")
            .env("KOPI_DOCKA_STATE_DIR", self.dir.join("state"))
            .env("KOPI_DOCKA_CACHE_DIR", self.dir.join("cache"));
        cmd
    }

    /// A file in its directory, owned by it.
    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&path, Some(self.uid), None).unwrap();
        path
    }
}

impl Drop for DockerGroupUser {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: cannot remove {}: {error}", self.dir.display());
        }
        let out = Command::new("userdel").arg(&self.name).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: cannot remove user {}", self.name);
        }
    }
}

/// A child process that is killed (by its pid) and reaped if the test fails before it ends,
/// so the test user can be removed.
struct Reaped(Option<std::process::Child>);

impl Reaped {
    fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            if let Err(error) = child.kill() {
                eprintln!("warning: cannot kill {}: {error}", child.id());
            }
            if let Err(error) = child.wait() {
                eprintln!("warning: cannot reap {}: {error}", child.id());
            }
        }
    }
}

/// The group that owns the engine's socket (`docker`).
fn docker_socket_group() -> String {
    use std::os::unix::fs::MetadataExt as _;
    let gid = std::fs::metadata(kopi_docka_core::config::defaults::DOCKER_SOCKET)
        .unwrap()
        .gid();
    let out = support::run(Command::new("getent").args(["group", &gid.to_string()]));
    String::from_utf8_lossy(&out.stdout)
        .split(':')
        .next()
        .unwrap()
        .to_owned()
}

/// Issue 16.12, the docker-group side of the host lock: root's run and a docker-group user's
/// run (its own config, repository and state directory) never stop the same container at
/// once, whichever of them holds the lock (the other's unit fails, nothing stopped twice); the
/// lock file the user made is accepted by root (its owner may use the engine), and neither run
/// leaves its lock file behind.
#[test]
fn root_and_a_docker_group_user_never_stop_the_same_container_at_once() {
    if !support::docker_tests_enabled(
        "root_and_a_docker_group_user_never_stop_the_same_container_at_once",
    ) {
        return;
    }
    let env = installation();
    let user = DockerGroupUser::add(&format!("{}-u", env.prefix));
    // A bind the user can read (volumes under /var/lib/docker are root's only); the container
    // ignores SIGTERM, so each stop holds the lock for its 5 s timeout.
    let data = user.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(user.uid), None).unwrap();
    std::fs::write(data.join("rows"), "42").unwrap();
    let name = format!("{}-shared", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--stop-timeout",
        "5",
        "-v",
        &format!("{}:/data", data.display()),
        IMAGE,
        "sh",
        "-c",
        IGNORES_TERM,
    ]);
    let password = user.write("password", "kdtest-user-password\n", 0o600);
    user.write(
        "config.toml",
        &format!(
            "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n",
            user.dir.join("repo").display(),
            password.display()
        ),
        0o600,
    );
    let out = support::run(&mut user.cmd(&["admin", "repo", "init"]));
    assert!(out.status.success(), "{out:?}");
    let args = ["backup", "--unit", &name, "--no-warm-pass", "--json"];
    let refused = |out: &std::process::Output| {
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let unit = &report["units"][0];
        assert_eq!(unit["status"], "failed", "{unit}");
        assert!(
            unit["errors"]
                .to_string()
                .contains("another kopi-docka run on this host"),
            "{unit}"
        );
    };
    let events = EngineEvents::start(&env.prefix);
    let stopped_once_since = |since: std::time::SystemTime| {
        let dies = events
            .all()
            .iter()
            .filter(|e| e.name == name && e.action == "die" && e.time >= since)
            .count();
        assert_eq!(dies, 1, "{:#?}", events.all());
    };

    // The user's run holds the lock (stopping the container); root's is refused.
    let since = std::time::SystemTime::now();
    let holder = Reaped(Some(
        user.cmd(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    events.wait_for(&name, "kill", since);
    let lock_file = container_lock_file(&name);
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&lock_file).unwrap();
        assert_eq!(meta.uid(), user.uid, "the user's run made the lock file");
    }
    refused(&env.cmd(&args).output().unwrap());
    let out = holder.wait();
    assert!(out.status.success(), "{out:?}");
    stopped_once_since(since);
    assert!(running(&name));
    assert!(!lock_file.exists(), "the user's run left its lock file");

    // Root's run holds it; the user's is refused.
    let since = std::time::SystemTime::now();
    let holder = Reaped(Some(env.spawn(&args)));
    events.wait_for(&name, "kill", since);
    refused(&user.cmd(&args).output().unwrap());
    let out = holder.wait();
    assert!(out.status.success(), "{out:?}");
    stopped_once_since(since);
    assert!(running(&name));
    assert!(!lock_file.exists(), "root's run left its lock file");
}
