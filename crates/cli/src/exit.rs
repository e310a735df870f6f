//! Exit codes: the contract with scripts, timers and monitoring.

use kopi_docka_core::backup::run::UnknownUnits;
use kopi_docka_core::config::ConfigError;
use kopi_docka_core::config_file::ConfigFileError;
use kopi_docka_core::dr::ImportError;
use kopi_docka_core::durable::PrivateFileError;
use kopi_docka_core::migrate::MigrateError;
use kopi_docka_core::repo::RepoError;
use kopi_docka_core::restore::PointError;

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
  130  interrupted (SIGINT/SIGTERM); never a success";

impl ExitCode {
    /// The code for an error that ended the command.
    pub fn from_error(error: &anyhow::Error) -> Self {
        for cause in error.chain() {
            if cause.downcast_ref::<ConfigError>().is_some()
                || cause.downcast_ref::<PointError>().is_some()
                || cause
                    .downcast_ref::<crate::commands::UsageError>()
                    .is_some()
                || cause.downcast_ref::<UnknownUnits>().is_some()
                || cause
                    .downcast_ref::<PrivateFileError>()
                    .is_some_and(|e| matches!(e, PrivateFileError::Exposed { .. }))
            {
                return Self::Usage;
            }
            if cause
                .downcast_ref::<kopi_docka_core::lock::LockError>()
                .is_some_and(|e| matches!(e, kopi_docka_core::lock::LockError::Busy { .. }))
            {
                return Self::Locked;
            }
            if let Some(repo) = cause.downcast_ref::<RepoError>() {
                return Self::from_repo(repo);
            }
            if matches!(
                cause.downcast_ref::<MigrateError>(),
                Some(
                    MigrateError::NotJson { .. }
                        | MigrateError::Exists { .. }
                        | MigrateError::Config(_)
                )
            ) {
                return Self::Usage;
            }
            if matches!(
                cause.downcast_ref::<ConfigFileError>(),
                Some(ConfigFileError::Invalid { .. })
            ) {
                return Self::Usage;
            }
            // Its variants are transparent, so the wrapped error is not in the chain itself.
            match cause.downcast_ref::<ImportError>() {
                Some(ImportError::Config(_)) => return Self::Usage,
                Some(ImportError::Repo(repo)) => return Self::from_repo(repo),
                _ => {}
            }
        }
        Self::Failed
    }

    fn from_repo(repo: &RepoError) -> Self {
        match repo {
            RepoError::NotFound { .. } | RepoError::NotARepository { .. } => Self::NoRepository,
            RepoError::Lock(_) => Self::Locked,
            RepoError::WrongPassword { .. } => Self::WrongPassword,
            RepoError::Password(_) | RepoError::Location(_) => Self::Usage,
            _ => Self::Failed,
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
