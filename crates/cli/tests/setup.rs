//! `kopi-docka setup` and `kopi-docka admin config`: a scripted setup on a clean machine gives a
//! working backup; setting up again finds the repository and keeps its snapshots; the config
//! tools mask secrets, refuse invalid edits and map Kopi-Docka configs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{DockerResources, IDLE, IMAGE, docker};

fn cmd(dir: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = support::kopi_docka_at(&dir.join("etc/config.toml"), dir);
    cmd.args(args);
    cmd
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn scripted_setup_then_backup_then_setup_again_keeps_the_repository() {
    if !support::docker_tests_enabled(
        "scripted_setup_then_backup_then_setup_again_keeps_the_repository",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let repo = dir.join("repo");
    let setup = |extra: &[&str]| {
        let mut args = vec![
            "setup",
            "--non-interactive",
            "--repository",
            repo.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        cmd(dir, &args).assert()
    };
    let out = setup(&["--keep-daily", "14"]).success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["repository_action"], "created");
    assert_eq!(report["password_generated"], true);
    let config = dir.join("etc/config.toml");
    let password = dir.join("etc/repository.password");
    assert_eq!(mode(&config), 0o600);
    assert_eq!(mode(&password), 0o600);
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("keep-daily = 14")
    );
    let secret = std::fs::read_to_string(&password).unwrap();

    let name = format!("{prefix}-solo");
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
    cmd(dir, &["backup", "--unit", &name]).assert().success();

    // A working config is not replaced by accident.
    setup(&[])
        .code(2)
        .stderr(predicates::str::contains("--force"));
    // Again with --force: the repository is found and kept, the password reused.
    let out = setup(&["--force"]).success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["repository_action"], "connected", "{report:#}");
    assert!(report["snapshots"].as_u64().unwrap() >= 3, "{report:#}");
    assert_eq!(report["password_generated"], false);
    assert_eq!(std::fs::read_to_string(&password).unwrap(), secret);
    assert!(PathBuf::from(report["previous_config"].as_str().unwrap()).exists());
    cmd(dir, &["backup", "--unit", &name]).assert().success();

    // A wrong password for the existing repository: an error, and nothing changed.
    let wrong = dir.join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::read_to_string(&config).unwrap();
    setup(&["--force", "--password-file", wrong.to_str().unwrap()])
        .failure()
        .stderr(predicates::str::contains("wrong password"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    docker(&["rm", "-f", &name]);
}

#[test]
fn config_show_masks_secrets_and_edit_refuses_invalid_changes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::create_dir(dir.join("etc")).unwrap();
    let config = dir.join("etc/config.toml");
    std::fs::write(
        &config,
        "[repository]\nlocation = \"s3:s3.example.test/bucket\"\npassword-command = \"pass show kd\"\n\
         [repository.options]\nsecret_access_key = \"AKIA-SECRET\"\nregion = \"eu-1\"\n",
    )
    .unwrap();
    let shown = cmd(dir, &["admin", "config", "show"]).assert().success();
    let text = String::from_utf8_lossy(&shown.get_output().stdout);
    assert!(
        !text.contains("AKIA-SECRET") && !text.contains("pass show"),
        "{text}"
    );
    assert!(text.contains("eu-1"), "{text}");
    cmd(dir, &["admin", "config", "validate"])
        .assert()
        .success();

    let editor = dir.join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf '[bogus-table]\\nx = 1\\n' >> \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = std::fs::read_to_string(&config).unwrap();
    cmd(dir, &["admin", "config", "edit"])
        .env("VISUAL", &editor)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bogus-table"))
        .stderr(predicates::str::contains("unchanged"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    std::fs::write(
        &editor,
        "#!/bin/sh\necho '[retention]\nkeep-daily = 9' >> \"$1\"\n",
    )
    .unwrap();
    cmd(dir, &["admin", "config", "edit"])
        .env("VISUAL", &editor)
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("keep-daily = 9")
    );
    std::fs::write(&config, "[repository\n").unwrap();
    cmd(dir, &["admin", "config", "validate"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("config.toml:1"));
}

#[test]
fn kopi_docka_configs_are_mapped_and_the_rest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let old = dir.join("kopi-docka.json");
    std::fs::write(
        &old,
        r#"{"version":"7.9.0",
 "kopia":{"kopia_params":"filesystem --path /backup/kopia","password":"","password_file":"/etc/.kopi-docka.password"},
 "backup":{"backup_scope":"minimal","stop_timeout":45,"start_timeout":90,"exclude_patterns":["*.log"],
           "update_recovery_bundle":true,"hooks":{"pre_backup":"/opt/hooks/pre.sh","post_backup":null}},
 "retention":{"latest":5,"hourly":0,"daily":10,"weekly":4,"monthly":6,"annual":1},
 "notifications":{"enabled":true,"service":"telegram"}}"#,
    )
    .unwrap();
    let out = cmd(
        dir,
        &[
            "admin",
            "config",
            "import-kopi-docka",
            old.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for expect in [
        "keep-last = 5",
        "keep-daily = 10",
        "keep-monthly = 6",
        "keep-yearly = 1",
        "stop-timeout-seconds = 45",
        "health-timeout-seconds = 90",
        "scope = \"minimal\"",
        "pre-backup = [\"/opt/hooks/pre.sh\"]",
        "password-file = \"/etc/.kopi-docka.password\"",
        "NOT CARRIED OVER: kopia_params",
        "NOT CARRIED OVER: exclude_patterns",
        "NOT CARRIED OVER: notifications",
        "NOT CARRIED OVER: update_recovery_bundle",
    ] {
        assert!(text.contains(expect), "`{expect}` not in:\n{text}");
    }
    cmd(
        dir,
        &[
            "admin",
            "config",
            "import-kopi-docka",
            old.to_str().unwrap(),
            "--write",
        ],
    )
    .assert()
    .success()
    .stderr(predicates::str::contains("not carried over: kopia_params"));
    assert_eq!(mode(&dir.join("etc/config.toml")), 0o600);
    // What was written is what was shown: every mapped value, every note.
    let written = std::fs::read_to_string(dir.join("etc/config.toml")).unwrap();
    assert_eq!(written.trim_end(), text.trim_end());
    cmd(dir, &["admin", "config", "validate"])
        .assert()
        .success();
    let shown = cmd(dir, &["admin", "config", "show"]).assert().success();
    let shown = String::from_utf8_lossy(&shown.get_output().stdout).into_owned();
    for expect in [
        "keep-daily = 10",
        "stop-timeout-seconds = 45",
        "scope = \"minimal\"",
    ] {
        assert!(
            shown.contains(expect),
            "`{expect}` not in the loaded config:\n{shown}"
        );
    }
}
