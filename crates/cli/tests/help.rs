//! The help text is part of the interface: snapshot it so every change is reviewed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

fn help(args: &[&str]) -> String {
    let out = support::kopi_docka()
        .args(args)
        .env("COLUMNS", "100")
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!(help(&["--help"]));
}

#[test]
fn units_help() {
    insta::assert_snapshot!(help(&["units", "--help"]));
}

#[test]
fn restore_help() {
    insta::assert_snapshot!(help(&["restore", "--help"]));
}

#[test]
fn service_help() {
    let text = [
        &["admin", "service", "--help"][..],
        &["admin", "service", "write-units", "--help"],
        &["admin", "service", "daemon", "--help"],
    ]
    .iter()
    .map(|args| format!("$ kopi-docka {}\n{}", args.join(" "), help(args)))
    .collect::<Vec<_>>()
    .join("\n");
    insta::assert_snapshot!(text);
}

#[test]
fn global_options_on_every_command_and_exit_codes_in_top_help() {
    for command in [
        &["units"][..],
        &["version"],
        &["snapshots"],
        &["restore"],
        &["setup"],
        &["disaster-recovery", "export"],
        &["dr", "import"],
        &["admin", "config", "show"],
        &["admin", "repo", "init"],
        &["admin", "repo", "check"],
        &["advanced", "repo", "prune"],
        &["admin", "repo", "change-password"],
        &["admin", "service", "write-units"],
        &["admin", "service", "daemon"],
        &["admin", "service", "status"],
        &["admin", "notification", "test"],
        &["doctor"],
        &["history"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let text = help(&args);
        assert!(text.contains("--config <PATH>"), "{command:?}: {text}");
    }
    assert!(help(&["--help"]).contains("130  interrupted"));
}
