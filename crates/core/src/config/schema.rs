//! The sections and keys of the configuration file, with their `Default`s.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::defaults;
use super::values::{
    AbsolutePath, DockerHost, EngineChoice, HookPoint, RepositoryLocation, RestoreState, Scope,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where backups are stored and how the repository is unlocked.
    #[serde(default)]
    pub repository: RepositoryConfig,
    /// How the container engine is reached.
    #[serde(default)]
    pub docker: DockerConfig,
    /// What discovery leaves out of backups.
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// How many snapshots to keep.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// How units are backed up.
    #[serde(default)]
    pub backup: BackupConfig,
    /// Commands run at fixed points of every unit's backup.
    #[serde(default)]
    pub hooks: HookSet,
    /// Settings of single units, by unit name (`[units.nextcloud.hooks]`).
    #[serde(default)]
    pub units: std::collections::BTreeMap<String, UnitConfig>,
    /// Disaster-recovery bundles refreshed after backup runs.
    #[serde(default)]
    pub disaster_recovery: DisasterRecoveryConfig,
    /// The daemon's own schedule (`kopi-docka admin service daemon`).
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// Freshness thresholds, healthcheck pings, Prometheus textfile.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// One message per run to webhooks, chat services or email.
    #[serde(default)]
    pub notifications: NotificationsConfig,
    /// The daemon's web dashboard and JSON API (off unless `listen` is set).
    #[serde(default)]
    pub web: WebConfig,
}

/// `[web]`: the dashboard the daemon serves (`kopi-docka admin service daemon`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WebConfig {
    /// Address and port to serve on (`127.0.0.1:8470`); unset: no dashboard.
    pub listen: Option<std::net::SocketAddr>,
    /// Allow a non-loopback `listen` address (behind a firewall or a TLS proxy on another
    /// host); without it the daemon refuses to start with one.
    pub allow_public: bool,
    /// A header set by a reverse proxy that has authenticated the user (`X-Forwarded-User`):
    /// requests from a loopback peer that carry it need no token.
    pub trusted_header: Option<String>,
}

/// `[notifications]`: where the one message per run goes, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Send when every unit succeeded.
    pub on_success: bool,
    /// Send when a unit failed or the run had errors.
    pub on_failure: bool,
    /// Send when every unit succeeded but with warnings (a gap in coverage, a slow health
    /// check).
    pub on_warning: bool,
    /// Seconds one delivery may take; a slow endpoint never holds up the next run.
    pub timeout_seconds: u32,
    /// Where to send: `[[notifications.targets]]`.
    pub targets: Vec<NotificationTarget>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            on_success: false,
            on_failure: true,
            on_warning: true,
            timeout_seconds: 10,
            targets: Vec::new(),
        }
    }
}

/// `[[notifications.targets]]`: one destination. The URL carries the secret (a token, a
/// password), so it may come from a file or an environment variable instead of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NotificationTarget {
    /// An Apprise-style URL (`ntfys://host/topic`, `tgram://token/chat`, `mailtos://...`) or
    /// an `http(s)://` endpoint (a JSON webhook unless `kind` says otherwise).
    pub url: Option<String>,
    /// A file (mode 0600) whose first line is the URL.
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    pub url_env: Option<String>,
    /// The service behind an `http(s)://` URL: `webhook` (default), `ntfy`, `gotify`,
    /// `discord`, `slack`, `telegram`.
    pub kind: Option<String>,
}

impl NotificationTarget {
    /// The configured URL source, for messages (never the URL itself: it holds secrets).
    pub fn describe(&self) -> String {
        match (&self.url, &self.url_file, &self.url_env) {
            (Some(url), _, _) => {
                format!("{}:// target", url.split("://").next().unwrap_or("?"))
            }
            (None, Some(file), _) => format!("URL from {}", file.display()),
            (None, None, Some(var)) => format!("URL from ${var}"),
            (None, None, None) => "target without a URL".into(),
        }
    }
}

/// `[daemon]`: what `kopi-docka admin service daemon` does on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// When to back up: an `OnCalendar` expression (`daily`, `*-*-* 02:00:00`) or `every 6h`.
    pub schedule: crate::schedule::Schedule,
    /// Units to back up; empty means all.
    pub units: Vec<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            schedule: defaults::schedule(),
            units: Vec::new(),
        }
    }
}

/// `[monitoring]`: freshness thresholds, pings to a healthcheck service, Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Hours after a unit's last successful backup when it counts as overdue (a daily backup
    /// plus slack for a slow run); `[units.<name>] max-age-hours` overrides it per unit.
    pub max_age_hours: u32,
    /// healthchecks.io-style ping URL: `/start` when a run starts, the URL itself on success,
    /// `/fail` on failure (with a short log as the body).
    pub healthcheck_url: Option<String>,
    /// A file (mode 0600) whose first line is the ping URL.
    pub healthcheck_url_file: Option<PathBuf>,
    /// An environment variable holding the ping URL.
    pub healthcheck_url_env: Option<String>,
    /// Prometheus textfile-collector file, rewritten atomically after every run.
    pub prometheus_textfile: Option<AbsolutePath>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            max_age_hours: 26,
            healthcheck_url: None,
            healthcheck_url_file: None,
            healthcheck_url_env: None,
            prometheus_textfile: None,
        }
    }
}

/// `[disaster-recovery]`: a fresh bundle after every backup run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DisasterRecoveryConfig {
    /// Write a bundle here after every run that backed up at least one unit; unset: off.
    pub bundle_dir: Option<PathBuf>,
    /// The passphrase of those bundles (required with `bundle-dir`; mode 0600).
    pub passphrase_file: Option<PathBuf>,
    /// How many bundles of this host to keep in `bundle-dir` (the newest).
    pub keep: u32,
    /// Include the SSH key of an SFTP repository.
    pub include_ssh_key: bool,
}

impl Default for DisasterRecoveryConfig {
    fn default() -> Self {
        Self {
            bundle_dir: None,
            passphrase_file: None,
            keep: 3,
            include_ssh_key: false,
        }
    }
}

impl HookSet {
    /// Every point with its hook (if configured), in run order.
    pub fn points(&self) -> [(HookPoint, Option<&Hook>); 9] {
        [
            (HookPoint::PreBackup, self.pre_backup.as_ref()),
            (HookPoint::PreStop, self.pre_stop.as_ref()),
            (HookPoint::PostStop, self.post_stop.as_ref()),
            (HookPoint::PreStart, self.pre_start.as_ref()),
            (HookPoint::PostStart, self.post_start.as_ref()),
            (HookPoint::Verify, self.verify.as_ref()),
            (HookPoint::PostBackup, self.post_backup.as_ref()),
            (HookPoint::PreRestore, self.pre_restore.as_ref()),
            (HookPoint::PostRestore, self.post_restore.as_ref()),
        ]
    }

    /// The hook configured for `point`.
    pub fn get(&self, point: HookPoint) -> Option<&Hook> {
        match point {
            HookPoint::PreBackup => self.pre_backup.as_ref(),
            HookPoint::PreStop => self.pre_stop.as_ref(),
            HookPoint::PostStop => self.post_stop.as_ref(),
            HookPoint::PreStart => self.pre_start.as_ref(),
            HookPoint::PostStart => self.post_start.as_ref(),
            HookPoint::Verify => self.verify.as_ref(),
            HookPoint::PostBackup => self.post_backup.as_ref(),
            HookPoint::PreRestore => self.pre_restore.as_ref(),
            HookPoint::PostRestore => self.post_restore.as_ref(),
        }
    }

    /// What is wrong with a hook of this set, if anything. `in_unit`: the set is a unit's
    /// (`[units.<name>.hooks]`), where hooks may run inside one of the unit's containers.
    pub(super) fn invalid(&self, in_unit: bool) -> Option<String> {
        self.points().into_iter().find_map(|(point, hook)| match hook? {
            Hook::Host(argv) => match argv.as_slice() {
                [] => Some(format!(
                    "{point} is empty; give [\"/absolute/program\", \"args\"...]"
                )),
                [program, ..] if !program.starts_with('/') => Some(format!(
                    "{point}: `{program}` is not an absolute path (hooks run without a shell or PATH lookup)"
                )),
                _ => None,
            },
            Hook::Container(hook) => {
                if !in_unit {
                    Some(format!(
                        "{point}: a hook inside a container belongs in a unit's table \
                         ([units.\"<name>\".hooks]), where its container is found"
                    ))
                } else if matches!(point, HookPoint::PreRestore | HookPoint::PostRestore) {
                    Some(format!(
                        "{point}: hooks inside a container run at backup points only; give a \
                         host argv here"
                    ))
                } else if hook.argv.is_empty() || hook.container.trim().is_empty() {
                    Some(format!(
                        "{point}: give {{ container = \"<service or container>\", argv = \
                         [\"program\", \"args\"...] }}"
                    ))
                } else {
                    None
                }
            }
        })
    }
}

/// `[units.<name>]`: settings of one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UnitConfig {
    /// Hooks of this unit; they run after the global ones of the same point.
    #[serde(default)]
    pub hooks: HookSet,
    /// Overrides `[monitoring] max-age-hours` for this unit.
    pub max_age_hours: Option<u32>,
    /// Exclude globs for every volume and bind of this unit (`cache/**`, `*.tmp`); added to
    /// those of each volume, bind and service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `[units.<name>.volumes.<volume>]`: one volume, by the name `kopi-docka units` lists.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub volumes: std::collections::BTreeMap<String, MountConfig>,
    /// `[units.<name>.binds."/host/path"]`: one bind mount, by its host path.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub binds: std::collections::BTreeMap<String, MountConfig>,
    /// `[units.<name>.services.<service>]`: one compose service (a standalone unit's container
    /// by its name). Each key set here wins over the container's `kopi-docka.*` label.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub services: std::collections::BTreeMap<String, ServiceConfig>,
    /// The systemd unit that runs this stack (`cryptpad-stack.service`; `.service` may be
    /// left out): the stack is stopped and started with `systemctl`, never through the engine.
    pub systemd_unit: Option<String>,
    /// Whose `systemctl --user` manager runs `systemd-unit`; without it, the engine's manager
    /// (the system manager for a rootful engine, the socket owner's for a rootless one).
    pub systemd_user: Option<String>,
    /// `embedded` (kopi-docka backs the unit up into its repository) or `command` (the
    /// user's own backup tool does, through `job` and `status`; kopi-docka only stops and
    /// starts the unit around it: `crate::backup::command_job`).
    #[serde(
        default,
        skip_serializing_if = "crate::backup::command_job::UnitEngine::is_embedded"
    )]
    pub engine: crate::backup::command_job::UnitEngine,
    /// `engine = "command"`: the commands that start the unit's backup job, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job: Vec<Argv>,
    /// `engine = "command"`: the command polled until its output says the job is done.
    pub status: Option<Argv>,
    /// `engine = "command"`: regex the status output matches once the tool is idle (default:
    /// Duplicati's `Active task: None` or `Empty`).
    pub idle_pattern: Option<String>,
    /// `engine = "command"`: seconds a job command may take to enqueue the job (default 25).
    pub job_timeout_seconds: Option<u32>,
    /// `engine = "command"`: seconds between two status polls (default 10).
    pub status_interval_seconds: Option<u32>,
    /// `engine = "command"`: longest wait for the job to finish, the unit stopped (default
    /// 21600, 6 hours).
    pub wait_timeout_seconds: Option<u32>,
    /// `previous` (default: start again only what ran before) or `always` (start the unit's
    /// containers, or its systemd unit, afterwards even if they were stopped). A container's
    /// `kopi-docka.restore-state` label wins for that container.
    pub restore_state: Option<RestoreState>,
    /// Seconds this unit gets to stop, instead of `[backup] stop-timeout-seconds` (the engine's
    /// stop timeout floor; for a systemd unit, how long `systemctl stop` is waited for).
    pub stop_timeout_seconds: Option<u32>,
    /// Seconds to wait for this unit to run again (healthy, or its systemd unit active),
    /// instead of `[backup] health-timeout-seconds`.
    pub start_timeout_seconds: Option<u32>,
    /// Socket units (`zoopa-ondemand@cryptpad.socket`) stopped with the service they trigger
    /// before the unit is stopped, so socket activation cannot start it during the cold pass;
    /// put back to their previous state afterwards, also when the backup fails. Run by the
    /// manager of `systemd-user` (else the engine's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze_sockets: Vec<String>,
    /// The secrets the saved configuration redacted (`NAME=value` lines, a file only its
    /// owner may read): a restore or drill of this unit reads them when it is not given
    /// `--env-file`, so a drill from the daemon or the dashboard can pass too.
    pub env_file: Option<PathBuf>,
}

/// `[units.<name>.volumes.<volume>]` and `[units.<name>.binds."<path>"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MountConfig {
    /// Exclude globs inside this volume or bind, relative to its root.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[units.<name>.services.<service>]`: the keys of the `kopi-docka.*` labels, from the
/// config. A key set here replaces the label's value; a key not set leaves the label in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServiceConfig {
    /// `stop`, `dump`, `skip` or `snapshot-live` (label `kopi-docka.policy`).
    pub policy: Option<crate::unit::policy::PolicyKind>,
    /// The dump engine (label `kopi-docka.dump`).
    pub dump: Option<crate::unit::DumpEngine>,
    /// PostgreSQL: one database (label `kopi-docka.dump.database`).
    pub dump_database: Option<String>,
    /// `SQLite`: the database file inside the container (label `kopi-docka.dump.path`).
    pub dump_path: Option<PathBuf>,
    /// Exclude globs for every volume and bind this service mounts (label
    /// `kopi-docka.exclude`); `[]` drops the label's.
    pub exclude: Option<Vec<String>>,
    /// Seconds this service gets to stop before it is killed, instead of `[backup]
    /// stop-timeout-seconds` (label `kopi-docka.stop-timeout`).
    pub stop_timeout_seconds: Option<u32>,
}

/// A command as an argv array: no shell, no interpolation. The program must be an absolute
/// path to a file that only its owner (root or the user running kopi-docka) may change.
pub type Argv = Vec<String>;

/// One hook: a host command (`["/usr/local/bin/x", "arg"]`), or a command inside one of the
/// unit's running containers (`{ container = "app", user = "www-data", argv = [...] }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Hook {
    /// Run on the host, without a shell.
    Host(Argv),
    /// Run through the engine's exec API in a container of the unit.
    Container(ContainerHook),
}

/// A hook run inside a container of the unit (`docker exec`, without a shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ContainerHook {
    /// The compose service or container name, within the unit.
    pub container: String,
    /// The user (name or uid\[:gid\]) it runs as; the container's user when unset.
    pub user: Option<String>,
    /// The command, looked up in the container's `PATH` (no shell).
    pub argv: Argv,
}

/// Commands for each hook point (`[hooks]` globally, `[units.<name>.hooks]` per unit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HookSet {
    /// Before anything else; failing aborts the unit (nothing is stopped).
    pub pre_backup: Option<Hook>,
    /// After the warm pass, before stopping; failing aborts the unit (nothing is stopped).
    pub pre_stop: Option<Hook>,
    /// After stopping, before the cold pass (e.g. unmount, flush).
    pub post_stop: Option<Hook>,
    /// After the cold pass, before starting (the unit is started whatever it returns).
    pub pre_start: Option<Hook>,
    /// After the unit runs again.
    pub post_start: Option<Hook>,
    /// After post-start: checks the unit works; failing marks the unit's backup failed (its
    /// restore point, taken while it was stopped, is kept).
    pub verify: Option<Hook>,
    /// At the very end; `KOPI_DOCKA_STATUS` says how it went.
    pub post_backup: Option<Hook>,
    /// Before a restore touches anything; failing aborts the restore.
    pub pre_restore: Option<Hook>,
    /// After a restore, with `KOPI_DOCKA_STATUS`.
    pub post_restore: Option<Hook>,
}

/// `[backup]`: how units are backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct BackupConfig {
    /// `minimal` (volumes and binds), `standard` (plus recipe and networks), `full` (plus the
    /// engine's configuration).
    pub scope: Scope,
    /// Snapshot while the unit still runs, so the cold pass only reads what changed.
    pub warm_pass: bool,
    /// `auto` (a filesystem snapshot when every mount of the unit can have one, else read),
    /// `snapshot` or `read`: how the cold pass reads a stopped unit (`docs/backup.md`).
    pub cold_pass: crate::fs_snapshot::ColdPassMode,
    /// Seconds a container gets to stop before it is killed.
    pub stop_timeout_seconds: u32,
    /// Seconds to wait for a restarted container to become healthy (a warning, not a failure).
    pub health_timeout_seconds: u32,
    /// Seconds a hook may run before it is killed (and counts as failed).
    pub hook_timeout_seconds: u32,
    /// Longest a unit may stay down: past it the cold pass is abandoned, the unit restarted and
    /// the backup reported failed. A hung repository never keeps a unit down.
    pub max_downtime_seconds: u32,
    /// Longest a whole backup run may take: past it the run is abandoned the way SIGTERM
    /// abandons it (the unit in progress is started again, no complete point is claimed for
    /// it, the units not reached are not backed up) and reported failed.
    pub run_time_limit_seconds: u32,
    /// Longest `compose up` may take when a restore starts a stack (image pulls included):
    /// past it compose (and everything it started) is killed, the restore reports it and the
    /// containers it had stopped are started again.
    pub compose_timeout_seconds: u32,
    /// Days each unit's daily log file (`<state>/logs/<unit>/<date>.log`) is kept; 0 writes
    /// none.
    pub unit_log_days: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            scope: Scope::Standard,
            warm_pass: true,
            cold_pass: crate::fs_snapshot::ColdPassMode::Auto,
            stop_timeout_seconds: 30,
            health_timeout_seconds: 120,
            max_downtime_seconds: 1800,
            run_time_limit_seconds: 86_400,
            hook_timeout_seconds: 300,
            compose_timeout_seconds: 1800,
            unit_log_days: 30,
        }
    }
}

impl BackupConfig {
    /// `health-timeout-seconds` as a duration.
    pub fn health_timeout(&self) -> Duration {
        seconds(self.health_timeout_seconds)
    }

    /// `hook-timeout-seconds` as a duration.
    pub fn hook_timeout(&self) -> Duration {
        seconds(self.hook_timeout_seconds)
    }

    /// `run-time-limit-seconds` as a duration.
    pub fn run_time_limit(&self) -> Duration {
        seconds(self.run_time_limit_seconds)
    }

    /// `compose-timeout-seconds` as a duration.
    pub fn compose_timeout(&self) -> Duration {
        seconds(self.compose_timeout_seconds)
    }

    /// `max-downtime-seconds` as a duration.
    pub fn max_downtime(&self) -> Duration {
        seconds(self.max_downtime_seconds)
    }
}

fn seconds(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

/// `[repository]`: location and password source of the restic-format repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Repository location; `None` means the per-user default local path.
    pub location: Option<RepositoryLocation>,
    /// File holding the repository password (relative paths are relative to the config file).
    pub password_file: Option<PathBuf>,
    /// Command (run by `sh -c`) whose first line of output is the repository password.
    pub password_command: Option<String>,
    /// Host name recorded in snapshots; `None` means this machine's hostname. Set it when a
    /// machine is replaced, so the new one continues the old one's history.
    pub hostname: Option<String>,
    /// zstd compression level for new repositories (`0` = zstd's default, 1 fastest ... 22).
    /// Level 1 keeps first backups as fast as restic's on small machines.
    #[serde(default = "defaults::compression")]
    pub compression: i32,
    /// File of `NAME=value` lines with the backend's credentials (`AWS_ACCESS_KEY_ID`,
    /// `AZURE_ACCOUNT_KEY`, ...; mode 0600). Relative paths are relative to the config file.
    pub env_file: Option<PathBuf>,
    /// The `rclone.conf` an `rclone:` repository uses (mode 0600); else rclone's default.
    pub rclone_config: Option<PathBuf>,
    /// Backend options passed to the remote backend as they are (endpoint, region, key files).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        Self {
            location: None,
            password_file: None,
            password_command: None,
            hostname: None,
            compression: defaults::compression(),
            env_file: None,
            rclone_config: None,
            options: std::collections::BTreeMap::new(),
        }
    }
}

/// `[retention]`: how many snapshots to keep, per host, unit, type and volume or bind.
/// Each `keep-*` keeps the newest snapshot of that many distinct periods (like restic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// The newest N snapshots.
    pub keep_last: u32,
    /// One per hour for the last N hours that have one.
    pub keep_hourly: u32,
    /// One per day for N days.
    pub keep_daily: u32,
    /// One per week for N weeks.
    pub keep_weekly: u32,
    /// One per month for N months.
    pub keep_monthly: u32,
    /// One per year for N years.
    pub keep_yearly: u32,
    /// Everything newer than this span before the newest snapshot (e.g. `"14d"`, `"2 weeks"`).
    pub keep_within: Option<KeepWithin>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        // The original tool's defaults: users upgrading keep the history they expect.
        Self {
            keep_last: 10,
            keep_hourly: 0,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            keep_yearly: 3,
            keep_within: None,
        }
    }
}

impl RetentionConfig {
    /// True when the policy keeps the newest snapshot of every group. `keep-within` alone does
    /// not: after a long outage it would forget everything.
    pub fn keeps_newest(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|n| *n > 0)
    }
}

/// A `keep-within` span such as `"14d"`, `"2 weeks"` or `"P1M"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeepWithin {
    text: String,
    span: jiff::Span,
}

impl KeepWithin {
    /// The span.
    pub fn span(&self) -> jiff::Span {
        self.span
    }
}

impl TryFrom<String> for KeepWithin {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let span: jiff::Span = value.parse().map_err(|e| {
            format!("`{value}` is not a time span like \"14d\" or \"2 weeks\": {e}")
        })?;
        if span.is_negative() || span.is_zero() {
            return Err(format!("keep-within `{value}` must be positive"));
        }
        Ok(Self { text: value, span })
    }
}

impl PartialEq for KeepWithin {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for KeepWithin {}

impl From<KeepWithin> for String {
    fn from(value: KeepWithin) -> Self {
        value.text
    }
}

/// `[docker]`: how the container engine is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DockerConfig {
    /// Engine endpoint; `None` means `$DOCKER_HOST`, else the first of the usual sockets
    /// that answers (see `engine`).
    pub host: Option<DockerHost>,
    /// Which engine's sockets are probed when no host is named.
    #[serde(default)]
    pub engine: EngineChoice,
    /// Run as root, back up this user's rootless engine: its sockets under
    /// `/run/user/UID` (and Podman's `/tmp/podman-run-UID`) are probed instead of root's.
    pub user: Option<String>,
    /// Speak TLS to a `tcp://` host and verify it against `cert-path/ca.pem`, presenting
    /// `cert.pem`/`key.pem`; `None` means `$DOCKER_TLS_VERIFY` decides.
    pub tls_verify: Option<bool>,
    /// Directory with `ca.pem`, `cert.pem`, `key.pem`; `None` means `$DOCKER_CERT_PATH`,
    /// else `~/.docker`.
    pub cert_path: Option<AbsolutePath>,
}

/// `[discovery]`: which bind mounts are never backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Host paths that belong to the operating system or the engine. Binds at or below them are
    /// reported as skipped. Setting this key replaces the default list.
    #[serde(default = "defaults::host_internal_paths")]
    pub host_internal_paths: Vec<AbsolutePath>,
    /// Extra host paths the user does not want backed up (media libraries, caches).
    #[serde(default)]
    pub exclude_paths: Vec<AbsolutePath>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            host_internal_paths: defaults::host_internal_paths(),
            exclude_paths: Vec::new(),
        }
    }
}
