//! SFTP repositories: the ssh settings, the pinned host key and the ssh processes they start.
//!
//! opendal's sftp service drives the system `ssh` (the openssh crate starts one `ssh -M`
//! control master per pooled connection). kopi-docka does not put its own settings on `ssh`'s
//! command line piecemeal; it writes one ssh configuration file per process, under
//! `<state>/ssh/<pid>/`, and hands it to `ssh -F`:
//!
//! ```text
//! Host <the location's host, as written>
//!   HostKeyAlias kopi-docka-repository          (only with a pinned host-key)
//!   UserKnownHostsFile <state>/ssh/<pid>/known_hosts
//!   GlobalKnownHostsFile /dev/null
//!   StrictHostKeyChecking yes
//!   UpdateHostKeys no
//!   ServerAliveCountMax 3
//! Host *
//! Include <ssh-config option, or ~/.ssh/config>
//! Include /etc/ssh/ssh_config
//! ```
//!
//! ssh takes the first value it reads for each setting, so the pin comes first and cannot be
//! overridden by the user's config, while everything else of the user's config (a `Host nas`
//! alias with its `HostName`, `Port`, `User`, `IdentityFile`, `ProxyJump`) applies exactly as
//! it does for `ssh nas` and for restic. A port or user written in the location wins over the
//! config, as with restic (`-p`, `-l`).
//!
//! Rules:
//! - Never trust on first use. With `host-key` in `[repository.options]` only that key is
//!   accepted; without it, the user's own `known_hosts` must already know the server
//!   (`StrictHostKeyChecking yes` either way).
//! - Before anything is opened the server is checked: reachable within `connect-timeout`, and
//!   offering the pinned key. A different key is a hard error naming both fingerprints.
//! - The control masters live in the per-process directory and are told to exit by
//!   [`close_connections`] when the command ends (opendal never closes them: its runtime is
//!   static). Directories of processes that no longer run are swept on the next open.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::BackendSpec;

/// The options kopi-docka reads from `[repository.options]` for SFTP (not passed to opendal).
pub const HOST_KEY: &str = "host-key";
/// An ssh configuration file to use instead of `~/.ssh/config`.
pub const SSH_CONFIG: &str = "ssh-config";
/// Seconds to wait for the TCP connection and the server's greeting.
pub const CONNECT_TIMEOUT: &str = "connect-timeout";
/// Seconds of silence after which ssh probes the server (it gives up after three probes).
pub const SERVER_ALIVE_INTERVAL: &str = "server-alive-interval";

const DEFAULT_CONNECT_TIMEOUT: u64 = 15;
const DEFAULT_SERVER_ALIVE_INTERVAL: u64 = 10;
/// The name the pinned key is stored under, whatever address the alias resolves to.
const HOST_KEY_ALIAS: &str = "kopi-docka-repository";
/// `sun_path` holds 108 bytes; openssh adds `/.ssh-connectionXXXXXX/master`.
const MAX_SOCKET_DIR: usize = 76;

/// Everything that can go wrong before the SFTP backend is handed its settings.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// An option has a value we cannot use.
    #[error("[repository.options] {name} = `{value}`: {reason}")]
    BadOption {
        /// The option.
        name: &'static str,
        /// Its value.
        value: String,
        /// What to write instead.
        reason: String,
    },
    /// `ssh -G` could not resolve the host.
    #[error("cannot resolve the SFTP host `{host}` with ssh's configuration: {detail}")]
    Resolve {
        /// The host as written in the location.
        host: String,
        /// ssh's message.
        detail: String,
    },
    /// Nothing answers at the address.
    #[error(
        "the SFTP server {host} ({address}) is not reachable: {detail}. Nothing was stopped or \
         changed. Check that the server runs and this machine can reach it (`ssh {host}`), or \
         fix [repository] location"
    )]
    Unreachable {
        /// The host as written in the location.
        host: String,
        /// `hostname:port` after ssh's configuration.
        address: String,
        /// What failed.
        detail: String,
    },
    /// The server offers a different host key than the pinned one.
    #[error(
        "the SFTP server {host} ({address}) offers host key {offered}, but [repository.options] \
         host-key pins {pinned}. Nothing was sent to it. If the server's key was replaced on \
         purpose, compare the new fingerprint on the server (`ssh-keygen -lf \
         /etc/ssh/ssh_host_*_key.pub`) and put the new key in host-key; otherwise someone may be \
         intercepting the connection"
    )]
    HostKeyChanged {
        /// The host as written in the location.
        host: String,
        /// `hostname:port` after ssh's configuration.
        address: String,
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key the server offers.
        offered: String,
    },
    /// No key is pinned and ssh's own `known_hosts` does not know the server.
    #[error(
        "the SFTP server {host} ({address}) is not known and no host key is pinned; kopi-docka \
         never trusts a server on first use. Check the fingerprint on the server (`ssh-keygen \
         -lf /etc/ssh/ssh_host_ed25519_key.pub`); if it is {offered}, pin the key in \
         [repository.options]: host-key = \"{key}\" (or run `kopi-docka setup`)"
    )]
    HostKeyUnknown {
        /// The host as written in the location.
        host: String,
        /// `hostname:port` after ssh's configuration.
        address: String,
        /// The fingerprint of the key the server offers.
        offered: String,
        /// The key the server offers (`type base64`).
        key: String,
    },
    /// The server refused the login.
    #[error(
        "the SFTP server {host} ({address}) refused the login as `{user}`: {detail}. Check the \
         user and the key file (`key` in [repository.options], or IdentityFile in the ssh \
         config), and that its public key is in ~{user}/.ssh/authorized_keys on the server"
    )]
    LoginRefused {
        /// The host as written in the location.
        host: String,
        /// `hostname:port` after ssh's configuration.
        address: String,
        /// The user ssh logs in as.
        user: String,
        /// ssh's message.
        detail: String,
    },
    /// ssh failed for another reason.
    #[error("ssh to the SFTP server {host} ({address}) failed: {detail}")]
    Ssh {
        /// The host as written in the location.
        host: String,
        /// `hostname:port` after ssh's configuration.
        address: String,
        /// ssh's message.
        detail: String,
    },
    /// ssh's tools are missing or cannot run.
    #[error(
        "cannot run `{program}` for the SFTP repository: {source}. Install OpenSSH's client \
         (Debian: apt-get install openssh-client)"
    )]
    Tool {
        /// `ssh`, `ssh-keyscan` or `ssh-keygen`.
        program: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the ssh files failed.
    #[error("writing the ssh settings in {path}: {source}")]
    Io {
        /// The file or program.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The per-process directories whose masters [`close_connections`] ends.
static OPENED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Where the SFTP server is, after the user's ssh configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The host as written in the location (maybe an alias).
    pub host: String,
    /// `HostName` after ssh's configuration.
    pub hostname: String,
    /// `Port` after ssh's configuration.
    pub port: u16,
    /// `User` after ssh's configuration.
    pub user: String,
}

impl Resolved {
    /// `hostname:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }
}

/// The SFTP settings split from the backend options.
#[derive(Debug, Clone)]
struct Settings {
    host: String,
    port: Option<u16>,
    user: Option<String>,
    key: Option<String>,
    host_key: Option<String>,
    ssh_config: Option<PathBuf>,
    connect_timeout: u64,
    server_alive_interval: u64,
}

impl Settings {
    fn from_spec(spec: &BackendSpec) -> Result<Self, SftpError> {
        let options = &spec.options;
        let endpoint = options.get("endpoint").cloned().unwrap_or_default();
        let (host, port) = split_endpoint(&endpoint);
        let seconds = |name: &'static str, default: u64| match options.get(name) {
            None => Ok(default),
            Some(v) => {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| SftpError::BadOption {
                        name,
                        value: v.clone(),
                        reason: "write a whole number of seconds, at least 1".into(),
                    })
            }
        };
        let host_key = match options.get(HOST_KEY) {
            None => None,
            Some(v) => Some(parse_host_key(v)?),
        };
        Ok(Self {
            host,
            port,
            user: options.get("user").cloned(),
            key: options.get("key").cloned(),
            host_key,
            ssh_config: options.get(SSH_CONFIG).map(PathBuf::from),
            connect_timeout: seconds(CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)?,
            server_alive_interval: seconds(SERVER_ALIVE_INTERVAL, DEFAULT_SERVER_ALIVE_INTERVAL)?,
        })
    }
}

/// `ssh://host:port` or `host` (the forms `location` writes).
fn split_endpoint(endpoint: &str) -> (String, Option<u16>) {
    let Some(rest) = endpoint.strip_prefix("ssh://") else {
        return (endpoint.to_owned(), None);
    };
    match rest.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port.parse().ok(),
        ),
        _ => (rest.to_owned(), None),
    }
}

/// `ssh-ed25519 AAAA... [comment]` or a `known_hosts` line (`host ssh-ed25519 AAAA...`):
/// returns `type base64`.
fn parse_host_key(value: &str) -> Result<String, SftpError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let start = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"));
    match start.and_then(|i| Some((words[i], *words.get(i + 1)?))) {
        Some((kind, blob)) if blob.starts_with("AAAA") => Ok(format!("{kind} {blob}")),
        _ => Err(SftpError::BadOption {
            name: HOST_KEY,
            value: value.to_owned(),
            reason: "write the server's public host key, e.g. `ssh-ed25519 AAAAC3Nza...` (the \
                     content of /etc/ssh/ssh_host_ed25519_key.pub on the server; `kopi-docka \
                     setup` shows it with its fingerprint)"
                .into(),
        }),
    }
}

/// Whether `spec` is an SFTP backend.
pub fn is_sftp(spec: &BackendSpec) -> bool {
    spec.repository == "opendal:sftp"
}

/// Writes this process's ssh settings for `spec` under `ssh_dir`, checks the server (reachable,
/// pinned key), and returns the options for opendal. Other backends are returned unchanged.
pub fn prepare(spec: &BackendSpec, ssh_dir: &Path) -> Result<BackendSpec, SftpError> {
    if !is_sftp(spec) {
        return Ok(spec.clone());
    }
    let settings = Settings::from_spec(spec)?;
    let dir = process_dir(ssh_dir)?;
    let config = write_files(&settings, &dir)?;
    let resolved = resolve(&settings, &config)?;
    check_server(&settings, &resolved, &config)?;
    let mut options: BTreeMap<String, String> = spec
        .options
        .iter()
        .filter(|(k, _)| {
            ![HOST_KEY, SSH_CONFIG, CONNECT_TIMEOUT, SERVER_ALIVE_INTERVAL].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    options.insert("config_file".into(), config.display().to_string());
    options.insert("control_directory".into(), dir.display().to_string());
    options.insert(
        "connect_timeout".into(),
        settings.connect_timeout.to_string(),
    );
    options.insert(
        "server_alive_interval".into(),
        settings.server_alive_interval.to_string(),
    );
    // Strict is opendal's default; said here so no option can weaken it.
    options.insert("known_hosts_strategy".into(), "strict".into());
    Ok(BackendSpec {
        repository: spec.repository.clone(),
        options,
    })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Where the server is.
    pub resolved: Resolved,
    /// The fingerprint of the server's key that ssh accepted.
    pub fingerprint: String,
    /// Whether that key is pinned in the config (otherwise ssh's own `known_hosts` vouched).
    pub pinned: bool,
}

/// The checks every open does (reachable, host key, login, sftp subsystem), for `doctor`.
pub fn verify(spec: &BackendSpec, ssh_dir: &Path) -> Result<Verified, SftpError> {
    let settings = Settings::from_spec(spec)?;
    let dir = process_dir(ssh_dir)?;
    let config = write_files(&settings, &dir)?;
    let resolved = resolve(&settings, &config)?;
    check_server(&settings, &resolved, &config)?;
    let (fingerprint, pinned) = if let Some(key) = &settings.host_key {
        (fingerprint(key)?, true)
    } else {
        let offered = keyscan(&settings, &resolved, None)?;
        let first = offered.into_iter().next().map(|k| k.fingerprint);
        (first.unwrap_or_else(|| "(not shown)".into()), false)
    };
    Ok(Verified {
        resolved,
        fingerprint,
        pinned,
    })
}

/// Resolves where `spec` connects to and the fingerprint of the key the server offers now
/// (for `setup` and `doctor`), without trusting or pinning anything.
pub fn scan(spec: &BackendSpec, ssh_dir: &Path) -> Result<(Resolved, Vec<ScannedKey>), SftpError> {
    let settings = Settings::from_spec(spec)?;
    let dir = process_dir(ssh_dir)?;
    let config = write_files(&settings, &dir)?;
    let resolved = resolve(&settings, &config)?;
    reachable(&settings, &resolved)?;
    let keys = keyscan(&settings, &resolved, None)?;
    if keys.is_empty() {
        return Err(unreachable(
            &resolved,
            format!("no host key within {} s", settings.connect_timeout),
        ));
    }
    Ok((resolved, keys))
}

/// A host key the server offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedKey {
    /// `type base64`, the value for `host-key`.
    pub key: String,
    /// `SHA256:...`.
    pub fingerprint: String,
}

/// The scanned key `wanted` names: a fingerprint (`SHA256:...`) or the key itself.
pub fn select_host_key<'a>(keys: &'a [ScannedKey], wanted: &str) -> Option<&'a ScannedKey> {
    let wanted = wanted.trim();
    let as_key = parse_host_key(wanted).ok();
    keys.iter()
        .find(|k| k.fingerprint == wanted || as_key.as_deref() == Some(k.key.as_str()))
}

/// The key to offer for pinning: ed25519 when the server has one (what ssh prefers).
pub fn preferred_host_key(keys: &[ScannedKey]) -> Option<&ScannedKey> {
    keys.iter()
        .find(|k| k.key.starts_with("ssh-ed25519 "))
        .or_else(|| keys.first())
}

/// The pinned key's fingerprint, if `spec` pins one.
pub fn pinned_fingerprint(spec: &BackendSpec) -> Result<Option<String>, SftpError> {
    let settings = Settings::from_spec(spec)?;
    settings.host_key.as_deref().map(fingerprint).transpose()
}

fn process_dir(ssh_dir: &Path) -> Result<PathBuf, SftpError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SftpError::Io { path, source }
    };
    sweep(ssh_dir);
    let dir = ssh_dir.join(std::process::id().to_string());
    if dir.as_os_str().len() > MAX_SOCKET_DIR {
        return Err(SftpError::Io {
            path: dir,
            source: std::io::Error::other(
                "too long for ssh's control sockets (at most 76 bytes); use a shorter state \
                 directory",
            ),
        });
    }
    crate::durable::create_dir_all(&dir, 0o700).map_err(io(&dir))?;
    OPENED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(dir.clone());
    Ok(dir)
}

fn write_files(settings: &Settings, dir: &Path) -> Result<PathBuf, SftpError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SftpError::Io { path, source }
    };
    let known_hosts = dir.join("known_hosts");
    let mut config = String::from(
        "# Written by kopi-docka for its SFTP repository on every run; edits are lost.\n\
         # The settings of this block come first so nothing below can override them.\n",
    );
    let mut lines = vec![format!("Host {}", settings.host)];
    if let Some(key) = &settings.host_key {
        lines.push(format!("  HostKeyAlias {HOST_KEY_ALIAS}"));
        crate::durable::write_file(
            &known_hosts,
            format!("{HOST_KEY_ALIAS} {key}\n").as_bytes(),
            0o600,
        )
        .map_err(io(&known_hosts))?;
        lines.push(format!("  UserKnownHostsFile {}", known_hosts.display()));
        lines.push("  GlobalKnownHostsFile /dev/null".into());
    }
    for line in [
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  BatchMode yes",
        "  ServerAliveCountMax 3",
        "Host *",
    ] {
        lines.push(line.into());
    }
    lines.push(match &settings.ssh_config {
        Some(path) => format!("Include {}", path.display()),
        None => "Include ~/.ssh/config".into(),
    });
    lines.push("Include /etc/ssh/ssh_config".into());
    for line in lines {
        config.push_str(&line);
        config.push('\n');
    }
    let path = dir.join("config");
    crate::durable::write_file(&path, config.as_bytes(), 0o600).map_err(io(&path))?;
    Ok(path)
}

/// `ssh -G`: the host, port and user ssh will use.
fn resolve(settings: &Settings, config: &Path) -> Result<Resolved, SftpError> {
    let mut command = Command::new("ssh");
    command.arg("-G").arg("-F").arg(config);
    if let Some(port) = settings.port {
        command.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &settings.user {
        command.arg("-l").arg(user);
    }
    let output = command
        .arg("--")
        .arg(&settings.host)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SftpError::Tool {
            program: "ssh",
            source,
        })?;
    let failed = |detail: String| SftpError::Resolve {
        host: settings.host.clone(),
        detail,
    };
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            k.eq_ignore_ascii_case(key).then(|| v.trim().to_owned())
        })
    };
    Ok(Resolved {
        host: settings.host.clone(),
        hostname: value("hostname").ok_or_else(|| failed("no hostname in `ssh -G`".into()))?,
        port: value("port")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| failed("no port in `ssh -G`".into()))?,
        user: value("user").unwrap_or_default(),
    })
}

fn unreachable(resolved: &Resolved, detail: String) -> SftpError {
    SftpError::Unreachable {
        host: resolved.host.clone(),
        address: resolved.address(),
        detail,
    }
}

fn reachable(settings: &Settings, resolved: &Resolved) -> Result<(), SftpError> {
    let timeout = Duration::from_secs(settings.connect_timeout);
    let addresses = (resolved.hostname.as_str(), resolved.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(resolved, e.to_string()))?;
    let mut last = String::from("the name resolves to no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(resolved, last))
}

/// Reachable, the expected host key, the login accepted, the sftp subsystem there: one
/// `ssh -s sftp` with the same settings the backend uses, ended at once (no master is left).
/// ssh itself enforces the host key; `ssh-keyscan` only names the fingerprints in the error.
fn check_server(settings: &Settings, resolved: &Resolved, config: &Path) -> Result<(), SftpError> {
    reachable(settings, resolved)?;
    let mut command = Command::new("ssh");
    command
        .arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o"])
        .arg(format!("ConnectTimeout={}", settings.connect_timeout))
        .arg("-o")
        .arg(format!(
            "ServerAliveInterval={}",
            settings.server_alive_interval
        ));
    if let Some(port) = settings.port {
        command.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &settings.user {
        command.arg("-l").arg(user);
    }
    if let Some(key) = &settings.key {
        command.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    let output = command
        .args(["-s", "--"])
        .arg(&settings.host)
        .arg("sftp")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| SftpError::Tool {
            program: "ssh",
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('@'))
        .collect::<Vec<_>>()
        .join(" ");
    if detail.contains("Host key verification failed")
        || detail.contains("IDENTIFICATION HAS CHANGED")
        || detail.contains("host key is known")
    {
        return Err(host_key_error(settings, resolved)?);
    }
    if detail.contains("Permission denied") || detail.contains("Too many authentication") {
        return Err(SftpError::LoginRefused {
            host: resolved.host.clone(),
            address: resolved.address(),
            user: resolved.user.clone(),
            detail,
        });
    }
    if detail.contains("timed out") || detail.contains("Connection refused") {
        return Err(unreachable(resolved, detail));
    }
    Err(SftpError::Ssh {
        host: resolved.host.clone(),
        address: resolved.address(),
        detail,
    })
}

/// The error for a host key ssh refused: both fingerprints when one is pinned, the offered
/// one and what to pin otherwise.
fn host_key_error(settings: &Settings, resolved: &Resolved) -> Result<SftpError, SftpError> {
    let Some(pinned) = &settings.host_key else {
        let offered = keyscan(settings, resolved, Some("ed25519"))?
            .into_iter()
            .next()
            .or(keyscan(settings, resolved, None)?.into_iter().next());
        return Ok(match offered {
            Some(offered) => SftpError::HostKeyUnknown {
                host: resolved.host.clone(),
                address: resolved.address(),
                offered: offered.fingerprint,
                key: offered.key,
            },
            None => unreachable(resolved, "it offered no host key".into()),
        });
    };
    let kind = pinned.split(' ').next().unwrap_or_default();
    let offered = match keyscan(settings, resolved, Some(kind))?.into_iter().next() {
        Some(same_type) => same_type.fingerprint,
        None => match keyscan(settings, resolved, None)?.into_iter().next() {
            Some(other) => format!("{} (no {kind} key at all)", other.fingerprint),
            None => return Ok(unreachable(resolved, "it offered no host key".into())),
        },
    };
    Ok(SftpError::HostKeyChanged {
        host: resolved.host.clone(),
        address: resolved.address(),
        pinned: fingerprint(pinned)?,
        offered,
    })
}

/// `ssh-keyscan`: the keys the server offers (of `kind`, or all).
fn keyscan(
    settings: &Settings,
    resolved: &Resolved,
    kind: Option<&str>,
) -> Result<Vec<ScannedKey>, SftpError> {
    let mut command = Command::new("ssh-keyscan");
    command
        .arg("-T")
        .arg(settings.connect_timeout.to_string())
        .arg("-p")
        .arg(resolved.port.to_string());
    if let Some(kind) = kind {
        command.arg("-t").arg(keyscan_type(kind));
    }
    let output = command
        .arg("--")
        .arg(&resolved.hostname)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|source| SftpError::Tool {
            program: "ssh-keyscan",
            source,
        })?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| parse_host_key(l).ok())
        .map(|key| {
            Ok(ScannedKey {
                fingerprint: fingerprint(&key)?,
                key,
            })
        })
        .collect()
}

/// ssh-keyscan's `-t` names for a key type.
fn keyscan_type(kind: &str) -> &str {
    match kind {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" => "rsa",
        k if k.starts_with("ecdsa-") => "ecdsa",
        k => k,
    }
}

/// The file name of the key `kopi-docka setup` generates, in `<config dir>/ssh/` (where a
/// disaster-recovery bundle installs the key it carries, too).
pub const GENERATED_KEY: &str = "id_ed25519";

/// A key pair for logging in to the SFTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key (mode 0600).
    pub private: PathBuf,
    /// The public key line, `ssh-ed25519 AAAA... comment`.
    pub public: String,
    /// Whether it was generated now (otherwise it was there and is reused).
    pub generated: bool,
}

/// An ed25519 key without a passphrase at `path` (its directory 0700, the key 0600), made by
/// `ssh-keygen`. A key already there is reused, never overwritten: it may be installed on
/// servers already.
pub fn generate_key(path: &Path, comment: &str) -> Result<KeyPair, SftpError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SftpError::Io { path, source }
    };
    let public_path = path.with_extension("pub");
    let generated = !path.exists();
    if generated {
        if let Some(dir) = path.parent() {
            crate::durable::create_dir_all(dir, 0o700).map_err(io(dir))?;
        }
        let output = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SftpError::Tool {
                program: "ssh-keygen",
                source,
            })?;
        if !output.status.success() {
            return Err(SftpError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(
                    String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                ),
            });
        }
    }
    let public = std::fs::read_to_string(&public_path).map_err(io(&public_path))?;
    Ok(KeyPair {
        private: path.to_path_buf(),
        public: public.trim().to_owned(),
        generated,
    })
}

/// The shell command run on the server to add a key read from stdin, with `ssh-copy-id`'s
/// semantics: into `~/.ssh/authorized_keys` of the user ssh logs in as (created 0700/0600),
/// appended once (a key already there is not added again), after a newline when the file
/// does not end with one. Run by `sh` whatever the user's login shell is.
const INSTALL_SCRIPT: &str = "exec sh -c 'cd || exit 1; umask 077; mkdir -p .ssh || exit 1; \
     f=.ssh/authorized_keys; IFS= read -r key || exit 1; \
     if [ -f \"$f\" ] && grep -qxF \"$key\" \"$f\"; then exit 0; fi; \
     if [ -s \"$f\" ] && [ -n \"$(tail -c1 \"$f\")\" ]; then echo >> \"$f\" || exit 1; fi; \
     echo \"$key\" >> \"$f\"'";

/// Installs `public_key` on the SFTP server of `spec` (`ssh-copy-id` semantics: appended to
/// `~/.ssh/authorized_keys` of the user the location names, or the ssh config's user; never
/// assumed to be root). ssh logs in the way it would without kopi-docka's key: the user's own
/// keys or agent, or a password that ssh itself asks for on the terminal (never on a command
/// line; only when `may_ask`, otherwise ssh runs in batch mode). The host key must be pinned
/// in `spec`: the password only goes to that server.
pub fn install_key(
    spec: &BackendSpec,
    ssh_dir: &Path,
    public_key: &str,
    may_ask: bool,
) -> Result<Resolved, SftpError> {
    let mut settings = Settings::from_spec(spec)?;
    if settings.host_key.is_none() {
        return Err(SftpError::BadOption {
            name: HOST_KEY,
            value: String::new(),
            reason: "pin the server's host key before a key is installed on it".into(),
        });
    }
    // The new key is not on the server yet: log in the way `ssh` would without it.
    settings.key = None;
    let dir = process_dir(ssh_dir)?;
    let config = write_files(&settings, &dir)?;
    let resolved = resolve(&settings, &config)?;
    reachable(&settings, &resolved)?;
    let mut command = Command::new("ssh");
    command
        .arg("-F")
        .arg(&config)
        // The config says BatchMode yes (no prompts ever during backups); a command-line
        // option wins, and this one login may ask for the password on the terminal.
        .arg("-o")
        .arg(if may_ask {
            "BatchMode=no"
        } else {
            "BatchMode=yes"
        })
        .args(["-o", "LogLevel=ERROR", "-o"])
        .arg(format!("ConnectTimeout={}", settings.connect_timeout))
        .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-T"]);
    if let Some(port) = settings.port {
        command.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &settings.user {
        command.arg("-l").arg(user);
    }
    let mut child = command
        .arg("--")
        .arg(&settings.host)
        .arg(INSTALL_SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SftpError::Tool {
            program: "ssh",
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error means ssh already ended; its exit status and message tell why.
        if let Err(error) = stdin.write_all(format!("{}\n", public_key.trim()).as_bytes()) {
            tracing::debug!(%error, "ssh took no key on stdin");
        }
    }
    let output = child.wait_with_output().map_err(|source| SftpError::Tool {
        program: "ssh",
        source,
    })?;
    if output.status.success() {
        return Ok(resolved);
    }
    let detail = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('@'))
        .collect::<Vec<_>>()
        .join(" ");
    if detail.contains("Permission denied") || detail.contains("Too many authentication") {
        return Err(SftpError::LoginRefused {
            host: resolved.host.clone(),
            address: resolved.address(),
            user: resolved.user.clone(),
            detail,
        });
    }
    Err(SftpError::Ssh {
        host: resolved.host.clone(),
        address: resolved.address(),
        detail: if detail.is_empty() {
            format!(
                "adding the key to ~/.ssh/authorized_keys failed ({})",
                output.status
            )
        } else {
            detail
        },
    })
}

/// Where the SFTP server of `spec` is, after ssh's configuration (for messages that tell the
/// user what to install where).
pub fn resolve_location(spec: &BackendSpec, ssh_dir: &Path) -> Result<Resolved, SftpError> {
    let settings = Settings::from_spec(spec)?;
    let dir = process_dir(ssh_dir)?;
    let config = write_files(&settings, &dir)?;
    resolve(&settings, &config)
}

/// `SHA256:...` of a `type base64` key, by `ssh-keygen -lf -`.
pub fn fingerprint(key: &str) -> Result<String, SftpError> {
    let io = |source| SftpError::Tool {
        program: "ssh-keygen",
        source,
    };
    let mut child = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{key}\n").as_bytes()).map_err(io)?;
    }
    let output = child.wait_with_output().map_err(io)?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_owned)
        .ok_or_else(|| SftpError::BadOption {
            name: HOST_KEY,
            value: key.to_owned(),
            reason: "ssh-keygen does not read it as a public key".into(),
        })
}

/// Tells the ssh control masters this process started to exit and removes its directory.
///
/// opendal keeps its connections for the life of the process and never closes them; without
/// this every command would leave `ssh -M` processes behind. Call it once, when the command
/// is done (the CLI does, also after a failed command).
pub fn close_connections() {
    let dirs = std::mem::take(
        &mut *OPENED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for dir in dirs {
        close_dir(&dir);
    }
}

fn close_dir(dir: &Path) {
    // The masters' PIDs first: a master that is already exiting (opendal's own clean-up may
    // have asked it) no longer answers on its socket, but must still be waited for.
    let pids = master_pids(dir);
    for socket in masters(dir) {
        let exit = Command::new("ssh")
            .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-S"])
            .arg(&socket)
            .args(["-O", "exit", HOST_KEY_ALIAS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !exit.is_ok_and(|s| s.success()) {
            tracing::debug!(socket = %socket.display(), "ssh master did not take the exit request");
        }
    }
    // They answer before they exit: wait (at most five seconds), then SIGTERM what is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for pid in pids.into_iter().filter(|p| alive(*p)) {
        tracing::warn!(
            pid = pid.as_raw_nonzero(),
            "ssh master ignored the exit request; SIGTERM"
        );
        if let Err(error) = rustix::process::kill_process(pid, rustix::process::Signal::TERM) {
            tracing::warn!(%error, "could not end the ssh master");
        }
    }
    if let Err(error) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), %error, "could not remove the ssh directory");
    }
}

/// The `ssh -M` processes whose control socket is in `dir` (from their command lines: the
/// openssh crate starts them with `-S <dir>/.ssh-connectionXXXXXX/master`).
fn master_pids(dir: &Path) -> Vec<rustix::process::Pid> {
    let prefix = format!("{}/.ssh-connection", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_ssh = args.first().is_some_and(|a| a.ends_with(b"ssh"));
            let is_master = args.contains(&b"-M".as_slice());
            let ours = args.iter().any(|a| a.starts_with(prefix.as_bytes()));
            (is_ssh && is_master && ours)
                .then(|| rustix::process::Pid::from_raw(pid))
                .flatten()
        })
        .collect()
}

/// Running (a zombie waiting for a parent that may never reap it counts as gone).
fn alive(pid: rustix::process::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The control sockets openssh created in `dir` (`.ssh-connection*/master`).
fn masters(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ssh-connection")
        })
        .map(|e| e.path().join("master"))
        .filter(|p| p.exists())
        .collect()
}

/// Closes the masters of kopi-docka processes that ended without [`close_connections`]
/// (killed), and removes their directories.
fn sweep(ssh_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(ssh_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            close_dir(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(split_endpoint("nas"), ("nas".into(), None));
        assert_eq!(
            split_endpoint("ssh://127.0.0.1:2222"),
            ("127.0.0.1".into(), Some(2222))
        );
        assert_eq!(
            split_endpoint("ssh://[fd00::5]:22"),
            ("fd00::5".into(), Some(22))
        );
    }

    #[test]
    fn host_keys() {
        assert_eq!(
            parse_host_key("ssh-ed25519 AAAAC3x root@nas").unwrap(),
            "ssh-ed25519 AAAAC3x"
        );
        assert_eq!(
            parse_host_key("[127.0.0.1]:2222 ssh-ed25519 AAAAC3x").unwrap(),
            "ssh-ed25519 AAAAC3x"
        );
        for bad in ["SHA256:abc", "ssh-ed25519", "nonsense words"] {
            let message = parse_host_key(bad).unwrap_err().to_string();
            assert!(message.contains("host-key"), "{message}");
            assert!(message.contains("ssh-ed25519 AAAAC3Nza"), "{message}");
        }
    }
}
