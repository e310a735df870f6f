//! Output as a value: [`Render`], the trait every command's report implements, and the
//! formatting shared by several human renderings (sizes, local times, coverage lines). One
//! place, so two commands never show the same fact two ways.
//!
//! Each command file implements [`Render`] for its report beside the command, with unit tests
//! that snapshot both renderings of fixture reports ([`assert_renders`]); no Docker needed.

use kopi_docka_core::unit::{CoverageEntry, CoverageStatus};
use serde::Serialize;

/// A command's result: `Serialize` for `--json`, [`Render::human`] for people. The
/// [`Printer`](crate::printer::Printer) picks one; commands never look at `--json`.
pub trait Render: Serialize {
    /// The text a person reads, newline-terminated lines.
    fn human(&self) -> String;
}

/// The zone times are shown in: the system's; UTC in unit tests, so snapshots do not depend
/// on the machine that runs them.
pub fn display_zone() -> jiff::tz::TimeZone {
    if cfg!(test) {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    }
}

/// A UTC time in the display zone ([`display_zone`]).
pub fn zoned(t: jiff::Timestamp) -> jiff::Zoned {
    t.to_zoned(display_zone())
}

/// A UTC time in the local time zone, for display.
pub fn local_time(t: jiff::Timestamp) -> String {
    zoned(t).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// `1536` -> `1.5 KiB`: IEC units, one decimal, the unit that fits (bytesize, as core's
/// messages use).
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// The notice that shows a new disaster-recovery bundle's passphrase, once.
pub fn passphrase_notice(p: &kopi_docka_core::dr::Passphrase) -> String {
    format!(
        "\nPassphrase of the bundle (shown only now; write it down and keep it apart from the \
         bundle: without it the bundle cannot be opened):\n\n    {}\n",
        p.reveal()
    )
}

/// The line of one coverage entry that is not backed up.
pub fn gap_line(entry: &CoverageEntry) -> String {
    let status = match entry.verdict.status {
        CoverageStatus::NotProtected => "NOT PROTECTED",
        CoverageStatus::Skipped | CoverageStatus::BackedUp => "skipped",
    };
    format!(
        "{status:<13} {} {}: {}",
        entry.kind,
        entry.identifier,
        entry.detail.as_deref().unwrap_or_default()
    )
}

/// Snapshots both renderings of a report, exactly as the printer writes them:
/// `<name>` (text) and `<name>.json`, in `crates/cli/src/snapshots/`. Use it in a command's
/// unit tests.
#[cfg(test)]
macro_rules! assert_renders {
    ($name:expr, $report:expr) => {{
        let report = $report;
        insta::with_settings!({ snapshot_path => crate::render::SNAPSHOTS }, {
            insta::assert_snapshot!(
                $name,
                crate::printer::Format::Text.render(report).unwrap()
            );
            insta::assert_snapshot!(
                format!("{}.json", $name),
                crate::printer::Format::Json.render(report).unwrap()
            );
        });
    }};
}

/// Where the renderers' snapshots are kept (one directory for every command).
#[cfg(test)]
pub const SNAPSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/snapshots");
#[cfg(test)]
pub(crate) use assert_renders;

/// Snapshots one text (a rendering with no JSON of its own) beside [`assert_renders`]'s.
#[cfg(test)]
macro_rules! assert_text {
    ($name:expr, $text:expr) => {{
        insta::with_settings!({ snapshot_path => crate::render::SNAPSHOTS }, {
            insta::assert_snapshot!($name, $text);
        });
    }};
}
#[cfg(test)]
pub(crate) use assert_text;

#[cfg(test)]
pub mod fixtures;

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_in_the_unit_that_fits() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(812 << 20), "812.0 MiB");
        assert_eq!(human_bytes(3 << 50), "3.0 PiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
