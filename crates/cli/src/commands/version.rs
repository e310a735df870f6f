//! `kopi-docka version`

use serde::Serialize;

use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::Render;

/// The versions of the binary and of the core library.
#[derive(Serialize)]
struct Version {
    kopi_docka: &'static str,
    core: &'static str,
}

/// Prints the versions; needs neither a config nor an engine.
pub fn run(printer: &Printer) -> anyhow::Result<ExitCode> {
    let version = Version {
        kopi_docka: env!("CARGO_PKG_VERSION"),
        core: kopi_docka_core::VERSION,
    };
    printer.report(&version)?;
    Ok(ExitCode::Ok)
}

impl Render for Version {
    fn human(&self) -> String {
        format!("kopi-docka {}\n", self.kopi_docka)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    #[test]
    fn renders() {
        assert_renders!(
            "version",
            &Version {
                kopi_docka: "1.2.3",
                core: "1.2.3",
            }
        );
    }
}
