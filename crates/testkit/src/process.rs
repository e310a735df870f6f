//! Running processes: any command with its output on failure, `restic`, signals.

use std::path::Path;
use std::process::{Command, Output};

/// The signals a test sends ([`LoggedChild::signal`]).
pub use rustix::process::Signal;

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs Debian's `restic` on a repository (no cache) and panics with its stderr on failure.
pub fn restic<I, S>(repo: &Path, password_file: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(Command::new("restic")
        .args(["--no-cache", "-r"])
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .args(args))
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

/// A background process whose stderr is read line by line as it comes (so a test can wait
/// for the log line that proves a phase began) and whose stdout is collected; neither pipe
/// can fill up and block it.
pub struct LoggedChild {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: String,
    stdout: Option<std::thread::JoinHandle<String>>,
}

/// How a [`LoggedChild`] ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: std::process::ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl LoggedChild {
    /// Spawns `cmd` with stdout and stderr piped.
    pub fn spawn(cmd: &mut Command) -> Self {
        use std::io::{BufRead as _, Read as _};
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            if let Err(error) = stdout.read_to_string(&mut text) {
                text.push_str("\n(reading stdout failed: ");
                text.push_str(&error.to_string());
                text.push(')');
            }
            text
        });
        Self {
            child,
            lines,
            log: String::new(),
            stdout: Some(stdout),
        }
    }

    /// Waits (up to two minutes) for a stderr line for which `done` holds and returns it;
    /// panics with the log so far when the process ends first.
    pub fn wait_for_line(&mut self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if done(&line) {
                        return line;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{what}: the process ended first; its log:\n{}", self.log)
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{what}: not within two minutes; its log:\n{}", self.log)
                }
            }
        }
    }

    /// The stderr lines read so far.
    pub fn log(&self) -> &str {
        &self.log
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the end and returns the exit status and all output.
    pub fn finish(mut self) -> Finished {
        let status = self.child.wait().unwrap();
        for line in &self.lines {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        let stdout = self.stdout.take().unwrap().join().unwrap();
        Finished {
            status,
            stdout,
            stderr: std::mem::take(&mut self.log),
        }
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        // A test that panicked before `finish` must not leave the process running.
        if self.child.try_wait().is_ok_and(|s| s.is_none()) {
            if let Err(error) = self.child.kill() {
                eprintln!("warning: cannot kill {}: {error}", self.child.id());
            }
            // Reaps it; the status of a killed process says nothing.
            let _ = self.child.wait();
        }
    }
}
