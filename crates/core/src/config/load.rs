//! Finding, reading, parsing and validating the configuration file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::environment::Environment;
use super::schema::Config;
use super::values::{RepositoryLocation, normalize};

/// Which rule picked the config file; named in errors so the user knows what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// The global `--config` option.
    Flag,
    /// `$KOPI_DOCKA_CONFIG`.
    EnvVar,
    /// The per-user default path.
    Default,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--config",
            Self::EnvVar => "$KOPI_DOCKA_CONFIG",
            Self::Default => "the default location",
        })
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed configuration (built-in defaults when no file exists).
    pub config: Config,
    /// The file it was read from; `None` when the default file does not exist.
    pub path: Option<PathBuf>,
    /// The rule that chose the path.
    pub source: ConfigSource,
    /// The process facts the defaults were resolved against.
    pub env: Environment,
}

#[cfg(test)]
impl LoadedConfig {
    /// The built-in defaults, as when no config file exists, in `env`.
    pub(crate) fn defaults_in(env: Environment) -> Self {
        Self {
            config: Config::default(),
            path: None,
            source: ConfigSource::Default,
            env,
        }
    }
}

impl LoadedConfig {
    /// Puts the repository named on the command line or in the environment over the config's,
    /// restic-style. Location: `flag` (`--repo`), else `$KOPI_DOCKA_REPOSITORY`, else
    /// `[repository] location`. Password: `$KOPI_DOCKA_PASSWORD_FILE` or
    /// `$KOPI_DOCKA_PASSWORD_COMMAND` (not both), else `[repository] password-file` /
    /// `password-command`, else `$KOPI_DOCKA_PASSWORD`. Relative local paths given here are
    /// relative to the working directory (the config's own are relative to the config file).
    pub fn override_repository(&mut self, flag: Option<&str>) -> Result<(), ConfigError> {
        let env = self.env.repository.clone();
        let location = flag.map(|text| ("--repo", text)).or_else(|| {
            env.location
                .as_deref()
                .map(|t| ("$KOPI_DOCKA_REPOSITORY", t))
        });
        if let Some((origin, text)) = location {
            let invalid = |message: String| ConfigError::Override { origin, message };
            let text = if Path::new(text).is_relative() && !text.contains(':') {
                std::path::absolute(text)
                    .map_err(|e| invalid(format!("`{text}`: {e}")))?
                    .to_string_lossy()
                    .into_owned()
            } else {
                text.to_owned()
            };
            self.config.repository.location =
                Some(RepositoryLocation::try_from(text).map_err(invalid)?);
        }
        let repo = &mut self.config.repository;
        match (env.password_file, env.password_command) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Override {
                    origin: "$KOPI_DOCKA_PASSWORD_FILE",
                    message: "$KOPI_DOCKA_PASSWORD_COMMAND is set too; unset one of them".into(),
                });
            }
            (Some(file), None) => {
                let file = std::path::absolute(&file).map_err(|e| ConfigError::Override {
                    origin: "$KOPI_DOCKA_PASSWORD_FILE",
                    message: e.to_string(),
                })?;
                repo.password_file = Some(file);
                repo.password_command = None;
            }
            (None, Some(command)) => {
                repo.password_file = None;
                repo.password_command = Some(command);
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// The effective repository location.
    pub fn repository_location(&self) -> RepositoryLocation {
        self.config
            .repository
            .location
            .clone()
            .unwrap_or_else(|| RepositoryLocation::Local(self.env.default_repository()))
    }

    /// Where the engine is: `[docker] host`, else `$DOCKER_HOST`, else the usual sockets
    /// (`[docker] engine`, `[docker] user`), with TLS as `[docker] tls-verify` or
    /// `$DOCKER_TLS_VERIFY` say.
    pub fn engine_target(&self) -> Result<crate::docker::EngineTarget, ConfigError> {
        crate::docker::EngineTarget::resolve(&self.config.docker, &self.env)
    }
}

/// Everything that can go wrong while finding and reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error(
        "config file {path} (from {source_rule}) does not exist; create it (see examples/config/) \
         or point {source_rule} at an existing file"
    )]
    NotFound {
        /// The file.
        path: PathBuf,
        /// Which rule named it.
        source_rule: ConfigSource,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config file {path}: {source}{hint}", hint = unreadable_hint(source))]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the key for unknown or invalid keys).
        message: String,
    },
    /// The file parsed but its values contradict each other.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `--repo` or a `$KOPI_DOCKA_*` variable holds something we cannot use.
    #[error("{origin}: {message}")]
    Override {
        /// The flag or variable.
        origin: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `$DOCKER_HOST` holds something we cannot use.
    #[error("$DOCKER_HOST: {message}")]
    DockerHostEnv {
        /// What is wrong.
        message: String,
    },
    /// `[docker] user` names no user of this host.
    #[error(
        "[docker] user = \"{user}\" is not a user of this host (/etc/passwd): name the user \
         whose rootless engine to back up, or remove the key"
    )]
    DockerUser {
        /// The name in the config.
        user: String,
    },
}

fn unreadable_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied => {
            " (the file exists but this user may not read it: run with sudo or as its owner; \
             kopi-docka never falls back to another config)"
        }
        io::ErrorKind::IsADirectory => " (it is a directory: point to the config.toml inside)",
        _ => "",
    }
}

/// Finds and reads the configuration following the lookup order in the module docs.
pub fn load(flag: Option<&Path>, env: Environment) -> Result<LoadedConfig, ConfigError> {
    let (path, source) = env.config_path(flag);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && source == ConfigSource::Default => {
            tracing::debug!(path = %path.display(), "no config file; using built-in defaults");
            return Ok(LoadedConfig {
                config: Config::default(),
                path: None,
                source,
                env,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path,
                source_rule: source,
            });
        }
        Err(source) => return Err(ConfigError::Unreadable { path, source }),
    };
    let config = parse(&text, &path)?;
    Ok(LoadedConfig {
        config,
        path: Some(path),
        source,
        env,
    })
}

/// Parses and validates config text; `path` is used for messages and to resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })?;
    if let Some(message) = secret_sources_invalid(&config) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        });
    }
    if let Some(message) = out_of_range(&config).or_else(|| engines_or_logs_invalid(&config)) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        });
    }
    if let Some(message) = bad_exclude_glob(&config)
        .or_else(|| bad_freeze_socket(&config))
        .or_else(|| bad_hook(&config))
    {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        });
    }
    let repo = &mut config.repository;
    if repo.password_file.is_some() && repo.password_command.is_some() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[repository] sets both password-file and password-command; keep one".into(),
        });
    }
    if !config.retention.keeps_newest() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[retention] keeps nothing but keep-within; set at least one keep-* value \
                      (keep-within alone would forget everything after a long outage)"
                .into(),
        });
    }
    if !(0..=22).contains(&repo.compression) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "[repository] compression = {} is outside 0..=22 (1 is fastest, 3 is zstd's \
                 default)",
                repo.compression
            ),
        });
    }
    let base = path.parent().unwrap_or(Path::new("/"));
    let resolve = |file: &mut PathBuf| {
        if file.is_relative() {
            *file = normalize(&std::path::absolute(base.join(&*file)).unwrap_or(base.join(&*file)));
        }
    };
    for file in [
        &mut repo.password_file,
        &mut repo.env_file,
        &mut repo.rclone_config,
    ]
    .into_iter()
    .flatten()
    {
        resolve(file);
    }
    let dr = &mut config.disaster_recovery;
    if dr.bundle_dir.is_some() && (dr.passphrase_file.is_none() || dr.keep == 0) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[disaster-recovery] bundle-dir needs passphrase-file (a file only you can \
                      read) and keep >= 1"
                .into(),
        });
    }
    for file in [&mut dr.bundle_dir, &mut dr.passphrase_file]
        .into_iter()
        .flatten()
    {
        resolve(file);
    }
    for file in config
        .units
        .values_mut()
        .filter_map(|unit| unit.env_file.as_mut())
    {
        resolve(file);
    }
    Ok(config)
}

/// Longest time a container may take to stop, a hook may run, or a restarted container may
/// take to become healthy: a day. More is a typo (minutes meant as seconds, an extra zero).
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;
/// Longest a unit may stay down: a week.
pub const MAX_DOWNTIME_SECONDS: u32 = 604_800;
/// Longest one notification may take to deliver.
pub const MAX_NOTIFICATION_SECONDS: u32 = 300;
/// Largest freshness threshold: a year (366 days).
pub const MAX_AGE_HOURS: u32 = 8_784;

/// `[backup] unit-log-days` out of range, or a unit's engine keys wrong
/// ([`crate::backup::command_job`]).
fn engines_or_logs_invalid(config: &Config) -> Option<String> {
    if config.backup.unit_log_days > 3660 {
        return Some(format!(
            "[backup] unit-log-days = {} is outside 0..=3660 (days each unit's daily log file \
             is kept; 0 writes none)",
            config.backup.unit_log_days
        ));
    }
    config
        .units
        .iter()
        .find_map(|(name, unit)| crate::backup::command_job::invalid(name, unit))
}

/// The first numeric key outside its range, as `[table] key = value is outside lo..=hi (why)`.
/// Zero is never allowed: a zero timeout kills at once, a zero downtime abandons every cold
/// pass, a zero freshness threshold makes every unit overdue.
fn out_of_range(config: &Config) -> Option<String> {
    let b = &config.backup;
    let mut checks: Vec<(String, u32, u32, &str)> = vec![
        (
            "[backup] stop-timeout-seconds".into(),
            b.stop_timeout_seconds,
            MAX_TIMEOUT_SECONDS,
            "seconds a container gets to stop before it is killed",
        ),
        (
            "[backup] health-timeout-seconds".into(),
            b.health_timeout_seconds,
            MAX_TIMEOUT_SECONDS,
            "seconds to wait for a restarted container to become healthy",
        ),
        (
            "[backup] hook-timeout-seconds".into(),
            b.hook_timeout_seconds,
            MAX_TIMEOUT_SECONDS,
            "seconds a hook may run; 0 would kill every hook at once",
        ),
        (
            "[backup] compose-timeout-seconds".into(),
            b.compose_timeout_seconds,
            MAX_TIMEOUT_SECONDS,
            "seconds `compose up` may take in a restore; 0 would kill it at once",
        ),
        (
            "[backup] max-downtime-seconds".into(),
            b.max_downtime_seconds,
            MAX_DOWNTIME_SECONDS,
            "longest a unit may stay down; 0 would abandon every cold pass",
        ),
        (
            "[backup] run-time-limit-seconds".into(),
            b.run_time_limit_seconds,
            MAX_DOWNTIME_SECONDS,
            "longest a whole backup run may take before it is abandoned",
        ),
        (
            "[notifications] timeout-seconds".into(),
            config.notifications.timeout_seconds,
            MAX_NOTIFICATION_SECONDS,
            "seconds one delivery may take; 0 would drop every notification",
        ),
        (
            "[monitoring] max-age-hours".into(),
            config.monitoring.max_age_hours,
            MAX_AGE_HOURS,
            "hours after which a unit counts as overdue",
        ),
    ];
    for (name, unit) in &config.units {
        if let Some(hours) = unit.max_age_hours {
            checks.push((
                format!("[units.\"{name}\"] max-age-hours"),
                hours,
                MAX_AGE_HOURS,
                "hours after which this unit counts as overdue",
            ));
        }
        for (key, value, what) in [
            (
                "stop-timeout-seconds",
                unit.stop_timeout_seconds,
                "seconds this unit gets to stop",
            ),
            (
                "start-timeout-seconds",
                unit.start_timeout_seconds,
                "seconds to wait for this unit to run again",
            ),
        ] {
            if let Some(seconds) = value {
                checks.push((
                    format!("[units.\"{name}\"] {key}"),
                    seconds,
                    MAX_TIMEOUT_SECONDS,
                    what,
                ));
            }
        }
        for (service, settings) in &unit.services {
            if let Some(seconds) = settings.stop_timeout_seconds {
                checks.push((
                    format!("[units.\"{name}\".services.\"{service}\"] stop-timeout-seconds"),
                    seconds,
                    MAX_TIMEOUT_SECONDS,
                    "seconds this service gets to stop before it is killed",
                ));
            }
        }
    }
    checks
        .into_iter()
        .find(|(_, value, max, _)| !(1..=*max).contains(value))
        .map(|(key, value, max, what)| format!("{key} = {value} is outside 1..={max} ({what})"))
}

/// The first hook that cannot run, with its table.
fn bad_hook(config: &Config) -> Option<String> {
    std::iter::once(("[hooks]".to_owned(), &config.hooks, false))
        .chain(
            config
                .units
                .iter()
                .map(|(name, unit)| (format!("[units.\"{name}\".hooks]"), &unit.hooks, true)),
        )
        .find_map(|(owner, set, in_unit)| {
            set.invalid(in_unit)
                .map(|message| format!("{owner} {message}"))
        })
}

/// The first `freeze-sockets` entry that does not name a socket unit.
fn bad_freeze_socket(config: &Config) -> Option<String> {
    config.units.iter().find_map(|(name, unit)| {
        unit.freeze_sockets
            .iter()
            .find(|s| {
                !s.ends_with(".socket")
                    || s.len() <= ".socket".len()
                    || s.starts_with('-')
                    || s.contains(char::is_whitespace)
            })
            .map(|s| {
                format!(
                    "[units.\"{name}\"] freeze-sockets: `{s}` is not a socket unit; give its \
                     full name (`zoopa-ondemand@{name}.socket`)"
                )
            })
    })
}

/// The first exclude glob of a `[units]` table that cannot be used, with where it is.
fn bad_exclude_glob(config: &Config) -> Option<String> {
    config.units.iter().find_map(|(name, unit)| {
        let tables = std::iter::once((format!("[units.\"{name}\"]"), &unit.exclude))
            .chain(unit.volumes.iter().map(|(volume, m)| {
                (
                    format!("[units.\"{name}\".volumes.\"{volume}\"]"),
                    &m.exclude,
                )
            }))
            .chain(
                unit.binds
                    .iter()
                    .map(|(bind, m)| (format!("[units.\"{name}\".binds.\"{bind}\"]"), &m.exclude)),
            )
            .chain(unit.services.iter().filter_map(|(service, s)| {
                s.exclude
                    .as_ref()
                    .map(|e| (format!("[units.\"{name}\".services.\"{service}\"]"), e))
            }));
        for (table, globs) in tables {
            if let Some(error) = globs
                .iter()
                .find_map(|g| crate::repo::check_exclude_glob(g).err())
            {
                return Some(format!("{table} exclude: {error}"));
            }
        }
        None
    })
}

/// Exactly one URL source per notification target, at most one for the healthcheck; a known
/// `kind`.
fn secret_sources_invalid(config: &Config) -> Option<String> {
    let m = &config.monitoring;
    let count = |a: bool, b: bool, c: bool| usize::from(a) + usize::from(b) + usize::from(c);
    if count(
        m.healthcheck_url.is_some(),
        m.healthcheck_url_file.is_some(),
        m.healthcheck_url_env.is_some(),
    ) > 1
    {
        return Some(
            "[monitoring] sets more than one of healthcheck-url, healthcheck-url-file, \
             healthcheck-url-env; keep one"
                .into(),
        );
    }
    for (i, t) in config.notifications.targets.iter().enumerate() {
        if count(t.url.is_some(), t.url_file.is_some(), t.url_env.is_some()) != 1 {
            return Some(format!(
                "[[notifications.targets]] number {}: set exactly one of url, url-file, url-env",
                i + 1
            ));
        }
        if let Some(kind) = &t.kind
            && !NOTIFICATION_KINDS.contains(&kind.as_str())
        {
            return Some(format!(
                "[[notifications.targets]] number {}: kind `{kind}` is not one of {}",
                i + 1,
                NOTIFICATION_KINDS.join(", ")
            ));
        }
    }
    None
}

/// The values `[[notifications.targets]] kind` accepts.
pub const NOTIFICATION_KINDS: &[&str] =
    &["webhook", "ntfy", "gotify", "discord", "slack", "telegram"];

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}
