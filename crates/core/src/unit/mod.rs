//! Backup units: what there is to back up on this host, and how completely it will be covered.
//!
//! A unit is a Compose stack (all containers, running or stopped, sharing a compose project
//! label) or a standalone container. Its identity is `(kind, name)`: a standalone container
//! named like a stack is a different unit.
//!
//! The rule this module enforces: every mount and project file of a unit appears in its
//! [`Coverage`] as backed up, skipped (why) or not protected (why). Nothing is left out silently.

mod discover;
mod mounts;
pub mod names;
pub mod policy;
pub mod service;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fs_snapshot::FsSupport;

pub use discover::{build_units, discover};
pub(crate) use discover::{health, systemd_service};
pub use mounts::{LocalBacking, MountRules};
pub use policy::{DumpEngine, DumpSpec, Policy};

/// Names in the configuration that match no discovered unit, one message each: a
/// `[units."x"]` table (its hooks and thresholds never apply) and a `[daemon] units` entry (the
/// scheduled run fails on it). A typo there is silent otherwise, so `units`, `backup` and
/// `doctor` warn about it.
pub fn unmatched_config_names(config: &crate::config::Config, units: &[Unit]) -> Vec<String> {
    let known = |name: &str| units.iter().any(|u| u.is_named(name));
    let tables = config.units.keys().filter(|name| !known(name)).map(|name| {
        format!("[units.\"{name}\"] names no discovered unit: its settings apply to nothing")
    });
    let daemon = config
        .daemon
        .units
        .iter()
        .filter(|name| !known(name))
        .map(|name| {
            format!(
                "[daemon] units names \"{name}\", which is no discovered unit: scheduled runs fail \
                 until it exists or the entry is removed"
            )
        });
    // A typo in a volume, bind or service table name is as silent as one in a unit name.
    let inner = config.units.iter().flat_map(|(name, table)| {
        let unit = units.iter().find(|u| u.name.as_str() == name);
        let mut out = Vec::new();
        let Some(unit) = unit else { return out };
        for volume in table.volumes.keys() {
            if !unit.volumes.iter().any(|v| &v.name == volume) {
                out.push(format!(
                    "[units.\"{name}\".volumes.\"{volume}\"] names no volume of the unit: its \
                     excludes apply to nothing"
                ));
            }
        }
        for bind in table.binds.keys() {
            if !unit
                .binds
                .iter()
                .any(|b| b.source.as_os_str() == bind.as_str())
            {
                out.push(format!(
                    "[units.\"{name}\".binds.\"{bind}\"] names no bind mount of the unit: its \
                     excludes apply to nothing"
                ));
            }
        }
        for service in table.services.keys() {
            let known = unit
                .containers
                .iter()
                .any(|c| c.service.as_deref().unwrap_or(&c.name) == service);
            if !known {
                out.push(format!(
                    "[units.\"{name}\".services.\"{service}\"] names no service of the unit: \
                     its settings apply to nothing"
                ));
            }
        }
        out
    });
    tables.chain(daemon).chain(inner).collect()
}

/// The `[units.<name>]` table of a unit: its own name, or the name of its systemd unit
/// (`cryptpad-stack.service` and `cryptpad-stack` find the stack `cryptpad`).
pub fn unit_config<'a>(
    config: &'a crate::config::Config,
    unit: &str,
) -> Option<&'a crate::config::UnitConfig> {
    use crate::systemd::control::stack_name;
    config.units.get(unit).or_else(|| {
        config
            .units
            .iter()
            .find(|(key, _)| stack_name(key) == stack_name(unit))
            .map(|(_, table)| table)
    })
}

/// The units on the engine as `loaded` sees them: its mount rules applied and its
/// `[units.<name>] systemd-unit` mappings bound. Every command that looks at units uses this,
/// so `units`, `doctor`, the daemon and a backup agree on what a unit is.
pub async fn discover_configured(
    engine: &crate::docker::Engine,
    loaded: &crate::config::LoadedConfig,
) -> Result<Vec<Unit>, crate::docker::DockerError> {
    let mut units = discover(engine, &MountRules::from_config(loaded)).await?;
    bind_systemd_units(&mut units, &loaded.config);
    Ok(units)
}

/// Puts `[units.<name>] systemd-unit` on the unit's containers: they are stopped and started
/// through that unit ([`crate::stop`]).
fn bind_systemd_units(units: &mut [Unit], config: &crate::config::Config) {
    for unit in units {
        let Some(table) = unit_config(config, unit.name.as_str()) else {
            continue;
        };
        let Some(name) = &table.systemd_unit else {
            continue;
        };
        let service = crate::systemd::control::Service {
            unit: crate::systemd::control::unit_name(name),
            user: table.systemd_user.clone(),
            configured: true,
        };
        for container in &mut unit.containers {
            container.systemd = Some(service.clone());
        }
    }
}

/// Stack or standalone container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// All containers of one compose project.
    Stack,
    /// One container outside any compose project.
    Standalone,
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stack => "stack",
            Self::Standalone => "standalone",
        })
    }
}

/// A unit's name: the compose project name or the container name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UnitName(String);

impl UnitName {
    /// Wraps a project or container name (a leading `/` from the engine is dropped).
    pub fn new(name: &str) -> Self {
        Self(name.trim_start_matches('/').to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One backup unit.
#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    /// Project or container name.
    pub name: UnitName,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// Compose project facts (stacks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<ComposeProject>,
    /// Member containers in start order.
    pub containers: Vec<Container>,
    /// Named volumes used by any member, once each.
    pub volumes: Vec<UnitVolume>,
    /// Bind mount sources used by any member, once each.
    pub binds: Vec<UnitBind>,
    /// User-defined networks the members are attached to.
    pub networks: Vec<String>,
    /// Container names in the order they should start (dependencies first).
    pub start_order: Vec<String>,
    /// Every mount and project file with its verdict.
    pub coverage: Coverage,
    /// Why the unit is not backed up at all: a name from the engine that cannot safely become
    /// a path, a tag or an argument ([`names`]). Such a unit is listed, never touched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Labels of members that ask for something kopi-docka cannot do (an unknown policy or
    /// dump engine): errors in `units` and `doctor`; the unit is refused until they are fixed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_errors: Vec<String>,
}

impl Unit {
    /// Whether `name` names this unit: its own name, the same stack name
    /// (`cryptpad-stack.service`, `cryptpad-stack`, `cryptpad`), or the systemd unit that runs
    /// its containers (`container-web.service`).
    pub fn is_named(&self, name: &str) -> bool {
        use crate::systemd::control::{stack_name, unit_name};
        self.name.as_str() == name
            || stack_name(self.name.as_str()) == stack_name(name)
            || self
                .containers
                .iter()
                .filter_map(|c| c.systemd.as_ref())
                .any(|s| s.unit == unit_name(name))
    }

    /// Members whose database is dumped while they keep running, in start order.
    pub fn dumped(&self) -> impl Iterator<Item = (&Container, &DumpSpec)> {
        self.containers
            .iter()
            .filter_map(|c| c.policy.dump().map(|spec| (c, spec)))
    }
}

/// Compose project facts of a stack.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeProject {
    /// The project directory on this host, if it could be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// Compose files as recorded by compose, resolved on this host.
    pub compose_files: Vec<ProjectFile>,
    /// `.env`, `env_file:` and `--env-file` files.
    pub env_files: Vec<ProjectFile>,
}

/// A file of the compose project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectFile {
    /// Path on this host.
    pub path: PathBuf,
    /// Whether the file exists here.
    pub present: bool,
    /// The path as compose recorded it, when it differs from `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_as: Option<String>,
    /// The container whose mount translated the recorded path (e.g. Portainer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_via: Option<String>,
    /// Why the file is not read (outside the working directory, not a regular file...): it
    /// is then neither read nor backed up ([`names`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Runtime state of a container (also read back from recorded recipes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead.
    Dead,
    /// Anything the engine reports that we do not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// Healthcheck status of a container that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Within its start period.
    Starting,
    /// Passing.
    Healthy,
    /// Failing.
    Unhealthy,
}

impl fmt::Display for Health {
    /// The engine's own word for it, as messages have always shown it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        })
    }
}

/// A member container.
#[derive(Debug, Clone, Serialize)]
pub struct Container {
    /// Full container id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Compose service (stacks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Image reference as configured.
    pub image: String,
    /// Runtime state.
    pub state: ContainerState,
    /// Health, for containers with a healthcheck.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Restart policy name (`no`, `always`, `unless-stopped`, `on-failure`).
    pub restart_policy: String,
    /// Services this container's service depends on.
    pub depends_on: Vec<String>,
    /// Named volume mounts.
    pub volumes: Vec<VolumeMount>,
    /// Bind mounts.
    pub binds: Vec<BindMount>,
    /// tmpfs mount points.
    pub tmpfs: Vec<PathBuf>,
    /// All attached networks (including the engine's default ones).
    pub networks: Vec<String>,
    /// What a backup does with it (`kopi-docka.policy` label; [`policy`]).
    pub policy: Policy,
    /// Exclude globs for the volumes and binds it mounts (`kopi-docka.exclude`; [`service`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Seconds it gets to stop instead of `[backup] stop-timeout-seconds`
    /// (`kopi-docka.stop-timeout`; [`service`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    /// `always`: started after a backup even if it was stopped before
    /// (`kopi-docka.restore-state`; else the unit's `restore-state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_state: Option<crate::config::RestoreState>,
    /// The systemd unit that stops and starts it (its `PODMAN_SYSTEMD_UNIT` label, or
    /// `[units.<name>] systemd-unit`): never stopped through the engine while that unit runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd: Option<crate::systemd::control::Service>,
    /// It runs with `--rm`: the engine deletes it when it stops.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_remove: bool,
}

/// A named volume as mounted into one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    /// Volume name.
    pub name: String,
    /// Path inside the container.
    pub destination: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A bind mount as mounted into one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A named volume of a unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitVolume {
    /// Volume name.
    pub name: String,
    /// Volume driver (`local` for data on this host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Where the engine keeps the data on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<PathBuf>,
    /// For a local volume created with `o=bind,device=PATH`: the host directory the engine
    /// mounts on `mountpoint` only while a container uses it. The data is there, and it is
    /// what is backed up and restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<PathBuf>,
    /// Member containers that mount it.
    pub used_by: Vec<String>,
    /// Backed up or not, and why.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The filesystem its data is on and whether the cold pass can snapshot it (backed-up
    /// volumes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsSupport>,
    /// Globs of what inside it is not backed up (config and `kopi-docka.exclude`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl UnitVolume {
    /// Where the data really is on this host: the bind device of a device-backed volume,
    /// else the engine's mountpoint.
    pub fn data_path(&self) -> Option<&Path> {
        self.device.as_deref().or(self.mountpoint.as_deref())
    }
}

/// A bind mount source of a unit.
#[derive(Debug, Clone, Serialize)]
pub struct UnitBind {
    /// Host path.
    pub source: PathBuf,
    /// Paths inside the containers.
    pub destinations: Vec<PathBuf>,
    /// Member containers that mount it.
    pub used_by: Vec<String>,
    /// Every mount of it is read-only.
    pub read_only: bool,
    /// The source is a single file rather than a directory.
    pub is_file: bool,
    /// Backed up or not, and why.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The filesystem it is on and whether the cold pass can snapshot it (backed-up binds
    /// only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsSupport>,
    /// Globs of what inside it is not backed up (config and `kopi-docka.exclude`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Whether something is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    /// Part of the unit's backup.
    BackedUp,
    /// Deliberately left out (host-internal, memory-only, excluded by the user).
    Skipped,
    /// Should be protected but cannot be from here: a gap the user must know about.
    NotProtected,
}

/// Why something is skipped or not protected. Serialised with a `code` for scripts; its
/// `Display` is the sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CoverageReason {
    /// The bind source is `/`.
    RootFilesystem,
    /// The bind source is a unix socket.
    Socket,
    /// Under a configured host-internal path.
    HostInternal {
        /// The configured path it falls under.
        under: PathBuf,
    },
    /// Under a user exclude path.
    Excluded {
        /// The configured path it falls under.
        under: PathBuf,
    },
    /// The source contains the local repository (or lies inside it).
    Repository {
        /// The repository path.
        repository: PathBuf,
    },
    /// tmpfs: memory only.
    Tmpfs,
    /// The path does not exist on this host.
    Missing,
    /// A volume driver that keeps data elsewhere.
    VolumeDriver {
        /// The driver name.
        driver: String,
    },
    /// The engine does not list the volume a container mounts.
    VolumeNotListed,
    /// A local volume that mounts a filesystem (`type=nfs`, `cifs`, a block device) only
    /// while a container uses it: after the stop its mountpoint is an empty directory.
    DeviceVolume {
        /// The `type` option.
        fs_type: String,
        /// The `device` option.
        device: String,
    },
    /// A name or path from the engine (labels set by whoever created the container) that is
    /// refused before it becomes a path, an argument or a file name.
    Refused {
        /// What was refused and why.
        why: String,
    },
    /// The data of a database service under `kopi-docka.policy=dump`: the dump in the same
    /// restore point holds it; files copied from under a running server would not be
    /// consistent.
    CoveredByDump {
        /// The database container.
        container: String,
        /// Its engine.
        engine: DumpEngine,
    },
    /// Mounted only by services under `kopi-docka.policy=skip`.
    PolicySkip {
        /// A container that mounts it.
        container: String,
    },
}

impl fmt::Display for CoverageReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RootFilesystem => f.write_str(
                "the host's root filesystem is never backed up (it holds the repository)",
            ),
            Self::Socket => f.write_str("a unix socket, not data"),
            Self::HostInternal { under } => write!(
                f,
                "host-internal path under {} ([discovery] host-internal-paths)",
                under.display()
            ),
            Self::Excluded { under } => {
                write!(
                    f,
                    "excluded by [discovery] exclude-paths ({})",
                    under.display()
                )
            }
            Self::Repository { repository } => write!(
                f,
                "overlaps the kopi-docka repository {}; backing it up would recurse",
                repository.display()
            ),
            Self::Tmpfs => f.write_str("tmpfs lives in memory and is empty after every restart"),
            Self::Missing => f.write_str("does not exist on this host"),
            Self::VolumeDriver { driver } => write!(
                f,
                "volume driver `{driver}` keeps the data elsewhere; back it up where it lives"
            ),
            Self::VolumeNotListed => f.write_str("the engine does not list this volume"),
            Self::DeviceVolume { fs_type, device } => write!(
                f,
                "local volume mounted from {fs_type} `{device}` only while a container uses it \
                 (empty after the stop); back it up where it lives"
            ),
            Self::Refused { why } => write!(f, "refused: {why}"),
            Self::CoveredByDump { container, engine } => {
                write!(f, "covered by dump ({engine} dump of {container})")
            }
            Self::PolicySkip { container } => {
                write!(f, "{container} is under kopi-docka.policy=skip")
            }
        }
    }
}

/// A status with its reason; only `BackedUp` has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The status.
    pub status: CoverageStatus,
    /// Why, unless backed up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<CoverageReason>,
}

impl Verdict {
    /// Will be backed up.
    pub const BACKED_UP: Self = Self {
        status: CoverageStatus::BackedUp,
        reason: None,
    };

    /// Deliberately left out.
    pub fn skipped(reason: CoverageReason) -> Self {
        Self {
            status: CoverageStatus::Skipped,
            reason: Some(reason),
        }
    }

    /// A gap.
    pub fn not_protected(reason: CoverageReason) -> Self {
        Self {
            status: CoverageStatus::NotProtected,
            reason: Some(reason),
        }
    }

    /// True when the item is part of the backup.
    pub fn is_backed_up(&self) -> bool {
        self.status == CoverageStatus::BackedUp
    }
}

/// What a coverage entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageKind {
    /// A named volume.
    Volume,
    /// A bind mount source.
    Bind,
    /// A tmpfs mount.
    Tmpfs,
    /// A compose file.
    ComposeFile,
    /// An env file of the project.
    EnvFile,
    /// A name from the engine (unit, container, service, volume).
    Name,
}

impl fmt::Display for CoverageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Volume => "volume",
            Self::Bind => "bind",
            Self::Tmpfs => "tmpfs",
            Self::ComposeFile => "compose file",
            Self::EnvFile => "env file",
            Self::Name => "name",
        })
    }
}

/// One line of the coverage report.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageEntry {
    /// What it is.
    pub kind: CoverageKind,
    /// Volume name, host path, or `container:/path` for tmpfs.
    pub identifier: String,
    /// Status and reason.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The reason as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For a backed-up volume or bind: its filesystem and whether it can be snapshotted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FsSupport>,
    /// For a backed-up volume or bind: the globs of what inside it is left out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl CoverageEntry {
    fn new(kind: CoverageKind, identifier: String, verdict: Verdict) -> Self {
        let detail = verdict.reason.as_ref().map(ToString::to_string);
        Self {
            kind,
            identifier,
            verdict,
            detail,
            filesystem: None,
            exclude: Vec::new(),
        }
    }

    /// The entry with the exclude globs of its volume or bind (backed-up ones only).
    fn excluding(self, exclude: &[String]) -> Self {
        Self {
            exclude: if self.verdict.is_backed_up() {
                exclude.to_vec()
            } else {
                Vec::new()
            },
            ..self
        }
    }

    /// The entry with the filesystem its mount is on.
    fn on(self, filesystem: Option<&FsSupport>) -> Self {
        Self {
            filesystem: filesystem.cloned(),
            ..self
        }
    }
}

/// Counts per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CoverageSummary {
    /// Backed up.
    pub backed_up: usize,
    /// Skipped on purpose.
    pub skipped: usize,
    /// Gaps.
    pub not_protected: usize,
}

/// The coverage report of a unit.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// Every item.
    pub entries: Vec<CoverageEntry>,
    /// Counts.
    pub summary: CoverageSummary,
    /// True when anything is not protected.
    pub has_gaps: bool,
}

impl Coverage {
    fn from_entries(entries: Vec<CoverageEntry>) -> Self {
        let mut summary = CoverageSummary::default();
        for entry in &entries {
            match entry.verdict.status {
                CoverageStatus::BackedUp => summary.backed_up += 1,
                CoverageStatus::Skipped => summary.skipped += 1,
                CoverageStatus::NotProtected => summary.not_protected += 1,
            }
        }
        Self {
            has_gaps: summary.not_protected > 0,
            entries,
            summary,
        }
    }
}

#[cfg(test)]
mod config_names_tests {
    use super::*;

    #[test]
    fn config_names_without_a_unit_are_reported() {
        let mut config = crate::config::Config::default();
        config
            .units
            .insert("web".into(), crate::config::UnitConfig::default());
        config
            .units
            .insert("gone".into(), crate::config::UnitConfig::default());
        config.daemon.units = vec!["web".into(), "typo".into()];
        let messages = unmatched_config_names(&config, &[]);
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].starts_with("[units.\"gone\"]"), "{messages:?}");
        assert!(messages[1].starts_with("[units.\"web\"]"), "{messages:?}");
        assert!(messages[3].contains("\"typo\""), "{messages:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DiscoveryConfig, RepositoryLocation, UnitConfig};
    use bollard::models::{ContainerConfig, ContainerInspectResponse};

    /// A running container as the engine reports it, with these labels and no mounts.
    fn raw(name: &str, labels: &[(&str, &str)]) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(format!("id-{name}")),
            name: Some(format!("/{name}")),
            config: Some(ContainerConfig {
                image: Some("img".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The units of these containers, with the `systemd-unit` mappings of `config` bound.
    fn units(containers: Vec<ContainerInspectResponse>, config: &Config) -> Vec<Unit> {
        let rules = MountRules::new(
            &DiscoveryConfig::default(),
            &RepositoryLocation::Local("/nonexistent/repo".into()),
        );
        let mut units = build_units(containers, &[], &rules);
        bind_systemd_units(&mut units, config);
        units
    }

    /// `[units.app.volumes|binds|services]` tables must name what the unit has: a typo in
    /// one is reported, the tables that match are not.
    #[test]
    fn tables_inside_a_units_table_must_name_its_volumes_binds_and_services() {
        use crate::config::{MountConfig, ServiceConfig};
        use crate::docker::compose::label;
        let mut container = raw(
            "app-web-1",
            &[(label::PROJECT, "app"), (label::SERVICE, "web")],
        );
        let mount = |typ: &str, name: Option<&str>, source: &str, destination: &str| {
            bollard::models::MountPoint {
                typ: Some(typ.into()),
                name: name.map(Into::into),
                source: Some(source.into()),
                destination: Some(destination.into()),
                rw: Some(true),
                ..Default::default()
            }
        };
        container.mounts = Some(vec![
            mount(
                "volume",
                Some("app_data"),
                "/var/lib/docker/volumes/app_data/_data",
                "/data",
            ),
            mount("bind", None, "/srv/app/config", "/config"),
        ]);
        let mut table = UnitConfig::default();
        for volume in ["app_data", "app_typo"] {
            table.volumes.insert(volume.into(), MountConfig::default());
        }
        for bind in ["/srv/app/config", "/srv/app/typo"] {
            table.binds.insert(bind.into(), MountConfig::default());
        }
        for service in ["web", "wbe"] {
            table
                .services
                .insert(service.into(), ServiceConfig::default());
        }
        let mut config = Config::default();
        config.units.insert("app".into(), table);
        let found = units(vec![container], &config);
        let messages = unmatched_config_names(&config, &found);
        assert_eq!(
            messages,
            [
                "[units.\"app\".volumes.\"app_typo\"] names no volume of the unit: its \
                 excludes apply to nothing",
                "[units.\"app\".binds.\"/srv/app/typo\"] names no bind mount of the unit: its \
                 excludes apply to nothing",
                "[units.\"app\".services.\"wbe\"] names no service of the unit: its settings \
                 apply to nothing",
            ]
        );
        // A table of another unit's name is not matched against this unit's mounts.
        let mut other = config.clone();
        let table = other.units.remove("app").unwrap();
        other.units.insert("ap".into(), table);
        let messages = unmatched_config_names(&other, &found);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].starts_with("[units.\"ap\"] names no discovered unit"));
    }

    fn systemd_table(unit: &str) -> UnitConfig {
        UnitConfig {
            systemd_unit: Some(unit.into()),
            ..UnitConfig::default()
        }
    }

    #[test]
    fn a_unit_is_found_by_its_name_its_stack_name_and_its_systemd_unit() {
        let mut config = Config::default();
        config.units.insert(
            "cryptpad-stack.service".into(),
            systemd_table("cryptpad-stack"),
        );
        config
            .units
            .insert("web".into(), systemd_table("container-web"));
        config.units.insert("other".into(), UnitConfig::default());
        let project = crate::docker::compose::label::PROJECT;
        let found = units(
            vec![
                raw("cryptpad-app-1", &[(project, "cryptpad")]),
                raw("web", &[]),
                raw("plain", &[]),
            ],
            &config,
        );
        let unit = |name: &str| found.iter().find(|u| u.name.as_str() == name).unwrap();
        let (cryptpad, web, plain) = (unit("cryptpad"), unit("web"), unit("plain"));
        for name in [
            "cryptpad",
            "cryptpad.service",
            "cryptpad-stack",
            "cryptpad-stack.service",
        ] {
            assert!(cryptpad.is_named(name), "{name}");
        }
        for name in ["crypt", "cryptpad-app-1", "web", "other"] {
            assert!(!cryptpad.is_named(name), "{name}");
        }
        for name in ["web", "container-web", "container-web.service"] {
            assert!(web.is_named(name), "{name}");
        }
        assert!(!web.is_named("container-db"));
        assert!(plain.is_named("plain") && !plain.is_named("web"));

        // The mapping is bound to every container of the unit, as configured.
        let bound = |u: &Unit| -> Vec<Option<String>> {
            u.containers
                .iter()
                .map(|c| c.systemd.as_ref().map(|s| s.unit.clone()))
                .collect()
        };
        assert_eq!(bound(cryptpad), [Some("cryptpad-stack.service".to_owned())]);
        assert_eq!(bound(web), [Some("container-web.service".to_owned())]);
        assert_eq!(bound(plain), [None]);
        assert!(web.containers[0].systemd.as_ref().unwrap().configured);

        // Tables are found by the unit's name first, then by its systemd unit's stack name.
        assert!(unit_config(&config, "web").unwrap().systemd_unit.is_some());
        assert_eq!(
            unit_config(&config, "cryptpad").and_then(|t| t.systemd_unit.as_deref()),
            Some("cryptpad-stack")
        );
        assert!(
            unit_config(&config, "other")
                .unwrap()
                .systemd_unit
                .is_none()
        );
        assert!(unit_config(&config, "plain").is_none());
    }

    #[test]
    fn dumped_members_are_those_under_the_dump_policy() {
        let project = crate::docker::compose::label::PROJECT;
        let found = units(
            vec![
                raw(
                    "db",
                    &[
                        (project, "app"),
                        (policy::label::POLICY, "dump"),
                        (policy::label::DUMP, "postgres"),
                    ],
                ),
                raw("web", &[(project, "app")]),
            ],
            &Config::default(),
        );
        let dumped: Vec<(&str, DumpEngine)> = found[0]
            .dumped()
            .map(|(c, spec)| (c.name.as_str(), spec.engine))
            .collect();
        assert_eq!(dumped, [("db", DumpEngine::Postgres)]);
    }

    #[test]
    fn coverage_entries_carry_their_sentence_filesystem_and_excludes() {
        let volume = |device: Option<&str>, mountpoint: Option<&str>| UnitVolume {
            name: "v".into(),
            driver: Some("local".into()),
            mountpoint: mountpoint.map(PathBuf::from),
            device: device.map(PathBuf::from),
            used_by: Vec::new(),
            verdict: Verdict::BACKED_UP,
            filesystem: None,
            exclude: Vec::new(),
        };
        assert_eq!(
            volume(Some("/srv/data"), Some("/var/lib/docker/volumes/v/_data")).data_path(),
            Some(Path::new("/srv/data")),
            "a device-backed volume's data is on its device"
        );
        assert_eq!(
            volume(None, Some("/var/lib/docker/volumes/v/_data")).data_path(),
            Some(Path::new("/var/lib/docker/volumes/v/_data"))
        );

        let globs = ["*.tmp".to_owned()];
        let kept = CoverageEntry::new(CoverageKind::Volume, "v".into(), Verdict::BACKED_UP)
            .excluding(&globs);
        assert_eq!(kept.exclude, globs);
        assert_eq!(kept.detail, None);
        let gap = CoverageEntry::new(
            CoverageKind::Bind,
            "/x".into(),
            Verdict::not_protected(CoverageReason::Missing),
        )
        .excluding(&globs);
        assert!(
            gap.exclude.is_empty(),
            "nothing is excluded from what is not backed up"
        );
        assert_eq!(gap.detail.as_deref(), Some("does not exist on this host"));
        assert_eq!(gap.verdict.status, CoverageStatus::NotProtected);
        let skipped = Verdict::skipped(CoverageReason::Tmpfs);
        assert_eq!(skipped.status, CoverageStatus::Skipped);
        assert!(!skipped.is_backed_up() && Verdict::BACKED_UP.is_backed_up());
        let fs = crate::fs_snapshot::FsSupport {
            filesystem: crate::fs_snapshot::Filesystem::Ext4,
            method: None,
            reason: None,
        };
        let on =
            CoverageEntry::new(CoverageKind::Volume, "v".into(), Verdict::BACKED_UP).on(Some(&fs));
        assert_eq!(on.filesystem, Some(fs));

        for (kind, word) in [
            (CoverageKind::Volume, "volume"),
            (CoverageKind::Bind, "bind"),
            (CoverageKind::Tmpfs, "tmpfs"),
            (CoverageKind::ComposeFile, "compose file"),
            (CoverageKind::EnvFile, "env file"),
            (CoverageKind::Name, "name"),
        ] {
            assert_eq!(kind.to_string(), word);
        }
        for (health, word) in [
            (Health::Starting, "starting"),
            (Health::Healthy, "healthy"),
            (Health::Unhealthy, "unhealthy"),
        ] {
            assert_eq!(health.to_string(), word);
        }
        assert_eq!(UnitKind::Standalone.to_string(), "standalone");
        assert_eq!(UnitName::new("/web").to_string(), "web");
        assert_eq!(
            CoverageReason::PolicySkip {
                container: "cache".into()
            }
            .to_string(),
            "cache is under kopi-docka.policy=skip"
        );
    }
}
