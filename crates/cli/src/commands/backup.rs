//! `kopi-docka backup` and `kopi-docka admin restart-stopped`

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use kopi_docka_core::backup::command_job::{CommandJob, JobReport};
use kopi_docka_core::backup::run::{self, BackupPlan, Outcome, RunError, StagingError};
use kopi_docka_core::backup::{RunReport, UnitStatus};
use kopi_docka_core::bootstrap;
use kopi_docka_core::config::LoadedConfig;
use kopi_docka_core::docker::Engine;
use kopi_docka_core::fs_snapshot::ColdPassKind;
use kopi_docka_core::stop::{self, RecoveryReport};

use crate::cli::{BackupArgs, GlobalArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;
use crate::progress::CliProgress;
use crate::render::{Render, human_bytes, zoned};

/// Backs up the selected units (or shows the plan of a dry run).
pub async fn run(
    global: &GlobalArgs,
    args: &BackupArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let mut loaded = crate::settings::config(global)?;
    if loaded.path.is_none() && !args.dry_run {
        loaded = first_run(loaded, printer).await?;
    }
    let settings = crate::settings::backup(&loaded, args)?;
    if args.dry_run {
        let plan = run::plan(&loaded, &settings, args.sizes)
            .await
            .map_err(run_error)?;
        printer.report(&plan)?;
        return Ok(ExitCode::Ok);
    }

    crate::signals::install_once();
    let interrupt = crate::signals::subscribe();
    let output = run::run(&loaded, &settings, &interrupt, Arc::new(CliProgress::new())).await;
    for warning in &output.warnings {
        printer.notice(&format!("warning: {warning}"));
    }
    let ran = output.result.map_err(run_error)?;
    printer.report(&ran.report)?;
    // Metrics, pings and notifications: their problems are shown, never a reason to fail.
    for problem in &ran.after_run {
        printer.notice(&format!("warning: {problem}"));
    }
    Ok(match ran.report.outcome(ran.interrupted) {
        Outcome::Success => ExitCode::Ok,
        Outcome::Partial => ExitCode::Partial,
        Outcome::Failed => ExitCode::Failed,
        Outcome::Interrupted => ExitCode::Interrupted,
    })
}

/// The core error, with the staging shortage in human sizes.
fn run_error(error: RunError) -> anyhow::Error {
    match error {
        RunError::Staging(StagingError::Low { free, dir }) => anyhow::anyhow!(
            "only {} free for staging in {}; free some space (or set KOPI_DOCKA_CACHE_DIR) \
             before a backup stops anything",
            human_bytes(free),
            dir.display()
        ),
        other => other.into(),
    }
}

/// No config anywhere: create the default one and the repository, and say so loudly.
async fn first_run(loaded: LoadedConfig, printer: &Printer) -> anyhow::Result<LoadedConfig> {
    let created = bootstrap::first_run(loaded.env, Arc::new(CliProgress::new())).await?;
    printer.notice(&format!(
        "FIRST RUN: created {config}\n\
         \x20 repository: {repo}\n\
         \x20 password:   {pw} (random, 256 bits)\n\
         Without that password nobody can read these backups. Keep a copy somewhere else now\n\
         (a password manager), or make a disaster-recovery bundle:\n\
         \x20 kopi-docka disaster-recovery export",
        config = created.config.display(),
        repo = created.repository.display(),
        pw = created.password_file.display(),
    ));
    Ok(created.loaded)
}

impl Render for BackupPlan {
    fn human(&self) -> String {
        render_plan(self)
    }
}

impl Render for RunReport {
    fn human(&self) -> String {
        render_report(self)
    }
}

/// A plan's lines for services that are not simply stopped: dumped, skipped, or given their
/// own stop timeout.
fn render_services(out: &mut String, unit: &run::UnitPlan) {
    // Writing into a String cannot fail.
    for service in unit.services.iter().filter(|s| !s.policy.stops()) {
        let _ = match service.policy.dump() {
            Some(spec) => writeln!(
                out,
                "  dump:        {}: {} ({}), keeps running",
                service.container,
                spec.engine,
                spec.what()
            ),
            None => writeln!(
                out,
                "  skip:        {}: keeps running, not backed up",
                service.container
            ),
        };
    }
    for service in &unit.services {
        if let Some(seconds) = service.stop_timeout {
            let _ = writeln!(
                out,
                "  stop time:   {}: {seconds}s before a kill (or its own, if longer)",
                service.container
            );
        }
    }
}

/// How the unit is stopped beyond its stop order: through systemd, what `always` starts, the
/// frozen sockets.
fn render_stop_extras(out: &mut String, unit: &run::UnitPlan) {
    // Writing into a String cannot fail.
    if let Some(service) = &unit.systemd {
        let _ = writeln!(
            out,
            "  through:     systemd unit {}{} (systemctl stop and start)",
            service.unit,
            service
                .user
                .as_deref()
                .map(|u| format!(" of user {u}"))
                .unwrap_or_default()
        );
    }
    if !unit.start_after.is_empty() {
        let _ = writeln!(
            out,
            "  start after: {} (stopped now; restore-state always)",
            unit.start_after.join(", ")
        );
    }
    if !unit.freeze_sockets.is_empty() {
        let _ = writeln!(
            out,
            "  frozen:      {} (stopped with their services first, put back afterwards)",
            unit.freeze_sockets.join(", ")
        );
    }
}

/// A plan's lines for a unit backed up by its own job (`engine = "command"`).
fn render_job_plan(out: &mut String, job: &CommandJob) {
    let _ = writeln!(
        out,
        "  engine:      command (its own job backs it up while it is stopped; nothing goes to \
         the repository)"
    );
    for argv in &job.job {
        let _ = writeln!(
            out,
            "  job:         {} (enqueue within {}s)",
            argv.join(" "),
            job.job_timeout_seconds
        );
    }
    let _ = writeln!(
        out,
        "  status:      {} every {}s until /{}/, at most {}s",
        job.status.join(" "),
        job.status_interval_seconds,
        job.idle_pattern,
        job.wait_timeout_seconds
    );
}

/// A report's lines for a unit backed up by its own job.
fn render_job_report(out: &mut String, job: &JobReport) {
    for command in &job.commands {
        let ended = match (command.timed_out, command.exit_code) {
            (true, _) => "killed after its timeout (counts as enqueued)".to_owned(),
            (false, Some(code)) => format!("exit {code}"),
            (false, None) => "killed by a signal".to_owned(),
        };
        let _ = writeln!(out, "    job: {} -> {ended}", command.argv.join(" "));
    }
    let _ = writeln!(
        out,
        "    status: {} after {:.0}s ({} polls)",
        if job.idle { "idle" } else { "NOT idle" },
        job.waited_seconds,
        job.polls
    );
}

fn render_plan(plan: &BackupPlan) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "dry run: nothing is stopped or written (scope {}, warm pass {})",
        plan.scope,
        if plan.warm_pass { "on" } else { "off" }
    );
    let size = |bytes: Option<u64>| {
        bytes
            .map(|b| format!(" ({})", human_bytes(b)))
            .unwrap_or_default()
    };
    for unit in &plan.units {
        let _ = writeln!(out, "\n{} {}", unit.kind, unit.name);
        let _ = writeln!(
            out,
            "  stop order:  {}",
            if unit.stop_order.is_empty() {
                "(nothing running)".to_owned()
            } else {
                unit.stop_order.join(" -> ")
            }
        );
        if let Some(job) = &unit.job {
            render_job_plan(&mut out, job);
        } else if let Some(why) = &unit.cold_pass_refused {
            let _ = writeln!(out, "  cold pass:   NOT BACKED UP: {why}");
        } else {
            let _ = writeln!(out, "  cold pass:   {}", unit.cold_pass);
        }
        let fs = |f: Option<&kopi_docka_core::fs_snapshot::FsSupport>| {
            f.map(|f| format!(" [{f}]")).unwrap_or_default()
        };
        if let Some(why) = &unit.refused {
            let _ = writeln!(out, "  NOT BACKED UP: {why}");
        }
        render_services(&mut out, unit);
        render_stop_extras(&mut out, unit);
        let except = |globs: &[String]| {
            if globs.is_empty() {
                String::new()
            } else {
                format!(" except {}", globs.join(", "))
            }
        };
        for v in &unit.volumes {
            let _ = writeln!(
                out,
                "  volume:      {}{}{}{}",
                v.name,
                size(v.bytes),
                fs(v.filesystem.as_ref()),
                except(&v.exclude)
            );
        }
        for b in &unit.binds {
            let _ = writeln!(
                out,
                "  bind:        {}{}{}{}",
                b.name,
                size(b.bytes),
                fs(b.filesystem.as_ref()),
                except(&b.exclude)
            );
        }
        match &unit.estimate {
            Some(estimate) => {
                let local = zoned(estimate.last_run).strftime("%Y-%m-%d %H:%M");
                let down = estimate
                    .downtime_seconds
                    .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
                let _ = writeln!(
                    out,
                    "  estimate:    ~{:.0}s, {down} (last run {local})",
                    estimate.seconds
                );
            }
            None => {
                let _ = writeln!(out, "  estimate:    none yet (no earlier run of this unit)");
            }
        }
        for entry in &unit.gaps {
            let _ = writeln!(out, "  {}", crate::render::gap_line(entry));
        }
    }
    out
}

fn render_report(report: &RunReport) -> String {
    let mut out = String::new();
    for name in &report.restarted_from_journal {
        let _ = writeln!(
            out,
            "started {name}, left stopped by an earlier run that was killed"
        );
    }
    for u in &report.units {
        let mark = match u.status {
            UnitStatus::Success => "ok     ",
            UnitStatus::Partial => "PARTIAL",
            UnitStatus::Failed => "FAILED ",
        };
        let added = u.bytes_added;
        let downtime = u
            .downtime_seconds
            .map_or_else(|| "no downtime".to_owned(), |d| format!("down {d:.1}s"));
        let downtime = match (u.cold_pass, u.downtime_seconds) {
            (Some(ColdPassKind::SnapshotLive), _) => {
                "no downtime (snapshot-live: never stopped)".to_owned()
            }
            (Some(kind), Some(_)) => format!("{downtime} ({kind} cold pass)"),
            _ => downtime,
        };
        if let Some(job) = &u.job {
            let _ = writeln!(
                out,
                "{mark} {} {} [{}]: engine command, {downtime}",
                u.kind, u.name, u.backup_id
            );
            render_job_report(&mut out, job);
        } else {
            let _ = writeln!(
                out,
                "{mark} {} {} [{}]: {} snapshots, {} added, {downtime}",
                u.kind,
                u.name,
                u.backup_id,
                u.snapshots.len(),
                human_bytes(added)
            );
        }
        for e in &u.errors {
            let _ = writeln!(out, "    error: {e}");
        }
        for k in &u.killed {
            let _ = writeln!(out, "    killed: {}", k.hint());
        }
        for w in &u.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
    }
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

impl Render for RecoveryReport {
    /// What was started; the errors end the command (`some containers could not be started`).
    fn human(&self) -> String {
        let mut out = String::new();
        for path in &self.rolled_back {
            let _ = writeln!(
                out,
                "rolled back {} (an interrupted restore had swapped it)",
                path.display()
            );
        }
        for container in &self.started {
            let _ = writeln!(out, "started {}", container.name);
        }
        for path in &self.snapshots_removed {
            let _ = writeln!(
                out,
                "removed snapshot {} (a killed backup had left it)",
                path.display()
            );
        }
        if self.started.is_empty() && self.errors.is_empty() && self.rolled_back.is_empty() {
            out.push_str("no container was left stopped\n");
        }
        out
    }
}

/// Starts the containers the journal lists, and nothing else.
pub async fn restart_stopped(global: &GlobalArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = crate::settings::config(global)?;
    let engine = Engine::connect(loaded.engine_target()?).await?;
    let health = loaded.config.backup.health_timeout();
    let report = stop::recover_now(&engine, &loaded.env.state_dir(), health)
        .await
        .context("a backup is running; it starts the containers it stopped itself")?;
    printer.report(&report)?;
    if !report.errors.is_empty() {
        return Err(anyhow::anyhow!(report.errors.join("; ")))
            .context("some containers could not be started");
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use kopi_docka_core::backup::command_job::UnitEngine;
    use kopi_docka_core::backup::run::{Estimate, PlannedItem, ServicePolicy, UnitPlan};
    use kopi_docka_core::backup::{SnapshotRecord, UnitReport};
    use kopi_docka_core::fs_snapshot::ColdPassKind;
    use kopi_docka_core::repo::{Part, Scope};
    use kopi_docka_core::stop::KilledContainer;
    use kopi_docka_core::unit::{CoverageSummary, DumpEngine, DumpSpec, Policy, UnitKind};

    use super::*;
    use crate::render::{assert_renders, assert_text, fixtures};

    #[test]
    fn renders_restart_stopped() {
        let started = RecoveryReport {
            started: vec![
                stop::ContainerRef {
                    id: format!("{:0<64}", "c1"),
                    name: "nextcloud-db-1".into(),
                },
                stop::ContainerRef {
                    id: format!("{:0<64}", "c2"),
                    name: "nextcloud-app-1".into(),
                },
            ],
            errors: Vec::new(),
            rolled_back: vec!["/var/lib/docker/volumes/nextcloud_db/_data".into()],
            snapshots_removed: vec!["/srv/.kopi-docka-snapshots/20261122T030000Z-3c4d-0".into()],
        };
        let text = format!(
            "{}--\n{}",
            started.human(),
            RecoveryReport::default().human()
        );
        assert_text!("restart_stopped", text);
        assert_renders!("restart_stopped_started", &started);
        assert_renders!("restart_stopped_nothing", &RecoveryReport::default());
    }

    #[test]
    fn renders_the_dry_run_plan() {
        let units = fixtures::units();
        let item = |name: &str, bytes| PlannedItem {
            name: name.into(),
            bytes,
            filesystem: Some(fixtures::btrfs()),
            exclude: Vec::new(),
        };
        assert_renders!(
            "backup_plan",
            &BackupPlan {
                scope: Scope::Standard,
                warm_pass: true,
                units: vec![
                    UnitPlan {
                        kind: UnitKind::Stack,
                        name: "nextcloud".into(),
                        stop_order: vec!["nextcloud-app-1".into()],
                        cold_pass: ColdPassKind::Snapshot,
                        cold_pass_refused: None,
                        services: vec![
                            ServicePolicy {
                                container: "nextcloud-app-1".into(),
                                policy: Policy::Stop,
                                stop_timeout: Some(120),
                            },
                            ServicePolicy {
                                container: "nextcloud-db-1".into(),
                                policy: Policy::Dump(DumpSpec {
                                    engine: DumpEngine::Postgres,
                                    database: None,
                                    path: None,
                                }),
                                stop_timeout: None,
                            },
                        ],
                        refused: None,
                        job: None,
                        systemd: None,
                        start_after: vec!["nextcloud-cron-1".into()],
                        freeze_sockets: Vec::new(),
                        volumes: vec![PlannedItem {
                            exclude: vec!["data/appdata_*/preview/**".into(), "*.part".into()],
                            ..item("nextcloud_html", Some(1_288_490_188))
                        }],
                        binds: vec![item("/srv/nextcloud/config", Some(48_213))],
                        estimate: Some(Estimate {
                            last_run: fixtures::time("2026-11-22T03:00:00Z"),
                            seconds: 31.4,
                            downtime_seconds: Some(1.2),
                        }),
                        gaps: units[0]
                            .coverage
                            .entries
                            .iter()
                            .filter(|e| !e.verdict.is_backed_up())
                            .cloned()
                            .collect(),
                    },
                    UnitPlan {
                        kind: UnitKind::Standalone,
                        name: "portainer".into(),
                        stop_order: Vec::new(),
                        cold_pass: ColdPassKind::Read,
                        cold_pass_refused: Some(
                            "[backup] cold-pass = \"snapshot\", but volume portainer_data cannot \
                             be snapshotted: it is on ext4"
                                .into(),
                        ),
                        services: vec![ServicePolicy {
                            container: "portainer".into(),
                            policy: Policy::Stop,
                            stop_timeout: None,
                        }],
                        refused: None,
                        job: None,
                        systemd: Some(kopi_docka_core::systemd::control::Service {
                            unit: "container-portainer.service".into(),
                            user: None,
                            configured: false,
                        }),
                        start_after: Vec::new(),
                        freeze_sockets: vec!["portainer-ondemand.socket".into()],
                        volumes: vec![PlannedItem {
                            filesystem: Some(fixtures::ext4()),
                            ..item("portainer_data", None)
                        }],
                        binds: Vec::new(),
                        estimate: None,
                        gaps: units[1]
                            .coverage
                            .entries
                            .iter()
                            .filter(|e| !e.verdict.is_backed_up())
                            .cloned()
                            .collect(),
                    },
                ],
            }
        );
    }

    fn record(id: &str, part: Part, bytes_added: u64) -> SnapshotRecord {
        SnapshotRecord {
            id: format!("{id:0<64}"),
            part,
            bytes_added,
            files_read: 15,
        }
    }

    /// A unit under `snapshot-live`: never stopped.
    fn live_unit() -> UnitReport {
        let volume = |name: &str| Part::Volume {
            volume: name.into(),
        };
        UnitReport {
            name: "paperless-db".into(),
            kind: UnitKind::Standalone,
            backup_id: fixtures::backup_id("2026-11-22T03:02:20Z", 0x7a8b),
            status: UnitStatus::Success,
            downtime_seconds: Some(0.0),
            cold_pass: Some(ColdPassKind::SnapshotLive),
            snapshots: vec![
                record("c1", volume("paperless_pgdata"), 4_194_304),
                record("c2", Part::Point { parts: 1 }, 512),
            ],
            errors: Vec::new(),
            warnings: Vec::new(),
            killed: Vec::new(),
            coverage: CoverageSummary {
                backed_up: 1,
                skipped: 0,
                not_protected: 0,
            },
            interrupted: false,
            dump_failed: false,
            engine: UnitEngine::Embedded,
            job: None,
            duration_seconds: 1.8,
            complete: true,
            bytes_added: 4_194_816,
        }
    }

    #[test]
    fn renders_the_run_report() {
        let volume = |name: &str| Part::Volume {
            volume: name.into(),
        };
        assert_renders!(
            "backup_report",
            &RunReport {
                run_id: fixtures::backup_id("2026-11-22T03:00:00Z", 1),
                started_at: fixtures::time("2026-11-22T03:00:00Z"),
                finished_at: fixtures::time("2026-11-22T03:02:40Z"),
                host: fixtures::HOST.into(),
                restarted_from_journal: vec!["immich-server".into()],
                docker_config: None,
                units: vec![
                    UnitReport {
                        name: "nextcloud".into(),
                        kind: UnitKind::Stack,
                        backup_id: fixtures::backup_id("2026-11-22T03:00:00Z", 0x3c4d),
                        status: UnitStatus::Success,
                        downtime_seconds: Some(1.234),
                        cold_pass: Some(ColdPassKind::Snapshot),
                        snapshots: vec![
                            record("a1", Part::Recipe, 18_432),
                            record("a2", Part::Networks, 1_024),
                            record("a3", volume("nextcloud_db"), 7_340_032),
                            record("a4", volume("nextcloud_html"), 0),
                            record(
                                "a5",
                                Part::Bind {
                                    bind: "/srv/nextcloud/config".into(),
                                },
                                2_048,
                            ),
                        ],
                        errors: Vec::new(),
                        warnings: vec![
                            "bind /srv/nextcloud/initdb does not exist on this host: NOT PROTECTED"
                                .into(),
                        ],
                        killed: vec![KilledContainer {
                            name: "nextcloud-cron-1".into(),
                            seconds: 30.2,
                            timeout_seconds: 30,
                        }],
                        coverage: CoverageSummary {
                            backed_up: 5,
                            skipped: 1,
                            not_protected: 1,
                        },
                        interrupted: false,
                        dump_failed: false,
                        engine: UnitEngine::Embedded,
                        job: None,
                        duration_seconds: 31.4,
                        complete: true,
                        bytes_added: 7_361_536,
                    },
                    UnitReport {
                        name: "portainer".into(),
                        kind: UnitKind::Standalone,
                        backup_id: fixtures::backup_id("2026-11-22T03:02:10Z", 0x5e6f),
                        status: UnitStatus::Failed,
                        downtime_seconds: None,
                        cold_pass: None,
                        snapshots: Vec::new(),
                        errors: vec![
                            "volume portainer_data: reading /var/lib/docker/volumes/portainer_data/_data/portainer.db: permission denied"
                                .into(),
                        ],
                        warnings: Vec::new(),
                        killed: Vec::new(),
                        coverage: CoverageSummary {
                            backed_up: 1,
                            skipped: 1,
                            not_protected: 0,
                        },
                        interrupted: false,
                        dump_failed: false,
                        engine: UnitEngine::Embedded,
                        job: None,
                        duration_seconds: 2.5,
                        complete: false,
                        bytes_added: 0,
                    },
                    live_unit(),
                ],
                errors: vec!["the disaster-recovery bundle was not refreshed: no passphrase".into()],
            }
        );
    }
}
