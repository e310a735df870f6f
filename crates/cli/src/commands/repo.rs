//! `kopi-docka admin repo ...`

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::bootstrap;
use kopi_docka_core::lock::LockMode;
use kopi_docka_core::repo::{
    PASSWORD_ENV, Password, PasswordSource, Repo, RepoSettings, SnapshotFilter, write_password_file,
};
use serde::Serialize;

use crate::cli::{ChangePasswordArgs, CheckArgs, GlobalArgs, JsonArgs, PruneArgs, RepoCommand};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::human_bytes;

/// Runs one `admin repo` command.
pub async fn run(
    global: &GlobalArgs,
    command: RepoCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    match command {
        RepoCommand::Init(args) => init(settings, &args, printer).await,
        RepoCommand::Status(args) => status(settings, &args, printer).await,
        RepoCommand::Check(args) => check(settings, &args, printer).await,
        RepoCommand::Prune(args) => prune(settings, &args, printer).await,
        RepoCommand::ChangePassword(args) => change_password(settings, &args, printer).await,
        RepoCommand::Stats(args) => stats(settings, &args, printer).await,
    }
}

async fn open(settings: RepoSettings, mode: LockMode) -> anyhow::Result<Repo> {
    Ok(Repo::open(settings, mode, Arc::new(CliProgress::new())).await?)
}

#[derive(Serialize)]
struct InitReport {
    location: String,
    password_file_created: Option<std::path::PathBuf>,
}

async fn init(
    settings: RepoSettings,
    args: &JsonArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mut created = None;
    if let PasswordSource::File(path) = &settings.password
        && !path.exists()
    {
        let password = bootstrap::generate_password()?;
        if let Some(dir) = path.parent() {
            bootstrap::create_dir(dir)?;
        }
        write_password_file(path, &password)
            .with_context(|| format!("writing the new password to {}", path.display()))?;
        created = Some(path.clone());
    }
    let location = settings.location.to_string();
    let result = Repo::init(settings, Arc::new(CliProgress::new())).await;
    if let (Err(_), Some(path)) = (&result, &created) {
        // The password belongs to a repository that was never created.
        if let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(%error, path = %path.display(), "cannot remove the unused password file");
        }
    }
    drop(result?);
    let report = InitReport {
        location,
        password_file_created: created,
    };
    if args.json {
        printer.json(&report)?;
    } else {
        let mut text = format!("created repository at {}\n", report.location);
        if let Some(path) = &report.password_file_created {
            let _ = writeln!(
                text,
                "generated a random password in {}\n\
                 KEEP A COPY OF IT OUTSIDE THIS MACHINE: without it the backups cannot be read.",
                path.display()
            );
        }
        printer.out(&text);
    }
    Ok(ExitCode::Ok)
}

#[derive(Serialize)]
struct StatusReport {
    location: String,
    host: String,
    snapshots: usize,
    units: usize,
    latest: Option<jiff::Timestamp>,
}

async fn status(
    settings: RepoSettings,
    args: &JsonArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let repo = open(settings, LockMode::Shared).await?;
    let snapshots = repo.snapshots(SnapshotFilter::default()).await?;
    let units: std::collections::BTreeSet<_> = snapshots
        .iter()
        .filter_map(|s| s.meta.unit.as_ref().map(|u| (u.kind, u.name.clone())))
        .collect();
    let report = StatusReport {
        location: repo.settings().location.to_string(),
        host: repo.settings().hostname.clone(),
        snapshots: snapshots.len(),
        units: units.len(),
        latest: snapshots.last().map(|s| s.time),
    };
    if args.json {
        printer.json(&report)?;
    } else {
        let latest = report.latest.map_or_else(
            || "never".to_owned(),
            |t| {
                t.to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            },
        );
        printer.out(&format!(
            "repository:  {} (reachable, password ok)\nthis host:   {}\nsnapshots:   {} of {} units\nlatest:      {latest}\n",
            report.location, report.host, report.snapshots, report.units
        ));
    }
    Ok(ExitCode::Ok)
}

async fn check(
    settings: RepoSettings,
    args: &CheckArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let repo = open(settings, LockMode::Shared).await?;
    let report = repo.check(args.read_data_subset).await?;
    if args.json {
        printer.json(&report)?;
    } else {
        let mut text = String::new();
        for finding in &report.findings {
            let _ = writeln!(text, "{}: {}", finding.level, finding.message);
        }
        let read = if report.read_data_percent > 0.0 {
            format!("structure and {}% of the data", report.read_data_percent)
        } else {
            "structure only (add --read-data-subset PERCENT to verify data)".to_owned()
        };
        let verdict = if report.ok {
            "no errors found"
        } else {
            "ERRORS FOUND"
        };
        let _ = writeln!(text, "checked {read}: {verdict}");
        printer.out(&text);
    }
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

#[derive(Serialize)]
struct PruneOutput {
    forget: kopi_docka_core::repo::ForgetReport,
    prune: kopi_docka_core::repo::PruneReport,
}

async fn prune(
    settings: RepoSettings,
    args: &PruneArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mode = if args.dry_run {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let repo = open(settings, mode).await?;
    let forget = repo.forget(jiff::Timestamp::now(), args.dry_run).await?;
    let prune = repo.prune(args.dry_run).await?;
    if args.json {
        printer.json(&PruneOutput { forget, prune })?;
    } else {
        let kept = forget.decisions.iter().filter(|d| d.keep).count();
        let dropped = forget.decisions.len() - kept;
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        printer.out(&format!(
            "retention: {kept} snapshots kept, {verb} {dropped}\n\
             prune: {verb} {} pack files ({}), repacked {}\n",
            prune.packs_removed,
            human_bytes(prune.bytes_freed),
            prune.packs_repacked
        ));
    }
    Ok(ExitCode::Ok)
}

async fn change_password(
    settings: RepoSettings,
    args: &ChangePasswordArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let stored_in = match &settings.password {
        PasswordSource::File(path) => Some(path.clone()),
        PasswordSource::Command(_) | PasswordSource::Env => None,
    };
    let new = match &args.new_password_file {
        Some(file) => PasswordSource::File(file.clone()).read()?,
        None if stored_in.is_some() => Password::generate().context("generating a password")?,
        None => bail!(
            "the password comes from {}, where kopi-docka cannot store a new one: give \
             --new-password-file FILE, then update your secret store",
            settings.password
        ),
    };
    let source = settings.password.to_string();
    let repo = open(settings, LockMode::Exclusive).await?;
    repo.change_password(new, stored_in.clone()).await?;
    match stored_in {
        Some(path) => printer.line(&format!(
            "password changed and written to {}; update every copy you keep elsewhere (DR bundles too)",
            path.display()
        )),
        None => printer.line(&format!(
            "password changed; update {source} to the new password now ({PASSWORD_ENV} or your secret store)"
        )),
    }
    Ok(ExitCode::Ok)
}

async fn stats(
    settings: RepoSettings,
    args: &JsonArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let repo = open(settings, LockMode::Shared).await?;
    let stats = repo.stats().await?;
    if args.json {
        printer.json(&stats)?;
    } else {
        printer.out(&format!(
            "repository:   {} (format v{})\nsnapshots:    {} ({} by kopi-docka)\npack files:   {} ({})\nblobs:        {} ({} before compression)\n",
            stats.location,
            stats.version,
            stats.snapshots,
            stats.kopi_docka_snapshots,
            stats.packs,
            human_bytes(stats.pack_bytes),
            stats.blobs,
            human_bytes(stats.uncompressed_bytes),
        ));
    }
    Ok(ExitCode::Ok)
}
