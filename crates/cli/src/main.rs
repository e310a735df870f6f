//! The `kopi-docka` binary: argv -> settings -> core -> rendering -> exit code.

mod cli;
mod commands;
mod exit;
mod logging;
mod printer;
mod progress;
mod signals;

use clap::Parser;

use crate::exit::ExitCode;
use crate::printer::Printer;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(
        cli.global.verbose,
        matches!(
            cli.command,
            cli::Command::Backup(_)
                | cli::Command::Restore(_)
                | cli::Command::Admin(cli::AdminArgs {
                    command: cli::AdminCommand::Service(cli::ServiceCommand::Daemon(_))
                })
        ),
    );
    let printer = Printer::new();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(commands::run(cli, &printer)));
    match result {
        Ok(code) => code,
        Err(error) => {
            printer.error(&error);
            ExitCode::from_error(&error)
        }
    }
    .into()
}
