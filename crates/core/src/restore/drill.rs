//! Restore drill: proof that a restore point comes back, without touching production.
//!
//! The unit is restored into a sandbox named `<unit>-drill-<random>`: volumes, networks and
//! containers under new names (`<sandbox>_<original>`), binds under a private directory, no published ports, no restart
//! policy, compose labels dropped (so nothing mistakes the sandbox for the real project). The
//! restored files are compared with the snapshots by content before anything starts; then the
//! containers start in order and must run (and be healthy, when they have a healthcheck).
//! Each database dump of the point is loaded into its database in the sandbox as soon as that
//! starts (before the services that write to it), and must load whole: a dump that fails or is
//! cut short fails the drill.
//! Everything the drill created is removed at the end, whatever happened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::drill_log::DrillRecord;
use super::start::{self, Rewrite};
use super::{RestoreContext, RestoreError, RestorePoint, data, networks};
use crate::repo::RestoreMode;
use crate::unit::ContainerState;

/// The drill's label on everything it creates.
pub const DRILL_LABEL: &str = "kopi-docka.drill";

/// One restored volume or bind, compared with its snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct DrillData {
    /// Volume name or bind source.
    pub name: String,
    /// Files whose content matches.
    pub verified: u64,
    /// Files missing or different.
    pub differing: u64,
    /// Files that should not be there.
    pub additional: u64,
}

/// A database dump of the point, loaded into the sandbox's database.
#[derive(Debug, Clone, Serialize)]
pub struct DrillDump {
    /// The production container the dump came from.
    pub container: String,
    /// Its engine.
    pub engine: crate::unit::DumpEngine,
    /// Loaded without an error, whole (its trailer or checksum checked).
    pub loaded: bool,
    /// Bytes fed to the client.
    pub bytes: u64,
    /// Waiting for the server and loading.
    pub seconds: f64,
}

/// A drill's result.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    /// Host of the point.
    pub host: String,
    /// Unit.
    pub unit: String,
    /// The point.
    pub backup_id: String,
    /// Sandbox name prefix.
    pub sandbox: String,
    /// Everything restored, verified and running.
    pub passed: bool,
    /// Restoring the data.
    pub restore_seconds: f64,
    /// Comparing it with the snapshots.
    pub verify_seconds: f64,
    /// Starting the containers until running and healthy.
    pub start_seconds: f64,
    /// The whole drill including cleanup.
    pub total_seconds: f64,
    /// Volumes and binds.
    pub data: Vec<DrillData>,
    /// Every mount of the drilled containers and what the sandbox got instead: a copy from
    /// the point, something fresh, or nothing.
    pub mounts: Vec<start::SandboxMount>,
    /// Containers that came up.
    pub started: Vec<String>,
    /// Database dumps loaded into the sandbox's fresh databases.
    pub dumps: Vec<DrillDump>,
    /// What failed.
    pub errors: Vec<String>,
    /// Sandbox resources that could not be removed.
    pub leftovers: Vec<String>,
}

#[derive(Default)]
struct Sandbox {
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
    dir: Option<PathBuf>,
}

/// What the recipe of `point` asks of the host beyond a plain container (privileged,
/// host namespaces, powerful capabilities, devices, host-internal binds): a drill creates its
/// containers from the recipe, so it needs the same trust as a restore
/// ([`super::trust`]). Empty when nothing needs trust. Ask before taking the run lock.
pub async fn needs_trust(
    ctx: &RestoreContext<'_>,
    point: &RestorePoint,
) -> Result<Vec<String>, RestoreError> {
    let recipe = read_point_recipe(ctx, point).await?;
    let needs = super::plan::privileges(&recipe);
    remove_recipe_copy(&recipe);
    Ok(needs)
}

async fn read_point_recipe(
    ctx: &RestoreContext<'_>,
    point: &RestorePoint,
) -> Result<super::Recipe, RestoreError> {
    let Some(recipe_snap) = &point.recipe else {
        return Err(RestoreError::NoRecipe {
            unit: point.unit.clone(),
            backup_id: point.backup_id.to_string(),
        });
    };
    let stamp = crate::durable::stamp(jiff::Timestamp::now());
    super::read_recipe(ctx, &recipe_snap.id, &stamp).await
}

fn remove_recipe_copy(recipe: &super::Recipe) {
    if let Err(error) = data::remove_any(&recipe.dir) {
        tracing::warn!(%error, "cannot remove the drill's recipe copy");
    }
}

/// Runs a drill of `point`. `env_values` fills redacted variables (values found in the
/// recipe's env files are used too). A recipe that [`needs_trust`] is refused
/// ([`RestoreError::Untrusted`], nothing created) unless `trusted`. The verdict, or the error
/// that stopped it, is kept as the unit's last drill ([`drill_log`](super::drill_log)).
pub async fn drill(
    ctx: &RestoreContext<'_>,
    point: RestorePoint,
    env_values: BTreeMap<String, String>,
    trusted: bool,
) -> Result<DrillReport, RestoreError> {
    let (unit, backup_id) = (point.unit.clone(), point.backup_id.to_string());
    let result = Box::pin(run_drill(ctx, point, env_values, trusted)).await;
    let record = match &result {
        Ok(report) => DrillRecord::of(report),
        Err(error) => DrillRecord::failed(&backup_id, error.to_string()),
    };
    if let Err(error) = super::drill_log::save(&ctx.state_dir, &unit, record) {
        tracing::warn!(%error, unit, "cannot record the drill's result");
    }
    result
}

async fn run_drill(
    ctx: &RestoreContext<'_>,
    point: RestorePoint,
    mut env_values: BTreeMap<String, String>,
    trusted: bool,
) -> Result<DrillReport, RestoreError> {
    let started = Instant::now();
    let stamp = crate::durable::stamp(jiff::Timestamp::now());
    let recipe = read_point_recipe(ctx, &point).await?;
    let needs = super::plan::privileges(&recipe);
    if !trusted && !needs.is_empty() {
        remove_recipe_copy(&recipe);
        return Err(RestoreError::Untrusted {
            unit: point.unit.clone(),
            items: needs,
        });
    }
    for (key, value) in env_file_values(&recipe.dir.join("compose")) {
        env_values.entry(key).or_insert(value);
    }
    let suffix = crate::backup::new_backup_id()
        .as_str()
        .rsplit('-')
        .next()
        .unwrap_or("0")
        .to_owned();
    let sandbox_name = format!("{}-drill-{suffix}", sanitize(&point.unit));
    let mut report = DrillReport {
        host: point.host.clone(),
        unit: point.unit.clone(),
        backup_id: point.backup_id.to_string(),
        sandbox: sandbox_name.clone(),
        passed: false,
        restore_seconds: 0.0,
        verify_seconds: 0.0,
        start_seconds: 0.0,
        total_seconds: 0.0,
        data: Vec::new(),
        mounts: Vec::new(),
        started: Vec::new(),
        dumps: Vec::new(),
        errors: Vec::new(),
        leftovers: Vec::new(),
    };
    let mut sandbox = Sandbox {
        dir: Some(ctx.work_dir.join(format!("drill-{stamp}-{suffix}"))),
        ..Sandbox::default()
    };
    let result = run(
        ctx,
        &point,
        &recipe,
        &env_values,
        &sandbox_name,
        &mut sandbox,
        &mut report,
    )
    .await;
    if let Err(error) = result {
        report.errors.push(error.to_string());
    }
    report.leftovers = clean_up(ctx, &sandbox).await;
    remove_recipe_copy(&recipe);
    report.passed = report.errors.is_empty() && report.leftovers.is_empty();
    report.total_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

async fn run(
    ctx: &RestoreContext<'_>,
    point: &RestorePoint,
    recipe: &super::Recipe,
    env_values: &BTreeMap<String, String>,
    sandbox_name: &str,
    sandbox: &mut Sandbox,
    report: &mut DrillReport,
) -> Result<(), RestoreError> {
    let unit = &recipe.manifest.unit;
    // Refuse before creating anything when secrets are missing.
    let mut inspects = Vec::new();
    let mut missing = Vec::new();
    for c in &unit.containers {
        let inspect = recipe.inspect(&c.name)?;
        for name in start::redacted_env(&inspect) {
            if !env_values.contains_key(&name) && !missing.contains(&name) {
                missing.push(name);
            }
        }
        inspects.push((c, inspect));
    }
    if !missing.is_empty() {
        return Err(RestoreError::RedactedEnv { names: missing });
    }
    let mut rewrite = Rewrite {
        drill: Some(sandbox_name.to_owned()),
        ..Rewrite::default()
    };
    let restore_started = Instant::now();
    create_networks(ctx, point, sandbox_name, &mut rewrite, sandbox).await?;
    let mut restored: Vec<(String, String, PathBuf)> = Vec::new();
    for (name, snap) in &point.volumes {
        check_interrupt(ctx)?;
        let sandbox_volume = format!("{sandbox_name}_{name}");
        ctx.engine
            .create_volume(sandbox_volume_request(&sandbox_volume, sandbox_name))
            .await?;
        sandbox.volumes.push(sandbox_volume.clone());
        let doc = ctx
            .engine
            .inspect_volume_json(&sandbox_volume)
            .await?
            .unwrap_or(Value::Null);
        let mountpoint = super::local_mountpoint(&sandbox_volume, &doc)?;
        ctx.repo
            .restore(snap.id.clone(), mountpoint.clone(), RestoreMode::Merge)
            .await?;
        rewrite.volumes.insert(name.clone(), sandbox_volume);
        restored.push((name.clone(), snap.id.clone(), mountpoint));
    }
    let dir = sandbox.dir.clone().unwrap_or_default();
    for (source, snap) in &point.binds {
        check_interrupt(ctx)?;
        let target = dir
            .join("binds")
            .join(source.strip_prefix("/").unwrap_or(source));
        ctx.repo
            .restore(snap.id.clone(), target.clone(), RestoreMode::EmptyOnly)
            .await?;
        rewrite.binds.insert(source.clone(), target.clone());
        restored.push((source.display().to_string(), snap.id.clone(), target));
    }
    report.restore_seconds = restore_started.elapsed().as_secs_f64();
    failpoint_before_verify(&restored).await;

    verify(ctx, restored, report).await?;

    let start_started = Instant::now();
    let order = &unit.start_order;
    inspects.sort_by_key(|(c, _)| {
        order
            .iter()
            .position(|o| *o == c.name)
            .unwrap_or(usize::MAX)
    });
    for (container, inspect) in inspects {
        check_interrupt(ctx)?;
        let name = format!("{sandbox_name}_{}", container.name);
        let recreation =
            start::recreation(&inspect, env_values, &rewrite, container.service.as_deref())?;
        report.mounts.extend(recreation.mounts.iter().cloned());
        let id = start::create(ctx.engine, &name, recreation).await?;
        sandbox.containers.push(id.clone());
        if container.state != ContainerState::Running {
            continue;
        }
        match crate::stop::start_and_wait(ctx.engine, &id, &name, ctx.health_timeout).await {
            Ok(None) => report.started.push(name.clone()),
            Ok(Some(warning)) => report.errors.push(warning),
            Err(error) => report.errors.push(error),
        }
        // A database is loaded before anything that writes to it starts (the start order
        // puts it first), as in a restore.
        if let Some(dump) = point.dumps.get(&container.name) {
            load_dump(ctx, (container, dump), &name, report).await;
        }
    }
    for (container, dump) in &point.dumps {
        if !report.dumps.iter().any(|d| d.container == *container) {
            report.errors.push(format!(
                "the {} dump of {container} was not loaded: its container was not started in the sandbox",
                dump.engine
            ));
        }
    }
    report.start_seconds = start_started.elapsed().as_secs_f64();
    Ok(())
}

/// Loads one dump of the point into its database in the sandbox (started on a fresh data
/// directory: a dumped database's volume is not in the point). A dump that does not load, or
/// is cut short, fails the drill.
async fn load_dump(
    ctx: &RestoreContext<'_>,
    (recorded, dump): (&super::recipe::RecordedContainer, &super::points::PointDump),
    name: &str,
    report: &mut DrillReport,
) {
    let container = recorded.name.as_str();
    let spec = &recorded
        .policy
        .dump()
        .filter(|s| s.engine == dump.engine)
        .cloned()
        .unwrap_or(crate::unit::DumpSpec {
            engine: dump.engine,
            database: None,
            path: None,
        });
    let started = Instant::now();
    let mut done = DrillDump {
        container: container.to_owned(),
        engine: dump.engine,
        loaded: false,
        bytes: 0,
        seconds: 0.0,
    };
    if report.started.iter().any(|s| s == name) {
        let loaded = async {
            crate::backup::dump::wait_ready(ctx.engine, name, name, spec, ctx.health_timeout)
                .await?;
            crate::backup::dump::load(ctx.engine, ctx.repo, name, name, spec, &dump.snapshot.id)
                .await
        };
        match loaded.await {
            Ok(loaded) => {
                done.loaded = true;
                done.bytes = loaded.bytes;
            }
            Err(error) => report.errors.push(format!(
                "the {} dump of {container} does not load: {error}",
                dump.engine
            )),
        }
    } else {
        report.errors.push(format!(
            "the {} dump of {container} was not loaded: its database did not start in the \
             sandbox",
            dump.engine
        ));
    }
    done.seconds = started.elapsed().as_secs_f64();
    report.dumps.push(done);
}

/// Compares each restored part with its snapshot; differences are the drill's errors.
async fn verify(
    ctx: &RestoreContext<'_>,
    restored: Vec<(String, String, PathBuf)>,
    report: &mut DrillReport,
) -> Result<(), RestoreError> {
    let verify_started = Instant::now();
    for (name, id, path) in restored {
        let v = ctx.repo.verify(id, path).await?;
        if !v.matches() {
            report.errors.push(format!(
                "{name}: {} files differ from the snapshot, {} extra",
                v.differing, v.additional
            ));
        }
        report.data.push(DrillData {
            name,
            verified: v.verified,
            differing: v.differing,
            additional: v.additional,
        });
    }
    report.verify_seconds = verify_started.elapsed().as_secs_f64();
    Ok(())
}

/// A plain local volume for the sandbox: the recorded driver and options (`o=bind,device=...`,
/// nfs) would mount the production data into it.
fn sandbox_volume_request(name: &str, sandbox_name: &str) -> bollard::models::VolumeCreateRequest {
    let mut request = super::volume_request(name, None);
    request.labels = Some([(DRILL_LABEL.to_owned(), sandbox_name.to_owned())].into());
    request
}

/// Test-only fault injection, compiled into debug builds only: when `KOPI_DOCKA_FAILPOINT` is
/// `drill-before-verify:<shell command>`, the command runs after the sandbox's data is restored
/// and before it is compared with the snapshots, with the restored paths (volume mountpoints,
/// bind copies) as its arguments. The tests corrupt a restored file there to prove that the
/// comparison fails the drill; nothing else can reach the sandbox at that exact moment, and no
/// user needs a hook that may change the data before it is checked.
#[cfg(debug_assertions)]
async fn failpoint_before_verify(restored: &[(String, String, PathBuf)]) {
    let Some(command) = std::env::var_os(super::data::FAILPOINT_ENV).and_then(|v| {
        v.to_string_lossy()
            .strip_prefix("drill-before-verify:")
            .map(str::to_owned)
    }) else {
        return;
    };
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .arg("failpoint")
        .args(restored.iter().map(|(_, _, path)| path))
        .status()
        .await;
    if !status.as_ref().is_ok_and(std::process::ExitStatus::success) {
        tracing::warn!(?status, "the drill-before-verify failpoint command failed");
    }
}

#[cfg(not(debug_assertions))]
#[allow(
    clippy::unused_async,
    reason = "the debug build's version runs a command"
)]
async fn failpoint_before_verify(_restored: &[(String, String, PathBuf)]) {}

fn check_interrupt(ctx: &RestoreContext<'_>) -> Result<(), RestoreError> {
    if *ctx.interrupt.borrow() {
        Err(RestoreError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sandbox copies of the unit's networks: same driver and flags, but no fixed subnet, bridge
/// name or static addresses, which would collide with the production network.
async fn create_networks(
    ctx: &RestoreContext<'_>,
    point: &RestorePoint,
    sandbox_name: &str,
    rewrite: &mut Rewrite,
    sandbox: &mut Sandbox,
) -> Result<(), RestoreError> {
    let Some(snap) = &point.networks else {
        return Ok(());
    };
    let docs = networks::read_recorded(
        ctx.repo,
        &snap.id,
        &ctx.work_dir,
        &format!("{sandbox_name}-networks"),
    )
    .await?;
    for doc in docs {
        let Some(name) = doc.get("Name").and_then(Value::as_str) else {
            continue;
        };
        let new = format!("{sandbox_name}_{name}");
        let mut request = networks::create_request(&doc, &new)?;
        request.ipam = None;
        request.options = None;
        request.labels = Some([(DRILL_LABEL.to_owned(), sandbox_name.to_owned())].into());
        ctx.engine.create_network(request).await?;
        sandbox.networks.push(new.clone());
        rewrite.networks.insert(name.to_owned(), new);
    }
    Ok(())
}

/// Removes everything the drill created; returns what could not be removed.
async fn clean_up(ctx: &RestoreContext<'_>, sandbox: &Sandbox) -> Vec<String> {
    let mut leftovers = Vec::new();
    for id in &sandbox.containers {
        if let Err(error) = ctx.engine.remove_container(id).await {
            leftovers.push(format!("container {id}: {error}"));
        }
    }
    for name in &sandbox.networks {
        if let Err(error) = ctx.engine.remove_network(name).await {
            leftovers.push(format!("network {name}: {error}"));
        }
    }
    for name in &sandbox.volumes {
        if let Err(error) = ctx.engine.remove_volume(name).await {
            leftovers.push(format!("volume {name}: {error}"));
        }
    }
    if let Some(dir) = &sandbox.dir
        && let Err(error) = data::remove_any(dir)
    {
        leftovers.push(format!("directory {}: {error}", dir.display()));
    }
    leftovers
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `NAME=value` lines of every file under `dir` (the recipe's `.env` and env files).
fn env_file_values(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !is_compose_file(&path)
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                out.extend(parse_env(&text));
            }
        }
    }
    out
}

fn is_compose_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml"))
}

/// Parses `NAME=value` lines (comments, `export`, and one level of quotes handled).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_parse() {
        let env = parse_env("# c\nA=1\nexport B=\"two words\"\nC='x=y'\n\nbad line\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x=y");
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn sandbox_names_are_docker_safe() {
        assert_eq!(sanitize("My_App.1"), "my-app-1");
    }
}
