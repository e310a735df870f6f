//! Notifications, healthcheck pings and Prometheus metrics, against real servers on loopback:
//! an HTTP server written here, Debian's aiosmtpd for email, and the Prometheus client
//! library's own parser for the textfile. Nothing leaves 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{DockerResources, Env, IDLE, IMAGE, docker};

/// One request the server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that records every request and answers `status`.
struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpServer {
    fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                if let Some(request) = read_request(&stream) {
                    seen.lock().unwrap().push(request);
                }
                let mut stream = stream;
                let reason = if status == 200 { "OK" } else { "Error" };
                // The client may already be gone; the recorded request is what counts.
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                );
            }
        });
        Self { port, requests }
    }
    fn url(&self, path: &str) -> String {
        format!("127.0.0.1:{}{path}", self.port)
    }
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
    fn find(&self, prefix: &str) -> Request {
        self.requests()
            .into_iter()
            .find(|r| r.target.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request to {prefix}: {:?}", self.requests()))
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
/// An installation (no repository yet) with `extra` in its config.
fn installation(extra: &str) -> Env {
    Env::builder().extra(extra).build()
}

#[test]
fn notification_test_reaches_every_http_service() {
    let server = HttpServer::start(200);
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        secret_file.path(),
        format!("gotify://{}\n", server.url("/gotify/TOKEN")),
    )
    .unwrap();
    let env = installation(&format!(
        r#"
[[notifications.targets]]
url = "json://{webhook}"
[[notifications.targets]]
url = "ntfy://alice:s3cret@{ntfy}"
[[notifications.targets]]
url-file = "{file}"
[[notifications.targets]]
url = "http://{discord}"
kind = "discord"
[[notifications.targets]]
url = "http://{slack}"
kind = "slack"
[[notifications.targets]]
url-env = "KD_TEST_TELEGRAM_URL"
kind = "telegram"
"#,
        webhook = server.url("/hook"),
        ntfy = server.url("/backups"),
        file = secret_file.path().display(),
        discord = server.url("/api/webhooks/1/abc"),
        slack = server.url("/services/T/B/C"),
    ));
    let out = env
        .cmd(&["-v", "admin", "notification", "test"])
        .env(
            "KD_TEST_TELEGRAM_URL",
            format!("http://{}", server.url("/bot1:abc/sendMessage?chat_id=42")),
        )
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("sent")).count(),
        6,
        "{stdout}"
    );
    // Neither on stdout nor in the (verbose) log.
    for secret in ["TOKEN", "1:abc", "s3cret"] {
        support::assert_not_leaked(secret, out.get_output(), &[&env.path("state")]);
    }

    let webhook = server.find("/hook").json();
    assert_eq!(webhook["type"], "success");
    assert!(
        webhook["title"]
            .as_str()
            .unwrap()
            .contains("test notification")
    );
    let ntfy = server.find("/backups");
    assert_eq!(ntfy.method, "POST");
    assert!(
        ntfy.headers["title"].contains("test notification"),
        "{ntfy:?}"
    );
    assert!(ntfy.body.contains("kopi-docka can reach you"));
    // `user:password@` becomes HTTP basic auth (base64 of alice:s3cret).
    assert_eq!(ntfy.headers["authorization"], "Basic YWxpY2U6czNjcmV0");
    let gotify = server.find("/gotify/message?token=TOKEN").json();
    assert!(
        gotify["message"]
            .as_str()
            .unwrap()
            .contains("can reach you")
    );
    assert!(
        server.find("/api/webhooks/1/abc").json()["content"]
            .as_str()
            .unwrap()
            .starts_with("**kopi-docka on ")
    );
    assert!(
        server.find("/services/T/B/C").json()["text"]
            .as_str()
            .unwrap()
            .starts_with("*kopi-docka on ")
    );
    let telegram = server.find("/bot1:abc/sendMessage").json();
    assert_eq!(telegram["chat_id"], "42");
    assert!(
        telegram["text"]
            .as_str()
            .unwrap()
            .contains("test notification")
    );
}

#[test]
fn failed_delivery_is_reported_without_the_secret() {
    let failing = HttpServer::start(500);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = installation(&format!(
        "[[notifications.targets]]\nurl = \"json://{}\"\n\
         [[notifications.targets]]\nurl = \"json://127.0.0.1:{closed}/other-secret\"\n",
        failing.url("/secret-token")
    ));
    let out = env
        .cmd(&["-v", "admin", "notification", "test"])
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("HTTP 500"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("FAILED")).count(),
        2,
        "{stdout}"
    );
    support::assert_not_leaked("secret", out.get_output(), &[&env.path("state")]);
    assert_eq!(failing.requests().len(), 1);
}

/// Debian's aiosmtpd, writing what it receives into a maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3-aiosmtpd (Debian) must be installed for this test; scripts/test.sh installs it");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            maildir,
        }
    }
    fn messages(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| std::fs::read_to_string(e.path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            eprintln!("warning: cannot stop aiosmtpd: {error}");
        }
        // Reap it; its exit status says nothing about the test.
        let _ = self.child.wait();
    }
}

#[test]
fn email_reaches_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(dir.path());
    let env = installation(&format!(
        "[[notifications.targets]]\nurl = \"mailto://127.0.0.1:{}?to=ops@example.com&from=kd@example.com\"\n",
        smtp.port
    ));
    env.cmd(&["admin", "notification", "test"])
        .assert()
        .success();
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert!(mail.contains("From: kd@example.com"), "{mail}");
    assert!(mail.contains("To: ops@example.com"), "{mail}");
    assert!(mail.contains("Subject: kopi-docka on "), "{mail}");
    assert!(mail.contains("test notification"), "{mail}");
    assert!(
        mail.contains("If you read this, kopi-docka can reach you here."),
        "{mail}"
    );
}

/// aiosmtpd that requires authentication and offers only AUTH LOGIN (as Microsoft 365's
/// submission endpoint does), accepting `me+kd` / `pa+ss w`; it records the mechanism used and
/// the EHLO name in `auth.log`.
const LOGIN_ONLY_SERVER: &str = r#"
import sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
port, maildir, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def check(server, session, envelope, mechanism, data):
    ok = (mechanism == "LOGIN" and isinstance(data, LoginPassword)
          and data.login == b"me+kd" and data.password == b"pa+ss w")
    with open(log, "a") as f:
        f.write(f"{mechanism} {ok} {session.host_name}\n")
    return AuthResult(success=ok)
controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port,
                        authenticator=check, auth_required=True, auth_require_tls=False,
                        auth_exclude_mechanism=["PLAIN"])
controller.start()
while True:
    time.sleep(3600)
"#;

/// A server that offers only AUTH LOGIN, a password and a user with `+` in them, and a UTF-8
/// host name in the subject: delivered, with the subject encoded (RFC 2047) and a Message-ID.
#[test]
fn email_with_login_auth_and_a_utf8_subject() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (maildir, log) = (dir.path().join("maildir"), dir.path().join("auth.log"));
    let child = Command::new("/usr/bin/python3")
        .args(["-c", LOGIN_ONLY_SERVER, &port.to_string()])
        .arg(&maildir)
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let smtp = SmtpServer {
        child,
        port,
        maildir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = installation(&format!(
        "hostname = \"Größe-Server\"\n\
         [[notifications.targets]]\n\
         url = \"mailto://me+kd:pa+ss%20w@127.0.0.1:{}?to=ops+alerts@example.com&from=kd@example.com\"\n",
        smtp.port
    ));
    env.cmd(&["admin", "notification", "test"])
        .assert()
        .success();
    let auth = std::fs::read_to_string(&log).unwrap();
    assert!(auth.starts_with("LOGIN True "), "{auth}");
    // The EHLO name is a fully qualified name or an address literal, never a bare word.
    let ehlo = auth.split_whitespace().nth(2).unwrap();
    assert!(ehlo.contains('.') || ehlo.starts_with('['), "{ehlo}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert!(mail.contains("To: ops+alerts@example.com"), "{mail}");
    assert!(mail.contains("Subject: kopi-docka on =?utf-8?"), "{mail}");
    assert!(mail.contains("Message-ID: <"), "{mail}");
    // The subject decodes back to what was sent (Python's email parser, as a client would).
    let decoded = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys, email, email.policy; \
             m = email.message_from_string(sys.stdin.read(), policy=email.policy.default); \
             print(m['subject'])",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(mail.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&decoded.stdout).trim(),
        "kopi-docka on Größe-Server: test notification"
    );
}

/// A self-signed certificate for 127.0.0.1 (openssl), trusted by the client through
/// `SSL_CERT_FILE`: (cert, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// STARTTLS (`mailtos://`) and implicit TLS (`mode=ssl`) against aiosmtpd with a certificate
/// the client trusts; an untrusted certificate is refused.
#[test]
fn email_over_starttls_and_implicit_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    for (name, args, query) in [
        ("starttls", ["--tlscert", cert_s, "--tlskey", key_s], ""),
        (
            "implicit",
            ["--smtpscert", cert_s, "--smtpskey", key_s],
            "&mode=ssl",
        ),
    ] {
        let server_dir = dir.path().join(name);
        std::fs::create_dir(&server_dir).unwrap();
        let smtp = SmtpServer::start_with(&server_dir, &args);
        let env = installation(&format!(
            "[[notifications.targets]]\nurl = \"mailtos://127.0.0.1:{}?to=ops@example.com{query}\"\n",
            smtp.port
        ));
        // Without trusting the certificate: refused, nothing delivered.
        let out = env
            .cmd(&["admin", "notification", "test"])
            .env("SSL_CERT_FILE", "/nonexistent.pem")
            .assert()
            .code(1);
        let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(stdout.contains("TLS"), "{name}: {stdout}");
        assert!(smtp.messages().is_empty(), "{name}");
        env.cmd(&["admin", "notification", "test"])
            .env("SSL_CERT_FILE", &cert)
            .assert()
            .success();
        let messages = smtp.messages();
        assert_eq!(messages.len(), 1, "{name}: {messages:?}");
        assert!(messages[0].contains("test notification"), "{name}");
    }
}

/// Parses the textfile with the Prometheus client library's own parser; returns
/// `name{unit} -> value` for the unit.
fn parse_prometheus(path: &Path, unit: &str) -> BTreeMap<String, f64> {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        if s.labels.get("unit") == sys.argv[2]:
            out[s.name] = s.value
print(json.dumps(out))
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(path)
        .arg(unit)
        .output()
        .expect(
            "python3-prometheus-client (Debian) must be installed; scripts/test.sh installs it",
        );
    assert!(
        out.status.success(),
        "not valid exposition format: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A real backup: the healthcheck server sees start then success, exactly one notification
/// summarises the run, the textfile parses; a failing run pings /fail; a dead notification
/// target never fails the backup.
#[test]
fn backup_pings_notifies_once_and_writes_metrics() {
    if !support::docker_tests_enabled("backup_pings_notifies_once_and_writes_metrics") {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let (good, bad) = (format!("{prefix}-good"), format!("{prefix}-bad"));
    for name in [&good, &bad] {
        docker(&["run", "-d", "--name", name, IMAGE, "sh", "-c", IDLE]);
    }
    let server = HttpServer::start(200);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("kopi-docka.prom");
    let env = installation(&format!(
        r#"
[monitoring]
healthcheck-url = "http://{ping}"
prometheus-textfile = "{metrics}"
[notifications]
on-success = true
[[notifications.targets]]
url = "json://{hook}"
[[notifications.targets]]
url = "json://127.0.0.1:{closed}/dead-token-kdtest"
[units."{bad}".hooks]
pre-backup = ["/bin/false"]
"#,
        ping = server.url("/ping/abc"),
        metrics = metrics.display(),
        hook = server.url("/hook"),
    ));
    env.cmd(&["admin", "repo", "init"]).assert().success();

    let out = env.cmd(&["backup", "--unit", &good]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("notification not delivered"), "{stderr}");
    // The failing target's URL (its path is a token) is in no output and no record.
    support::assert_not_leaked(
        "dead-token-kdtest",
        out.get_output(),
        &[&env.path("state"), &env.path("cache")],
    );
    let targets: Vec<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets, ["/ping/abc/start", "/ping/abc", "/hook"]);
    let success = server.requests()[1].clone();
    assert_eq!(success.method, "POST");
    assert!(
        success.body.contains(&good),
        "the ping carries a short log: {success:?}"
    );
    let note = server.find("/hook").json();
    assert_eq!(note["type"], "success");
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains(&format!("ok standalone {good}"))
    );

    let values = parse_prometheus(&metrics, &good);
    assert!(
        (values["kopi_docka_unit_last_run_success"] - 1.0).abs() < f64::EPSILON,
        "{values:?}"
    );
    assert!(values["kopi_docka_unit_last_success_timestamp_seconds"] > 1.7e9);
    assert!(values.contains_key("kopi_docka_unit_last_run_duration_seconds"));
    assert!(values.contains_key("kopi_docka_unit_last_run_bytes_added"));

    // One run over two units, one failing: one message, a fail ping.
    env.cmd(&["backup", "--unit", &good, "--unit", &bad])
        .assert()
        .code(3);
    let targets: Vec<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    assert_eq!(targets[3..], ["/ping/abc/start", "/ping/abc/fail", "/hook"]);
    let failed = server.requests()[5].json();
    assert_eq!(failed["type"], "failure");
    let title = failed["title"].as_str().unwrap();
    assert!(title.contains("BACKUP FAILED for 1 of 2 units"), "{title}");
    let body = failed["message"].as_str().unwrap();
    assert!(
        body.contains(&format!("FAILED standalone {bad}"))
            && body.contains(&format!("ok standalone {good}")),
        "{body}"
    );
    assert!(server.requests()[4].body.contains("FAILED"));
    let values = parse_prometheus(&metrics, &bad);
    assert!(values["kopi_docka_unit_last_run_success"].abs() < f64::EPSILON);
    assert!(!values.contains_key("kopi_docka_unit_last_success_timestamp_seconds"));
}

/// The daemon, with no engine at its address, notifying `socket`; returns when it is idle
/// (its freshness check at start is done), then stops it.
fn daemon_until_idle(env: &Env, dir: &Path, round: u32) {
    let socket_path = dir.join(format!("notify-{round}.sock"));
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut daemon = Command::new(assert_cmd::cargo::cargo_bin("kopi-docka"))
        .arg("--config")
        .arg(env.path("config.toml"))
        .args(["admin", "service", "daemon", "--schedule", "daily"])
        .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
        .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("KOPI_DOCKA_CONFIG")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0_u8; 512];
    loop {
        let n = socket.recv(&mut buf).expect("the daemon never became idle");
        if String::from_utf8_lossy(&buf[..n]).contains("STATUS=idle") {
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(i32::try_from(daemon.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(daemon.wait().unwrap().success());
}

/// Backups that stopped entirely are noticed by the daemon, and alerted once, not at every
/// check or restart.
#[test]
fn daemon_alerts_once_per_overdue_period() {
    let server = HttpServer::start(200);
    let env = installation(&format!(
        "[[notifications.targets]]\nurl = \"json://{}\"\n",
        server.url("/hook")
    ));
    let runs = env.path("state/runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        runs.join("old.json"),
        r#"{"run_id":"old","started_at":"2026-01-01T02:00:00Z","units":[{"name":"kdtest-stale","status":"success"}]}"#,
    )
    .unwrap();
    daemon_until_idle(&env, env.dir(), 1);
    let alerts = server.requests();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = alerts[0].json();
    assert_eq!(alert["type"], "failure");
    assert!(
        alert["title"]
            .as_str()
            .unwrap()
            .contains("BACKUP OVERDUE for 1 unit(s)")
    );
    assert!(
        alert["message"]
            .as_str()
            .unwrap()
            .contains("kdtest-stale: last successful backup 2026-01-01T02:00:00Z")
    );

    daemon_until_idle(&env, env.dir(), 2);
    assert_eq!(
        server.requests().len(),
        1,
        "alerted twice for one overdue period"
    );
}

/// A run that cannot even start (no engine) is a failure the monitoring hears about.
#[test]
fn a_run_that_cannot_start_pings_fail_and_notifies() {
    let server = HttpServer::start(200);
    let env = installation(&format!(
        "[monitoring]\nhealthcheck-url = \"http://{}\"\n\
         [[notifications.targets]]\nurl = \"json://{}\"\n",
        server.url("/ping/abc"),
        server.url("/hook")
    ));
    env.cmd(&["backup"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .assert()
        .code(1);
    let requests = server.requests();
    let targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(targets, ["/ping/abc/fail", "/hook"]);
    assert!(
        requests[0]
            .body
            .contains("cannot reach the container engine"),
        "{:?}",
        requests[0]
    );
    let note = requests[1].json();
    assert_eq!(note["type"], "failure");
    assert!(
        note["title"]
            .as_str()
            .unwrap()
            .contains("BACKUP RUN FAILED")
    );
    assert!(
        note["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/docker.sock")
    );
}

/// A run asked for units that do not exist (a `[daemon] units` typo, or the stack removed)
/// fails as a usage error, but unlike other usage errors it is heard of: the notification is
/// sent and the healthcheck pinged `/fail`.
#[test]
fn a_run_that_finds_none_of_its_units_still_notifies() {
    if !support::docker_tests_enabled("a_run_that_finds_none_of_its_units_still_notifies") {
        return;
    }
    let server = HttpServer::start(200);
    let env = Env::builder()
        .extra(&format!(
            "[monitoring]\nhealthcheck-url = \"http://{ping}\"\n\
             [[notifications.targets]]\nurl = \"json://{hook}\"\n",
            ping = server.url("/ping"),
            hook = server.url("/hook"),
        ))
        .init()
        .build();
    let missing = format!("{}-gone", env.prefix);
    env.cmd(&["backup", "--unit", &missing]).assert().code(2);
    let notification = server.find("/hook").body;
    assert!(notification.contains(&missing), "{notification}");
    server.find("/ping/fail");
}
