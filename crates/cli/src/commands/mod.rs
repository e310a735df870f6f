//! One file per command; each turns its arguments into core calls and hands results to the
//! printer.

mod units;
mod version;

use crate::cli::{Cli, Command};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Runs the parsed command.
pub async fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Units(args) => units::run(&cli.global, &args, printer).await,
        Command::Version(args) => version::run(&args, printer),
    }
}
