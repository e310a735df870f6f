//! Migrating from Kopi-Docka, the Python original: its JSON config mapped onto ours, with a
//! note for every setting that does not carry over (a silent drop would look like a setting
//! that still works).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::{self, Config, ConfigError};

/// What can go wrong in a migration.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The old config cannot be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The old config is not JSON (a usage error).
    #[error("{} is not a Kopi-Docka JSON config: {reason}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The config file exists and replacing it was not asked for (a usage error).
    #[error("{} exists; add --force to replace it (kept as .bak)", path.display())]
    Exists {
        /// The config file.
        path: PathBuf,
    },
    /// The migrated config does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The migrated config cannot be written as TOML.
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
    /// Writing the config failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A migrated config: ours, the notes on what did not carry over, and the file text.
#[derive(Debug)]
pub struct Migration {
    /// The mapped configuration.
    pub config: Config,
    /// One note per setting that has no meaning here.
    pub notes: Vec<String>,
    /// The config file to write: a header, the notes as comments, the TOML.
    pub text: String,
}

/// Reads a Kopi-Docka JSON config and maps it ([`map`]); writes nothing.
pub fn read(file: &Path) -> Result<Migration, MigrateError> {
    let text = std::fs::read_to_string(file).map_err(|source| MigrateError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    let old: Value = serde_json::from_str(&text).map_err(|e| MigrateError::NotJson {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (config, notes) = map(&old);
    let mut text = String::from(
        "# Imported from a Kopi-Docka config by `kopi-docka admin config import-kopi-docka`.\n",
    );
    for note in &notes {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "# NOT CARRIED OVER: {note}");
    }
    text.push_str(&toml::to_string_pretty(&config)?);
    Ok(Migration {
        config,
        notes,
        text,
    })
}

/// Writes the migrated config to `path` once it validates; an existing file is replaced only
/// with `force`, and then kept aside as `*.kopi-docka-<time>.bak`.
pub fn write(migration: &Migration, path: &Path, force: bool) -> Result<(), MigrateError> {
    if path.exists() && !force {
        return Err(MigrateError::Exists {
            path: path.to_path_buf(),
        });
    }
    config::parse(&migration.text, path)?;
    crate::durable::keep_aside(path, &crate::durable::stamp(jiff::Timestamp::now()))?;
    if let Some(dir) = path.parent() {
        crate::durable::create_dir_all(dir, 0o700)?;
    }
    crate::durable::write_file(path, migration.text.as_bytes(), 0o600)?;
    Ok(())
}

/// The mapping, pure: our config and one note per setting that has no meaning here.
pub fn map(old: &Value) -> (Config, Vec<String>) {
    let mut config = Config::default();
    let mut notes = Vec::new();
    let u32_at = |p: &str| {
        old.pointer(p)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let r = &mut config.retention;
    for (path, slot) in [
        ("/retention/latest", &mut r.keep_last),
        ("/retention/hourly", &mut r.keep_hourly),
        ("/retention/daily", &mut r.keep_daily),
        ("/retention/weekly", &mut r.keep_weekly),
        ("/retention/monthly", &mut r.keep_monthly),
        ("/retention/annual", &mut r.keep_yearly),
    ] {
        if let Some(n) = u32_at(path) {
            *slot = n;
        }
    }
    if let Some(n) = u32_at("/backup/stop_timeout") {
        config.backup.stop_timeout_seconds = n;
    }
    if let Some(n) = u32_at("/backup/start_timeout") {
        config.backup.health_timeout_seconds = n;
    }
    if let Some(scope) = old.pointer("/backup/backup_scope").and_then(Value::as_str)
        && let Ok(s) = serde_json::from_value(Value::String(scope.to_owned()))
    {
        config.backup.scope = s;
    }
    let hook = |p: &str| {
        old.pointer(p)
            .and_then(Value::as_str)
            .map(|s| vec![s.to_owned()])
    };
    config.hooks.pre_backup = hook("/backup/hooks/pre_backup")
        .or_else(|| hook("/backup/pre_backup_hook"))
        .map(crate::config::Hook::Host);
    config.hooks.post_backup = hook("/backup/hooks/post_backup")
        .or_else(|| hook("/backup/post_backup_hook"))
        .map(crate::config::Hook::Host);
    if let Some(file) = old.pointer("/kopia/password_file").and_then(Value::as_str) {
        config.repository.password_file = Some(file.into());
        notes.push(format!(
            "the Kopia repository itself: kopi-docka keeps restic-format repositories, so point \
             [repository] location at a NEW location (the Kopia password file {file} is reused \
             for it; `kopi-docka admin repo init` creates it)"
        ));
    } else {
        notes.push("the Kopia repository and its inline password: set [repository] location and password-file, then `kopi-docka admin repo init`".into());
    }
    if let Some(params) = old.pointer("/kopia/kopia_params").and_then(Value::as_str) {
        notes.push(format!("kopia_params `{params}` (Kopia backend flags)"));
    }
    if old
        .pointer("/backup/exclude_patterns")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        notes.push("exclude_patterns (file patterns; kopi-docka excludes whole paths: [discovery] exclude-paths)".into());
    }
    if old
        .pointer("/backup/update_recovery_bundle")
        .and_then(Value::as_bool)
        == Some(true)
    {
        notes.push("update_recovery_bundle: set [disaster-recovery] bundle-dir and passphrase-file (bundles are age-encrypted now)".into());
    }
    if old
        .pointer("/notifications/enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        notes.push("notifications: configure them again (see docs/configuration.md)".into());
    }
    if old
        .pointer("/alerting/missed_backup/enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        notes.push("alerting.missed_backup thresholds".into());
    }
    (config, notes)
}
