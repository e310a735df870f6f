//! The conventions users of restic-family and systemd tools expect, on the real binary:
//! `NO_COLOR`, `--quiet`, journal priorities under systemd, shell completions and man pages,
//! the restic-like environment (`KOPI_DOCKA_REPOSITORY`, ...) and `--json` everywhere.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};

use support::Env;

/// Runs the shell `command` on a pseudo-terminal (`script`) with `envs` and returns what the
/// terminal showed (stdout and stderr both go to it).
fn on_a_terminal(command: &str, envs: &[(&str, &str)]) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("KOPI_DOCKA_CONFIG")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `text` holds an SGR escape (colour, bold, dim): `ESC [ digits/semicolons m`.
/// Cursor movements of progress bars (`ESC [ 2K`) are not colour.
fn has_colour(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|rest| {
        rest.strip_prefix('[').is_some_and(|codes| {
            let end = codes
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(codes.len());
            codes[end..].starts_with('m')
        })
    })
}

/// The command line that runs `kopi-docka <args>` on `env`'s installation, for `script`.
fn shell_command(env: &Env, args: &str) -> String {
    format!(
        "KOPI_DOCKA_STATE_DIR={} KOPI_DOCKA_CACHE_DIR={} {} --config {} {args}",
        env.path("state").display(),
        env.path("cache").display(),
        assert_cmd::cargo::cargo_bin("kopi-docka").display(),
        env.config().display()
    )
}

/// Diagnostics on a terminal are coloured, unless `NO_COLOR` is set (to anything non-empty).
#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let env = Env::builder().init().build();
    let command = shell_command(&env, "snapshots");
    let coloured = on_a_terminal(&command, &[("KOPI_DOCKA_LOG", "debug")]);
    assert!(
        coloured.contains("INFO"),
        "no diagnostics to look at:\n{coloured}"
    );
    assert!(
        has_colour(&coloured),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = on_a_terminal(&command, &[("KOPI_DOCKA_LOG", "debug"), ("NO_COLOR", "1")]);
    assert!(plain.contains("INFO"), "{plain}");
    assert!(!has_colour(&plain), "colour despite NO_COLOR=1:\n{plain}");
}

/// `--quiet` on an unattended backup: no info lines on stderr, the result still on stdout;
/// warnings still shown.
#[test]
fn quiet_leaves_warnings_and_the_result() {
    if !support::docker_tests_enabled("quiet_leaves_warnings_and_the_result") {
        return;
    }
    let env = Env::builder().init().build();
    let name = format!("{}-quiet", env.prefix);
    support::idle_with_volume(&name);
    let loud = env.cmd(&["backup", "--unit", &name]).output().unwrap();
    assert!(loud.status.success());
    let loud_err = String::from_utf8_lossy(&loud.stderr);
    assert!(
        loud_err.contains(" INFO "),
        "an unattended backup says what it does:\n{loud_err}"
    );
    let quiet = env
        .cmd(&["backup", "--quiet", "--unit", &name])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    let quiet_err = String::from_utf8_lossy(&quiet.stderr);
    assert!(
        !quiet_err.contains(" INFO "),
        "--quiet still says:\n{quiet_err}"
    );
    let quiet_out = String::from_utf8_lossy(&quiet.stdout);
    assert!(
        quiet_out.contains(&name),
        "the result is gone:\n{quiet_out}"
    );
    // A warning gets through `--quiet` (a snapshot with unreadable tags is one).
    tagged_junk(&env);
    env.cmd(&["-q", "snapshots"])
        .assert()
        .success()
        .stderr(predicates::str::contains("WARN"));
    env.cmd(&["-q", "-v", "snapshots"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot be used with"));
}

/// A snapshot with the `kopi-docka` tag but no other tags: listing the repository warns
/// about it (a warning that needs no Docker).
fn tagged_junk(env: &Env) {
    std::fs::write(env.path("junk"), "junk").unwrap();
    let out = support::restic(
        &env.repo(),
        &env.password_file(),
        ["backup", "--tag", "kopi-docka", "-q"]
            .iter()
            .map(std::ffi::OsStr::new)
            .chain([env.path("junk").as_os_str()]),
    );
    assert!(out.status.success(), "{out:?}");
}

/// One journal entry in the native protocol: `KEY=VALUE\n`, or `KEY\n` + little-endian u64
/// length + bytes + `\n`.
fn journal_fields(mut data: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while let Some(newline) = data.iter().position(|b| *b == b'\n') {
        let line = &data[..newline];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            fields.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            ));
            data = &data[newline + 1..];
        } else {
            let rest = &data[newline + 1..];
            let len = usize::try_from(u64::from_le_bytes(rest[..8].try_into().unwrap())).unwrap();
            fields.push((
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            ));
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

/// Runs `kopi-docka <args>` as systemd would with its stderr connected to the journal:
/// `JOURNAL_STREAM` names stderr (or, with `stream_is_stderr` false, another file), and a
/// journald socket listens at `/run/systemd/journal/socket` (in a private mount namespace
/// over a tmpfs `/run`, so nothing of the host is touched). Returns the journal entries the
/// socket received and what went to stderr.
fn under_systemd(
    env: &Env,
    args: &[&str],
    stream_is_stderr: bool,
) -> (Vec<Vec<(String, String)>>, String) {
    let dir = env.path("journal");
    std::fs::create_dir_all(&dir).unwrap();
    if dir.join("socket").exists() {
        std::fs::remove_file(dir.join("socket")).unwrap();
    }
    let socket = UnixDatagram::bind(dir.join("socket")).unwrap();
    let stderr_path = env.path("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let named = if stream_is_stderr {
        stderr.metadata().unwrap()
    } else {
        std::fs::metadata(env.config()).unwrap()
    };
    // The exit code is the command's; the journal and stderr are what the tests look at.
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t tmpfs kdtest-run /run && mkdir -p /run/systemd/journal && \
             mount --bind \"$1\" /run/systemd/journal && shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&dir)
        .arg(assert_cmd::cargo::cargo_bin("kopi-docka"))
        .arg("--config")
        .arg(env.config())
        .args(args)
        .env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("KOPI_DOCKA_LOG")
        .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
        .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
        .env("JOURNAL_STREAM", format!("{}:{}", named.dev(), named.ino()))
        .stderr(stderr)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut entries = Vec::new();
    let mut buffer = vec![0_u8; 1 << 16];
    while let Ok(n) = socket.recv(&mut buffer) {
        if n > 0 {
            entries.push(journal_fields(&buffer[..n]));
        }
    }
    (entries, std::fs::read_to_string(&stderr_path).unwrap())
}

fn field<'a>(entry: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Under systemd, a warning reaches the journal natively with priority 4 (`journalctl -p
/// warning` shows it), info lines with 5; the error that ends the command carries `<3>`
/// (err). When `JOURNAL_STREAM` names another file (stderr redirected by the unit), the
/// lines stay on stderr.
#[test]
fn log_levels_reach_the_journal_as_priorities() {
    let env = Env::builder().init().build();
    tagged_junk(&env);
    let (entries, stderr) = under_systemd(&env, &["-v", "snapshots"], true);
    let warning = entries
        .iter()
        .find(|e| field(e, "MESSAGE").is_some_and(|m| m.contains("unreadable kopi-docka tags")))
        .unwrap_or_else(|| panic!("no warning in the journal: {entries:?}\nstderr: {stderr}"));
    assert_eq!(field(warning, "PRIORITY"), Some("4"), "{warning:?}");
    assert_eq!(
        field(warning, "SYSLOG_IDENTIFIER"),
        Some("kopi-docka"),
        "{warning:?}"
    );
    assert!(
        entries.iter().any(|e| field(e, "PRIORITY") == Some("5")),
        "-v info lines are priority 5 (notice): {entries:?}"
    );
    assert!(
        !stderr.contains("unreadable kopi-docka tags"),
        "the warning went to the journal, not also to stderr: {stderr}"
    );

    // The final error: a line journald files at priority 3.
    let (_, stderr) = under_systemd(&env, &["history", "--since", "not a date"], true);
    assert!(stderr.starts_with("<3>error: "), "{stderr}");

    // stderr is not the journal stream: plain lines on stderr, nothing on the socket.
    let (entries, stderr) = under_systemd(&env, &["snapshots"], false);
    assert!(entries.is_empty(), "{entries:?}");
    assert!(stderr.contains("unreadable kopi-docka tags"), "{stderr}");
    assert!(!stderr.contains("<3>"), "{stderr}");
}

/// Runs `script` in bash with the bash completion script sourced, and returns its stdout.
fn bash_with_completions(dir: &Path, script: &str) -> String {
    let completions = dir.join("kopi-docka.bash");
    let out = support::kopi_docka()
        .args(["admin", "completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&completions, &out.stdout).unwrap();
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(format!("source {}\n{script}", completions.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What bash offers after `kopi-docka WORDS... CUR<Tab>`.
fn bash_completes(dir: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let cur = words.last().copied().unwrap_or_default();
    let prev = words[words.len() - 2];
    let out = bash_with_completions(
        dir,
        &format!(
            "COMP_WORDS=({line}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
             _kopi__docka kopi-docka '{cur}' '{prev}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words.len() - 1
        ),
    );
    out.lines().map(str::to_owned).collect()
}

/// The bash script completes subcommands at every level, and the flags of one.
#[test]
fn bash_completes_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let top = bash_completes(dir.path(), &["kopi-docka", "adm"]);
    assert_eq!(top, ["admin"], "kopi-docka adm<Tab>");
    let admin = bash_completes(dir.path(), &["kopi-docka", "admin", "re"]);
    assert!(
        admin.contains(&"repo".to_owned()) && admin.contains(&"restart-stopped".to_owned()),
        "kopi-docka admin re<Tab>: {admin:?}"
    );
    let flags = bash_completes(dir.path(), &["kopi-docka", "backup", "--no-"]);
    assert_eq!(flags, ["--no-warm-pass"], "kopi-docka backup --no-<Tab>");
    let shells = bash_completes(dir.path(), &["kopi-docka", "admin", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell.to_owned()), "{shells:?}");
    }
}

/// The zsh and fish scripts name every subcommand (neither shell is installed here to run
/// them; bash's is run above).
#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    for shell in ["zsh", "fish"] {
        let out = support::kopi_docka()
            .args(["admin", "completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        for command in TOP_LEVEL {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
}

/// Every top-level subcommand (the man page and the completions must name each).
const TOP_LEVEL: [&str; 12] = [
    "units",
    "backup",
    "dry-run",
    "snapshots",
    "restore",
    "setup",
    "disaster-recovery",
    "doctor",
    "history",
    "admin",
    "version",
    "restart-stopped",
];

/// `admin man DIR` writes pages that `man -l` renders, and kopi-docka(1) lists every
/// subcommand; without DIR it prints kopi-docka(1).
#[test]
fn man_pages_render_and_list_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let report = support::kopi_docka()
        .args(["admin", "man", "--json"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let pages = report["pages"].as_array().unwrap();
    assert!(pages.len() > 30, "{report}");
    for page in pages {
        let page = Path::new(page.as_str().unwrap());
        assert!(page.starts_with(&out_dir), "{}", page.display());
        let rendered = render_man(page);
        assert!(rendered.contains("NAME"), "{}: {rendered}", page.display());
    }
    let main = render_man(&out_dir.join("kopi-docka.1"));
    for command in TOP_LEVEL.iter().filter(|c| **c != "restart-stopped") {
        assert!(
            main.contains(&format!("kopi-docka-{command}(1)")),
            "kopi-docka(1) names {command}:\n{main}"
        );
    }
    let admin = render_man(&out_dir.join("kopi-docka-admin.1"));
    assert!(
        admin.contains("kopi-docka-admin-restart-stopped(1)"),
        "{admin}"
    );
    // Without DIR: kopi-docka(1) on stdout, the same page.
    let printed = support::kopi_docka()
        .args(["admin", "man"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(
        printed.stdout,
        std::fs::read(out_dir.join("kopi-docka.1")).unwrap()
    );
}

/// `man -l PAGE` as plain text; fails the test when man reports a problem.
fn render_man(page: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `admin repo status --json` on `env`'s installation with these variables; the location it
/// opened, or the exit code and stderr when it failed.
fn status_with(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Result<String, (i32, String)> {
    let mut cmd = env.cmd(args);
    cmd.args(["admin", "repo", "status", "--json"])
        .env_remove("KOPI_DOCKA_REPOSITORY")
        .env_remove("KOPI_DOCKA_PASSWORD_FILE")
        .env_remove("KOPI_DOCKA_PASSWORD_COMMAND")
        .env_remove("KOPI_DOCKA_PASSWORD")
        .current_dir(env.dir());
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    if out.status.success() {
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(status["location"].as_str().unwrap().to_owned())
    } else {
        Err((
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// restic's conventions: `--repo` over `$KOPI_DOCKA_REPOSITORY` over the config;
/// `$KOPI_DOCKA_PASSWORD_FILE` or `_COMMAND` over the config's password; real repositories
/// with different passwords tell which one was opened.
#[test]
fn repository_and_password_from_flag_and_environment() {
    let env = Env::builder().init().build();
    let own = env.repo().display().to_string();
    // A second repository, with another password, made by restic itself.
    let other = env.path("other");
    let other_password = env.path("other.password");
    support::write_private(&other_password, "another password\n");
    let init = Command::new("restic")
        .args(["--no-cache", "init", "-q", "-r"])
        .arg(&other)
        .arg("--password-file")
        .arg(&other_password)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let other = other.display().to_string();
    let other_password = other_password.display().to_string();

    assert_eq!(status_with(&env, &[], &[]), Ok(own.clone()), "the config's");
    // The environment names the other repository; the config's password does not open it.
    let (code, stderr) = status_with(&env, &[], &[("KOPI_DOCKA_REPOSITORY", &other)]).unwrap_err();
    assert_eq!(code, 12, "wrong password: {stderr}");
    let with_file = [
        ("KOPI_DOCKA_REPOSITORY", other.as_str()),
        ("KOPI_DOCKA_PASSWORD_FILE", other_password.as_str()),
    ];
    assert_eq!(status_with(&env, &[], &with_file), Ok(other.clone()));
    let command = format!("cat {other_password}");
    let with_command = [
        ("KOPI_DOCKA_REPOSITORY", other.as_str()),
        ("KOPI_DOCKA_PASSWORD_COMMAND", command.as_str()),
    ];
    assert_eq!(status_with(&env, &[], &with_command), Ok(other.clone()));
    // The flag wins over the variable, and a relative path is the working directory's.
    assert_eq!(
        status_with(
            &env,
            &["--repo", "other"],
            &[
                ("KOPI_DOCKA_REPOSITORY", own.as_str()),
                ("KOPI_DOCKA_PASSWORD_FILE", other_password.as_str())
            ]
        ),
        Ok(other.clone())
    );
    // Both password variables, or a location that is none: usage errors that name the culprit.
    let both = [
        ("KOPI_DOCKA_PASSWORD_FILE", other_password.as_str()),
        ("KOPI_DOCKA_PASSWORD_COMMAND", command.as_str()),
    ];
    let (code, stderr) = status_with(&env, &[], &both).unwrap_err();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unset one of them"), "{stderr}");
    let (code, stderr) = status_with(&env, &["--repo", "nowhere:x"], &[]).unwrap_err();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--repo: `nowhere:x`"), "{stderr}");
}

/// `kopi-docka <args>` on `env` must succeed and print one JSON document on stdout.
fn json_of(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> serde_json::Value {
    let mut cmd = env.cmd(args);
    cmd.current_dir(env.dir());
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The commands that had no `--json` report as JSON now; their errors are JSON too.
#[test]
fn every_reporting_command_has_json() {
    let env = Env::builder().init().build();
    let config = env.config().display().to_string();

    let validated = json_of(&env, &["admin", "config", "validate", "--json"], &[]);
    assert_eq!(validated["path"], config.as_str());

    // `true` as the editor: the copy comes back unchanged, valid, and replaces the config.
    let edited = json_of(
        &env,
        &["admin", "config", "edit", "--json"],
        &[("VISUAL", "true")],
    );
    assert_eq!(edited["path"], config.as_str());
    assert!(Path::new(edited["previous"].as_str().unwrap()).exists());

    let units = env.path("units");
    let units_arg = units.to_str().unwrap();
    let report = json_of(
        &env,
        &[
            "admin",
            "service",
            "write-units",
            "--output-dir",
            units_arg,
            "--json",
        ],
        &[],
    );
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{report}");
    assert!(files.iter().all(|f| f["outcome"] == "created"), "{report}");
    assert_eq!(report["installed"], false);
    let again = json_of(
        &env,
        &[
            "admin",
            "service",
            "write-units",
            "--output-dir",
            units_arg,
            "--json",
        ],
        &[],
    );
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["outcome"] == "unchanged"),
        "{again}"
    );

    let changed = json_of(&env, &["admin", "repo", "change-password", "--json"], &[]);
    assert_eq!(
        changed["stored_in"],
        env.password_file().to_str().unwrap(),
        "{changed}"
    );
    json_of(&env, &["admin", "repo", "status", "--json"], &[]);

    // An error under the new flags: one JSON line on stderr with the exit code.
    std::fs::write(env.path("bad.toml"), "[repository]\npasword-file = \"x\"\n").unwrap();
    let out = env
        .cmd_with("bad.toml", &["admin", "config", "validate", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let error: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["message_type"], "exit_error");
    assert_eq!(error["code"], 2);
}

/// `admin config import-kopi-docka --json`: the config text and the notes, and with
/// `--write` where it went.
#[test]
fn the_kopi_docka_import_reports_as_json() {
    let env = Env::builder().build();
    let old = env.path("kopi-docka.json");
    std::fs::write(
        &old,
        r#"{"kopia":{"kopia_params":"filesystem --path /backup/kopia","password_file":"/etc/.kopi-docka.password"},
            "retention":{"latest":5,"daily":10}}"#,
    )
    .unwrap();
    let old = old.to_str().unwrap();
    let printed = json_of(
        &env,
        &["admin", "config", "import-kopi-docka", old, "--json"],
        &[],
    );
    assert!(
        printed["config"]
            .as_str()
            .unwrap()
            .contains("keep-last = 5")
    );
    assert!(printed["written"].is_null());
    assert!(
        printed["not_carried_over"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("kopia_params")),
        "{printed}"
    );
    let target = env.path("imported/config.toml");
    let written = support::kopi_docka()
        .arg("--config")
        .arg(&target)
        .args([
            "admin",
            "config",
            "import-kopi-docka",
            old,
            "--write",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(written.status.success(), "{written:?}");
    let written: serde_json::Value = serde_json::from_slice(&written.stdout).unwrap();
    assert_eq!(written["written"], target.to_str().unwrap());
}

/// `admin restart-stopped --json` (it needs the engine, even with nothing to start).
#[test]
fn restart_stopped_reports_as_json() {
    if !support::docker_tests_enabled("restart_stopped_reports_as_json") {
        return;
    }
    let env = Env::builder().build();
    let report = json_of(&env, &["admin", "restart-stopped", "--json"], &[]);
    assert_eq!(report["started"], serde_json::json!([]), "{report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
}
