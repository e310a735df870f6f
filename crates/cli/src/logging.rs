//! Diagnostics on stderr through `tracing`. `KOPI_DOCKA_LOG` (an env-filter directive) wins
//! over `-v`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber: warnings by default (info for long unattended commands
/// such as `backup` when stderr is not a terminal, so the journal shows what happened), `-v`
/// info, `-vv` debug, `-vvv` trace.
pub fn init(verbose: u8, unattended: bool) {
    let quiet = if unattended && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // Our own progress; rustic_core's info lines (cache paths, parents) are noise there.
        "warn,kopi_docka=info,kopi_docka_core=info"
    } else {
        "warn"
    };
    let default = match verbose {
        0 => quiet,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_env("KOPI_DOCKA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
