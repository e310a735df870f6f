//! Remote repositories against real servers on loopback (crates/testkit/src/servers): for
//! each backend, `admin repo init`, a backup of a real compose stack, a restore after
//! `down -v` compared tree by tree, and `disaster-recovery import --restore-all` on a wiped
//! host; restic 0.14 lists and checks the same repository where it can reach the backend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::servers::{self, Server};
use support::tree::{self, CompareOptions};
use support::{Env, docker, volume_mountpoint};

const PASSPHRASE: &str = "kdtest-remote-dr-passphrase";
const S3_KEY: &str = "kdtest-access-key";
const S3_SECRET: &str = "kdtest-secret-key";

/// A remote installation: `location`, the credentials env file (0600) when given, `options`
/// as `[repository.options]`, a DR passphrase file; no repository yet.
fn remote_env(prefix: &str, location: &str, env_file: Option<&str>, options: &str) -> Env {
    let mut repository = String::new();
    if env_file.is_some() {
        repository.push_str("env-file = \"backend.env\"\n");
    }
    if !options.is_empty() {
        repository.push_str("[repository.options]\n");
        repository.push_str(options);
    }
    let env = Env::builder()
        .prefix(prefix)
        .config_at("etc/config.toml")
        .location(location)
        .extra(&format!(
            "{repository}\n[backup]\nhealth-timeout-seconds = 30\n"
        ))
        .build();
    if let Some(text) = env_file {
        support::write_private(&env.path("etc/backend.env"), text);
    }
    support::write_private(&env.path("dr-passphrase"), &format!("{PASSPHRASE}\n"));
    env
}

/// `admin repo init`, which must succeed without any warning on stderr.
fn init(env: &Env) {
    let out = env.cmd(&["admin", "repo", "init"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "init printed warnings:\n{stderr}"
    );
}

/// The whole round trip for one backend: back up the stack, restore it after `down -v` and
/// compare, then wipe the host and bring it back from the DR bundle. Returns the stack name.
fn round_trip(env: &mut Env) -> String {
    init(env);
    let (stack, dir) = env.stack("");
    let db_volume = format!("{stack}_db-data");
    let rich = volume_mountpoint(&db_volume).join("rich");
    std::fs::create_dir(&rich).unwrap();
    tree::build_rich_tree(&rich);
    std::fs::write(dir.join("html/index.html"), "<h1>remote</h1>").unwrap();

    env.cmd(&["backup", "--unit", &stack]).assert().success();
    let bundle = env.path("bundle.age");
    env.cmd(&[
        "dr",
        "export",
        bundle.to_str().unwrap(),
        "--passphrase-file",
    ])
    .arg(env.path("dr-passphrase"))
    .assert()
    .success();

    // Reference copies in a volume of their own (a rename cannot leave /var/lib/docker).
    let reference_volume = format!("{}-reference", env.prefix);
    docker(&["volume", "create", &reference_volume]);
    let reference = volume_mountpoint(&reference_volume);
    copy_tree(&rich, &reference.join("rich"));
    copy_tree(&dir.join("html"), &env.path("reference-html"));

    down_v(&stack, &dir);
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_stack_back(&stack, &dir, &reference, &env.path("reference-html"));

    // A wiped host: no containers, volumes, project files, config, state or cache.
    down_v(&stack, &dir);
    for gone in ["etc", "state", "cache", "stack"] {
        std::fs::remove_dir_all(env.path(gone)).unwrap();
    }
    let out = env
        .cmd(&[
            "disaster-recovery",
            "import",
            bundle.to_str().unwrap(),
            "--restore-all",
            "--json",
            "--passphrase-file",
        ])
        .arg(env.path("dr-passphrase"))
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let restored = report["restored"].as_array().unwrap();
    assert_eq!(restored.len(), 1, "{report:#}");
    assert_eq!(
        restored[0]["outcome"]["errors"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert_stack_back(&stack, &dir, &reference, &env.path("reference-html"));
    // The installed config (credentials included) works for the next backup.
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    stack
}

fn down_v(stack: &str, dir: &Path) {
    support::run(
        Command::new("docker-compose")
            .args(["-p", stack, "down", "-v", "--timeout", "1"])
            .current_dir(dir),
    );
}

fn assert_stack_back(stack: &str, dir: &Path, reference: &Path, reference_html: &Path) {
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        &format!("{stack}_db_1"),
    ]);
    assert_eq!(state, "healthy");
    tree::assert_trees_equal(
        &reference.join("rich"),
        &volume_mountpoint(&format!("{stack}_db-data")).join("rich"),
        &CompareOptions::default(),
    );
    tree::assert_trees_equal(
        reference_html,
        &dir.join("html"),
        &CompareOptions::default(),
    );
}

/// `cp -a` (keeps owners, modes, times, links, special files).
fn copy_tree(from: &Path, to: &Path) {
    support::run(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// restic 0.14 lists the snapshots kopi-docka wrote and checks the repository (after
/// [`round_trip`]: the password file is the one the DR import installed).
fn restic_reads(env: &Env, repository: &str, vars: &[(&str, &str)], stack: &str) {
    let restic = |args: &[&str]| {
        support::run(
            Command::new("restic")
                .args(["--no-cache", "-r", repository, "--password-file"])
                .arg(env.path("etc/repository.password"))
                .args(args)
                .envs(vars.iter().copied()),
        )
    };
    let listed: Value = serde_json::from_slice(&restic(&["snapshots", "--json"]).stdout).unwrap();
    let tagged = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["tags"].to_string().contains(stack))
        .count();
    assert!(
        tagged >= 2,
        "restic lists {tagged} snapshots of {stack}: {listed:#}"
    );
    restic(&["check", "--read-data"]);
}

fn s3_env_file() -> String {
    format!("AWS_ACCESS_KEY_ID={S3_KEY}\nAWS_SECRET_ACCESS_KEY={S3_SECRET}\n")
}

#[test]
fn s3_round_trip_dr_and_restic() {
    if !support::docker_tests_enabled("s3_round_trip_dr_and_restic") {
        return;
    }
    let server = servers::moto();
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    server.create_bucket(&bucket);
    let location = format!("s3:{}/{bucket}/host1", server.url());
    let mut env = remote_env(&prefix, &location, Some(&s3_env_file()), "");
    let stack = round_trip(&mut env);
    restic_reads(
        &env,
        &location,
        &[
            ("AWS_ACCESS_KEY_ID", S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ],
        &stack,
    );
}

#[test]
fn b2_through_its_s3_api_round_trip() {
    if !support::docker_tests_enabled("b2_through_its_s3_api_round_trip") {
        return;
    }
    let server = servers::moto();
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    server.create_bucket(&bucket);
    let mut env = remote_env(
        &prefix,
        &format!("b2:{bucket}:host1"),
        Some("B2_ACCOUNT_ID=kdtest-key-id\nB2_ACCOUNT_KEY=kdtest-app-key\n"),
        &format!("endpoint = \"{}\"\n", server.url()),
    );
    round_trip(&mut env);
}

fn rest_url(server: &Server, path: &str) -> String {
    format!("{}/{path}", server.url())
}

#[test]
fn rest_round_trip_dr_and_restic() {
    if !support::docker_tests_enabled("rest_round_trip_dr_and_restic") {
        return;
    }
    let server = servers::rest();
    let prefix = support::unique_prefix();
    let location = format!("rest:{}", rest_url(server, &prefix));
    let mut env = remote_env(
        &prefix,
        &location,
        Some(&format!(
            "RESTIC_REST_USERNAME={}\nRESTIC_REST_PASSWORD={}\n",
            servers::REST_USER,
            servers::REST_PASS
        )),
        "",
    );
    let stack = round_trip(&mut env);
    let with_credentials = format!(
        "rest:http://{}:{}@127.0.0.1:{}/{prefix}",
        servers::REST_USER,
        servers::REST_PASS,
        server.port
    );
    restic_reads(&env, &with_credentials, &[], &stack);
}

/// An rclone.conf (0600) with a `local` remote named `kdlocal`.
fn rclone_conf(env: &Env) -> PathBuf {
    let path = env.path("etc/rclone.conf");
    support::write_private(&path, "[kdlocal]\ntype = local\n");
    path
}

#[test]
fn rclone_round_trip_dr_and_restic() {
    if !support::docker_tests_enabled("rclone_round_trip_dr_and_restic") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let location = format!("rclone:kdlocal:{}/repo", data.path().display());
    let mut env = Env::builder()
        .config_at("etc/config.toml")
        .location(&location)
        .extra("rclone-config = \"rclone.conf\"\n[backup]\nhealth-timeout-seconds = 30\n")
        .build();
    let conf = rclone_conf(&env);
    support::write_private(&env.path("dr-passphrase"), &format!("{PASSPHRASE}\n"));
    let stack = round_trip(&mut env);
    // The import put rclone.conf back beside the config, where the installed config names it.
    assert!(env.path("etc/rclone.conf").exists());
    restic_reads(
        &env,
        &location,
        &[("RCLONE_CONFIG", conf.to_str().unwrap())],
        &stack,
    );
}

#[test]
fn webdav_round_trip_and_dr() {
    if !support::docker_tests_enabled("webdav_round_trip_and_dr") {
        return;
    }
    let server = servers::webdav();
    let prefix = support::unique_prefix();
    let mut env = remote_env(
        &prefix,
        &format!("webdav:{}", rest_url(server, &prefix)),
        Some(&format!(
            "WEBDAV_USERNAME={}\nWEBDAV_PASSWORD={}\n",
            servers::REST_USER,
            servers::REST_PASS
        )),
        "",
    );
    round_trip(&mut env);
}

#[test]
fn azure_round_trip_and_dr() {
    if !support::docker_tests_enabled("azure_round_trip_and_dr") {
        return;
    }
    let server = servers::azurite();
    let prefix = support::unique_prefix();
    let container = format!("{prefix}-c");
    server.create_container(&container);
    let mut env = remote_env(
        &prefix,
        &format!("azure:{container}:/host1"),
        Some(&azure_keys(servers::AZURITE_KEY)),
        &format!("endpoint = \"{}\"\n", server.azure_endpoint()),
    );
    round_trip(&mut env);
}

#[test]
fn gcs_round_trip_and_dr() {
    if !support::docker_tests_enabled("gcs_round_trip_and_dr") {
        return;
    }
    let server = servers::gcs();
    let prefix = support::unique_prefix();
    let bucket = format!("{prefix}-b");
    server.create_gcs_bucket(&bucket);
    let mut env = remote_env(
        &prefix,
        &format!("gs:{bucket}:/host1"),
        None,
        &format!(
            "endpoint = \"{}\"\nskip_signature = \"true\"\ndisable_vm_metadata = \"true\"\n\
             disable_config_load = \"true\"\n",
            server.url()
        ),
    );
    round_trip(&mut env);
}

/// A wrong Azure account key (Azurite checks the shared-key signature of every request): exit
/// 13 with a message that names the variables to check and not the key; the repository made
/// with the right key is untouched and opens again with it. (fake-gcs-server checks no
/// credentials, so GCS has no such test.)
#[test]
fn azure_wrong_key_says_so() {
    if !support::docker_tests_enabled("azure_wrong_key_says_so") {
        return;
    }
    let server = servers::azurite();
    let prefix = support::unique_prefix();
    let container = format!("{prefix}-c");
    server.create_container(&container);
    let env = remote_env(
        &prefix,
        &format!("azure:{container}:/host1"),
        Some(&azure_keys(servers::AZURITE_KEY)),
        &format!("endpoint = \"{}\"\n", server.azure_endpoint()),
    );
    init(&env);
    // A well-formed key (base64), but not the account's.
    let wrong = "a2R0ZXN0LW5vdC10aGUtYWNjb3VudC1rZXk=";
    support::write_private(&env.path("etc/backend.env"), &azure_keys(wrong));
    let out = env.cmd(&["admin", "repo", "status"]).assert().code(13);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    assert!(stderr.contains("AZURE_ACCOUNT_KEY"), "{stderr}");
    assert!(
        !stderr.contains(wrong),
        "the key is in the message: {stderr}"
    );

    support::write_private(
        &env.path("etc/backend.env"),
        &azure_keys(servers::AZURITE_KEY),
    );
    env.cmd(&["admin", "repo", "status"]).assert().success();
}

/// The env file of Azurite's account with `key`.
fn azure_keys(key: &str) -> String {
    format!(
        "AZURE_ACCOUNT_NAME={}\nAZURE_ACCOUNT_KEY={key}\n",
        servers::AZURITE_ACCOUNT
    )
}
