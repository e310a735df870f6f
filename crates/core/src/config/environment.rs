//! The process facts that decide default paths, and the layout of the state directory.

use std::path::{Path, PathBuf};

use super::defaults;
use super::load::ConfigSource;
use crate::state::StateDir;

/// Variables that carry kopi-docka's own secrets: the repository password and the DR
/// passphrase. They are removed from the environment of every program kopi-docka starts for
/// others (hooks, compose): a hook has no need for them, and compose would interpolate
/// `${KOPI_DOCKA_PASSWORD}` into a container's configuration.
pub const SECRET_VARS: [&str; 2] = [crate::repo::PASSWORD_ENV, crate::dr::PASSPHRASE_ENV];

/// Removes [`SECRET_VARS`] from the environment `command` will run with.
pub fn remove_secrets(command: &mut tokio::process::Command) {
    for name in SECRET_VARS {
        command.env_remove(name);
    }
}

/// The facts about the running process that decide default paths. Captured once so that the
/// rest of the code (and the tests) never read the process environment directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Effective uid is 0.
    pub is_root: bool,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$XDG_DATA_HOME`.
    pub xdg_data_home: Option<PathBuf>,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<PathBuf>,
    /// `$KOPI_DOCKA_CONFIG`.
    pub config_env: Option<PathBuf>,
    /// `$KOPI_DOCKA_STATE_DIR`: overrides the state directory.
    pub state_dir_env: Option<PathBuf>,
    /// `$KOPI_DOCKA_CACHE_DIR`: overrides the cache directory.
    pub cache_dir_env: Option<PathBuf>,
    /// `$DOCKER_HOST`.
    pub docker_host_env: Option<String>,
    /// `$DOCKER_TLS_VERIFY` is set to anything but the empty string (as the docker CLI reads it).
    pub docker_tls_verify_env: bool,
    /// `$DOCKER_CERT_PATH`.
    pub docker_cert_path_env: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`: where a rootless engine's socket lives.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// The effective uid.
    pub uid: u32,
    /// `$KOPI_DOCKA_REPOSITORY`, `$KOPI_DOCKA_PASSWORD_FILE`, `$KOPI_DOCKA_PASSWORD_COMMAND`.
    pub repository: RepositoryEnv,
}

/// The restic-like variables that name the repository and its password over the config
/// (`RESTIC_REPOSITORY`, `RESTIC_PASSWORD_FILE`, `RESTIC_PASSWORD_COMMAND`);
/// [`LoadedConfig::override_repository`](super::LoadedConfig::override_repository) applies them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryEnv {
    /// `$KOPI_DOCKA_REPOSITORY`: the repository location.
    pub location: Option<String>,
    /// `$KOPI_DOCKA_PASSWORD_FILE`: the file holding the password.
    pub password_file: Option<PathBuf>,
    /// `$KOPI_DOCKA_PASSWORD_COMMAND`: the command printing the password.
    pub password_command: Option<String>,
}

#[cfg(test)]
impl Environment {
    /// A process with nothing set: no home, no XDG variables, no overrides. Tests set what
    /// they need with `..Environment::bare(root)`.
    pub(crate) fn bare(is_root: bool) -> Self {
        Self {
            is_root,
            home: None,
            xdg_config_home: None,
            xdg_data_home: None,
            xdg_state_home: None,
            xdg_cache_home: None,
            config_env: None,
            state_dir_env: None,
            cache_dir_env: None,
            docker_host_env: None,
            docker_tls_verify_env: false,
            docker_cert_path_env: None,
            xdg_runtime_dir: None,
            uid: if is_root { 0 } else { 1000 },
            repository: RepositoryEnv::default(),
        }
    }
}

impl Environment {
    /// Reads the current process's uid and environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            is_root: rustix::process::geteuid().is_root(),
            home: var("HOME").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_data_home: var("XDG_DATA_HOME").map(PathBuf::from),
            xdg_state_home: var("XDG_STATE_HOME").map(PathBuf::from),
            xdg_cache_home: var("XDG_CACHE_HOME").map(PathBuf::from),
            config_env: var("KOPI_DOCKA_CONFIG").map(PathBuf::from),
            state_dir_env: var("KOPI_DOCKA_STATE_DIR").map(PathBuf::from),
            cache_dir_env: var("KOPI_DOCKA_CACHE_DIR").map(PathBuf::from),
            docker_host_env: var("DOCKER_HOST").map(|v| v.to_string_lossy().into_owned()),
            docker_tls_verify_env: var("DOCKER_TLS_VERIFY").is_some(),
            docker_cert_path_env: var("DOCKER_CERT_PATH").map(PathBuf::from),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR").map(PathBuf::from),
            uid: rustix::process::geteuid().as_raw(),
            repository: RepositoryEnv {
                location: var("KOPI_DOCKA_REPOSITORY").map(|v| v.to_string_lossy().into_owned()),
                password_file: var("KOPI_DOCKA_PASSWORD_FILE").map(PathBuf::from),
                password_command: var("KOPI_DOCKA_PASSWORD_COMMAND")
                    .map(|v| v.to_string_lossy().into_owned()),
            },
        }
    }

    fn xdg_dir(&self, explicit: Option<&PathBuf>, fallback: &str) -> PathBuf {
        explicit
            .filter(|p| p.is_absolute())
            .cloned()
            .or_else(|| self.home.as_ref().map(|h| h.join(fallback)))
            .unwrap_or_else(|| PathBuf::from("/").join(fallback))
    }

    /// The config file to use and the rule that chose it: `flag` (`--config`), else
    /// `$KOPI_DOCKA_CONFIG`, else [`Environment::default_config_path`].
    pub fn config_path(&self, flag: Option<&Path>) -> (PathBuf, ConfigSource) {
        match (flag, &self.config_env) {
            (Some(path), _) => (path.to_path_buf(), ConfigSource::Flag),
            (None, Some(path)) => (path.clone(), ConfigSource::EnvVar),
            (None, None) => (self.default_config_path(), ConfigSource::Default),
        }
    }

    /// The config file used when neither `--config` nor `$KOPI_DOCKA_CONFIG` is given.
    pub fn default_config_path(&self) -> PathBuf {
        if self.is_root {
            PathBuf::from(defaults::ROOT_CONFIG)
        } else {
            self.xdg_dir(self.xdg_config_home.as_ref(), ".config")
                .join("kopi-docka/config.toml")
        }
    }

    /// Where kopi-docka keeps its own state: locks, the journal of stopped containers, run
    /// history.
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(if let Some(dir) = &self.state_dir_env {
            dir.clone()
        } else if self.is_root {
            PathBuf::from(defaults::ROOT_STATE)
        } else {
            self.xdg_dir(self.xdg_state_home.as_ref(), ".local/state")
                .join("kopi-docka")
        })
    }

    /// Where the repository index cache lives (safe to delete).
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir_env {
            dir.clone()
        } else if self.is_root {
            PathBuf::from(defaults::ROOT_CACHE)
        } else {
            self.xdg_dir(self.xdg_cache_home.as_ref(), ".cache")
                .join("kopi-docka")
        }
    }

    /// The repository used when `[repository] location` is not set.
    pub fn default_repository(&self) -> PathBuf {
        if self.is_root {
            PathBuf::from(defaults::ROOT_REPOSITORY)
        } else {
            self.xdg_dir(self.xdg_data_home.as_ref(), ".local/share")
                .join("kopi-docka/repository")
        }
    }
}
