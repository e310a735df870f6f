//! One file per command; each turns its arguments into core calls and hands results to the
//! printer.

mod admin_config;
mod backup;
mod doctor;
pub(crate) mod dr;
mod history;
mod notification;
mod repo;
mod restore;
mod service;
mod setup;
mod snapshots;
mod units;
mod version;

use kopi_docka_core::config::{self, Environment, LoadedConfig};

pub use backup::UsageError;
pub use snapshots::human_bytes;

use crate::cli::{AdminCommand, Cli, Command, NotificationCommand};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Runs the parsed command.
pub async fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Units(args) => units::run(&cli.global, &args, printer).await,
        Command::Backup(args) => backup::run(&cli.global, &args, printer).await,
        Command::DryRun(mut args) => {
            args.dry_run = true;
            backup::run(&cli.global, &args, printer).await
        }
        Command::Snapshots(args) => snapshots::run(&cli.global, &args, printer).await,
        Command::Restore(args) => restore::run(&cli.global, &args, printer).await,
        Command::Setup(args) => setup::run(&cli.global, &args, printer).await,
        Command::DisasterRecovery(dr) => dr::run(&cli.global, dr.command, printer).await,
        Command::Doctor(args) => doctor::run(&cli.global, &args, printer).await,
        Command::History(args) => history::run(&cli.global, &args, printer).await,
        Command::Admin(admin) => match admin.command {
            AdminCommand::Repo(command) => repo::run(&cli.global, command, printer).await,
            AdminCommand::RestartStopped => backup::restart_stopped(&cli.global, printer).await,
            AdminCommand::Config(command) => admin_config::run(&cli.global, command, printer),
            AdminCommand::Service(command) => service::run(&cli.global, command, printer).await,
            AdminCommand::Notification(NotificationCommand::Test(args)) => {
                notification::test(&cli.global, &args, printer).await
            }
        },
        Command::Version(args) => version::run(&args, printer),
    }
}

/// Reads a file that holds secrets; refuses it when group or others may read it.
pub(crate) fn read_private(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context as _;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        anyhow::bail!(UsageError(format!(
            "{} holds secrets but others may read it; run `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Loads the configuration named by the global options.
pub fn load_config(global: &crate::cli::GlobalArgs) -> anyhow::Result<LoadedConfig> {
    Ok(config::load(
        global.config.as_deref(),
        Environment::from_process(),
    )?)
}
