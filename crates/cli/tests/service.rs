//! `kopi-docka admin service`: the rendered units (snapshots, `systemd-analyze verify`, never
//! clobbering edits) and the daemon speaking the `sd_notify` protocol to a socket this test
//! binds, the way systemd does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{DockerResources, Env, IDLE, IMAGE, docker, kopi_docka};

fn read_units(dir: &Path) -> String {
    [
        "kopi-docka-backup.service",
        "kopi-docka.timer",
        "kopi-docka.service",
    ]
    .iter()
    .map(|name| {
        format!(
            "==> {name} <==\n{}",
            std::fs::read_to_string(dir.join(name)).unwrap()
        )
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// An installation (no repository yet) with `extra` in its config.
fn installation(extra: &str) -> Env {
    Env::builder().extra(extra).build()
}

fn write_units(env: &Env, extra: &[&str]) -> assert_cmd::assert::Assert {
    let units = env.path("units");
    let mut args = vec!["admin", "service", "write-units", "--output-dir"];
    args.push(units.to_str().unwrap());
    args.extend(extra);
    env.cmd(&args).assert()
}

#[test]
fn rendered_units() {
    let env = installation("");
    write_units(&env, &[]).success();
    let text = read_units(&env.path("units"));
    let bin = assert_cmd::cargo::cargo_bin("kopi-docka");
    let (bin, tmp) = (
        regex_escape(&bin.display().to_string()),
        regex_escape(&env.dir().display().to_string()),
    );
    insta::with_settings!({filters => vec![
        (bin.as_str(), "[KOPI_DOCKA]"),
        (tmp.as_str(), "[TMP]"),
    ]}, {
        insta::assert_snapshot!(text);
    });
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// systemd itself must accept every line: unknown keys, bad values and a missing `ExecStart`
/// binary are all reported by `systemd-analyze verify`.
#[test]
fn systemd_analyze_verify_accepts_the_units() {
    let env = installation("[daemon]\nschedule = \"Mon..Fri 22:30\"\n");
    write_units(&env, &[]).success();
    let units = env.path("units");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(
            [
                "kopi-docka-backup.service",
                "kopi-docka.timer",
                "kopi-docka.service",
            ]
            .map(|n| units.join(n)),
        )
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "verify warned:\n{stderr}");
    let timer = std::fs::read_to_string(units.join("kopi-docka.timer")).unwrap();
    assert!(timer.contains("OnCalendar=Mon..Fri 22:30\n"), "{timer}");
}

/// `write-units --user`: the backup service and the timer of a rootless setup, into the
/// calling user's unit directory by default; systemd's user manager accepts every line.
#[test]
fn user_units_for_a_rootless_setup() {
    let env = installation("");
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    // Into `~/.config/systemd/user` of the user (HOME), without --output-dir.
    let out = env
        .cmd(&["admin", "service", "write-units", "--user"])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("systemctl --user enable --now kopi-docka.timer"),
        "{stdout}"
    );
    let dir = home.join(".config/systemd/user");
    let names = ["kopi-docka-backup.service", "kopi-docka.timer"];
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, names, "only the service and its timer");
    let text = names
        .iter()
        .map(|name| {
            format!(
                "==> {name} <==\n{}",
                std::fs::read_to_string(dir.join(name)).unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The user manager's verification (it needs a runtime directory, as a login has).
    let runtime = tempfile::tempdir().unwrap();
    let out = Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .args(names.map(|n| dir.join(n)))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "verify warned:\n{stderr}");
    let bin = assert_cmd::cargo::cargo_bin("kopi-docka");
    let (bin, tmp) = (
        regex_escape(&bin.display().to_string()),
        regex_escape(&env.dir().display().to_string()),
    );
    insta::with_settings!({filters => vec![
        (bin.as_str(), "[KOPI_DOCKA]"),
        (tmp.as_str(), "[TMP]"),
    ]}, {
        insta::assert_snapshot!(text);
    });
    // JSON names the files; a second run changes nothing.
    let out = env
        .cmd(&["admin", "service", "write-units", "--user", "--json"])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .assert()
        .success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["user"], true, "{report}");
    assert_eq!(report["files"][1]["outcome"], "unchanged", "{report}");
}

#[test]
fn write_units_never_clobbers_an_edit() {
    let env = installation("");
    write_units(&env, &["--schedule", "daily"]).success();
    let timer = env.path("units/kopi-docka.timer");
    let edited = std::fs::read_to_string(&timer)
        .unwrap()
        .replace("OnCalendar=daily", "OnCalendar=hourly");
    std::fs::write(&timer, &edited).unwrap();

    let out = write_units(&env, &["--schedule", "daily"]).failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("kopi-docka.timer"), "{stderr}");
    assert!(stderr.contains("drop-in"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&timer).unwrap(), edited);

    // Same content: nothing to do, whatever is asked.
    write_units(&env, &["--schedule", "daily", "--force"])
        .success()
        .stdout(predicates::str::contains("replaced  "));
    let out = write_units(&env, &["--schedule", "daily"]).success();
    assert!(
        String::from_utf8_lossy(&out.get_output().stdout)
            .lines()
            .all(|l| l.starts_with("unchanged")),
    );
    assert!(
        std::fs::read_to_string(&timer)
            .unwrap()
            .contains("OnCalendar=daily\n")
    );

    // systemd understands more than the daemon's subset: the timer takes what it accepts.
    write_units(&env, &["--schedule", "2026-*-* 04:00", "--force"]).success();
    assert!(
        std::fs::read_to_string(&timer)
            .unwrap()
            .contains("OnCalendar=2026-*-* 04:00\n")
    );
    write_units(&env, &["--schedule", "whenever", "--force"])
        .code(2)
        .stderr(predicates::str::contains("every 6h"));

    // An interval is for the daemon only.
    write_units(&env, &["--schedule", "every 6h", "--force"])
        .code(2)
        .stderr(predicates::str::contains("interval"));
}

/// A notification socket like systemd's: collects every datagram with the time it arrived.
struct FakeSystemd {
    path: PathBuf,
    messages: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl FakeSystemd {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0_u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    break;
                }
            }
        });
        Self {
            path,
            messages,
            seen: Vec::new(),
        }
    }

    /// Waits until a message containing `needle` arrives; returns its index in `seen`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        if let Some(i) = self.seen.iter().position(|(_, m)| m.contains(needle)) {
            return i;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => {
                    let hit = message.1.contains(needle);
                    self.seen.push(message);
                    if hit {
                        return self.seen.len() - 1;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("no `{needle}` within {timeout:?}; got {:?}", self.texts())
                }
            }
        }
    }

    /// Waits for a message containing `needle` at index `from` or later.
    fn wait_for_next(&mut self, needle: &str, from: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.seen[from..]
                .iter()
                .position(|(_, m)| m.contains(needle))
            {
                return from + i;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => self.seen.push(message),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("no new `{needle}` within {timeout:?}: {:?}", self.texts())
                }
            }
        }
    }

    /// Waits until `count` messages equal to `text` arrived.
    fn wait_for_count(&mut self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|(_, m)| m == text).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) => self.seen.push(message),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "fewer than {count} `{text}` within {timeout:?}: {:?}",
                        self.texts()
                    )
                }
            }
        }
    }

    fn texts(&self) -> Vec<&str> {
        self.seen.iter().map(|(_, m)| m.as_str()).collect()
    }

    /// The daemon, as systemd would start it.
    fn spawn_daemon(&self, env: &Env, watchdog_usec: u64, args: &[&str], engine: bool) -> Child {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("kopi-docka"));
        if engine {
            command.env_remove("DOCKER_HOST");
        } else {
            command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        }
        command
            .arg("--config")
            .arg(env.path("config.toml"))
            .args(["admin", "service", "daemon"])
            .args(args)
            .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
            .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
            .env_remove("KOPI_DOCKA_CONFIG")
            .env_remove("WATCHDOG_PID")
            .env("NOTIFY_SOCKET", &self.path)
            .env("WATCHDOG_USEC", watchdog_usec.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn sigterm(child: &Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

fn wait_exit(mut child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without an engine and with no backup due, the daemon still becomes ready, feeds the
/// watchdog at half its period, and says STOPPING on SIGTERM before exiting 0.
#[test]
fn daemon_speaks_sd_notify() {
    let env = installation("");
    let mut systemd = FakeSystemd::bind(env.dir());
    // No engine answers at this address: the daemon must still come up.
    let daemon = systemd.spawn_daemon(&env, 400_000, &["--schedule", "daily"], false);
    let ready = systemd.wait_for("READY=1", Duration::from_secs(30));
    systemd.wait_for_count("WATCHDOG=1", 5, Duration::from_secs(10));
    let pings: Vec<Instant> = systemd
        .seen
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g < Duration::from_millis(400)),
        "pings must come at about half of WATCHDOG_USEC: {gaps:?}"
    );
    assert!(
        systemd.texts()[ready..]
            .iter()
            .any(|m| m.contains("STATUS=idle; next backup"))
    );
    sigterm(&daemon);
    systemd.wait_for("STOPPING=1", Duration::from_secs(10));
    let (status, stderr) = wait_exit(daemon, Duration::from_secs(10));
    assert!(status.success(), "{status}: {stderr}");
}

/// The acceptance test of issue 7: the backup takes longer than the watchdog period and
/// systemd keeps getting WATCHDOG=1 while it runs; SIGTERM during the backup is passed on, the
/// unit is started again, and only then does the daemon stop.
#[test]
fn daemon_feeds_the_watchdog_during_a_long_backup_and_stops_safely() {
    if !support::docker_tests_enabled(
        "daemon_feeds_the_watchdog_during_a_long_backup_and_stops_safely",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let app = format!("{prefix}-app");
    // The post-stop hook holds the unit down for 4 s: longer than the 1 s watchdog period.
    let env = installation(&format!(
        "[units.\"{app}\".hooks]\npost-stop = [\"/usr/bin/sleep\", \"4\"]\n"
    ));
    kopi_docka()
        .arg("--config")
        .arg(env.path("config.toml"))
        .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
        .args(["admin", "repo", "init"])
        .assert()
        .success();
    docker(&[
        "run",
        "-d",
        "--name",
        &app,
        "-v",
        &format!("{prefix}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);

    let mut systemd = FakeSystemd::bind(env.dir());
    let events = support::EngineEvents::start(&prefix);
    let daemon = systemd.spawn_daemon(
        &env,
        1_000_000,
        &["--schedule", "every 1h", "--unit", &app],
        true,
    );
    systemd.wait_for("READY=1", Duration::from_secs(30));
    let backing_up = systemd.wait_for("STATUS=backing up", Duration::from_secs(30));
    // The unit is down (the engine says so; the post-stop hook holds it for 4 s): four
    // watchdog pings must arrive while it is, each within the 1 s period.
    events.wait_for(&app, "die", events.since());
    let down = Instant::now();
    let (mut from, mut last, mut pings, mut first) = (systemd.seen.len(), down, 0, None);
    while pings < 4 {
        let i = systemd.wait_for_next("WATCHDOG=1", from, Duration::from_secs(2));
        from = i + 1;
        let at = systemd.seen[i].0;
        if at <= down {
            continue;
        }
        let gap = at.duration_since(last);
        assert!(
            gap < Duration::from_secs(1),
            "no WATCHDOG=1 for {gap:?} (the period is 1 s): {:?}",
            systemd.texts()
        );
        first.get_or_insert(at);
        (last, pings) = (at, pings + 1);
    }
    // And not a flood either: every half period, so 3 gaps of about 0.5 s.
    let spread = last.duration_since(first.unwrap());
    assert!(
        spread >= Duration::from_secs(1),
        "4 pings within {spread:?}: {:?}",
        systemd.texts()
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &app]),
        "false",
        "the pings must come while the unit is down"
    );
    sigterm(&daemon);
    let stopping = systemd.wait_for("STOPPING=1", Duration::from_secs(10));
    let (status, stderr) = wait_exit(daemon, Duration::from_mins(2));
    assert!(status.success(), "{status}: {stderr}");

    let during: Vec<&str> = systemd.texts()[backing_up..stopping].to_vec();
    let pings = during.iter().filter(|m| **m == "WATCHDOG=1").count();
    assert!(
        pings >= 4,
        "expected WATCHDOG=1 every 0.5 s during the backup, got {pings}: {during:?}"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &app]),
        "true",
        "SIGTERM during the backup must still start the unit again; daemon log:\n{stderr}"
    );
    // The backup ran to its safe end before the daemon said goodbye.
    assert!(stderr.contains("backup finished"), "{stderr}");
}

/// SIGHUP re-reads the configuration (a new schedule shows in STATUS); a broken config is
/// refused and the old one kept; the daemon keeps running either way.
#[test]
fn sighup_reloads_the_config_and_keeps_the_old_one_when_broken() {
    let env = installation("[daemon]\nschedule = \"*-*-01 03:00\"\n");
    let mut systemd = FakeSystemd::bind(env.dir());
    let daemon = systemd.spawn_daemon(&env, 0, &[], false);
    let first = systemd.wait_for("STATUS=idle", Duration::from_secs(30));
    assert!(
        systemd.texts()[first].contains("-01 03:00:00"),
        "{:?}",
        systemd.texts()
    );

    let config = std::fs::read_to_string(env.path("config.toml")).unwrap();
    std::fs::write(
        env.path("config.toml"),
        config.replace("*-*-01 03:00", "*-*-* 0/1:17:00"),
    )
    .unwrap();
    sighup(&daemon);
    let n = systemd.seen.len();
    let reloaded = systemd.wait_for_next("STATUS=idle", n, Duration::from_secs(10));
    assert!(
        systemd.texts()[reloaded].contains(":17:00"),
        "{:?}",
        systemd.texts()
    );

    std::fs::write(
        env.path("config.toml"),
        "[daemon]\nschedule = \"sometimes\"\n",
    )
    .unwrap();
    sighup(&daemon);
    let n = systemd.seen.len();
    let kept = systemd.wait_for_next("STATUS=idle", n, Duration::from_secs(10));
    assert!(
        systemd.texts()[kept].contains(":17:00"),
        "{:?}",
        systemd.texts()
    );

    sigterm(&daemon);
    let (status, stderr) = wait_exit(daemon, Duration::from_secs(10));
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    assert!(stderr.contains("configuration NOT reloaded"), "{stderr}");
    assert!(stderr.contains("sometimes"), "{stderr}");
}

fn sighup(child: &Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

/// Runs a program (the rest of the command line) in a private mount namespace where
/// `/run/systemd` is an empty tmpfs: a host without systemd, even on one that has it.
const WITHOUT_SYSTEMD: [&str; 8] = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    "if [ -d /run/systemd ]; then mount -t tmpfs kdtest /run/systemd || exit 97; fi; exec \"$@\"",
    "without-systemd",
];

/// `admin service status` without systemd: says so, and still shows the last run and locks.
#[test]
fn status_degrades_without_systemd() {
    let env = installation("");
    let runs = env.path("state/runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        runs.join("r1.json"),
        r#"{"run_id":"r1","started_at":"2026-11-20T02:00:00Z","units":[{"name":"app","status":"failed"}]}"#,
    )
    .unwrap();
    let out = env
        .cmd(&["admin", "service", "status", "--json"])
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(status["last_run"]["run_id"], "r1");
    assert_eq!(status["last_run"]["result"], "1 of 1 units failed");
    assert_eq!(status["lock"], "free");
    assert_eq!(status["daemon_lock"], "free");
    assert_eq!(status["units"].as_array().unwrap().len(), 3);
    // On every host, systemd or not: in a mount namespace of its own, the command sees no
    // /run/systemd.
    let text = env
        .cmd_via(&WITHOUT_SYSTEMD, &["admin", "service", "status"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(text.contains("systemd: not running on this host"), "{text}");
    assert!(text.contains("last run: 2026-11-20"), "{text}");
    assert!(
        !env.path("state/locks").exists(),
        "status must not create lock files"
    );
}

/// The daemon may be the first kopi-docka process after a crash: before it says READY it
/// starts the containers a killed backup left stopped.
#[test]
fn daemon_start_restarts_containers_a_killed_run_left_stopped() {
    if !support::docker_tests_enabled("daemon_start_restarts_containers_a_killed_run_left_stopped")
    {
        return;
    }
    let prefix = support::unique_prefix();
    let _resources = DockerResources::new(&prefix);
    let name = format!("{prefix}-victim");
    docker(&["run", "-d", "--name", &name, IMAGE, "sh", "-c", IDLE]);
    let id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    let env = installation("");
    std::fs::create_dir_all(env.path("state")).unwrap();
    std::fs::write(
        env.path("state/stopped-containers.json"),
        format!(
            r#"[{{"id":"{id}","name":"{name}","unit":"{name}","start_rank":0,"recorded_at":"2026-01-01T00:00:00Z"}}]"#
        ),
    )
    .unwrap();
    docker(&["stop", "-t", "1", &name]);
    let mut systemd = FakeSystemd::bind(env.dir());
    let daemon = systemd.spawn_daemon(&env, 0, &["--schedule", "monthly", "--unit", &name], true);
    systemd.wait_for("READY=1", Duration::from_mins(1));
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true"
    );
    assert!(!env.path("state/stopped-containers.json").exists());
    sigterm(&daemon);
    let (status, stderr) = wait_exit(daemon, Duration::from_secs(30));
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("started a container a killed run left stopped"),
        "{stderr}"
    );
}

/// A run that fails before it writes its record (no engine) still counts: an interval
/// schedule waits a whole interval instead of retrying in a loop.
#[test]
fn a_failed_run_does_not_make_an_interval_schedule_spin() {
    let env = installation("");
    let mut systemd = FakeSystemd::bind(env.dir());
    let daemon = systemd.spawn_daemon(&env, 0, &["--schedule", "every 1h"], false);
    let last = systemd.wait_for("STATUS=last backup", Duration::from_mins(1));
    assert!(
        systemd.texts()[last].contains("exit code 1"),
        "{:?}",
        systemd.texts()
    );
    let idle = systemd.wait_for_next("STATUS=idle", last, Duration::from_secs(10));
    // The next attempt is a whole interval after the failed one, not now.
    let next = systemd.texts()[idle]
        .split("next backup ")
        .nth(1)
        .unwrap_or_else(|| panic!("no next backup time: {:?}", systemd.texts()));
    let next = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", &next[..19])
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .unwrap()
        .timestamp();
    let wait = next.duration_since(jiff::Timestamp::now());
    assert!(
        wait > jiff::SignedDuration::from_mins(55),
        "the next backup is due in {wait:#}: {:?}",
        systemd.texts()
    );
    let runs = systemd
        .texts()
        .iter()
        .filter(|m| m.contains("STATUS=backing up"))
        .count();
    assert_eq!(runs, 1, "{:?}", systemd.texts());
    sigterm(&daemon);
    let (status, stderr) = wait_exit(daemon, Duration::from_secs(10));
    assert!(status.success(), "{status}: {stderr}");
}
