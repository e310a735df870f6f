//! Settings resolved once, in one place: the config file (found through `--config`,
//! `$KOPI_DOCKA_CONFIG` or the default path), the process environment and a command's flags
//! become the typed values core runs take. Commands never combine them themselves.

use std::ffi::OsString;

use anyhow::Context as _;
use kopi_docka_core::backup::BackupSettings;
use kopi_docka_core::backup::run::RunSettings;
use kopi_docka_core::config::{self, Environment, LoadedConfig};
use kopi_docka_core::daemon::{BackupCommand, DaemonSettings};
use kopi_docka_core::repo::Scope;
use kopi_docka_core::schedule::Schedule;
use kopi_docka_core::systemd;

use crate::cli::{BackupArgs, DaemonArgs, GlobalArgs, ScopeArg};
use crate::commands::UsageError;

/// The process facts that decide default paths (uid, `$HOME`, `$XDG_*`, `$KOPI_DOCKA_*`).
pub fn environment() -> Environment {
    Environment::from_process()
}

/// The configuration named by the global options, against this process's environment, with
/// the repository of `--repo` and `$KOPI_DOCKA_REPOSITORY` / `_PASSWORD_FILE` /
/// `_PASSWORD_COMMAND` over the config's (flag > environment > config).
pub fn config(global: &GlobalArgs) -> anyhow::Result<LoadedConfig> {
    let mut loaded = config::load(global.config.as_deref(), environment())?;
    loaded.override_repository(global.repo.as_deref())?;
    Ok(loaded)
}

/// A backup run: `[backup]` and the hooks from the config, with the command line's overrides.
pub fn backup(loaded: &LoadedConfig, args: &BackupArgs) -> anyhow::Result<RunSettings> {
    let mut backup =
        BackupSettings::from_config(&loaded.config, loaded.env.cache_dir().join("staging"));
    if let Some(scope) = args.scope {
        backup.scope = match scope {
            ScopeArg::Minimal => Scope::Minimal,
            ScopeArg::Standard => Scope::Standard,
            ScopeArg::Full => Scope::Full,
        };
    }
    backup.warm_pass &= !args.no_warm_pass;
    Ok(RunSettings {
        backup,
        units: selected_units(&args.names, &args.units)?,
        wait: args.wait,
    })
}

/// The units of `backup [UNIT...] [--unit NAME...]`: the positional names are the seed
/// orchestrator's (`backup all`, `backup cryptpad nextcloud`). `all` alone means every unit
/// (an empty selection); a unit really named `all` is `--unit all`.
fn selected_units(names: &[String], units: &[String]) -> anyhow::Result<Vec<String>> {
    if names.iter().any(|n| n == "all") {
        if names.len() > 1 || !units.is_empty() {
            anyhow::bail!(UsageError(
                "`all` means every unit: give `all` alone, or name the units (a unit named \
                 `all` is `--unit all`)"
                    .into()
            ));
        }
        return Ok(Vec::new());
    }
    Ok(names.iter().chain(units).cloned().collect())
}

/// What the daemon runs with; resolved again on SIGHUP.
pub fn daemon(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<DaemonSettings> {
    let loaded = config(global)?;
    let schedule = match &args.schedule {
        Some(text) => text
            .parse::<Schedule>()
            .map_err(|e| UsageError(e.to_string()))?,
        None => loaded.config.daemon.schedule.clone(),
    };
    let units = if args.units.is_empty() {
        loaded.config.daemon.units.clone()
    } else {
        args.units.clone()
    };
    let backup = backup_command(global, &loaded, &units)?;
    Ok(DaemonSettings {
        loaded,
        schedule,
        units,
        backup,
    })
}

/// The daemon's backup: `kopi-docka [--config PATH] [-v...|--quiet] [--repo R] backup --wait [--unit NAME...]`.
fn backup_command(
    global: &GlobalArgs,
    loaded: &LoadedConfig,
    units: &[String],
) -> anyhow::Result<BackupCommand> {
    let mut command = own_command(global, loaded)?;
    command.args.extend(["backup".into(), "--wait".into()]);
    for unit in units {
        command.args.extend(["--unit".into(), unit.into()]);
    }
    Ok(command)
}

/// This binary with the global options that make a child see what we see:
/// `kopi-docka [--config PATH] [-v...|--quiet] [--repo R]`.
fn own_command(global: &GlobalArgs, loaded: &LoadedConfig) -> anyhow::Result<BackupCommand> {
    let program = std::env::current_exe().context("finding the kopi-docka binary")?;
    let mut args: Vec<OsString> = Vec::new();
    if let Some(config) = &loaded.path {
        args.extend(["--config".into(), config.into()]);
    }
    args.extend(std::iter::repeat_n(
        "-v".into(),
        usize::from(global.verbose),
    ));
    if global.quiet {
        args.push("--quiet".into());
    }
    if let Some(repo) = &global.repo {
        args.extend(["--repo".into(), repo.into()]);
    }
    Ok(BackupCommand { program, args })
}

/// The daemon's dashboard from `[web]`; `None` when it is off.
pub fn web(
    global: &GlobalArgs,
    loaded: &LoadedConfig,
) -> anyhow::Result<Option<kopi_docka_web::WebSettings>> {
    let command = own_command(global, loaded)?;
    kopi_docka_web::WebSettings::from_config(loaded, command)
        .map_err(|e| UsageError(e.to_string()).into())
}

/// The timer's `OnCalendar=`: `--schedule`, else `[daemon] schedule` when it is a calendar
/// expression, else the default. systemd understands more than the daemon's subset, so an
/// expression `systemd-analyze calendar` accepts is fine for the timer too.
pub fn timer_calendar(loaded: &LoadedConfig, flag: Option<&str>) -> anyhow::Result<String> {
    let Some(text) = flag else {
        return Ok(loaded.config.daemon.schedule.on_calendar().map_or_else(
            // `[daemon] schedule` is an interval: the timer keeps the built-in default.
            || kopi_docka_core::config::defaults::schedule().to_string(),
            str::to_owned,
        ));
    };
    match text.parse::<Schedule>() {
        Ok(schedule) if schedule.on_calendar().is_some() => Ok(text.to_owned()),
        Ok(_) => Err(UsageError(format!(
            "the timer needs a calendar expression (such as `daily` or `*-*-* 02:00:00`); \
             `{text}` is an interval, which only the daemon understands"
        ))
        .into()),
        Err(_) if systemd::calendar_accepted(text) => Ok(text.to_owned()),
        Err(error) => Err(UsageError(error.to_string()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn backup_all_and_named_units_as_the_seed_took_them() {
        let select = |names: &[&str], units: &[&str]| {
            selected_units(&strings(names), &strings(units)).map_err(|e| e.to_string())
        };
        assert_eq!(select(&["all"], &[]), Ok(Vec::new()));
        assert_eq!(select(&[], &[]), Ok(Vec::new()));
        assert_eq!(
            select(&["cryptpad", "nextcloud"], &["gitea"]),
            Ok(strings(&["cryptpad", "nextcloud", "gitea"]))
        );
        assert_eq!(
            select(&[], &["all"]),
            Ok(strings(&["all"])),
            "--unit all names it"
        );
        for (names, units) in [(&["all", "x"][..], &[][..]), (&["all"][..], &["x"][..])] {
            assert!(
                select(names, units).unwrap_err().contains("`all` alone"),
                "{names:?} {units:?}"
            );
        }
    }
}
