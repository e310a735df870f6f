//! The configuration file: its typed shape, its defaults, and where it is looked up.
//!
//! Rules this module owns:
//! - Every key is typed and kebab-case; unknown keys are errors with file, line and key, so a
//!   typo never silently turns a feature off.
//! - Defaults live here and only here (`Default` impls and [`defaults`]).
//! - Lookup order: `--config PATH`, then `$KOPI_DOCKA_CONFIG`, then the per-user default
//!   ([`Environment::default_config_path`]). An explicitly named file must exist; the default file
//!   may be absent (built-in defaults apply). A file that exists but cannot be read is an error,
//!   never a reason to fall back to another config.
//! - Loading never creates or modifies a file.
//!
//! Its parts: [`schema`] (the sections and keys), [`values`] (the typed values keys hold:
//! paths, locations, engine endpoints), [`defaults`], [`environment`] (the process facts that
//! decide default paths, and the state directory's layout) and [`load`] (lookup, parsing,
//! validation, errors). Everything is re-exported here, so callers write `config::Config`.

pub mod defaults;
pub mod environment;
pub mod load;
pub mod schema;
pub mod values;

pub use environment::Environment;
pub use load::{ConfigError, ConfigSource, LoadedConfig, load, parse};
pub use schema::*;
pub use values::*;

#[cfg(test)]
mod tests;
