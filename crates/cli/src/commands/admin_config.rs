//! `kopi-docka admin config show|validate|edit|import-kopi-docka`

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use kopi_docka_core::config::{self, Config, Environment};
use serde_json::Value;

use super::UsageError;
use crate::cli::{ConfigCommand, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Runs an `admin config` subcommand.
pub fn run(
    global: &GlobalArgs,
    command: ConfigCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Show { json } => show(global, json, printer),
        ConfigCommand::Validate => {
            let loaded = super::load_config(global)?;
            match &loaded.path {
                Some(path) => printer.line(&format!("{}: valid", path.display())),
                None => printer.line("no config file: the built-in defaults apply"),
            }
            Ok(ExitCode::Ok)
        }
        ConfigCommand::Edit => edit(global, printer),
        ConfigCommand::ImportKopiDocka { file, write, force } => {
            import_kopi_docka(global, &file, write, force, printer)
        }
    }
}

/// Words in option names that mark secret values.
const SECRET_WORDS: &[&str] = &["key", "secret", "token", "password", "credential", "pass"];

fn show(global: &GlobalArgs, json: bool, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let mut config = loaded.config.clone();
    if config.repository.password_command.is_some() {
        config.repository.password_command = Some("***".into());
    }
    for (name, value) in &mut config.repository.options {
        let lower = name.to_ascii_lowercase();
        if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
            *value = "***".into();
        }
    }
    if json {
        printer.json(&config)?;
    } else {
        let source = loaded.path.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        printer.out(&format!(
            "# effective configuration from {source} (secrets masked)\n{}",
            toml::to_string_pretty(&config)?
        ));
    }
    Ok(ExitCode::Ok)
}

/// Edits a copy with `$EDITOR`; the copy replaces the config only when it is valid.
fn edit(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let Some(path) = loaded.path.clone() else {
        bail!(UsageError(
            "no config file to edit; create one with `kopi-docka setup`".into()
        ));
    };
    let stamp = kopi_docka_core::durable::stamp(jiff::Timestamp::now());
    let copy = path.with_extension(format!("toml.edit-{stamp}"));
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    kopi_docka_core::durable::write_file(&copy, &text, 0o600)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&copy)
        .status()
        .with_context(|| format!("running {editor}"))?;
    if !status.success() {
        bail!(
            "{editor} failed ({status}); {} is unchanged, your edits are in {}",
            path.display(),
            copy.display()
        );
    }
    let edited = std::fs::read_to_string(&copy)?;
    if let Err(error) = config::parse(&edited, &path) {
        bail!(UsageError(format!(
            "{error}\n{} is unchanged; your edits are kept in {} (fix them and copy it over)",
            path.display(),
            copy.display()
        )));
    }
    let backup = kopi_docka_core::durable::aside_path(&path, &stamp);
    std::fs::copy(&path, &backup)?;
    std::fs::rename(&copy, &path)?;
    printer.line(&format!(
        "{} updated (valid); the previous version is kept as {}",
        path.display(),
        backup.display()
    ));
    Ok(ExitCode::Ok)
}

/// Maps a Kopi-Docka (Python) JSON config onto ours and says what does not carry over.
fn import_kopi_docka(
    global: &GlobalArgs,
    file: &Path,
    write: bool,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let old: Value = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "{} is not a Kopi-Docka JSON config: {e}",
            file.display()
        ))
    })?;
    let (config, notes) = map_kopi_docka(&old);
    let mut out = String::from(
        "# Imported from a Kopi-Docka config by `kopi-docka admin config import-kopi-docka`.\n",
    );
    for note in &notes {
        let _ = writeln!(out, "# NOT CARRIED OVER: {note}");
    }
    out.push_str(&toml::to_string_pretty(&config)?);
    if !write {
        printer.out(&out);
        return Ok(ExitCode::Ok);
    }
    let env = Environment::from_process();
    let path = env.config_path(global.config.as_deref()).0;
    if path.exists() && !force {
        bail!(UsageError(format!(
            "{} exists; add --force to replace it (kept as .bak)",
            path.display()
        )));
    }
    config::parse(&out, &path)?;
    kopi_docka_core::durable::keep_aside(
        &path,
        &kopi_docka_core::durable::stamp(jiff::Timestamp::now()),
    )?;
    if let Some(dir) = path.parent() {
        kopi_docka_core::durable::create_dir_all(dir, 0o700)?;
    }
    kopi_docka_core::durable::write_file(&path, out.as_bytes(), 0o600)?;
    printer.line(&format!("wrote {}", path.display()));
    for note in &notes {
        printer.notice(&format!("not carried over: {note}"));
    }
    Ok(ExitCode::Ok)
}

/// The mapping, pure: our config and one note per setting that has no meaning here.
pub fn map_kopi_docka(old: &Value) -> (Config, Vec<String>) {
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
    config.hooks.pre_backup =
        hook("/backup/hooks/pre_backup").or_else(|| hook("/backup/pre_backup_hook"));
    config.hooks.post_backup =
        hook("/backup/hooks/post_backup").or_else(|| hook("/backup/post_backup_hook"));
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
