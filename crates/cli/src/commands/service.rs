//! `kopi-docka admin service write-units | daemon | status`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kopi_docka_core::config::{LoadedConfig, RepositoryLocation};
use kopi_docka_core::docker::Engine;
use kopi_docka_core::history;
use kopi_docka_core::lock::{Lock, LockError, LockMode, RUN_LOCK};
use kopi_docka_core::schedule::Schedule;
use kopi_docka_core::stop;
use kopi_docka_core::systemd::notify::{Notifier, watchdog_interval};
use kopi_docka_core::systemd::{self, units};
use kopi_docka_core::unit::{self, MountRules};
use kopi_docka_core::{monitor, notify};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::UsageError;
use crate::cli::{DaemonArgs, GlobalArgs, JsonArgs, ServiceCommand, WriteUnitsArgs};
use crate::exit::ExitCode;
use crate::printer::Printer;

/// Runs an `admin service` subcommand.
pub async fn run(
    global: &GlobalArgs,
    command: ServiceCommand,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::WriteUnits(args) => write_units(global, &args, printer),
        ServiceCommand::Daemon(args) => daemon(global, &args).await,
        ServiceCommand::Status(args) => status(global, &args, printer),
    }
}

/// The lock only one daemon per state directory holds.
const DAEMON_LOCK: &str = "daemon";

fn write_units(
    global: &GlobalArgs,
    args: &WriteUnitsArgs,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    let on_calendar = timer_calendar(&loaded, args.schedule.as_deref())?;
    let binary = std::env::current_exe().context("finding the kopi-docka binary")?;
    let config = loaded
        .path
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("resolving the config path")?;
    let config_dir = config
        .clone()
        .unwrap_or_else(|| loaded.env.default_config_path())
        .parent()
        .map(PathBuf::from);
    let mut writable = vec![loaded.env.state_dir(), loaded.env.cache_dir()];
    writable.extend(config_dir);
    if let RepositoryLocation::Local(path) = loaded.repository_location() {
        writable.push(path);
    }
    let options = units::UnitOptions {
        binary,
        config,
        on_calendar,
        writable,
    };
    let rendered = units::render(&options);
    let written = units::write(&args.output_dir, &rendered, args.force)?;
    for (path, outcome) in &written {
        let verb = match outcome {
            units::WriteOutcome::Created => "created  ",
            units::WriteOutcome::Unchanged => "unchanged",
            units::WriteOutcome::Replaced => "replaced ",
        };
        printer.line(&format!("{verb} {}", path.display()));
    }
    if args.output_dir == std::path::Path::new(units::DEFAULT_UNIT_DIR) {
        printer.line(
            "next: systemctl daemon-reload && systemctl enable --now kopi-docka.timer\n\
             (or, instead of the timer: systemctl enable --now kopi-docka.service)",
        );
    }
    Ok(ExitCode::Ok)
}

/// The timer's `OnCalendar=`: `--schedule`, else `[daemon] schedule` when it is a calendar
/// expression, else the default. systemd understands more than the daemon's subset, so an
/// expression `systemd-analyze calendar` accepts is fine for the timer too.
fn timer_calendar(loaded: &LoadedConfig, flag: Option<&str>) -> anyhow::Result<String> {
    let Some(text) = flag else {
        return Ok(loaded.config.daemon.schedule.on_calendar().map_or_else(
            // `[daemon] schedule` is an interval: the timer keeps the built-in default.
            || kopi_docka_core::config::defaults::schedule().to_string(),
            str::to_owned,
        ));
    };
    match text.parse::<Schedule>() {
        Ok(schedule) if schedule.on_calendar().is_some() => Ok(text.to_owned()),
        Ok(_) => Err(UsageError(format!(
            "the timer needs a calendar expression (such as `daily` or `*-*-* 02:00:00`); \
             `{text}` is an interval, which only the daemon understands"
        ))
        .into()),
        Err(_) if systemd_accepts(text) => Ok(text.to_owned()),
        Err(error) => Err(UsageError(error.to_string()).into()),
    }
}

/// True when `systemd-analyze calendar` (if installed) accepts `expression`.
fn systemd_accepts(expression: &str) -> bool {
    std::process::Command::new("systemd-analyze")
        .args(["calendar", "--", expression])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the daemon runs with; rebuilt on SIGHUP.
struct DaemonSettings {
    loaded: LoadedConfig,
    schedule: Schedule,
    units: Vec<String>,
}

impl DaemonSettings {
    fn resolve(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<Self> {
        let loaded = super::load_config(global)?;
        let schedule = match &args.schedule {
            Some(text) => text
                .parse::<Schedule>()
                .map_err(|e| UsageError(e.to_string()))?,
            None => loaded.config.daemon.schedule.clone(),
        };
        let units = if args.units.is_empty() {
            loaded.config.daemon.units.clone()
        } else {
            args.units.clone()
        };
        Ok(Self {
            loaded,
            schedule,
            units,
        })
    }
}

/// `sd_notify` when systemd (or a test playing it) gave us a socket; a no-op otherwise.
#[derive(Clone)]
struct Systemd(Option<Arc<Notifier>>);

impl Systemd {
    fn from_env() -> anyhow::Result<Self> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(target) if !target.is_empty() => Ok(Self(Some(Arc::new(Notifier::new(&target)?)))),
            _ => Ok(Self(None)),
        }
    }

    fn notify(&self, state: &str) {
        if let Some(notifier) = &self.0
            && let Err(error) = notifier.notify(state)
        {
            // systemd gone or restarting: the daemon's own work goes on.
            tracing::warn!(%error, "cannot notify systemd");
        }
    }

    /// Pings the watchdog from its own task, so a long backup never starves it.
    fn spawn_watchdog(&self) {
        let interval = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        );
        let (Some(_), Some(every)) = (&self.0, interval) else {
            return;
        };
        let this = self.clone();
        tracing::debug!(?every, "watchdog pings");
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                this.notify("WATCHDOG=1");
            }
        });
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

async fn daemon(global: &GlobalArgs, args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    // Handlers first: a SIGTERM during start-up must not kill us half-way.
    let mut signals = Signals::install()?;
    let systemd = Systemd::from_env()?;
    let mut settings = DaemonSettings::resolve(global, args)?;
    let state_dir = settings.loaded.env.state_dir();
    let _daemon_lock =
        Lock::try_acquire(&state_dir.join("locks"), DAEMON_LOCK, LockMode::Exclusive)
            .context("another kopi-docka daemon uses this state directory")?;
    systemd.spawn_watchdog();
    recover_journal(&settings.loaded).await;
    systemd.notify("READY=1\nSTATUS=started");
    tracing::info!(schedule = %settings.schedule, "daemon started");
    // Missed backups are found even when backups stop running entirely: at start, after every
    // run, and every hour.
    check_freshness(&settings).await;
    let mut freshness = tokio::time::interval_at(
        tokio::time::Instant::now() + FRESHNESS_EVERY,
        FRESHNESS_EVERY,
    );

    let mut reload = false;
    // A run that failed before writing its record (engine down) still counts as a run: an
    // interval schedule must not turn into a retry loop.
    let mut last_attempt: Option<jiff::Timestamp> = None;
    let mut announced = None;
    loop {
        if std::mem::take(&mut reload) {
            settings = reloaded(global, args, settings);
            // Say it again, even when unchanged: the reload is visible in `systemctl status`.
            announced = None;
        }
        let now = jiff::Timestamp::now();
        let last = history::last_run_started(&settings.loaded.env.state_dir()).max(last_attempt);
        let next = settings
            .schedule
            .next_after(now, last, &jiff::tz::TimeZone::system());
        if announced != Some(next) {
            announced = Some(next);
            let local = next
                .to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z");
            systemd.notify(&format!("STATUS=idle; next backup {local}"));
            tracing::info!(next = %local, "waiting for the next backup");
        }
        // Sleeping is monotonic, schedules are wall-clock: wake up now and then, so a suspend
        // or a clock step is noticed within minutes (the loop recomputes the next run).
        let wait = Duration::try_from(now.duration_until(next))
            .unwrap_or(Duration::ZERO)
            .min(WAKE_UP_EVERY);
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                if jiff::Timestamp::now() < next {
                    continue;
                }
                last_attempt = Some(jiff::Timestamp::now());
                let outcome = run_backup(global, &settings, &mut signals, &systemd).await?;
                reload = outcome.reload;
                if outcome.stop {
                    break;
                }
                check_freshness(&settings).await;
            }
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            _ = signals.hup.recv() => reload = true,
            _ = freshness.tick() => check_freshness(&settings).await,
        }
    }
    systemd.notify("STOPPING=1\nSTATUS=stopped");
    tracing::info!("daemon stopped");
    Ok(ExitCode::Ok)
}

/// The longest the daemon sleeps before it looks at the wall clock again.
const WAKE_UP_EVERY: Duration = Duration::from_mins(5);

/// How often the daemon looks for overdue units between runs.
const FRESHNESS_EVERY: Duration = Duration::from_hours(1);

/// Alerts (once per overdue period) about units whose last success is too old.
async fn check_freshness(settings: &DaemonSettings) {
    let config = &settings.loaded.config;
    let state_dir = settings.loaded.env.state_dir();
    let units = daemon_units(settings).await;
    let Some((message, overdue)) =
        monitor::overdue_alert(config, &state_dir, &units, jiff::Timestamp::now())
    else {
        return;
    };
    for o in &overdue {
        tracing::error!(unit = %o.unit, max_age_hours = o.max_age_hours, "backup overdue");
    }
    if notify::wanted(&config.notifications, message.level) {
        for delivery in notify::send_all(&config.notifications, &message).await {
            if let Some(error) = delivery.error {
                tracing::warn!("overdue alert not delivered: {error}");
            }
        }
    }
    if let Err(error) = monitor::mark_alerted(&state_dir, &overdue) {
        tracing::warn!(%error, "cannot remember the overdue alert; it may repeat");
    }
}

/// The units the daemon is responsible for: its `--unit`/`[daemon] units`, else every unit on
/// the engine, else (engine down) every unit the run records know.
async fn daemon_units(settings: &DaemonSettings) -> Vec<String> {
    if !settings.units.is_empty() {
        return settings.units.clone();
    }
    let loaded = &settings.loaded;
    if let Ok(host) = loaded.docker_host()
        && let Ok(engine) = Engine::connect(host).await
    {
        let rules = MountRules::new(&loaded.config.discovery, &loaded.repository_location());
        match unit::discover(&engine, &rules).await {
            Ok(units) => return units.iter().map(|u| u.name.to_string()).collect(),
            Err(error) => tracing::warn!("freshness check: {error}"),
        }
    }
    let mut names: Vec<String> = history::load_local(&loaded.env.state_dir())
        .records
        .iter()
        .flat_map(|r| r.units.iter().map(|u| u.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The new settings after SIGHUP; the old ones when the new config is broken (said loudly).
fn reloaded(global: &GlobalArgs, args: &DaemonArgs, old: DaemonSettings) -> DaemonSettings {
    match DaemonSettings::resolve(global, args) {
        Ok(new) => {
            tracing::info!(schedule = %new.schedule, "configuration reloaded");
            new
        }
        Err(error) => {
            tracing::error!("configuration NOT reloaded, keeping the old one: {error:#}");
            old
        }
    }
}

struct RunOutcome {
    stop: bool,
    reload: bool,
}

/// Runs one `kopi-docka backup` as a child process. The daemon stays responsive meanwhile: the
/// watchdog task keeps pinging, SIGTERM is passed on (the backup restarts what it stopped, and
/// the daemon waits for it), SIGHUP is remembered for after the run.
async fn run_backup(
    global: &GlobalArgs,
    settings: &DaemonSettings,
    signals: &mut Signals,
    systemd: &Systemd,
) -> anyhow::Result<RunOutcome> {
    let exe = std::env::current_exe().context("finding the kopi-docka binary")?;
    let mut command = tokio::process::Command::new(exe);
    if let Some(config) = &settings.loaded.path {
        command.arg("--config").arg(config);
    }
    for _ in 0..global.verbose {
        command.arg("-v");
    }
    command.args(["backup", "--wait"]);
    for unit in &settings.units {
        command.args(["--unit", unit]);
    }
    // The backup is not the service's main process: it must not talk to systemd itself.
    command
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    let mut child = command.spawn().context("starting the backup")?;
    let started = jiff::Timestamp::now();
    systemd.notify("STATUS=backing up");
    tracing::info!("backup started");
    let mut outcome = RunOutcome {
        stop: false,
        reload: false,
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the backup")?,
            _ = signals.term.recv() => stop_child(&child, &mut outcome, systemd),
            _ = signals.int.recv() => stop_child(&child, &mut outcome, systemd),
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: the configuration is reloaded after this backup");
                outcome.reload = true;
            }
        }
    };
    let local = started
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M");
    let result = match status.code() {
        Some(0) => "ok".to_owned(),
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_owned(),
    };
    if status.success() {
        tracing::info!("backup finished: {result}");
    } else {
        tracing::warn!("backup finished: {result}");
    }
    systemd.notify(&format!("STATUS=last backup {local}: {result}"));
    Ok(outcome)
}

fn stop_child(child: &tokio::process::Child, outcome: &mut RunOutcome, systemd: &Systemd) {
    outcome.stop = true;
    systemd.notify(
        "STOPPING=1\nSTATUS=stopping: the running backup starts the containers it stopped first",
    );
    tracing::warn!("stopping: waiting for the backup to start the containers it stopped");
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
        && let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM)
    {
        tracing::warn!(%error, "cannot pass SIGTERM on to the backup");
    }
}

/// Starts containers a killed run left stopped, like every backup does first: the daemon may
/// be the first kopi-docka process after a crash or power cut.
async fn recover_journal(loaded: &LoadedConfig) {
    let engine = match loaded.docker_host() {
        Ok(host) => Engine::connect(host).await,
        Err(error) => {
            tracing::warn!("{error}");
            return;
        }
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(error) => {
            tracing::warn!("cannot check for containers left stopped: {error}");
            return;
        }
    };
    let health = Duration::from_secs(u64::from(loaded.config.backup.health_timeout_seconds));
    let report = match stop::recover_now(&engine, &loaded.env.state_dir(), health).await {
        Ok(report) => report,
        Err(LockError::Busy { .. }) => {
            tracing::info!("a backup is running; it starts the containers it stopped itself");
            return;
        }
        Err(error) => {
            tracing::warn!("{error}");
            return;
        }
    };
    for container in report.started {
        tracing::warn!(container = %container.name, "started a container a killed run left stopped");
    }
    for error in report.errors {
        tracing::error!("{error}");
    }
}

fn status(global: &GlobalArgs, _: &JsonArgs, printer: &Printer) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(global)?;
    printer.report(&service_status(&loaded))?;
    Ok(ExitCode::Ok)
}

/// `admin service status` as data.
#[derive(Debug, serde::Serialize)]
struct ServiceStatus {
    systemd: bool,
    units: Vec<systemd::UnitState>,
    last_run: Option<history::RunSummary>,
    lock: &'static str,
    daemon_lock: &'static str,
}

fn service_status(loaded: &LoadedConfig) -> ServiceStatus {
    let state_dir = loaded.env.state_dir();
    let locks = state_dir.join("locks");
    // A lock file that does not exist is free; never create one just to look.
    let held = |key: &str| {
        if !locks.join(format!("{key}.lock")).exists() {
            return "free";
        }
        match Lock::try_acquire(&locks, key, LockMode::Shared) {
            Ok(_) => "free",
            Err(LockError::Busy { .. }) => "held",
            Err(_) => "unknown",
        }
    };
    ServiceStatus {
        systemd: systemd::booted(),
        units: systemd::state(std::path::Path::new(units::DEFAULT_UNIT_DIR)),
        last_run: history::load_local(&state_dir)
            .records
            .last()
            .map(history::RunRecord::summary),
        lock: held(RUN_LOCK),
        daemon_lock: held(DAEMON_LOCK),
    }
}

impl crate::render::Render for ServiceStatus {
    fn human(&self) -> String {
        render_status(self)
    }
}

fn render_status(status: &ServiceStatus) -> String {
    // Writing into a String cannot fail.
    let mut out = String::new();
    let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_owned());
    if !status.systemd {
        out.push_str("systemd: not running on this host (unit states unknown)\n");
    }
    for unit in &status.units {
        let next = unit
            .next_run
            .map(|t| {
                format!(
                    ", next run {}",
                    crate::render::zoned(t).strftime("%Y-%m-%d %H:%M %Z")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<26} {}, {}, {}{next}",
            unit.name,
            if unit.installed {
                "installed"
            } else {
                "not installed"
            },
            or(&unit.enabled, "enabled: unknown"),
            or(&unit.active, "state unknown"),
        );
    }
    match &status.last_run {
        Some(run) => {
            let _ = writeln!(
                out,
                "last run: {} ({}): {}",
                crate::render::zoned(run.started_at).strftime("%Y-%m-%d %H:%M %Z"),
                run.run_id,
                run.result
            );
        }
        None => out.push_str("last run: none recorded on this host\n"),
    }
    let _ = writeln!(
        out,
        "run lock: {} (a backup is {}running)\ndaemon:   {}",
        status.lock,
        if status.lock == "held" { "" } else { "not " },
        if status.daemon_lock == "held" {
            "running"
        } else {
            "not running"
        }
    );
    out
}

#[cfg(test)]
mod status_tests;
