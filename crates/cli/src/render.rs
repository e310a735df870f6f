//! Formatting shared by the human renderings of several commands: sizes, local times,
//! coverage lines. One place, so two commands never show the same fact two ways.

use kopi_docka_core::unit::{CoverageEntry, CoverageStatus};

/// A UTC time in the local time zone, for display.
pub fn local_time(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    #[allow(clippy::cast_precision_loss, reason = "display only")]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
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
