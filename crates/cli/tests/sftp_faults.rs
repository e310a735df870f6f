//! Faults of an SFTP repository's server, each on a private OpenSSH server
//! ([`support::Sshd::start`]) that the test stops, kills or freezes: the unit never stays down,
//! the run fails clearly instead of hanging, the repository stays sound, and the next run works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::process::ExitStatusExt as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, LoggedChild, Signal, Sshd, docker};

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// An installation whose repository lives on `sshd` (created when `init`).
fn installation(sshd: &Sshd, init: bool) -> Env {
    let env = Env::builder().build();
    std::fs::write(
        env.config(),
        format!(
            "[backup]\nhealth-timeout-seconds = 30\n\n[repository]\nlocation = \"{}\"\n\
             password-file = \"{}\"\n{}",
            sshd.location(&env.repo()),
            env.password_file().display(),
            sshd.options_toml()
        ),
    )
    .unwrap();
    if init {
        env.cmd(&["admin", "repo", "init"]).assert().success();
    }
    env
}

/// A running container whose volume holds `mib` MiB of incompressible data.
fn busy_container(env: &Env, suffix: &str, mib: usize) -> String {
    let name = format!("{}-{suffix}", env.prefix);
    let data = support::idle_with_volume(&name);
    support::fill_random(&data.join("big.bin"), mib << 20);
    name
}

/// `backup --no-warm-pass` in the background, returned once its log proves the cold pass
/// began: the container was stopped, then the snapshot of its volume started.
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

/// `kopi-docka admin repo check` passes.
fn check_clean(env: &Env) {
    let out = env.cmd(&["admin", "repo", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "check: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unreachable_server_fails_the_preflight_and_stops_nothing() {
    if !support::docker_tests_enabled("an_unreachable_server_fails_the_preflight_and_stops_nothing")
    {
        return;
    }
    let sshd = Sshd::start();
    let env = installation(&sshd, true);
    let name = busy_container(&env, "web", 1);
    let started = support::started_at(&name);
    // The server goes away: nothing listens on its port any more.
    drop(sshd);

    let out = env.cmd(&["backup", "--unit", &name]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not reachable"), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("Nothing was stopped"), "{stderr}");
    assert!(running(&name));
    assert_eq!(
        support::started_at(&name),
        started,
        "the container was restarted"
    );
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn a_frozen_server_times_out_instead_of_hanging() {
    if !support::docker_tests_enabled("a_frozen_server_times_out_instead_of_hanging") {
        return;
    }
    let sshd = Sshd::start();
    let env = installation(&sshd, true);
    let name = busy_container(&env, "web", 1);
    let started = support::started_at(&name);
    // SIGSTOP: the kernel still accepts TCP connections on the port, nothing answers them.
    sshd.signal_all(Signal::STOP);

    let clock = Instant::now();
    // `timeout` is the test's guard against the bug it looks for; 124 would mean a hang.
    let out = env
        .cmd_via(&["timeout", "180"], &["backup", "--unit", &name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not reachable"), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(
        clock.elapsed() < Duration::from_mins(1),
        "took {:?} with connect-timeout = 5",
        clock.elapsed()
    );
    assert!(running(&name));
    assert_eq!(support::started_at(&name), started);
    sshd.signal_all(Signal::CONT);
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn a_server_killed_during_the_cold_pass_fails_the_run_and_restarts_the_unit() {
    if !support::docker_tests_enabled(
        "a_server_killed_during_the_cold_pass_fails_the_run_and_restarts_the_unit",
    ) {
        return;
    }
    let mut sshd = Sshd::start();
    let env = installation(&sshd, true);
    let name = busy_container(&env, "busy", 300);

    let child = cold_backup_in_progress(&env, &name);
    sshd.signal_all(Signal::KILL);
    let out = child.finish();
    assert_ne!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(running(&name), "the unit runs again: {}", out.stderr);
    assert!(!env.path("state/stopped-containers.json").exists());
    Sshd::assert_no_ssh_left(env.dir());

    // The server comes back (same port and keys): the next run succeeds, the repository is
    // sound.
    sshd.restart();
    let out = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["units"][0]["status"], "success", "{report:#}");
    check_clean(&env);
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn a_crashed_runs_ssh_leftovers_are_found_and_closed_by_the_next_run() {
    if !support::docker_tests_enabled(
        "a_crashed_runs_ssh_leftovers_are_found_and_closed_by_the_next_run",
    ) {
        return;
    }
    let sshd = Sshd::start();
    let env = installation(&sshd, true);
    let name = busy_container(&env, "killed", 300);

    let child = cold_backup_in_progress(&env, &name);
    child.signal(Signal::KILL);
    assert_eq!(child.finish().status.signal(), Some(9), "killed by SIGKILL");
    // The premise: a killed run leaves its ssh masters and its ssh directory behind.
    let left: Vec<_> = std::fs::read_dir(env.path("state/ssh"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let crashed_dir = left[0].clone();
    assert!(
        !Sshd::ssh_processes(&crashed_dir.display().to_string()).is_empty(),
        "no master left by the killed run"
    );

    let out = env
        .cmd(&["backup", "--unit", &name, "--scope", "minimal", "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["restarted_from_journal"], serde_json::json!([name]));
    assert!(running(&name));
    assert!(
        !crashed_dir.exists(),
        "the crashed run's ssh directory is still there"
    );
    Sshd::assert_no_ssh_left(env.dir());
    sshd.assert_no_ssh_to_me();
    check_clean(&env);
}
