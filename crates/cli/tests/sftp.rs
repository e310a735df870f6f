//! SFTP repositories against a real OpenSSH server on loopback ([`support::Sshd`]): a stack's
//! round trip, restic reading the same repository, the user's ssh config (a `Host` alias with
//! its port, user and key), the pinned host key, refused logins, and no ssh process left
//! behind after any command.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::tree::{self, CompareOptions};
use support::{Env, Sshd, docker, volume_mountpoint};

/// An installation whose repository is `env.repo()` on the shared server (not created).
fn sftp_env(extra: &str) -> Env {
    let env = Env::builder().build();
    Sshd::shared().write_config(&env, extra);
    env
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// restic 0.14 on the same repository, over the same server.
fn restic(env: &Env, args: &[&str]) -> std::process::Output {
    let sshd = Sshd::shared();
    let output = Command::new("restic")
        .arg("-r")
        .arg(format!("sftp:root@127.0.0.1:{}", env.repo().display()))
        .arg("-o")
        .arg(format!("sftp.command={}", sshd.restic_sftp_command()))
        .arg("--password-file")
        .arg(env.password_file())
        .arg("--no-cache")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "restic {args:?}: {}",
        stderr(&output)
    );
    output
}

#[test]
fn init_snapshots_and_no_ssh_left_behind() {
    let env = sftp_env("");
    env.cmd(&["admin", "repo", "init"]).assert().success();
    Sshd::assert_no_ssh_left(env.dir());
    assert!(env.repo().join("config").is_file(), "init wrote no config");
    let listed = env.json(&["snapshots", "--json"]);
    assert!(listed.is_array() || listed.is_object(), "{listed}");
    Sshd::assert_no_ssh_left(env.dir());
    // The per-process ssh directory is gone with the process.
    let ssh_dir = env.path("state/ssh");
    let left: Vec<_> = std::fs::read_dir(&ssh_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", ssh_dir.display());
    // restic lists and checks the repository kopi-docka created over SFTP.
    restic(&env, &["snapshots"]);
    restic(&env, &["check"]);
}

#[test]
fn an_ssh_config_alias_brings_its_host_port_user_and_key() {
    let env = Env::builder().build();
    let sshd = Sshd::shared();
    let ssh_config = env.path("ssh_config");
    std::fs::write(
        &ssh_config,
        format!(
            "Host kdtest-nas\n  HostName 127.0.0.1\n  Port {}\n  User root\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n",
            sshd.port(),
            sshd.user_key().display()
        ),
    )
    .unwrap();
    // No port, no user, no key in the location or the options: all from the alias.
    std::fs::write(
        env.config(),
        format!(
            "[repository]\nlocation = \"sftp:kdtest-nas:{}\"\npassword-file = \"{}\"\n\
             [repository.options]\nhost-key = \"{}\"\nssh-config = \"{}\"\n",
            env.repo().display(),
            env.password_file().display(),
            sshd.host_key(),
            ssh_config.display()
        ),
    )
    .unwrap();
    let init = env.cmd(&["admin", "repo", "init"]).output().unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(env.repo().join("config").is_file());
    env.cmd(&["snapshots"]).assert().success();
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn a_changed_host_key_is_refused_naming_both_fingerprints() {
    let env = Env::builder().build();
    let sshd = Sshd::shared();
    let other = env.path("other_host");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let pinned: String = other_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let config = format!(
        "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n[repository.options]\n\
         key = \"{}\"\nhost-key = \"{pinned}\"\nconnect-timeout = \"5\"\n",
        sshd.location(&env.repo()),
        env.password_file().display(),
        sshd.user_key().display(),
    );
    std::fs::write(env.config(), config).unwrap();
    let output = env.cmd(&["admin", "repo", "init"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    let pinned_fp = fingerprint(&other.with_extension("pub"));
    let real_fp = fingerprint(&sshd.dir().join("host_ed25519.pub"));
    assert!(
        message.contains(&pinned_fp),
        "pinned {pinned_fp}: {message}"
    );
    assert!(message.contains(&real_fp), "offered {real_fp}: {message}");
    assert!(message.contains("intercepting"), "{message}");
    assert!(!env.repo().exists(), "something was written to the server");
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn an_unknown_host_is_never_trusted_on_first_use() {
    let env = Env::builder().build();
    let sshd = Sshd::shared();
    // No host-key: only ssh's own known_hosts could vouch for the server, and it does not
    // know this throwaway key on a random port.
    let config = format!(
        "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n[repository.options]\n\
         key = \"{}\"\nconnect-timeout = \"5\"\n",
        sshd.location(&env.repo()),
        env.password_file().display(),
        sshd.user_key().display(),
    );
    std::fs::write(env.config(), config).unwrap();
    let output = env.cmd(&["admin", "repo", "init"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    let real_fp = fingerprint(&sshd.dir().join("host_ed25519.pub"));
    assert!(
        message.contains("never trusts a server on first use"),
        "{message}"
    );
    assert!(message.contains(&real_fp), "{message}");
    assert!(message.contains(&sshd.host_key()), "{message}");
    assert!(!env.repo().exists(), "something was written to the server");
}

#[test]
fn a_key_the_server_does_not_accept_is_a_clear_error() {
    let env = Env::builder().build();
    let sshd = Sshd::shared();
    let wrong = env.path("wrong_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&wrong)
        .status()
        .unwrap();
    assert!(status.success());
    let config = format!(
        "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n[repository.options]\n\
         key = \"{}\"\nhost-key = \"{}\"\nconnect-timeout = \"5\"\n",
        sshd.location(&env.repo()),
        env.password_file().display(),
        wrong.display(),
        sshd.host_key(),
    );
    std::fs::write(env.config(), config).unwrap();
    let output = env.cmd(&["admin", "repo", "init"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("refused the login as `root`"), "{message}");
    assert!(message.contains("Permission denied"), "{message}");
    assert!(!env.repo().exists());
    Sshd::assert_no_ssh_left(env.dir());
}

fn fingerprint(public_key: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .args([
            OsStr::new("-l"),
            OsStr::new("-E"),
            OsStr::new("sha256"),
            OsStr::new("-f"),
        ])
        .arg(public_key)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn stack_round_trip_over_sftp_and_restic_checks_it() {
    if !support::docker_tests_enabled("stack_round_trip_over_sftp_and_restic_checks_it") {
        return;
    }
    let mut env = sftp_env("\n[backup]\nhealth-timeout-seconds = 30\n");
    let sshd = Sshd::shared();
    // The options table must come last: put [backup] before it.
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
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let (stack, dir) = env.stack("");
    let db_volume = format!("{stack}_db-data");
    std::fs::create_dir(volume_mountpoint(&db_volume).join("rich")).unwrap();
    tree::build_rich_tree(&volume_mountpoint(&db_volume).join("rich"));
    std::fs::write(dir.join("html/index.html"), "<h1>over sftp</h1>").unwrap();

    env.cmd(&["backup", "--unit", &stack]).assert().success();
    Sshd::assert_no_ssh_left(env.dir());

    // A fresh host: containers, networks and volumes gone; the data kept aside to compare.
    let reference_volume = format!("{}-reference", env.prefix);
    docker(&["volume", "create", &reference_volume]);
    let reference_rich = volume_mountpoint(&reference_volume).join("rich");
    std::fs::rename(volume_mountpoint(&db_volume).join("rich"), &reference_rich).unwrap();
    let reference_html = env.path("reference-html");
    std::fs::rename(dir.join("html"), &reference_html).unwrap();
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "--timeout", "1", "-v"])
            .current_dir(&dir),
    );

    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    Sshd::assert_no_ssh_left(env.dir());
    tree::assert_trees_equal(
        &reference_rich,
        &volume_mountpoint(&db_volume).join("rich"),
        &CompareOptions::default(),
    );
    tree::assert_trees_equal(
        &reference_html,
        &dir.join("html"),
        &CompareOptions::default(),
    );

    // restic 0.14 lists kopi-docka's snapshots in the same repository and checks it.
    let listed: Value =
        serde_json::from_slice(&restic(&env, &["snapshots", "--json"]).stdout).unwrap();
    let snapshots = listed.as_array().unwrap();
    assert!(
        snapshots
            .iter()
            .any(|s| s["tags"].to_string().contains(&stack)),
        "{listed:#}"
    );
    restic(&env, &["check", "--read-data"]);
}

#[test]
fn a_wiped_host_comes_back_from_its_bundle_over_sftp() {
    if !support::docker_tests_enabled("a_wiped_host_comes_back_from_its_bundle_over_sftp") {
        return;
    }
    let env = Env::builder().config_at("etc/config.toml").build();
    let sshd = Sshd::shared();
    // The host's own copy of the ssh key, next to its config: a wiped host loses it too.
    let key = env.path("etc/id_ed25519");
    std::fs::copy(sshd.user_key(), &key).unwrap();
    support::write_private(
        &env.path("dr-passphrase"),
        "kdtest-sftp-bundle-passphrase\n",
    );
    std::fs::write(
        env.config(),
        format!(
            "[backup]\nhealth-timeout-seconds = 30\n\n[disaster-recovery]\nbundle-dir = \
             \"../bundles\"\npassphrase-file = \"../dr-passphrase\"\nkeep = 1\n\
             include-ssh-key = true\n\n[repository]\nlocation = \"{}\"\npassword-file = \
             \"password\"\n[repository.options]\nkey = \"{}\"\nhost-key = \"{}\"\n",
            sshd.location(&env.repo()),
            key.display(),
            sshd.host_key()
        ),
    )
    .unwrap();
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let solo = format!("{}-solo", env.prefix);
    let data = support::idle_with_volume(&solo);
    std::fs::create_dir(data.join("rich")).unwrap();
    tree::build_rich_tree(&data.join("rich"));
    env.cmd(&["backup", "--unit", &solo]).assert().success();
    let bundles: Vec<_> = std::fs::read_dir(env.path("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let bundle = env.path("bundle.age");
    std::fs::copy(&bundles[0], &bundle).unwrap();

    // A new host: no config, key, state or cache; the container and its volume gone.
    let reference_volume = format!("{}-reference", env.prefix);
    docker(&["volume", "create", &reference_volume]);
    let reference = volume_mountpoint(&reference_volume).join("rich");
    std::fs::rename(data.join("rich"), &reference).unwrap();
    docker(&["rm", "-f", &solo]);
    docker(&["volume", "rm", &format!("{solo}-data")]);
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
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["restored"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    tree::assert_trees_equal(
        &reference,
        &volume_mountpoint(&format!("{solo}-data")).join("rich"),
        &CompareOptions::default(),
    );
    // The installed config still pins the server's key and uses the installed ssh key.
    let installed = std::fs::read_to_string(env.config()).unwrap();
    assert!(installed.contains(&sshd.host_key()), "{installed}");
    assert!(env.path("etc/ssh/id_ed25519").is_file(), "{installed}");
    env.cmd(&["backup", "--unit", &solo]).assert().success();
    Sshd::assert_no_ssh_left(env.dir());
}

/// `doctor --json`: the "sftp server" check and the exit code.
fn doctor_sftp_check(env: &Env) -> (Option<i32>, Value) {
    let out = env.cmd(&["doctor", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let check = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "sftp server").cloned())
        .unwrap_or_else(|| panic!("no sftp server check: {report:#} {}", stderr(&out)));
    (out.status.code(), check)
}

#[test]
fn doctor_checks_the_server_login_and_pinned_key() {
    let env = sftp_env("");
    let sshd = Sshd::shared();
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let (_, check) = doctor_sftp_check(&env);
    assert_eq!(check["status"], "ok", "{check:#}");
    let real_fp = fingerprint(&sshd.dir().join("host_ed25519.pub"));
    let message = check["message"].as_str().unwrap();
    assert!(message.contains(&real_fp), "{message}");
    assert!(message.contains("accepts the login as `root`"), "{message}");

    // Another key pinned: doctor fails and names both.
    let other = env.path("other_host");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let pinned: String = other_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let config = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(env.config(), config.replace(&sshd.host_key(), &pinned)).unwrap();
    let (code, check) = doctor_sftp_check(&env);
    assert_eq!(code, Some(1));
    assert_eq!(check["status"], "fail", "{check:#}");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains(&real_fp), "{message}");
    assert!(
        message.contains(&fingerprint(&other.with_extension("pub"))),
        "{message}"
    );
    Sshd::assert_no_ssh_left(env.dir());
}

#[test]
fn scripted_setup_pins_the_host_key_it_was_given_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::shared();
    let config = dir.path().join("etc/config.toml");
    let repo = dir.path().join("repo");
    let setup = |extra: &[&str]| {
        let mut cmd = support::kopi_docka_at(&config, dir.path());
        cmd.args([
            "setup",
            "--non-interactive",
            "--repository",
            &sshd.location(&repo),
            "--ssh-key",
            sshd.user_key().to_str().unwrap(),
        ]);
        cmd.args(extra);
        cmd.output().unwrap()
    };
    let real_fp = fingerprint(&sshd.dir().join("host_ed25519.pub"));

    // No fingerprint given: refused, the server's fingerprint shown, nothing written.
    let out = setup(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&real_fp), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--host-key SHA256:"),
        "{}",
        stderr(&out)
    );
    assert!(!config.exists() && !repo.exists());

    // A fingerprint the server does not have: refused.
    let out = setup(&[
        "--host-key",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not offer that key"),
        "{}",
        stderr(&out)
    );
    assert!(!config.exists() && !repo.exists());

    // The right one: pinned in the config, the repository created, and it opens.
    let out = setup(&["--host-key", &real_fp, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["repository_action"], "created", "{report:#}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains(&format!("host-key = \"{}\"", sshd.host_key())),
        "{written}"
    );
    assert!(repo.join("config").is_file());
    let mut snapshots = support::kopi_docka_at(&config, dir.path());
    snapshots.arg("snapshots").assert().success();
    Sshd::assert_no_ssh_left(dir.path());
}
