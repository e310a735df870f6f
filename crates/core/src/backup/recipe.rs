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
//!   a restore on a fresh host creates them as they were;
//! - `systemd/<absolute path>` and `systemd/units.json`: the files of the systemd units that
//!   run the unit's containers (unit file, Quadlet source, drop-ins), when there are such units.
//!
//! `.env` and `env_file`s are stored **verbatim**: the repository is encrypted, and without them
//! a stack cannot be restored. Only the inspect output is redacted, because it duplicates them
//! and is meant to be read by people.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::docker::Engine;
use crate::repo::BackupId;
use crate::unit::{ProjectFile, Unit, names};

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
    if let Some(project) = &unit.project
        && let Some(base) = project.working_dir.as_deref()
    {
        for file in project
            .compose_files
            .iter()
            .chain(&project.env_files)
            .filter(|f| f.present && f.refused.is_none())
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
    stage_systemd_files(engine, unit, &dir.join("systemd")).await
}

/// Copies the files of the systemd units that run the unit's containers into
/// `systemd/<absolute path>` (e.g. `systemd/etc/systemd/system/container-web.service`), with
/// `systemd/units.json` saying which unit and manager each belongs to. A unit the manager
/// cannot describe is logged and left out: the data matters more than the unit file.
async fn stage_systemd_files(engine: &Engine, unit: &Unit, dir: &Path) -> Result<(), RecipeError> {
    use crate::systemd::control::{Manager, Service};
    #[derive(Serialize)]
    struct Staged<'a> {
        service: &'a Service,
        files: Vec<PathBuf>,
        /// Owner and mode of each of `files`, which a restore gives them back (the copies in
        /// the recipe are root's).
        owners: Vec<crate::systemd::control::FileOwner>,
    }
    let mut services: Vec<&Service> = Vec::new();
    for service in unit.containers.iter().filter_map(|c| c.systemd.as_ref()) {
        if !services.contains(&service) {
            services.push(service);
        }
    }
    let mut staged = Vec::new();
    for service in services {
        let files = match Manager::of(service, engine) {
            Ok(manager) => manager.files(&service.unit).await,
            Err(error) => Err(error),
        };
        let files = match files {
            Ok(files) => files,
            Err(error) => {
                tracing::debug!(unit = %service.unit, %error, "no unit files staged");
                continue;
            }
        };
        let mut copied = Vec::new();
        let mut owners = Vec::new();
        for file in files {
            // Never through a link (a user's unit dir is the user's to point anywhere).
            let meta = match std::fs::symlink_metadata(&file) {
                Ok(meta) if meta.file_type().is_file() => meta,
                _ => {
                    tracing::warn!(file = %file.display(), "unit file is not a regular file; not staged");
                    continue;
                }
            };
            let dest = dir.join(file.strip_prefix("/").unwrap_or(&file));
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            match std::fs::copy(&file, &dest) {
                Ok(_) => {
                    use std::os::unix::fs::MetadataExt as _;
                    owners.push(crate::systemd::control::FileOwner {
                        uid: meta.uid(),
                        gid: meta.gid(),
                        mode: meta.mode() & 0o7777,
                    });
                    copied.push(file);
                }
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "unit file not staged");
                }
            }
        }
        staged.push(Staged {
            service,
            files: copied,
            owners,
        });
    }
    if staged.is_empty() {
        return Ok(());
    }
    write_json(&dir.join("units.json"), &staged)
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

/// Copies a project file that discovery accepted, checked again as it is read (it may have
/// been swapped for a FIFO or a link to a host secret since): see [`crate::unit::names`].
fn copy_project_file(file: &ProjectFile, base: &Path, into: &Path) -> Result<(), RecipeError> {
    let refused = |why: String| RecipeError::Io {
        path: file.path.clone(),
        source: std::io::Error::other(why),
    };
    let canonical = names::working_dir(base).map_err(refused)?;
    let bytes = names::read_project_file(&file.path, &canonical).map_err(refused)?;
    let dest = into.join(staged_path(&file.path, Some(base)));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(&dest, bytes).map_err(io(&dest))?;
    keep_mode_and_owner(&file.path, &dest)
}

/// Gives the staged copy the mode (a `.env` of 0600 stays private) and, run as root, the owner
/// of the project file, so that a restore puts it back as it was.
fn keep_mode_and_owner(source: &Path, dest: &Path) -> Result<(), RecipeError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(source).map_err(io(source))?;
    std::fs::set_permissions(
        dest,
        std::os::unix::fs::PermissionsExt::from_mode(meta.mode() & 0o7777),
    )
    .map_err(io(dest))?;
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(dest, Some(meta.uid()), Some(meta.gid())).map_err(io(dest))?;
    }
    Ok(())
}

/// The placeholder for redacted values.
pub const REDACTED: &str = "***REDACTED***";

/// Words in a name (environment variable, label key, command-line flag) that mark its value as
/// a secret. The name is split at `_`, `-`, `.` and `/`, and a word must match whole:
/// `DB_PASSWORD` and `API_KEY` are secrets, `KEYCLOAK_URL` and `MONKEY` are not.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "PASSPHRASE",
    "SECRET",
    "SECRETS",
    "TOKEN",
    "KEY",
    "APIKEY",
    "AUTHKEY",
    "PRIVATE",
    "CREDENTIAL",
    "CREDENTIALS",
    "AUTH",
    "BASICAUTH",
    "DIGESTAUTH",
    "SALT",
    "DSN",
    "WEBHOOK",
];

/// Endings that mark a single-word name as a secret: `PGPASSWORD`, `WEBPASSWORD`, `DBPASS`,
/// `requirepass`, `TS_AUTHKEY`, `BORG_PASSPHRASE`.
const SECRET_SUFFIXES: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "AUTHKEY",
];

/// Ordinary words that end in `PASS`.
const NOT_SECRET: &[&str] = &[
    "BYPASS",
    "COMPASS",
    "SURPASS",
    "TRESPASS",
    "OVERPASS",
    "UNDERPASS",
];

/// Query parameters whose values are secrets (`?token=...`, `&sig=...`).
const SECRET_QUERY_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "APIKEY",
    "SECRET",
    "PASSWORD",
    "PASS",
    "AUTH",
    "SIG",
    "SIGNATURE",
    "CODE",
];

fn secret_word(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    SECRET_WORDS.contains(&upper.as_str())
        || (!NOT_SECRET.contains(&upper.as_str())
            && SECRET_SUFFIXES.iter().any(|s| upper.ends_with(s)))
}

/// Whether a variable name, label key or flag name (`--requirepass`) names a secret.
fn secret_name(name: &str) -> bool {
    name.split(['_', '-', '.', '/'])
        .filter(|w| !w.is_empty())
        .any(secret_word)
}

/// Redacts one `NAME=value` entry: the whole value when the name is a secret's, else the
/// secrets inside URLs in it (see [`redact_urls`]).
pub fn redact_env(entry: &str) -> String {
    let Some((name, value)) = entry.split_once('=') else {
        return entry.to_owned();
    };
    if secret_name(name) && !value.is_empty() {
        return format!("{name}={REDACTED}");
    }
    format!("{name}={}", redact_urls(value))
}

/// Redacts the secrets of every URL in `text`: the password of `user:password@`, the values of
/// secret query parameters (`?token=`, `&key=`), and path segments that look like tokens
/// (16 or more letters, digits, `-` and `_`, with both letters and digits, as in webhook
/// URLs).
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The URL runs from its scheme to the next whitespace or quote.
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}{}", &authority[at..]),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let path: Vec<String> = path
        .split('/')
        .map(|segment| {
            if token_like(segment) {
                REDACTED.to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect();
    let mut out = format!("{scheme}{authority}{}", path.join("/"));
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !value.is_empty() && secret_query(key) => {
                    format!("{key}={REDACTED}")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

fn secret_query(key: &str) -> bool {
    secret_name(key)
        || key
            .split(['_', '-', '.'])
            .any(|w| SECRET_QUERY_WORDS.iter().any(|s| w.eq_ignore_ascii_case(s)))
}

/// A path segment that is a credential rather than a name: long, and made of letters and digits
/// both (`T0123ABCD/B0123ABCD/abcdefghijklmnopqrstuvwx` has one; `docker-compose` has none).
fn token_like(segment: &str) -> bool {
    segment.len() >= 16
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && segment.chars().any(|c| c.is_ascii_digit())
        && segment.chars().any(|c| c.is_ascii_alphabetic())
}

/// A basic-auth or htpasswd hash (`user:$apr1$...`, `$2y$...`, `{SHA}...`).
fn password_hash(value: &str) -> bool {
    [
        "$apr1$", "$2a$", "$2b$", "$2y$", "$1$", "$5$", "$6$", "{SHA}", "{SSHA}",
    ]
    .iter()
    .any(|marker| value.contains(marker))
}

/// Redacts a command (`Cmd`, `Entrypoint`, a health check's `Test`): the value after a secret
/// flag (`--requirepass x`, `--password=x`), `NAME=value` words with a secret name, URLs.
/// Arguments that are shell scripts (`sh -c "..."`) are redacted word by word.
fn redact_command(args: &mut [serde_json::Value]) {
    let mut redact_next = false;
    for arg in args.iter_mut() {
        let Some(text) = arg.as_str() else {
            redact_next = false;
            continue;
        };
        let redacted = if redact_next {
            redact_next = false;
            REDACTED.to_owned()
        } else if text.contains(char::is_whitespace) {
            redact_script(text)
        } else {
            let (word, next) = redact_word(text);
            redact_next = next;
            word
        };
        if redacted != text {
            *arg = serde_json::Value::String(redacted);
        }
    }
}

/// One argument: the redacted argument, and whether the next one is a secret value.
fn redact_word(word: &str) -> (String, bool) {
    if let Some(flag) = word.strip_prefix('-') {
        let flag = flag.trim_start_matches('-');
        return match flag.split_once('=') {
            Some((name, value)) if secret_name(name) && !value.is_empty() => (
                format!("{}={REDACTED}", &word[..word.len() - value.len() - 1]),
                false,
            ),
            Some(_) => (redact_urls(word), false),
            None => (word.to_owned(), flag.len() > 1 && secret_name(flag)),
        };
    }
    if word.contains('=') {
        return (redact_env(word), false);
    }
    (redact_urls(word), false)
}

/// A shell script, word by word; unchanged (spacing and all) when nothing in it is secret.
fn redact_script(script: &str) -> String {
    let mut changed = false;
    let mut redact_next = false;
    let words: Vec<String> = script
        .split(' ')
        .map(|word| {
            if word.is_empty() {
                return String::new();
            }
            let redacted = if redact_next {
                redact_next = false;
                REDACTED.to_owned()
            } else {
                let (w, next) = redact_word(word);
                redact_next = next;
                w
            };
            changed |= redacted != word;
            redacted
        })
        .collect();
    if changed {
        words.join(" ")
    } else {
        script.to_owned()
    }
}

/// Redacts a label's value when its key names a secret (`...basicauth.users`), when the value
/// is a password hash, and the secrets of URLs in it.
fn redact_label(key: &str, value: &str) -> String {
    if !value.is_empty() && (secret_name(key) || password_hash(value)) {
        return REDACTED.to_owned();
    }
    redact_urls(value)
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
    for pointer in [
        "/Config/Cmd",
        "/Config/Entrypoint",
        "/Config/Healthcheck/Test",
        "/Args",
    ] {
        if let Some(args) = doc.pointer_mut(pointer).and_then(|a| a.as_array_mut()) {
            redact_command(args);
        }
    }
    if let Some(path) = doc.pointer_mut("/Path")
        && let Some(text) = path.as_str()
    {
        *path = serde_json::Value::String(redact_urls(text));
    }
    if let Some(labels) = doc
        .pointer_mut("/Config/Labels")
        .and_then(|l| l.as_object_mut())
    {
        for (key, value) in labels.iter_mut() {
            if let Some(text) = value.as_str() {
                *value = serde_json::Value::String(redact_label(key, text));
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
        // Several URLs in one value, each ending at whitespace or a quote, the first at the
        // very start after a space.
        assert_eq!(
            redact_env("URLS= git+ssh://a:one@h/db \"mysql://b:two@h2/x\" 'x://c:three@h3'"),
            "URLS= git+ssh://a:***REDACTED***@h/db \"mysql://b:***REDACTED***@h2/x\" \
             'x://c:***REDACTED***@h3'"
        );
    }

    #[test]
    fn single_word_secret_names_are_redacted() {
        for name in [
            "PGPASSWORD",
            "WEBPASSWORD",
            "DBPASS",
            "TS_AUTHKEY",
            "MYSQL_ROOT_PASSWD",
        ] {
            assert_eq!(
                redact_env(&format!("{name}=x")),
                format!("{name}={REDACTED}")
            );
        }
        for name in [
            "BORG_PASSPHRASE",
            "RESTIC_PASSPHRASE",
            "passphrase",
            "GH_TOKEN",
            "githubtoken",
        ] {
            assert_eq!(
                redact_env(&format!("{name}=x")),
                format!("{name}={REDACTED}")
            );
        }
        for name in [
            "BYPASS_CACHE",
            "COMPASS",
            "PATH",
            "HOSTNAME",
            "TOKENIZER_MODE",
        ] {
            assert_eq!(redact_env(&format!("{name}=x")), format!("{name}=x"));
        }
    }

    #[test]
    fn tokens_in_url_paths_and_queries_are_redacted() {
        assert_eq!(
            redact_env("SLACK_WEBHOOK=https://hooks.example/services/T000/B000/XXXX"),
            format!("SLACK_WEBHOOK={REDACTED}")
        );
        assert_eq!(
            redact_env(
                "NOTIFY=https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghij0123456789wxyz"
            ),
            format!("NOTIFY=https://hooks.slack.com/services/T0123ABCD/B0123ABCD/{REDACTED}")
        );
        assert_eq!(
            redact_env("PING=https://hc.example/ping?token=abc&check=web&api_key=k#frag"),
            format!(
                "PING=https://hc.example/ping?token={REDACTED}&check=web&api_key={REDACTED}#frag"
            )
        );
        assert_eq!(
            redact_env("MIRROR=see https://bob:hunter2@git.example/r.git and more"),
            format!("MIRROR=see https://bob:{REDACTED}@git.example/r.git and more")
        );
        assert_eq!(
            redact_env("HOME_URL=https://example.org/docs/docker-compose-reference?lang=en"),
            "HOME_URL=https://example.org/docs/docker-compose-reference?lang=en"
        );
        // Query keys that are secrets only as query parameters (a signed URL's `sig`, an
        // OAuth `code`), and ones that are secret names anywhere (`salt`).
        assert_eq!(
            redact_env("BLOB=https://acct.example/c/f?sv=2024&sig=abc123&code=x&salt=s"),
            format!(
                "BLOB=https://acct.example/c/f?sv=2024&sig={REDACTED}&code={REDACTED}&salt={REDACTED}"
            )
        );
    }

    #[test]
    fn passwords_in_command_arguments_are_redacted() {
        let mut cmd = serde_json::json!([
            "redis-server",
            "--requirepass",
            "hunter2",
            "--password=pw",
            "--port",
            "6379",
            "-p",
            "80",
            "--db-url=postgres://u:pw@db/x",
            "TOKEN=t",
            "--bypass",
            "on"
        ]);
        redact_command(cmd.as_array_mut().unwrap());
        assert_eq!(
            cmd,
            serde_json::json!([
                "redis-server",
                "--requirepass",
                REDACTED,
                format!("--password={REDACTED}"),
                "--port",
                "6379",
                "-p",
                "80",
                format!("--db-url=postgres://u:{REDACTED}@db/x"),
                format!("TOKEN={REDACTED}"),
                "--bypass",
                "on"
            ])
        );
        let mut script = serde_json::json!([
            "sh",
            "-c",
            "exec redis-server  --requirepass s3cret --appendonly yes"
        ]);
        redact_command(script.as_array_mut().unwrap());
        assert_eq!(
            script[2],
            format!("exec redis-server  --requirepass {REDACTED} --appendonly yes")
        );
        // A script of nothing but secrets is redacted too (every word changed).
        let mut only_secrets = serde_json::json!(["env", "API_KEY=k1 DB_PASSWORD=p1"]);
        redact_command(only_secrets.as_array_mut().unwrap());
        assert_eq!(
            only_secrets[1],
            format!("API_KEY={REDACTED} DB_PASSWORD={REDACTED}")
        );
        let mut plain = serde_json::json!(["sh", "-c", "trap 'exit 0' TERM;  sleep 1 & wait"]);
        let before = plain.clone();
        redact_command(plain.as_array_mut().unwrap());
        assert_eq!(plain, before, "nothing secret: untouched, spacing and all");
    }

    #[test]
    fn labels_and_health_checks_are_redacted() {
        let mut doc = serde_json::json!({
            "Path": "https://u:s3cret@dl.example/run",
            "Args": ["--token", "s3cret"],
            "Config": {
                "Env": ["PGPASSWORD=pw"],
                "Entrypoint": ["/init", "--api-key=s3cret"],
                "Cmd": ["mysqld", "--password=pw"],
                "Healthcheck": {"Test": ["CMD-SHELL", "redis-cli --pass s3cret ping"]},
                "Labels": {
                    "traefik.http.middlewares.admin.basicauth.users": "admin:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/",
                    "com.example.users": "bob:$2y$05$abcdefghijklmnopqrstuv",
                    "com.docker.compose.project": "app",
                    "com.docker.compose.project.working_dir": "/srv/app",
                    "backup.notify": "https://hc.example/ping?token=abc"
                }
            }
        });
        redact_inspect(&mut doc);
        assert_eq!(doc["Config"]["Env"][0], format!("PGPASSWORD={REDACTED}"));
        assert_eq!(doc["Config"]["Cmd"][1], format!("--password={REDACTED}"));
        assert_eq!(doc["Path"], format!("https://u:{REDACTED}@dl.example/run"));
        assert_eq!(doc["Args"], serde_json::json!(["--token", REDACTED]));
        assert_eq!(
            doc["Config"]["Entrypoint"][1],
            format!("--api-key={REDACTED}")
        );
        assert_eq!(
            doc["Config"]["Healthcheck"]["Test"][1],
            format!("redis-cli --pass {REDACTED} ping")
        );
        let labels = &doc["Config"]["Labels"];
        assert_eq!(
            labels["traefik.http.middlewares.admin.basicauth.users"],
            REDACTED
        );
        assert_eq!(labels["com.example.users"], REDACTED);
        assert_eq!(labels["com.docker.compose.project"], "app");
        assert_eq!(labels["com.docker.compose.project.working_dir"], "/srv/app");
        assert_eq!(
            labels["backup.notify"],
            format!("https://hc.example/ping?token={REDACTED}")
        );
        assert!(!doc.to_string().contains("s3cret") && !doc.to_string().contains("$apr1$"));
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
