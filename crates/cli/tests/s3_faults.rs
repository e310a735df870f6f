//! Faults against an S3 repository (moto behind a TCP forwarder that can die like a crashed
//! server while the data survives): unreachable before the run, killed during the cold pass,
//! wrong credentials. Never a unit left down, never a damaged repository, always a clear
//! message and a non-zero exit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use serde_json::Value;
use support::servers::{self, Proxy};
use support::{Env, docker, started_at};

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// An installation whose S3 repository is reached through `proxy`; the repository exists.
fn s3_installation(proxy: &Proxy, env_file: &str) -> Env {
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    servers::moto().create_bucket(&bucket);
    let env = Env::builder()
        .prefix(&prefix)
        .location(&format!("s3:{}/{bucket}/kd", proxy.url()))
        .extra("env-file = \"backend.env\"\n[backup]\nhealth-timeout-seconds = 30\n")
        .build();
    support::write_private(&env.path("backend.env"), env_file);
    env.cmd(&["admin", "repo", "init"]).assert().success();
    env
}

const KEYS: &str = "AWS_ACCESS_KEY_ID=kdtest-key\nAWS_SECRET_ACCESS_KEY=kdtest-secret\n";

fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn an_unreachable_server_fails_the_preflight_and_stops_nothing() {
    if !support::docker_tests_enabled("an_unreachable_server_fails_the_preflight_and_stops_nothing")
    {
        return;
    }
    let proxy = Proxy::start(servers::moto().port);
    let env = s3_installation(&proxy, KEYS);
    let name = format!("{}-app", env.prefix);
    support::idle_with_volume(&name);
    let started = started_at(&name);
    proxy.kill();

    let out = env.cmd(&["backup", "--unit", &name]).assert().failure();
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("127.0.0.1:{}", proxy.port)),
        "the message does not name the server: {stderr}"
    );
    assert!(running(&name), "{stderr}");
    assert_eq!(started_at(&name), started, "the container was restarted: {stderr}");
}

#[test]
fn a_server_killed_during_the_cold_pass_fails_the_run_and_the_next_run_succeeds() {
    if !support::docker_tests_enabled(
        "a_server_killed_during_the_cold_pass_fails_the_run_and_the_next_run_succeeds",
    ) {
        return;
    }
    let proxy = Proxy::start(servers::moto().port);
    let env = s3_installation(&proxy, KEYS);
    let name = format!("{}-busy", env.prefix);
    let data = support::idle_with_volume(&name);
    support::fill_random(&data.join("big.bin"), 96 << 20);

    let mut child = env.spawn_logged(&[
        "-v",
        "backup",
        "--unit",
        &name,
        "--no-warm-pass",
        "--scope",
        "minimal",
    ]);
    child.wait_for_line("the container was never stopped", |l| {
        l.contains(" stopped") && l.contains(&name)
    });
    child.wait_for_line("the cold pass never started", |l| {
        l.contains("starting to backup")
    });
    assert!(!running(&name), "{}", child.log());
    proxy.kill();
    let finished = child.finish();
    assert!(!finished.status.success(), "{}", finished.stderr);
    assert!(running(&name), "unit left down:\n{}", finished.stderr);

    proxy.restart();
    let report: Value = env.json(&["backup", "--unit", &name, "--json"]);
    assert_eq!(report["units"][0]["status"], "success", "{report:#}");
    let out = env.cmd(&["admin", "repo", "check"]).assert().success();
    assert!(running(&name), "{}", stderr_of(&out));
}

#[test]
fn wrong_rest_credentials_say_so() {
    if !support::docker_tests_enabled("wrong_rest_credentials_say_so") {
        return;
    }
    let server = servers::rest();
    let prefix = support::unique_prefix();
    let env = Env::builder()
        .prefix(&prefix)
        .location(&format!("rest:{}/{prefix}", server.url()))
        .extra("env-file = \"backend.env\"\n")
        .build();
    support::write_private(
        &env.path("backend.env"),
        &format!(
            "RESTIC_REST_USERNAME={}\nRESTIC_REST_PASSWORD=not-the-password\n",
            servers::REST_USER
        ),
    );
    let out = env.cmd(&["admin", "repo", "init"]).assert().failure();
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("401") || stderr.to_lowercase().contains("credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}
