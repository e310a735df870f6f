//! `kopi-docka admin config show|validate|edit|import-kopi-docka`

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use kopi_docka_core::config::Config;
use kopi_docka_core::{config_file, migrate};
use serde::Serialize;

use super::UsageError;
use crate::cli::{ConfigCommand, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::Render;

/// Runs an `admin config` subcommand.
pub fn run(
    global: &GlobalArgs,
    command: ConfigCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Show { .. } => show(global, printer),
        ConfigCommand::Validate { .. } => {
            let loaded = crate::settings::config(global)?;
            printer.report(&Validated { path: loaded.path })?;
            Ok(ExitCode::Ok)
        }
        ConfigCommand::Edit { .. } => edit(global, printer),
        ConfigCommand::ImportKopiDocka {
            file, write, force, ..
        } => import_kopi_docka(global, &file, write, force, printer),
    }
}

/// A config that loads (an invalid one is an error, exit code 2).
#[derive(Serialize)]
struct Validated {
    /// The file; `None` when there is none and the defaults apply.
    path: Option<std::path::PathBuf>,
}

impl Render for Validated {
    fn human(&self) -> String {
        match &self.path {
            Some(path) => format!("{}: valid\n", path.display()),
            None => "no config file: the built-in defaults apply\n".to_owned(),
        }
    }
}

/// The effective configuration, secrets masked: TOML for people, JSON with `--json`.
#[derive(Serialize)]
#[serde(transparent)]
struct ConfigShow {
    config: Config,
    /// Where it came from.
    #[serde(skip)]
    source: String,
}

impl Render for ConfigShow {
    fn human(&self) -> String {
        let toml = toml::to_string_pretty(&self.config)
            // Every config that was parsed from TOML serialises back to it.
            .unwrap_or_else(|error| format!("# cannot show it as TOML ({error}); try --json\n"));
        format!(
            "# effective configuration from {} (secrets masked)\n{toml}",
            self.source
        )
    }
}

fn show(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    printer.report(&ConfigShow {
        config: config_file::masked(&loaded.config),
        source: loaded.path.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        ),
    })?;
    Ok(ExitCode::Ok)
}

/// Edits a copy with `$EDITOR`; the copy replaces the config only when it is valid.
fn edit(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let Some(path) = loaded.path.clone() else {
        bail!(UsageError(
            "no config file to edit; create one with `kopi-docka setup`".into()
        ));
    };
    let stamp = kopi_docka_core::durable::stamp(jiff::Timestamp::now());
    let copy = config_file::edit_copy(&path, &stamp)?;
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
    let previous = config_file::adopt_copy(&path, &copy, &stamp)?;
    printer.report(&Edited { path, previous })?;
    Ok(ExitCode::Ok)
}

/// The edited copy replaced the config.
#[derive(Serialize)]
struct Edited {
    /// The config file.
    path: PathBuf,
    /// Where the version before the edit is kept.
    previous: PathBuf,
}

impl Render for Edited {
    fn human(&self) -> String {
        format!(
            "{} updated (valid); the previous version is kept as {}\n",
            self.path.display(),
            self.previous.display()
        )
    }
}

/// Maps a Kopi-Docka (Python) JSON config onto ours and says what does not carry over.
fn import_kopi_docka(
    global: &GlobalArgs,
    file: &Path,
    write: bool,
    force: bool,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let migration = migrate::read(file)?;
    let written = if write {
        let path = crate::settings::environment()
            .config_path(global.config.as_deref())
            .0;
        migrate::write(&migration, &path, force)?;
        for note in &migration.notes {
            printer.notice(&format!("not carried over: {note}"));
        }
        Some(path)
    } else {
        None
    };
    printer.report(&Imported {
        config: migration.text,
        not_carried_over: migration.notes,
        written,
    })?;
    Ok(ExitCode::Ok)
}

/// A Kopi-Docka config mapped onto ours.
#[derive(Serialize)]
struct Imported {
    /// Our config file's text (the notes as comments in it).
    config: String,
    /// One note per setting that has no meaning here.
    not_carried_over: Vec<String>,
    /// Where `--write` installed it; `None` without `--write`.
    written: Option<PathBuf>,
}

impl Render for Imported {
    /// The config text to redirect into a file, or, once written, where it went (the notes
    /// went to stderr then).
    fn human(&self) -> String {
        match &self.written {
            None => self.config.clone(),
            Some(path) => format!("wrote {}\n", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{assert_renders, assert_text};

    #[test]
    fn renders_validate() {
        let file = Validated {
            path: Some("/etc/kopi-docka/config.toml".into()),
        };
        let none = Validated { path: None };
        assert_text!(
            "config_validate",
            format!("{}{}", file.human(), none.human())
        );
        assert_renders!("config_validate_file", &file);
        assert_renders!("config_validate_defaults", &none);
    }

    #[test]
    fn renders_edit() {
        assert_renders!(
            "config_edit",
            &Edited {
                path: "/etc/kopi-docka/config.toml".into(),
                previous: "/etc/kopi-docka/config.toml.20261204T211500Z.bak".into(),
            }
        );
    }

    /// Printed (no --write): the config text; written: where it went.
    #[test]
    fn renders_the_kopi_docka_import() {
        let printed = Imported {
            config: "# mapped from Kopi-Docka\n# not carried over: kopia-params\n\n[repository]\nlocation = \"/backup/repo\"\n".into(),
            not_carried_over: vec!["kopia-params (restic-format repositories take no such parameters)".into()],
            written: None,
        };
        assert_renders!("config_import_printed", &printed);
        let written = Imported {
            written: Some("/etc/kopi-docka/config.toml".into()),
            ..printed
        };
        assert_renders!("config_import_written", &written);
    }

    #[test]
    fn renders_the_masked_config() {
        // Relative paths in it resolve against this, not against the test's working directory.
        let path = Path::new("/etc/kopi-docka/config.toml");
        let config = kopi_docka_core::config::parse(
            include_str!("../../../../examples/config/full.toml"),
            path,
        )
        .unwrap();
        assert_renders!(
            "config_show",
            &ConfigShow {
                config: config_file::masked(&config),
                source: "/etc/kopi-docka/config.toml".into(),
            }
        );
    }

    #[test]
    fn renders_the_defaults() {
        assert_renders!(
            "config_show_defaults",
            &ConfigShow {
                config: Config::default(),
                source: "built-in defaults".into(),
            }
        );
    }
}
