//! `kopi-docka doctor`: a clear line per failed check, and a non-zero exit when the engine is
//! down, the password is wrong, or a unit is overdue.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use serde_json::Value;
use support::{Env, kopi_docka};

const NO_ENGINE: &str = "unix:///nonexistent/docker.sock";

fn line<'a>(stdout: &'a str, start: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting with `{start}` in:\n{stdout}"))
}

/// An installation with a repository and `extra` in its config.
fn installation(extra: &str) -> Env {
    Env::builder().extra(extra).init().build()
}

/// `doctor` with no engine at the address: (exit code, stdout).
fn doctor(env: &Env, args: &[&str]) -> (i32, String) {
    let mut full = vec!["doctor"];
    full.extend(args);
    let out = env
        .cmd(&full)
        .env("DOCKER_HOST", NO_ENGINE)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Writes a run record like `backup` does.
fn record(env: &Env, id: &str, started: jiff::Timestamp, units: &[(&str, &str)]) {
    let runs = env.path("state/runs");
    std::fs::create_dir_all(&runs).unwrap();
    let units: Vec<Value> = units
        .iter()
        .map(|(name, status)| {
            serde_json::json!({"name": name, "kind": "standalone", "status": status,
                "duration_seconds": 3.0, "downtime_seconds": 1.0, "snapshots": [],
                "errors": [], "warnings": []})
        })
        .collect();
    let doc = serde_json::json!({"run_id": id, "started_at": started.to_string(),
        "finished_at": started.to_string(), "host": "test", "units": units, "errors": []});
    std::fs::write(runs.join(format!("{id}.json")), doc.to_string()).unwrap();
}

#[test]
fn engine_down_fails_with_a_clear_line() {
    let env = installation("");
    let (code, stdout) = doctor(&env, &[]);
    assert_eq!(code, 1, "{stdout}");
    let engine = line(&stdout, "FAIL  engine:");
    assert!(
        engine.contains("cannot reach the container engine"),
        "{engine}"
    );
    assert!(engine.contains("/nonexistent/docker.sock"), "{engine}");
    // The other checks still ran.
    assert!(line(&stdout, "ok    repository:").contains("opens with the configured password"));
    assert!(stdout.contains("checks: "), "{stdout}");
}

#[test]
fn wrong_password_fails_with_a_clear_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = installation("");
    let password = env.path("password");
    std::fs::write(&password, "not-the-password\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, stdout) = doctor(&env, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "FAIL  repository:").contains("wrong password"),
        "{stdout}"
    );

    let (code, json) = doctor(&env, &["--json"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], false);
    let repo = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "repository")
        .unwrap();
    assert_eq!(repo["status"], "fail");
}

#[test]
fn overdue_unit_fails_and_thresholds_apply_per_unit() {
    let now = jiff::Timestamp::now();
    let hours = |h: i64| now - jiff::SignedDuration::from_hours(h);
    let env = installation("");
    record(
        &env,
        "r1",
        hours(72),
        &[("kdtest-old", "success"), ("kdtest-fresh", "success")],
    );
    record(
        &env,
        "r2",
        hours(1),
        &[("kdtest-old", "failed"), ("kdtest-fresh", "success")],
    );
    let (code, stdout) = doctor(&env, &[]);
    assert_eq!(code, 1, "{stdout}");
    let old = line(&stdout, "FAIL  freshness kdtest-old:");
    assert!(old.contains("OVERDUE: last successful backup"), "{old}");
    assert!(old.contains("(3d ago), threshold 26h"), "{old}");
    assert!(line(&stdout, "ok    freshness kdtest-fresh:").contains("(1h ago)"));

    // A per-unit threshold of 100 h makes the 72 h old backup fresh enough.
    let env = installation("[units.\"kdtest-old\"]\nmax-age-hours = 100\n");
    record(&env, "r1", hours(72), &[("kdtest-old", "success")]);
    let (_, stdout) = doctor(&env, &[]);
    assert!(
        line(&stdout, "ok    freshness kdtest-old:").contains("(3d ago)"),
        "{stdout}"
    );
}

#[test]
fn unusable_monitoring_settings_fail() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("ntfy.url");
    std::fs::write(&url_file, "ntfys://ntfy.example.com/backups\n").unwrap();
    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = installation(&format!(
        "[monitoring]\nhealthcheck-url-env = \"KD_TEST_UNSET_PING_URL\"\n\
         prometheus-textfile = \"/nonexistent/dir/kd.prom\"\n\
         [[notifications.targets]]\nurl-file = \"{}\"\n",
        url_file.display()
    ));
    let (code, stdout) = doctor(&env, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        line(&stdout, "FAIL  notifications:").contains("chmod 600"),
        "{stdout}"
    );
    assert!(line(&stdout, "FAIL  healthcheck:").contains("KD_TEST_UNSET_PING_URL"));
    assert!(line(&stdout, "FAIL  prometheus:").contains("/nonexistent/dir/kd.prom"));

    std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, stdout) = doctor(&env, &[]);
    assert!(
        line(&stdout, "ok    notifications:").contains("1 target(s)"),
        "{stdout}"
    );
}

#[test]
fn broken_config_is_a_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[repository]\nlocaton = \"/x\"\n").unwrap();
    let out = kopi_docka()
        .arg("--config")
        .arg(&config)
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        line(&stdout, "FAIL  config:").contains("locaton"),
        "{stdout}"
    );
}

/// With the local state gone, freshness comes from the run records in the repository.
#[test]
fn freshness_from_the_repository_when_the_local_state_is_gone() {
    if !support::docker_tests_enabled("freshness_from_the_repository_when_the_local_state_is_gone")
    {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = support::DockerResources::new(&prefix);
    let app = format!("{prefix}-app");
    support::docker(&[
        "run",
        "-d",
        "--name",
        &app,
        support::IMAGE,
        "sh",
        "-c",
        support::IDLE,
    ]);
    let env = installation("");
    env.cmd(&["backup", "--unit", &app]).assert().success();
    std::fs::remove_dir_all(env.path("state")).unwrap();
    let out = env.cmd(&["doctor"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line(&stdout, "ok    engine:").contains("version"),
        "{stdout}"
    );
    assert!(
        line(&stdout, &format!("ok    freshness {app}:")).contains("(0h ago)"),
        "{stdout}"
    );
}

/// restic with the test's repository and password (its own cache dir).
fn restic(env: &Env) -> std::process::Command {
    let mut cmd = std::process::Command::new("restic");
    cmd.env("RESTIC_REPOSITORY", env.repo())
        .env("RESTIC_PASSWORD_FILE", env.password_file())
        .env("RESTIC_CACHE_DIR", env.path("restic-cache"));
    cmd
}

/// A `restic backup` killed with SIGKILL leaves its lock file in the repository (a shared
/// repository's users meet this): `doctor` explains it (whose, stale, that kopi-docka does not
/// need it, `restic unlock`), kopi-docka's own commands go on, and after `restic unlock` the
/// line is gone.
#[test]
fn a_stale_restic_lock_in_the_repository_is_explained() {
    use std::process::Stdio;
    let env = installation("");
    // `--stdin` with a stdin nobody writes: restic takes its lock, then waits for data.
    let mut backup = restic(&env)
        .args(["backup", "--stdin", "--stdin-filename", "waiting.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let locks = env.repo().join("locks");
    // restic writes `<id>-tmp-<random>` and renames it to `<id>` (64 hex digits) once written.
    let written = || {
        std::fs::read_dir(&locks).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())
            })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    while !written() {
        assert!(
            std::time::Instant::now() < deadline,
            "restic wrote no lock file"
        );
        assert!(backup.try_wait().unwrap().is_none(), "restic ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = backup.id();
    backup.kill().unwrap();
    backup.wait().unwrap();

    let (_, stdout) = doctor(&env, &[]);
    let lock = line(&stdout, "WARN  repository locks:");
    for part in [
        "stale lock ",
        "shared (restic backup",
        &format!("@{} (pid {pid})", kopi_docka_core::repo::this_hostname()),
        "its process no longer runs on this host",
        "kopi-docka neither needs nor honours restic's lock files",
        "`restic unlock`",
    ] {
        assert!(lock.contains(part), "`{part}` missing: {lock}");
    }
    env.cmd(&["admin", "repo", "check"]).assert().success();

    let unlock = restic(&env).arg("unlock").output().unwrap();
    assert!(unlock.status.success(), "{unlock:?}");
    let (_, stdout) = doctor(&env, &[]);
    assert!(!stdout.contains("repository locks"), "{stdout}");
}
