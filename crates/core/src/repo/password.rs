//! The repository password: where it comes from, and how it is kept out of argv and logs.

use std::fmt;
use std::fmt::Write as _;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that may hold the password when the config names no source.
pub const PASSWORD_ENV: &str = "KOPI_DOCKA_PASSWORD";

/// A password. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password that is already in memory.
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret, for handing to the repository library only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// A new random password: 256 bits from the OS, hex encoded.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = [0_u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let hex = bytes.iter().fold(String::with_capacity(64), |mut out, b| {
            // Writing into a String cannot fail.
            let _ = write!(out, "{b:02x}");
            out
        });
        Ok(Self(hex))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Where the password is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// A file, mode 0600 or stricter; surrounding whitespace is ignored (as restic does).
    File(PathBuf),
    /// A shell command; its first output line is the password.
    Command(String),
    /// `$KOPI_DOCKA_PASSWORD`.
    Env,
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "password-file {}", path.display()),
            Self::Command(_) => f.write_str("password-command"),
            Self::Env => write!(f, "${PASSWORD_ENV}"),
        }
    }
}

/// Why no password could be had.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// No source configured.
    #[error(
        "no repository password: set [repository] password-file or password-command in the \
         config, or {PASSWORD_ENV} in the environment"
    )]
    NoSource,
    /// The file may be read by others.
    #[error(
        "password file {path} has mode {mode:04o}: group and others may read it, so it is not used. \
         Run: chmod 600 {path}"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file cannot be read.
    #[error("cannot read password file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command failed.
    #[error("password-command failed: {reason}")]
    Command {
        /// Exit status or spawn error, and its stderr.
        reason: String,
    },
    /// The source yielded an empty password.
    #[error("{0} gave an empty password")]
    Empty(String),
}

impl PasswordSource {
    /// Reads the password.
    pub fn read(&self) -> Result<Password, PasswordError> {
        let secret = match self {
            Self::File(path) => read_file(path)?,
            Self::Command(command) => run_command(command)?,
            Self::Env => std::env::var(PASSWORD_ENV).map_err(|_| PasswordError::NoSource)?,
        };
        if secret.is_empty() {
            return Err(PasswordError::Empty(self.to_string()));
        }
        Ok(Password(secret))
    }
}

fn read_file(path: &Path) -> Result<String, PasswordError> {
    let unreadable = |source| PasswordError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PasswordError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(unreadable)?;
    Ok(text.trim().to_owned())
}

/// How long `password-command` may take (a secret manager that asks for a touch or a PIN
/// included) before it is killed.
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_mins(2);

fn run_command(command: &str) -> Result<String, PasswordError> {
    run_command_within(command, PASSWORD_COMMAND_TIMEOUT)
}

fn run_command_within(command: &str, timeout: Duration) -> Result<String, PasswordError> {
    // Through the shell so users can write pipes; the password comes back on stdout and never
    // touches argv or the log. Its own process group, so a timeout kills the whole pipeline.
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| PasswordError::Command {
            reason: format!("cannot run sh: {e}"),
        })?;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                // At most 1 MiB: a password is a line.
                if let Err(error) = pipe.take(1 << 20).read_to_end(&mut bytes) {
                    tracing::debug!(%error, "cannot read password-command output");
                }
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if let Some(pid) =
                    rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
                    && let Err(error) =
                        rustix::process::kill_process_group(pid, rustix::process::Signal::KILL)
                {
                    tracing::warn!(%error, "cannot kill password-command");
                }
                // Reaps it; the kill above is what matters.
                let _ = child.wait();
                return Err(PasswordError::Command {
                    reason: format!(
                        "`{command}` did not finish within {}s and was killed",
                        timeout.as_secs()
                    ),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(PasswordError::Command {
                    reason: format!("cannot wait for `{command}`: {e}"),
                });
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(PasswordError::Command {
            reason: format!("{status}: {tail}"),
        });
    }
    let stdout = String::from_utf8(stdout).map_err(|_| PasswordError::Command {
        reason: "output is not UTF-8".into(),
    })?;
    Ok(stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_owned())
}

/// Writes a password file atomically with mode 0600: a temp file in the same directory,
/// fsync, rename, fsync of the directory. An existing file is replaced only by the complete new
/// one.
pub fn write_password_file(path: &Path, password: &Password) -> std::io::Result<()> {
    crate::durable::write_file(path, format!("{}\n", password.expose()).as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "  s3cret \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = PasswordSource::File(path.clone()).read().unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            PasswordSource::File(path).read().unwrap(),
            Password("s3cret".into())
        );
    }

    #[test]
    fn command_first_line_and_failure() {
        let ok = PasswordSource::Command("printf 'pw1\\nignored\\n'".into())
            .read()
            .unwrap();
        assert_eq!(ok.expose(), "pw1");
        let err = PasswordSource::Command("echo nope >&2; exit 3".into())
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(
            PasswordSource::Command("true".into()).read().is_err(),
            "empty is refused"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        assert_eq!(format!("{:?}", Password("hunter2".into())), "Password(***)");
        let generated = Password::generate().unwrap();
        assert_eq!(generated.expose().len(), 64);
    }

    #[test]
    fn written_file_is_private_and_readable_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.password");
        write_password_file(&path, &Password("abc".into())).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(PasswordSource::File(path).read().unwrap().expose(), "abc");
    }

    /// A password command that hangs is killed after its timeout, with an error naming it;
    /// a background child holding the pipe does not keep us waiting.
    #[test]
    fn a_hanging_password_command_times_out() {
        let started = std::time::Instant::now();
        let err = run_command_within("sleep 30 & sleep 30", Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`sleep 30 & sleep 30` did not finish within 1s and was killed"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
