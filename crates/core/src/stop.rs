//! Stopping containers and always starting them again.
//!
//! Owns the one cleanup construct for "restart what we stopped": [`StoppedUnit`] is returned by
//! stopping and can only be consumed by [`StoppedUnit::restart`] (or, on purpose,
//! [`StoppedUnit::leave_stopped`]). Every stop is written to the journal first, so a process
//! killed in between leaves a record that [`recover`] turns back into running containers. Used
//! by backup, restore, the restore drill, the daemon and `admin restart-stopped` alike.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::RestoreState;
use crate::docker::{Engine, RunState};
use crate::lock::journal::{Journal, StoppedContainer};
use crate::lock::{Lock, LockError, LockMode, RUN_LOCK};
use crate::state::StateDir;
use crate::systemd::control::{Manager, Service};
use crate::unit::{ContainerState, Health, Unit};

/// One container, by the id the engine knows and the name people know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
}

/// A container to stop, with the unit it is journaled under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopTarget {
    /// The container.
    pub container: ContainerRef,
    /// The unit it belongs to (the journal says so, for messages after a crash).
    pub unit: String,
    /// Its own stop timeout floor (`kopi-docka.stop-timeout`, the config's service table),
    /// instead of the one the stop is given.
    pub stop_timeout: Option<u32>,
    /// The systemd unit that stops and starts it instead of the engine, while that unit runs.
    pub systemd: Option<Service>,
    /// It runs with `--rm`: stopped through the engine it would be deleted.
    pub auto_remove: bool,
    /// Why it is a target: it runs, it is to be started afterwards, or it is a frozen socket.
    pub role: TargetRole,
}

/// What happens to a [`StopTarget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRole {
    /// It runs: stopped now, started again afterwards.
    Running,
    /// It is stopped (or its systemd unit inactive) and its restore state is `always`: not
    /// stopped, but started afterwards.
    StartAfter,
    /// A socket unit of `freeze-sockets`, or the service it triggers (`systemd` names it):
    /// stopped before the unit when active, started again afterwards only if it was.
    Frozen,
}

/// How one unit is stopped and started: `[units.<name>]` settings over `[backup]`'s.
#[derive(Debug, Clone, Default)]
pub struct UnitStop {
    /// The stop timeout floor of its containers (`stop-timeout-seconds`).
    pub stop_timeout: u32,
    /// The unit's own `stop-timeout-seconds`: also how long `systemctl stop` is waited for
    /// (else systemd's own stop timeout governs, with three minutes' slack).
    pub own_stop_timeout: Option<u32>,
    /// The unit's `start-timeout-seconds`: how long to wait for a container to be healthy or a
    /// systemd unit to be active (else `health-timeout-seconds`, plus slack for systemd).
    pub start_timeout: Option<Duration>,
    /// The unit's `restore-state` (a container's label wins).
    pub restore_state: RestoreState,
    /// `freeze-sockets`: socket units stopped before the unit (with what they trigger).
    pub freeze_sockets: Vec<String>,
    /// Whose manager runs the frozen sockets (`systemd-user`).
    pub systemd_user: Option<String>,
}

/// A container the engine had to kill: it did not stop on its stop signal within its timeout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KilledContainer {
    /// Container name.
    pub name: String,
    /// How long its stop took (all of it the timeout).
    pub seconds: f64,
    /// The timeout it was given: the larger of its own and `stop-timeout-seconds`.
    pub timeout_seconds: u32,
}

impl KilledContainer {
    /// What to do about it, for reports.
    pub fn hint(&self) -> String {
        format!(
            "{} ignored its stop signal and was killed after {:.1}s (timeout {}s); its main \
             process (a shell or server as PID 1?) does not handle SIGTERM: add `init: true` \
             to its compose service, or set `stop_signal` to the signal it stops on",
            self.name, self.seconds, self.timeout_seconds
        )
    }
}

/// A unit whose running containers we stopped. Consume it with [`StoppedUnit::restart`].
#[must_use = "a stopped unit must be restarted"]
#[derive(Debug)]
pub struct StoppedUnit {
    /// Stopped containers in start order.
    stopped: Vec<StoppedContainer>,
    first_stop: Option<Instant>,
    /// Containers the engine had to kill.
    killed: Vec<KilledContainer>,
    /// The host-wide locks of the stopped containers, released once they run again.
    host_locks: Vec<crate::lock::host::ContainerLock>,
    /// The unit's own start timeout ([`UnitStop::start_timeout`]).
    start_timeout: Option<Duration>,
}

/// What restarting reported.
#[derive(Debug, Default)]
pub struct RestartReport {
    /// First stop to last start.
    pub downtime: Option<Duration>,
    /// Containers that would not start.
    pub errors: Vec<String>,
    /// Unhealthy or slow containers.
    pub warnings: Vec<String>,
    /// Containers the engine had to kill when they were stopped.
    pub killed: Vec<KilledContainer>,
}

impl StoppedUnit {
    /// Journals, then stops the unit's running containers in reverse start order, except
    /// those whose policy keeps them running (`dump`, `skip`; [`crate::unit::Policy`]).
    /// `timeout` (or a container's own `kopi-docka.stop-timeout`) is a floor: a container's
    /// own longer engine stop timeout is kept. On a failed stop,
    /// the containers already stopped come back with the error, to be restarted.
    ///
    /// With restore state `always` ([`UnitStop::restore_state`], a container's label), the
    /// unit's stopped containers (or inactive systemd unit) are journaled too and started
    /// afterwards. The sockets of [`UnitStop::freeze_sockets`] and the services they trigger
    /// are stopped first, when active, and started again last.
    pub async fn stop(
        engine: &Engine,
        journal: &Journal,
        unit: &Unit,
        how: &UnitStop,
    ) -> Result<Self, (Self, String)> {
        let target = |c: &crate::unit::Container, role| StopTarget {
            container: ContainerRef {
                id: c.id.clone(),
                name: c.name.clone(),
            },
            unit: unit.name.to_string(),
            stop_timeout: c.stop_timeout,
            systemd: c.systemd.clone(),
            auto_remove: c.auto_remove,
            role,
        };
        // The running ones first: a systemd unit they share is asked about (and stopped) for
        // them, before a stopped member could make it a start-only entry.
        let mut targets: Vec<StopTarget> = unit
            .containers
            .iter()
            .filter(|c| c.state == ContainerState::Running && c.policy.stops())
            .map(|c| target(c, TargetRole::Running))
            .collect();
        targets.extend(
            unit.containers
                .iter()
                .filter(|c| {
                    c.state != ContainerState::Running
                        && c.policy.stops()
                        && c.restore_state.unwrap_or(how.restore_state) == RestoreState::Always
                })
                .map(|c| target(c, TargetRole::StartAfter)),
        );
        match frozen_targets(engine, unit, how).await {
            Ok(frozen) => targets.extend(frozen),
            Err(error) => {
                return Err((Self::empty(how), format!("{error}; nothing was stopped")));
            }
        }
        // All of the unit's containers, stopped ones too: one that another run has just
        // stopped looks stopped here, and is not ours to read while that run restarts it.
        let all = unit
            .containers
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        Self::stop_locked(engine, journal, targets, all, (how.stop_timeout, how)).await
    }

    fn empty(how: &UnitStop) -> Self {
        Self {
            stopped: Vec::new(),
            first_stop: None,
            killed: Vec::new(),
            host_locks: Vec::new(),
            start_timeout: how.start_timeout,
        }
    }

    /// Journals, then stops `containers` (given in start order) in reverse order. Same
    /// contract as [`StoppedUnit::stop`].
    pub async fn stop_containers(
        engine: &Engine,
        journal: &Journal,
        containers: Vec<StopTarget>,
        timeout: u32,
    ) -> Result<Self, (Self, String)> {
        let refs: Vec<ContainerRef> = containers.iter().map(|t| t.container.clone()).collect();
        let ids = refs
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect();
        let how = UnitStop {
            stop_timeout: timeout,
            ..UnitStop::default()
        };
        Self::stop_locked(engine, journal, containers, ids, (timeout, &how)).await
    }

    /// Takes the host-wide lock of each of `lock` (see [`crate::lock::host`]), then journals
    /// and stops `containers`.
    async fn stop_locked(
        engine: &Engine,
        journal: &Journal,
        containers: Vec<StopTarget>,
        lock: Vec<(&str, &str)>,
        (timeout, how): (u32, &UnitStop),
    ) -> Result<Self, (Self, String)> {
        let mut this = Self::empty(how);
        // Another kopi-docka run on this host (another user, another state directory) may be
        // backing up the same containers: none is stopped unless all are ours.
        for (id, name) in lock {
            match crate::lock::host::try_lock_container(engine.endpoint(), id) {
                Ok(lock) => this.host_locks.push(lock),
                Err(error) => {
                    return Err((this, format!("{name}: {error}; nothing was stopped")));
                }
            }
        }
        let (to_stop, steps) = match through_systemd(engine, containers, timeout).await {
            Ok(planned) => planned,
            Err(error) => return Err((this, format!("{error}; nothing was stopped"))),
        };
        if to_stop.is_empty() {
            return Ok(this);
        }
        if let Err(error) = journal.record(&to_stop) {
            return Err((
                this,
                format!(
                    "cannot write the journal {} (nothing was stopped): {error}",
                    journal.path().display()
                ),
            ));
        }
        for (
            container,
            Step {
                timeout,
                stops,
                with,
            },
        ) in to_stop.iter().zip(steps).rev()
        {
            // Recorded before the call: a stop that fails half-way may still have stopped it.
            this.stopped.insert(0, container.clone());
            if !stops {
                // Restore state `always`: not running now, started afterwards.
                continue;
            }
            this.first_stop.get_or_insert_with(Instant::now);
            if let Some(service) = &container.systemd {
                let wait = how
                    .own_stop_timeout
                    .map(|s| Duration::from_secs(u64::from(s)));
                if let Err(error) = stop_service(engine, service, (timeout, wait), &with).await {
                    clear_untouched(journal, &to_stop, &this.stopped);
                    return Err((this, error));
                }
                continue;
            }
            match engine.stop(&container.id, timeout).await {
                Ok(outcome) => {
                    if outcome.killed {
                        let killed = KilledContainer {
                            name: container.name.clone(),
                            seconds: outcome.seconds,
                            timeout_seconds: outcome.timeout_secs,
                        };
                        tracing::warn!("{}", killed.hint());
                        this.killed.push(killed);
                    }
                }
                Err(error) => {
                    // The engine may still be stopping it (a request that failed is not a
                    // stop that finished): wait for it before anyone starts it again, or the
                    // late kill would leave it stopped with no journal entry.
                    match engine
                        .wait_stopped(&container.id, crate::docker::stop_client_timeout(timeout))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(
                            container = %container.name,
                            "still running after a failed stop"
                        ),
                        Err(e) => tracing::warn!(container = %container.name, %e, "cannot inspect"),
                    }
                    clear_untouched(journal, &to_stop, &this.stopped);
                    return Err((this, format!("stopping {}: {error}", container.name)));
                }
            }
            tracing::info!(container = %container.name, "stopped");
        }
        Ok(this)
    }

    /// Starts every container we stopped, in start order, and waits for each to be healthy.
    pub async fn restart(
        self,
        engine: &Engine,
        journal: &Journal,
        health_timeout: Duration,
    ) -> RestartReport {
        let mut report = RestartReport {
            killed: self.killed.clone(),
            ..RestartReport::default()
        };
        let mut last_start = None;
        // The unit's own start timeout is the whole wait, for systemd too; the run's leaves
        // systemd slack on top (its own start timeout governs).
        let (health_timeout, systemd_wait) = match self.start_timeout {
            Some(own) => (own, own),
            None => (health_timeout, health_timeout + Duration::from_mins(3)),
        };
        for container in &self.stopped {
            let started = match &container.systemd {
                Some(service) => start_service(engine, service, systemd_wait)
                    .await
                    .map(|()| None),
                None => {
                    start_and_wait(engine, &container.id, &container.name, health_timeout).await
                }
            };
            match started {
                Ok(warning) => {
                    last_start = Some(Instant::now());
                    report.warnings.extend(warning);
                    if let Err(error) = journal.clear(&container.id) {
                        report
                            .warnings
                            .push(format!("cannot update the journal: {error}"));
                    }
                    crate::failpoint::hold("hold-after-start", &container.name).await;
                }
                Err(error) => report.errors.push(error),
            }
        }
        report.downtime = self
            .first_stop
            .zip(last_start)
            .map(|(a, b)| b.duration_since(a));
        report
    }

    /// Leaves the stopped containers stopped on purpose (`restore --no-start`, an interrupted
    /// restore): they leave the journal, so no later run starts them. Returns their names.
    pub fn leave_stopped(self, journal: &Journal) -> Vec<String> {
        for container in &self.stopped {
            if let Err(error) = journal.clear(&container.id) {
                tracing::warn!(%error, container = %container.name, "cannot update the journal");
            }
        }
        self.stopped.into_iter().map(|c| c.name).collect()
    }

    /// Containers the engine had to kill when they were stopped.
    pub fn killed(&self) -> &[KilledContainer] {
        &self.killed
    }

    /// Names of the stopped containers, in start order.
    pub fn names(&self) -> Vec<String> {
        self.stopped.iter().map(|c| c.name.clone()).collect()
    }
}

/// The ones never asked to stop still run: they leave the journal.
fn clear_untouched(journal: &Journal, to_stop: &[StoppedContainer], stopped: &[StoppedContainer]) {
    for untouched in to_stop
        .iter()
        .filter(|c| !stopped.iter().any(|s| s.id == c.id))
    {
        if let Err(e) = journal.clear(&untouched.id) {
            tracing::warn!(%e, "cannot update the journal");
        }
    }
}

/// The journal entries of `targets` (in start order), each with its stop timeout and whether
/// it is stopped now (a [`TargetRole::StartAfter`] entry is only started afterwards): a
/// container whose systemd unit runs is replaced by one entry for that unit (stopped with
/// `systemctl`, which takes its containers along); the others are stopped through the engine.
/// A unit that runs is started again afterwards, one that did not is left alone (restore
/// state `previous`) or only started (`always`). Refused (nothing stopped) when the engine
/// would have to stop a container it then deletes (`--rm`), or when a configured unit or a
/// frozen socket does not exist.
async fn through_systemd(
    engine: &Engine,
    targets: Vec<StopTarget>,
    timeout: u32,
) -> Result<(Vec<StoppedContainer>, Vec<Step>), String> {
    let now = jiff::Timestamp::now();
    let mut out: Vec<StoppedContainer> = Vec::new();
    // The stop timeout of each entry (a container's own floor, else the run's), and whether
    // it is stopped.
    let mut steps: Vec<Step> = Vec::new();
    // The step of the frozen socket whose services follow: they are stopped with it.
    let mut socket_step: Option<usize> = None;
    // Per systemd unit: whether it runs, and whether it has its entry; asked once.
    let mut asked: Vec<(Service, bool, bool)> = Vec::new();
    for (rank, target) in targets.into_iter().enumerate() {
        let entry = |id: String, name: String, systemd: Option<Service>| StoppedContainer {
            id,
            name,
            unit: target.unit.clone(),
            start_rank: rank,
            recorded_at: now,
            systemd,
        };
        let own_timeout = target.stop_timeout.unwrap_or(timeout);
        let Some(service) = &target.systemd else {
            out.push(entry(
                target.container.id.clone(),
                target.container.name.clone(),
                None,
            ));
            steps.push(Step::new(
                own_timeout,
                target.role != TargetRole::StartAfter,
            ));
            continue;
        };
        let (runs, has_entry) =
            if let Some((_, runs, has)) = asked.iter().find(|(s, _, _)| s == service) {
                (*runs, *has)
            } else {
                let runs = unit_runs(engine, service, &target).await?;
                asked.push((service.clone(), runs, false));
                (runs, false)
            };
        let unit_entry = || {
            entry(
                service.journal_id(),
                service.unit.clone(),
                Some(service.clone()),
            )
        };
        let container_entry = || {
            entry(
                target.container.id.clone(),
                target.container.name.clone(),
                None,
            )
        };
        let mut has_entry_now = has_entry;
        match (target.role, runs) {
            _ if has_entry => {}
            (TargetRole::Frozen, true) if service.unit.ends_with(".socket") => {
                out.push(unit_entry());
                socket_step = Some(steps.len());
                steps.push(Step::new(own_timeout, true));
                has_entry_now = true;
            }
            (TargetRole::Frozen, true) if socket_step.is_some() => {
                // Stopped in one transaction with its socket (which comes first in start
                // order, so it is started first): stopped on its own first, a request in
                // between would activate it again.
                out.push(unit_entry());
                if let Some(step) = socket_step.and_then(|i| steps.get_mut(i)) {
                    step.with.push(service.unit.clone());
                }
                steps.push(Step::new(own_timeout, false));
                has_entry_now = true;
            }
            (_, true) => {
                // It runs: stopped now (its containers go with it), started afterwards.
                out.push(unit_entry());
                steps.push(Step::new(own_timeout, true));
                has_entry_now = true;
            }
            (TargetRole::Running, false) => {
                out.push(container_entry());
                steps.push(Step::new(own_timeout, true));
            }
            // Inactive before: inactive after.
            (TargetRole::Frozen, false) => {
                if service.unit.ends_with(".socket") {
                    socket_step = None;
                }
            }
            (TargetRole::StartAfter, false) => {
                // `always`: the unit is started afterwards if the manager has it, else the
                // container through the engine.
                if loaded(engine, service).await {
                    out.push(unit_entry());
                    has_entry_now = true;
                } else {
                    out.push(container_entry());
                }
                steps.push(Step::new(own_timeout, false));
            }
        }
        if let Some(seen) = asked.iter_mut().find(|(s, _, _)| s == service) {
            seen.2 = has_entry_now;
        }
    }
    Ok((out, steps))
}

/// How one journal entry is stopped.
struct Step {
    /// Its stop timeout.
    timeout: u32,
    /// Stopped now (else only started afterwards, or stopped with another entry).
    stops: bool,
    /// Units of the same manager stopped in the same `systemctl stop` (a frozen socket's
    /// services).
    with: Vec<String>,
}

impl Step {
    fn new(timeout: u32, stops: bool) -> Self {
        Self {
            timeout,
            stops,
            with: Vec::new(),
        }
    }
}

/// Whether the manager of `service` has it loaded.
async fn loaded(engine: &Engine, service: &Service) -> bool {
    match Manager::of(service, engine) {
        Ok(manager) => manager.state(&service.unit).await.is_ok_and(|s| s.loaded),
        Err(_) => false,
    }
}

/// The socket units of `freeze-sockets` and the services they trigger, as targets: each
/// socket before its services in start order (systemd refuses to start a socket whose
/// service already runs); [`through_systemd`] has them stopped together.
async fn frozen_targets(
    engine: &Engine,
    unit: &Unit,
    how: &UnitStop,
) -> Result<Vec<StopTarget>, String> {
    let mut targets = Vec::new();
    for socket in &how.freeze_sockets {
        let service = |name: &str| Service {
            unit: name.to_owned(),
            user: how.systemd_user.clone(),
            configured: true,
        };
        let target = |service: Service| StopTarget {
            container: ContainerRef {
                id: service.journal_id(),
                name: service.unit.clone(),
            },
            unit: unit.name.to_string(),
            stop_timeout: None,
            systemd: Some(service),
            auto_remove: false,
            role: TargetRole::Frozen,
        };
        let manager = Manager::of(&service(socket), engine)
            .map_err(|e| format!("freeze-sockets {socket}: {e}"))?;
        let triggered = manager
            .triggers(socket)
            .await
            .map_err(|e| format!("freeze-sockets {socket}: {e}"))?;
        targets.push(target(service(socket)));
        targets.extend(triggered.iter().map(|t| target(service(t))));
    }
    Ok(targets)
}

/// Whether `service` runs, so that `systemctl stop` stops `target`: `false` when the engine
/// may stop the container itself: the unit is unknown or inactive (a label may name a unit
/// that does not exist: podman-compose puts one on every container) and the container
/// survives a stop. For a frozen socket or a start-only target: whether the unit is up.
async fn unit_runs(
    engine: &Engine,
    service: &Service,
    target: &StopTarget,
) -> Result<bool, String> {
    let state = match Manager::of(service, engine) {
        Ok(manager) => manager.state(&service.unit).await.map(|s| (manager, s)),
        Err(error) => Err(error),
    };
    let user_flag = |manager: &Manager| {
        if matches!(manager, Manager::User { .. }) {
            " --user"
        } else {
            ""
        }
    };
    match state {
        Ok((_, state)) if state.loaded && state.is_up() => Ok(true),
        Ok((manager, state)) if target.role == TargetRole::Frozen && !state.loaded => Err(format!(
            "{}: socket {} (freeze-sockets) is not loaded in {manager}: check the name \
                 (`systemctl{} list-units --all '*.socket'`) and `systemd-user`",
            target.unit,
            service.unit,
            user_flag(&manager)
        )),
        Ok((_, state)) if target.role != TargetRole::Running && state.loaded => Ok(false),
        Ok((manager, _)) if service.configured => Err(format!(
            "{}: systemd unit {} ([units] systemd-unit) is not loaded in {manager}: check the \
             name (`systemctl{} list-units`) and `systemd-user`",
            target.unit,
            service.unit,
            user_flag(&manager)
        )),
        Ok((manager, state)) if target.auto_remove && target.role == TargetRole::Running => {
            Err(format!(
                "container {} runs with --rm and belongs to systemd unit {}, which is {} in \
                 {manager}: stopped through the engine it would be deleted. Start it through \
                 its unit (`systemctl start {}`) or run it without --rm",
                target.container.name,
                service.unit,
                if state.loaded {
                    state.active.as_str()
                } else {
                    "not loaded"
                },
                service.unit
            ))
        }
        Err(error) if service.configured || target.auto_remove => Err(format!(
            "container {}{} belongs to systemd unit {}, which cannot be asked: {error}",
            target.container.name,
            if target.auto_remove {
                " (--rm: stopped through the engine it would be deleted)"
            } else {
                ""
            },
            service.unit
        )),
        Ok(_) | Err(_) => {
            tracing::debug!(container = %target.container.name, unit = %service.unit,
                "its systemd unit does not run it; stopped through the engine");
            Ok(false)
        }
    }
}

/// `systemctl stop`, waited for `wait` (the unit's own stop timeout) or, without one, the
/// stop timeout plus slack.
async fn stop_service(
    engine: &Engine,
    service: &Service,
    (timeout, wait): (u32, Option<Duration>),
    with: &[String],
) -> Result<(), String> {
    let manager = Manager::of(service, engine)?;
    // Without the unit's own timeout, systemd's (TimeoutStopSec, 90 s by default) governs;
    // ours only catches a manager that does not answer.
    let limit =
        wait.unwrap_or_else(|| Duration::from_secs(u64::from(timeout)) + Duration::from_mins(3));
    let units: Vec<&str> = std::iter::once(service.unit.as_str())
        .chain(with.iter().map(String::as_str))
        .collect();
    manager.stop(&units, limit).await?;
    for unit in units {
        tracing::info!(unit, manager = %manager, "stopped through systemd");
    }
    Ok(())
}

/// `systemctl start`, waited for `wait`; then the unit must be active.
async fn start_service(engine: &Engine, service: &Service, wait: Duration) -> Result<(), String> {
    let started = match Manager::of(service, engine) {
        Ok(manager) => manager.start(&service.unit, wait).await.map(|()| manager),
        Err(error) => Err(error),
    };
    match started {
        Ok(manager) => {
            tracing::info!(unit = %service.unit, manager = %manager, "started through systemd");
            Ok(())
        }
        Err(error) => Err(format!(
            "systemd unit {} did not start: {error}; it stays in the journal and the next run \
             (or `kopi-docka admin restart-stopped`) starts it",
            service.unit
        )),
    }
}

/// Starts one container and waits until it runs and, with a healthcheck, is healthy. Returns a
/// warning when it is not healthy in time.
pub(crate) async fn start_and_wait(
    engine: &Engine,
    id: &str,
    name: &str,
    health_timeout: Duration,
) -> Result<Option<String>, String> {
    // A start can fail transiently (the engine busy after a long stop): try a few times.
    let mut attempt = 0;
    loop {
        match engine.start(id).await {
            Ok(()) => break,
            Err(error) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(container = %name, %error, attempt, "start failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                return Err(format!(
                    "{name} did not start: {error}; it stays in the journal and the next run \
                     (or `kopi-docka admin restart-stopped`) starts it"
                ));
            }
        }
    }
    tracing::info!(container = %name, "started");
    let deadline = Instant::now() + health_timeout;
    loop {
        match engine.state(id).await {
            Ok(Some(RunState {
                running: true,
                health: None | Some(Health::Healthy),
            })) => return Ok(None),
            Ok(Some(RunState {
                running: true,
                health: Some(health),
            })) if Instant::now() >= deadline => {
                return Ok(Some(format!(
                    "{name} is {health} {}s after its start",
                    health_timeout.as_secs()
                )));
            }
            Ok(Some(RunState { running: false, .. })) if Instant::now() >= deadline => {
                return Ok(Some(format!("{name} was started but is not running")));
            }
            Ok(None) => return Err(format!("{name} disappeared after its start")),
            Err(error) => return Err(format!("{name}: {error}")),
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// What starting the journal's containers did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    /// Containers a killed run had left stopped and that run again now.
    pub started: Vec<ContainerRef>,
    /// Containers that could not be started, or a journal that could not be read or updated.
    pub errors: Vec<String>,
    /// Volumes and binds an interrupted restore had swapped, rolled back before any container
    /// was started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<std::path::PathBuf>,
    /// Filesystem snapshots and clones a killed backup had left, removed now
    /// ([`crate::fs_snapshot::recover`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots_removed: Vec<std::path::PathBuf>,
}

impl RecoveryReport {
    /// Nothing was repaired and nothing failed.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.errors.is_empty() && self.rolled_back.is_empty()
    }

    /// Names of the containers started, in the order they were started.
    pub fn started_names(&self) -> Vec<String> {
        self.started.iter().map(|c| c.name.clone()).collect()
    }
}

/// Starts every container left in the journal of `state_dir` by a run that died (SIGKILL,
/// power cut). `_run_lock` is the held run lock: only its holder may touch the journal.
pub async fn recover(
    engine: &Engine,
    state_dir: &StateDir,
    _run_lock: &Lock,
    health_timeout: Duration,
) -> RecoveryReport {
    // First the data, then the containers: none may start on a half-restored unit.
    let swaps = crate::restore::swaps::recover(state_dir);
    if !swaps.errors.is_empty() {
        let mut errors = swaps.errors;
        errors.push(
            "containers an interrupted restore stopped stay stopped until its volumes and binds \
             are put back"
                .into(),
        );
        return RecoveryReport {
            started: Vec::new(),
            errors,
            rolled_back: swaps.rolled_back,
            snapshots_removed: Vec::new(),
        };
    }
    let journal = state_dir.journal();
    let pending = match journal.pending() {
        Ok(pending) => pending,
        Err(error) => {
            return RecoveryReport {
                started: Vec::new(),
                errors: vec![format!("cannot read {}: {error}", journal.path().display())],
                rolled_back: swaps.rolled_back,
                snapshots_removed: Vec::new(),
            };
        }
    };
    let mut report = RecoveryReport {
        rolled_back: swaps.rolled_back,
        ..RecoveryReport::default()
    };
    for container in pending {
        // Another run on this host holds it now: it starts it itself; ours stays journaled
        // until a later recovery finds it running.
        let _host_lock =
            match crate::lock::host::try_lock_container(engine.endpoint(), &container.id) {
                Ok(lock) => lock,
                Err(error) => {
                    report.errors.push(format!("{}: {error}", container.name));
                    continue;
                }
            };
        if let Some(service) = &container.systemd {
            recover_service(
                engine,
                &journal,
                &container,
                service,
                health_timeout,
                &mut report,
            )
            .await;
            continue;
        }
        match engine.state(&container.id).await {
            Ok(None) => {
                tracing::warn!(container = %container.name, "journaled container no longer exists");
                if let Err(error) = journal.clear(&container.id) {
                    report
                        .errors
                        .push(format!("cannot update the journal: {error}"));
                }
                continue;
            }
            Ok(Some(_)) => {}
            Err(error) => {
                report.errors.push(format!("{}: {error}", container.name));
                continue;
            }
        }
        match start_and_wait(engine, &container.id, &container.name, health_timeout).await {
            Ok(_) => {
                report.started.push(ContainerRef {
                    id: container.id.clone(),
                    name: container.name.clone(),
                });
                if let Err(error) = journal.clear(&container.id) {
                    report
                        .errors
                        .push(format!("cannot update the journal: {error}"));
                }
            }
            Err(error) => report.errors.push(error),
        }
    }
    // Then what a killed backup had frozen: the containers run again first.
    let journal = state_dir.fs_snapshots();
    let removed = tokio::task::spawn_blocking(move || crate::fs_snapshot::recover(&journal))
        .await
        .unwrap_or_else(|panic| crate::fs_snapshot::Recovered {
            removed: Vec::new(),
            errors: vec![format!("removing left snapshots: internal error: {panic}")],
        });
    for path in &removed.removed {
        tracing::warn!(snapshot = %path.display(), "removed a snapshot a previous run left");
    }
    report.snapshots_removed = removed.removed;
    report.errors.extend(removed.errors);
    report
}

/// Starts a journaled systemd unit again ([`recover`]).
async fn recover_service(
    engine: &Engine,
    journal: &Journal,
    entry: &StoppedContainer,
    service: &Service,
    health_timeout: Duration,
    report: &mut RecoveryReport,
) {
    match start_service(engine, service, health_timeout + Duration::from_mins(3)).await {
        Ok(()) => {
            report.started.push(ContainerRef {
                id: entry.id.clone(),
                name: entry.name.clone(),
            });
            if let Err(error) = journal.clear(&entry.id) {
                report
                    .errors
                    .push(format!("cannot update the journal: {error}"));
            }
        }
        Err(error) => report.errors.push(error),
    }
}

/// [`recover`] before a run acts on units: takes the run lock (without waiting; an interrupt
/// ends the attempt) and hands it to the caller with what was repaired.
pub async fn lock_and_recover(
    engine: &Engine,
    state_dir: &StateDir,
    interrupt: &tokio::sync::watch::Receiver<bool>,
    health_timeout: Duration,
) -> Result<(Lock, RecoveryReport), LockError> {
    let lock = crate::lock::run_lock(state_dir, false, interrupt).await?;
    let report = recover(engine, state_dir, &lock, health_timeout).await;
    Ok((lock, report))
}

/// [`recover`] when no run is going on: takes the run lock without waiting (a running backup
/// starts what it stopped itself, so `Busy` is an answer, not a failure) and releases it after.
pub async fn recover_now(
    engine: &Engine,
    state_dir: &StateDir,
    health_timeout: Duration,
) -> Result<RecoveryReport, LockError> {
    let lock = Lock::try_acquire(&state_dir.locks(), RUN_LOCK, LockMode::Exclusive)?;
    Ok(recover(engine, state_dir, &lock, health_timeout).await)
}
