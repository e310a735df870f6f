//! What kind of failure an error is: the exit code's contract, decided beside the error types
//! instead of by whoever prints them.
//!
//! Wrapper errors (`RunError`, `ImportError`, ...) hold their inner errors as `transparent`
//! variants, which hides the inner error from a source chain; their [`Classify`] impls look
//! inside, so callers never unwrap them to find the kind.

use std::error::Error;

use crate::backup::run::{RunError, UnknownUnits};
use crate::bootstrap::BootstrapError;
use crate::config::ConfigError;
use crate::config_file::ConfigFileError;
use crate::dr::{DrError, ImportError, RefreshError};
use crate::durable::PrivateFileError;
use crate::lock::LockError;
use crate::migrate::MigrateError;
use crate::repo::RepoError;
use crate::restore::PointError;

/// The kinds of failure that callers (and exit codes) tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Bad command line, configuration or input; nothing was done.
    Usage,
    /// Another kopi-docka process holds the run or repository lock.
    Locked,
    /// No repository at the location.
    NoRepository,
    /// The repository password is wrong.
    WrongPassword,
    /// The repository's server refused the storage credentials (keys, token, user).
    AccessDenied,
    /// Anything else that failed.
    Failed,
}

/// An error that knows its [`Class`]; `None` leaves the decision to its source.
pub trait Classify {
    /// The kind of failure, when this error decides it.
    fn class(&self) -> Option<Class>;
}

/// The class of the first error in `error`'s source chain that decides one, else
/// [`Class::Failed`].
pub fn classify(error: &(dyn Error + 'static)) -> Class {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(class) = class_of(e) {
            return class;
        }
        next = e.source();
    }
    Class::Failed
}

/// The class `error` itself decides, if it is one of core's errors and decides one.
pub fn class_of(error: &(dyn Error + 'static)) -> Option<Class> {
    fn of<T: Classify + Error + 'static>(error: &(dyn Error + 'static)) -> Option<Class> {
        error.downcast_ref::<T>().and_then(Classify::class)
    }
    of::<ConfigError>(error)
        .or_else(|| of::<PointError>(error))
        .or_else(|| of::<UnknownUnits>(error))
        .or_else(|| of::<PrivateFileError>(error))
        .or_else(|| of::<LockError>(error))
        .or_else(|| of::<RepoError>(error))
        .or_else(|| of::<MigrateError>(error))
        .or_else(|| of::<ConfigFileError>(error))
        .or_else(|| of::<RunError>(error))
        .or_else(|| of::<BootstrapError>(error))
        .or_else(|| of::<DrError>(error))
        .or_else(|| of::<ImportError>(error))
        .or_else(|| of::<RefreshError>(error))
        .or_else(|| of::<crate::restore::RestoreError>(error))
        .or_else(|| of::<crate::restore::swaps::PruneError>(error))
}

impl Classify for crate::restore::swaps::PruneError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Lock(e) => e.class(),
            Self::Swap(_) => None,
        }
    }
}

impl Classify for ConfigError {
    fn class(&self) -> Option<Class> {
        Some(Class::Usage)
    }
}

impl Classify for crate::restore::RestoreError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Untrusted { .. }
            | Self::DumpNeedsFreshDatabase { .. }
            | Self::DumpRestoredByHand { .. }
            | Self::PlanChanged => Some(Class::Usage),
            Self::Repo(e) => e.class(),
            _ => None,
        }
    }
}

impl Classify for PointError {
    fn class(&self) -> Option<Class> {
        Some(Class::Usage)
    }
}

impl Classify for UnknownUnits {
    fn class(&self) -> Option<Class> {
        Some(Class::Usage)
    }
}

impl Classify for PrivateFileError {
    fn class(&self) -> Option<Class> {
        matches!(self, Self::Exposed { .. }).then_some(Class::Usage)
    }
}

impl Classify for LockError {
    fn class(&self) -> Option<Class> {
        matches!(self, Self::Busy { .. }).then_some(Class::Locked)
    }
}

impl Classify for RepoError {
    fn class(&self) -> Option<Class> {
        Some(match self {
            Self::NotFound { .. } | Self::NotARepository { .. } => Class::NoRepository,
            Self::Lock(_) => Class::Locked,
            Self::WrongPassword { .. } => Class::WrongPassword,
            Self::AccessDenied { .. } => Class::AccessDenied,
            Self::Password(_)
            | Self::Location(_)
            | Self::Credentials(_)
            | Self::Sftp(crate::repo::sftp::SftpError::BadOption { .. }) => Class::Usage,
            _ => Class::Failed,
        })
    }
}

impl Classify for MigrateError {
    fn class(&self) -> Option<Class> {
        matches!(
            self,
            Self::NotJson { .. } | Self::Exists { .. } | Self::Config(_)
        )
        .then_some(Class::Usage)
    }
}

impl Classify for ConfigFileError {
    fn class(&self) -> Option<Class> {
        matches!(self, Self::Invalid { .. }).then_some(Class::Usage)
    }
}

impl Classify for RunError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Config(e) => e.class(),
            Self::Repo(e) => e.class(),
            Self::Lock(e) => e.class(),
            Self::UnknownUnits(e) => e.class(),
            Self::Docker(_) | Self::Staging(_) => None,
        }
    }
}

impl Classify for BootstrapError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Config(e) => e.class(),
            Self::Repo(e) => e.class(),
            _ => None,
        }
    }
}

impl Classify for DrError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Repo(e) => e.class(),
            _ => None,
        }
    }
}

impl Classify for ImportError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::Dr(e) => e.class(),
            Self::Config(e) => e.class(),
            Self::Repo(e) => e.class(),
            Self::Lock(e) => e.class(),
            Self::Docker(_) | Self::Recovery { .. } => None,
        }
    }
}

impl Classify for RefreshError {
    fn class(&self) -> Option<Class> {
        match self {
            Self::PassphraseFile(e) => e.class(),
            Self::Bundle(e) => e.class(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn wrapped_errors_are_classified_by_what_they_wrap() {
        let busy = || LockError::Busy {
            path: PathBuf::from("/state/locks/run.lock"),
            holder: None,
        };
        // transparent: the LockError is not in the source chain of the RunError.
        assert_eq!(classify(&RunError::Lock(busy())), Class::Locked);
        let missing = RepoError::NotFound {
            location: "/nowhere".into(),
        };
        assert_eq!(classify(&ImportError::Repo(missing)), Class::NoRepository);
        let dr = DrError::Repo(RepoError::NotFound {
            location: "/nowhere".into(),
        });
        assert_eq!(classify(&ImportError::Dr(dr)), Class::NoRepository);
    }

    #[test]
    fn an_error_that_decides_nothing_fails() {
        let io = std::io::Error::other("disk on fire");
        assert_eq!(classify(&io), Class::Failed);
        let create = BootstrapError::CreateDir {
            dir: PathBuf::from("/etc/kopi-docka"),
            source: std::io::Error::other("read-only"),
        };
        assert_eq!(classify(&create), Class::Failed);
    }
}
