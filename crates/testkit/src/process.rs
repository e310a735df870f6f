//! Running processes: any command with its output on failure, `restic`, signals.

use std::path::Path;
use std::process::{Command, Output};

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
