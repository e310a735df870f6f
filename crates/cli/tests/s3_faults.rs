//! Faults against an S3 repository (moto behind a TCP forwarder that can die like a crashed
//! server while the data survives): unreachable before the run, killed during the cold pass,
//! wrong credentials (REST, and S3 on a moto that checks keys). Never a unit left down, never a damaged repository, always a clear
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
        stderr.contains(&format!(
            "cannot reach the repository at s3:http://127.0.0.1:{}",
            proxy.port
        )),
        "the message does not say what is wrong: {stderr}"
    );
    // One message, not the backend's log lines and backtraces.
    assert!(stderr.lines().count() <= 2, "{stderr}");
    assert!(running(&name), "{stderr}");
    assert_eq!(
        started_at(&name),
        started,
        "the container was restarted: {stderr}"
    );
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

/// An S3 server that stops answering during the cold pass (moto frozen with SIGSTOP: the
/// kernel still accepts connections, nothing answers) fails the run within the configured
/// timeout and retries instead of hanging with the unit down; the unit runs again, and once the
/// server answers again the next run succeeds and the repository is sound.
#[test]
fn a_frozen_s3_server_times_out_and_restarts_the_unit() {
    if !support::docker_tests_enabled("a_frozen_s3_server_times_out_and_restarts_the_unit") {
        return;
    }
    let server = servers::start_moto();
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    server.create_bucket(&bucket);
    let env = Env::builder()
        .prefix(&prefix)
        .location(&format!("s3:{}/{bucket}/kd", server.url()))
        .extra(
            "env-file = \"backend.env\"\n[repository.options]\ntimeout = \"2s\"\nretry = \"1\"\n\
             [backup]\nhealth-timeout-seconds = 30\n",
        )
        .build();
    support::write_private(&env.path("backend.env"), KEYS);
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let name = format!("{prefix}-frozen");
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
    let moto = rustix::process::Pid::from_raw(server.pid()).unwrap();
    rustix::process::kill_process(moto, rustix::process::Signal::STOP).unwrap();
    let clock = std::time::Instant::now();
    // Waits at most 2 minutes: a hang is the bug this looks for.
    child.wait_for_line("the unit was not started again (a hang?)", |l| {
        l.contains(" started") && l.contains(&name)
    });
    let finished = child.finish();
    let took = clock.elapsed();
    rustix::process::kill_process(moto, rustix::process::Signal::CONT).unwrap();
    assert!(!finished.status.success(), "{}", finished.stderr);
    assert!(
        took < std::time::Duration::from_mins(2),
        "took {took:?} with timeout = 2s, retry = 1:\n{}",
        finished.stderr
    );
    assert!(running(&name), "unit left down:\n{}", finished.stderr);

    let report: Value = env.json(&["backup", "--unit", &name, "--json"]);
    assert_eq!(report["units"][0]["status"], "success", "{report:#}");
    env.cmd(&["admin", "repo", "check"]).assert().success();
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

/// Wrong S3 keys (a wrong secret: the signature does not match; an unknown key id) on a
/// server that checks them: exit 13 with a message naming the location and the variables to
/// check, no secret echoed, nothing stopped, the repository untouched.
///
/// With the right keys this moto accepts opendal's requests for single objects but refuses its
/// signed listings (`GET /bucket?list-type=2&prefix=...`, which moto's own boto3 lists fine):
/// so the repository is created here with the right keys (`init` lists nothing) and proven
/// untouched by a second `init` that finds it, instead of by a backup.
#[test]
fn wrong_s3_credentials_say_so_and_stop_nothing() {
    if !support::docker_tests_enabled("wrong_s3_credentials_say_so_and_stop_nothing") {
        return;
    }
    let prefix = support::unique_prefix();
    let moto = servers::start_moto_with_auth(&format!("{prefix}-b"));
    let location = format!("s3:{}/{}/kd", moto.server.url(), moto.bucket);
    let env = Env::builder()
        .prefix(&prefix)
        .location(&location)
        .extra("env-file = \"backend.env\"\n[backup]\nhealth-timeout-seconds = 30\n")
        .build();
    let keys = |id: &str, secret: &str| {
        support::write_private(
            &env.path("backend.env"),
            &format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        );
    };
    keys(&moto.key_id, &moto.secret);
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let name = format!("{prefix}-app");
    support::idle_with_volume(&name);
    let started = started_at(&name);

    for (id, secret) in [
        (moto.key_id.as_str(), "kdtest-not-the-secret"),
        ("AKIAKDTESTUNKNOWN000", moto.secret.as_str()),
    ] {
        keys(id, secret);
        let out = env.cmd(&["backup", "--unit", &name]).assert().code(13);
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains(&format!(
                "the server of the repository at {location} refused the credentials"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("AWS_SECRET_ACCESS_KEY"), "{stderr}");
        assert!(
            !stderr.contains(secret),
            "the secret is in the message: {stderr}"
        );
        assert!(running(&name), "{stderr}");
        assert_eq!(
            started_at(&name),
            started,
            "the container was restarted: {stderr}"
        );
        env.cmd(&["admin", "repo", "status"]).assert().code(13);
    }

    // The right keys find the repository's config where `init` put it.
    keys(&moto.key_id, &moto.secret);
    let out = env.cmd(&["admin", "repo", "init"]).assert().failure();
    assert!(
        stderr_of(&out).contains(&format!("a repository already exists at {location}")),
        "{}",
        stderr_of(&out)
    );
}

/// The keys of the objects under `prefix` in `bucket` (moto's `ListObjectsV2`, unsigned).
fn objects(bucket: &str, prefix: &str) -> Vec<String> {
    let (status, body) = servers::http(
        servers::moto().port,
        "GET",
        &format!("/{bucket}?list-type=2&max-keys=10000&prefix={prefix}"),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    body.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(key, _)| key.to_owned()))
        .collect()
}

/// Two hosts (two configs with different host names) back up to one S3 repository; one
/// host's prune deletes no pack at once (another host's running backup may rely on it), and
/// the other host restores the first one's unit with `--from-host`.
#[test]
fn two_hosts_share_one_s3_repository() {
    if !support::docker_tests_enabled("two_hosts_share_one_s3_repository") {
        return;
    }
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    let server = servers::moto();
    server.create_bucket(&bucket);
    let host = |name: &str| {
        format!(
            "hostname = \"{name}\"\nenv-file = \"backend.env\"\n[backup]\n\
             health-timeout-seconds = 30\n[retention]\nkeep-last = 1\nkeep-daily = 0\n\
             keep-weekly = 0\nkeep-monthly = 0\nkeep-yearly = 0\n"
        )
    };
    let env = Env::builder()
        .prefix(&prefix)
        .location(&format!("s3:{}/{bucket}/shared", server.url()))
        .extra(&host("kdtest-host-a"))
        .build();
    env.write_config("b.toml", &host("kdtest-host-b"));
    support::write_private(&env.path("backend.env"), KEYS);
    env.cmd(&["admin", "repo", "init"]).assert().success();

    let a_unit = format!("{prefix}-a");
    let a_data = support::idle_with_volume(&a_unit);
    let b_unit = format!("{prefix}-b");
    let b_data = support::idle_with_volume(&b_unit);
    support::fill_random(&a_data.join("old.bin"), 4 << 20);
    std::fs::write(b_data.join("b.txt"), "host b").unwrap();
    env.cmd(&["backup", "--unit", &a_unit]).assert().success();
    env.cmd_with("b.toml", &["backup", "--unit", &b_unit])
        .assert()
        .success();
    // Host a's old data becomes unreferenced once its older point is forgotten.
    std::fs::remove_file(a_data.join("old.bin")).unwrap();
    std::fs::write(a_data.join("a.txt"), "host a, second point").unwrap();
    env.cmd(&["backup", "--unit", &a_unit]).assert().success();

    let before = objects(&bucket, "shared/data/");
    let pruned = env.json(&["admin", "repo", "prune", "--json"]);
    assert!(
        pruned["forget"]["removed"].as_u64().unwrap() > 0,
        "{pruned:#}"
    );
    assert_eq!(pruned["prune"]["packs_removed"], 0, "{pruned:#}");
    let after = objects(&bucket, "shared/data/");
    for key in &before {
        assert!(
            after.contains(key),
            "pack {key} deleted at once: {pruned:#}"
        );
    }
    env.cmd(&["admin", "repo", "check"]).assert().success();

    // Host b brings back host a's unit.
    docker(&["rm", "-f", &a_unit]);
    docker(&["volume", "rm", &format!("{a_unit}-data")]);
    let outcome: Value = serde_json::from_slice(
        &env.cmd_with(
            "b.toml",
            &[
                "restore",
                "--unit",
                &a_unit,
                "--from-host",
                "kdtest-host-a",
                "--latest",
                "--yes",
                "--json",
            ],
        )
        .assert()
        .success()
        .get_output()
        .stdout,
    )
    .unwrap();
    assert_eq!(outcome["host"], "kdtest-host-a", "{outcome:#}");
    assert!(running(&a_unit));
    assert_eq!(
        std::fs::read_to_string(
            support::volume_mountpoint(&format!("{a_unit}-data")).join("a.txt")
        )
        .unwrap(),
        "host a, second point"
    );
}

/// `doctor` fails (exit 1) on a credentials file others may read, saying the `chmod`, and on
/// an S3 server it cannot reach, naming it.
#[test]
fn doctor_checks_credentials_files_and_reachability() {
    if !support::docker_tests_enabled("doctor_checks_credentials_files_and_reachability") {
        return;
    }
    let proxy = Proxy::start(servers::moto().port);
    let env = s3_installation(&proxy, KEYS);
    let repository_line = || {
        let out = env.cmd(&["doctor"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout
            .lines()
            .find(|l| l.contains("repository:"))
            .unwrap_or_else(|| panic!("no repository check: {stdout}"))
            .to_owned();
        (out.status.code(), line)
    };
    let (_, line) = repository_line();
    assert!(line.starts_with("ok    repository:"), "{line}");

    std::fs::set_permissions(
        env.path("backend.env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (code, line) = repository_line();
    assert_eq!(code, Some(1), "{line}");
    assert!(line.starts_with("FAIL  repository:"), "{line}");
    assert!(
        line.contains(&format!("chmod 600 {}", env.path("backend.env").display())),
        "{line}"
    );
    std::fs::set_permissions(
        env.path("backend.env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    proxy.kill();
    let (code, line) = repository_line();
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.contains(&format!(
            "cannot reach the repository at s3:{}",
            proxy.url()
        )),
        "{line}"
    );
}
