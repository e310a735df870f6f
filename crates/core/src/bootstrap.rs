//! The one path from nothing to a working installation: a password file (0600, written
//! atomically, never overwritten), a config file (0600, atomic), and a repository created or
//! connected to. Used by the first `kopi-docka backup`, `kopi-docka setup` and
//! `kopi-docka admin repo init`; the questions they ask stay in the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{self, ConfigError, Environment, LoadedConfig};
use crate::lock::LockMode;
use crate::progress::ProgressSink;
use crate::repo::{Password, Repo, RepoError, RepoSettings, SnapshotFilter, write_password_file};

/// A step of the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// No randomness for a password.
    #[error("generating a password")]
    GeneratePassword(#[source] std::io::Error),
    /// A directory cannot be created.
    #[error("creating {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The written config does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository cannot be created or opened.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// What happened to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepositoryAction {
    /// A new repository was initialised.
    Created,
    /// An existing repository was found and kept.
    Connected,
}

/// A fresh random password, for a password file that does not exist yet.
pub fn generate_password() -> Result<Password, BootstrapError> {
    Password::generate().map_err(BootstrapError::GeneratePassword)
}

/// Creates `dir` (0700) when missing.
pub fn create_dir(dir: &Path) -> Result<(), BootstrapError> {
    crate::durable::create_dir_all(dir, 0o700).map_err(|source| BootstrapError::CreateDir {
        dir: dir.to_owned(),
        source,
    })
}

/// Writes `password` to `path` (0600, atomically).
pub fn write_password(path: &Path, password: &Password) -> Result<(), BootstrapError> {
    write_password_file(path, password).map_err(|source| BootstrapError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Writes a random password to `path` unless the file exists: an existing password is never
/// replaced. Returns whether it was written.
pub fn password_if_missing(path: &Path) -> Result<bool, BootstrapError> {
    if path.exists() {
        return Ok(false);
    }
    write_password(path, &generate_password()?)?;
    Ok(true)
}

/// Writes the config text to `path` (0600, atomically).
pub fn write_config(path: &Path, text: &str) -> Result<(), BootstrapError> {
    crate::durable::write_file(path, text.as_bytes(), 0o600).map_err(|source| {
        BootstrapError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Connects to the repository at the configured location (its snapshots kept, and counted),
/// or creates it when there is none.
pub async fn connect_or_init(
    settings: RepoSettings,
    progress: Arc<dyn ProgressSink>,
) -> Result<(RepositoryAction, usize), RepoError> {
    match Repo::open(settings.clone(), LockMode::Shared, progress.clone()).await {
        Ok(repo) => {
            let count = repo.snapshots(SnapshotFilter::default()).await?.len();
            Ok((RepositoryAction::Connected, count))
        }
        Err(RepoError::NotFound { .. }) => {
            Repo::init(settings, progress).await?;
            Ok((RepositoryAction::Created, 0))
        }
        Err(error) => Err(error),
    }
}

/// What the first run created.
#[derive(Debug)]
pub struct FirstRun {
    /// The configuration, loaded from the new file.
    pub loaded: LoadedConfig,
    /// The new config file.
    pub config: PathBuf,
    /// The repository location.
    pub repository: PathBuf,
    /// The password file (new, or one that was already there).
    pub password_file: PathBuf,
}

/// No config anywhere: writes the default one (local repository, random 256-bit password in
/// a 0600 file beside it) and initialises the repository (an existing one is kept).
pub async fn first_run(
    env: Environment,
    progress: Arc<dyn ProgressSink>,
) -> Result<FirstRun, BootstrapError> {
    let config_path = env.default_config_path();
    let dir = config_path.parent().unwrap_or(Path::new("/"));
    let password_file = dir.join("repository.password");
    let repository = env.default_repository();
    create_dir(dir)?;
    password_if_missing(&password_file)?;
    let text = format!(
        "# Created by the first `kopi-docka backup`. Every key: docs/configuration.md\n\
         [repository]\nlocation = \"{}\"\npassword-file = \"repository.password\"\n",
        repository.display()
    );
    write_config(&config_path, &text)?;
    let loaded = config::load(Some(&config_path), env)?;
    let settings = RepoSettings::from_config(&loaded)?;
    match Repo::init(settings, progress).await {
        Ok(_) | Err(RepoError::AlreadyExists { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(FirstRun {
        loaded,
        config: config_path,
        repository,
        password_file,
    })
}
