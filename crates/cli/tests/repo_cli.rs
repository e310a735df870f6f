//! `kopi-docka admin repo ...` and `kopi-docka snapshots` through the real binary, on real
//! repositories in temp dirs: output, exit codes, and that bad input changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use kopi_docka_core::lock::{Lock, LockMode, key_for};
use predicates::prelude::*;
use serde_json::Value;
use support::Env;

fn json(out: &assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
/// An installation (no repository yet) whose password file is in a subdirectory.
fn installation() -> Env {
    Env::builder()
        .password_file("secrets/repository.password")
        .build()
}

#[test]
fn init_status_stats_check_and_snapshots() {
    let env = installation();
    let out = env.cmd(&["admin", "repo", "init"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("created repository at {}", env.repo().display())),
        "{text}"
    );
    assert!(
        text.contains("KEEP A COPY OF IT OUTSIDE THIS MACHINE"),
        "{text}"
    );
    assert_eq!(mode(&env.password_file()), 0o600);
    assert_eq!(mode(&env.path("secrets")), 0o700);
    let password = std::fs::read_to_string(env.password_file()).unwrap();
    assert_eq!(password.trim().len(), 64);
    // It is in its file only: not on the terminal, not in the log, not in the state or cache.
    support::assert_not_leaked(
        password.trim(),
        out.get_output(),
        &[&env.path("state"), &env.path("cache")],
    );

    let status = json(
        &env.cmd(&["admin", "repo", "status", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(status["snapshots"], 0);
    assert_eq!(status["location"], env.repo().display().to_string());
    let repo_stats = json(
        &env.cmd(&["advanced", "repo", "stats", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(repo_stats["version"], 2);
    env.cmd(&["admin", "repo", "check", "--read-data-subset", "100"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no errors found"));
    let listed = json(&env.cmd(&["snapshots", "--json"]).assert().success());
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 0);
    env.cmd(&["admin", "repo", "prune", "--dry-run"])
        .assert()
        .success();

    // restic reads what we created, with the password file we generated.
    support::restic(&env.repo(), &env.password_file(), ["check"]);
}

#[test]
fn init_never_overwrites_and_exit_codes_name_the_problem() {
    let env = installation();
    // No repository yet: 10, and nothing is created.
    env.cmd(&["snapshots"])
        .assert()
        .code(10)
        .stderr(predicate::str::contains("no repository at"))
        .stderr(predicate::str::contains("kopi-docka admin repo init"));
    assert!(!env.repo().exists());

    env.cmd(&["admin", "repo", "init"]).assert().success();
    let before = std::fs::read_to_string(env.password_file()).unwrap();
    env.cmd(&["admin", "repo", "init"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(env.password_file()).unwrap(),
        before,
        "password kept"
    );

    // Wrong password: 12.
    std::fs::write(env.password_file(), "not the password\n").unwrap();
    env.cmd(&["admin", "repo", "status"])
        .assert()
        .code(12)
        .stderr(predicate::str::contains("wrong password"));

    // Password file readable by others: 2, with the chmod to run, file untouched.
    std::fs::write(env.password_file(), &before).unwrap();
    std::fs::set_permissions(env.password_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    env.cmd(&["snapshots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "chmod 600 {}",
            env.password_file().display()
        )));
    assert_eq!(mode(&env.password_file()), 0o644);
    std::fs::set_permissions(env.password_file(), std::fs::Permissions::from_mode(0o600)).unwrap();

    // Another kopi-docka holds the repository: 11.
    let lock = Lock::try_acquire(
        &env.path("state/locks"),
        &key_for(&env.repo().display().to_string()),
        LockMode::Exclusive,
    )
    .unwrap();
    env.cmd(&["admin", "repo", "prune"])
        .assert()
        .code(11)
        .stderr(predicate::str::contains(
            "another kopi-docka process is using this",
        ));
    drop(lock);
    env.cmd(&["admin", "repo", "status"]).assert().success();
}

#[test]
fn location_that_is_a_file_is_refused() {
    let env = installation();
    std::fs::write(env.repo(), "precious").unwrap();
    env.cmd(&["admin", "repo", "init"])
        .assert()
        .code(10)
        .stderr(predicate::str::contains("it is a file"));
    assert_eq!(std::fs::read_to_string(env.repo()).unwrap(), "precious");
    assert!(
        !env.password_file().exists(),
        "a password for a repository never created is removed"
    );
}

#[test]
fn change_password_generates_stores_and_old_one_stops_working() {
    let env = installation();
    env.cmd(&["admin", "repo", "init"]).assert().success();
    let old = std::fs::read_to_string(env.password_file()).unwrap();
    let out = env
        .cmd(&["admin", "repo", "change-password"])
        .assert()
        .success()
        .stdout(predicate::str::contains("password changed and written to"));
    let new = std::fs::read_to_string(env.password_file()).unwrap();
    assert_ne!(old, new);
    assert_eq!(mode(&env.password_file()), 0o600);
    for password in [&old, &new] {
        support::assert_not_leaked(
            password.trim(),
            out.get_output(),
            &[&env.path("state"), &env.path("cache")],
        );
    }
    env.cmd(&["admin", "repo", "status"]).assert().success();

    // The old password opens nothing any more: neither kopi-docka nor restic.
    std::fs::write(env.password_file(), &old).unwrap();
    env.cmd(&["admin", "repo", "status"])
        .assert()
        .code(12)
        .stderr(predicate::str::contains("wrong password"));
    let restic = std::process::Command::new("restic")
        .args(["--no-cache", "-r"])
        .arg(env.repo())
        .arg("--password-file")
        .arg(env.password_file())
        .args(["cat", "config"])
        .output()
        .unwrap();
    assert!(
        !restic.status.success(),
        "restic opened the repository with the old password"
    );
    std::fs::write(env.password_file(), &new).unwrap();
    support::restic(&env.repo(), &env.password_file(), ["cat", "config"]);
    let keys = std::fs::read_dir(env.repo().join("keys")).unwrap().count();
    assert_eq!(keys, 1, "the old key is gone");
}

#[test]
fn check_exits_non_zero_on_a_corrupted_pack() {
    let env = installation();
    env.cmd(&["admin", "repo", "init"]).assert().success();
    // Some data in the repository, written by restic (kopi-docka's own backup comes later).
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let noise: Vec<u8> = (0..300_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11).to_le_bytes()[0])
        .collect();
    std::fs::write(data.join("noise.bin"), noise).unwrap();
    support::restic(
        &env.repo(),
        &env.password_file(),
        [std::ffi::OsStr::new("backup"), data.as_os_str()],
    );
    env.cmd(&["admin", "repo", "check", "--read-data-subset", "100"])
        .assert()
        .success();

    let mut packs = Vec::new();
    for sub in std::fs::read_dir(env.repo().join("data")).unwrap() {
        for pack in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            packs.push(pack.unwrap().path());
        }
    }
    let pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 32].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::set_permissions(pack, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(pack, &bytes).unwrap();

    env.cmd(&["admin", "repo", "check"]).assert().success();
    env.cmd(&["admin", "repo", "check", "--read-data-subset", "100"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("ERRORS FOUND"))
        .stdout(predicate::str::contains("error: "));
    assert_eq!(
        std::fs::read(pack).unwrap(),
        bytes,
        "check never modifies the repository"
    );
}

/// With no config anywhere, the first `backup` creates the default config, a random password
/// file (0600) and the repository, and says so. Run as `nobody` with its own XDG directories
/// so the test never touches /etc; the engine is unreachable on purpose, after the set-up.
#[test]
fn first_backup_without_config_sets_everything_up() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let home = dir.path();
    let run = || {
        let bin = assert_cmd::cargo::cargo_bin("kopi-docka");
        let root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        let mut cmd = if root {
            let mut cmd = assert_cmd::Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin);
            cmd
        } else {
            assert_cmd::Command::new(&bin)
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env(
                "DOCKER_HOST",
                format!("unix://{}/no-engine.sock", home.display()),
            )
            .arg("backup")
            .assert()
            .code(1)
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("FIRST RUN: created"), "{stderr}");
    let generated =
        std::fs::read_to_string(home.join("config/kopi-docka/repository.password")).unwrap();
    support::assert_not_leaked(
        generated.trim(),
        out.get_output(),
        &[&home.join("state"), &home.join("cache")],
    );
    assert!(
        stderr.contains("cannot reach the container engine"),
        "{stderr}"
    );
    let config = home.join("config/kopi-docka/config.toml");
    let password = home.join("config/kopi-docka/repository.password");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&password), 0o600);
    assert!(std::fs::read_to_string(&config).unwrap().contains(&format!(
        "location = \"{}\"",
        home.join("data/kopi-docka/repository").display()
    )));
    assert!(
        home.join("data/kopi-docka/repository/config").is_file(),
        "repository initialised"
    );
    let before = std::fs::read_to_string(&config).unwrap();
    let before_password = std::fs::read_to_string(&password).unwrap();
    // A second run finds the config and changes nothing.
    let again = run();
    assert!(!String::from_utf8_lossy(&again.get_output().stderr).contains("FIRST RUN"));
    assert_eq!(std::fs::read_to_string(&password).unwrap(), before_password);
    // restic opens it with the generated password.
    support::restic(
        &home.join("data/kopi-docka/repository"),
        &password,
        ["snapshots"],
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
}
