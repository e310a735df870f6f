//! Backend credentials from files, never from the location or the config itself.
//!
//! `[repository] env-file` names a file of `NAME=value` lines with the variables users know
//! from restic and the cloud tools (`AWS_ACCESS_KEY_ID`, `AZURE_ACCOUNT_KEY`, ...); each is
//! mapped to the backend option it sets. `[repository] rclone-config` names the `rclone.conf`
//! an `rclone:` repository uses. Both must be private (mode 0600 or stricter): a file that
//! group or others may read is refused with the `chmod` that fixes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{RemoteBackend, RepositoryLocation};
use crate::durable::{PrivateFileError, read_private};

use super::location::{REST_PASSWORD_OPTION, REST_USER_OPTION};

/// A credentials file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Unreadable or readable by others.
    #[error("[repository] {key}: {source}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// Why.
        #[source]
        source: PrivateFileError,
    },
    /// A line that is not `NAME=value`, or a name this backend does not take.
    #[error("[repository] env-file {}, line {line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what is accepted.
        reason: String,
    },
}

/// The variables an env file may set for `backend`, and the option each one sets.
fn variables(backend: Option<RemoteBackend>) -> &'static [(&'static str, &'static str)] {
    const S3: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
        ("AWS_SESSION_TOKEN", "session_token"),
        ("AWS_DEFAULT_REGION", "region"),
        ("AWS_REGION", "region"),
    ];
    const B2: &[(&str, &str)] = &[
        ("B2_ACCOUNT_ID", "access_key_id"),
        ("B2_ACCOUNT_KEY", "secret_access_key"),
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ];
    const AZURE: &[(&str, &str)] = &[
        ("AZURE_ACCOUNT_NAME", "account_name"),
        ("AZURE_ACCOUNT_KEY", "account_key"),
        ("AZURE_ACCOUNT_SAS", "sas_token"),
    ];
    const GCS: &[(&str, &str)] = &[
        ("GOOGLE_APPLICATION_CREDENTIALS", "credential_path"),
        ("GOOGLE_ACCESS_TOKEN", "token"),
    ];
    const REST: &[(&str, &str)] = &[
        ("RESTIC_REST_USERNAME", REST_USER_OPTION),
        ("RESTIC_REST_PASSWORD", REST_PASSWORD_OPTION),
    ];
    const WEBDAV: &[(&str, &str)] = &[
        ("WEBDAV_USERNAME", "username"),
        ("WEBDAV_PASSWORD", "password"),
    ];
    match backend {
        Some(RemoteBackend::S3) => S3,
        Some(RemoteBackend::B2) => B2,
        Some(RemoteBackend::Azure) => AZURE,
        Some(RemoteBackend::Gcs) => GCS,
        Some(RemoteBackend::Rest) => REST,
        Some(RemoteBackend::Webdav) => WEBDAV,
        Some(RemoteBackend::Sftp | RemoteBackend::Rclone) | None => &[],
    }
}

/// The backend options set by the env file at `path`, for `location`.
pub fn env_file_options(
    location: &RepositoryLocation,
    path: &Path,
) -> Result<BTreeMap<String, String>, CredentialsError> {
    let text = read_private(path).map_err(|source| CredentialsError::File {
        key: "env-file",
        source,
    })?;
    parse_env_file(location, path, &text)
}

/// The backend options set by `text`, the content an env file at `path` will have (for
/// `setup`'s connection test, before the file is written).
pub fn env_text_options(
    location: &RepositoryLocation,
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, String>, CredentialsError> {
    parse_env_file(location, path, text)
}

fn parse_env_file(
    location: &RepositoryLocation,
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, String>, CredentialsError> {
    let backend = match location {
        RepositoryLocation::Local(_) => None,
        RepositoryLocation::Remote { backend, .. } => Some(*backend),
    };
    let known = variables(backend);
    let mut options = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |reason: String| CredentialsError::Line {
            path: path.to_path_buf(),
            line: n + 1,
            reason,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(bad("not a NAME=value line".into()));
        };
        let name = name.trim();
        let value = unquote(value.trim());
        let Some((_, option)) = known.iter().find(|(var, _)| *var == name) else {
            let takes = if known.is_empty() {
                format!(
                    "a {} repository takes no variables from env-file; remove it",
                    backend.map_or("local", RemoteBackend::scheme)
                )
            } else {
                let names: Vec<_> = known.iter().map(|(var, _)| *var).collect();
                format!(
                    "a {}: repository takes {}",
                    backend.map_or("local", RemoteBackend::scheme),
                    names.join(", ")
                )
            };
            return Err(bad(format!("{name} is not used here; {takes}")));
        };
        options.insert((*option).to_owned(), value.to_owned());
    }
    Ok(options)
}

/// `"value"` or `'value'` without the quotes (as docker-compose and systemd read env files).
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

/// The `rclone-command` option that makes rclone use the private config file at `path`.
pub fn rclone_command(path: &Path) -> Result<String, CredentialsError> {
    read_private(path).map_err(|source| CredentialsError::File {
        key: "rclone-config",
        source,
    })?;
    let quoted = format!("'{}'", path.display().to_string().replace('\'', r"'\''"));
    Ok(format!(
        "rclone --config {quoted} serve restic --addr 127.0.0.1:0"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(text: &str) -> RepositoryLocation {
        RepositoryLocation::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn env_files_map_known_variables_and_refuse_others() {
        let path = Path::new("/etc/kd/s3.env");
        let options = parse_env_file(
            &location("s3:https://h/b"),
            path,
            "# keys\nexport AWS_ACCESS_KEY_ID=\"AKIA1\"\n\nAWS_SECRET_ACCESS_KEY='s3cr=t'\nAWS_REGION=eu-west-1\n",
        )
        .unwrap();
        assert_eq!(options["access_key_id"], "AKIA1");
        assert_eq!(options["secret_access_key"], "s3cr=t");
        assert_eq!(options["region"], "eu-west-1");
        let b2 = parse_env_file(&location("b2:bkt:p"), path, "B2_ACCOUNT_KEY=k\n").unwrap();
        assert_eq!(b2["secret_access_key"], "k");

        let wrong = parse_env_file(&location("azure:c:/p"), path, "AWS_ACCESS_KEY_ID=x\n")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("/etc/kd/s3.env, line 1"), "{wrong}");
        assert!(
            wrong.contains("AWS_ACCESS_KEY_ID is not used here"),
            "{wrong}"
        );
        assert!(wrong.contains("AZURE_ACCOUNT_NAME"), "{wrong}");
        let garbage = parse_env_file(&location("s3:h/b"), path, "\nAWS_ACCESS_KEY_ID\n")
            .unwrap_err()
            .to_string();
        assert!(
            garbage.contains("line 2: not a NAME=value line"),
            "{garbage}"
        );
        let local = parse_env_file(&location("/srv/r"), path, "AWS_REGION=x\n")
            .unwrap_err()
            .to_string();
        assert!(local.contains("takes no variables"), "{local}");
    }

    #[test]
    fn files_others_may_read_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.env");
        std::fs::write(&path, "AWS_ACCESS_KEY_ID=x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let message = env_file_options(&location("s3:h/b"), &path)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(&format!("run `chmod 600 {}`", path.display())),
            "{message}"
        );
        let message = rclone_command(&path).unwrap_err().to_string();
        assert!(
            message.starts_with("[repository] rclone-config"),
            "{message}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            env_file_options(&location("s3:h/b"), &path).unwrap()["access_key_id"],
            "x"
        );
        assert!(rclone_command(&path).unwrap().contains("--config '"));
    }
}
