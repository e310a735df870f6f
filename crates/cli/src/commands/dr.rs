//! `kopi-docka disaster-recovery export|import`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::dr::export::ExportReport;
use kopi_docka_core::dr::import::{ImportRequest, RestoreAll};
use kopi_docka_core::dr::{self, ExportOptions, ImportOutcome, ImportReport, Passphrase};
use kopi_docka_core::repo::{Repo, RepoSettings};
use serde::Serialize;

use super::UsageError;
use crate::cli::{DrCommand, DrExportArgs, DrImportArgs, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::{Render, human_bytes};

/// Runs a disaster-recovery subcommand.
pub async fn run(
    global: &GlobalArgs,
    command: DrCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        DrCommand::Export(args) => export(global, &args, printer).await,
        DrCommand::Import(args) => Box::pin(import(global, &args, printer)).await,
    }
}

async fn export(
    global: &GlobalArgs,
    args: &DrExportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    let repo = Repo::open(settings, Arc::new(CliProgress::new())).await?;
    let options = ExportOptions {
        include_ssh_key: args.include_ssh_key,
    };
    let (bundle, info) = dr::build(&loaded, &repo, options).await?;
    let (passphrase, generated) = match dr::given_passphrase(args.passphrase_file.as_deref())? {
        Some(p) => (p, false),
        None if std::io::IsTerminal::is_terminal(&std::io::stderr()) => (
            Passphrase::generate().context("generating a passphrase")?,
            true,
        ),
        // A generated passphrase shown without a terminal would end up in a log.
        None => bail!(UsageError(format!(
            "no terminal to show a generated passphrase on: give --passphrase-file FILE or set {}",
            dr::PASSPHRASE_ENV
        ))),
    };
    if args.stream {
        printer.bytes(&dr::export::seal(&bundle, &passphrase)?)?;
        if generated {
            printer.notice(&crate::render::passphrase_notice(&passphrase));
        }
        return Ok(ExitCode::Ok);
    }
    let report = dr::export::write(&bundle, info, &passphrase, args.file.clone(), generated)?;
    printer.report(&report)?;
    if generated {
        printer.notice(&crate::render::passphrase_notice(&passphrase));
    }
    Ok(ExitCode::Ok)
}

impl Render for ExportReport {
    fn human(&self) -> String {
        format!(
            "wrote {} ({}, mode 0600): config, repository password, recovery info for {} units \
             of host {}\n\
             Store it away from this machine (another disk, another place, a password manager).\n",
            self.file.display(),
            human_bytes(self.bytes),
            self.info.units.len(),
            self.info.host
        )
    }
}

async fn import(
    global: &GlobalArgs,
    args: &DrImportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let passphrase = match dr::given_passphrase(args.passphrase_file.as_deref())? {
        Some(p) => p,
        None => match printer.ask_secret("Passphrase of the bundle:") {
            Some(line) => Passphrase::typed(&line)?,
            None => bail!(UsageError(format!(
                "no passphrase: give --passphrase-file FILE or set {} (no terminal to ask on)",
                dr::PASSPHRASE_ENV
            ))),
        },
    };
    let env = crate::settings::environment();
    let plan = dr::import::plan(ImportRequest {
        bundle: &args.bundle,
        passphrase: &passphrase,
        config_path: env.config_path(global.config.as_deref()).0,
        started,
    })?;
    if args.dry_run {
        printer.report(&Import::new(plan.dry_run()))?;
        return Ok(ExitCode::Ok);
    }
    let installed = plan.install(env, Arc::new(CliProgress::new())).await?;
    let mut restored = RestoreAll::default();
    if args.restore_all {
        crate::signals::install_once();
        let interrupt = crate::signals::subscribe();
        restored = installed.restore_all(&interrupt, args.trust_recipe).await?;
    }
    let import = Import::new(installed.report(restored));
    printer.report(&import)?;
    Ok(match import.report.outcome() {
        ImportOutcome::Done => ExitCode::Ok,
        ImportOutcome::Partial => ExitCode::Partial,
        ImportOutcome::Interrupted => ExitCode::Interrupted,
    })
}

/// An import's report, with what its text needs to know.
#[derive(Serialize)]
#[serde(transparent)]
struct Import {
    report: ImportReport,
    /// Where kopi-docka looks for its config without `--config`.
    #[serde(skip)]
    default_config: PathBuf,
}

impl Import {
    fn new(report: ImportReport) -> Self {
        Self {
            report,
            default_config: crate::settings::environment().config_path(None).0,
        }
    }
}

impl Render for Import {
    fn human(&self) -> String {
        render_import(&self.report, &self.default_config)
    }
}

fn render_import(import: &ImportReport, default_config: &Path) -> String {
    let (info, files, restored, dry_run) = (
        &import.info,
        &import.installed,
        &import.restored,
        import.dry_run,
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bundle of host {} made {} by kopi-docka {}; repository {}",
        info.host, info.created_at, info.tool_version, info.repository
    );
    let verb = if dry_run {
        "would install"
    } else {
        "installed"
    };
    for f in files {
        let kept = match (&f.backup, f.replaces, dry_run) {
            (Some(b), _, _) => format!(" (previous file kept as {})", b.display()),
            (None, true, true) => {
                " (replaces an existing file, which would be kept as .bak)".into()
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {verb} {} (mode {:o}){kept}",
            f.path.display(),
            f.mode
        );
    }
    let config = files.first().map(|f| f.path.clone()).unwrap_or_default();
    if restored.is_empty() {
        let _ = writeln!(out, "units to restore (newest restore point of each):");
        for u in &info.units {
            let _ = writeln!(
                out,
                "  {:<30} {:<10} {}  ->  kopi-docka{} restore --unit {} --yes",
                u.unit,
                u.kind,
                u.backup_id,
                config_flag(&config, default_config),
                u.unit
            );
        }
    }
    for path in &import.recovered.rolled_back {
        let _ = writeln!(
            out,
            "  rolled back {} first (an interrupted restore had swapped it)",
            path.display()
        );
    }
    for container in &import.recovered.started {
        let _ = writeln!(
            out,
            "  started {} first (a killed run had left it stopped)",
            container.name
        );
    }
    for path in &import.recovered.snapshots_removed {
        let _ = writeln!(
            out,
            "  removed snapshot {} first (a killed backup had left it)",
            path.display()
        );
    }
    for r in restored {
        let detail = match (&r.outcome, &r.error) {
            (Some(o), _) => format!(
                "{} in {:.1}s{}",
                o.backup_id,
                o.duration_seconds,
                if o.errors.is_empty() {
                    String::new()
                } else {
                    format!(": {}", o.errors.join("; "))
                }
            ),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        let verdict = if r.ok() { "restored" } else { "FAILED" };
        let _ = writeln!(out, "  {verdict} {}: {detail}", r.unit);
    }
    let _ = writeln!(out, "done in {:.1}s", import.duration_seconds);
    out
}

/// ` --config PATH` unless `path` is where kopi-docka looks anyway.
fn config_flag(path: &Path, default_config: &Path) -> String {
    if default_config == path {
        String::new()
    } else {
        format!(" --config {}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use kopi_docka_core::dr::import::UnitRestore;
    use kopi_docka_core::dr::{InstallFile, RecoveryInfo, UnitPoint};
    use kopi_docka_core::restore::RestoreOutcome;
    use kopi_docka_core::stop::{ContainerRef, RecoveryReport};
    use kopi_docka_core::unit::UnitKind;

    use super::*;
    use crate::render::{assert_renders, assert_text, fixtures};

    fn info() -> RecoveryInfo {
        RecoveryInfo {
            created_at: fixtures::time("2026-11-22T03:02:45Z"),
            host: fixtures::HOST.into(),
            tool_version: "1.2.3".into(),
            repository: "sftp:backup@nas.lan:/volume1/kopi-docka".into(),
            rclone_config: None,
            units: vec![
                UnitPoint {
                    unit: "nextcloud".into(),
                    kind: "stack".into(),
                    backup_id: "20261122T030000Z-3c4d".into(),
                    time: fixtures::time("2026-11-22T03:00:00Z"),
                },
                UnitPoint {
                    unit: "portainer".into(),
                    kind: "standalone".into(),
                    backup_id: "20261122T030210Z-5e6f".into(),
                    time: fixtures::time("2026-11-22T03:02:10Z"),
                },
            ],
        }
    }

    #[test]
    fn renders_an_export() {
        assert_renders!(
            "dr_export",
            &ExportReport {
                file: "/root/kopi-docka-dr-pve-01-20261122T030245Z.age".into(),
                bytes: 3_412,
                passphrase_generated: true,
                info: info(),
            }
        );
    }

    /// What an import writes; the file contents play no role in rendering.
    fn installed(backup: bool) -> Vec<InstallFile> {
        let backup =
            backup.then_some("/etc/kopi-docka/config.toml.kopi-docka-20261123T090000Z.bak");
        serde_json::from_value(serde_json::json!([
            {
                "path": "/etc/kopi-docka/config.toml",
                "mode": 0o600,
                "replaces": true,
                "backup": backup,
            },
            {
                "path": "/etc/kopi-docka/repository.password",
                "mode": 0o600,
                "replaces": false,
            },
        ]))
        .unwrap()
    }

    fn import(report: ImportReport, default_config: &str) -> Import {
        Import {
            report,
            default_config: default_config.into(),
        }
    }

    #[test]
    fn renders_an_import_dry_run() {
        assert_renders!(
            "dr_import_dry_run",
            &import(
                ImportReport {
                    dry_run: true,
                    info: info(),
                    installed: installed(false),
                    recovered: RecoveryReport::default(),
                    restored: Vec::new(),
                    duration_seconds: 0.31,
                },
                "/etc/kopi-docka/config.toml",
            )
        );
    }

    #[test]
    fn renders_an_import_with_its_config_elsewhere() {
        // The restore commands it lists name the config, since kopi-docka would not find it.
        assert_text!(
            "dr_import_config_elsewhere",
            import(
                ImportReport {
                    dry_run: false,
                    info: info(),
                    installed: installed(true),
                    recovered: RecoveryReport::default(),
                    restored: Vec::new(),
                    duration_seconds: 1.5,
                },
                "/root/.config/kopi-docka/config.toml",
            )
            .human()
        );
    }

    #[test]
    fn renders_an_import_that_restored_everything() {
        let outcome = RestoreOutcome {
            host: fixtures::HOST.into(),
            unit: "nextcloud".into(),
            kind: UnitKind::Stack,
            backup_id: "20261122T030000Z-3c4d".into(),
            files: Vec::new(),
            networks: Vec::new(),
            data: Vec::new(),
            started: vec!["nextcloud-db-1".into(), "nextcloud-app-1".into()],
            dumps_loaded: Vec::new(),
            left_stopped: Vec::new(),
            rolled_back: false,
            interrupted: false,
            warnings: Vec::new(),
            killed: Vec::new(),
            errors: Vec::new(),
            duration_seconds: 61.0,
        };
        assert_renders!(
            "dr_import_restore_all",
            &import(
                ImportReport {
                    dry_run: false,
                    info: info(),
                    installed: installed(false),
                    recovered: RecoveryReport {
                        started: vec![ContainerRef {
                            id: "4f1c".into(),
                            name: "portainer".into(),
                        }],
                        errors: Vec::new(),
                        rolled_back: vec!["/var/lib/docker/volumes/nextcloud_db/_data".into(),],
                        snapshots_removed: Vec::new(),
                    },
                    restored: vec![
                        UnitRestore {
                            unit: "nextcloud".into(),
                            outcome: Some(outcome),
                            error: None,
                            skipped_incomplete: Vec::new(),
                        },
                        UnitRestore {
                            unit: "portainer".into(),
                            outcome: None,
                            error: Some(
                                "no restore point of portainer from host pve-01 in the repository"
                                    .into()
                            ),
                            skipped_incomplete: Vec::new(),
                        },
                    ],
                    duration_seconds: 75.5,
                },
                "/etc/kopi-docka/config.toml",
            )
        );
    }
}
