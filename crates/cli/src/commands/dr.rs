//! `kopi-docka disaster-recovery export|import`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::config::{self, Environment, LoadedConfig};
use kopi_docka_core::docker::Engine;
use kopi_docka_core::dr::{self, ExportOptions, Passphrase, RecoveryInfo};
use kopi_docka_core::lock::LockMode;
use kopi_docka_core::lock::journal::Journal;
use kopi_docka_core::repo::{Repo, RepoSettings, SnapshotFilter};
use kopi_docka_core::restore::{self, RestoreOutcome};
use serde::Serialize;

use super::UsageError;
use super::snapshots::human_bytes;
use crate::cli::{DrCommand, DrExportArgs, DrImportArgs, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;

/// Runs a disaster-recovery subcommand.
pub async fn run(
    global: &GlobalArgs,
    command: DrCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        DrCommand::Export(args) => export(global, &args, printer).await,
        DrCommand::Import(args) => import(global, &args, printer).await,
    }
}

#[derive(Serialize)]
struct ExportReport<'a> {
    file: &'a Path,
    bytes: u64,
    passphrase_generated: bool,
    info: &'a RecoveryInfo,
}

async fn export(
    global: &GlobalArgs,
    args: &DrExportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    let repo = Repo::open(settings, LockMode::Shared, Arc::new(CliProgress::new())).await?;
    let options = ExportOptions {
        include_ssh_key: args.include_ssh_key,
    };
    let (bundle, info) = dr::build(&loaded, &repo, options).await?;
    let (passphrase, generated) = match given_passphrase(args.passphrase_file.as_deref())? {
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
    // The archive exists only in memory; it goes straight into the encryptor.
    let plaintext = bundle.to_tar()?;
    if args.stream {
        let mut sealed = Vec::new();
        dr::bundle::encrypt(&plaintext, &passphrase, &mut sealed)?;
        printer.bytes(&sealed)?;
        if generated {
            printer.notice(&passphrase_notice(&passphrase));
        }
        return Ok(ExitCode::Ok);
    }
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| dr::bundle::default_name(Path::new("."), &info.host, info.created_at));
    dr::bundle::write_new(&file, &plaintext, &passphrase)?;
    let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    if args.json {
        printer.json(&ExportReport {
            file: &file,
            bytes,
            passphrase_generated: generated,
            info: &info,
        })?;
    } else {
        printer.line(&format!(
            "wrote {} ({}, mode 0600): config, repository password, recovery info for {} units \
             of host {}",
            file.display(),
            human_bytes(bytes),
            info.units.len(),
            info.host
        ));
        printer.line(
            "Store it away from this machine (another disk, another place, a password manager).",
        );
    }
    if generated {
        printer.notice(&passphrase_notice(&passphrase));
    }
    Ok(ExitCode::Ok)
}

fn passphrase_notice(p: &Passphrase) -> String {
    format!(
        "\nPassphrase of the bundle (shown only now; write it down and keep it apart from the \
         bundle: without it the bundle cannot be opened):\n\n    {}\n",
        p.reveal()
    )
}

/// From `--passphrase-file` (private to its owner), else `$KOPI_DOCKA_DR_PASSPHRASE`.
fn given_passphrase(file: Option<&Path>) -> anyhow::Result<Option<Passphrase>> {
    if let Some(path) = file {
        let text = super::read_private(path)?;
        return Ok(Some(Passphrase::new(&text)?));
    }
    match std::env::var(dr::PASSPHRASE_ENV) {
        Ok(text) => Ok(Some(Passphrase::new(&text)?)),
        Err(_) => Ok(None),
    }
}

#[derive(Serialize)]
struct ImportReport<'a> {
    dry_run: bool,
    info: &'a RecoveryInfo,
    installed: &'a [dr::InstallFile],
    restored: Vec<UnitRestore>,
    duration_seconds: f64,
}

/// One unit of `--restore-all`: its outcome, or why it could not even start.
#[derive(Serialize)]
struct UnitRestore {
    unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<RestoreOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl UnitRestore {
    fn ok(&self) -> bool {
        self.outcome.as_ref().is_some_and(RestoreOutcome::ok)
    }
}

async fn import(
    global: &GlobalArgs,
    args: &DrImportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let passphrase = match given_passphrase(args.passphrase_file.as_deref())? {
        Some(p) => p,
        None => match printer.ask_secret("Passphrase of the bundle:") {
            Some(text) => Passphrase::new(&text)?,
            None => bail!(UsageError(format!(
                "no passphrase: give --passphrase-file FILE or set {} (no terminal to ask on)",
                dr::PASSPHRASE_ENV
            ))),
        },
    };
    let sealed = std::fs::File::open(&args.bundle)
        .with_context(|| format!("opening {}", args.bundle.display()))?;
    let (bundle, info) = dr::open(sealed, &passphrase)?;
    let env = Environment::from_process();
    let config_path = env.config_path(global.config.as_deref()).0;
    let mut files = dr::plan_install(&bundle, &info, &config_path)?;
    if args.dry_run {
        return report(printer, args, &info, &files, Vec::new(), started, true);
    }
    let stamp = kopi_docka_core::durable::stamp(jiff::Timestamp::now());
    dr::install(&mut files, &stamp)?;
    let loaded = config::load(Some(&config_path), env)?;
    let settings = RepoSettings::from_config(&loaded)?;
    let repo = Repo::open(settings, LockMode::Shared, Arc::new(CliProgress::new())).await?;
    let mut restored = Vec::new();
    if args.restore_all {
        restored = restore_all(&loaded, &repo, &info).await?;
    }
    let failed = restored.iter().any(|o| !o.ok());
    let interrupted = restored
        .iter()
        .any(|o| o.outcome.as_ref().is_some_and(|o| o.interrupted));
    report(printer, args, &info, &files, restored, started, false)?;
    Ok(if interrupted {
        ExitCode::Interrupted
    } else if failed {
        ExitCode::Partial
    } else {
        ExitCode::Ok
    })
}

async fn restore_all(
    loaded: &LoadedConfig,
    repo: &Repo,
    info: &RecoveryInfo,
) -> anyhow::Result<Vec<UnitRestore>> {
    crate::signals::install_once();
    let interrupt = crate::signals::subscribe();
    let _run_lock =
        kopi_docka_core::lock::run_lock(&loaded.env.state_dir(), false, &interrupt).await?;
    let engine = Engine::connect(loaded.docker_host()?).await?;
    let journal = Journal::in_dir(&loaded.env.state_dir());
    let snapshots = repo
        .snapshots(SnapshotFilter {
            host: Some(info.host.clone()),
            ..SnapshotFilter::default()
        })
        .await?;
    let points = restore::newest_per_unit(restore::group(&snapshots));
    let mut outcomes = Vec::new();
    for point in points {
        if *interrupt.borrow() {
            break;
        }
        tracing::info!(unit = %point.unit, backup_id = %point.backup_id, "restoring");
        let unit = point.unit.clone();
        // One unit that cannot be restored (a missing secret, a missing image) must not keep
        // the others down.
        outcomes.push(
            match super::restore::restore_latest(loaded, &engine, repo, &journal, point, &interrupt)
                .await
            {
                Ok(outcome) => UnitRestore {
                    unit,
                    outcome: Some(outcome),
                    error: None,
                },
                Err(error) => UnitRestore {
                    unit,
                    outcome: None,
                    error: Some(format!("{error:#}")),
                },
            },
        );
    }
    Ok(outcomes)
}

fn report(
    printer: &Printer,
    args: &DrImportArgs,
    info: &RecoveryInfo,
    files: &[dr::InstallFile],
    restored: Vec<UnitRestore>,
    started: std::time::Instant,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let duration_seconds = started.elapsed().as_secs_f64();
    if args.json {
        printer.json(&ImportReport {
            dry_run,
            info,
            installed: files,
            restored,
            duration_seconds,
        })?;
        return Ok(ExitCode::Ok);
    }
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
                config_flag(&config),
                u.unit
            );
        }
    }
    for r in &restored {
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
    let _ = writeln!(out, "done in {duration_seconds:.1}s");
    printer.out(&out);
    Ok(ExitCode::Ok)
}

/// ` --config PATH` unless `path` is where kopi-docka looks anyway.
fn config_flag(path: &PathBuf) -> String {
    let env = Environment::from_process();
    if env.config_path(None).0 == *path {
        String::new()
    } else {
        format!(" --config {}", path.display())
    }
}
