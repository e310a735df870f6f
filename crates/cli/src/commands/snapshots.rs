//! `kopi-docka snapshots`

use std::fmt::Write as _;
use std::sync::Arc;

use kopi_docka_core::repo::{Part, Pass, Repo, RepoSettings, SnapshotFilter, SnapshotInfo};
use kopi_docka_core::restore::{self, RestorePoint};
use serde::Serialize;

use crate::cli::{GlobalArgs, SnapshotsArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::{Render, human_bytes, local_time};

/// What the repository holds: JSON gives both lists, the text one of them.
#[derive(Serialize)]
struct SnapshotsReport {
    /// Newest first.
    restore_points: Vec<RestorePoint>,
    /// Newest first.
    snapshots: Vec<SnapshotInfo>,
    /// `--raw`: the text lists the single snapshots instead of the restore points.
    #[serde(skip)]
    raw: bool,
}

/// Lists restore points (or single snapshots with `--raw`), newest first.
pub async fn run(
    global: &GlobalArgs,
    args: &SnapshotsArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let settings = RepoSettings::from_config(&loaded)?;
    let repo = Repo::open(settings, Arc::new(CliProgress::new())).await?;
    let filter = SnapshotFilter {
        host: args.host.clone(),
        unit: args.unit.clone(),
        backup_id: None,
    };
    let mut snapshots = repo.snapshots(filter).await?;
    snapshots.reverse();
    printer.report(&SnapshotsReport {
        restore_points: restore::group(&snapshots),
        snapshots,
        raw: args.raw,
    })?;
    Ok(ExitCode::Ok)
}

impl Render for SnapshotsReport {
    fn human(&self) -> String {
        if self.raw {
            render(&self.snapshots)
        } else {
            render_points(&self.restore_points)
        }
    }
}

fn render_points(points: &[RestorePoint]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "{:<19}  {:<16}  {:<24}  {:<22}  {:<8}  {:<30}  {:>10}",
        "TIME", "HOST", "UNIT", "BACKUP ID", "SCOPE", "CONTENTS", "SIZE"
    );
    for p in points {
        let local = local_time(p.time);
        let mut contents = Vec::new();
        if p.recipe.is_some() {
            contents.push("recipe".to_owned());
        }
        if p.networks.is_some() {
            contents.push("networks".to_owned());
        }
        contents.push(format!("{} vol", p.volumes.len()));
        contents.push(format!("{} bind", p.binds.len()));
        if !p.complete {
            contents.push("INCOMPLETE".to_owned());
        }
        let _ = writeln!(
            out,
            "{local:<19}  {:<16}  {:<24}  {:<22}  {:<8}  {:<30}  {:>10}",
            p.host,
            p.unit,
            p.backup_id,
            p.scope,
            contents.join(", "),
            human_bytes(p.data_size())
        );
    }
    let _ = writeln!(
        out,
        "{} restore points (restore one with `kopi-docka restore --unit UNIT --backup-id ID`; \
         INCOMPLETE ones need --allow-incomplete; single snapshots: --raw)",
        points.len()
    );
    out
}

fn render(snapshots: &[SnapshotInfo]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "{:<8}  {:<19}  {:<16}  {:<24}  {:<13}  {:<24}  {:>10}",
        "ID", "TIME", "HOST", "UNIT", "TYPE", "VOLUME/BIND", "SIZE"
    );
    for s in snapshots {
        let local = local_time(s.time);
        let unit = s
            .meta
            .unit
            .as_ref()
            .map_or_else(String::new, |u| u.name.to_string());
        let (kind, item) = match &s.meta.part {
            Part::Recipe => ("recipe", String::new()),
            Part::Networks => ("networks", String::new()),
            Part::DockerConfig => ("docker-config", String::new()),
            Part::Run => ("run", String::new()),
            Part::Volume { volume } => ("volume", volume.clone()),
            Part::Bind { bind } => ("bind", bind.display().to_string()),
            Part::Point { parts } => ("point", format!("{parts} parts")),
            Part::Dump { container, engine } => ("dump", format!("{engine} {container}")),
        };
        let kind = if s.meta.pass == Some(Pass::Warm) {
            "warm copy"
        } else {
            kind
        };
        let size = s.size.map(human_bytes).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8}  {local:<19}  {:<16}  {unit:<24}  {kind:<13}  {item:<24}  {size:>10}",
            &s.id[..8.min(s.id.len())],
            s.host,
        );
    }
    let _ = writeln!(out, "{} snapshots", snapshots.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{assert_renders, assert_text, fixtures};

    fn report(raw: bool) -> SnapshotsReport {
        let snapshots = fixtures::snapshots();
        SnapshotsReport {
            restore_points: restore::group(&snapshots),
            snapshots,
            raw,
        }
    }

    #[test]
    fn renders_restore_points() {
        assert_renders!("snapshots", &report(false));
    }

    #[test]
    fn renders_single_snapshots() {
        // The JSON is the same as without --raw; only the text differs.
        assert_text!(
            "snapshots_raw",
            crate::printer::Format::Text.render(&report(true)).unwrap()
        );
    }
}
