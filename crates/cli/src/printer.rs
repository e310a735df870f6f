//! The only code that writes to stdout and stderr. Results go to stdout (text or JSON);
//! errors go to stderr.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

/// Writes results and errors.
#[derive(Debug)]
pub struct Printer {
    stdout: std::io::Stdout,
    stderr: std::io::Stderr,
}

impl Printer {
    /// A printer on the process's stdout and stderr.
    pub fn new() -> Self {
        Self {
            stdout: std::io::stdout(),
            stderr: std::io::stderr(),
        }
    }

    /// Writes one result line (a trailing newline is added).
    pub fn line(&self, text: &str) {
        self.out(&format!("{text}\n"));
    }

    /// Writes result text as is.
    pub fn out(&self, text: &str) {
        let mut stdout = self.stdout.lock();
        // A closed stdout (`kopi-docka units | head`) is not an error worth a second message.
        if let Err(error) = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            tracing::debug!(%error, "stdout closed");
        }
    }

    /// Writes a value as pretty JSON on stdout.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.out(&text);
        Ok(())
    }

    /// Writes a notice the user must see (not a result) on stderr.
    pub fn notice(&self, text: &str) {
        let mut stderr = self.stderr.lock();
        if let Err(error) = writeln!(stderr, "{text}") {
            tracing::debug!(%error, "stderr closed");
        }
    }

    /// Asks a question on stderr and reads one line of answer from stdin (trimmed). `None`
    /// at end of input.
    pub fn ask(&self, question: &str) -> Option<String> {
        {
            let mut stderr = self.stderr.lock();
            if write!(stderr, "{question} ")
                .and_then(|()| stderr.flush())
                .is_err()
            {
                return None;
            }
        }
        let mut answer = String::new();
        match std::io::stdin().read_line(&mut answer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer.trim().to_owned()),
        }
    }

    /// Writes raw bytes on stdout (`disaster-recovery export --stream`).
    pub fn bytes(&self, data: &[u8]) -> anyhow::Result<()> {
        let mut stdout = self.stdout.lock();
        stdout.write_all(data)?;
        stdout.flush()?;
        Ok(())
    }

    /// Asks for a secret on the terminal without echoing it. `None` without a terminal.
    #[allow(
        clippy::unused_self,
        reason = "all terminal input and output goes through the printer"
    )]
    pub fn ask_secret(&self, question: &str) -> Option<String> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let saved = rustix::termios::tcgetattr(&tty).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet).ok()?;
        let mut out = &tty;
        let mut answer = String::new();
        let read = write!(out, "{question} ").and_then(|()| {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut answer)
        });
        // Echo comes back whatever happened.
        if rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &saved).is_err()
        {
            tracing::warn!("cannot restore terminal echo");
        }
        let _ = writeln!(out);
        read.ok().map(|_| answer.trim().to_owned())
    }

    /// Writes the error that ended the command, with its causes, on stderr.
    pub fn error(&self, error: &anyhow::Error) {
        let mut text = format!("error: {error}");
        for cause in error.chain().skip(1) {
            // Writing into a String cannot fail.
            let _ = write!(text, "\n  caused by: {cause}");
        }
        text.push('\n');
        let mut stderr = self.stderr.lock();
        if stderr.write_all(text.as_bytes()).is_err() {
            // Nowhere left to report it; the exit code still says it failed.
        }
    }
}
