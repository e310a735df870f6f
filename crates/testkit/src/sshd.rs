//! A real OpenSSH server on 127.0.0.1 for SFTP repository tests.
//!
//! - [`Sshd::shared`]: one server per test binary, started on first use. A watchdog shell
//!   holds the read end of a pipe whose write end only this process has: when the test binary
//!   exits (also by a panic or abort), `read` sees EOF and the watchdog kills the server's
//!   per-connection children and then the listener, by PID.
//! - [`Sshd::start`]: a private server for tests that kill or stop it; dropped at the end of
//!   the test (children first, then the listener).
//!
//! Each server has its own temp dir (short: ssh control socket paths must stay under ~100
//! bytes) with a throwaway host key, a client key in `authorized_keys`, and its log. It binds a
//! free port; a port another process took between our probe and sshd's bind is retried.
//! sshd runs as root (the suite does), so it needs `/run/sshd`, created here.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// One running sshd.
pub struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    pid: i32,
    child: Option<Child>,
    /// The shared server's watchdog; its stdin stays open (never written) while we live.
    watchdog: Option<Child>,
}

impl Sshd {
    /// The server shared by every test of this test binary.
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<Sshd> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut sshd = Self::start();
            let watchdog = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "read _; for c in $(pgrep -P {pid}); do kill $c; done; kill {pid}; \
                     rm -rf '{dir}'",
                    pid = sshd.pid,
                    dir = sshd.dir.path().display()
                ))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("watchdog for the shared sshd");
            sshd.watchdog = Some(watchdog);
            sshd
        })
    }

    /// A server of its own for one test, stopped on drop.
    pub fn start() -> Self {
        Self::start_in(None)
    }

    /// A server of its own whose users' home directory (root's `/root`) is `home`: it runs in
    /// a private mount namespace with `home` bind-mounted over `/root`, so what a login writes
    /// into `~/.ssh/authorized_keys` lands in `home` and the machine's own `/root` is never
    /// touched. `~/.ssh/authorized_keys` is read besides the server's own authorized keys.
    pub fn start_with_home(home: &Path) -> Self {
        Self::start_in(Some(home))
    }

    fn start_in(home: Option<&Path>) -> Self {
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd (sshd's privilege separation dir)");
        let dir = tempfile::Builder::new()
            .prefix("kd-sshd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        for name in ["host_ed25519", "user_ed25519"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(d.join(name))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen {name}");
        }
        std::fs::copy(d.join("user_ed25519.pub"), d.join("authorized_keys")).unwrap();
        for attempt in 0..5 {
            let port = free_port();
            std::fs::write(
                d.join("sshd_config"),
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n\
                     PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys{home_keys}\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n\
                     MaxStartups 100:30:200\nMaxSessions 100\nLogLevel VERBOSE\n",
                    d = d.display(),
                    home_keys = if home.is_some() {
                        " .ssh/authorized_keys"
                    } else {
                        ""
                    },
                ),
            )
            .unwrap();
            if let Some(home) = home {
                std::fs::write(d.join("home"), home.as_os_str().as_encoded_bytes()).unwrap();
            }
            let Some(child) = launch(d) else {
                assert!(attempt < 4, "sshd did not start:\n{}", read_log(d));
                continue;
            };
            let pid = i32::try_from(child.id()).unwrap();
            return Self {
                dir,
                port,
                pid,
                child: Some(child),
                watchdog: None,
            };
        }
        unreachable!("sshd start attempts exhausted")
    }

    /// Starts the listener again with the same port, keys and config (after a kill).
    pub fn restart(&mut self) {
        if let Some(mut old) = self.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let child = launch(self.dir.path())
            .unwrap_or_else(|| panic!("sshd did not restart:\n{}", self.log()));
        self.pid = i32::try_from(child.id()).unwrap();
        self.child = Some(child);
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temp dir (keys, config, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The listener's PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The client's private key (authorised for root).
    pub fn user_key(&self) -> PathBuf {
        self.dir().join("user_ed25519")
    }

    /// The server's public host key, `ssh-ed25519 AAAA...`.
    pub fn host_key(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("host_ed25519.pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }

    /// `sftp://root@127.0.0.1:<port>//<path>` for an absolute `path`.
    pub fn location(&self, path: &Path) -> String {
        format!("sftp://root@127.0.0.1:{}/{}", self.port, path.display())
    }

    /// `[repository.options]` for this server: the client key, the pinned host key, short
    /// timeouts.
    pub fn options_toml(&self) -> String {
        format!(
            "[repository.options]\nkey = \"{}\"\nhost-key = \"{}\"\nconnect-timeout = \"5\"\n\
             server-alive-interval = \"2\"\n",
            self.user_key().display(),
            self.host_key()
        )
    }

    /// A config for `env`'s repository path on this server, with `extra` after the
    /// `[repository]` table (before its options).
    pub fn write_config(&self, env: &crate::Env, extra: &str) {
        std::fs::write(
            env.config(),
            format!(
                "[repository]\nlocation = \"{}\"\npassword-file = \"{}\"\n{}{extra}",
                self.location(&env.repo()),
                env.password_file().display(),
                self.options_toml()
            ),
        )
        .unwrap();
    }

    /// restic's `-o sftp.command=...` for this server (host key checked against a
    /// `known_hosts` in the server's dir).
    pub fn restic_sftp_command(&self) -> String {
        let known = self.dir().join("known_hosts");
        std::fs::write(
            &known,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key()),
        )
        .unwrap();
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} -o LogLevel=ERROR \
             root@127.0.0.1 -s sftp",
            self.port,
            self.user_key().display(),
            known.display()
        )
    }

    /// Client `ssh` processes whose command line mentions `needle` (this server's dir or
    /// port, or a test's state dir): leaked control masters show up here.
    pub fn ssh_processes(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                continue;
            }
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_ssh = args
                .first()
                .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "ssh"));
            if is_ssh && args.iter().any(|a| a.contains(needle)) {
                found.push(args.join(" "));
            }
        }
        found
    }

    /// Asserts that no client `ssh` process mentions `dir` (a test's installation: its control
    /// masters run with `-S <dir>/state/ssh/...`). Tests sharing a server run in parallel, so
    /// this is the check that cannot see another test's live connections.
    pub fn assert_no_ssh_left(dir: &Path) {
        let left = Self::ssh_processes(&dir.display().to_string());
        assert!(
            left.is_empty(),
            "ssh processes left behind:\n{}",
            left.join("\n")
        );
    }

    /// Asserts that no client `ssh` process mentions this server's dir (its keys) or port: for
    /// a private server ([`Sshd::start`]) that no other test uses.
    pub fn assert_no_ssh_to_me(&self) {
        let mut left = Self::ssh_processes(&self.dir().display().to_string());
        left.extend(Self::ssh_processes(&format!("-p {}", self.port)));
        left.extend(Self::ssh_processes(&self.port.to_string()));
        left.sort();
        left.dedup();
        assert!(
            left.is_empty(),
            "ssh processes left behind:\n{}",
            left.join("\n")
        );
    }

    /// Sends `signal` to the listener and its per-connection children (children first).
    pub fn signal_all(&self, signal: rustix::process::Signal) {
        for pid in self.children() {
            // A child that just ended is fine.
            let _ = rustix::process::kill_process(pid, signal);
        }
        rustix::process::kill_process(rustix::process::Pid::from_raw(self.pid).unwrap(), signal)
            .unwrap();
    }

    fn children(&self) -> Vec<rustix::process::Pid> {
        let output = Command::new("pgrep")
            .args(["-P", &self.pid.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter_map(rustix::process::Pid::from_raw)
            .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Resume a stopped server so it can die; then children first, then the listener.
        let pids = self.children();
        for pid in &pids {
            let _ = rustix::process::kill_process(*pid, rustix::process::Signal::KILL);
        }
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts sshd with `dir`'s config; returns it once it listens, `None` if it exited first
/// (its log is in `dir/sshd.log`). A thread copies the rest of its log there.
fn launch(dir: &Path) -> Option<Child> {
    let config = dir.join("sshd_config");
    // With a home: `unshare` and `sh` exec, so the child's PID is sshd's.
    let mut command = if let Ok(home) = std::fs::read_to_string(dir.join("home")) {
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /root && exec /usr/sbin/sshd -D -e -f \"$2\"")
            .arg("sh")
            .arg(home)
            .arg(&config);
        c
    } else {
        let mut c = Command::new("/usr/sbin/sshd");
        c.args(["-D", "-e", "-f"]).arg(&config);
        c
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/sbin/sshd (Debian package openssh-server)");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let log_path = dir.join("sshd.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let listening = loop {
        match lines.next() {
            Some(Ok(line)) => {
                writeln!(file, "{line}").unwrap();
                if line.starts_with("Server listening on 127.0.0.1 port") {
                    break true;
                }
            }
            _ => break false,
        }
    };
    if !listening {
        let _ = child.wait();
        return None;
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // The log is for a failing test's message; a lost line is no failure.
            let _ = writeln!(file, "{line}");
        }
    });
    Some(child)
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
