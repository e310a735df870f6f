//! `kopi-docka history`: records written by different versions, filters, statistics, JSON,
//! and the repository's records once the local state is gone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use serde_json::Value;
use support::{DockerResources, Env, IDLE, IMAGE, docker};

fn ids(doc: &Value) -> Vec<&str> {
    doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect()
}

fn history(env: &Env, args: &[&str]) -> Value {
    let mut full = vec!["history", "--json"];
    full.extend(args);
    let out = env.cmd(&full).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn records_of_different_versions_filters_and_stats() {
    let env = Env::builder().init().build();
    let runs = env.path("state/runs");
    std::fs::create_dir_all(&runs).unwrap();
    // The current format (as `backup` writes it).
    std::fs::write(
        runs.join("new.json"),
        r#"{"run_id":"new","started_at":"2026-11-20T02:00:00Z","finished_at":"2026-11-20T02:01:00Z",
            "host":"nas","restarted_from_journal":[],"docker_config":null,
            "units":[{"name":"app","kind":"stack","backup_id":"x","status":"success",
              "downtime_seconds":4.5,"snapshots":[{"id":"a","type":"volume","volume":"v",
              "bytes_added":2048,"files_read":1}],"errors":[],"warnings":[],
              "coverage":{"backed_up":1,"skipped":0,"not_protected":0},"interrupted":false,
              "duration_seconds":60.0},
             {"name":"db","kind":"stack","status":"failed","errors":["disk full"]}],
            "errors":[]}"#,
    )
    .unwrap();
    // An older writer: a time with an offset, no run_id, no host, fewer unit fields.
    std::fs::write(
        runs.join("20261119T020000Z-0001.json"),
        r#"{"started_at":"2026-11-19T03:00:00+01:00","units":[{"name":"app","status":"success"}]}"#,
    )
    .unwrap();
    // An even older one: a time without an offset (UTC), and a field nobody knows.
    std::fs::write(
        runs.join("oldest.json"),
        r#"{"run_id":"oldest","started_at":"2026-11-01 02:00:00","legacy":true,
            "units":[{"name":"app","status":"failed","errors":["boom"]}]}"#,
    )
    .unwrap();
    std::fs::write(runs.join("broken.json"), "{").unwrap();

    let all = history(&env, &[]);
    assert_eq!(all["source"], "local");
    assert_eq!(ids(&all), ["new", "20261119T020000Z-0001", "oldest"]);
    assert_eq!(all["unreadable"].as_array().unwrap().len(), 1);
    assert_eq!(all["runs"][0]["started_at"], "2026-11-20T02:00:00Z");
    assert_eq!(all["runs"][1]["started_at"], "2026-11-19T02:00:00Z");
    assert_eq!(all["runs"][2]["started_at"], "2026-11-01T02:00:00Z");
    assert_eq!(all["runs"][0]["units"][0]["bytes_added"], 2048);

    // --since in every form compares as UTC instants.
    assert_eq!(
        ids(&history(&env, &["--since", "2026-11-19"])),
        ["new", "20261119T020000Z-0001"]
    );
    assert_eq!(
        ids(&history(&env, &["--since", "2026-11-19T03:00:00+01:00"])),
        ["new", "20261119T020000Z-0001"]
    );
    assert_eq!(
        ids(&history(&env, &["--since", "2026-11-19T02:00:01Z"])),
        ["new"]
    );
    assert_eq!(ids(&history(&env, &["--last", "1"])), ["new"]);
    assert_eq!(ids(&history(&env, &["--failed"])), ["new", "oldest"]);
    let app_failed = history(&env, &["--unit", "app", "--failed"]);
    assert_eq!(ids(&app_failed), ["oldest"]);
    assert_eq!(app_failed["runs"][0]["units"].as_array().unwrap().len(), 1);

    let stats = history(&env, &["--stats"]);
    let app = &stats["stats"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(
        (
            app["runs"].as_u64(),
            app["succeeded"].as_u64(),
            app["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(app["last_success"], "2026-11-20T02:00:00Z");

    // Text output, in the local time zone (UTC here, for a stable snapshot).
    let text = |args: &[&str]| {
        let out = env.cmd(args).env("TZ", "UTC").assert().success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    insta::assert_snapshot!("history_text", text(&["history"]));
    insta::assert_snapshot!("history_stats", text(&["history", "--stats"]));
    env.cmd(&["history", "--since", "last tuesday"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--since"));
}

/// After the state directory is lost, the run records in the repository still tell the story.
#[test]
fn history_from_the_repository_when_the_local_state_is_gone() {
    if !support::docker_tests_enabled("history_from_the_repository_when_the_local_state_is_gone") {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let app = format!("{prefix}-app");
    docker(&["run", "-d", "--name", &app, IMAGE, "sh", "-c", IDLE]);
    let env = Env::builder().init().build();
    env.cmd(&["backup", "--unit", &app]).assert().success();
    let local = history(&env, &[]);
    assert_eq!(local["source"], "local");
    assert_eq!(local["runs"].as_array().unwrap().len(), 1);

    std::fs::remove_dir_all(env.path("state")).unwrap();
    let remote = history(&env, &["--unit", &app]);
    assert_eq!(remote["source"], "repository");
    assert_eq!(ids(&remote), ids(&local));
    assert_eq!(
        remote["runs"][0]["started_at"],
        local["runs"][0]["started_at"]
    );
    assert_eq!(remote["runs"][0]["units"][0]["status"], "success");
    let since = history(&env, &["--since", "1h"]);
    assert_eq!(since["runs"].as_array().unwrap().len(), 1);
}

/// Two configurations with different repositories on one host share the state directory: the
/// run records of one repository are never shown (nor counted for freshness) for the other.
#[test]
fn run_records_stay_with_their_repository() {
    if !support::docker_tests_enabled("run_records_stay_with_their_repository") {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let app = format!("{prefix}-app");
    docker(&["run", "-d", "--name", &app, IMAGE, "sh", "-c", IDLE]);
    let env = Env::builder().init().build();
    env.cmd(&["backup", "--unit", &app]).assert().success();
    let other = env.path("other-repo");
    let other = other.to_str().unwrap();
    env.cmd(&["--repo", other, "admin", "repo", "init"])
        .assert()
        .success();

    let here = history(&env, &[]);
    assert_eq!(here["source"], "local");
    assert_eq!(here["runs"].as_array().unwrap().len(), 1);
    // The other repository has no run of this host: its history is its own (empty), not the
    // first repository's local records.
    let there = history(&env, &["--repo", other]);
    assert_eq!(
        there["runs"].as_array().unwrap().len(),
        0,
        "the other repository's history shows a run it never had: {there}"
    );
    let doctor = env
        .cmd(&["--repo", other, "doctor", "--json"])
        .output()
        .unwrap();
    let doctor: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let fresh = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap_or("").contains(&app))
        .map(|c| c["message"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        fresh.iter().all(|m| !m.contains("last successful backup")),
        "doctor with the other repository counts this repository's backup: {fresh:?}"
    );
}
