//! Exit codes: the contract with scripts, timers and monitoring.

use kopi_docka_core::error::{self, Class};

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
    /// No repository at the location (restic uses the same code).
    NoRepository = 10,
    /// Another kopi-docka process holds the run or repository lock (restic: 11).
    Locked = 11,
    /// Wrong repository password (restic: 12).
    WrongPassword = 12,
    /// The repository's server refused the storage credentials (S3 keys, Azure key, ...).
    AccessDenied = 13,
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
  10   no repository at the configured location
  11   another kopi-docka process is running (a backup, or one using the repository)
  12   wrong repository password
  13   the repository's server refused the credentials (keys, token, user)
  130  interrupted (SIGINT/SIGTERM); never a success";

impl ExitCode {
    /// The code for an error that ended the command: the first error in its chain that knows
    /// its kind decides ([`kopi_docka_core::error`]).
    pub fn from_error(error: &anyhow::Error) -> Self {
        for cause in error.chain() {
            if cause
                .downcast_ref::<crate::commands::UsageError>()
                .is_some()
            {
                return Self::Usage;
            }
            if let Some(class) = error::class_of(cause) {
                return class.into();
            }
        }
        Self::Failed
    }
}

impl From<Class> for ExitCode {
    fn from(class: Class) -> Self {
        match class {
            Class::Usage => Self::Usage,
            Class::Locked => Self::Locked,
            Class::NoRepository => Self::NoRepository,
            Class::WrongPassword => Self::WrongPassword,
            Class::AccessDenied => Self::AccessDenied,
            Class::Failed => Self::Failed,
        }
    }
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        // The discriminants are all below 256 by construction.
        #[allow(clippy::cast_possible_truncation, clippy::as_conversions)]
        let code = self as u8;
        code
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}
