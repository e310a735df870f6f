//! The config file as users administer it: shown with its secrets masked, and replaced by an
//! edited copy only when the copy is valid (a typo must never leave a config that the next
//! timer run cannot load).

use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError, RepositoryLocation};

/// Words in option names that mark secret values.
const SECRET_WORDS: &[&str] = &["key", "secret", "token", "password", "credential", "pass"];

/// What can go wrong administering the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The config file cannot be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The edited copy does not validate; the config is unchanged (a usage error).
    #[error(
        "{error}\n{} is unchanged; your edits are kept in {} (fix them and copy it over)",
        path.display(),
        copy.display()
    )]
    Invalid {
        /// Why it is invalid.
        error: ConfigError,
        /// The config file.
        path: PathBuf,
        /// The edited copy.
        copy: PathBuf,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `config` with the repository's password command, every option whose name looks secret, and
/// the notification and monitoring URLs (they carry tokens and passwords) replaced by `***`
/// (a URL keeps its scheme and host: `https://hc-ping.com/***`), for showing.
pub fn masked(config: &Config) -> Config {
    let mut config = config.clone();
    for target in &mut config.notifications.targets {
        target.url = target.url.as_deref().map(masked_url);
    }
    config.monitoring.healthcheck_url =
        config.monitoring.healthcheck_url.as_deref().map(masked_url);
    if config.repository.password_command.is_some() {
        config.repository.password_command = Some("***".into());
    }
    for (name, value) in &mut config.repository.options {
        let lower = name.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            *value = "***".into();
        }
    }
    // `rest:` and `webdav:` URLs may carry `user:pass@` (restic accepts them there).
    if let Some(RepositoryLocation::Remote { backend, target }) = &config.repository.location
        && let Some((scheme, rest)) = target.split_once("://")
        && let Some((userinfo, after)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        let user = userinfo.split(':').next().unwrap_or_default();
        config.repository.location = Some(RepositoryLocation::Remote {
            backend: *backend,
            target: format!("{scheme}://{user}:***@{after}"),
        });
    }
    config
}

/// `scheme://host/***`: enough to recognise the service, nothing of the credentials in the
/// user part, the path or the query.
fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/***")
}

/// A private copy of the config file to edit, beside it (`*.toml.edit-<stamp>`).
pub fn edit_copy(path: &Path, stamp: &str) -> Result<PathBuf, ConfigFileError> {
    let copy = path.with_extension(format!("toml.edit-{stamp}"));
    let text = std::fs::read(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::durable::write_file(&copy, &text, 0o600)?;
    Ok(copy)
}

/// Replaces the config file with the edited `copy` when the copy is valid; the previous
/// version is kept aside, and its path returned.
pub fn adopt_copy(path: &Path, copy: &Path, stamp: &str) -> Result<PathBuf, ConfigFileError> {
    let edited = std::fs::read_to_string(copy)?;
    if let Err(error) = config::parse(&edited, path) {
        return Err(ConfigFileError::Invalid {
            error,
            path: path.to_path_buf(),
            copy: copy.to_path_buf(),
        });
    }
    let backup = crate::durable::aside_path(path, stamp);
    std::fs::copy(path, &backup)?;
    std::fs::rename(copy, path)?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        let mut config = Config::default();
        config.repository.password_command = Some("pass show x".into());
        config
            .repository
            .options
            .insert("access-key-id".into(), "AKIA".into());
        config
            .repository
            .options
            .insert("region".into(), "eu".into());
        let shown = masked(&config);
        assert_eq!(shown.repository.password_command.as_deref(), Some("***"));
        assert_eq!(shown.repository.options["access-key-id"], "***");
        assert_eq!(shown.repository.options["region"], "eu");

        for (location, shown) in [
            (
                "rest:https://kd:s3cret@rest.lan:8000/repo",
                "rest:https://kd:***@rest.lan:8000/repo",
            ),
            (
                "webdav:https://kd:s3cret@dav.lan/kd",
                "webdav:https://kd:***@dav.lan/kd",
            ),
            (
                "rest:http://rest.lan:8000/repo",
                "rest:http://rest.lan:8000/repo",
            ),
        ] {
            config.repository.location =
                Some(RepositoryLocation::try_from(location.to_owned()).unwrap());
            let masked = masked(&config).repository.location.unwrap().to_string();
            assert_eq!(masked, shown);
        }
    }

    #[test]
    fn notification_and_monitoring_urls_are_masked() {
        let mut config = Config::default();
        config
            .notifications
            .targets
            .push(crate::config::NotificationTarget {
                url: Some("tgram://123456:AAHsecret@telegram/987".into()),
                ..Default::default()
            });
        config
            .notifications
            .targets
            .push(crate::config::NotificationTarget {
                url: Some("https://hooks.example/services/T000/B000/XXXX".into()),
                ..Default::default()
            });
        config
            .notifications
            .targets
            .push(crate::config::NotificationTarget {
                url_env: Some("NOTIFY_URL".into()),
                ..Default::default()
            });
        config.monitoring.healthcheck_url =
            Some("https://user:pw@hc.example/ping/uuid?token=t".into());
        let shown = masked(&config);
        let urls: Vec<Option<&str>> = shown
            .notifications
            .targets
            .iter()
            .map(|t| t.url.as_deref())
            .collect();
        assert_eq!(
            urls,
            [
                Some("tgram://telegram/***"),
                Some("https://hooks.example/***"),
                None
            ]
        );
        assert_eq!(
            shown.notifications.targets[2].url_env.as_deref(),
            Some("NOTIFY_URL")
        );
        assert_eq!(
            shown.monitoring.healthcheck_url.as_deref(),
            Some("https://hc.example/***")
        );
    }
}
