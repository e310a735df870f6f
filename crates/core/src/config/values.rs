//! The typed values keys hold: host paths, repository locations, engine endpoints, scopes.
//! Each checks itself when it is parsed, so a loaded config holds only usable values.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where in a run a hook runs; named in the config (`pre-stop = [...]`), in the hook's
/// `$KOPI_DOCKA_HOOK` and in messages by its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPoint {
    /// Before anything of the unit is read.
    PreBackup,
    /// Before the unit's containers are stopped.
    PreStop,
    /// After they stopped, before the cold pass.
    PostStop,
    /// Before they are started again.
    PreStart,
    /// After they started.
    PostStart,
    /// After the unit is back (post-start and the health wait done): checks it works; a
    /// failure marks the unit's backup failed.
    Verify,
    /// After the unit's backup, with its status.
    PostBackup,
    /// Before a restore changes anything.
    PreRestore,
    /// After a restore.
    PostRestore,
}

impl HookPoint {
    /// Its name in the config and in `$KOPI_DOCKA_HOOK`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreBackup => "pre-backup",
            Self::PreStop => "pre-stop",
            Self::PostStop => "post-stop",
            Self::PreStart => "pre-start",
            Self::PostStart => "post-start",
            Self::Verify => "verify",
            Self::PostBackup => "post-backup",
            Self::PreRestore => "pre-restore",
            Self::PostRestore => "post-restore",
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a backup leaves running afterwards (`[units.<name>] restore-state`, label
/// `kopi-docka.restore-state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoreState {
    /// Start again only what ran (containers) or was active (systemd units) before.
    #[default]
    Previous,
    /// Start it afterwards even if it was stopped or inactive before.
    Always,
}

impl RestoreState {
    /// Its name in the config and in the label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Previous => "previous",
            Self::Always => "always",
        }
    }

    /// The state a config or label word names.
    pub fn parse(value: &str) -> Option<Self> {
        [Self::Previous, Self::Always]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// An absolute, lexically normalised host path (no `.`/`..`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsolutePath(pub(super) PathBuf);

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

/// Where the repository lives: a local directory or a restic-style remote location
/// (`crate::repo` translates remote ones for the backend and says what is wrong with them).
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
    /// `s3:https://endpoint/bucket/path`
    S3,
    /// `b2:bucket:path`, through B2's S3-compatible API
    B2,
    /// `azure:container:/path`
    Azure,
    /// `gs:bucket:/path`
    Gcs,
    /// `rclone:remote:path`
    Rclone,
    /// `rest:http://host:8000/repo`
    Rest,
    /// `webdav:https://host/path`
    Webdav,
}

impl RemoteBackend {
    const ALL: [Self; 8] = [
        Self::Sftp,
        Self::S3,
        Self::B2,
        Self::Azure,
        Self::Gcs,
        Self::Rclone,
        Self::Rest,
        Self::Webdav,
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
            Self::Webdav => "webdav",
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

/// A container engine endpoint, written as the docker CLI takes it in `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DockerHost {
    /// `unix:///path/to/socket` (a bare absolute path is accepted too).
    Unix(PathBuf),
    /// `tcp://host:port` or `http://host:port`: plain HTTP, or TLS when TLS verification is
    /// on (`DOCKER_TLS_VERIFY`, `[docker] tls-verify`), as with the docker CLI.
    Tcp(String),
    /// `ssh://[user@]host[:port]`: the engine's socket on another host, through `ssh`
    /// (the user's own ssh config and agent; `docker system dial-stdio` runs there).
    Ssh(String),
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
            && !addr.trim_end_matches('/').is_empty()
        {
            return Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()));
        } else if let Some(addr) = value.strip_prefix("ssh://")
            && !addr.trim_end_matches('/').is_empty()
            && !addr.trim_end_matches('/').ends_with('@')
        {
            return Ok(Self::Ssh(addr.trim_end_matches('/').to_owned()));
        }
        Err(format!(
            "`{value}` is not a supported engine address: use unix:///path/to/docker.sock, \
             tcp://host:port (TLS with DOCKER_TLS_VERIFY=1) or ssh://user@host"
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
            Self::Ssh(addr) => write!(f, "ssh://{addr}"),
        }
    }
}

/// Which engine `[docker] engine` asks for when no host is named: the sockets probed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// Docker's sockets first, then Podman's: the first that answers.
    #[default]
    Auto,
    /// Docker only (rootful, then the rootless Docker socket).
    Docker,
    /// Podman only (rootful `/run/podman/podman.sock`, or a user's rootless socket).
    Podman,
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
