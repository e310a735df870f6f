//! `kopi-docka setup` as a user meets it: the real binary in a pseudo-terminal (rexpect),
//! answers typed at its questions and the screen read back. A local repository end to end
//! (schedule, units, a notification test message to a real HTTP listener), an SFTP server on
//! a Tailscale peer (host key pinned, a key generated and installed with ssh-copy-id
//! semantics, against a real sshd), and a failed connection test that writes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;

use rexpect::process::WaitStatus;
use rexpect::session::PtySession;
use support::Sshd;

const TIMEOUT_MS: u64 = 60_000;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `kopi-docka setup ARGS` in a pseudo-terminal, installed in `dir` (config in `dir/etc`).
/// rexpect turns the terminal's echo off; `stty echo` turns it back on, as on a user's
/// terminal, so what is typed shows on the screen unless the program hides it (secrets).
fn wizard(dir: &Path, args: &[&str], path_prefix: Option<&Path>) -> PtySession {
    let mut inner = support::kopi_docka_std_at(&dir.join("etc/config.toml"), dir);
    inner.arg("setup").args(args);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("stty echo && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(dir);
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("TERM", "dumb")
        .env("NO_COLOR", "1")
        .env("USER", "root");
    if let Some(prefix) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", prefix.display()));
    }
    rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).unwrap()
}

/// Waits for `text` on the screen; returns what came before it.
fn expect(p: &mut PtySession, text: &str) -> String {
    p.exp_string(text)
        .unwrap_or_else(|e| panic!("waiting for `{text}` on the screen: {e}"))
}

/// Reads the rest of the screen and the exit code.
fn finish(p: &mut PtySession) -> (String, i32) {
    let rest = p.exp_eof().unwrap();
    let code = match p.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => code,
        other => panic!("setup did not exit: {other:?}\n{rest}"),
    };
    (rest, code)
}

/// One HTTP request answered with `200 OK`; the request's text is sent on the channel.
fn http_listener() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook/secret-token-4711",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            request.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        request.push_str(&String::from_utf8_lossy(&body));
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        tx.send(request).unwrap();
    });
    (url, rx)
}

#[test]
fn a_local_setup_answered_at_the_terminal_works_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let repo = dir.join("repo");
    let units = dir.join("units");
    let (url, requests) = http_listener();
    let mut p = wizard(dir, &["--unit-dir", units.to_str().unwrap()], None);

    let screen = expect(&mut p, "Where should the backups go?");
    assert!(screen.contains("does not survive the day"), "{screen}");
    for kind in [
        "local",
        "sftp",
        "tailscale",
        "s3",
        "b2",
        "azure",
        "gcs",
        "rest",
        "rclone",
        "webdav",
    ] {
        assert!(
            screen.contains(&format!(") {kind} ")),
            "{kind} not offered:\n{screen}"
        );
    }
    p.send_line("1").unwrap();
    expect(&mut p, "Repository directory");
    p.send_line(repo.to_str().unwrap()).unwrap();
    expect(&mut p, "Keep daily / weekly / monthly backups");
    p.send_line("3 2 1").unwrap();
    expect(&mut p, "When should backups run?");
    p.send_line("sometimes").unwrap();
    expect(&mut p, "is not a calendar expression");
    expect(&mut p, "When should backups run?");
    p.send_line("*-*-* 03:30:00").unwrap();
    expect(&mut p, "Notification URL");
    p.send_line(&url).unwrap();
    let screen = expect(&mut p, "sent; check that it arrived");
    assert!(
        !screen.contains("secret-token-4711"),
        "the URL was echoed:\n{screen}"
    );
    expect(&mut p, "Testing the connection");
    expect(&mut p, "no repository there yet: it will be created");
    expect(&mut p, "disaster-recovery bundle now");
    p.send_line("n").unwrap();
    let (rest, code) = finish(&mut p);
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("created the repository"), "{rest}");
    assert!(rest.contains("schedule: *-*-* 03:30:00"), "{rest}");

    let request = requests.recv().unwrap();
    assert!(
        request.starts_with("POST /hook/secret-token-4711"),
        "{request}"
    );
    assert!(request.contains("test notification"), "{request}");

    let config = dir.join("etc/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    for expected in [
        "keep-daily = 3",
        "keep-weekly = 2",
        "keep-monthly = 1",
        "schedule = \"*-*-* 03:30:00\"",
        "url-file = ",
    ] {
        assert!(text.contains(expected), "`{expected}` not in:\n{text}");
    }
    assert!(!text.contains("secret-token"), "{text}");
    assert_eq!(mode(&config), 0o600);
    let url_file = dir.join("etc/notification.url");
    assert_eq!(mode(&url_file), 0o600);
    assert_eq!(std::fs::read_to_string(&url_file).unwrap().trim(), url);
    let timer = std::fs::read_to_string(units.join("kopi-docka.timer")).unwrap();
    assert!(timer.contains("OnCalendar=*-*-* 03:30:00"), "{timer}");
    assert!(repo.join("config").is_file());

    // What setup wrote works: the repository opens with it.
    support::kopi_docka_at(&config, dir)
        .arg("snapshots")
        .assert()
        .success();
}

/// A fake `tailscale` on PATH that prints a recorded `tailscale status --json`. No tailscaled
/// can run here; this stand-in is the only fake in the test, and only the JSON comes from it:
/// the peer's address is 127.0.0.1, where a real sshd listens.
fn fake_tailscale(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/tailscale/status-loopback-peer.json");
    let script = bin.join("tailscale");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1 $2\" = \"status --json\" ] || exit 64\nexec cat '{}'\n",
            fixture.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// An ssh config that logs in with the server's test key (the user's own key, as
/// `ssh-copy-id` would use it).
fn ssh_config(dir: &Path, sshd: &Sshd) -> PathBuf {
    let file = dir.join("ssh_config");
    std::fs::write(
        &file,
        format!("Host *\n  IdentityFile {}\n", sshd.user_key().display()),
    )
    .unwrap();
    file
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one terminal session, answer by answer"
)]
fn a_tailscale_peer_becomes_the_sftp_server_with_a_pinned_host_key_and_a_generated_key() {
    let dir = tempfile::Builder::new()
        .prefix("kd-wiz-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = dir.path();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let sshd = Sshd::start_with_home(&home);
    let bin = fake_tailscale(dir);
    let config = ssh_config(dir, &sshd);
    let repo = dir.join("repo");
    let mut p = wizard(dir, &["--ssh-config", config.to_str().unwrap()], Some(&bin));

    expect(&mut p, "Where should the backups go?");
    p.send_line("3").unwrap();
    let screen = expect(&mut p, "Which peer?");
    assert!(screen.contains("backup-peer"), "{screen}");
    assert!(screen.contains("127.0.0.1"), "{screen}");
    assert!(screen.contains("linux"), "{screen}");
    assert!(
        !screen.contains("laptop"),
        "an offline peer is offered:\n{screen}"
    );
    assert!(screen.contains("1 offline peers not shown"), "{screen}");
    p.send_line("1").unwrap();
    expect(&mut p, "User to log in as");
    p.send_line("root").unwrap();
    expect(&mut p, "SSH port");
    p.send_line(&sshd.port().to_string()).unwrap();
    expect(&mut p, "Directory on the server");
    p.send_line(repo.to_str().unwrap()).unwrap();
    let screen = expect(&mut p, "Pin this key?");
    let fingerprint = support::run(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(sshd.dir().join("host_ed25519.pub")),
    );
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        screen.contains(&fingerprint),
        "{fingerprint} not shown:\n{screen}"
    );
    p.send_line("yes").unwrap();
    expect(&mut p, "Generate an SSH key for kopi-docka");
    p.send_line("y").unwrap();
    expect(&mut p, "installed in ~root/.ssh/authorized_keys");
    expect(&mut p, "Keep daily / weekly / monthly backups");
    p.send_line("").unwrap();
    expect(&mut p, "When should backups run?");
    p.send_line("none").unwrap();
    expect(&mut p, "Notification URL");
    p.send_line("").unwrap();
    expect(&mut p, "it will be created");
    expect(&mut p, "disaster-recovery bundle now");
    p.send_line("n").unwrap();
    let (rest, code) = finish(&mut p);
    assert_eq!(code, 0, "{rest}\n{}", sshd.log());
    assert!(rest.contains("on the Tailscale peer backup-peer"), "{rest}");

    // The key: generated in the config dir, private, and installed for that user only.
    let key = dir.join("etc/ssh/id_ed25519");
    assert_eq!(mode(&key), 0o600);
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let authorized = home.join(".ssh/authorized_keys");
    assert_eq!(mode(&home.join(".ssh")), 0o700);
    assert_eq!(mode(&authorized), 0o600);
    assert_eq!(
        std::fs::read_to_string(&authorized).unwrap().trim(),
        public.trim()
    );
    // It logs in on its own (no other key offered).
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{} {}\n", sshd.port(), sshd.host_key()),
    )
    .unwrap();
    let status = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(&key)
        .args(["-p", &sshd.port().to_string(), "root@127.0.0.1", "true"])
        .status()
        .unwrap();
    assert!(status.success(), "the generated key does not log in");

    let config = dir.join("etc/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("host-key = \"{}\"", sshd.host_key())),
        "{text}"
    );
    assert!(
        text.contains(&format!("key = \"{}\"", key.display())),
        "{text}"
    );
    assert!(repo.join("config").is_file());
    support::kopi_docka_at(&config, dir)
        .arg("snapshots")
        .assert()
        .success();
    Sshd::assert_no_ssh_left(dir);
}

#[test]
fn a_failed_connection_test_says_what_to_fix_and_writes_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("kd-wiz-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = dir.path();
    let sshd = Sshd::shared();
    let config = ssh_config(dir, sshd);
    let repo = dir.join("repo");
    let mut p = wizard(dir, &["--ssh-config", config.to_str().unwrap()], None);

    expect(&mut p, "Where should the backups go?");
    p.send_line("2").unwrap();
    expect(&mut p, "SFTP server");
    p.send_line("127.0.0.1").unwrap();
    expect(&mut p, "User to log in as");
    // No such user on the server: the login is refused.
    p.send_line("kd-no-such-user").unwrap();
    expect(&mut p, "SSH port");
    p.send_line(&sshd.port().to_string()).unwrap();
    expect(&mut p, "Directory on the server");
    p.send_line(repo.to_str().unwrap()).unwrap();
    expect(&mut p, "Pin this key?");
    p.send_line("yes").unwrap();
    expect(&mut p, "Generate an SSH key for kopi-docka");
    p.send_line("n").unwrap();
    expect(&mut p, "Keep daily / weekly / monthly backups");
    p.send_line("").unwrap();
    expect(&mut p, "When should backups run?");
    p.send_line("daily").unwrap();
    expect(&mut p, "Notification URL");
    p.send_line("").unwrap();
    expect(&mut p, "Testing the connection");
    let (rest, code) = finish(&mut p);
    assert_ne!(code, 0, "{rest}");
    assert!(
        rest.contains("the connection test failed; nothing was written"),
        "{rest}"
    );
    assert!(
        rest.contains("refused the login as `kd-no-such-user`"),
        "{rest}"
    );
    assert!(
        rest.contains("authorized_keys"),
        "no hint what to fix:\n{rest}"
    );
    // Nothing: no config, no password, no repository.
    let etc = dir.join("etc");
    let left: Vec<_> = std::fs::read_dir(&etc)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "setup wrote {left:?}");
    assert!(!repo.exists());
    Sshd::assert_no_ssh_left(dir);
}

#[test]
fn every_question_has_a_flag_for_a_non_interactive_setup() {
    let dir = tempfile::Builder::new()
        .prefix("kd-wiz-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = dir.path();
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let sshd = Sshd::start_with_home(&home);
    let bin = fake_tailscale(dir);
    let ssh_config = ssh_config(dir, &sshd);
    let repo = dir.join("repo");
    let units = dir.join("units");
    let (url, requests) = http_listener();
    let url_file = dir.join("url");
    support::write_private(&url_file, &format!("{url}\n"));
    let passphrase = dir.join("passphrase");
    support::write_private(&passphrase, "correct horse battery staple\n");
    let bundle = dir.join("dr.age");
    let fingerprint = support::run(
        Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(sshd.dir().join("host_ed25519.pub")),
    );
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = sshd.port().to_string();
    let out = support::kopi_docka_at(&dir.join("etc/config.toml"), dir)
        .env("PATH", path)
        .args([
            "setup",
            "--non-interactive",
            "--json",
            "--tailscale-peer",
            "backup-peer",
            "--remote-user",
            "root",
            "--remote-port",
            &port,
            "--remote-path",
            repo.to_str().unwrap(),
            "--host-key",
            &fingerprint,
            "--ssh-config",
            ssh_config.to_str().unwrap(),
            "--generate-ssh-key",
            "--keep-daily",
            "5",
            "--schedule",
            "Mon..Fri 22:30",
            "--unit-dir",
            units.to_str().unwrap(),
            "--notify-url-file",
            url_file.to_str().unwrap(),
            "--dr-bundle",
            bundle.to_str().unwrap(),
            "--dr-passphrase-file",
            passphrase.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", sshd.log());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["repository_action"], "created", "{report:#}");
    assert_eq!(report["tailscale_peer"], "backup-peer", "{report:#}");
    assert_eq!(report["schedule"], "Mon..Fri 22:30", "{report:#}");
    assert_eq!(report["units"]["status"], "written", "{report:#}");
    assert_eq!(report["dr_bundle"], bundle.to_str().unwrap(), "{report:#}");
    assert!(bundle.is_file());
    assert!(requests.recv().unwrap().contains("test notification"));
    let key = dir.join("etc/ssh/id_ed25519.pub");
    assert_eq!(
        std::fs::read_to_string(home.join(".ssh/authorized_keys"))
            .unwrap()
            .trim(),
        std::fs::read_to_string(&key).unwrap().trim()
    );
    let timer = std::fs::read_to_string(units.join("kopi-docka.timer")).unwrap();
    assert!(timer.contains("OnCalendar=Mon..Fri 22:30"), "{timer}");
    Sshd::assert_no_ssh_left(dir);
}

#[test]
fn an_s3_location_with_credentials_typed_at_the_terminal() {
    let server = support::servers::moto();
    let bucket = format!("{}-wiz", support::unique_prefix());
    server.create_bucket(&bucket);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut p = wizard(dir, &[], None);

    expect(&mut p, "Where should the backups go?");
    p.send_line("4").unwrap();
    expect(&mut p, "S3 endpoint URL");
    p.send_line(&server.url()).unwrap();
    expect(&mut p, "Bucket (it must exist)");
    p.send_line(&bucket).unwrap();
    expect(&mut p, "Path inside the bucket");
    p.send_line("host1").unwrap();
    expect(&mut p, "Access key ID");
    p.send_line("kdtest-key-id").unwrap();
    expect(&mut p, "Secret access key (not shown)");
    p.send_line("kdtest-secret-4711").unwrap();
    expect(&mut p, "Region");
    p.send_line("").unwrap();
    expect(&mut p, "Keep daily / weekly / monthly backups");
    p.send_line("").unwrap();
    expect(&mut p, "When should backups run?");
    p.send_line("none").unwrap();
    expect(&mut p, "Notification URL");
    p.send_line("").unwrap();
    expect(&mut p, "it will be created");
    expect(&mut p, "disaster-recovery bundle now");
    p.send_line("n").unwrap();
    let (rest, code) = finish(&mut p);
    assert_eq!(code, 0, "{rest}");
    assert!(!rest.contains("kdtest-secret-4711"), "{rest}");

    let env_file = dir.join("etc/repository.env");
    assert_eq!(mode(&env_file), 0o600);
    let credentials = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        credentials.contains("AWS_SECRET_ACCESS_KEY=kdtest-secret-4711\n"),
        "{credentials}"
    );
    assert!(
        credentials.contains("AWS_ACCESS_KEY_ID=kdtest-key-id\n"),
        "{credentials}"
    );
    let config = dir.join("etc/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("kdtest-secret"), "{text}");
    assert!(text.contains("env-file = "), "{text}");
    assert!(text.contains(&format!("/{bucket}/host1")), "{text}");
    support::kopi_docka_at(&config, dir)
        .arg("snapshots")
        .assert()
        .success();
}
