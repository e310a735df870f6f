//! Real storage servers on loopback for the remote-repository tests: moto (S3),
//! `rclone serve restic` (REST), `rclone serve webdav`, Azurite (Azure Blob) and
//! fake-gcs-server (GCS). `scripts/test-servers.sh` installs them (the README's test command
//! runs it); [`servers_dir`] finds them.
//!
//! Each server binds 127.0.0.1 on a free port and runs under a tiny `sh` supervisor whose
//! stdin is a pipe from the test process: when the test binary exits, however it exits, the
//! pipe closes and the supervisor kills the server's process group by PID. The shared
//! instances ([`moto`], [`rest`], ...) start once per test binary; a test that kills its
//! server starts its own with [`Server::start`].

mod azurite;
mod gcs;
mod moto;
mod proxy;
mod rclone;

use std::io::{BufRead as _, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use azurite::{AZURITE_ACCOUNT, AZURITE_KEY, azurite};
pub use gcs::gcs;
pub use moto::{AuthMoto, moto, start_moto, start_moto_with_auth};
pub use proxy::Proxy;
pub use rclone::{REST_PASS, REST_USER, rest, webdav};

/// Where `scripts/test-servers.sh` installed the servers (`$KOPI_DOCKA_TEST_SERVERS`, else
/// `/var/cache/kopi-docka-test-servers`); panics with the command to run when they are missing.
pub fn servers_dir() -> PathBuf {
    let dir = std::env::var_os("KOPI_DOCKA_TEST_SERVERS").map_or_else(
        || PathBuf::from("/var/cache/kopi-docka-test-servers"),
        PathBuf::from,
    );
    assert!(
        dir.join("bin/moto_server").exists(),
        "the test servers are not installed in {}: run scripts/test-servers.sh (the README's \
         test command does)",
        dir.display()
    );
    dir
}

/// A program in [`servers_dir`]'s `bin/`.
pub fn server_bin(name: &str) -> PathBuf {
    servers_dir().join("bin").join(name)
}

/// How a server says it is ready: a stderr/stdout line, from which the port is read when the
/// server picked it (`:0`).
pub struct Ready {
    /// A substring of the line.
    pub marker: &'static str,
    /// True when the port follows `http://127.0.0.1:` on that line.
    pub port_in_line: bool,
}

/// One running server.
pub struct Server {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its scratch directory (data, logs).
    pub dir: tempfile::TempDir,
    pid: i32,
    supervisor: Mutex<Option<(Child, ChildStdin)>>,
    log: std::sync::Arc<Mutex<String>>,
}

/// The supervisor: starts the server, says its PID, and kills its process group when stdin
/// closes (the test process ended or [`Server::kill`] closed it).
const SUPERVISOR: &str = r#""$@" </dev/null 2>&1 &
pid=$!
echo "kd-server-pid $pid"
read -r _ignored
kill -TERM "$pid" 2>/dev/null
kill -TERM -$$ 2>/dev/null"#;

impl Server {
    /// Starts `program args` (`{port}` in an argument is replaced by a free port chosen here;
    /// without it the server picks one and says it in its ready line), with `envs`, in a new
    /// scratch dir (`{dir}` in an argument), and waits for its ready line. Retries on another
    /// port when the server dies before it is ready (another helper took the port).
    pub fn start(program: &Path, args: &[&str], envs: &[(&str, &str)], ready: &Ready) -> Self {
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("kd-srv").tempdir().unwrap();
            let chosen = free_port();
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    a.replace("{port}", &chosen.to_string())
                        .replace("{dir}", dir.path().to_str().unwrap())
                })
                .collect();
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg("kd-server")
                .arg(program)
                .args(&args)
                .envs(envs.iter().copied())
                .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
                .current_dir(dir.path())
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            std::fs::write(dir.path().join("rclone.conf"), "").unwrap();
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let log = std::sync::Arc::new(Mutex::new(String::new()));
            let (send, lines) = std::sync::mpsc::channel();
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push_str(&line);
                    sink.lock().unwrap().push('\n');
                    // The receiver is gone once the server is ready; keep draining.
                    let _ = send.send(line);
                }
            });
            let deadline = Instant::now() + Duration::from_mins(1);
            let mut pid = None;
            let mut port = None;
            while port.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(line) = lines.recv_timeout(left) else {
                    break;
                };
                if let Some(p) = line.strip_prefix("kd-server-pid ") {
                    pid = p.trim().parse::<i32>().ok();
                } else if line.contains(ready.marker) {
                    port = if ready.port_in_line {
                        line.split("http://127.0.0.1:")
                            .nth(1)
                            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                            .and_then(|p| p.parse().ok())
                    } else {
                        Some(chosen)
                    };
                }
            }
            if let (Some(pid), Some(port)) = (pid, port) {
                return Self {
                    port,
                    dir,
                    pid,
                    supervisor: Mutex::new(Some((child, stdin))),
                    log,
                };
            }
            drop(stdin);
            // The supervisor ends once its stdin closes.
            let _ = child.wait();
            last_log.clone_from(&log.lock().unwrap());
        }
        panic!(
            "{} did not become ready (5 tries); its last output:\n{last_log}",
            program.display()
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's PID (not the supervisor's).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// What the server wrote so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the server (SIGKILL by PID, then its process group through the supervisor) and
    /// waits until it is gone.
    pub fn kill(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            // Already gone is fine: the supervisor still reaps the group below.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        if let Some((mut child, stdin)) = self.supervisor.lock().unwrap().take() {
            drop(stdin);
            child.wait().unwrap();
        }
    }

    /// True while the server's PID exists.
    pub fn alive(&self) -> bool {
        rustix::process::Pid::from_raw(self.pid)
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now (the kernel's pick; a server that loses the race is
/// retried by [`Server::start`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; returns the status code and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
