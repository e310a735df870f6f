//! Disaster recovery: one encrypted bundle with everything needed to reach the repository from
//! a bare machine, and installing it there.
//!
//! Bundle layout (a tar archive inside an age file):
//! - `config.toml`: the effective configuration, rewritten to be self-contained: the resolved
//!   repository location, `password-file = "repository.password"`, and the host name pinned to
//!   the exporting host's, so the new machine continues its history;
//! - `repository.password` (0600);
//! - `original-config.toml`: the config file as the user wrote it (comments included);
//! - `rclone/rclone.conf` for rclone repositories, `credentials/backend.env` when
//!   `[repository] env-file` is set (both installed beside the config, whatever the bundle
//!   says), `ssh/<key>` only when asked for;
//! - `recovery-info.json` ([`RecoveryInfo`]) and `RECOVERY.md` (step by step, bare machine).

pub mod bundle;
pub mod export;
pub mod import;
mod refresh;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use bundle::{Bundle, Passphrase};
pub use export::ExportReport;
pub use import::{ImportError, ImportOutcome, ImportReport, UnitRestore};
pub use refresh::{RefreshError, RefreshReport, given_passphrase, refresh};

use crate::config::{Config, LoadedConfig, RemoteBackend, RepositoryLocation};
use crate::repo::{Repo, RepoSettings, SnapshotFilter};

/// Environment variable that may hold the bundle passphrase.
pub const PASSPHRASE_ENV: &str = "KOPI_DOCKA_DR_PASSPHRASE";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    /// The repository password could not be read.
    #[error("reading the repository password: {0}")]
    Password(#[from] crate::repo::PasswordError),
    /// Building or reading the archive failed.
    #[error("bundle archive: {0}")]
    Archive(std::io::Error),
    /// Writing the encrypted output failed.
    #[error("writing the bundle: {0}")]
    Write(std::io::Error),
    /// The output file cannot be created (it exists, or the directory is not writable).
    #[error("cannot create {path}: {source} (an existing bundle is never overwritten)")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle file cannot be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file the bundle needs cannot be read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Installing a file failed.
    #[error("cannot install {path}: {source}")]
    Install {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The passphrase does not open the bundle.
    #[error(
        "wrong passphrase: it does not open this bundle (or the bundle's first lines are damaged)"
    )]
    WrongPassphrase,
    /// The file was changed or cut short.
    #[error("the bundle is damaged or truncated ({0}); use another copy")]
    Corrupt(String),
    /// The file is not a bundle.
    #[error("not a kopi-docka disaster-recovery bundle: {0}")]
    NotABundle(String),
    /// A passphrase too short to be safe.
    #[error(
        "the passphrase is too short: use at least 12 characters (or let kopi-docka generate one)"
    )]
    WeakPassphrase,
    /// `--include-ssh-key` without a key to include.
    #[error("--include-ssh-key: no SSH key found ({0})")]
    NoSshKey(String),
}

impl DrError {
    fn from_age(error: age::DecryptError) -> Self {
        match error {
            // At the header stage a failed unwrap of the file key means the passphrase is wrong
            // (or the few bytes of its stanza are damaged: the message says both).
            age::DecryptError::NoMatchingKeys
            | age::DecryptError::KeyDecryptionFailed
            | age::DecryptError::DecryptionFailed => Self::WrongPassphrase,
            age::DecryptError::InvalidHeader => Self::NotABundle(
                "no age header (it is not an age file, or its start is damaged)".into(),
            ),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// `recovery-info.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryInfo {
    /// When the bundle was made (UTC).
    pub created_at: jiff::Timestamp,
    /// Host name the backups are recorded under.
    pub host: String,
    /// kopi-docka version that made it.
    pub tool_version: String,
    /// Repository location.
    pub repository: String,
    /// Where `rclone.conf` was on the exporting host, when included.
    #[serde(default)]
    pub rclone_config: Option<PathBuf>,
    /// Each unit's newest restore point.
    pub units: Vec<UnitPoint>,
}

/// A unit's newest restore point at export time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitPoint {
    /// Unit name.
    pub unit: String,
    /// `stack` or `standalone`.
    pub kind: String,
    /// Backup id.
    pub backup_id: String,
    /// When (UTC).
    pub time: jiff::Timestamp,
}

/// What goes into a bundle besides the essentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportOptions {
    /// Include the SSH private key of an SFTP repository.
    pub include_ssh_key: bool,
}

/// Builds the bundle for `loaded`: reads the password, lists the restore points.
pub async fn build(
    loaded: &LoadedConfig,
    repo: &Repo,
    options: ExportOptions,
) -> Result<(Bundle, RecoveryInfo), DrError> {
    let settings = RepoSettings::from_config(loaded)?;
    let password = settings.password.read()?;
    let location = loaded.repository_location();
    let mut config = loaded.config.clone();
    config.repository.location = Some(location.clone());
    config.repository.password_file = Some(PathBuf::from("repository.password"));
    config.repository.password_command = None;
    config.repository.hostname = Some(settings.hostname.clone());
    let mut bundle = Bundle::default();
    if options.include_ssh_key {
        let key = ssh_key(loaded)?;
        let name = key
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        bundle.add(&format!("ssh/{name}"), 0o600, read(&key)?);
        config
            .repository
            .options
            .insert("key".into(), format!("ssh/{name}"));
    }
    let rclone_config = match &location {
        RepositoryLocation::Remote {
            backend: RemoteBackend::Rclone,
            ..
        } => rclone_config(loaded).filter(|p| p.exists()),
        _ => None,
    };
    if let Some(path) = &rclone_config {
        bundle.add("rclone/rclone.conf", 0o600, read(path)?);
        config.repository.rclone_config = Some(PathBuf::from("rclone.conf"));
    }
    if let Some(path) = &loaded.config.repository.env_file {
        let text = crate::durable::read_private(path).map_err(|e| DrError::Input {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        bundle.add("credentials/backend.env", 0o600, text.into_bytes());
        config.repository.env_file = Some(PathBuf::from("backend.env"));
    }
    let config_text =
        toml::to_string_pretty(&config).map_err(|e| DrError::Archive(std::io::Error::other(e)))?;
    bundle.add("config.toml", 0o600, config_text.into_bytes());
    bundle.add(
        "repository.password",
        0o600,
        format!("{}\n", password.expose()).into_bytes(),
    );
    if let Some(path) = &loaded.path {
        bundle.add("original-config.toml", 0o600, read(path)?);
    }
    let info = RecoveryInfo {
        created_at: jiff::Timestamp::now(),
        host: settings.hostname.clone(),
        tool_version: crate::VERSION.to_owned(),
        repository: location.to_string(),
        rclone_config,
        units: latest_points(repo, &settings.hostname).await?,
    };
    let info_json =
        serde_json::to_vec_pretty(&info).map_err(|e| DrError::Archive(std::io::Error::other(e)))?;
    bundle.add("recovery-info.json", 0o644, info_json);
    bundle.add("RECOVERY.md", 0o644, recovery_md(&info).into_bytes());
    Ok((bundle, info))
}

fn read(path: &Path) -> Result<Vec<u8>, DrError> {
    std::fs::read(path).map_err(|source| DrError::Input {
        path: path.to_path_buf(),
        source,
    })
}

async fn latest_points(repo: &Repo, host: &str) -> Result<Vec<UnitPoint>, DrError> {
    let snapshots = repo
        .snapshots(SnapshotFilter {
            host: Some(host.to_owned()),
            ..SnapshotFilter::default()
        })
        .await?;
    Ok(
        crate::restore::newest_per_unit(crate::restore::group(&snapshots))
            .into_iter()
            .filter_map(|u| u.point)
            .map(|p| UnitPoint {
                unit: p.unit,
                kind: p.kind.to_string(),
                backup_id: p.backup_id.to_string(),
                time: p.time,
            })
            .collect(),
    )
}

fn ssh_key(loaded: &LoadedConfig) -> Result<PathBuf, DrError> {
    if let Some(key) = loaded.config.repository.options.get("key") {
        return Ok(PathBuf::from(key));
    }
    let home = loaded
        .env
        .home
        .clone()
        .ok_or_else(|| DrError::NoSshKey("no `key` option and no $HOME".into()))?;
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .find(|p| p.exists())
        .ok_or_else(|| {
            DrError::NoSshKey(format!(
                "no `key` option in [repository.options] and no id_ed25519, id_ecdsa or id_rsa \
                 in {}/.ssh",
                home.display()
            ))
        })
}

fn rclone_config(loaded: &LoadedConfig) -> Option<PathBuf> {
    if let Some(path) = &loaded.config.repository.rclone_config {
        return Some(path.clone());
    }
    std::env::var_os("RCLONE_CONFIG")
        .map(PathBuf::from)
        .or_else(|| {
            loaded
                .env
                .home
                .as_ref()
                .map(|h| h.join(".config/rclone/rclone.conf"))
        })
}

/// Decrypts, authenticates and checks a bundle.
pub fn open(
    sealed: impl std::io::Read,
    passphrase: &Passphrase,
) -> Result<(Bundle, RecoveryInfo), DrError> {
    let plaintext = bundle::decrypt(sealed, passphrase)?;
    let bundle = Bundle::from_tar(&plaintext)?;
    for required in ["config.toml", "repository.password", "recovery-info.json"] {
        if bundle.get(required).is_none() {
            return Err(DrError::NotABundle(format!("{required} is missing")));
        }
    }
    let info: RecoveryInfo = bundle
        .get("recovery-info.json")
        .map(|e| serde_json::from_slice(&e.data))
        .transpose()
        .map_err(|e| DrError::NotABundle(format!("recovery-info.json: {e}")))?
        .ok_or_else(|| DrError::NotABundle("recovery-info.json is missing".into()))?;
    Ok((bundle, info))
}

/// One file an import writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstallFile {
    /// Where it goes.
    pub path: PathBuf,
    /// Permission bits.
    pub mode: u32,
    /// An existing different file is there (it is kept as `*.kopi-docka-<time>.bak`).
    pub replaces: bool,
    /// Where the replaced file was kept, once installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<PathBuf>,
    #[serde(skip)]
    data: Vec<u8>,
}

/// Computes what installing `bundle` with its config at `config_path` writes: the config
/// (repository password and SSH key paths made absolute), the password file, the SSH key,
/// `rclone.conf` and the credentials env file beside it.
pub fn plan_install(
    bundle: &Bundle,
    _info: &RecoveryInfo,
    config_path: &Path,
) -> Result<Vec<InstallFile>, DrError> {
    let dir = config_path.parent().unwrap_or(Path::new("/"));
    let text = bundle
        .get("config.toml")
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .unwrap_or_default();
    let mut config: Config =
        toml::from_str(&text).map_err(|e| DrError::NotABundle(format!("config.toml: {e}")))?;
    config.repository.password_file = Some(dir.join("repository.password"));
    let mut files = Vec::new();
    for entry in &bundle.entries {
        let dest = match entry.name.as_str() {
            "repository.password" => dir.join("repository.password"),
            name if name.starts_with("ssh/") => {
                // The key goes to `<config dir>/ssh/<its file name>`; a bundle naming any other
                // place (`ssh/../../etc/x`, `ssh/a/b`) is not one we wrote.
                let file_name = &name["ssh/".len()..];
                if file_name.is_empty()
                    || file_name.contains('/')
                    || file_name == "."
                    || file_name == ".."
                {
                    return Err(DrError::NotABundle(format!(
                        "entry `{name}`: an SSH key must be `ssh/<file name>`"
                    )));
                }
                let dest = dir.join("ssh").join(file_name);
                config
                    .repository
                    .options
                    .insert("key".into(), dest.display().to_string());
                dest
            }
            // Fixed places beside the config, never a path the bundle names.
            "rclone/rclone.conf" => {
                let dest = dir.join("rclone.conf");
                config.repository.rclone_config = Some(dest.clone());
                dest
            }
            "credentials/backend.env" => {
                let dest = dir.join("backend.env");
                config.repository.env_file = Some(dest.clone());
                dest
            }
            _ => continue,
        };
        files.push(file(dest, 0o600, entry.data.clone()));
    }
    let config_text =
        toml::to_string_pretty(&config).map_err(|e| DrError::Archive(std::io::Error::other(e)))?;
    files.insert(
        0,
        file(config_path.to_path_buf(), 0o600, config_text.into_bytes()),
    );
    Ok(files)
}

fn file(path: PathBuf, mode: u32, data: Vec<u8>) -> InstallFile {
    let replaces = std::fs::read(&path).is_ok_and(|old| old != data);
    InstallFile {
        path,
        mode,
        replaces,
        backup: None,
        data,
    }
}

/// Writes the planned files atomically with their modes; a different existing file is first
/// renamed to `<name>.kopi-docka-<stamp>.bak`.
pub fn install(files: &mut [InstallFile], stamp: &str) -> Result<(), DrError> {
    for f in files.iter_mut() {
        let fail = |source| DrError::Install {
            path: f.path.clone(),
            source,
        };
        if let Some(parent) = f.path.parent() {
            crate::durable::create_dir_all(parent, 0o700).map_err(fail)?;
        }
        if f.replaces {
            f.backup =
                crate::durable::keep_aside(&f.path, stamp).map_err(|source| DrError::Install {
                    path: f.path.clone(),
                    source,
                })?;
        }
        crate::durable::write_file(&f.path, &f.data, f.mode).map_err(|source| {
            DrError::Install {
                path: f.path.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

/// Step-by-step instructions for a bare Debian or Ubuntu machine.
pub fn recovery_md(info: &RecoveryInfo) -> String {
    let units = info.units.iter().fold(String::new(), |mut out, u| {
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            u.unit, u.kind, u.backup_id, u.time
        );
        out
    });
    format!(
        r"# Disaster recovery for {host}

Bundle made {created} (UTC) by kopi-docka {version}.
Repository: `{repo}`

## 1. Prepare the new machine (Debian or Ubuntu, as root)

    apt-get update
    apt-get install -y docker.io docker-compose age
    systemctl enable --now docker

Install kopi-docka (the same version or newer): copy the binary to /usr/local/bin, or
`cargo install --locked --path crates/cli` from its source.

Make sure the repository is reachable from this machine (network, firewall, the SFTP host's
key in ~/.ssh/known_hosts, cloud credentials).

## 2. Install the bundle and bring everything back

    kopi-docka disaster-recovery import BUNDLE.age --restore-all

It asks for the passphrase (or reads it from `--passphrase-file FILE` or
${env}), installs the configuration in /etc/kopi-docka (anything it replaces is kept as
`*.bak`), connects to the repository and restores and starts every unit from its newest
restore point. Without `--restore-all` it lists the units and the exact restore commands;
`--dry-run` shows what it would install and changes nothing.

The configuration keeps the host name `{host}`, so backups on the new machine continue this
machine's history.

## 3. Without kopi-docka

The bundle is a standard age file holding a tar archive:

    age -d -o bundle.tar BUNDLE.age     # asks for the passphrase
    tar -xf bundle.tar                  # config.toml, repository.password, ...

The repository is a restic repository: `restic -r {repo} --password-file repository.password
snapshots --tag kopi-docka` lists the backups, and `restic restore` gets files out of them.

## Units at the time of the bundle

| unit | kind | newest backup | time (UTC) |
|---|---|---|---|
{units}",
        host = info.host,
        created = info.created_at,
        version = info.tool_version,
        repo = info.repository,
        env = PASSPHRASE_ENV,
    )
}

/// Keeps the newest `keep` bundles of `host` in `dir` (by name, which sorts by time). Only
/// names that are exactly `kopi-docka-dr-<host>-<UTC time>.age` count: host `web` never
/// takes `kopi-docka-dr-web-2-...` (host `web-2`) for its own.
pub fn prune_bundles(dir: &Path, host: &str, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("kopi-docka-dr-{host}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".age"))
                    .is_some_and(is_stamp)
            })
        })
        .collect();
    found.sort();
    let excess = found.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = found.into_iter().take(excess).collect();
    for path in &removed {
        std::fs::remove_file(path)?;
    }
    Ok(removed)
}

/// Whether `text` is a [`crate::durable::stamp`]: `YYYYMMDDTHHMMSSZ`.
fn is_stamp(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host `web` keeps its own bundles only: `web-2`'s, `web-old`'s and stray files whose
    /// names merely start like its own are never pruned.
    #[test]
    fn pruning_matches_this_hosts_bundles_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let others = [
            "kopi-docka-dr-web-2-20250101T000000Z.age",
            "kopi-docka-dr-web-old-20250101T000000Z.age",
            "kopi-docka-dr-web-20250101T000000Z.age.partial.age",
        ];
        for name in others {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        for t in ["20260101T000000Z", "20260102T000000Z"] {
            std::fs::write(dir.path().join(format!("kopi-docka-dr-web-{t}.age")), "x").unwrap();
        }
        let removed = prune_bundles(dir.path(), "web", 1).unwrap();
        assert_eq!(
            removed,
            vec![dir.path().join("kopi-docka-dr-web-20260101T000000Z.age")]
        );
        for name in others {
            assert!(
                dir.path().join(name).exists(),
                "{name} was pruned by host web"
            );
        }
    }

    /// A bundle is decrypted with the user's passphrase but may still come from somewhere else:
    /// an SSH key entry that names another place than `<config dir>/ssh/<file>` is refused,
    /// and a plain one lands there.
    #[test]
    fn ssh_key_entries_cannot_name_a_path_outside_the_config_dir() {
        let info = RecoveryInfo {
            created_at: jiff::Timestamp::UNIX_EPOCH,
            host: "h".into(),
            tool_version: "0".into(),
            repository: "/r".into(),
            rclone_config: None,
            units: Vec::new(),
        };
        let config_path = Path::new("/etc/kopi-docka/config.toml");
        let with_key = |name: &str| {
            let mut bundle = Bundle::default();
            bundle.add(
                "config.toml",
                0o600,
                b"[repository]\nlocation = \"/r\"\n".to_vec(),
            );
            bundle.add(name, 0o600, b"KEY".to_vec());
            plan_install(&bundle, &info, config_path)
        };
        for hostile in [
            "ssh/../../root/.ssh/authorized_keys",
            "ssh/a/b",
            "ssh/..",
            "ssh/",
        ] {
            let err = with_key(hostile).expect_err(hostile);
            assert!(
                err.to_string().contains("ssh/<file name>"),
                "{hostile}: {err}"
            );
        }
        let files = with_key("ssh/id_ed25519").unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.path == Path::new("/etc/kopi-docka/ssh/id_ed25519")),
            "{:?}",
            files.iter().map(|f| &f.path).collect::<Vec<_>>()
        );
    }

    #[test]
    fn old_bundles_are_pruned_newest_kept() {
        let dir = tempfile::tempdir().unwrap();
        for t in ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"] {
            std::fs::write(dir.path().join(format!("kopi-docka-dr-h-{t}.age")), "x").unwrap();
        }
        std::fs::write(
            dir.path().join("kopi-docka-dr-other-20250101T000000Z.age"),
            "x",
        )
        .unwrap();
        let removed = prune_bundles(dir.path(), "h", 2).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(removed[0].ends_with("kopi-docka-dr-h-20260101T000000Z.age"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }
}
