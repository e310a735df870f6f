//! The `kopi-docka` binary: argv -> settings -> core -> rendering -> exit code.

mod cli;
mod commands;
mod exit;
mod logging;
mod printer;
mod progress;
mod render;
mod settings;
mod signals;

use clap::Parser;

use crate::exit::ExitCode;
use crate::printer::{Format, Printer};

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    logging::init(
        logging::Verbosity {
            verbose: cli.global.verbose,
            quiet: cli.global.quiet,
        },
        matches!(
            cli.command,
            cli::Command::Backup(_)
                | cli::Command::Restore(_)
                | cli::Command::Admin(cli::AdminArgs {
                    command: cli::AdminCommand::Service(cli::ServiceCommand::Daemon(_))
                })
        ),
    );
    progress::set_quiet(cli.global.quiet);
    let printer = Printer::new(
        Format::from_json_flag(cli.json()),
        logging::stderr_is_journal(),
    );
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(commands::run(cli, &printer)));
    // opendal never closes its ssh control masters: end them, whatever the outcome.
    kopi_docka_core::repo::sftp::close_connections();
    match result {
        Ok(code) => code,
        Err(error) => {
            let code = ExitCode::from_error(&error);
            printer.error(&error, code);
            code
        }
    }
    .into()
}

/// At most two glibc malloc arenas (glibc's default is eight per core).
///
/// A restore runs 20 reader threads that allocate and free blobs of about a MiB. After the
/// first large free glibc serves such sizes from per-thread arenas instead of mmap, and the
/// freed blobs stay there: a 1.2 GiB restore peaked at 277 MiB with the default and at
/// 152 MiB with two arenas, and was no slower (docs/BENCHMARKS.md).
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc parameter; it is called first thing in main, before
    // any other thread exists. Its result (0 when refused) changes nothing we rely on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Other C libraries have their own allocators and no such knob.
#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}
