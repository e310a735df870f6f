//! `kopi-docka admin repo ...`

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kopi_docka_core::bootstrap;
use kopi_docka_core::repo::{
    CheckReport, ForgetReport, PASSWORD_ENV, Password, PasswordSource, PruneReport, Repo,
    RepoSettings, RepoStats, SnapshotFilter, WriteRepo,
};
use serde::Serialize;

use crate::cli::{ChangePasswordArgs, CheckArgs, GlobalArgs, PruneArgs, RepoCommand};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::{Render, human_bytes, zoned};

/// Runs one `admin repo` command.
pub async fn run(
    global: &GlobalArgs,
    command: RepoCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    match command {
        RepoCommand::Init(_) => init(settings, printer).await,
        RepoCommand::Status(_) => status(settings, printer).await,
        RepoCommand::Check(args) => check(settings, &args, printer).await,
        RepoCommand::Prune(args) => prune(settings, &args, printer).await,
        RepoCommand::ChangePassword(args) => change_password(settings, &args, printer).await,
        RepoCommand::Stats(_) => stats(settings, printer).await,
    }
}

async fn open(settings: RepoSettings) -> anyhow::Result<Repo> {
    Ok(Repo::open(settings, Arc::new(CliProgress::new())).await?)
}

async fn open_write(settings: RepoSettings) -> anyhow::Result<WriteRepo> {
    Ok(WriteRepo::open(settings, Arc::new(CliProgress::new())).await?)
}

/// A repository created.
#[derive(Serialize)]
struct InitReport {
    location: String,
    password_file_created: Option<std::path::PathBuf>,
}

impl Render for InitReport {
    fn human(&self) -> String {
        let mut text = format!("created repository at {}\n", self.location);
        if let Some(path) = &self.password_file_created {
            let _ = writeln!(
                text,
                "generated a random password in {}\n\
                 KEEP A COPY OF IT OUTSIDE THIS MACHINE: without it the backups cannot be read.",
                path.display()
            );
        }
        text
    }
}

async fn init(settings: RepoSettings, printer: &Printer) -> anyhow::Result<ExitCode> {
    let location = settings.location.to_string();
    let created = bootstrap::init_repository(settings, Arc::new(CliProgress::new())).await?;
    let report = InitReport {
        location,
        password_file_created: created,
    };
    printer.report(&report)?;
    Ok(ExitCode::Ok)
}

/// Whether the repository is reachable, and what it holds.
#[derive(Serialize)]
struct StatusReport {
    location: String,
    host: String,
    snapshots: usize,
    units: usize,
    latest: Option<jiff::Timestamp>,
}

impl Render for StatusReport {
    fn human(&self) -> String {
        let latest = self.latest.map_or_else(
            || "never".to_owned(),
            |t| zoned(t).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
        );
        format!(
            "repository:  {} (reachable, password ok)\nthis host:   {}\nsnapshots:   {} of {} units\nlatest:      {latest}\n",
            self.location, self.host, self.snapshots, self.units
        )
    }
}

async fn status(settings: RepoSettings, printer: &Printer) -> anyhow::Result<ExitCode> {
    let repo = open(settings).await?;
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
    printer.report(&report)?;
    Ok(ExitCode::Ok)
}

async fn check(
    settings: RepoSettings,
    args: &CheckArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let repo = open(settings).await?;
    let report = repo.check(args.read_data_subset).await?;
    printer.report(&report)?;
    Ok(if report.ok {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

impl Render for CheckReport {
    fn human(&self) -> String {
        let mut text = String::new();
        for finding in &self.findings {
            let _ = writeln!(text, "{}: {}", finding.level, finding.message);
        }
        let read = if self.read_data_percent > 0.0 {
            format!("structure and {}% of the data", self.read_data_percent)
        } else {
            "structure only (add --read-data-subset PERCENT to verify data)".to_owned()
        };
        let verdict = if self.ok {
            "no errors found"
        } else {
            "ERRORS FOUND"
        };
        let _ = writeln!(text, "checked {read}: {verdict}");
        text
    }
}

/// Retention applied, then unreferenced data removed (or what would be, with `--dry-run`).
#[derive(Serialize)]
struct PruneOutput {
    forget: ForgetReport,
    prune: PruneReport,
}

impl Render for PruneOutput {
    fn human(&self) -> String {
        let kept = self.forget.decisions.iter().filter(|d| d.keep).count();
        let dropped = self.forget.decisions.len() - kept;
        let verb = if self.prune.dry_run {
            "would remove"
        } else {
            "removed"
        };
        format!(
            "retention: {kept} snapshots kept, {verb} {dropped}\n\
             prune: {verb} {} pack files ({}), repacked {}\n",
            self.prune.packs_removed,
            human_bytes(self.prune.bytes_freed),
            self.prune.packs_repacked
        )
    }
}

async fn prune(
    settings: RepoSettings,
    args: &PruneArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now();
    let (forget, prune) = if args.dry_run {
        let repo = open(settings).await?;
        (repo.retention_plan(now).await?, repo.prune_plan().await?)
    } else {
        let repo = open_write(settings).await?;
        (repo.forget(now).await?, repo.prune().await?)
    };
    printer.report(&PruneOutput { forget, prune })?;
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
    let repo = open_write(settings).await?;
    repo.change_password(new, stored_in.clone()).await?;
    printer.report(&PasswordChanged { stored_in, source })?;
    Ok(ExitCode::Ok)
}

/// A new repository password is in place.
#[derive(Serialize)]
struct PasswordChanged {
    /// The password file kopi-docka wrote it to, when it reads the password from a file.
    stored_in: Option<std::path::PathBuf>,
    /// Where the password comes from (what the user must update otherwise).
    source: String,
}

impl Render for PasswordChanged {
    fn human(&self) -> String {
        match &self.stored_in {
            Some(path) => format!(
                "password changed and written to {}; update every copy you keep elsewhere (DR bundles too)\n",
                path.display()
            ),
            None => format!(
                "password changed; update {} to the new password now ({PASSWORD_ENV} or your secret store)\n",
                self.source
            ),
        }
    }
}

async fn stats(settings: RepoSettings, printer: &Printer) -> anyhow::Result<ExitCode> {
    let repo = open(settings).await?;
    printer.report(&repo.stats().await?)?;
    Ok(ExitCode::Ok)
}

impl Render for RepoStats {
    fn human(&self) -> String {
        format!(
            "repository:   {} (format v{})\nsnapshots:    {} ({} by kopi-docka)\npack files:   {} ({})\nblobs:        {} ({} before compression)\n",
            self.location,
            self.version,
            self.snapshots,
            self.kopi_docka_snapshots,
            self.packs,
            human_bytes(self.pack_bytes),
            self.blobs,
            human_bytes(self.uncompressed_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use kopi_docka_core::repo::{CheckFinding, ForgetDecision};

    use super::*;
    use crate::render::{assert_renders, assert_text, fixtures};

    #[test]
    fn renders_change_password() {
        let file = PasswordChanged {
            stored_in: Some("/etc/kopi-docka/repository.password".into()),
            source: "password-file /etc/kopi-docka/repository.password".into(),
        };
        let command = PasswordChanged {
            stored_in: None,
            source: "password-command".into(),
        };
        assert_text!(
            "change_password",
            format!("{}{}", file.human(), command.human())
        );
        assert_renders!("change_password_file", &file);
        assert_renders!("change_password_command", &command);
    }

    #[test]
    fn renders_init() {
        assert_renders!(
            "repo_init",
            &InitReport {
                location: "/srv/backup/kopi-docka".into(),
                password_file_created: Some("/etc/kopi-docka/repository.password".into()),
            }
        );
    }

    #[test]
    fn renders_status() {
        assert_renders!(
            "repo_status",
            &StatusReport {
                location: "sftp:backup@nas.lan:/volume1/kopi-docka".into(),
                host: fixtures::HOST.into(),
                snapshots: 10,
                units: 2,
                latest: Some(fixtures::time("2026-11-22T03:02:40Z")),
            }
        );
    }

    #[test]
    fn renders_status_of_an_empty_repository() {
        assert_renders!(
            "repo_status_empty",
            &StatusReport {
                location: "/srv/backup/kopi-docka".into(),
                host: fixtures::HOST.into(),
                snapshots: 0,
                units: 0,
                latest: None,
            }
        );
    }

    #[test]
    fn renders_check() {
        assert_renders!(
            "repo_check",
            &CheckReport {
                findings: Vec::new(),
                read_data_percent: 0.0,
                ok: true,
            }
        );
        assert_renders!(
            "repo_check_errors",
            &CheckReport {
                findings: vec![
                    CheckFinding {
                        level: "warning",
                        message: "pack 3f2a1b09 is not referenced by any index".into(),
                    },
                    CheckFinding {
                        level: "error",
                        message: "blob 9c1e77d0 in pack 41aa0c3e: hash mismatch".into(),
                    },
                ],
                read_data_percent: 10.0,
                ok: false,
            }
        );
    }

    #[test]
    fn renders_prune() {
        let decisions = fixtures::snapshots()
            .into_iter()
            .take(3)
            .enumerate()
            .map(|(i, snapshot)| ForgetDecision {
                snapshot,
                keep: i < 2,
                reasons: if i < 2 {
                    vec!["daily snapshot".into(), "last snapshot".into()]
                } else {
                    Vec::new()
                },
            })
            .collect();
        assert_renders!(
            "repo_prune_dry_run",
            &PruneOutput {
                forget: ForgetReport {
                    decisions,
                    removed: 0,
                },
                prune: PruneReport {
                    packs_removed: 14,
                    packs_repacked: 2,
                    bytes_freed: 231_735_296,
                    dry_run: true,
                },
            }
        );
    }

    #[test]
    fn renders_stats() {
        assert_renders!(
            "repo_stats",
            &RepoStats {
                location: "/srv/backup/kopi-docka".into(),
                version: 2,
                snapshots: 12,
                kopi_docka_snapshots: 10,
                packs: 96,
                pack_bytes: 1_189_085_184,
                uncompressed_bytes: 1_512_046_592,
                blobs: 25_118,
            }
        );
    }
}
