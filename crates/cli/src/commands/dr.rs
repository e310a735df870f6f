//! `kopi-docka disaster-recovery export|import`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::dr::import::ImportRequest;
use kopi_docka_core::dr::{self, ExportOptions, ImportOutcome, ImportReport, Passphrase};
use kopi_docka_core::lock::LockMode;
use kopi_docka_core::repo::{Repo, RepoSettings};

use super::UsageError;
use crate::cli::{DrCommand, DrExportArgs, DrImportArgs, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::human_bytes;

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

async fn export(
    global: &GlobalArgs,
    args: &DrExportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    let repo = Repo::open(settings, LockMode::Shared, Arc::new(CliProgress::new())).await?;
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
            printer.notice(&passphrase_notice(&passphrase));
        }
        return Ok(ExitCode::Ok);
    }
    let report = dr::export::write(&bundle, info, &passphrase, args.file.clone(), generated)?;
    if args.json {
        printer.json(&report)?;
    } else {
        printer.line(&format!(
            "wrote {} ({}, mode 0600): config, repository password, recovery info for {} units \
             of host {}",
            report.file.display(),
            human_bytes(report.bytes),
            report.info.units.len(),
            report.info.host
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

async fn import(
    global: &GlobalArgs,
    args: &DrImportArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let passphrase = match dr::given_passphrase(args.passphrase_file.as_deref())? {
        Some(p) => p,
        None => match printer.ask_secret("Passphrase of the bundle:") {
            Some(text) => Passphrase::new(&text)?,
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
        report(printer, args, &plan.dry_run())?;
        return Ok(ExitCode::Ok);
    }
    let installed = plan.install(env, Arc::new(CliProgress::new())).await?;
    let mut restored = Vec::new();
    if args.restore_all {
        crate::signals::install_once();
        let interrupt = crate::signals::subscribe();
        restored = installed.restore_all(&interrupt).await?;
    }
    let import = installed.report(restored);
    report(printer, args, &import)?;
    Ok(match import.outcome() {
        ImportOutcome::Done => ExitCode::Ok,
        ImportOutcome::Partial => ExitCode::Partial,
        ImportOutcome::Interrupted => ExitCode::Interrupted,
    })
}

fn report(printer: &Printer, args: &DrImportArgs, import: &ImportReport) -> anyhow::Result<()> {
    if args.json {
        printer.json(import)?;
        return Ok(());
    }
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
                config_flag(&config),
                u.unit
            );
        }
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
    printer.out(&out);
    Ok(())
}

/// ` --config PATH` unless `path` is where kopi-docka looks anyway.
fn config_flag(path: &PathBuf) -> String {
    let env = crate::settings::environment();
    if env.config_path(None).0 == *path {
        String::new()
    } else {
        format!(" --config {}", path.display())
    }
}
