//! Bad input gets a clear message and the documented exit code. These tests need no engine:
//! each one fails before or while connecting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use predicates::prelude::*;
use support::kopi_docka;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn malformed_toml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[repository]\nlocation = \"/srv/repo\n",
    );
    kopi_docka()
        .arg("units")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "error: {}:2:",
            config.display()
        )));
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[repository]\n\npasword-file = \"/etc/pw\"\n",
    );
    kopi_docka()
        .args(["units", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!("{}:3:", config.display())))
        .stderr(predicate::str::contains("unknown field `pasword-file`"))
        .stderr(predicate::str::contains("password-file"));
}

#[test]
fn invalid_value_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[discovery]\nexclude-paths = [\"media\"]\n",
    );
    kopi_docka()
        .args(["--config"])
        .arg(&config)
        .arg("units")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(":2:"))
        .stderr(predicate::str::contains("`media` is not an absolute path"));
}

#[test]
fn missing_named_config_is_an_error_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    kopi_docka()
        .arg("units")
        .env("KOPI_DOCKA_CONFIG", &missing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "config file {}",
            missing.display()
        )))
        .stderr(predicate::str::contains("$KOPI_DOCKA_CONFIG"))
        .stderr(predicate::str::contains("does not exist"));
}

/// A config that exists but cannot be read must fail loudly (the original silently used another
/// config and backed up into the wrong repository). As root every file is readable, so the test
/// drops to `nobody` with setpriv to read a root-only file.
#[test]
fn unreadable_config_suggests_sudo() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[repository]\nlocation = \"/srv/repo\"\n",
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("kopi-docka");
    let mut cmd = if is_root() {
        let mut cmd = assert_cmd::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin);
        cmd
    } else {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
        assert_cmd::Command::new(&bin)
    };
    cmd.env_remove("KOPI_DOCKA_CONFIG")
        .arg("units")
        .arg("--config")
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "cannot read config file {}",
            config.display()
        )))
        .stderr(predicate::str::contains("Permission denied"))
        .stderr(predicate::str::contains("sudo"));
}

fn is_root() -> bool {
    // The tests need no extra crate for this: /proc/self is owned by the effective uid.
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0
}

#[test]
fn config_that_is_a_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    kopi_docka()
        .args(["units", "--config"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("it is a directory"));
}

#[test]
fn engine_socket_missing_names_socket_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    kopi_docka()
        .arg("units")
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "cannot reach the container engine at unix://{}",
            sock.display()
        )))
        .stderr(predicate::str::contains("Is dockerd running"))
        .stderr(predicate::str::contains("DOCKER_HOST"));
}

#[test]
fn engine_not_listening_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dead.sock");
    // Bind and close: the socket file stays, nobody accepts (a crashed dockerd looks like this).
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let config = write(
        dir.path(),
        "config.toml",
        &format!("[docker]\nhost = \"unix://{}\"\n", sock.display()),
    );
    kopi_docka()
        .args(["units", "--json", "--config"])
        .arg(&config)
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/ignored-because-config-wins.sock",
        )
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(format!(
            "container engine at unix://{}",
            sock.display()
        )));
}

/// Under `--json` the error that ends the command is one JSON line on stderr, shaped like
/// restic's, with the exit code in it; stdout stays empty.
#[test]
fn json_error_is_one_json_line_on_stderr_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        "[repository]\n\npasword-file = \"/etc/pw\"\n",
    );
    let out = kopi_docka()
        .args(["history", "--json", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty());
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stderr}");
    let error: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(error["message_type"], "exit_error");
    assert_eq!(error["code"], 2);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}:3:", config.display())),
        "{message}"
    );
    assert!(
        message.contains("unknown field `pasword-file`"),
        "{message}"
    );
    assert!(error["causes"].is_array());

    // Without --json the same error is text.
    kopi_docka()
        .args(["history", "--config"])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("error: "));
}

/// An error with causes lists them, outermost first, as the text does with `caused by:`.
#[test]
fn json_error_lists_its_causes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "config.toml",
        &format!(
            "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n",
            dir.path().join("no-repo").display(),
            dir.path().join("pw").display()
        ),
    );
    let pw = write(dir.path(), "pw", "secret\n");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = support::kopi_docka_at(&config, dir.path())
        .args(["admin", "repo", "status"])
        .assert()
        .code(10)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(text).unwrap();
    let out = support::kopi_docka_at(&config, dir.path())
        .args(["admin", "repo", "status", "--json"])
        .assert()
        .code(10)
        .stdout(predicate::str::is_empty());
    let error: serde_json::Value = serde_json::from_slice(&out.get_output().stderr).unwrap();
    assert_eq!(error["code"], 10);
    let mut expected = vec![format!("error: {}", error["message"].as_str().unwrap())];
    for cause in error["causes"].as_array().unwrap() {
        expected.push(format!("  caused by: {}", cause.as_str().unwrap()));
    }
    let expected = expected.join("\n");
    assert_eq!(text.trim_end(), expected);
}

#[test]
fn unusable_docker_host_is_a_usage_error() {
    kopi_docka()
        .arg("units")
        .env("DOCKER_HOST", "ftp://backup@host")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "$DOCKER_HOST: `ftp://backup@host` is not a supported",
        ));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    kopi_docka()
        .arg("bakup")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unrecognized subcommand"));
}

#[test]
fn version_needs_no_config_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    kopi_docka()
        .args(["version", "--json"])
        .env("XDG_CONFIG_HOME", dir.path())
        .env("KOPI_DOCKA_CONFIG", dir.path().join("absent.toml"))
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "\"kopi_docka\": \"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
