//! The one path from nothing to a working installation: a password file (0600, written
//! atomically, never overwritten), a config file (0600, atomic), and a repository created or
//! connected to. Used by the first `kopi-docka backup`, `kopi-docka setup` and
//! `kopi-docka admin repo init`; the questions they ask stay in the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{self, ConfigError, Environment, LoadedConfig};
use crate::progress::ProgressSink;
use crate::repo::{
    Password, Repo, RepoError, RepoSettings, SnapshotFilter, WriteRepo, write_password_file,
};

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
    /// An existing config cannot be kept aside before it is replaced.
    #[error("keeping {}", path.display())]
    KeepAside {
        /// The config file.
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
    /// A credentials file's content is not usable.
    #[error(transparent)]
    Credentials(#[from] crate::repo::CredentialsError),
    /// A repository is there already, and setup would give it a new password.
    #[error(
        "there is already a repository at {location}; setup does not know its password. Give \
         it with --password-file FILE (a file with the password on its first line), or choose \
         another location"
    )]
    ExistingNeedsPassword {
        /// The location.
        location: String,
    },
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
    match Repo::open(settings.clone(), progress.clone()).await {
        Ok(repo) => {
            let count = repo.snapshots(SnapshotFilter::default()).await?.len();
            Ok((RepositoryAction::Connected, count))
        }
        Err(RepoError::NotFound { .. }) => {
            WriteRepo::init(settings, progress).await?;
            Ok((RepositoryAction::Created, 0))
        }
        Err(error) => Err(error),
    }
}

/// What `kopi-docka setup` writes: a config that [`config::parse`] accepted, and the
/// password file it names (with the password to write when the file is new).
#[derive(Debug)]
pub struct SetupRequest {
    /// Where the config goes; an existing file there is kept aside, never overwritten.
    pub config_path: PathBuf,
    /// The config text.
    pub text: String,
    /// The password file the config names.
    pub password_file: PathBuf,
    /// The password to write into it, when it does not exist yet.
    pub new_password: Option<Password>,
    /// Private files the config names (a credentials env file, a notification URL file):
    /// written 0600; one that exists is kept aside first and put back on failure.
    pub private_files: Vec<PrivateFile>,
}

/// A file with secrets that setup writes beside the config.
#[derive(Debug, Clone)]
pub struct PrivateFile {
    /// Where.
    pub path: PathBuf,
    /// Its content.
    pub text: String,
}

/// What the connection test found at the location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// Reachable, and no repository there yet: setup will create one.
    Nothing,
    /// A repository that opens with the given password, with this many snapshots.
    Repository {
        /// Snapshots in it.
        snapshots: usize,
    },
}

/// The connection test `setup` runs before it writes anything: the config text parsed in
/// memory, its credentials taken from `request.private_files` (not yet written), the location
/// reached (SFTP: host key and login), and an existing repository opened with its password.
/// Writes nothing but lock and ssh files in the state directory.
pub async fn check_connection(
    request: &SetupRequest,
    env: Environment,
) -> Result<Found, BootstrapError> {
    let mut config = config::parse(&request.text, &request.config_path)?;
    let env_file = config.repository.env_file.take();
    let loaded = LoadedConfig {
        config,
        path: Some(request.config_path.clone()),
        source: config::ConfigSource::Flag,
        env,
    };
    let mut settings = RepoSettings::from_config(&loaded)?;
    if let Some(path) = env_file {
        let text = match request.private_files.iter().find(|f| f.path == path) {
            Some(file) => file.text.clone(),
            None => crate::durable::read_private(&path).map_err(|source| {
                crate::repo::CredentialsError::File {
                    key: "env-file",
                    source,
                }
            })?,
        };
        let mut options = crate::repo::env_text_options(&settings.location, &path, &text)?;
        // `[repository.options]` win over the env file, as in `RepoSettings::from_config`.
        options.extend(loaded.config.repository.options.clone());
        settings.backend =
            crate::repo::backend_spec(&settings.location, &options).map_err(RepoError::from)?;
    }
    if !crate::repo::exists(settings.clone()).await? {
        return Ok(Found::Nothing);
    }
    if request.new_password.is_some() {
        return Err(BootstrapError::ExistingNeedsPassword {
            location: settings.location.to_string(),
        });
    }
    let repo = Repo::open(settings, Arc::new(crate::progress::Silent)).await?;
    let snapshots = repo.snapshots(SnapshotFilter::default()).await?.len();
    Ok(Found::Repository { snapshots })
}

/// What setup did.
#[derive(Debug)]
pub struct SetupOutcome {
    /// Whether the repository was created or an existing one connected to.
    pub action: RepositoryAction,
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// Where the config that was there before now is.
    pub previous_config: Option<PathBuf>,
}

/// Writes the config (an existing one is kept aside first) and a new password, then connects
/// to the repository or creates it. When anything fails after the first write, every write
/// is undone (the old config back in place, a new password file removed): setup either works
/// or changes nothing.
pub async fn setup(
    request: SetupRequest,
    env: Environment,
    progress: Arc<dyn ProgressSink>,
) -> Result<SetupOutcome, BootstrapError> {
    let SetupRequest {
        config_path,
        text,
        password_file,
        new_password,
        private_files,
    } = request;
    let dir = config_path.parent().unwrap_or(Path::new("/"));
    create_dir(dir)?;
    let stamp = crate::durable::stamp(jiff::Timestamp::now());
    let keep_aside = |path: &Path| {
        crate::durable::keep_aside(path, &stamp).map_err(|source| BootstrapError::KeepAside {
            path: path.to_owned(),
            source,
        })
    };
    let previous_config = keep_aside(&config_path)?;
    let mut kept = Vec::new();
    for file in &private_files {
        match keep_aside(&file.path) {
            Ok(previous) => kept.push((file.path.clone(), previous)),
            Err(error) => {
                undo_setup(&config_path, previous_config.as_deref(), &kept, None);
                return Err(error);
            }
        }
    }
    let password_written = new_password.is_some();
    let result = async {
        if let Some(password) = &new_password {
            write_password(&password_file, password)?;
        }
        for file in &private_files {
            if let Some(parent) = file.path.parent() {
                create_dir(parent)?;
            }
            crate::durable::write_file(&file.path, file.text.as_bytes(), 0o600).map_err(
                |source| BootstrapError::Write {
                    path: file.path.clone(),
                    source,
                },
            )?;
        }
        write_config(&config_path, &text)?;
        let loaded = config::load(Some(&config_path), env)?;
        let settings = RepoSettings::from_config(&loaded)?;
        Ok(connect_or_init(settings, progress).await?)
    }
    .await;
    match result {
        Ok((action, snapshots)) => Ok(SetupOutcome {
            action,
            snapshots,
            previous_config,
        }),
        Err(error) => {
            undo_setup(
                &config_path,
                previous_config.as_deref(),
                &kept,
                password_written.then_some(password_file.as_path()),
            );
            Err(error)
        }
    }
}

/// Puts things back as they were before [`setup`] wrote anything.
fn undo_setup(
    config: &Path,
    previous: Option<&Path>,
    private_files: &[(PathBuf, Option<PathBuf>)],
    new_password_file: Option<&Path>,
) {
    let mut steps = Vec::new();
    let put_back = |path: &Path, previous: Option<&Path>| match previous {
        Some(previous) => std::fs::rename(previous, path),
        None => remove_if_there(path),
    };
    steps.push(put_back(config, previous));
    for (path, previous) in private_files {
        steps.push(put_back(path, previous.as_deref()));
    }
    if let Some(password) = new_password_file {
        steps.push(remove_if_there(password));
    }
    for step in steps {
        if let Err(error) = step {
            tracing::warn!(%error, "undoing the setup");
        }
    }
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Creates the repository of `settings`. A password file the settings name that does not
/// exist yet is created with a random password first, and removed again when the repository
/// cannot be created (the password would belong to nothing). Returns that new file.
pub async fn init_repository(
    settings: RepoSettings,
    progress: Arc<dyn ProgressSink>,
) -> Result<Option<PathBuf>, BootstrapError> {
    let mut created = None;
    if let crate::repo::PasswordSource::File(path) = &settings.password
        && !path.exists()
    {
        let password = generate_password()?;
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        write_password(path, &password)?;
        created = Some(path.clone());
    }
    if let Err(error) = WriteRepo::init(settings, progress).await {
        if let Some(path) = &created
            && let Err(error) = std::fs::remove_file(path)
        {
            tracing::warn!(%error, path = %path.display(), "cannot remove the unused password file");
        }
        return Err(error.into());
    }
    Ok(created)
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
    match WriteRepo::init(settings, progress).await {
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
