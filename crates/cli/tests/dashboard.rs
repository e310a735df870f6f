//! The daemon's web dashboard (`[web] listen`), against the real daemon binary: every route
//! needs the token, the API's backup runs under the run lock and makes a point, a drill from
//! the API, the fleet of two hosts writing to one repository, and the pages in a real
//! headless Chromium driven through `WebDriver` (screenshots in target/dashboard-screenshots).
//!
//! HTTP is spoken with a small client over `std::net::TcpStream` (loopback only): the
//! daemon's and chromedriver's answers are all this needs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kopi_docka_testkit as support;
use serde_json::{Value, json};
use support::{Env, LoggedChild};

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// `method path` to `addr` with `headers` and an optional body; HTTP/1.1, one request per
/// connection.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(2)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let raw = read_answer(&mut stream);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        unchunk(rest)
    } else {
        rest.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// One HTTP answer, read up to its end: chromedriver says `Connection: close` and keeps the
/// socket open, so reading to EOF would wait for the read timeout.
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        let body = &raw[end + 4..];
        let complete = match length {
            Some(length) => body.len() >= length,
            None if head.contains("transfer-encoding: chunked")
                || head.contains("transfer-encoding:chunked") =>
            {
                body.ends_with(b"0\r\n\r\n")
            }
            None => false,
        };
        if complete {
            return raw;
        }
    }
}

fn unchunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A daemon serving the dashboard on a free loopback port.
struct Daemon {
    child: LoggedChild,
    addr: SocketAddr,
}

impl Daemon {
    /// `admin service daemon` on `env` (whose config has `[web] listen = "127.0.0.1:0"`),
    /// once its log says where the dashboard listens.
    fn start(env: &Env) -> Self {
        Self::start_with(env.spawn_logged(&["admin", "service", "daemon", "--schedule", "monthly"]))
    }

    fn start_with(mut child: LoggedChild) -> Self {
        let line = child.wait_for_line("the dashboard's address", |l| {
            l.contains("dashboard on http://")
        });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .parse()
            .unwrap();
        Self { child, addr }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        http(self.addr, "GET", path, headers, "")
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        http(self.addr, "POST", path, headers, body)
    }

    fn stop(self) -> String {
        self.child.signal(support::Signal::TERM);
        let finished = self.child.finish();
        assert!(
            finished.status.success(),
            "the daemon must stop cleanly: {}",
            finished.stderr
        );
        finished.stderr
    }
}

const WEB: &str = "[web]\nlisten = \"127.0.0.1:0\"\n";

fn token(env: &Env) -> String {
    std::fs::read_to_string(env.path("state/web-token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every route the dashboard has, with its method.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/units/web"),
    ("GET", "/units/web/backup"),
    ("GET", "/history?failed=1"),
    ("GET", "/fleet"),
    ("GET", "/live"),
    ("GET", "/api/overview"),
    ("GET", "/api/units/web"),
    ("GET", "/api/history"),
    ("GET", "/api/fleet"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/1"),
    ("GET", "/metrics"),
    ("GET", "/no/such/page"),
    ("POST", "/units/web/backup"),
    ("POST", "/units/web/drill"),
    ("POST", "/api/units/web/backup"),
    ("POST", "/api/units/web/drill"),
];

/// Logging in with `?token=` and what a browser session may do.
fn login_and_csrf(daemon: &Daemon, token: &str) {
    // Logging in with ?token= sets a private session cookie and drops the token from the URL.
    let login = daemon.get(&format!("/history?token={token}"), &[]);
    assert_eq!(login.status, 303, "{login:?}");
    assert_eq!(login.header("location"), Some("/history"));
    let set_cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert!(
        !cookie.contains(token),
        "the cookie is a session, not the token"
    );
    let page = daemon.get("/history", &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Run history"));

    // A cookie is sent by the browser on its own: a POST needs the anti-CSRF token too, and
    // another origin is refused.
    let form = daemon.post(
        "/units/web/backup",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "csrf=wrong",
    );
    assert_eq!(form.status, 403, "{form:?}");
    let api = daemon.post("/api/units/web/backup", &[("Cookie", &cookie)], "");
    assert_eq!(api.status, 403, "{api:?}");
    let confirm = daemon.get("/units/web/backup", &[("Cookie", &cookie)]);
    let csrf = confirm
        .body
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let cross = daemon.post(
        "/units/web/backup",
        &[
            ("Cookie", &cookie),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("csrf={csrf}"),
    );
    assert_eq!(cross.status, 403, "{cross:?}");
}

/// No engine needed: the dashboard comes up without one (units from the run records).
#[test]
fn every_route_needs_the_token() {
    let env = Env::builder()
        .init()
        .extra(&format!("{WEB}trusted-header = \"X-Forwarded-User\"\n[docker]\nhost = \"unix:///nonexistent/kdtest.sock\"\n"))
        .build();
    let daemon = Daemon::start(&env);
    let token = token(&env);
    // The token file is private, and the token is never in the log.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.path("state/web-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !daemon.child.log().contains(&token),
        "{}",
        daemon.child.log()
    );

    let wrong = bearer(&"0".repeat(64));
    let cookie_wrong = format!("kopi_docka_session={}", "0".repeat(64));
    for (method, path) in ROUTES {
        for headers in [
            vec![],
            vec![("Authorization", wrong.as_str())],
            vec![("Authorization", "Basic a29waTprb3Bp")],
            vec![("Cookie", cookie_wrong.as_str())],
            // The token as a cookie is not a session.
            vec![("Cookie", &*format!("kopi_docka_session={token}"))],
        ] {
            let answer = http(daemon.addr, method, path, &headers, "");
            assert_eq!(
                answer.status, 401,
                "{method} {path} with {headers:?}: {answer:?}"
            );
            assert!(
                !answer.body.contains("kopi_docka_unit"),
                "{path} leaked metrics"
            );
        }
        let answer = http(daemon.addr, method, &format!("{path}?token=wrong"), &[], "");
        assert_eq!(answer.status, 401, "{method} {path}?token=wrong");
    }

    // The right token opens every GET route (a missing unit or job is a 404, not a 401).
    let auth = bearer(&token);
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "GET") {
        let answer = http(daemon.addr, method, path, &[("Authorization", &auth)], "");
        assert!(
            [200, 404, 502].contains(&answer.status),
            "{method} {path}: {answer:?}"
        );
    }
    let metrics = daemon.get("/metrics", &[("Authorization", &auth)]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("# TYPE kopi_docka_unit_last_run_success gauge"),
        "{}",
        metrics.body
    );

    login_and_csrf(&daemon, &token);

    // The proxy's header counts from a loopback peer (this test is one).
    let proxied = daemon.get("/api/overview", &[("X-Forwarded-User", "alice")]);
    assert_eq!(proxied.status, 200, "{proxied:?}");
    assert_eq!(
        daemon
            .get("/api/overview", &[("X-Forwarded-User", "")])
            .status,
        401
    );

    let log = daemon.stop();
    assert!(
        !log.contains(&token),
        "the token must never be logged: {log}"
    );
}

/// A public address needs `allow-public`; the daemon refuses to start without it.
#[test]
fn a_public_address_is_refused() {
    let env = Env::builder()
        .extra(
            "[web]\nlisten = \"0.0.0.0:0\"\n[docker]\nhost = \"unix:///nonexistent/kdtest.sock\"\n",
        )
        .build();
    let out = env
        .cmd(&["admin", "service", "daemon", "--schedule", "monthly"])
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("allow-public"), "{stderr}");
}

/// Waits until the job is no longer running and returns it.
fn wait_job(daemon: &Daemon, auth: &str, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_mins(4);
    loop {
        let job = daemon
            .get(&format!("/api/jobs/{id}"), &[("Authorization", auth)])
            .json();
        if job["state"] != "running" {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {job}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn points(env: &Env, unit: &str) -> usize {
    let doc = env.json(&["snapshots", "--json", "--unit", unit]);
    doc["restore_points"].as_array().unwrap().len()
}

/// A backup from the API is refused while another run holds the run lock (as `backup`
/// without `--wait` is), then runs and makes a new point; a drill from the API passes and
/// shows on the overview.
#[test]
fn backup_and_drill_from_the_api_under_the_run_lock() {
    if !support::docker_tests_enabled("backup_and_drill_from_the_api_under_the_run_lock") {
        return;
    }
    let mut env = Env::builder().init().extra(WEB).build();
    // The fixture's DATABASE_URL carries a password, which the recipe redacts: the drill
    // needs it back, from the unit's `env-file` (the dashboard cannot give `--env-file`).
    let (stack, _dir) = env.stack("");
    // A second config of the same installation whose pre-backup hook holds the run until the
    // test releases it: a command-line backup that holds the run lock.
    let started = env.path("hook-started");
    let release = env.path("hook-release");
    env.write_config(
        "holding.toml",
        &format!(
            "[hooks]\npre-backup = [\"/bin/sh\", \"-c\", \"touch {}; while [ ! -e {} ]; do sleep 0.1; done\"]\n",
            started.display(),
            release.display()
        ),
    );
    let daemon = Daemon::start(&env);
    let auth = bearer(&token(&env));
    let unit_path = format!("/api/units/{stack}/backup");

    let mut cli = support::LoggedChild::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("kopi-docka"))
            .args(["--config"])
            .arg(env.path("holding.toml"))
            .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
            .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
            .env_remove("DOCKER_HOST")
            .args(["backup", "--unit", &stack]),
    );
    wait_for_file(&started, &mut cli);
    let refused = daemon.post(&unit_path, &[("Authorization", &auth)], "");
    assert_eq!(refused.status, 409, "{refused:?}");
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("run lock"),
        "{refused:?}"
    );
    std::fs::write(&release, "").unwrap();
    let finished = cli.finish();
    assert!(finished.status.success(), "{}", finished.stderr);

    let before = points(&env, &stack);
    let accepted = daemon.post(&unit_path, &[("Authorization", &auth)], "");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id = accepted.json()["id"].as_u64().unwrap();
    // One job at a time: a second start while it runs is refused.
    let second = daemon.post(&unit_path, &[("Authorization", &auth)], "");
    assert!(
        second.status == 409 || wait_job(&daemon, &auth, id)["state"] != "running",
        "{second:?}"
    );
    let job = wait_job(&daemon, &auth, id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(
        !job["lines"].as_array().unwrap().is_empty(),
        "the live log: {job:#}"
    );
    assert_eq!(points(&env, &stack), before + 1, "a new restore point");
    let unit = daemon
        .get(&format!("/api/units/{stack}"), &[("Authorization", &auth)])
        .json();
    assert_eq!(
        unit["points"].as_array().unwrap().len(),
        before + 1,
        "{unit:#}"
    );
    assert!(
        unit["restore_command"]
            .as_str()
            .unwrap()
            .contains(&format!("restore --unit {stack} --backup-id ")),
        "{unit:#}"
    );

    drill_from_the_api(&env, &daemon, &auth, &stack);
    daemon.stop();
}

/// A drill from the API: without the secret the saved configuration redacted it fails and
/// says what to do; with the unit's `env-file` it passes and shows on the overview.
fn drill_from_the_api(env: &Env, daemon: &Daemon, auth: &str, stack: &str) {
    let drill_path = format!("/api/units/{stack}/drill");
    // Without the secret the drill fails, and its lines say what to do.
    let drill = daemon.post(&drill_path, &[("Authorization", auth)], "");
    assert_eq!(drill.status, 202, "{drill:?}");
    let job = wait_job(daemon, auth, drill.json()["id"].as_u64().unwrap());
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(
        job["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("env-file")),
        "{job:#}"
    );
    let secrets = env.path("stack-secrets.env");
    support::write_private(
        &secrets,
        "DATABASE_URL=postgres://app:fixture-secret@db:5432/app\n",
    );
    env.write_config(
        "config.toml",
        &format!(
            "{WEB}[units.\"{stack}\"]\nenv-file = \"{}\"\n",
            secrets.display()
        ),
    );
    let drill = daemon.post(&drill_path, &[("Authorization", auth)], "");
    assert_eq!(drill.status, 202, "{drill:?}");
    let job = wait_job(daemon, auth, drill.json()["id"].as_u64().unwrap());
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let overview = daemon
        .get("/api/overview", &[("Authorization", auth)])
        .json();
    let row = overview["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == stack)
        .unwrap()
        .clone();
    assert_eq!(row["last_drill"]["passed"], true, "{row:#}");
    assert_eq!(row["health"], "ok", "{row:#}");
    assert!(row["last_success"].is_string(), "{row:#}");
}

fn wait_for_file(path: &Path, child: &mut LoggedChild) {
    let deadline = Instant::now() + Duration::from_mins(2);
    while !path.exists() {
        if !child.running() {
            let line = child.wait_for_line("the backup's last words", |_| false);
            panic!("the backup ended before its hook ran: {line}");
        }
        assert!(Instant::now() < deadline, "the hook did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two hosts (two state dirs, two host names) write to one repository: the fleet shows both
/// with their units.
#[test]
fn the_fleet_shows_every_host_of_the_repository() {
    if !support::docker_tests_enabled("the_fleet_shows_every_host_of_the_repository") {
        return;
    }
    let mut env = Env::builder().init().extra(WEB).build();
    let (stack, _dir) = env.stack("");
    // Host "kdtest-alpha" is the daemon's; "kdtest-beta" has its own config and state dir.
    for (name, host) in [
        ("config.toml", "kdtest-alpha"),
        ("beta/config.toml", "kdtest-beta"),
    ] {
        let text = format!(
            "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\nhostname = \"{host}\"\n{WEB}",
            env.repo().display(),
            env.password_file().display()
        );
        let path = env.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    support::kopi_docka_at(&env.path("beta/config.toml"), &env.path("beta"))
        .args(["backup", "--unit", &stack])
        .assert()
        .success();
    let daemon = Daemon::start(&env);
    let auth = bearer(&token(&env));
    let fleet = daemon.get("/api/fleet", &[("Authorization", &auth)]).json();
    let hosts: Vec<&str> = fleet["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["kdtest-alpha", "kdtest-beta"], "{fleet:#}");
    assert_eq!(fleet["this_host"], "kdtest-alpha");
    for host in fleet["hosts"].as_array().unwrap() {
        assert_eq!(host["units"][0]["name"], stack.as_str(), "{host:#}");
        assert_eq!(host["units"][0]["health"], "ok", "{host:#}");
    }
    let page = daemon.get("/fleet", &[("Authorization", &auth)]);
    assert!(
        page.body.contains("kdtest-beta") && page.body.contains("(this host)"),
        "{}",
        page.body
    );
    daemon.stop();
}

// ---- the browser -------------------------------------------------------------------------

/// chromedriver on a loopback port, and one headless Chromium session through it.
struct Browser {
    driver: std::process::Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver) must be installed");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Listening is not ready: a session request before `/status` says so can hang.
        while !http(addr, "GET", "/status", &[], "").json()["value"]["ready"]
            .as_bool()
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let answer = http(
            addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            &caps.to_string(),
        );
        let doc = answer.json();
        let session = doc["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {doc}"))
            .to_owned();
        Self {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|doc| panic!("WebDriver {method} {path}: {doc}"))
    }

    /// The `WebDriver` answer's value, or the whole error document when the status is not 200.
    fn try_call(&self, method: &str, path: &str, body: &Value) -> Result<Value, Value> {
        let answer = http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            &[("Content-Type", "application/json")],
            &body.to_string(),
        );
        let doc = answer.json();
        if answer.status == 200 {
            Ok(doc["value"].clone())
        } else {
            Err(doc)
        }
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", &json!({ "url": url }));
    }

    fn find(&self, using: &str, value: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            &json!({ "using": using, "value": value }),
        );
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    fn click(&self, using: &str, value: &str) {
        let element = self.find(using, value);
        self.call("POST", &format!("/element/{element}/click"), &json!({}));
    }

    /// The page's visible text. A click that submits a form or follows a link may still be
    /// loading the next page: its `body` can go stale between finding it and reading it
    /// (`WebDriver`'s "stale element reference"), so that read is tried again.
    fn text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = self
                .try_call(
                    "POST",
                    "/element",
                    &json!({ "using": "css selector", "value": "body" }),
                )
                .and_then(|found| {
                    let body = found[ELEMENT].as_str().unwrap_or_default().to_owned();
                    self.try_call("GET", &format!("/element/{body}/text"), &json!({}))
                });
            match read {
                Ok(text) => return text.as_str().unwrap().to_owned(),
                Err(doc) => {
                    let error = doc["value"]["error"].as_str().unwrap_or_default();
                    assert!(
                        matches!(error, "stale element reference" | "no such element")
                            && Instant::now() < deadline,
                        "WebDriver: the page's text: {doc}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn screenshot(&self, name: &str) {
        let data = self.call("GET", "/screenshot", &json!({}));
        let png = base64_decode(data.as_str().unwrap());
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            "",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// target/dashboard-screenshots beside the test binary's target dir.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// Waits until the page's visible text satisfies `done`, reloading nothing (the live view
/// updates itself); returns every text seen.
fn wait_text(browser: &Browser, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_mins(4);
    let mut seen = Vec::new();
    loop {
        let text = browser.text();
        let finished = done(&text);
        seen.push(text);
        if finished {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last text:\n{}",
            seen.last().unwrap()
        );
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// The text of the page a click leads to, once it shows `marker` (the click may return
/// before the next page has replaced the last one).
fn wait_page(browser: &Browser, marker: &str) -> String {
    wait_text(browser, marker, |t| t.contains(marker))
        .pop()
        .unwrap()
}

/// A real browser: log in, every page, "back up now" with its confirmation, the live view
/// until it finishes, and the new point on the unit page.
#[test]
fn the_pages_in_a_real_browser() {
    if !support::docker_tests_enabled("the_pages_in_a_real_browser") {
        return;
    }
    let mut env = Env::builder()
        .init()
        .extra(&format!(
            "{WEB}[hooks]\npre-backup = [\"/bin/true\", \"kdtest-hook\"]\n"
        ))
        .build();
    let (stack, _dir) = env.stack("");
    // Real history first: one run from the command line.
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    let daemon = Daemon::start(&env);
    let base = format!("http://{}", daemon.addr);
    let browser = Browser::start();

    browser.go(&format!("{base}/"));
    assert!(
        browser.text().contains("401 Unauthorized"),
        "{}",
        browser.text()
    );
    browser.go(&format!("{base}/?token={}", token(&env)));
    let overview = browser.text();
    assert!(
        overview.contains(&format!("{stack}\nstack")) || overview.contains(&stack),
        "{overview}"
    );
    assert!(
        overview.contains("Last good backup")
            && overview
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(&stack)),
        "{overview}"
    );
    browser.screenshot("overview");

    browser.click("link text", &stack);
    let unit = wait_page(&browser, "Restore points");
    for expected in [
        "Containers",
        "Mounts and coverage",
        "backed up",
        "Restore points",
        "restore --unit",
        "Hooks",
        "pre-backup [hooks] host /bin/true kdtest-hook",
    ] {
        assert!(
            unit.contains(expected),
            "{expected:?} on the unit page:\n{unit}"
        );
    }
    let points_before = unit.matches("restore command").count();
    assert_eq!(points_before, 1, "{unit}");
    browser.screenshot("unit");

    browser.click("link text", "Back up now");
    wait_page(&browser, &format!("Back up {stack} now?"));
    browser.screenshot("confirm");
    browser.click("css selector", "#confirm");
    let seen = wait_text(&browser, "the live view", |t| t.contains("finished:"));
    let last = seen.last().unwrap();
    assert!(last.contains("finished: succeeded"), "{last}");
    assert!(
        seen.iter().any(|t| t.contains("running")),
        "the live view must show the run while it runs: {seen:#?}"
    );
    browser.screenshot("live");

    browser.click("link text", &stack);
    let unit = wait_page(&browser, "Restore points");
    assert_eq!(
        unit.matches("restore command").count(),
        points_before + 1,
        "{unit}"
    );

    browser.go(&format!("{base}/history"));
    let history = browser.text();
    assert_eq!(
        history.matches(&format!("{stack}: success")).count(),
        2,
        "{history}"
    );
    browser.screenshot("history");
    browser.go(&format!("{base}/fleet"));
    assert!(browser.text().contains("(this host)"), "{}", browser.text());
    browser.screenshot("fleet");
    drop(browser);
    daemon.stop();
}
