//! The configuration file: its typed shape, its defaults, and where it is looked up.
//!
//! Rules this module owns:
//! - Every key is typed and kebab-case; unknown keys are errors with file, line and key, so a
//!   typo never silently turns a feature off.
//! - Defaults live here and only here (`Default` impls and [`defaults`]).
//! - Lookup order: `--config PATH`, then `$KOPI_DOCKA_CONFIG`, then the per-user default
//!   ([`Environment::default_config_path`]). An explicitly named file must exist; the default file
//!   may be absent (built-in defaults apply). A file that exists but cannot be read is an error,
//!   never a reason to fall back to another config.
//! - Loading never creates or modifies a file.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Every configured point with its argv, in run order.
    pub fn points(&self) -> [(&'static str, Option<&Argv>); 8] {
        [
            ("pre-backup", self.pre_backup.as_ref()),
            ("pre-stop", self.pre_stop.as_ref()),
            ("post-stop", self.post_stop.as_ref()),
            ("pre-start", self.pre_start.as_ref()),
            ("post-start", self.post_start.as_ref()),
            ("post-backup", self.post_backup.as_ref()),
            ("pre-restore", self.pre_restore.as_ref()),
            ("post-restore", self.post_restore.as_ref()),
        ]
    }

    fn invalid(&self) -> Option<String> {
        self.points().into_iter().find_map(|(point, argv)| match argv.map(Vec::as_slice) {
            Some([]) => Some(format!("{point} is empty; give [\"/absolute/program\", \"args\"...]")),
            Some([program, ..]) if !program.starts_with('/') => Some(format!(
                "{point}: `{program}` is not an absolute path (hooks run without a shell or PATH lookup)"
            )),
            _ => None,
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
}

/// A command as an argv array: no shell, no interpolation. The program must be an absolute
/// path to a file that only its owner (root or the user running kopi-docka) may change.
pub type Argv = Vec<String>;

/// Commands for each hook point (`[hooks]` globally, `[units.<name>.hooks]` per unit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HookSet {
    /// Before anything else; failing aborts the unit (nothing is stopped).
    pub pre_backup: Option<Argv>,
    /// After the warm pass, before stopping; failing aborts the unit (nothing is stopped).
    pub pre_stop: Option<Argv>,
    /// After stopping, before the cold pass (e.g. unmount, flush).
    pub post_stop: Option<Argv>,
    /// After the cold pass, before starting (the unit is started whatever it returns).
    pub pre_start: Option<Argv>,
    /// After the unit runs again.
    pub post_start: Option<Argv>,
    /// At the very end; `KOPI_DOCKA_STATUS` says how it went.
    pub post_backup: Option<Argv>,
    /// Before a restore touches anything; failing aborts the restore.
    pub pre_restore: Option<Argv>,
    /// After a restore, with `KOPI_DOCKA_STATUS`.
    pub post_restore: Option<Argv>,
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
    /// Seconds a container gets to stop before it is killed.
    pub stop_timeout_seconds: u32,
    /// Seconds to wait for a restarted container to become healthy (a warning, not a failure).
    pub health_timeout_seconds: u32,
    /// Seconds a hook may run before it is killed (and counts as failed).
    pub hook_timeout_seconds: u32,
    /// Longest a unit may stay down: past it the cold pass is abandoned, the unit restarted and
    /// the backup reported failed. A hung repository never keeps a unit down.
    pub max_downtime_seconds: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            scope: Scope::Standard,
            warm_pass: true,
            stop_timeout_seconds: 30,
            health_timeout_seconds: 120,
            max_downtime_seconds: 1800,
            hook_timeout_seconds: 300,
        }
    }
}

impl BackupConfig {
    /// [`Self::health_timeout_seconds`] as a duration.
    pub fn health_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.health_timeout_seconds))
    }
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
    /// Engine endpoint; `None` means `$DOCKER_HOST`, else `unix:///var/run/docker.sock`.
    pub host: Option<DockerHost>,
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

/// The built-in defaults that are not plain `Default` values.
pub mod defaults {
    use super::AbsolutePath;

    /// Host-internal paths: the OS tree, runtime state and the engine's own data. `/` itself is
    /// always skipped whatever this list says (it would include the repository).
    pub const HOST_INTERNAL_PATHS: &[&str] = &[
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/var/run",
        "/etc",
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/boot",
        "/var/lib/docker",
        "/var/lib/containers",
        "/var/log",
    ];

    /// [`HOST_INTERNAL_PATHS`] as typed paths.
    pub fn host_internal_paths() -> Vec<AbsolutePath> {
        HOST_INTERNAL_PATHS
            .iter()
            .map(|p| AbsolutePath(p.into()))
            .collect()
    }

    /// zstd level: 1 is on par with restic's speed on 2 cores, with a few percent less saving
    /// than 3 (measured in the rustic spike).
    pub fn compression() -> i32 {
        1
    }

    /// Repository path for root.
    pub const ROOT_REPOSITORY: &str = "/var/lib/kopi-docka/repository";
    /// State directory for root.
    pub const ROOT_STATE: &str = "/var/lib/kopi-docka";
    /// Cache directory for root.
    pub const ROOT_CACHE: &str = "/var/cache/kopi-docka";
    /// Config file for root.
    pub const ROOT_CONFIG: &str = "/etc/kopi-docka/config.toml";
    /// Default engine socket.
    pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

    /// The daemon's and the timer's default schedule: every day at 02:00 local time
    /// (`*-*-* 02:00:00`), when containers are least busy on most home servers.
    pub fn schedule() -> crate::schedule::Schedule {
        crate::schedule::Schedule::daily_at(2, 0)
    }
}

/// An absolute, lexically normalised host path (no `.`/`..`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsolutePath(PathBuf);

impl AbsolutePath {
    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// True when `path` is this path or lies below it (whole components, so `/etc` does not
    /// contain `/etcetera`).
    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.0)
    }
}

impl TryFrom<String> for AbsolutePath {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let path = Path::new(&value);
        if !path.is_absolute() {
            return Err(format!(
                "`{value}` is not an absolute path (start it with `/`)"
            ));
        }
        Ok(Self(normalize(path)))
    }
}

impl From<AbsolutePath> for String {
    fn from(value: AbsolutePath) -> Self {
        value.0.to_string_lossy().into_owned()
    }
}

impl fmt::Display for AbsolutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

/// Lexically normalises an absolute path: drops `.`, resolves `..`, removes duplicate and
/// trailing slashes. Does not touch the filesystem (the path may not exist here).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where the repository lives. Remote kinds are parsed now so a config written today stays valid;
/// their backends arrive with the repository engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RepositoryLocation {
    /// A directory on this machine (`/path` or `local:/path`).
    Local(PathBuf),
    /// A remote backend, with the part after `scheme:` kept verbatim.
    Remote {
        /// Which backend.
        backend: RemoteBackend,
        /// Everything after the scheme prefix, e.g. `user@host:/srv/repo` for sftp.
        target: String,
    },
}

/// Remote repository backends (the restic location prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteBackend {
    /// `sftp:user@host:/path`
    Sftp,
    /// `s3:endpoint/bucket/path`
    S3,
    /// `b2:bucket:path`
    B2,
    /// `azure:container:/path`
    Azure,
    /// `gs:bucket:/path`
    Gcs,
    /// `rclone:remote:path`
    Rclone,
    /// `rest:http://host:8000/repo`
    Rest,
}

impl RemoteBackend {
    const ALL: [Self; 7] = [
        Self::Sftp,
        Self::S3,
        Self::B2,
        Self::Azure,
        Self::Gcs,
        Self::Rclone,
        Self::Rest,
    ];

    /// The location prefix, without the colon.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Sftp => "sftp",
            Self::S3 => "s3",
            Self::B2 => "b2",
            Self::Azure => "azure",
            Self::Gcs => "gs",
            Self::Rclone => "rclone",
            Self::Rest => "rest",
        }
    }
}

impl TryFrom<String> for RepositoryLocation {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let path = value.strip_prefix("local:").unwrap_or(&value);
        if path.starts_with('/') {
            return Ok(Self::Local(normalize(Path::new(path))));
        }
        if let Some((scheme, target)) = value.split_once(':')
            && let Some(backend) = RemoteBackend::ALL
                .into_iter()
                .find(|b| b.scheme() == scheme)
        {
            if target.is_empty() {
                return Err(format!(
                    "`{value}` names the {scheme} backend but no target"
                ));
            }
            return Ok(Self::Remote {
                backend,
                target: target.to_owned(),
            });
        }
        let schemes: Vec<_> = RemoteBackend::ALL
            .iter()
            .map(|b| format!("{}:", b.scheme()))
            .collect();
        Err(format!(
            "`{value}` is neither an absolute local path nor a known backend location ({})",
            schemes.join(", ")
        ))
    }
}

impl From<RepositoryLocation> for String {
    fn from(value: RepositoryLocation) -> Self {
        value.to_string()
    }
}

impl fmt::Display for RepositoryLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => path.display().fmt(f),
            Self::Remote { backend, target } => write!(f, "{}:{target}", backend.scheme()),
        }
    }
}

/// A container engine endpoint: a unix socket or plain TCP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DockerHost {
    /// `unix:///path/to/socket` (a bare absolute path is accepted too).
    Unix(PathBuf),
    /// `tcp://host:port` or `http://host:port` (unencrypted; use on loopback or a socket proxy).
    Tcp(String),
}

impl TryFrom<String> for DockerHost {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if let Some(path) = value.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Self::Unix(PathBuf::from(path)));
            }
        } else if value.starts_with('/') {
            return Ok(Self::Unix(PathBuf::from(&value)));
        } else if let Some(addr) = value
            .strip_prefix("tcp://")
            .or_else(|| value.strip_prefix("http://"))
            && !addr.is_empty()
        {
            return Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        Err(format!(
            "`{value}` is not a supported engine address: use unix:///path/to/docker.sock or \
             tcp://host:port"
        ))
    }
}

impl From<DockerHost> for String {
    fn from(value: DockerHost) -> Self {
        value.to_string()
    }
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

/// How much of a unit a backup includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Volumes and binds only.
    Minimal,
    /// Plus recipe and networks.
    Standard,
    /// Plus the engine's own configuration.
    Full,
}

impl Scope {
    /// The word in the config and in snapshot tags.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Standard => "standard",
            Self::Full => "full",
        }
    }

    /// The scope a config or tag word names.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        [Self::Minimal, Self::Standard, Self::Full]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts about the running process that decide default paths. Captured once so that the
/// rest of the code (and the tests) never read the process environment directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Effective uid is 0.
    pub is_root: bool,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$XDG_DATA_HOME`.
    pub xdg_data_home: Option<PathBuf>,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<PathBuf>,
    /// `$XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<PathBuf>,
    /// `$KOPI_DOCKA_CONFIG`.
    pub config_env: Option<PathBuf>,
    /// `$KOPI_DOCKA_STATE_DIR`: overrides the state directory.
    pub state_dir_env: Option<PathBuf>,
    /// `$KOPI_DOCKA_CACHE_DIR`: overrides the cache directory.
    pub cache_dir_env: Option<PathBuf>,
    /// `$DOCKER_HOST`.
    pub docker_host_env: Option<String>,
}

impl Environment {
    /// Reads the current process's uid and environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            is_root: rustix::process::geteuid().is_root(),
            home: var("HOME").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_data_home: var("XDG_DATA_HOME").map(PathBuf::from),
            xdg_state_home: var("XDG_STATE_HOME").map(PathBuf::from),
            xdg_cache_home: var("XDG_CACHE_HOME").map(PathBuf::from),
            config_env: var("KOPI_DOCKA_CONFIG").map(PathBuf::from),
            state_dir_env: var("KOPI_DOCKA_STATE_DIR").map(PathBuf::from),
            cache_dir_env: var("KOPI_DOCKA_CACHE_DIR").map(PathBuf::from),
            docker_host_env: var("DOCKER_HOST").map(|v| v.to_string_lossy().into_owned()),
        }
    }

    fn xdg_dir(&self, explicit: Option<&PathBuf>, fallback: &str) -> PathBuf {
        explicit
            .filter(|p| p.is_absolute())
            .cloned()
            .or_else(|| self.home.as_ref().map(|h| h.join(fallback)))
            .unwrap_or_else(|| PathBuf::from("/").join(fallback))
    }

    /// The config file to use and the rule that chose it: `flag` (`--config`), else
    /// `$KOPI_DOCKA_CONFIG`, else [`Environment::default_config_path`].
    pub fn config_path(&self, flag: Option<&Path>) -> (PathBuf, ConfigSource) {
        match (flag, &self.config_env) {
            (Some(path), _) => (path.to_path_buf(), ConfigSource::Flag),
            (None, Some(path)) => (path.clone(), ConfigSource::EnvVar),
            (None, None) => (self.default_config_path(), ConfigSource::Default),
        }
    }

    /// The config file used when neither `--config` nor `$KOPI_DOCKA_CONFIG` is given.
    pub fn default_config_path(&self) -> PathBuf {
        if self.is_root {
            PathBuf::from(defaults::ROOT_CONFIG)
        } else {
            self.xdg_dir(self.xdg_config_home.as_ref(), ".config")
                .join("kopi-docka/config.toml")
        }
    }

    /// Where kopi-docka keeps its own state: locks, the journal of stopped containers, run
    /// history.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir_env {
            dir.clone()
        } else if self.is_root {
            PathBuf::from(defaults::ROOT_STATE)
        } else {
            self.xdg_dir(self.xdg_state_home.as_ref(), ".local/state")
                .join("kopi-docka")
        }
    }

    /// Where the repository index cache lives (safe to delete).
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir_env {
            dir.clone()
        } else if self.is_root {
            PathBuf::from(defaults::ROOT_CACHE)
        } else {
            self.xdg_dir(self.xdg_cache_home.as_ref(), ".cache")
                .join("kopi-docka")
        }
    }

    /// The repository used when `[repository] location` is not set.
    pub fn default_repository(&self) -> PathBuf {
        if self.is_root {
            PathBuf::from(defaults::ROOT_REPOSITORY)
        } else {
            self.xdg_dir(self.xdg_data_home.as_ref(), ".local/share")
                .join("kopi-docka/repository")
        }
    }
}

/// Which rule picked the config file; named in errors so the user knows what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// The global `--config` option.
    Flag,
    /// `$KOPI_DOCKA_CONFIG`.
    EnvVar,
    /// The per-user default path.
    Default,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--config",
            Self::EnvVar => "$KOPI_DOCKA_CONFIG",
            Self::Default => "the default location",
        })
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The parsed configuration (built-in defaults when no file exists).
    pub config: Config,
    /// The file it was read from; `None` when the default file does not exist.
    pub path: Option<PathBuf>,
    /// The rule that chose the path.
    pub source: ConfigSource,
    /// The process facts the defaults were resolved against.
    pub env: Environment,
}

impl LoadedConfig {
    /// The effective repository location.
    pub fn repository_location(&self) -> RepositoryLocation {
        self.config
            .repository
            .location
            .clone()
            .unwrap_or_else(|| RepositoryLocation::Local(self.env.default_repository()))
    }

    /// The effective engine endpoint: `[docker] host`, else `$DOCKER_HOST`, else the default socket.
    pub fn docker_host(&self) -> Result<DockerHost, ConfigError> {
        if let Some(host) = &self.config.docker.host {
            return Ok(host.clone());
        }
        match &self.env.docker_host_env {
            Some(value) => DockerHost::try_from(value.clone())
                .map_err(|message| ConfigError::DockerHostEnv { message }),
            None => Ok(DockerHost::Unix(PathBuf::from(defaults::DOCKER_SOCKET))),
        }
    }
}

/// Everything that can go wrong while finding and reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error(
        "config file {path} (from {source_rule}) does not exist; create it (see examples/config/) \
         or point {source_rule} at an existing file"
    )]
    NotFound {
        /// The file.
        path: PathBuf,
        /// Which rule named it.
        source_rule: ConfigSource,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config file {path}: {source}{hint}", hint = unreadable_hint(source))]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (names the key for unknown or invalid keys).
        message: String,
    },
    /// The file parsed but its values contradict each other.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `$DOCKER_HOST` holds something we cannot use.
    #[error("$DOCKER_HOST: {message}")]
    DockerHostEnv {
        /// What is wrong.
        message: String,
    },
}

fn unreadable_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::PermissionDenied => {
            " (the file exists but this user may not read it: run with sudo or as its owner; \
             kopi-docka never falls back to another config)"
        }
        io::ErrorKind::IsADirectory => " (it is a directory: point to the config.toml inside)",
        _ => "",
    }
}

/// Finds and reads the configuration following the lookup order in the module docs.
pub fn load(flag: Option<&Path>, env: Environment) -> Result<LoadedConfig, ConfigError> {
    let (path, source) = env.config_path(flag);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound && source == ConfigSource::Default => {
            tracing::debug!(path = %path.display(), "no config file; using built-in defaults");
            return Ok(LoadedConfig {
                config: Config::default(),
                path: None,
                source,
                env,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path,
                source_rule: source,
            });
        }
        Err(source) => return Err(ConfigError::Unreadable { path, source }),
    };
    let config = parse(&text, &path)?;
    Ok(LoadedConfig {
        config,
        path: Some(path),
        source,
        env,
    })
}

/// Parses and validates config text; `path` is used for messages and to resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })?;
    if let Some(message) = secret_sources_invalid(&config) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        });
    }
    let repo = &mut config.repository;
    if repo.password_file.is_some() && repo.password_command.is_some() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[repository] sets both password-file and password-command; keep one".into(),
        });
    }
    for (owner, set) in std::iter::once(("[hooks]".to_owned(), &config.hooks)).chain(
        config
            .units
            .iter()
            .map(|(name, unit)| (format!("[units.\"{name}\".hooks]"), &unit.hooks)),
    ) {
        if let Some(message) = set.invalid() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("{owner} {message}"),
            });
        }
    }
    if !config.retention.keeps_newest() {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[retention] keeps nothing but keep-within; set at least one keep-* value \
                      (keep-within alone would forget everything after a long outage)"
                .into(),
        });
    }
    if !(0..=22).contains(&repo.compression) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "[repository] compression = {} is outside 0..=22 (1 is fastest, 3 is zstd's \
                 default)",
                repo.compression
            ),
        });
    }
    let base = path.parent().unwrap_or(Path::new("/"));
    let resolve = |file: &mut PathBuf| {
        if file.is_relative() {
            *file = normalize(&std::path::absolute(base.join(&*file)).unwrap_or(base.join(&*file)));
        }
    };
    if let Some(file) = &mut repo.password_file {
        resolve(file);
    }
    let dr = &mut config.disaster_recovery;
    if dr.bundle_dir.is_some() && (dr.passphrase_file.is_none() || dr.keep == 0) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "[disaster-recovery] bundle-dir needs passphrase-file (a file only you can \
                      read) and keep >= 1"
                .into(),
        });
    }
    for file in [&mut dr.bundle_dir, &mut dr.passphrase_file]
        .into_iter()
        .flatten()
    {
        resolve(file);
    }
    Ok(config)
}

/// Exactly one URL source per notification target, at most one for the healthcheck; a known
/// `kind`.
fn secret_sources_invalid(config: &Config) -> Option<String> {
    let m = &config.monitoring;
    let count = |a: bool, b: bool, c: bool| usize::from(a) + usize::from(b) + usize::from(c);
    if count(
        m.healthcheck_url.is_some(),
        m.healthcheck_url_file.is_some(),
        m.healthcheck_url_env.is_some(),
    ) > 1
    {
        return Some(
            "[monitoring] sets more than one of healthcheck-url, healthcheck-url-file, \
             healthcheck-url-env; keep one"
                .into(),
        );
    }
    for (i, t) in config.notifications.targets.iter().enumerate() {
        if count(t.url.is_some(), t.url_file.is_some(), t.url_env.is_some()) != 1 {
            return Some(format!(
                "[[notifications.targets]] number {}: set exactly one of url, url-file, url-env",
                i + 1
            ));
        }
        if let Some(kind) = &t.kind
            && !NOTIFICATION_KINDS.contains(&kind.as_str())
        {
            return Some(format!(
                "[[notifications.targets]] number {}: kind `{kind}` is not one of {}",
                i + 1,
                NOTIFICATION_KINDS.join(", ")
            ));
        }
    }
    None
}

/// The values `[[notifications.targets]] kind` accepts.
pub const NOTIFICATION_KINDS: &[&str] =
    &["webhook", "ntfy", "gotify", "discord", "slack", "telegram"];

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(root: bool) -> Environment {
        Environment {
            is_root: root,
            home: Some("/home/ann".into()),
            xdg_config_home: None,
            xdg_data_home: Some("/data/ann".into()),
            xdg_state_home: None,
            xdg_cache_home: None,
            config_env: None,
            state_dir_env: None,
            cache_dir_env: None,
            docker_host_env: None,
        }
    }

    #[test]
    fn default_paths_depend_on_root() {
        assert_eq!(
            env(true).default_config_path(),
            Path::new("/etc/kopi-docka/config.toml")
        );
        assert_eq!(
            env(true).default_repository(),
            Path::new("/var/lib/kopi-docka/repository")
        );
        assert_eq!(
            env(false).default_config_path(),
            Path::new("/home/ann/.config/kopi-docka/config.toml")
        );
        assert_eq!(
            env(false).default_repository(),
            Path::new("/data/ann/kopi-docka/repository")
        );
    }

    #[test]
    fn retention_defaults_and_validation() {
        let cfg = parse("", Path::new("/c.toml")).unwrap();
        assert_eq!(cfg.retention.keep_last, 10);
        assert_eq!(cfg.retention.keep_yearly, 3);
        let within = parse("[retention]\nkeep-within = \"14d\"\n", Path::new("/c.toml")).unwrap();
        assert!(within.retention.keep_within.is_some());
        let nothing = "[retention]\nkeep-last = 0\nkeep-daily = 0\nkeep-weekly = 0\n\
                       keep-monthly = 0\nkeep-yearly = 0\nkeep-within = \"1d\"\n";
        let refused = parse(nothing, Path::new("/c.toml"));
        assert!(
            matches!(refused, Err(ConfigError::Invalid { .. })),
            "{refused:?}"
        );
        let bad = parse(
            "[retention]\nkeep-within = \"soon\"\n",
            Path::new("/c.toml"),
        );
        assert!(
            matches!(bad, Err(ConfigError::Parse { line: 2, .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn hooks_need_an_absolute_program() {
        let ok = "[hooks]\npre-stop = [\"/usr/local/bin/dump\", \"--fast\"]\n\
                  [units.web.hooks]\npost-start = [\"/bin/true\"]\n";
        let cfg = parse(ok, Path::new("/c.toml")).unwrap();
        assert_eq!(
            cfg.units["web"].hooks.post_start.as_deref(),
            Some(&["/bin/true".to_owned()][..])
        );
        let relative = "[units.web.hooks]\npre-backup = [\"dump.sh\"]\n";
        let err = parse(relative, Path::new("/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[units.\"web\".hooks] pre-backup") && err.contains("absolute"),
            "{err}"
        );
        let empty = parse("[hooks]\npost-backup = []\n", Path::new("/c.toml"));
        assert!(matches!(empty, Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[repository]\nlocation = \"/srv/repo\"\npasword-file = \"/x\"\n";
        let err = parse(text, Path::new("/c.toml")).unwrap_err();
        let ConfigError::Parse { line, message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*line, 3);
        assert!(message.contains("pasword-file"), "{message}");
        assert!(err.to_string().starts_with("/c.toml:3:"), "{err}");
    }

    #[test]
    fn locations_parse() {
        let local = RepositoryLocation::try_from("/srv//repo/".to_owned()).unwrap();
        assert_eq!(local, RepositoryLocation::Local("/srv/repo".into()));
        let sftp = RepositoryLocation::try_from("sftp:u@h:/r".to_owned()).unwrap();
        assert_eq!(
            sftp,
            RepositoryLocation::Remote {
                backend: RemoteBackend::Sftp,
                target: "u@h:/r".into()
            }
        );
        assert_eq!(sftp.to_string(), "sftp:u@h:/r");
        assert!(RepositoryLocation::try_from("relative/repo".to_owned()).is_err());
        assert!(RepositoryLocation::try_from("ftp:x".to_owned()).is_err());
    }

    #[test]
    fn invalid_location_reports_line() {
        let text = "\n[repository]\nlocation = \"repo\"\n";
        let err = parse(text, Path::new("/c.toml")).unwrap_err().to_string();
        assert!(err.starts_with("/c.toml:3:"), "{err}");
        assert!(err.contains("absolute"), "{err}");
    }

    #[test]
    fn password_sources_are_exclusive_and_relative_files_resolve() {
        let both = "[repository]\npassword-file = \"p\"\npassword-command = \"pass show x\"\n";
        assert!(matches!(
            parse(both, Path::new("/etc/kd/c.toml")),
            Err(ConfigError::Invalid { .. })
        ));
        let rel = "[repository]\npassword-file = \"../secrets/pw\"\n";
        let cfg = parse(rel, Path::new("/etc/kd/c.toml")).unwrap();
        assert_eq!(
            cfg.repository.password_file.as_deref(),
            Some(Path::new("/etc/secrets/pw"))
        );
    }

    #[test]
    fn docker_host_forms() {
        let parse = |s: &str| DockerHost::try_from(s.to_owned());
        assert_eq!(
            parse("unix:///run/d.sock"),
            Ok(DockerHost::Unix("/run/d.sock".into()))
        );
        assert_eq!(
            parse("/run/d.sock"),
            Ok(DockerHost::Unix("/run/d.sock".into()))
        );
        assert_eq!(
            parse("tcp://127.0.0.1:2375"),
            Ok(DockerHost::Tcp("127.0.0.1:2375".into()))
        );
        assert!(parse("ssh://host").is_err());
        assert!(parse("unix://relative").is_err());
    }

    #[test]
    fn docker_host_precedence() {
        let mut e = env(true);
        e.docker_host_env = Some("unix:///env.sock".into());
        let mut loaded = LoadedConfig {
            config: Config::default(),
            path: None,
            source: ConfigSource::Default,
            env: e,
        };
        assert_eq!(
            loaded.docker_host().unwrap(),
            DockerHost::Unix("/env.sock".into())
        );
        loaded.config.docker.host = Some(DockerHost::Unix("/cfg.sock".into()));
        assert_eq!(
            loaded.docker_host().unwrap(),
            DockerHost::Unix("/cfg.sock".into())
        );
    }

    #[test]
    fn absolute_path_containment_is_by_component() {
        let etc = AbsolutePath::try_from("/etc/".to_owned()).unwrap();
        assert!(etc.contains(Path::new("/etc")));
        assert!(etc.contains(Path::new("/etc/nginx/conf.d")));
        assert!(!etc.contains(Path::new("/etcetera")));
    }

    #[test]
    fn missing_default_file_means_defaults_but_missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = env(false);
        e.xdg_config_home = Some(dir.path().to_path_buf());
        let loaded = load(None, e.clone()).unwrap();
        assert!(loaded.path.is_none());
        assert!(
            !dir.path().join("kopi-docka").exists(),
            "loading must not create files"
        );
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            load(Some(&missing), e),
            Err(ConfigError::NotFound {
                source_rule: ConfigSource::Flag,
                ..
            })
        ));
    }
}
