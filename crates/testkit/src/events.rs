//! The engine's own record of what happened to a test's containers: `docker events`, read
//! while the test runs, so an order ("web stopped before db", "started only after healthy")
//! is checked from the engine's timestamps instead of from polls that can miss a state.
//!
//! The engine replays only its last few hundred events to a late reader, and a loaded host
//! (health checks every second in parallel tests) fills that fast: the reader is started
//! before the test acts and collects until it is dropped.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// One container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `start`, `kill`, `die`, `stop`, `health_status: healthy`, ...
    pub action: String,
    /// The container's name (without `/`).
    pub name: String,
    /// When the engine recorded it.
    pub time: SystemTime,
}

/// `docker events` for containers whose name starts with a prefix, collected in the
/// background from the moment [`EngineEvents::start`] returns; the reader ends on drop.
pub struct EngineEvents {
    child: Child,
    events: Arc<Mutex<Vec<Event>>>,
    since: SystemTime,
}

impl EngineEvents {
    /// Starts reading the container events of containers named `prefix...`.
    pub fn start(prefix: &str) -> Self {
        let since = SystemTime::now();
        // `--since` replays what happened between now and the moment the reader is
        // connected, so no event of the test is lost to that race.
        let mut child = Command::new("docker")
            .args([
                "events",
                "--format",
                "{{json .}}",
                "--filter",
                "type=container",
            ])
            .args(["--since", &unix_seconds(since)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run `docker events`");
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let prefix = prefix.to_owned();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(event) = parse(&line).filter(|e| e.name.starts_with(&prefix)) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        Self {
            child,
            events,
            since,
        }
    }

    /// Every event seen so far, in the engine's order.
    pub fn all(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Waits (up to a minute) until an event of `name` with `action` is seen at or after
    /// `after`, and returns it.
    pub fn wait_for(&self, name: &str, action: &str, after: SystemTime) -> Event {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            if let Some(e) = self.find(name, action, after) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{action}` event of {name} after {after:?}; events: {:#?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first event of `name` with `action` at or after `after`, if any.
    pub fn find(&self, name: &str, action: &str, after: SystemTime) -> Option<Event> {
        self.all()
            .into_iter()
            .find(|e| e.name == name && e.action == action && e.time >= after)
    }

    /// The last event of `name` with `action` at or after `after`, if any.
    pub fn last(&self, name: &str, action: &str, after: SystemTime) -> Option<Event> {
        self.all()
            .into_iter()
            .rev()
            .find(|e| e.name == name && e.action == action && e.time >= after)
    }

    /// Checks that `name` was killed `timeout` seconds after its stop signal, by the engine's
    /// record (0.5 s early to 3 s late, for a loaded host), and that the run's JSON `report`
    /// lists it under its unit's `killed` with that timeout and at least that wait.
    pub fn assert_killed_after(&self, report: &Value, name: &str, timeout: u32) {
        let want = f64::from(timeout);
        let waited = self.stop_signal_to_death(name);
        assert!(
            (want - 0.5..want + 3.0).contains(&waited),
            "{name} was killed {waited:.1}s after its stop signal, expected {want}s"
        );
        let unit = report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap();
        let killed = unit["killed"].as_array().unwrap();
        assert_eq!(killed.len(), 1, "{unit}");
        assert_eq!(killed[0]["name"], name, "{unit}");
        assert_eq!(
            killed[0]["timeout_seconds"].as_u64().unwrap(),
            u64::from(timeout),
            "{unit}"
        );
        assert!(
            killed[0]["seconds"].as_f64().unwrap() >= want - 0.5,
            "{unit}"
        );
    }

    /// Seconds from the first stop signal (`kill`) `name` got since the reader started to its
    /// death (`die`), by the engine's clock; waits for the death.
    pub fn stop_signal_to_death(&self, name: &str) -> f64 {
        let signalled = self.find(name, "kill", self.since).unwrap();
        let died = self.wait_for(name, "die", signalled.time);
        died.time
            .duration_since(signalled.time)
            .unwrap()
            .as_secs_f64()
    }

    /// When the reader started: no event before it is collected.
    pub fn since(&self) -> SystemTime {
        self.since
    }
}

impl Drop for EngineEvents {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            eprintln!("warning: cannot end `docker events`: {error}");
        }
        // Reaps it; its exit status says only that it was killed.
        let _ = self.child.wait();
    }
}

fn parse(line: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(line).ok()?;
    let nanos = v["timeNano"].as_u64()?;
    Some(Event {
        action: v["Action"].as_str()?.to_owned(),
        name: v["Actor"]["Attributes"]["name"].as_str()?.to_owned(),
        time: UNIX_EPOCH + Duration::from_nanos(nanos),
    })
}

/// `seconds.nanoseconds` since the epoch, as `docker events --since` takes it.
fn unix_seconds(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// An RFC 3339 time (the engine's `StartedAt`, a run report's `finished_at`) as a point in
/// time. Never compare such strings as strings: the engine drops trailing zeros of the
/// fraction, so `.1Z` sorts after `.12Z`.
pub fn parse_time(text: &str) -> SystemTime {
    let ts: jiff::Timestamp = text
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{text}` is not an RFC 3339 time: {e}"));
    SystemTime::from(ts)
}

/// A container's `State.StartedAt`, parsed.
pub fn started_at(container: &str) -> SystemTime {
    parse_time(&crate::docker(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        container,
    ]))
}
