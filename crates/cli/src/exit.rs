//! Exit codes: the contract with scripts, timers and monitoring.

use kopi_docka_core::config::ConfigError;

/// The process exit code. Documented in `--help` ([`HELP`]) and the README; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Everything asked for was done.
    Ok = 0,
    /// The command failed (engine unreachable, backup failed, ...).
    Failed = 1,
    /// Bad command line or configuration; nothing was done.
    Usage = 2,
    /// Some units succeeded and some failed.
    #[allow(
        dead_code,
        reason = "returned by backup and restore, which arrive later"
    )]
    Partial = 3,
    /// Stopped by SIGINT/SIGTERM; never a success.
    #[allow(
        dead_code,
        reason = "returned by backup and restore, which arrive later"
    )]
    Interrupted = 130,
}

/// The exit code table shown at the end of `--help`.
pub const HELP: &str = "\
Exit codes:
  0    success
  1    failed (e.g. the container engine is unreachable)
  2    usage or configuration error; nothing was done
  3    partial: some units succeeded, some failed
  130  interrupted (SIGINT/SIGTERM); never a success";

impl ExitCode {
    /// The code for an error that ended the command.
    pub fn from_error(error: &anyhow::Error) -> Self {
        if error
            .chain()
            .any(|cause| cause.downcast_ref::<ConfigError>().is_some())
        {
            Self::Usage
        } else {
            Self::Failed
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        // The discriminants are all below 256 by construction.
        #[allow(clippy::cast_possible_truncation, clippy::as_conversions)]
        std::process::ExitCode::from(code as u8)
    }
}
