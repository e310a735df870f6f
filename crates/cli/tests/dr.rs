//! Disaster recovery against a real engine and a real repository: a bundle refreshed by the
//! backup brings every unit back on a wiped host; the stock `age` opens it; damage and wrong
//! passphrases are refused; export writes no plaintext to disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::{Env, IDLE, IMAGE, docker, kopi_docka, volume_mountpoint};

const PASSPHRASE: &str = "kdtest-correct-horse-battery";

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// An installation whose config at `etc/config.toml` is the user's own (with a comment), with
/// a repository and a DR passphrase file beside it.
fn installation(extra: &str) -> Env {
    let env = Env::builder()
        .config_at("etc/config.toml")
        .header("# the user's own config, with a comment\n")
        .extra(&format!("{extra}\n[backup]\nhealth-timeout-seconds = 30\n"))
        .init()
        .build();
    support::write_private(&env.path("dr-passphrase"), &format!("{PASSPHRASE}\n"));
    env
}

fn export(env: &Env, file: &Path) {
    env.cmd(&["dr", "export", file.to_str().unwrap(), "--passphrase-file"])
        .arg(env.path("dr-passphrase"))
        .assert()
        .success();
}

fn import(env: &Env, bundle: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    env.cmd(&[
        "disaster-recovery",
        "import",
        bundle.to_str().unwrap(),
        "--passphrase-file",
    ])
    .arg(env.path("dr-passphrase"))
    .args(extra)
    .assert()
}

#[test]
fn a_wiped_host_comes_back_from_the_refreshed_bundle() {
    if !support::docker_tests_enabled("a_wiped_host_comes_back_from_the_refreshed_bundle") {
        return;
    }
    let mut env = installation(&format!(
        "[disaster-recovery]\nbundle-dir = \"{}\"\npassphrase-file = \"{}\"\nkeep = 1\n",
        "../bundles", "../dr-passphrase"
    ));
    let stack_dir = env.path("stack");
    std::fs::create_dir(&stack_dir).unwrap();
    support::copy_fixture("stack", &stack_dir);
    let stack = format!("{}-stack", env.prefix);
    env.resources.compose_up(&stack, &stack_dir);
    let solo = format!("{}-solo", env.prefix);
    let solo_volume = format!("{solo}-data");
    docker(&[
        "run",
        "-d",
        "--name",
        &solo,
        "-v",
        &format!("{solo_volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    std::fs::write(volume_mountpoint(&solo_volume).join("payload"), "solo data").unwrap();
    std::fs::write(
        volume_mountpoint(&format!("{stack}_db-data")).join("rows"),
        "42 rows",
    )
    .unwrap();

    // Two runs: each refreshes the bundle, and only the newest is kept.
    let mut last_run = Value::Null;
    for _ in 0..2 {
        last_run = env.json(&["backup", "--unit", &stack, "--unit", &solo, "--json"]);
    }
    let bundles: Vec<PathBuf> = std::fs::read_dir(env.path("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let bundle = env.path("bundle.age");
    std::fs::copy(&bundles[0], &bundle).unwrap();
    assert_eq!(
        std::fs::metadata(&bundles[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    check_bundle_names_the_points_of(&env, &bundle, &last_run);
    let env_file = std::fs::read_to_string(stack_dir.join(".env")).unwrap();
    let page = std::fs::read_to_string(stack_dir.join("html/index.html")).unwrap();
    // The config is etc/config.toml: its password file is etc/password.
    let repo_password = std::fs::read_to_string(env.path("etc/password")).unwrap();

    // A new host: no config, state, cache, containers, volumes, networks or project files.
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "1"])
            .current_dir(&stack_dir),
    );
    docker(&["rm", "-f", &solo]);
    docker(&["volume", "rm", &solo_volume]);
    for dir in ["etc", "state", "cache", "stack", "bundles"] {
        std::fs::remove_dir_all(env.path(dir)).unwrap();
    }

    let started = Instant::now();
    let out = import(&env, &bundle, &["--restore-all", "--json"]).success();
    let elapsed = started.elapsed();
    eprintln!(
        "disaster-recovery import --restore-all took {:.1}s",
        elapsed.as_secs_f64()
    );
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let restored = report["restored"].as_array().unwrap();
    assert_eq!(restored.len(), 2, "{report:#}");
    for r in restored {
        assert_eq!(r["outcome"]["errors"], serde_json::json!([]), "{report:#}");
    }
    assert!(running(&format!("{stack}_db_1")));
    assert!(running(&format!("{stack}_web_1")));
    assert!(running(&solo));
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&format!("{stack}_db-data")).join("rows"))
            .unwrap(),
        "42 rows"
    );
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&solo_volume).join("payload")).unwrap(),
        "solo data"
    );
    assert_eq!(
        std::fs::read_to_string(stack_dir.join("html/index.html")).unwrap(),
        page
    );
    assert_eq!(
        std::fs::read_to_string(stack_dir.join(".env")).unwrap(),
        env_file
    );
    check_installed_config_and_password(&env, &repo_password);
    // The installed config works for the next backup, under the old host name.
    env.cmd(&["backup", "--unit", &solo]).assert().success();
}

#[test]
fn bundles_open_with_stock_age_and_refuse_damage() {
    if !support::docker_tests_enabled("bundles_open_with_stock_age_and_refuse_damage") {
        return;
    }
    let env = installation("");
    let bundle = env.path("bundle.age");
    export(&env, &bundle);
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never overwritten.
    env.cmd(&[
        "dr",
        "export",
        bundle.to_str().unwrap(),
        "--passphrase-file",
    ])
    .arg(env.path("dr-passphrase"))
    .assert()
    .failure()
    .stderr(predicates::str::contains("never overwritten"));

    let listing = stock_age_listing(&env, &bundle);
    for name in [
        "config.toml",
        "repository.password",
        "recovery-info.json",
        "RECOVERY.md",
        "original-config.toml",
    ] {
        assert!(listing.lines().any(|l| l == name), "{name} in {listing}");
    }

    let sealed = std::fs::read(&bundle).unwrap();
    let mut flipped = sealed.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 0x01;
    std::fs::write(env.path("flipped.age"), &flipped).unwrap();
    std::fs::write(env.path("truncated.age"), &sealed[..sealed.len() - 100]).unwrap();
    let target = ["--dry-run"];
    for (file, expect) in [("flipped.age", "damaged"), ("truncated.age", "damaged")] {
        import(&env, &env.path(file), &target)
            .failure()
            .stderr(predicates::str::contains(expect));
    }
    let wrong = env.path("wrong");
    std::fs::write(&wrong, "not the passphrase at all").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.cmd(&[
        "dr",
        "import",
        bundle.to_str().unwrap(),
        "--dry-run",
        "--passphrase-file",
    ])
    .arg(&wrong)
    .assert()
    .failure()
    .stderr(predicates::str::contains("wrong passphrase"));
    // A passphrase file others may read is refused before anything is decrypted.
    let loose = env.path("loose");
    std::fs::write(&loose, format!("{PASSPHRASE}\n")).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.cmd(&[
        "dr",
        "import",
        bundle.to_str().unwrap(),
        "--dry-run",
        "--passphrase-file",
    ])
    .arg(&loose)
    .assert()
    .code(2)
    .stderr(predicates::str::contains("chmod 600"));
    // A dry run installs nothing.
    let elsewhere = env.path("new-etc/config.toml");
    kopi_docka()
        .arg("--config")
        .arg(&elsewhere)
        .args([
            "dr",
            "import",
            bundle.to_str().unwrap(),
            "--dry-run",
            "--passphrase-file",
        ])
        .arg(env.path("dr-passphrase"))
        .assert()
        .success()
        .stdout(predicates::str::contains("would install"));
    assert!(!elsewhere.exists());
}

#[test]
fn export_writes_no_plaintext_to_disk() {
    if !support::docker_tests_enabled("export_writes_no_plaintext_to_disk") {
        return;
    }
    let env = installation("");
    let password = std::fs::read_to_string(env.path("etc/password")).unwrap();
    let password = password.trim();
    // What the bundle seals: the repository password, the DR passphrase, and the user's config
    // (a token in it is as secret as the password; its comment line stands for it).
    let secrets = [
        ("the repository password", password),
        ("the DR passphrase", PASSPHRASE),
        ("the config", "# the user's own config, with a comment"),
    ];
    let bundle = env.path("bundle.age");
    let trace = env.path("strace.log");
    let bin = assert_cmd::cargo::cargo_bin("kopi-docka");
    support::run(
        Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=open,openat,creat,rename,renameat,renameat2,write,pwrite64,writev,pwritev",
                // Every byte written, so a plaintext file deleted before the end (its path
                // gone, its content unreadable afterwards) is still seen; all of it as \xHH,
                // so compressed streams can be decoded byte for byte.
                "-s",
                "10000000",
                "-xx",
                "-o",
            ])
            .arg(&trace)
            .arg(&bin)
            .arg("--config")
            .arg(env.path("etc/config.toml"))
            .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
            .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
            .args([
                "dr",
                "export",
                bundle.to_str().unwrap(),
                "--passphrase-file",
            ])
            .arg(env.path("dr-passphrase")),
    );
    let log = std::fs::read_to_string(&trace).unwrap();
    let written: Vec<String> = log
        .lines()
        .filter(|l| {
            l.contains("O_WRONLY")
                || l.contains("O_RDWR")
                || l.contains("O_CREAT")
                || l.contains("rename")
        })
        .filter_map(|l| strace_strings(l).into_iter().next())
        .map(|p| String::from_utf8(p).unwrap())
        .filter(|p| !p.starts_with("/dev/"))
        .collect();
    assert!(written.iter().any(|p| Path::new(p) == bundle), "{log}");
    for path in &written {
        let p = Path::new(path);
        let allowed =
            p == bundle || p.starts_with(env.path("state")) || p.starts_with(env.path("cache"));
        assert!(allowed, "export wrote {path}");
        if let Ok(content) = std::fs::read(p) {
            for (what, secret) in secrets {
                assert!(
                    !contains(&content, secret.as_bytes()),
                    "{path} holds {what} in plaintext"
                );
            }
        }
    }
    let streams = written_streams(&log);
    assert!(!streams.is_empty(), "no write seen in the trace: {log}");
    for (stream, bytes) in &streams {
        for (how, plain) in
            std::iter::once(("as written".to_owned(), bytes.clone())).chain(decompressed(bytes))
        {
            for (what, secret) in secrets {
                assert!(
                    !contains(&plain, secret.as_bytes()),
                    "{what} was written in plaintext ({how}) to {stream}"
                );
            }
        }
    }
    let sealed = std::fs::read(&bundle).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(!contains(&sealed, password.as_bytes()));
}

/// The quoted strings of one `strace -xx` line (paths, write buffers), decoded.
fn strace_strings(line: &str) -> Vec<Vec<u8>> {
    let mut strings = Vec::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        bytes.push(u8::from_str_radix(&hex, 16).unwrap());
                    }
                    Some('n') => bytes.push(b'\n'),
                    Some(other) => bytes.extend(other.to_string().as_bytes()),
                    None => {}
                },
                other => bytes.extend(other.to_string().as_bytes()),
            }
        }
        strings.push(bytes);
    }
    strings
}

/// Every byte the traced processes wrote, joined per file descriptor (by process and fd, and
/// by fd alone for the threads of one process), plus every path and buffer on its own.
fn written_streams(log: &str) -> Vec<(String, Vec<u8>)> {
    let mut streams: std::collections::BTreeMap<String, Vec<u8>> =
        std::collections::BTreeMap::new();
    let mut singles = Vec::new();
    for (n, line) in log.lines().enumerate() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let strings = strace_strings(line);
        for (i, s) in strings.iter().enumerate() {
            singles.push((format!("string {i} of trace line {}", n + 1), s.clone()));
        }
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        if !["write", "pwrite64", "writev", "pwritev"].contains(&name) {
            continue;
        }
        let fd = args.split(',').next().unwrap_or_default().to_owned();
        for bytes in strings {
            streams
                .entry(format!("fd {fd} of pid {pid}"))
                .or_default()
                .extend(&bytes);
            streams.entry(format!("fd {fd}")).or_default().extend(bytes);
        }
    }
    streams.into_iter().chain(singles).collect()
}

/// What every gzip member and zstd frame found anywhere in `bytes` decodes to (as far as it
/// decodes: a stream cut short or followed by other bytes still yields its plaintext).
fn decompressed(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    const GZIP: &[u8] = &[0x1f, 0x8b, 0x08];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    let read_all = |mut reader: Box<dyn std::io::Read + '_>| {
        let mut out = Vec::new();
        let mut buf = [0_u8; 8192];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    };
    let mut found = Vec::new();
    for at in 0..bytes.len() {
        let rest = &bytes[at..];
        if rest.starts_with(GZIP) {
            let plain = read_all(Box::new(flate2::read::GzDecoder::new(rest)));
            found.push((format!("gzip at byte {at}"), plain));
        } else if rest.starts_with(ZSTD)
            && let Ok(decoder) = zstd::stream::read::Decoder::new(rest)
        {
            let plain = read_all(Box::new(decoder.single_frame()));
            found.push((format!("zstd at byte {at}"), plain));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bundle installed the config and the repository's password, both 0600.
fn check_installed_config_and_password(env: &Env, repo_password: &str) {
    let config = env.path("etc/config.toml");
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let password = env.path("etc/repository.password");
    assert_eq!(
        std::fs::metadata(&password).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&password).unwrap().trim(),
        repo_password.trim()
    );
}

/// The bundle was refreshed by the run that reported `run`: it names that run's restore points.
fn check_bundle_names_the_points_of(env: &Env, bundle: &Path, run: &Value) {
    let info: Value =
        serde_json::from_str(&stock_age_file(env, bundle, "recovery-info.json")).unwrap();
    for unit in run["units"].as_array().unwrap() {
        let named = info["units"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["unit"] == unit["name"] && u["backup_id"] == unit["backup_id"]);
        assert!(
            named,
            "{} of the run not in the bundle: {info:#}",
            unit["backup_id"]
        );
    }
}

/// Decrypts `bundle` with Debian's `age` and lists the tar inside.
fn stock_age_listing(env: &Env, bundle: &Path) -> String {
    let tar = stock_age_decrypt(env, bundle);
    let listing = support::run(Command::new("tar").arg("-tf").arg(&tar));
    String::from_utf8_lossy(&listing.stdout).into_owned()
}

/// The file `name` from the tar inside `bundle`, decrypted with Debian's `age`.
fn stock_age_file(env: &Env, bundle: &Path, name: &str) -> String {
    let tar = stock_age_decrypt(env, bundle);
    let file = support::run(Command::new("tar").arg("-xOf").arg(&tar).arg(name));
    String::from_utf8_lossy(&file.stdout).into_owned()
}

/// Decrypts `bundle` with Debian's `age` into a tar and returns its path. `age` reads its
/// passphrase from the terminal only: `script` gives it one.
fn stock_age_decrypt(env: &Env, bundle: &Path) -> PathBuf {
    let tar = env.path("bundle.tar");
    if tar.exists() {
        std::fs::remove_file(&tar).unwrap();
    }
    let mut age = Command::new("script")
        .args(["-qec"])
        .arg(format!("age -d -o {} {}", tar.display(), bundle.display()))
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        age.stdin.as_mut().unwrap(),
        format!("{PASSPHRASE}\n").as_bytes(),
    )
    .unwrap();
    assert!(age.wait().unwrap().success());
    tar
}

/// A passphrase typed at the prompt is taken as typed: its leading and trailing spaces are
/// part of it (only the Enter goes). The bundle is sealed by the stock `age` with such a
/// passphrase; the import reads it on a pseudo-terminal (`script`).
#[test]
fn a_typed_passphrase_keeps_its_spaces() {
    if !support::docker_tests_enabled("a_typed_passphrase_keeps_its_spaces") {
        return;
    }
    let env = installation("");
    let bundle = env.path("bundle.age");
    export(&env, &bundle);
    let tar = stock_age_decrypt(&env, &bundle);
    let spaced = "  kdtest spaced passphrase  ";
    let sealed = env.path("spaced.age");
    let (ok, screen) = on_a_terminal(
        &format!("age -p -o {} {}", sealed.display(), tar.display()),
        &format!("{spaced}\n{spaced}\n"),
    );
    assert!(ok, "{screen}");

    let import = format!(
        "{} --config {} dr import {} --dry-run",
        assert_cmd::cargo::cargo_bin("kopi-docka").display(),
        env.path("elsewhere/config.toml").display(),
        sealed.display()
    );
    let (ok, screen) = on_a_terminal(&import, &format!("{spaced}\n"));
    assert!(ok, "the passphrase as typed opens the bundle:\n{screen}");
    assert!(screen.contains("would install"), "{screen}");
    let (ok, screen) = on_a_terminal(&import, &format!("{}\n", spaced.trim()));
    assert!(
        !ok,
        "the passphrase without its spaces is another one:\n{screen}"
    );
    assert!(screen.contains("wrong passphrase"), "{screen}");
}

/// Runs the shell `command` on a pseudo-terminal (`script`), types `input`, and returns
/// whether it succeeded and what the terminal showed.
fn on_a_terminal(command: &str, input: &str) -> (bool, String) {
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("KOPI_DOCKA_DR_PASSPHRASE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
