//! `doctor`: every condition a backup depends on, checked now, each with a verdict and a line a
//! user can act on.
//!
//! A check that cannot be decided (no systemd on this host) is a warning, never a failure;
//! a failure means backups are not happening or will not work (engine down, repository
//! unreachable or wrong password, a unit overdue, no room). The original's doctor always
//! exited 0, so it could not be used from monitoring.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{LoadedConfig, RepositoryLocation};
use crate::docker::Engine;
use crate::history::{self, RunRecord};
use crate::lock::{Lock, LockError, LockMode, RUN_LOCK};
use crate::repo::{Repo, RepoError, RepoSettings};
use crate::unit::{self, Unit};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth knowing; backups still work.
    Warn,
    /// Backups are not happening or will fail.
    Fail,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`engine`, `repository`, `freshness nextcloud`, ...).
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// What was found, and what to do when it is not ok.
    pub message: String,
}

/// All checks, in order.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The checks.
    pub checks: Vec<Check>,
    /// True when no check failed.
    pub ok: bool,
}

/// Free space below this fails: a backup would stop units and then run out of room.
pub const FAIL_FREE_BYTES: u64 = crate::backup::MIN_STAGING_FREE_BYTES;
/// Free space below this is a warning.
pub const WARN_FREE_BYTES: u64 = 1 << 30;

fn check(name: impl Into<String>, status: Status, message: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status,
        message: message.into(),
    }
}

/// Runs every check against the loaded configuration. `unit_dir` is where systemd units are
/// looked for; `now` is the freshness reference.
pub async fn run(loaded: &LoadedConfig, unit_dir: &Path, now: jiff::Timestamp) -> DoctorReport {
    let mut checks = vec![check(
        "config",
        Status::Ok,
        loaded.path.as_ref().map_or_else(
            || "no config file; built-in defaults".to_owned(),
            |p| format!("{} is valid", p.display()),
        ),
    )];
    let engine = engine_check(loaded, &mut checks).await;
    let repo = repo_check(loaded, &mut checks).await;
    if let Some(repo) = &repo {
        foreign_lock_checks(repo, now, &mut checks).await;
    }
    space_checks(loaded, &mut checks);
    lock_checks(loaded, &mut checks);
    checks.push(systemd_check(unit_dir));
    monitoring_checks(loaded, &mut checks);
    checks.push(dr_check(loaded, now));

    let units: Option<Vec<Unit>> = match &engine {
        Some(engine) => match unit::discover_configured(engine, loaded).await {
            Ok(units) => Some(units),
            Err(error) => {
                checks.push(check("discovery", Status::Fail, error.to_string()));
                None
            }
        },
        None => None,
    };
    let records = records(loaded, repo.as_ref(), &mut checks).await;
    freshness_checks(loaded, units.as_deref(), &records, now, &mut checks);
    if let Some(units) = &units {
        for warning in unit::unmatched_config_names(&loaded.config, units) {
            checks.push(check("configured units", Status::Warn, warning));
        }
        for unit in units.iter().filter(|u| !u.policy_errors.is_empty()) {
            checks.push(check(
                format!("labels {}", unit.name),
                Status::Fail,
                format!(
                    "{}; the unit is not backed up until this is fixed",
                    unit.policy_errors.join("; ")
                ),
            ));
        }
        for unit in units.iter().filter(|u| u.coverage.has_gaps) {
            checks.push(check(
                format!("coverage {}", unit.name),
                Status::Warn,
                format!(
                    "{} mount(s) not protected; `kopi-docka units` lists them and why",
                    unit.coverage.summary.not_protected
                ),
            ));
        }
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    DoctorReport { checks, ok }
}

/// A disaster-recovery bundle older than this is a warning.
const DR_BUNDLE_MAX_AGE_DAYS: i64 = 7;

/// The newest bundle in `[disaster-recovery] bundle-dir`, and its age.
fn dr_check(loaded: &LoadedConfig, now: jiff::Timestamp) -> Check {
    let Some(dir) = &loaded.config.disaster_recovery.bundle_dir else {
        return check(
            "disaster-recovery bundle",
            Status::Warn,
            "no [disaster-recovery] bundle-dir: make sure you have a recent bundle elsewhere \
             (`kopi-docka disaster-recovery export`)",
        );
    };
    let newest = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("kopi-docka-dr-") && name.ends_with(".age")
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max()
    });
    let Some((modified, path)) = newest else {
        return check(
            "disaster-recovery bundle",
            Status::Warn,
            format!(
                "no bundle in {} yet; the next successful backup writes one",
                dir.display()
            ),
        );
    };
    let age_days = jiff::Timestamp::try_from(modified)
        .ok()
        .map_or(i64::MAX, |t| (now.as_second() - t.as_second()) / 86_400);
    let status = if age_days > DR_BUNDLE_MAX_AGE_DAYS {
        Status::Warn
    } else {
        Status::Ok
    };
    check(
        "disaster-recovery bundle",
        status,
        format!("{} is {age_days} day(s) old", path.display()),
    )
}

async fn engine_check(loaded: &LoadedConfig, checks: &mut Vec<Check>) -> Option<Engine> {
    let host = match loaded.engine_target() {
        Ok(host) => host,
        Err(error) => {
            checks.push(check("engine", Status::Fail, error.to_string()));
            return None;
        }
    };
    match Engine::connect(host).await {
        Ok(engine) => {
            let message = match engine.version().await {
                Ok((version, api)) => {
                    let identity = engine.identity();
                    let kind = match identity.kind {
                        crate::docker::EngineKind::Docker => "Docker",
                        crate::docker::EngineKind::Podman => "Podman",
                    };
                    let rootless = if identity.rootless { ", rootless" } else { "" };
                    format!(
                        "{kind} version {version} (API {api}{rootless}) at {}",
                        engine.endpoint()
                    )
                }
                Err(error) => format!(
                    "reachable at {}; version unknown: {error}",
                    engine.endpoint()
                ),
            };
            checks.push(check("engine", Status::Ok, message));
            Some(engine)
        }
        Err(error) => {
            checks.push(check(
                "engine",
                Status::Fail,
                first_line(&error.to_string()),
            ));
            None
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

async fn repo_check(loaded: &LoadedConfig, checks: &mut Vec<Check>) -> Option<Repo> {
    let settings = match RepoSettings::from_config(loaded) {
        Ok(settings) => settings,
        Err(error) => {
            checks.push(check("repository", Status::Fail, error.to_string()));
            return None;
        }
    };
    let location = settings.location.to_string();
    if crate::repo::sftp::is_sftp(&settings.backend) {
        let sftp = sftp_check(&settings).await;
        let failed = sftp.status == Status::Fail;
        checks.push(sftp);
        if failed {
            checks.push(check(
                "repository",
                Status::Fail,
                format!("{location} not opened: the SFTP server check failed"),
            ));
            return None;
        }
    }
    match Repo::open(settings, Arc::new(crate::progress::Silent)).await {
        Ok(repo) => {
            checks.push(check(
                "repository",
                Status::Ok,
                format!("{location} opens with the configured password"),
            ));
            Some(repo)
        }
        Err(RepoError::Lock(LockError::Busy { .. })) => {
            checks.push(check(
                "repository",
                Status::Warn,
                format!("{location} is in use by another kopi-docka process (a backup?); run doctor again when it has finished"),
            ));
            None
        }
        Err(error) => {
            checks.push(check("repository", Status::Fail, error.to_string()));
            None
        }
    }
}

/// restic refreshes a live lock every 5 minutes and calls one older than this stale.
const RESTIC_STALE_LOCK_MINUTES: i64 = 30;

/// Lock files in the repository's `locks/` (restic's, or another restic-format tool's; a
/// crashed `restic backup` leaves one behind). kopi-docka writes none and does not wait for
/// them, so none of them stops a backup; restic's `prune` and `check` refuse to run while one
/// is there, and a live exclusive one means restic is pruning. Each is explained: who, since
/// when, stale or live, and what to do.
async fn foreign_lock_checks(repo: &Repo, now: jiff::Timestamp, checks: &mut Vec<Check>) {
    let locks = match repo.foreign_locks().await {
        Ok(locks) => locks,
        Err(error) => {
            checks.push(check(
                "repository locks",
                Status::Warn,
                format!("cannot read the lock files in the repository: {error}"),
            ));
            return;
        }
    };
    let this_host = crate::repo::this_hostname();
    for lock in locks {
        let kind = if lock.exclusive {
            "exclusive (restic prune, check or forget)"
        } else {
            "shared (restic backup, restore or similar)"
        };
        let pid = lock.pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
        let since = lock
            .time
            .map_or_else(|| "an unknown time".to_owned(), |t| t.to_string());
        let who = format!(
            "{kind}, by {}@{} (pid {pid}), written {since}",
            lock.username, lock.hostname
        );
        let gone = lock.hostname == this_host
            && lock.pid.is_some_and(|p| {
                i32::try_from(p)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                    .is_none_or(|pid| rustix::process::test_kill_process(pid).is_err())
            });
        let old = lock.time.is_none_or(|t| {
            now.duration_since(t) > jiff::SignedDuration::from_mins(RESTIC_STALE_LOCK_MINUTES)
        });
        let (status, message) = if gone || old {
            let why = if gone {
                "its process no longer runs on this host"
            } else {
                "it was not refreshed for 30 minutes"
            };
            (
                Status::Warn,
                format!(
                    "stale lock {}: {who}; {why}, so the run that wrote it crashed or was \
                     killed. kopi-docka neither needs nor honours restic's lock files, so its \
                     backups go on; restic's prune and check refuse to run until it is gone: \
                     remove it with `restic unlock` (it removes stale locks only) on a host that \
                     can reach the repository",
                    lock.id
                ),
            )
        } else if lock.exclusive {
            (
                Status::Warn,
                format!(
                    "lock {}: {who}: restic is pruning or checking this repository now. \
                     kopi-docka does not wait for restic's locks: run no `kopi-docka admin \
                     repo prune` until it has finished",
                    lock.id
                ),
            )
        } else {
            (
                Status::Ok,
                format!(
                    "lock {}: {who}: a restic run in progress; it does not hinder kopi-docka",
                    lock.id
                ),
            )
        };
        checks.push(check("repository locks", status, message));
    }
}

/// An SFTP server: reachable, the pinned host key, the login, the sftp subsystem.
async fn sftp_check(settings: &RepoSettings) -> Check {
    let (spec, dir) = (settings.backend.clone(), settings.ssh_dir.clone());
    match tokio::task::spawn_blocking(move || crate::repo::sftp::verify(&spec, &dir)).await {
        Ok(Ok(v)) if v.pinned => check(
            "sftp server",
            Status::Ok,
            format!(
                "{} ({}) accepts the login as `{}`; its host key {} is the pinned one",
                v.resolved.host,
                v.resolved.address(),
                v.resolved.user,
                v.fingerprint
            ),
        ),
        Ok(Ok(v)) => check(
            "sftp server",
            Status::Warn,
            format!(
                "{} ({}) accepts the login as `{}`; its host key {} is trusted through \
                 ~/.ssh/known_hosts only: pin it with host-key in [repository.options] so a \
                 changed key is caught whatever that file says (`kopi-docka setup` shows it)",
                v.resolved.host,
                v.resolved.address(),
                v.resolved.user,
                v.fingerprint
            ),
        ),
        Ok(Err(error)) => check("sftp server", Status::Fail, error.to_string()),
        Err(error) => check("sftp server", Status::Fail, error.to_string()),
    }
}

fn space_checks(loaded: &LoadedConfig, checks: &mut Vec<Check>) {
    let mut places = vec![
        ("state", loaded.env.state_dir().path().to_owned()),
        ("cache", loaded.env.cache_dir()),
    ];
    if let RepositoryLocation::Local(path) = loaded.repository_location() {
        places.push(("repository", path));
    }
    for (what, path) in places {
        let name = format!("free space {what}");
        match crate::backup::free_bytes(&path) {
            Ok(free) => {
                let status = if free < FAIL_FREE_BYTES {
                    Status::Fail
                } else if free < WARN_FREE_BYTES {
                    Status::Warn
                } else {
                    Status::Ok
                };
                checks.push(check(
                    name,
                    status,
                    format!("{} free for {}", human(free), path.display()),
                ));
            }
            Err(error) => checks.push(check(
                name,
                Status::Warn,
                format!("cannot measure {}: {error}", path.display()),
            )),
        }
    }
}

/// `812.0 MiB`, `3.5 GiB`: the unit that fits, as every size kopi-docka shows.
fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

fn lock_checks(loaded: &LoadedConfig, checks: &mut Vec<Check>) {
    let state_dir = loaded.env.state_dir();
    let locks = state_dir.locks();
    let message = if locks.join(format!("{RUN_LOCK}.lock")).exists() {
        match Lock::try_acquire(&locks, RUN_LOCK, LockMode::Shared) {
            Ok(_) => "free".to_owned(),
            Err(error @ LockError::Busy { .. }) => format!("held: a backup is running ({error})"),
            Err(error) => format!("cannot check: {error}"),
        }
    } else {
        // Never create a lock file just to look.
        "free".to_owned()
    };
    let running = message.starts_with("held");
    checks.push(check("run lock", Status::Ok, message));
    let journal = state_dir.journal();
    match journal.pending() {
        Ok(pending) if pending.is_empty() => {}
        Ok(pending) => checks.push(check(
            "stopped containers",
            Status::Fail,
            format!(
                "{} left stopped by a killed run ({}); the next backup starts them, or now: \
                 `kopi-docka admin restart-stopped`",
                pending.len(),
                pending
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Err(error) => checks.push(check(
            "stopped containers",
            Status::Warn,
            format!("cannot read {}: {error}", journal.path().display()),
        )),
    }
    // A running backup's snapshots are in the journal too: only speak when none runs.
    if !running {
        snapshot_check(&state_dir, checks);
    }
}

/// Filesystem snapshots or clones a backup could not remove (or a killed one left).
fn snapshot_check(state_dir: &crate::state::StateDir, checks: &mut Vec<Check>) {
    let journal = state_dir.fs_snapshots();
    let (status, message) = match journal.pending() {
        Ok(pending) if pending.is_empty() => return,
        Ok(pending) => (
            Status::Warn,
            format!(
                "{} not removed ({}); they hold disk space until the next backup or \
                 `kopi-docka admin restart-stopped` removes them",
                pending.len(),
                pending
                    .iter()
                    .map(|e| e.path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(error) => (
            Status::Warn,
            format!("cannot read {}: {error}", journal.path().display()),
        ),
    };
    checks.push(check("filesystem snapshots", status, message));
}

fn systemd_check(unit_dir: &Path) -> Check {
    use crate::systemd::{self, units};
    let states = systemd::state(unit_dir);
    let installed: Vec<&str> = states
        .iter()
        .filter(|s| s.installed)
        .map(|s| s.name)
        .collect();
    if !systemd::booted() {
        return check(
            "schedule",
            Status::Warn,
            format!(
                "systemd does not run on this host; units installed: {}. Make sure something \
                 else runs `kopi-docka backup` (cron, or `kopi-docka admin service daemon`)",
                if installed.is_empty() {
                    "none".to_owned()
                } else {
                    installed.join(", ")
                }
            ),
        );
    }
    let enabled = |name: &str| {
        states
            .iter()
            .any(|s| s.name == name && s.enabled.as_deref() == Some("enabled"))
    };
    match (enabled(units::TIMER), enabled(units::DAEMON_SERVICE)) {
        (true, false) => check("schedule", Status::Ok, "kopi-docka.timer is enabled"),
        (false, true) => check(
            "schedule",
            Status::Ok,
            "kopi-docka.service (daemon) is enabled",
        ),
        (true, true) => check(
            "schedule",
            Status::Warn,
            "both kopi-docka.timer and the daemon are enabled: backups run twice; disable one",
        ),
        (false, false) => check(
            "schedule",
            Status::Warn,
            "neither kopi-docka.timer nor kopi-docka.service is enabled: nothing schedules \
             backups. `kopi-docka admin service write-units`, then \
             `systemctl enable --now kopi-docka.timer`",
        ),
    }
}

/// Notification targets and the healthcheck URL resolve (files private and readable,
/// variables set, URLs understood), and the Prometheus textfile's directory exists. Nothing is
/// sent: `kopi-docka admin notification test` does that.
fn monitoring_checks(loaded: &LoadedConfig, checks: &mut Vec<Check>) {
    let config = &loaded.config;
    let targets = &config.notifications.targets;
    let broken: Vec<String> = targets
        .iter()
        .filter_map(|t| crate::notify::Destination::resolve(t).err())
        .map(|e| e.to_string())
        .collect();
    if !broken.is_empty() {
        checks.push(check("notifications", Status::Fail, broken.join("; ")));
    } else if !targets.is_empty() {
        checks.push(check(
            "notifications",
            Status::Ok,
            format!(
                "{} target(s) configured; `kopi-docka admin notification test` sends a test",
                targets.len()
            ),
        ));
    }
    let m = &config.monitoring;
    match crate::notify::secret(
        m.healthcheck_url.as_deref(),
        m.healthcheck_url_file.as_deref(),
        m.healthcheck_url_env.as_deref(),
    ) {
        Ok(Some(_)) => checks.push(check("healthcheck", Status::Ok, "ping URL configured")),
        Ok(None) => {}
        Err(error) => checks.push(check("healthcheck", Status::Fail, error)),
    }
    if let Some(path) = &m.prometheus_textfile {
        let dir = path.as_path().parent().unwrap_or(Path::new("/"));
        if dir.is_dir() {
            checks.push(check("prometheus", Status::Ok, format!("textfile {path}")));
        } else {
            checks.push(check(
                "prometheus",
                Status::Fail,
                format!(
                    "the directory of {path} does not exist; create it or fix \
                     [monitoring] prometheus-textfile"
                ),
            ));
        }
    }
}

/// Local run records; the repository's when the local state is gone.
async fn records(
    loaded: &LoadedConfig,
    repo: Option<&Repo>,
    checks: &mut Vec<Check>,
) -> Vec<RunRecord> {
    let local = history::load_local_for(loaded);
    if !local.records.is_empty() {
        return local.records;
    }
    let Some(repo) = repo else {
        return Vec::new();
    };
    let scratch = loaded
        .env
        .cache_dir()
        .join(format!("doctor-{}", std::process::id()));
    let host = Some(repo.settings().hostname.clone());
    let loaded_records = history::load_from_repo(repo, host, &scratch).await;
    if let Err(error) = std::fs::remove_dir_all(&scratch)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::debug!(%error, "cannot remove the doctor scratch dir");
    }
    match loaded_records {
        Ok(found) => found.records,
        Err(error) => {
            checks.push(check(
                "history",
                Status::Warn,
                format!("no local run records, and the repository's cannot be read: {error}"),
            ));
            Vec::new()
        }
    }
}

fn freshness_checks(
    loaded: &LoadedConfig,
    units: Option<&[Unit]>,
    records: &[RunRecord],
    now: jiff::Timestamp,
    checks: &mut Vec<Check>,
) {
    // With an engine: the units that exist now (a removed stack is not overdue). Without one:
    // every unit the records know.
    let mut names: Vec<String> = match units {
        Some(units) => units.iter().map(|u| u.name.to_string()).collect(),
        None => records
            .iter()
            .flat_map(|r| r.units.iter().map(|u| u.name.clone()))
            .collect(),
    };
    names.sort();
    names.dedup();
    let overdue = history::overdue(records, &names, &loaded.config, now);
    let stats = history::stats(records);
    for name in names {
        let label = format!("freshness {name}");
        if let Some(late) = overdue.iter().find(|o| o.unit == name) {
            let message = match late.last_success {
                Some(t) => format!(
                    "OVERDUE: last successful backup {} ({} ago), threshold {}h",
                    local(t),
                    ago(now, t),
                    late.max_age_hours
                ),
                None => format!(
                    "OVERDUE: never backed up successfully (threshold {}h)",
                    late.max_age_hours
                ),
            };
            checks.push(check(label, Status::Fail, message));
        } else if let Some(t) = stats
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.last_success)
        {
            checks.push(check(
                label,
                Status::Ok,
                format!("last successful backup {} ({} ago)", local(t), ago(now, t)),
            ));
        }
    }
}

fn local(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn ago(now: jiff::Timestamp, then: jiff::Timestamp) -> String {
    let hours = now.duration_since(then).as_hours();
    if hours >= 48 {
        format!("{}d", hours / 24)
    } else {
        format!("{hours}h")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_space_uses_the_unit_that_fits() {
        assert_eq!(super::human(812 << 20), "812.0 MiB");
        assert_eq!(super::human(500), "500 B");
        assert_eq!(super::human((3 << 30) + (1 << 29)), "3.5 GiB");
        assert_eq!(super::human(5 << 40), "5.0 TiB");
    }
}
