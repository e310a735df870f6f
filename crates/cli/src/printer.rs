//! The only code that writes to stdout and stderr. Results go to stdout, as text or as JSON
//! ([`Format`], chosen once from the command's `--json`); errors go to stderr, as text or as
//! one JSON line.
//!
//! Commands hand their report to [`Printer::report`] and never look at `--json` themselves.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

use crate::exit::ExitCode;
use crate::render::Render;

/// How results and the final error are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human text (the default).
    Text,
    /// `--json`: the report as pretty JSON on stdout, an error as one JSON line on stderr.
    Json,
}

impl Format {
    /// `--json` given or not.
    pub fn from_json_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Text }
    }

    /// Exactly what [`Printer::report`] writes for `report` (the unit tests snapshot this).
    pub fn render(self, report: &impl Render) -> anyhow::Result<String> {
        match self {
            Self::Text => Ok(report.human()),
            Self::Json => {
                let mut text = serde_json::to_string_pretty(report)?;
                text.push('\n');
                Ok(text)
            }
        }
    }

    /// Exactly what [`Printer::error`] writes for the error that ended the command.
    pub fn render_error(self, error: &anyhow::Error, code: ExitCode) -> String {
        match self {
            Self::Text => {
                let mut text = format!("error: {error}");
                for cause in error.chain().skip(1) {
                    // Writing into a String cannot fail.
                    let _ = write!(text, "\n  caused by: {cause}");
                }
                text.push('\n');
                text
            }
            Self::Json => {
                let exit = ExitError {
                    message_type: "exit_error",
                    code: code.code(),
                    message: error.to_string(),
                    causes: error.chain().skip(1).map(ToString::to_string).collect(),
                };
                // A struct of strings and a number always serialises.
                let mut text = serde_json::to_string(&exit).unwrap_or_else(|_| {
                    format!(r#"{{"message_type":"exit_error","code":{}}}"#, code.code())
                });
                text.push('\n');
                text
            }
        }
    }
}

/// The error that ended a `--json` command, shaped like restic's (`restic --json` writes
/// `{"message_type":"exit_error","code":N,"message":"..."}` on stderr), plus its causes.
#[derive(Serialize)]
struct ExitError {
    message_type: &'static str,
    /// The process exit code.
    code: u8,
    /// The error itself.
    message: String,
    /// What led to it, outermost first.
    causes: Vec<String>,
}

/// Writes results and errors.
#[derive(Debug)]
pub struct Printer {
    stdout: std::io::Stdout,
    stderr: std::io::Stderr,
    format: Format,
    journal: bool,
}

impl Printer {
    /// A printer on the process's stdout and stderr that writes reports in `format`.
    /// `journal`: stderr is systemd's journal stream, so the final error's lines carry the
    /// `<3>` prefix that files them at priority "err" (`journalctl -p err` shows them).
    pub fn new(format: Format, journal: bool) -> Self {
        Self {
            stdout: std::io::stdout(),
            stderr: std::io::stderr(),
            format,
            journal,
        }
    }

    /// Writes a command's report: its human text, or JSON with `--json`.
    pub fn report(&self, report: &impl Render) -> anyhow::Result<()> {
        self.out(&self.format.render(report)?);
        Ok(())
    }

    /// Writes a report's human text, and nothing with `--json`: what a command shows before it
    /// asks to go on (a restore's plan). Under `--json`, stdout carries only the final report.
    pub fn preview(&self, report: &impl Render) {
        if self.format == Format::Text {
            self.out(&report.human());
        }
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

    /// Asks for a secret on the terminal without echoing it and returns the line as typed,
    /// line ending included (spaces may be part of a passphrase). `None` without a terminal.
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
        read.ok().map(|_| answer)
    }

    /// Writes the error that ended the command, with its causes, on stderr: text, or one
    /// JSON line with `--json`.
    pub fn error(&self, error: &anyhow::Error, code: ExitCode) {
        let mut text = self.format.render_error(error, code);
        if self.journal {
            text = text.lines().fold(String::new(), |mut out, line| {
                // Writing into a String cannot fail.
                let _ = writeln!(out, "<3>{line}");
                out
            });
        }
        let mut stderr = self.stderr.lock();
        if stderr.write_all(text.as_bytes()).is_err() {
            // Nowhere left to report it; the exit code still says it failed.
        }
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;
    use crate::render::assert_text;

    /// An error with two causes, as the command line shows it and as `--json` does.
    #[test]
    fn renders_an_error_and_its_causes() {
        let error = Err::<(), _>(std::io::Error::other("permission denied"))
            .context("creating /srv/backup/kopi-docka/keys")
            .context("setup changed nothing")
            .unwrap_err();
        assert_text!("error", Format::Text.render_error(&error, ExitCode::Failed));
        assert_text!(
            "error.json",
            Format::Json.render_error(&error, ExitCode::Failed)
        );
    }
}
