//! `kopi-docka version`

use serde::Serialize;

use crate::cli::VersionArgs;
use crate::exit::ExitCode;
use crate::printer::Printer;

#[derive(Serialize)]
struct Version {
    kopi_docka: &'static str,
    core: &'static str,
}

/// Prints the versions; needs neither a config nor an engine.
pub fn run(args: &VersionArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let version = Version {
        kopi_docka: env!("CARGO_PKG_VERSION"),
        core: kopi_docka_core::VERSION,
    };
    if args.json {
        printer.json(&version)?;
    } else {
        printer.line(&format!("kopi-docka {}", version.kopi_docka));
    }
    Ok(ExitCode::Ok)
}
