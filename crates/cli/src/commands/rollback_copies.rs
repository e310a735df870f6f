//! `kopi-docka admin rollback-copies list|prune`: the previous content restores kept.

use std::fmt::Write as _;

use kopi_docka_core::restore::swaps::{self, PruneReport, RollbackCopy};
use serde::Serialize;

use super::UsageError;
use crate::cli::{GlobalArgs, RollbackCopiesCommand};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::render::{Render, human_bytes, local_time};

/// Lists or prunes rollback copies.
pub fn run(
    global: &GlobalArgs,
    command: RollbackCopiesCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let state_dir = loaded.env.state_dir();
    match command {
        RollbackCopiesCommand::List(_) => {
            printer.report(&Copies(swaps::list(&state_dir)?))?;
            Ok(ExitCode::Ok)
        }
        RollbackCopiesCommand::Prune(args) => {
            let before = args
                .older_than
                .as_deref()
                .map(|text| {
                    kopi_docka_core::history::parse_time(text).ok_or_else(|| {
                        UsageError(format!(
                            "--older-than `{text}` is not a span back from now (7d, 12h) or a \
                             date (2026-11-01)"
                        ))
                    })
                })
                .transpose()?;
            let report = Pruned(swaps::prune(&state_dir, before)?);
            printer.report(&report)?;
            Ok(if report.0.errors.is_empty() {
                ExitCode::Ok
            } else {
                ExitCode::Failed
            })
        }
    }
}

/// `list` (JSON: the list itself).
#[derive(Serialize)]
#[serde(transparent)]
struct Copies(Vec<RollbackCopy>);

impl Render for Copies {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no rollback copies\n".into();
        }
        let mut out = String::new();
        let mut total = 0;
        for c in &self.0 {
            total += c.bytes.unwrap_or(0);
            let _ = writeln!(
                out,
                "{}  {} (point {})  {}\n    replaced at {}\n    kept at     {}",
                local_time(c.created),
                c.unit,
                c.backup_id,
                human_bytes(c.bytes.unwrap_or(0)),
                c.target.display(),
                c.path.display()
            );
        }
        let _ = writeln!(
            out,
            "{} rollback copies, {}; remove them with `kopi-docka admin rollback-copies prune \
             [--older-than 7d]`",
            self.0.len(),
            human_bytes(total)
        );
        out
    }
}

/// `prune`.
#[derive(Serialize)]
#[serde(transparent)]
struct Pruned(PruneReport);

impl Render for Pruned {
    fn human(&self) -> String {
        let mut out = String::new();
        let freed: u64 = self.0.removed.iter().filter_map(|c| c.bytes).sum();
        for c in &self.0.removed {
            let _ = writeln!(out, "removed {}", c.path.display());
        }
        for e in &self.0.errors {
            let _ = writeln!(out, "error: {e}");
        }
        let _ = writeln!(
            out,
            "{} removed ({}), {} kept",
            self.0.removed.len(),
            human_bytes(freed),
            self.0.kept.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::assert_renders;

    fn copy(unit: &str, at: &str, bytes: u64) -> RollbackCopy {
        let private = format!("/var/lib/docker/volumes/{unit}_db/._data.kopi-docka-a1b2c3d4e5f6");
        RollbackCopy {
            path: format!("{private}/rollback").into(),
            private: private.into(),
            target: format!("/var/lib/docker/volumes/{unit}_db/_data").into(),
            unit: unit.into(),
            backup_id: "20261122T020000Z-1a2b".into(),
            created: at.parse().unwrap(),
            bytes: Some(bytes),
        }
    }

    #[test]
    fn renders_the_list() {
        assert_renders!(
            "rollback_copies_list",
            &Copies(vec![
                copy("nextcloud", "2026-11-20T10:00:00Z", 3 << 30),
                copy("gitea", "2026-11-22T09:30:00Z", 12 << 20),
            ])
        );
        assert_renders!("rollback_copies_list_empty", &Copies(Vec::new()));
    }

    #[test]
    fn renders_a_prune() {
        assert_renders!(
            "rollback_copies_prune",
            &Pruned(PruneReport {
                removed: vec![copy("nextcloud", "2026-11-20T10:00:00Z", 3 << 30)],
                kept: vec![copy("gitea", "2026-11-22T09:30:00Z", 12 << 20)],
                errors: vec![
                    "/srv/x/.data.kopi-docka-q: is not a private directory of this user".into()
                ],
            })
        );
    }
}
