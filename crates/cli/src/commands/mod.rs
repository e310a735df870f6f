//! One file per command; each turns its arguments into core calls and hands results to the
//! printer.

mod admin_config;
mod backup;
mod completions;
mod doctor;
pub(crate) mod dr;
mod history;
mod man;
mod notification;
mod repo;
mod restore;
mod rollback_copies;
mod service;
mod setup;
mod snapshots;
mod units;
mod version;

pub use setup::Kind as SetupKind;

use crate::cli::{AdminCommand, Cli, Command, NotificationCommand};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Runs the parsed command.
pub async fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Units(_) => units::run(&cli.global, printer).await,
        Command::Backup(args) => backup::run(&cli.global, &args, printer).await,
        Command::DryRun(mut args) => {
            args.dry_run = true;
            backup::run(&cli.global, &args, printer).await
        }
        Command::Snapshots(args) => snapshots::run(&cli.global, &args, printer).await,
        Command::Restore(args) => restore::run(&cli.global, &args, printer).await,
        Command::Setup(args) => setup::run(&cli.global, &args, printer).await,
        Command::DisasterRecovery(dr) => Box::pin(dr::run(&cli.global, dr.command, printer)).await,
        Command::Doctor(_) => doctor::run(&cli.global, printer).await,
        Command::History(args) => history::run(&cli.global, &args, printer).await,
        Command::Admin(admin) => match admin.command {
            AdminCommand::Repo(command) => repo::run(&cli.global, command, printer).await,
            AdminCommand::RestartStopped(_) => backup::restart_stopped(&cli.global, printer).await,
            AdminCommand::Config(command) => admin_config::run(&cli.global, command, printer),
            AdminCommand::Service(command) => service::run(&cli.global, command, printer).await,
            AdminCommand::Notification(NotificationCommand::Test(_)) => {
                notification::test(&cli.global, printer).await
            }
            AdminCommand::RollbackCopies(command) => {
                rollback_copies::run(&cli.global, command, printer)
            }
            AdminCommand::Completions(args) => Ok(completions::run(&args, printer)),
            AdminCommand::Man(args) => man::run(&args, printer),
        },
        Command::Version(_) => version::run(printer),
    }
}

/// A mistake on the command line (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Reads a file that holds secrets; refuses it when group or others may read it.
pub(crate) fn read_private(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(kopi_docka_core::durable::read_private(path)?)
}
