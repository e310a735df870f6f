//! Settings resolved once, in one place: the config file (found through `--config`,
//! `$KOPI_DOCKA_CONFIG` or the default path), the process environment and a command's flags
//! become the typed values core runs take. Commands never combine them themselves.

use kopi_docka_core::backup::BackupSettings;
use kopi_docka_core::backup::run::RunSettings;
use kopi_docka_core::config::{self, Environment, LoadedConfig};
use kopi_docka_core::repo::Scope;

use crate::cli::{BackupArgs, GlobalArgs, ScopeArg};

/// The process facts that decide default paths (uid, `$HOME`, `$XDG_*`, `$KOPI_DOCKA_*`).
pub fn environment() -> Environment {
    Environment::from_process()
}

/// The configuration named by the global options, against this process's environment.
pub fn config(global: &GlobalArgs) -> anyhow::Result<LoadedConfig> {
    Ok(config::load(global.config.as_deref(), environment())?)
}

/// A backup run: `[backup]` and the hooks from the config, with the command line's overrides.
pub fn backup(loaded: &LoadedConfig, args: &BackupArgs) -> RunSettings {
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
    RunSettings {
        backup,
        units: args.units.clone(),
        wait: args.wait,
    }
}
