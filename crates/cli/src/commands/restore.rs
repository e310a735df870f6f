//! `kopi-docka restore`: pick a restore point (flags, or a wizard on a terminal), show the
//! plan, confirm, restore; or extract into a directory; or run a drill.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::docker::Engine;
use kopi_docka_core::lock::Lock;
use kopi_docka_core::repo::{Repo, RepoSettings, SnapshotFilter};
use kopi_docka_core::restore::drill::{self, DrillReport};
use kopi_docka_core::restore::start::Treatment;
use kopi_docka_core::restore::units::UnitFileAction;
use kopi_docka_core::restore::{
    self, DataKind, ExtractedPart, Parts, PointSelector, RestoreContext, RestoreOutcome,
    RestorePlan, RestorePoint, RestoreRequest, StartPlan, points,
};
use serde::Serialize;

use super::UsageError;
use crate::cli::{GlobalArgs, PartArg, RestoreArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::{Render, human_bytes, local_time};

/// Restores one unit.
pub async fn run(
    global: &GlobalArgs,
    args: &RestoreArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let repo_settings = RepoSettings::from_config(&loaded)?;
    let this_host = repo_settings.hostname.clone();
    let interactive =
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !args.json;
    crate::signals::install_once();
    let interrupt = crate::signals::subscribe();
    // Restores stop and start containers: never at the same time as a backup or another
    // restore. The run lock is taken only after the questions, so a restore waiting at a
    // prompt never holds up a scheduled backup; what the plan was made from is looked at
    // again once the lock is held.
    let repo = Repo::open(repo_settings, Arc::new(CliProgress::new())).await?;
    let points = restore::group(&repo.snapshots(SnapshotFilter::default()).await?);
    let point = select_point(&points, args, &this_host, interactive, printer)?;
    let only = if args.only.is_empty() && interactive && args.unit.is_none() {
        ask_parts(printer)?
    } else {
        args.only.clone()
    };
    // `--env-file`, else the unit's own `[units.<name>] env-file`.
    let env_file = args.env_file.clone().or_else(|| {
        kopi_docka_core::unit::unit_config(&loaded.config, &point.unit)
            .and_then(|unit| unit.env_file.clone())
    });
    let request = RestoreRequest {
        point,
        parts: parts(&only),
        volumes: args.volumes.clone(),
        binds: args.binds.clone(),
        compose_dir: args.compose_dir.clone(),
        start: !args.no_start,
        recreate_networks: args.recreate_networks,
        env_values: read_env_file(env_file.as_deref())?,
    };
    request.check_subset()?;
    if let Some(dir) = &args.target_dir {
        return extract(&repo, &request, dir, printer).await;
    }
    let engine = Engine::connect(loaded.engine_target()?).await?;
    let journal = loaded.env.state_dir().journal();
    let ctx = RestoreContext::new(
        &loaded,
        &engine,
        &repo,
        &journal,
        &request.point.unit,
        interrupt.clone(),
    )?;
    if args.drill {
        // A drill creates containers from the recipe: what needs trust is asked for (or
        // --trust-recipe given) before the run lock is taken.
        let needs = drill::needs_trust(&ctx, &request.point).await?;
        let trusted = needs.is_empty()
            || args.trust_recipe
            || (interactive && {
                printer.notice(&format!("needs trust:\n  {}", needs.join("\n  ")));
                confirm_trust(interactive, printer)?
            });
        let _run_lock = lock_and_recover(&loaded, &engine, &interrupt, printer).await?;
        let report = Box::pin(drill::drill(
            &ctx,
            request.point,
            request.env_values,
            trusted,
        ))
        .await?;
        printer.report(&report)?;
        return Ok(if *interrupt.borrow() {
            ExitCode::Interrupted
        } else if report.passed {
            ExitCode::Ok
        } else {
            ExitCode::Failed
        });
    }
    let mut plan = Box::pin(restore::prepare(&ctx, request.clone())).await?;
    if args.dry_run {
        printer.report(&plan)?;
        return Ok(ExitCode::Ok);
    }
    printer.preview(&plan);
    confirm(args.yes, interactive, printer)?;
    if !plan.trusted() && (args.trust_recipe || confirm_trust(interactive, printer)?) {
        plan.trust();
    }
    let _run_lock = lock_and_recover(&loaded, &engine, &interrupt, printer).await?;
    let plan = Box::pin(restore::prepare_confirmed(&ctx, request, plan)).await?;
    let outcome = Box::pin(restore::execute(&ctx, plan)).await?;
    printer.report(&outcome)?;
    Ok(if outcome.interrupted || *interrupt.borrow() {
        ExitCode::Interrupted
    } else if outcome.ok() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

/// Takes the run lock, then repairs what a killed run left: volumes half swapped are rolled
/// back, then its stopped containers started, before this restore acts on the unit.
async fn lock_and_recover(
    loaded: &LoadedConfig,
    engine: &Engine,
    interrupt: &tokio::sync::watch::Receiver<bool>,
    printer: &Printer,
) -> anyhow::Result<Lock> {
    let (lock, recovered) = kopi_docka_core::stop::lock_and_recover(
        engine,
        &loaded.env.state_dir(),
        interrupt,
        loaded.config.backup.health_timeout(),
    )
    .await?;
    for path in &recovered.rolled_back {
        printer.notice(&format!(
            "rolled back {} (an interrupted restore had swapped it)",
            path.display()
        ));
    }
    if !recovered.errors.is_empty() {
        bail!(
            "{}\nresolve this before restoring again",
            recovered.errors.join("\n")
        );
    }
    Ok(lock)
}

/// `--target-dir`: the parts as plain files, no container touched.
async fn extract(
    repo: &Repo,
    request: &RestoreRequest,
    dir: &Path,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    printer.report(&Extracted(restore::extract(repo, request, dir).await?))?;
    Ok(ExitCode::Ok)
}

/// The parts a `--target-dir` restore wrote (JSON: the list itself).
#[derive(Serialize)]
#[serde(transparent)]
struct Extracted(Vec<ExtractedPart>);

impl Render for Extracted {
    fn human(&self) -> String {
        let mut out = String::new();
        for p in &self.0 {
            let _ = writeln!(
                out,
                "{:<40} -> {} ({} entries, {})",
                p.part,
                p.path.display(),
                p.restored,
                human_bytes(p.bytes)
            );
        }
        out
    }
}

impl Render for RestorePlan {
    fn human(&self) -> String {
        render_plan(self)
    }
}

impl Render for RestoreOutcome {
    fn human(&self) -> String {
        render_outcome(self)
    }
}

impl Render for DrillReport {
    fn human(&self) -> String {
        render_drill(self)
    }
}

fn parts(only: &[PartArg]) -> Parts {
    if only.is_empty() {
        return Parts::ALL;
    }
    Parts {
        recipe: only.contains(&PartArg::Recipe),
        networks: only.contains(&PartArg::Networks),
        volumes: only.contains(&PartArg::Volumes),
        binds: only.contains(&PartArg::Binds),
    }
}

/// Host, unit and point from the flags; what is missing is asked on a terminal.
fn select_point(
    points: &[RestorePoint],
    args: &RestoreArgs,
    this_host: &str,
    interactive: bool,
    printer: &Printer,
) -> anyhow::Result<RestorePoint> {
    let selector = PointSelector::new(points, this_host);
    let hosts = selector.hosts();
    let host = match (
        &args.from_host,
        args.unit.is_none() && interactive && hosts.len() > 1,
    ) {
        (Some(h), _) => h.clone(),
        (None, true) => (*choose(printer, "Host", hosts, |h| (*h).to_owned())?).to_owned(),
        (None, false) => this_host.to_owned(),
    };
    let units = selector.units(&host)?;
    let unit = match &args.unit {
        Some(u) => u.clone(),
        None if interactive => (*choose(printer, "Unit", &units, |u| (*u).to_owned())?).to_owned(),
        None => return Err(selector.unit_not_named(&host).into()),
    };
    let of_unit = selector.points(&host, &unit)?;
    let allow = args.allow_incomplete;
    let point = match &args.backup_id {
        Some(id) => points::find_backup(&of_unit, &unit, id, allow)?,
        None if interactive && !args.latest => {
            let offered = points::restorable(&of_unit, &unit, allow)?;
            *choose(printer, "Restore point", &offered, |p| describe_point(p))?
        }
        None => {
            let newest = points::newest(&of_unit, &unit, allow)?;
            if !newest.skipped.is_empty() {
                let ids: Vec<String> = newest
                    .skipped
                    .iter()
                    .map(|p| p.backup_id.to_string())
                    .collect();
                printer.notice(&format!(
                    "skipped newer incomplete restore point(s) of {unit}: {} (restore one with \
                     --backup-id ID --allow-incomplete)",
                    ids.join(", ")
                ));
            }
            newest.point
        }
    };
    Ok(point.clone())
}

fn choose<'a, T>(
    printer: &Printer,
    what: &str,
    items: &'a [T],
    label: impl Fn(&T) -> String,
) -> anyhow::Result<&'a T> {
    let mut menu = format!("{what}:\n");
    for (i, item) in items.iter().enumerate().take(20) {
        let _ = writeln!(menu, "  {:>2}) {}", i + 1, label(item));
    }
    printer.notice(menu.trim_end());
    loop {
        let Some(answer) = printer.ask(&format!("{what} [1]:")) else {
            bail!(UsageError("no answer on stdin".into()));
        };
        let index = if answer.is_empty() {
            Ok(1)
        } else {
            answer.parse::<usize>()
        };
        match index {
            Ok(i) if (1..=items.len().min(20)).contains(&i) => return Ok(&items[i - 1]),
            _ => printer.notice(&format!(
                "answer with a number from 1 to {}",
                items.len().min(20)
            )),
        }
    }
}

/// The wizard's last question: which parts (all by default).
fn ask_parts(printer: &Printer) -> anyhow::Result<Vec<PartArg>> {
    loop {
        let Some(answer) =
            printer.ask("Parts [all] (or a comma list of recipe, networks, volumes, binds):")
        else {
            bail!(UsageError("no answer on stdin".into()));
        };
        if answer.is_empty() || answer == "all" {
            return Ok(Vec::new());
        }
        let parsed: Result<Vec<PartArg>, String> = answer
            .split(',')
            .map(|p| <PartArg as clap::ValueEnum>::from_str(p.trim(), true))
            .collect();
        match parsed {
            Ok(parts) => return Ok(parts),
            Err(error) => printer.notice(&error),
        }
    }
}

fn confirm(yes: bool, interactive: bool, printer: &Printer) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive {
        bail!(UsageError(
            "a restore overwrites data: confirm with --yes (see the plan above, or --dry-run)"
                .into()
        ));
    }
    match printer.ask("Proceed? [y/N]").as_deref() {
        Some("y" | "Y" | "yes") => Ok(()),
        _ => bail!(UsageError("not confirmed; nothing was changed".into())),
    }
}

/// The recipe asks for more than a plain restore (listed in the plan): on a terminal the user
/// decides; without one only `--trust-recipe` does (core refuses otherwise).
fn confirm_trust(interactive: bool, printer: &Printer) -> anyhow::Result<bool> {
    if !interactive {
        return Ok(false);
    }
    match printer
        .ask("The recipe asks for the access listed under `needs trust` above. Trust it? [y/N]")
        .as_deref()
    {
        Some("y" | "Y" | "yes") => Ok(true),
        _ => bail!(UsageError("not trusted; nothing was changed".into())),
    }
}

/// `NAME=value` lines from a file that only its owner may read.
fn read_env_file(path: Option<&Path>) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    let text = super::read_private(path)?;
    Ok(drill::parse_env(&text))
}

fn describe_point(p: &RestorePoint) -> String {
    format!(
        "{}  {}{}  scope {}, {}{} volume(s), {} bind(s), {}",
        local_time(p.time),
        p.backup_id,
        if p.complete { "" } else { " (INCOMPLETE)" },
        p.scope,
        if p.recipe.is_some() { "recipe, " } else { "" },
        p.volumes.len(),
        p.binds.len(),
        human_bytes(p.data_size())
    )
}

/// The plan's systemd unit files, one line each.
fn render_unit_files(plan: &RestorePlan, out: &mut String) {
    for f in &plan.unit_files {
        let action = match f.action {
            UnitFileAction::Create => "created",
            UnitFileAction::Same => "unchanged",
            UnitFileAction::Replace => "replaced (the old one kept as *.kopi-docka-*.bak)",
        };
        let _ = writeln!(
            out,
            "  unit file: {} of {} ({}): {action}",
            f.path.display(),
            f.unit,
            f.user
                .as_deref()
                .map_or_else(|| "system".to_owned(), |u| format!("user {u}"))
        );
    }
}

fn render_plan(plan: &RestorePlan) -> String {
    let p = &plan.point;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Restore {} {} from host {}, point {} ({}, scope {})",
        p.kind,
        p.unit,
        p.host,
        p.backup_id,
        local_time(p.time),
        p.scope
    );
    if let Some(dir) = &plan.project_dir {
        let replaced = plan.files.iter().filter(|(_, o)| *o).count();
        let _ = writeln!(
            out,
            "  files:    {} into {}{}",
            plan.files.len(),
            dir.display(),
            if replaced > 0 {
                format!(" ({replaced} replaced; the old ones kept as *.kopi-docka-*.bak)")
            } else {
                String::new()
            }
        );
    }
    render_unit_files(plan, &mut out);
    for n in &plan.networks {
        let _ = writeln!(out, "  network:  {} ({})", n.name, n.state);
    }
    for d in &plan.data {
        let kind = match d.kind {
            DataKind::Volume => "volume:  ",
            DataKind::Bind => "bind:    ",
        };
        let action = match (&d.target, d.exists) {
            (None, _) => "created, then restored".to_owned(),
            (Some(t), true) => format!(
                "replaces {} (current content kept as a rollback copy)",
                t.display()
            ),
            (Some(t), false) => format!("restored to {}", t.display()),
        };
        let size = d.size.map(human_bytes).unwrap_or_default();
        let _ = writeln!(out, "  {kind} {} {size}: {action}", d.name);
    }
    if !plan.stop.is_empty() {
        let _ = writeln!(out, "  stops:    {}", plan.stop.join(", "));
    }
    for d in &plan.dumps {
        let _ = writeln!(
            out,
            "  dump:     {} ({} {}): started first on a fresh volume, loaded once it accepts \
             connections, before the rest starts",
            d.container,
            d.spec.engine,
            d.spec.what()
        );
    }
    let start = match &plan.start {
        StartPlan::None => "nothing is started (--no-start)".to_owned(),
        StartPlan::RestartStopped => "the stopped containers are started again".to_owned(),
        StartPlan::Compose { tool, services, .. } => format!(
            "`{tool} up -d` {}",
            if services.is_empty() {
                "(all services)".to_owned()
            } else {
                services.join(" ")
            }
        ),
        StartPlan::Systemd { services } => format!(
            "started through systemd: {}",
            services
                .iter()
                .map(|s| match &s.user {
                    Some(user) => format!("systemctl --user start {} (user {user})", s.unit),
                    None => format!("systemctl start {}", s.unit),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StartPlan::Recreate { containers } => {
            format!(
                "recreates {} from the saved configuration",
                containers.join(", ")
            )
        }
    };
    let _ = writeln!(out, "  then:     {start}");
    for w in &plan.warnings {
        let _ = writeln!(out, "  warning:  {w}");
    }
    for t in &plan.needs_trust {
        let _ = writeln!(out, "  needs trust: {t}");
    }
    out
}

fn render_outcome(o: &RestoreOutcome) -> String {
    let mut out = String::new();
    let verdict = if o.interrupted {
        "INTERRUPTED"
    } else if o.ok() {
        "restored"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        out,
        "{verdict}: {} {} (point {} from {}) in {:.1}s",
        o.kind, o.unit, o.backup_id, o.host, o.duration_seconds
    );
    for (path, backup) in &o.files {
        if let Some(b) = backup {
            let _ = writeln!(
                out,
                "  file {}: previous version kept as {}",
                path.display(),
                b.display()
            );
        }
    }
    for d in &o.data {
        let _ = write!(
            out,
            "  {} {}: {} entries, {}",
            match d.kind {
                DataKind::Volume => "volume",
                DataKind::Bind => "bind",
            },
            d.name,
            d.swapped.restored,
            human_bytes(d.swapped.bytes)
        );
        match &d.swapped.rollback {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "; previous content kept at {} (remove it once all is well)",
                    r.display()
                );
            }
            None => out.push('\n'),
        }
    }
    if !o.dumps_loaded.is_empty() {
        let _ = writeln!(out, "  dumps loaded: {}", o.dumps_loaded.join(", "));
    }
    if !o.started.is_empty() {
        let _ = writeln!(out, "  started: {}", o.started.join(", "));
    }
    if !o.left_stopped.is_empty() {
        let _ = writeln!(
            out,
            "  left stopped: {} (start them with `docker start` once you have checked the data)",
            o.left_stopped.join(", ")
        );
    }
    for k in &o.killed {
        let _ = writeln!(out, "  killed: {}", k.hint());
    }
    for w in &o.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    for e in &o.errors {
        let _ = writeln!(out, "  error: {e}");
    }
    out
}

fn render_drill(r: &DrillReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "drill {}: {} (point {} from {}), sandbox {}",
        if r.passed { "PASSED" } else { "FAILED" },
        r.unit,
        r.backup_id,
        r.host,
        r.sandbox
    );
    let _ = writeln!(
        out,
        "  restore {:.1}s, verify {:.1}s, start {:.1}s, total {:.1}s",
        r.restore_seconds, r.verify_seconds, r.start_seconds, r.total_seconds
    );
    for d in &r.data {
        let _ = writeln!(
            out,
            "  {}: {} files verified, {} differ, {} extra",
            d.name, d.verified, d.differing, d.additional
        );
    }
    if !r.mounts.is_empty() {
        let _ = writeln!(out, "  mounts (production is never mounted):");
    }
    for m in &r.mounts {
        let what = match &m.treatment {
            Treatment::SandboxCopy { copy } => format!("sandbox copy {copy}"),
            Treatment::Fresh => "fresh, empty".to_owned(),
            Treatment::LeftOut { reason } => format!("left out: {reason}"),
        };
        let source = if m.source.is_empty() {
            String::new()
        } else {
            format!(" {}", m.source)
        };
        let _ = writeln!(
            out,
            "    {} {}{source} -> {}: {what}",
            m.container, m.kind, m.destination
        );
    }
    if !r.started.is_empty() {
        let _ = writeln!(out, "  running: {}", r.started.join(", "));
    }
    for d in &r.dumps {
        let _ = writeln!(
            out,
            "  {} dump of {}: {} ({}, {:.1}s)",
            d.engine,
            d.container,
            if d.loaded { "loaded" } else { "NOT LOADED" },
            crate::render::human_bytes(d.bytes),
            d.seconds
        );
    }
    for e in &r.errors {
        let _ = writeln!(out, "  error: {e}");
    }
    for l in &r.leftovers {
        let _ = writeln!(out, "  not removed: {l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use kopi_docka_core::restore::DataOutcome;
    use kopi_docka_core::restore::data::Swapped;
    use kopi_docka_core::restore::drill::{DrillData, DrillDump};
    use kopi_docka_core::restore::networks::{NetworkAction, NetworkOutcome};
    use kopi_docka_core::restore::start::SandboxMount;
    use kopi_docka_core::stop::KilledContainer;
    use kopi_docka_core::unit::UnitKind;

    use super::*;
    use crate::render::{assert_renders, assert_text, fixtures};

    /// The fixture's restore points, newest first.
    fn points() -> Vec<RestorePoint> {
        restore::group(&fixtures::snapshots())
    }

    fn nextcloud() -> RestorePoint {
        points()
            .into_iter()
            .find(|p| p.unit == "nextcloud")
            .unwrap()
    }

    #[test]
    fn renders_the_point_menu() {
        let mut menu = String::new();
        for p in &points() {
            let _ = writeln!(menu, "{}", describe_point(p));
        }
        assert_text!("restore_point_menu", menu);
    }

    /// A plan as `prepare` makes it; its private part plays no role in rendering.
    fn plan(start: &serde_json::Value) -> RestorePlan {
        let plan = serde_json::json!({
            "point": nextcloud(),
            "project_dir": "/opt/stacks/nextcloud",
            "files": [
                ["/opt/stacks/nextcloud/compose.yaml", true],
                ["/opt/stacks/nextcloud/.env", false],
            ],
            "networks": [
                {"name": "nextcloud_default", "state": "missing"},
                {
                    "name": "nextcloud_backend",
                    "state": "differs",
                    "differences": ["subnet: 172.20.0.0/16 recorded, 172.21.0.0/16 now"],
                },
            ],
            "data": [
                {
                    "name": "nextcloud_db",
                    "kind": "volume",
                    "snapshot": format!("{:0<64}", "a3"),
                    "size": 73_400_320,
                    "target": "/var/lib/docker/volumes/nextcloud_db/_data",
                    "exists": true,
                },
                {
                    "name": "nextcloud_html",
                    "kind": "volume",
                    "snapshot": format!("{:0<64}", "a4"),
                    "size": 1_288_490_188,
                    "exists": false,
                },
                {
                    "name": "/srv/nextcloud/config",
                    "kind": "bind",
                    "snapshot": format!("{:0<64}", "a5"),
                    "target": "/srv/nextcloud/config",
                    "exists": false,
                },
            ],
            "stop": ["nextcloud-app-1", "nextcloud-db-1"],
            "start": start,
            "warnings": ["env file /opt/stacks/nextcloud/.env: 2 values were not recorded; give them with --env-file"],
        });
        // `NetworkPlan::state` borrows a `&'static str`.
        let text: &'static str = Box::leak(plan.to_string().into_boxed_str());
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn renders_the_plan() {
        assert_renders!(
            "restore_plan",
            &plan(&serde_json::json!({
                "method": "compose",
                "tool": "docker compose",
                "files": ["/opt/stacks/nextcloud/compose.yaml"],
                "services": [],
            }))
        );
    }

    #[test]
    fn renders_the_other_ways_to_start() {
        let mut then = String::new();
        for start in [
            serde_json::json!({"method": "none"}),
            serde_json::json!({"method": "restart_stopped"}),
            serde_json::json!({
                "method": "compose",
                "tool": "docker-compose",
                "files": [],
                "services": ["app", "db"],
            }),
            serde_json::json!({"method": "recreate", "containers": ["portainer"]}),
        ] {
            for line in plan(&start).human().lines() {
                if line.starts_with("  then:") {
                    let _ = writeln!(then, "{line}");
                }
            }
        }
        assert_text!("restore_plan_start", then);
    }

    fn outcome(errors: Vec<String>, interrupted: bool) -> RestoreOutcome {
        let point = nextcloud();
        RestoreOutcome {
            host: point.host,
            unit: point.unit,
            kind: UnitKind::Stack,
            backup_id: point.backup_id.to_string(),
            files: vec![
                (
                    "/opt/stacks/nextcloud/compose.yaml".into(),
                    Some(
                        "/opt/stacks/nextcloud/compose.yaml.kopi-docka-20261122T100000Z.bak"
                            .into(),
                    ),
                ),
                ("/opt/stacks/nextcloud/.env".into(), None),
            ],
            networks: vec![NetworkOutcome {
                name: "nextcloud_default".into(),
                action: NetworkAction::Created,
            }],
            data: vec![
                DataOutcome {
                    name: "nextcloud_db".into(),
                    kind: DataKind::Volume,
                    swapped: Swapped {
                        target: "/var/lib/docker/volumes/nextcloud_db/_data".into(),
                        rollback: Some(
                            "/var/lib/docker/volumes/nextcloud_db/._data.kopi-docka-q7RxW2mKp9Ta/rollback"
                                .into(),
                        ),
                        restored: 1_503,
                        bytes: 73_400_320,
                        private: "/var/lib/docker/volumes/nextcloud_db/._data.kopi-docka-q7RxW2mKp9Ta"
                            .into(),
                    },
                },
                DataOutcome {
                    name: "/srv/nextcloud/config".into(),
                    kind: DataKind::Bind,
                    swapped: Swapped {
                        target: "/srv/nextcloud/config".into(),
                        rollback: None,
                        restored: 12,
                        bytes: 48_213,
                        private: "/srv/nextcloud/.config.kopi-docka-Zt4bN8sLw1Qe".into(),
                    },
                },
            ],
            started: if interrupted {
                Vec::new()
            } else {
                vec!["nextcloud-db-1".into(), "nextcloud-app-1".into()]
            },
            dumps_loaded: Vec::new(),
            left_stopped: if interrupted {
                vec!["nextcloud-db-1".into(), "nextcloud-app-1".into()]
            } else {
                Vec::new()
            },
            rolled_back: false,
            interrupted,
            warnings: vec!["nextcloud-app-1 did not become healthy within 120s".into()],
            killed: vec![KilledContainer {
                name: "nextcloud-app-1".into(),
                seconds: 10.2,
                timeout_seconds: 10,
            }],
            errors,
            duration_seconds: 42.25,
        }
    }

    #[test]
    fn renders_the_outcome() {
        assert_renders!("restore_outcome", &outcome(Vec::new(), false));
    }

    #[test]
    fn renders_an_interrupted_outcome() {
        assert_renders!(
            "restore_outcome_interrupted",
            &outcome(
                vec!["interrupted before the containers were started".into()],
                true
            )
        );
    }

    #[test]
    fn renders_the_drill() {
        assert_renders!(
            "restore_drill",
            &DrillReport {
                host: fixtures::HOST.into(),
                unit: "nextcloud".into(),
                backup_id: nextcloud().backup_id.to_string(),
                sandbox: "kdrill-3c4d".into(),
                passed: false,
                restore_seconds: 12.04,
                verify_seconds: 3.5,
                start_seconds: 8.25,
                total_seconds: 25.0,
                data: vec![
                    DrillData {
                        name: "nextcloud_db".into(),
                        verified: 1_503,
                        differing: 0,
                        additional: 0,
                    },
                    DrillData {
                        name: "/srv/nextcloud/config".into(),
                        verified: 11,
                        differing: 1,
                        additional: 2,
                    },
                ],
                mounts: vec![
                    SandboxMount {
                        container: "nextcloud-db-1".into(),
                        destination: "/var/lib/mysql".into(),
                        kind: "volume".into(),
                        source: "nextcloud_db".into(),
                        treatment: Treatment::SandboxCopy {
                            copy: "kdrill-3c4d_nextcloud_db".into(),
                        },
                    },
                    SandboxMount {
                        container: "nextcloud-app-1".into(),
                        destination: "/var/run/docker.sock".into(),
                        kind: "bind".into(),
                        source: "/var/run/docker.sock".into(),
                        treatment: Treatment::LeftOut {
                            reason: "not in the restore point; a drill never mounts production \
                                     data"
                                .into(),
                        },
                    },
                    SandboxMount {
                        container: "nextcloud-app-1".into(),
                        destination: "/tmp".into(),
                        kind: "tmpfs".into(),
                        source: String::new(),
                        treatment: Treatment::Fresh,
                    },
                ],
                started: vec!["kdrill-3c4d-db-1".into(), "kdrill-3c4d-app-1".into()],
                dumps: vec![DrillDump {
                    container: "nextcloud-db-1".into(),
                    engine: kopi_docka_core::unit::DumpEngine::Postgres,
                    loaded: false,
                    bytes: 1_048_576,
                    seconds: 2.5,
                }],
                errors: vec![
                    "/srv/nextcloud/config: 1 file differs, 2 extra".into(),
                    "the postgres dump of nextcloud-db-1 does not load: postgres dump of \
                     kdrill-3c4d_nextcloud-db-1: the dump ends without the client's \
                     \"PostgreSQL database cluster dump complete\" trailer after 1048576 \
                     bytes: it is cut short, and what came before it was loaded; do not use \
                     this database"
                        .into(),
                ],
                leftovers: vec!["network kdrill-3c4d_default: in use".into()],
            }
        );
    }

    #[test]
    fn renders_an_extraction() {
        assert_renders!(
            "restore_extract",
            &Extracted(vec![
                ExtractedPart {
                    part: "recipe".into(),
                    path: "/tmp/nextcloud/recipe".into(),
                    restored: 9,
                    bytes: 18_432,
                },
                ExtractedPart {
                    part: "volume nextcloud_db".into(),
                    path: "/tmp/nextcloud/volumes/nextcloud_db".into(),
                    restored: 1_503,
                    bytes: 73_400_320,
                },
                ExtractedPart {
                    part: "bind /srv/nextcloud/config".into(),
                    path: "/tmp/nextcloud/binds/srv/nextcloud/config".into(),
                    restored: 12,
                    bytes: 48_213,
                },
            ])
        );
    }
}
