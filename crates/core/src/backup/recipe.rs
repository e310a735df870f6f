//! The recipe of a unit: what is needed to bring it back besides its data.
//!
//! Layout of the staged directory (and of the `recipe` snapshot):
//! - `compose/<path relative to the project dir>`: compose files and env files, with their
//!   relative layout (files outside the project dir go under `compose/_abs/<absolute path>`);
//! - `inspect/<container>.json`: `docker inspect` of each container, secret-looking
//!   environment values redacted (see [`redact_env`]);
//! - `manifest.json`: the unit as discovered (containers, volumes, binds, networks, start order,
//!   coverage) with the backup id and tool version;
//! - `coverage.json`: the coverage report alone;
//! - `volumes.json`: `docker volume inspect` of each named volume (driver, options, labels), so
//!   a restore on a fresh host creates them as they were.
//!
//! `.env` and `env_file`s are stored **verbatim**: the repository is encrypted, and without them
//! a stack cannot be restored. Only the inspect output is redacted, because it duplicates them
//! and is meant to be read by people.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::docker::Engine;
use crate::repo::BackupId;
use crate::unit::{ProjectFile, Unit};

/// Error while staging.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A file could not be copied or written.
    #[error("staging the recipe: {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The engine failed.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecipeError + '_ {
    move |source| RecipeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    backup_id: &'a BackupId,
    created_at: jiff::Timestamp,
    tool_version: &'static str,
    unit: &'a Unit,
}

/// Writes the recipe of `unit` into the empty directory `dir`.
pub async fn stage(
    engine: &Engine,
    unit: &Unit,
    backup_id: &BackupId,
    dir: &Path,
) -> Result<(), RecipeError> {
    let compose_dir = dir.join("compose");
    if let Some(project) = &unit.project {
        let base = project.working_dir.as_deref();
        for file in project
            .compose_files
            .iter()
            .chain(&project.env_files)
            .filter(|f| f.present)
        {
            copy_project_file(file, base, &compose_dir)?;
        }
    }
    let inspect_dir = dir.join("inspect");
    std::fs::create_dir_all(&inspect_dir).map_err(io(&inspect_dir))?;
    for container in &unit.containers {
        let mut doc = engine.inspect_container_json(&container.id).await?;
        redact_inspect(&mut doc);
        write_json(&inspect_dir.join(format!("{}.json", container.name)), &doc)?;
    }
    let manifest = Manifest {
        backup_id,
        created_at: jiff::Timestamp::now(),
        tool_version: crate::VERSION,
        unit,
    };
    write_json(&dir.join("manifest.json"), &manifest)?;
    write_json(&dir.join("coverage.json"), &unit.coverage)?;
    let mut volumes = Vec::new();
    for volume in &unit.volumes {
        if let Some(doc) = engine.inspect_volume_json(&volume.name).await? {
            volumes.push(doc);
        }
    }
    write_json(&dir.join("volumes.json"), &volumes)?;
    Ok(())
}

/// Writes the unit's custom networks, fully inspected, into `dir/networks.json`.
pub async fn stage_networks(engine: &Engine, unit: &Unit, dir: &Path) -> Result<(), RecipeError> {
    let mut networks = Vec::new();
    for name in &unit.networks {
        networks.push(engine.inspect_network_json(name).await?);
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_json(&dir.join("networks.json"), &networks)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RecipeError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RecipeError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, bytes).map_err(io(path))
}

/// Where a project file goes inside `compose/`: relative to the project dir when inside it, so
/// `a/docker-compose.yml` and `b/docker-compose.yml` never collide.
fn staged_path(file: &Path, base: Option<&Path>) -> PathBuf {
    if let Some(rel) = base.and_then(|b| file.strip_prefix(b).ok())
        && rel.components().all(|c| matches!(c, Component::Normal(_)))
    {
        return rel.to_path_buf();
    }
    Path::new("_abs").join(file.strip_prefix("/").unwrap_or(file))
}

fn copy_project_file(
    file: &ProjectFile,
    base: Option<&Path>,
    into: &Path,
) -> Result<(), RecipeError> {
    let dest = into.join(staged_path(&file.path, base));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(&file.path, &dest).map_err(io(&file.path))?;
    Ok(())
}

/// The placeholder for redacted values.
pub const REDACTED: &str = "***REDACTED***";

/// Words in an environment variable name that mark its value as a secret. The name is split
/// at `_`, `-` and `.`, and a word must match whole: `DB_PASSWORD` and `API_KEY` are secrets,
/// `KEYCLOAK_URL` and `MONKEY` are not.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "KEY",
    "APIKEY",
    "PRIVATE",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "SALT",
    "DSN",
];

/// Redacts one `NAME=value` entry: the whole value when the name has a secret word, else only a
/// password inside a URL (`scheme://user:password@host` keeps user and host).
pub fn redact_env(entry: &str) -> String {
    let Some((name, value)) = entry.split_once('=') else {
        return entry.to_owned();
    };
    let secret_name = name
        .split(['_', '-', '.'])
        .any(|word| SECRET_WORDS.iter().any(|s| word.eq_ignore_ascii_case(s)));
    if secret_name && !value.is_empty() {
        return format!("{name}={REDACTED}");
    }
    format!("{name}={}", redact_url_password(value))
}

fn redact_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_owned();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return value.to_owned();
    };
    format!(
        "{}{}:{REDACTED}{}",
        &value[..scheme_end + 3],
        &userinfo[..colon],
        &value[scheme_end + 3 + at..]
    )
}

fn redact_inspect(doc: &mut serde_json::Value) {
    if let Some(env) = doc
        .pointer_mut("/Config/Env")
        .and_then(|e| e.as_array_mut())
    {
        for entry in env.iter_mut() {
            if let Some(text) = entry.as_str() {
                *entry = serde_json::Value::String(redact_env(text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_words_match_whole_words_only() {
        assert_eq!(
            redact_env("DB_PASSWORD=hunter2"),
            "DB_PASSWORD=***REDACTED***"
        );
        assert_eq!(redact_env("api_key=x"), "api_key=***REDACTED***");
        assert_eq!(
            redact_env("GITEA__security__SECRET_KEY=x"),
            "GITEA__security__SECRET_KEY=***REDACTED***"
        );
        assert_eq!(
            redact_env("KEYCLOAK_URL=https://kc"),
            "KEYCLOAK_URL=https://kc"
        );
        assert_eq!(redact_env("MONKEY=banana"), "MONKEY=banana");
        assert_eq!(redact_env("CAPI_HOST=h"), "CAPI_HOST=h");
        assert_eq!(redact_env("EMPTY_PASSWORD="), "EMPTY_PASSWORD=");
        assert_eq!(redact_env("NOVALUE"), "NOVALUE");
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact_env("DATABASE_URL=postgres://app:s3cr@t@db:5432/app?x=1"),
            "DATABASE_URL=postgres://app:***REDACTED***@db:5432/app?x=1"
        );
        assert_eq!(
            redact_env("URL=https://user@host/p"),
            "URL=https://user@host/p"
        );
        assert_eq!(
            redact_env("URL=https://host/p?a=b:c@d"),
            "URL=https://host/p?a=b:c@d"
        );
    }

    #[test]
    fn staged_paths_keep_layout_and_never_escape() {
        let base = Path::new("/srv/app");
        assert_eq!(
            staged_path(Path::new("/srv/app/docker-compose.yml"), Some(base)),
            Path::new("docker-compose.yml")
        );
        assert_eq!(
            staged_path(Path::new("/srv/app/b/docker-compose.yml"), Some(base)),
            Path::new("b/docker-compose.yml")
        );
        assert_eq!(
            staged_path(Path::new("/etc/app.env"), Some(base)),
            Path::new("_abs/etc/app.env")
        );
        assert_eq!(
            staged_path(Path::new("/x.yml"), None),
            Path::new("_abs/x.yml")
        );
    }
}
