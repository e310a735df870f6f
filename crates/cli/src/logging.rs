//! Diagnostics on stderr through `tracing`. `KOPI_DOCKA_LOG` (an env-filter directive) wins
//! over `-v` and `--quiet`.
//!
//! Run by systemd with stderr connected to the journal (`JOURNAL_STREAM` names stderr's device
//! and inode), the events go to journald natively instead, each with its level as the
//! journal priority (error 3, warning 4, info 5, debug 6, trace 7), so `journalctl -p warning`
//! shows the warnings. Colour only on a terminal, and never when `NO_COLOR` is set.
//!
//! Beside them, each unit's lines of a backup also go to its daily file in the state dir
//! (`kopi_docka_core::unit_log`).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How much to say, from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Verbosity {
    /// `-v` given this many times.
    pub verbose: u8,
    /// `--quiet`: warnings and errors only, no progress.
    pub quiet: bool,
}

/// Installs the global subscriber: warnings by default (info for long unattended commands
/// such as `backup` when stderr is not a terminal, so the journal shows what happened), `-v`
/// info, `-vv` debug, `-vvv` trace; `--quiet` warnings only, whatever the command.
pub fn init(verbosity: Verbosity, unattended: bool) {
    let stderr_is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // opendal logs every failed call (expected ones too: `stat` of a repository's `config`
    // before `init` creates it) and every retry, with a backtrace when RUST_BACKTRACE is set.
    // The errors that matter reach us through rustic_core and are reported once, with their
    // cause: opendal's own lines only from -vv on.
    let default = if verbosity.quiet {
        "warn,opendal=off"
    } else {
        match verbosity.verbose {
            // Our own progress; rustic_core's info lines (cache paths, parents) are noise there.
            0 if unattended && !stderr_is_terminal => {
                "warn,kopi_docka=info,kopi_docka_core=info,opendal=off"
            }
            0 => "warn,opendal=off",
            1 => "info,opendal=off",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter =
        || EnvFilter::try_from_env("KOPI_DOCKA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Without a socket to talk to, stderr still reaches the journal, as plain lines.
    let journald = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| layer.with_filter(filter()));
    let fmt = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(stderr_is_terminal && !no_color(std::env::var_os("NO_COLOR").as_deref()))
            .with_filter(filter())
    });
    // Filters per layer: each unit's daily file gets its info lines whatever -v, --quiet or
    // KOPI_DOCKA_LOG say about stderr.
    tracing_subscriber::registry()
        .with(journald)
        .with(fmt)
        .with(kopi_docka_core::unit_log::layer())
        .init();
}

/// `NO_COLOR` set to anything but the empty string (<https://no-color.org>).
fn no_color(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// Whether stderr is the journal stream systemd connected (`JOURNAL_STREAM=DEV:INODE` names
/// it): a child whose stderr was redirected elsewhere inherits the variable but not the match.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    names_stream(&value.to_string_lossy(), stat.st_dev, stat.st_ino)
}

/// Whether a `JOURNAL_STREAM` value names the file with this device and inode.
fn names_stream(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// The stream systemd names is recognised by device and inode, nothing else is.
    #[test]
    fn journal_stream_names_stderr_by_device_and_inode() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.as_file().metadata().unwrap();
        let value = format!("{}:{}", meta.dev(), meta.ino());
        assert!(names_stream(&value, meta.dev(), meta.ino()));
        assert!(!names_stream(&value, meta.dev(), meta.ino() + 1));
        assert!(!names_stream(&value, meta.dev() + 1, meta.ino()));
        for bad in ["", ":", "12", "a:b", "12:", ":34"] {
            assert!(!names_stream(bad, 12, 34), "{bad}");
        }
    }

    /// `NO_COLOR=` (empty) is as good as unset; any other value turns colour off.
    #[test]
    fn no_color_is_any_non_empty_value() {
        assert!(!no_color(None));
        assert!(!no_color(Some("".as_ref())));
        assert!(no_color(Some("1".as_ref())));
        assert!(no_color(Some("0".as_ref())));
    }
}
