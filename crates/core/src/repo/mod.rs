//! The repository engine: restic-format repositories through `rustic_core`.
//!
//! Rules this module owns:
//! - It is the only module that imports `rustic_core` / `rustic_backend`.
//! - rustic_core blocks (and its remote backends run their own runtimes): every call runs on a
//!   blocking thread, never on an async worker.
//! - Every operation holds kopi-docka's own lock for the repository ([`crate::lock`]):
//!   exclusive for writes, shared for reads. rustic_core takes no repository locks itself.
//! - Snapshots that do not carry the `kopi-docka` tag are listed by nobody here and never
//!   forgotten.
//! - The password goes from its source to rustic_core and nowhere else.

mod credentials;
mod location;
mod meta;
mod password;
mod progress;
pub mod sftp;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustic_backend::BackendOptions;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, Excludes, ForgetGroups, Grouped,
    KeepOptions, KeyOptions, LocalDestination, LsOptions, OpenStatus, ParentOptions, PathList,
    PruneOptions, ReadSubsetOption, Repository, RepositoryOptions, RestoreOptions, RusticError,
    ScryptParams, SnapshotGroupCriterion, SnapshotOptions,
};
use serde::Serialize;

pub use credentials::{CredentialsError, env_text_options};
pub use location::{BackendSpec, LocationError, backend_spec};
pub use meta::{
    BackupId, MARKER, MetaError, Part, Pass, PointStatus, RootMeta, Scope, SnapshotMeta, UnitRef,
};
pub use password::{PASSWORD_ENV, Password, PasswordError, PasswordSource, write_password_file};

use crate::config::{LoadedConfig, RepositoryLocation, RetentionConfig};
use crate::lock::{Lock, LockError, LockMode};
use crate::progress::{ProgressSink, Silent};

/// Data pack size of new repositories, in MiB: restic's default.
const DATA_PACK_MIB: u64 = 16;

/// Everything needed to reach a repository.
#[derive(Debug, Clone)]
pub struct RepoSettings {
    /// Where it is.
    pub location: RepositoryLocation,
    /// How rustic_backend reaches it.
    pub backend: BackendSpec,
    /// Where the password comes from.
    pub password: PasswordSource,
    /// Host name recorded in new snapshots.
    pub hostname: String,
    /// zstd level for a new repository (0 = library default).
    pub compression: i32,
    /// What `forget` keeps.
    pub retention: RetentionConfig,
    /// Index cache.
    pub cache_dir: PathBuf,
    /// Lock files.
    pub lock_dir: PathBuf,
    /// ssh settings and control sockets of SFTP repositories ([`sftp`]).
    pub ssh_dir: PathBuf,
}

impl RepoSettings {
    /// Resolves the settings from the loaded configuration.
    pub fn from_config(loaded: &LoadedConfig) -> Result<Self, RepoError> {
        let repo = &loaded.config.repository;
        let location = loaded.repository_location();
        let password = match (&repo.password_file, &repo.password_command) {
            (Some(file), _) => PasswordSource::File(file.clone()),
            (None, Some(command)) => PasswordSource::Command(command.clone()),
            (None, None) => PasswordSource::Env,
        };
        let hostname = match &repo.hostname {
            Some(name) => name.clone(),
            None => this_hostname(),
        };
        // Derived first, then the credentials files, then `[repository] options` (the most
        // specific) win.
        let mut options = std::collections::BTreeMap::new();
        if let Some(file) = &repo.env_file {
            options.extend(credentials::env_file_options(&location, file)?);
        }
        if let Some(file) = &repo.rclone_config {
            options.insert(
                "rclone-command".to_owned(),
                credentials::rclone_command(file)?,
            );
        }
        options.extend(repo.options.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Self {
            backend: backend_spec(&location, &options)?,
            location,
            password,
            hostname,
            compression: repo.compression,
            retention: loaded.config.retention.clone(),
            cache_dir: loaded.env.cache_dir().join("repository"),
            lock_dir: loaded.env.state_dir().locks(),
            ssh_dir: loaded.env.state_dir().ssh_dir(),
        })
    }
}

/// This machine's host name.
pub fn this_hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Everything that can go wrong with the repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// Nothing at the location.
    #[error(
        "no repository at {location}: create one with `kopi-docka admin repo init`, or fix \
         [repository] location"
    )]
    NotFound {
        /// The location.
        location: String,
    },
    /// The location is something other than a repository.
    #[error("{location} is not a repository: {reason}")]
    NotARepository {
        /// The location.
        location: String,
        /// What is there instead.
        reason: String,
    },
    /// The first request to a remote repository failed.
    #[error(
        "cannot reach the repository at {location}: check that the server is up and reachable \
         from this host, and the credentials ([repository] env-file). The backend said: {detail}"
    )]
    Unreachable {
        /// The location.
        location: String,
        /// The backend's error and its cause.
        detail: String,
    },
    /// The server answered, and refused the credentials (HTTP 401/403, opendal's
    /// `PermissionDenied`): a wrong key, secret or token, or one without access to the bucket.
    #[error(
        "the server of the repository at {location} refused the credentials: check {check}, \
         and that they may read and write this bucket or path. Nothing was changed. The \
         backend said: {detail}"
    )]
    AccessDenied {
        /// The location.
        location: String,
        /// What to check, for this kind of location.
        check: &'static str,
        /// The backend's error and its cause.
        detail: String,
    },
    /// `init` found an existing repository.
    #[error("a repository already exists at {location}; kopi-docka never overwrites one")]
    AlreadyExists {
        /// The location.
        location: String,
    },
    /// No key opens the repository with this password.
    #[error("wrong password for the repository at {location} (from {source_name}): no key matches")]
    WrongPassword {
        /// The location.
        location: String,
        /// Where the password came from.
        source_name: String,
    },
    /// The password could not be obtained.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Another process holds the lock.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The location cannot be translated for the backend.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// A credentials file named in the config cannot be used.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The SFTP server or its ssh settings.
    #[error(transparent)]
    Sftp(#[from] sftp::SftpError),
    /// A snapshot id that matches nothing.
    #[error("no snapshot `{id}` in the repository")]
    NoSuchSnapshot {
        /// The id given.
        id: String,
    },
    /// Restore target in the way.
    #[error(
        "restore target {path} is not empty; restore into an empty directory, or ask for \
         merge (keep extra files) or delete (remove files not in the snapshot) explicitly"
    )]
    TargetNotEmpty {
        /// The target.
        path: PathBuf,
    },
    /// A snapshot holds an entry a restore must not write (a crafted or damaged repository).
    #[error(
        "snapshot {snapshot} holds an entry named {path:?}, which {reason}; a restore refuses \
         it (the repository may have been tampered with). Nothing was written"
    )]
    UnsafeEntry {
        /// The snapshot.
        snapshot: String,
        /// The entry's path inside the snapshot.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A local file operation failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What we did.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The repository library failed.
    #[error("{operation} failed: {detail}")]
    Engine {
        /// What we asked for.
        operation: &'static str,
        /// rustic_core's message, with its guidance and cause (without the backtrace its
        /// `Display` adds when `RUST_BACKTRACE` is set).
        detail: String,
    },
    /// A backup source path that cannot be used.
    #[error("cannot back up {path}: {reason}")]
    BadSource {
        /// The source.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A snapshot was abandoned through its [`Cancel`]; nothing was saved.
    #[error("the snapshot was abandoned before it was saved")]
    Cancelled,
    /// A blocking task died.
    #[error("internal error: repository task failed: {0}")]
    Task(String),
}

fn engine(operation: &'static str) -> impl FnOnce(Box<RusticError>) -> RepoError {
    move |error| RepoError::Engine {
        operation,
        detail: concise(&error),
    }
}

/// The node holding a snapshot's content; `None` for a snapshot of an empty directory, whose
/// tree rustic_core stores without the snapshot path (measured: the lookup fails).
fn content_node(
    indexed: &Repository<rustic_core::IndexedFullStatus>,
    snap: &SnapshotFile,
) -> Result<Option<rustic_core::repofile::Node>, RepoError> {
    let path = snap.paths.iter().next().cloned().unwrap_or_default();
    match indexed.node_from_snapshot_and_path(snap, &path) {
        Ok(node) => Ok(Some(node)),
        Err(error) => {
            let root = indexed
                .node_from_snapshot_and_path(snap, "")
                .map_err(engine("finding the snapshot's content"))?;
            let empty = indexed
                .ls(&root, &LsOptions::default())
                .map_err(engine("listing the snapshot"))?
                .next()
                .is_none();
            if empty {
                Ok(None)
            } else {
                Err(RepoError::Engine {
                    operation: "finding the snapshot's content",
                    detail: concise(&error),
                })
            }
        }
    }
}

/// The first request to a remote repository failed: the server refused our credentials, or
/// it is down or unreachable; said so, with the backend's cause. Local ones keep the engine's
/// error.
fn unreachable_or(
    error: &RusticError,
    settings: &RepoSettings,
    operation: &'static str,
) -> RepoError {
    match &settings.location {
        RepositoryLocation::Remote { backend, .. } if credentials_refused(error) => {
            RepoError::AccessDenied {
                location: settings.location.to_string(),
                check: credentials_to_check(*backend),
                detail: concise(error),
            }
        }
        RepositoryLocation::Remote { .. } => RepoError::Unreachable {
            location: settings.location.to_string(),
            detail: concise(error),
        },
        RepositoryLocation::Local(_) => RepoError::Engine {
            operation,
            detail: concise(error),
        },
    }
}

/// True when a cause of `error` is the server refusing the credentials: opendal's
/// `PermissionDenied` (an S3, B2, Azure, GCS or `WebDAV` server answered 401 or 403) or the
/// REST server's 401/403. Decided on the causes' types, never on their text.
fn credentials_refused(error: &RusticError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = next {
        #[cfg(feature = "remote-backends")]
        if cause
            .downcast_ref::<opendal_core::Error>()
            .is_some_and(|e| e.kind() == opendal_core::ErrorKind::PermissionDenied)
        {
            return true;
        }
        if cause
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
            .is_some_and(|s| {
                s == reqwest::StatusCode::UNAUTHORIZED || s == reqwest::StatusCode::FORBIDDEN
            })
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Where the credentials of a `backend` location come from, for [`RepoError::AccessDenied`].
fn credentials_to_check(backend: crate::config::RemoteBackend) -> &'static str {
    use crate::config::RemoteBackend as B;
    match backend {
        B::S3 => {
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the \
             [repository] env-file, and the region"
        }
        B::B2 => {
            "B2_ACCOUNT_ID and B2_ACCOUNT_KEY (an application key with access to the bucket) in \
             the [repository] env-file"
        }
        B::Azure => {
            "AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY (or AZURE_ACCOUNT_SAS) in the \
             [repository] env-file"
        }
        B::Gcs => {
            "GOOGLE_APPLICATION_CREDENTIALS (the service account's key file) or \
             GOOGLE_ACCESS_TOKEN in the [repository] env-file"
        }
        B::Rest => {
            "the user and password: RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD in the \
             [repository] env-file, or the ones in the URL"
        }
        B::Webdav => "the user and password of the WebDAV location",
        B::Rclone => "the remote's credentials in rclone.conf ([repository] rclone-config)",
        B::Sftp => "the ssh key ([repository.options] key) and the user",
    }
}

fn concise(error: &RusticError) -> String {
    let text = error.display_log();
    text.strip_prefix("Error: ").unwrap_or(&text).to_owned()
}

/// Restore behaviour for a target that already has content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// The target must be empty or absent.
    EmptyOnly,
    /// Overwrite what the snapshot has, keep what it does not.
    Merge,
    /// Make the target equal to the snapshot: remove what it does not have.
    Delete,
}

/// Abandons a snapshot in progress: once set, the snapshot stops reading (at the next file
/// chunk) and saves nothing. Cheap to clone; all clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A snapshot of ours, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Full snapshot id.
    pub id: String,
    /// When it was taken (the snapshot's own time, UTC).
    pub time: jiff::Timestamp,
    /// Host that took it.
    pub host: String,
    /// What it is.
    #[serde(flatten)]
    pub meta: SnapshotMeta,
    /// Stable snapshot path.
    pub path: String,
    /// Bytes of the source when it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Counts from the backup run, when recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<BackupSummary>,
}

/// What one snapshot run read and added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    /// Files not in the parent.
    pub files_new: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files unchanged since the parent (not read again).
    pub files_unmodified: u64,
    /// Bytes of all files in the source.
    pub bytes_total: u64,
    /// New data before compression.
    pub bytes_added: u64,
    /// New data as stored.
    pub bytes_added_packed: u64,
}

/// Which snapshots to list.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Only this host's.
    pub host: Option<String>,
    /// Only this unit's.
    pub unit: Option<String>,
    /// Only this backup's.
    pub backup_id: Option<BackupId>,
}

/// Result of a restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Where it went.
    pub target: PathBuf,
    /// Files and directories written.
    pub restored: u64,
    /// Already identical, left alone.
    pub unchanged: u64,
    /// In the target but not in the snapshot: kept (merge) or removed (delete).
    pub additional: u64,
    /// Bytes restored.
    pub bytes: u64,
}

/// Result of comparing a directory with a snapshot.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VerifyReport {
    /// Files whose content matches.
    pub verified: u64,
    /// Files missing or with other content.
    pub differing: u64,
    /// Files in the directory the snapshot does not have.
    pub additional: u64,
}

impl VerifyReport {
    /// True when the directory holds exactly the snapshot's files.
    pub fn matches(&self) -> bool {
        self.differing == 0 && self.additional == 0
    }
}

/// One snapshot's fate under the retention policy.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetDecision {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Kept?
    pub keep: bool,
    /// Which rules kept it.
    pub reasons: Vec<String>,
}

/// Result of applying retention.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// Every snapshot considered, newest first within each group.
    pub decisions: Vec<ForgetDecision>,
    /// Snapshots removed (zero on a dry run).
    pub removed: usize,
}

/// Result of a prune.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PruneReport {
    /// Pack files that are or would be removed.
    pub packs_removed: u64,
    /// Pack files that are or would be repacked.
    pub packs_repacked: u64,
    /// Bytes freed (or that would be).
    pub bytes_freed: u64,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// One finding of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckFinding {
    /// `error` or `warning`.
    pub level: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Everything found.
    pub findings: Vec<CheckFinding>,
    /// Percentage of pack data read and verified (0 = structure only).
    pub read_data_percent: f64,
    /// No errors.
    pub ok: bool,
}

/// A lock file in the repository's `locks/`, written by restic (or another restic-format
/// tool). kopi-docka writes none and does not honour them (its own locks are local files);
/// they are read only to explain them.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignLock {
    /// The lock file's id (the first 8 hex digits, as restic shows them).
    pub id: String,
    /// When it was written or last refreshed (restic refreshes a live lock every 5 minutes);
    /// `None` when the file does not say.
    pub time: Option<jiff::Timestamp>,
    /// Exclusive (`prune`, `check`, `forget`, `rebuild-index`) or shared (`backup`,
    /// `restore`, ...).
    pub exclusive: bool,
    /// The host of the process that wrote it.
    pub hostname: String,
    /// Its user.
    pub username: String,
    /// Its PID on that host.
    pub pid: Option<u32>,
}

/// restic's lock file, as restic 0.14 writes it (`restic/internal/restic/lock.go`).
#[derive(Debug, serde::Deserialize)]
struct LockJson {
    time: Option<String>,
    #[serde(default)]
    exclusive: bool,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    username: String,
    pid: Option<u32>,
}

/// Repository statistics.
#[derive(Debug, Clone, Serialize)]
pub struct RepoStats {
    /// Location.
    pub location: String,
    /// Repository format version.
    pub version: u32,
    /// Snapshots of any tool.
    pub snapshots: u64,
    /// Snapshots tagged `kopi-docka`.
    pub kopi_docka_snapshots: u64,
    /// Pack files.
    pub packs: u64,
    /// Bytes stored in packs.
    pub pack_bytes: u64,
    /// Bytes of all blobs before compression.
    pub uncompressed_bytes: u64,
    /// Data and tree blobs.
    pub blobs: u64,
}

/// An open repository, for reading ([`WriteRepo`] writes). Cheap to clone; the lock is
/// released when the last clone drops.
#[derive(Debug, Clone)]
pub struct Repo {
    settings: Arc<RepoSettings>,
    inner: Arc<Repository<OpenStatus>>,
    progress: Arc<dyn ProgressSink>,
    _lock: Arc<Lock>,
}

/// Runs blocking repository work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RepoError::Task(e.to_string()))?
}

impl Repo {
    /// Opens the repository for reading, sharing its lock with other readers.
    pub async fn open(
        settings: RepoSettings,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Self, RepoError> {
        blocking(move || Self::open_blocking(settings, LockMode::Shared, progress)).await
    }

    fn open_blocking(
        settings: RepoSettings,
        mode: LockMode,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Self, RepoError> {
        let lock = lock(&settings, mode)?;
        if let RepositoryLocation::Local(path) = &settings.location {
            check_local_location(path, false)?;
        }
        let password = settings.password.read()?;
        let repo = unopened(&settings, progress.clone())?;
        if repo
            .config_id()
            .map_err(|e| unreachable_or(&e, &settings, "reading the repository"))?
            .is_none()
        {
            return Err(RepoError::NotFound {
                location: settings.location.to_string(),
            });
        }
        let inner = repo
            .open(&Credentials::password(password.expose()))
            .map_err(|e| wrong_password_or(&e, &settings, "opening the repository"))?;
        Ok(Self {
            settings: Arc::new(settings),
            inner: Arc::new(inner),
            progress,
            _lock: Arc::new(lock),
        })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &RepoSettings {
        &self.settings
    }

    /// A second handle on the same repository, opened with the master key we already hold.
    /// rustic_core's indexed states consume the handle, so each indexed operation uses its own.
    fn fresh(&self) -> Result<Repository<OpenStatus>, RepoError> {
        unopened(&self.settings, self.progress.clone())?
            .open(&Credentials::Masterkey(self.inner.key()))
            .map_err(engine("opening the repository"))
    }

    fn snapshot_blocking(
        &self,
        source: &Path,
        meta: &SnapshotMeta,
        how: &How,
    ) -> Result<SnapshotInfo, RepoError> {
        let io = |source_err| RepoError::Io {
            operation: "reading backup source",
            path: source.to_path_buf(),
            source: source_err,
        };
        let st = std::fs::symlink_metadata(source).map_err(io)?;
        let root = RootMeta {
            mode: st.mode() & 0o7777,
            uid: st.uid(),
            gid: st.gid(),
            mtime_sec: st.mtime(),
            mtime_nsec: u32::try_from(st.mtime_nsec()).unwrap_or(0),
        };
        let description = serde_json::to_string(&meta::Description { root })
            .map_err(|e| RepoError::Task(e.to_string()))?;
        let mut options = SnapshotOptions::default()
            .host(self.settings.hostname.clone())
            // Otherwise rustic stores our whole argv in every snapshot.
            .command(format!("kopi-docka {}", crate::VERSION))
            .description(description);
        if let Some(time) = how.time {
            options = options.time(time.to_zoned(jiff::tz::TimeZone::UTC));
        }
        let mut snap = options
            .to_snapshot()
            .map_err(engine("preparing the snapshot"))?;
        for tag in meta.tags() {
            // Added one by one: `add_tags` would split a bind path at its commas.
            snap.tags.add(tag);
        }
        let backup = BackupOptions::default()
            .as_path(meta.snapshot_path())
            .excludes(anchored_excludes(source, &how.excludes))
            .no_scan(!how.count_total)
            .cancel(how.cancel.as_ref().map(|c| c.0.clone()))
            .parent_opts(
                ParentOptions::default().parents(how.parent.iter().cloned().collect::<Vec<_>>()),
            );
        let sources = PathList::from_iter([source.to_path_buf()])
            .sanitize()
            .map_err(|e| RepoError::BadSource {
                path: source.to_path_buf(),
                reason: e.to_string(),
            })?;
        let indexed = self
            .fresh()?
            .to_indexed_ids()
            .map_err(engine("reading the index"))?;
        let snap = indexed.backup(&backup, &sources, snap).map_err(|error| {
            if how.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
                RepoError::Cancelled
            } else {
                engine("backup")(error)
            }
        })?;
        if let Some(s) = &snap.summary {
            tracing::info!(
                source = %source.display(),
                snapshot = %snap.id,
                files_read = s.files_new + s.files_changed,
                files_unchanged = s.files_unmodified,
                bytes_added = s.data_added_packed,
                "snapshot saved"
            );
        }
        info_of(&snap).ok_or_else(|| RepoError::Task("new snapshot has unreadable tags".into()))
    }

    /// Writes the one file of snapshot `id` (a dump) to `out`, without touching the disk.
    /// Returns the file's name.
    pub async fn read_file<W: std::io::Write + Send + 'static>(
        &self,
        id: String,
        mut out: W,
    ) -> Result<String, RepoError> {
        let this = self.clone();
        blocking(move || {
            let indexed = this
                .fresh()?
                .to_indexed()
                .map_err(engine("reading the index"))?;
            let snap = indexed
                .get_snapshot_from_str(&id, |_| true)
                .map_err(|_| RepoError::NoSuchSnapshot { id: id.clone() })?;
            let Some(dir) = content_node(&indexed, &snap)? else {
                return Err(RepoError::Task(format!("snapshot {id} holds no file")));
            };
            let mut files = indexed
                .ls(&dir, &LsOptions::default())
                .map_err(engine("listing the snapshot"))?;
            let Some(item) = files.next() else {
                return Err(RepoError::Task(format!("snapshot {id} holds no file")));
            };
            let (_, node) = item.map_err(engine("listing the snapshot"))?;
            indexed
                .dump(&node, &mut out)
                .map_err(engine("reading the dump"))?;
            out.flush()
                .map_err(|e| RepoError::Task(format!("writing the dump: {e}")))?;
            Ok(node.name().to_string_lossy().into_owned())
        })
        .await
    }

    /// Our snapshots matching `filter`, oldest first.
    pub async fn snapshots(&self, filter: SnapshotFilter) -> Result<Vec<SnapshotInfo>, RepoError> {
        let this = self.clone();
        blocking(move || {
            let mut infos: Vec<SnapshotInfo> = this
                .our_snapshots()?
                .iter()
                .filter_map(info_of)
                .filter(|i| filter.matches(i))
                .collect();
            infos.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
            Ok(infos)
        })
        .await
    }

    fn our_snapshots(&self) -> Result<Vec<SnapshotFile>, RepoError> {
        self.inner
            .get_matching_snapshots(|s: &SnapshotFile| s.tags.contains(MARKER))
            .map_err(engine("listing snapshots"))
    }

    /// Restores snapshot `id` (a unique prefix is enough) into `target`, including the
    /// source's own mode, owner and mtime.
    pub async fn restore(
        &self,
        id: String,
        target: PathBuf,
        mode: RestoreMode,
    ) -> Result<RestoreReport, RepoError> {
        let this = self.clone();
        blocking(move || this.restore_blocking(&id, &target, mode)).await
    }

    fn restore_blocking(
        &self,
        id: &str,
        target: &Path,
        mode: RestoreMode,
    ) -> Result<RestoreReport, RepoError> {
        let indexed = self
            .fresh()?
            .to_indexed()
            .map_err(engine("reading the index"))?;
        let snap = indexed
            .get_snapshot_from_str(id, |_| true)
            .map_err(|_| RepoError::NoSuchSnapshot { id: id.to_owned() })?;
        if mode == RestoreMode::EmptyOnly && !is_empty_or_absent(target) {
            return Err(RepoError::TargetNotEmpty {
                path: target.to_path_buf(),
            });
        }
        let root_meta = snap
            .description
            .as_deref()
            .and_then(|d| serde_json::from_str::<meta::Description>(d).ok());
        let Some(node) = content_node(&indexed, &snap)? else {
            // An empty directory: nothing to write but the directory itself.
            std::fs::create_dir_all(target)
                .map_err(|e| RepoError::Task(format!("creating {}: {e}", target.display())))?;
            if let Some(doc) = &root_meta {
                apply_root_meta(target, &doc.root)?;
            }
            return Ok(RestoreReport {
                target: target.to_path_buf(),
                restored: 1,
                unchanged: 0,
                additional: 0,
                bytes: 0,
            });
        };
        let ls = indexed
            .ls(&node, &LsOptions::default())
            .map_err(engine("listing the snapshot"))?;
        // Every entry is checked before anything is written: a crafted tree must not name a
        // path outside the target, nor a second entry under a name it already used (a symlink
        // first, then files "through" it).
        let mut previous: Option<PathBuf> = None;
        for item in ls.clone() {
            let (path, entry) = item.map_err(engine("listing the snapshot"))?;
            if let Some(reason) = unsafe_entry(&path, &entry.name(), previous.as_deref()) {
                return Err(RepoError::UnsafeEntry {
                    snapshot: id.to_owned(),
                    path,
                    reason,
                });
            }
            previous = Some(path);
        }
        let dest = LocalDestination::new(&target.to_string_lossy(), true, !node.is_dir())
            .map_err(engine("preparing the restore target"))?;
        let mut options = RestoreOptions::default()
            .numeric_id(true)
            .delete(mode == RestoreMode::Delete);
        // Sparse files (VM images, databases) must stay sparse or a restore may not fit.
        // rustic_core does not export the option's type; it deserialises, so name it that way.
        options.sparse = serde_json::from_str("\"ByContent\"")
            .map_err(|e| RepoError::Task(format!("sparse restore option: {e}")))?;
        let plan = indexed
            .prepare_restore(&options, ls.clone(), &dest, false)
            .map_err(engine("planning the restore"))?;
        let stats = &plan.stats;
        let report = RestoreReport {
            target: target.to_path_buf(),
            restored: stats.files.restore + stats.dirs.restore,
            unchanged: stats.files.unchanged + stats.dirs.unchanged,
            additional: stats.files.additional + stats.dirs.additional,
            bytes: plan.restore_size,
        };
        indexed
            .restore(plan, &options, ls, &dest)
            .map_err(|error| RepoError::Engine {
                operation: "restore (the target may now be partly restored)",
                detail: concise(&error),
            })?;
        if let Some(doc) = &root_meta {
            apply_root_meta(target, &doc.root)?;
        }
        Ok(report)
    }

    /// Compares the files under `target` with snapshot `id` by content (every file is read and
    /// hashed), touching nothing.
    pub async fn verify(&self, id: String, target: PathBuf) -> Result<VerifyReport, RepoError> {
        let this = self.clone();
        blocking(move || {
            let indexed = this
                .fresh()?
                .to_indexed()
                .map_err(engine("reading the index"))?;
            let snap = indexed
                .get_snapshot_from_str(&id, |_| true)
                .map_err(|_| RepoError::NoSuchSnapshot { id: id.clone() })?;
            let Some(node) = content_node(&indexed, &snap)? else {
                let extra = std::fs::read_dir(&target).map_or(0, Iterator::count);
                return Ok(VerifyReport {
                    verified: 0,
                    differing: 0,
                    additional: extra as u64,
                });
            };
            let ls = indexed
                .ls(&node, &LsOptions::default())
                .map_err(engine("listing the snapshot"))?;
            let dest = LocalDestination::new(&target.to_string_lossy(), false, !node.is_dir())
                .map_err(engine("opening the target"))?;
            let options = RestoreOptions::default()
                .numeric_id(true)
                .verify_existing(true);
            let plan = indexed
                .prepare_restore(&options, ls, &dest, true)
                .map_err(engine("comparing the target with the snapshot"))?;
            let files = &plan.stats.files;
            Ok(VerifyReport {
                verified: files.verified + files.unchanged,
                differing: files.modify + files.restore,
                additional: files.additional,
            })
        })
        .await
    }

    /// Applies the retention policy to this host's restore points; removes the others only
    /// when `dry_run` is false. `now` anchors the keep-within window.
    ///
    /// The policy counts whole points, never single snapshots: every snapshot of a point is
    /// kept or forgotten with it ([`RetentionItem`]). Complete points (and points of earlier
    /// versions) are what the policy keeps; an incomplete point is kept while it is newer
    /// than the unit's newest complete point (the trace of a failing unit) and forgotten with
    /// the older ones; warm-pass copies are always forgotten (a killed run left them). Host
    /// snapshots (engine configuration, run reports) are kept per path as before. Markers go
    /// first, so a crash in the middle leaves incomplete points, never complete-looking halves.
    async fn forget_points(
        &self,
        now: jiff::Timestamp,
        dry_run: bool,
    ) -> Result<ForgetReport, RepoError> {
        let this = self.clone();
        blocking(move || {
            let host = this.settings.hostname.clone();
            let snaps: Vec<SnapshotFile> = this
                .our_snapshots()?
                .into_iter()
                .filter(|s| s.hostname == host)
                .collect();
            let items = RetentionItem::from_snapshots(snaps);
            let keep = keep_options(&this.settings.retention);
            let (representatives, mut decided): (Vec<_>, Vec<_>) = items
                .into_iter()
                .partition(|item| item.representative.is_some());
            let mut by_id: std::collections::HashMap<String, RetentionItem> = representatives
                .into_iter()
                .filter_map(|item| {
                    let rep = item.representative.as_ref()?;
                    Some((rep.id.to_string(), item))
                })
                .collect();
            let mut criterion = SnapshotGroupCriterion::new();
            criterion.hostname = true;
            criterion.label = true;
            let groups = ForgetGroups::from_grouped_snapshots_with_retention(
                Grouped::from_items(
                    by_id
                        .values()
                        .filter_map(|item| item.representative.clone())
                        .collect(),
                    criterion,
                ),
                &keep,
                &now.to_zoned(jiff::tz::TimeZone::UTC),
            )
            .map_err(engine("applying retention"))?;
            for group in groups.0 {
                for fate in group.items {
                    if let Some(mut item) = by_id.remove(&fate.snapshot.id.to_string()) {
                        item.keep = fate.keep;
                        item.reasons = fate.reasons;
                        decided.push(item);
                    }
                }
            }
            RetentionItem::drop_superseded_incomplete(&mut decided);
            let mut decisions = Vec::new();
            let (mut markers, mut rest) = (Vec::new(), Vec::new());
            for item in decided {
                for snap in item.members {
                    if !item.keep {
                        if matches!(snap.meta.part, Part::Point { .. }) {
                            markers.push(snap.file_id);
                        } else {
                            rest.push(snap.file_id);
                        }
                    }
                    decisions.push(ForgetDecision {
                        snapshot: snap.info,
                        keep: item.keep,
                        reasons: item.reasons.clone(),
                    });
                }
            }
            decisions.sort_by(|a, b| {
                (&a.snapshot.path, b.snapshot.time).cmp(&(&b.snapshot.path, a.snapshot.time))
            });
            let removed = if dry_run {
                0
            } else {
                markers.len() + rest.len()
            };
            if !dry_run {
                for ids in [markers, rest] {
                    if !ids.is_empty() {
                        this.inner
                            .delete_snapshots(&ids)
                            .map_err(engine("removing snapshots"))?;
                    }
                }
            }
            Ok(ForgetReport { decisions, removed })
        })
        .await
    }

    /// What [`WriteRepo::forget`] would forget now, changing nothing.
    pub async fn retention_plan(&self, now: jiff::Timestamp) -> Result<ForgetReport, RepoError> {
        self.forget_points(now, true).await
    }

    /// Removes data no snapshot references. A local repository is deleted from at once: safe
    /// because we hold the exclusive lock (never run `restic prune` on it while kopi-docka
    /// runs). A remote one may be shared by several hosts, whose locks we cannot see: its
    /// unused packs are only marked, and deleted by a prune at least 23 hours later unless a
    /// backup used them again meanwhile (rustic's two-phase delete), so one host's prune
    /// never deletes a pack another host's running backup relies on.
    async fn prune_data(&self, dry_run: bool) -> Result<PruneReport, RepoError> {
        let this = self.clone();
        blocking(move || {
            let local = matches!(this.settings.location, RepositoryLocation::Local(_));
            let options = PruneOptions::default().instant_delete(local);
            let plan = this
                .inner
                .prune_plan(&options)
                .map_err(engine("planning the prune"))?;
            let stats = &plan.stats;
            let report = PruneReport {
                packs_removed: stats.packs_to_delete.remove,
                packs_repacked: stats.packs.repack,
                bytes_freed: stats.size_to_delete.remove,
                dry_run,
            };
            if !dry_run {
                this.inner.prune(&options, plan).map_err(engine("prune"))?;
            }
            Ok(report)
        })
        .await
    }

    /// What [`WriteRepo::prune`] would remove now, changing nothing.
    pub async fn prune_plan(&self) -> Result<PruneReport, RepoError> {
        self.prune_data(true).await
    }

    /// Checks the repository's structure and, with `read_data_percent`, reads and verifies
    /// that share of the pack data.
    pub async fn check(&self, read_data_percent: Option<f64>) -> Result<CheckReport, RepoError> {
        let this = self.clone();
        blocking(move || {
            let mut options = CheckOptions::default();
            if let Some(percent) = read_data_percent {
                // rustic_core's percentage subset skips a pack that fills the remaining budget
                // exactly, so 100% could leave one out: ask for all of them instead.
                let subset = if percent >= 100.0 {
                    ReadSubsetOption::All
                } else {
                    ReadSubsetOption::Percentage(percent)
                };
                options = options.read_data(true).read_data_subset(subset);
            }
            let results = this.inner.check(options).map_err(engine("check"))?;
            let ok = results.is_ok().is_ok();
            let findings = results
                .0
                .iter()
                .map(|(level, error)| CheckFinding {
                    // rustic_core does not export the level type; its Debug names the variant.
                    level: if format!("{level:?}") == "Warn" {
                        "warning"
                    } else {
                        "error"
                    },
                    message: error.to_string(),
                })
                .collect();
            Ok(CheckReport {
                findings,
                read_data_percent: read_data_percent.unwrap_or(0.0),
                ok,
            })
        })
        .await
    }

    /// The lock files in `locks/` (restic's; kopi-docka writes none), decrypted and parsed. A
    /// file that is not a lock restic would write is returned with what could be read.
    pub async fn foreign_locks(&self) -> Result<Vec<ForeignLock>, RepoError> {
        let this = self.clone();
        blocking(move || {
            let files = this
                .inner
                .lock_files()
                .map_err(engine("reading the lock files"))?;
            Ok(files
                .into_iter()
                .map(|(id, json)| {
                    let lock: LockJson = serde_json::from_slice(&json).unwrap_or(LockJson {
                        time: None,
                        exclusive: false,
                        hostname: "?".into(),
                        username: "?".into(),
                        pid: None,
                    });
                    ForeignLock {
                        id: id.to_hex().chars().take(8).collect(),
                        time: lock.time.and_then(|t| t.parse().ok()),
                        exclusive: lock.exclusive,
                        hostname: lock.hostname,
                        username: lock.username,
                        pid: lock.pid,
                    }
                })
                .collect())
        })
        .await
    }

    /// Sizes and counts.
    pub async fn stats(&self) -> Result<RepoStats, RepoError> {
        let this = self.clone();
        blocking(move || {
            let files = this
                .inner
                .infos_files()
                .map_err(engine("listing repository files"))?;
            let count = |tpe| {
                files
                    .repo
                    .iter()
                    .find(|f| f.tpe == tpe)
                    .map_or((0, 0), |f| (f.count, f.size))
            };
            let (snapshots, _) = count(rustic_core::FileType::Snapshot);
            let (packs, pack_bytes) = count(rustic_core::FileType::Pack);
            let index = this
                .inner
                .infos_index()
                .map_err(engine("reading the index"))?;
            Ok(RepoStats {
                location: this.settings.location.to_string(),
                version: this.inner.config().version,
                snapshots,
                kopi_docka_snapshots: this.our_snapshots()?.len() as u64,
                packs,
                pack_bytes,
                uncompressed_bytes: index.blobs.iter().map(|b| b.data_size).sum(),
                blobs: index.blobs.iter().map(|b| b.count).sum(),
            })
        })
        .await
    }
}

/// A repository opened for writing: the exclusive lock is held, and only this handle can add
/// or remove snapshots, prune or change the password. It reads like a [`Repo`] (it derefs to
/// one), so code that only reads takes `&Repo` and accepts both.
#[derive(Debug, Clone)]
pub struct WriteRepo(Repo);

impl std::ops::Deref for WriteRepo {
    type Target = Repo;

    fn deref(&self) -> &Repo {
        &self.0
    }
}

impl WriteRepo {
    /// Opens the repository for writing, holding its lock exclusively.
    pub async fn open(
        settings: RepoSettings,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Self, RepoError> {
        blocking(move || Repo::open_blocking(settings, LockMode::Exclusive, progress))
            .await
            .map(Self)
    }

    /// Creates a new repository (refusing to touch an existing one) and opens it for writing.
    pub async fn init(
        settings: RepoSettings,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Self, RepoError> {
        blocking(move || {
            let lock = lock(&settings, LockMode::Exclusive)?;
            if let RepositoryLocation::Local(path) = &settings.location {
                check_local_location(path, true)?;
                crate::durable::create_dir_all(path, 0o700).map_err(|source| RepoError::Io {
                    operation: "creating",
                    path: path.clone(),
                    source,
                })?;
            }
            let password = settings.password.read()?;
            let repo = unopened(&settings, progress.clone())?;
            if repo
                .config_id()
                .map_err(|e| unreachable_or(&e, &settings, "reading the location"))?
                .is_some()
            {
                return Err(RepoError::AlreadyExists {
                    location: settings.location.to_string(),
                });
            }
            // rustic_core's own 32 MiB doubles what a backup holds in packs being filled and
            // written.
            let mut config =
                ConfigOptions::default().set_datapack_size(bytesize::ByteSize::mib(DATA_PACK_MIB));
            if settings.compression != 0 {
                config = config.set_compression(settings.compression);
            }
            let inner = repo
                .init(
                    &Credentials::password(password.expose()),
                    &key_options(&settings),
                    &config,
                )
                .map_err(engine("creating the repository"))?;
            Ok(Self(Repo {
                settings: Arc::new(settings),
                inner: Arc::new(inner),
                progress,
                _lock: Arc::new(lock),
            }))
        })
        .await
    }

    /// Snapshots the directory or file `source` under `meta`'s stable path. The previous
    /// snapshot of the same path from this host is the parent, so unchanged files are not read
    /// again. `time` backdates the snapshot (imports, tests); normally `None` (now).
    pub async fn snapshot(
        &self,
        source: PathBuf,
        meta: SnapshotMeta,
        time: Option<jiff::Timestamp>,
    ) -> Result<SnapshotInfo, RepoError> {
        let this = self.clone();
        let how = How {
            time,
            ..How::default()
        };
        blocking(move || this.snapshot_blocking(&source, &meta, &how)).await
    }

    /// [`Repo::snapshot`] that `cancel` abandons (the warm pass, which SIGTERM must cut short).
    /// `excludes` are the volume's or bind's exclude globs ([`check_exclude_glob`]).
    pub async fn snapshot_cancellable(
        &self,
        source: PathBuf,
        meta: SnapshotMeta,
        excludes: Vec<String>,
        cancel: Cancel,
    ) -> Result<SnapshotInfo, RepoError> {
        let this = self.clone();
        let how = How {
            cancel: Some(cancel),
            excludes,
            ..How::default()
        };
        blocking(move || this.snapshot_blocking(&source, &meta, &how)).await
    }

    /// [`Repo::snapshot`] while the unit is stopped, where every second is downtime. `parent`
    /// (the warm pass's snapshot of `source`) spares the search through all snapshots for
    /// one; if it cannot be read, the snapshot has no parent and reads everything. And no
    /// second walk of the source counts its size for the progress total: on a small machine
    /// that walk takes a core away from the snapshot. Once `cancel` is set, it stops reading
    /// and saves nothing ([`RepoError::Cancelled`]): an abandoned cold pass must not read on,
    /// nor save a snapshot, after the unit runs again.
    pub async fn snapshot_while_stopped(
        &self,
        source: PathBuf,
        meta: SnapshotMeta,
        (parent, excludes): (Option<String>, Vec<String>),
        cancel: Cancel,
    ) -> Result<SnapshotInfo, RepoError> {
        let this = self.clone();
        let how = How {
            time: None,
            parent,
            count_total: false,
            cancel: Some(cancel),
            excludes,
        };
        blocking(move || this.snapshot_blocking(&source, &meta, &how)).await
    }

    /// Streams `reader` into a snapshot of one file, `file_name`, under `meta`'s stable path
    /// (a database dump: nothing is written to disk on the way). `cancel` must be set BEFORE
    /// `reader` reports the end or an error of a stream that failed: rustic_core saves a
    /// snapshot without a file whose read failed, so a failed stream is only kept out by the
    /// flag ([`RepoError::Cancelled`], nothing saved).
    pub async fn snapshot_stream<R: std::io::Read + Send + 'static>(
        &self,
        meta: SnapshotMeta,
        file_name: String,
        reader: R,
        cancel: Cancel,
    ) -> Result<SnapshotInfo, RepoError> {
        let this = self.clone();
        blocking(move || this.snapshot_stream_blocking(&meta, &file_name, reader, &cancel)).await
    }

    fn snapshot_stream_blocking<R: std::io::Read + Send + 'static>(
        &self,
        meta: &SnapshotMeta,
        file_name: &str,
        reader: R,
        cancel: &Cancel,
    ) -> Result<SnapshotInfo, RepoError> {
        let now = jiff::Timestamp::now();
        let root = RootMeta {
            mode: 0o700,
            uid: rustix_ids().0,
            gid: rustix_ids().1,
            mtime_sec: now.as_second(),
            mtime_nsec: 0,
        };
        let description = serde_json::to_string(&meta::Description { root })
            .map_err(|e| RepoError::Task(e.to_string()))?;
        let mut snap = SnapshotOptions::default()
            .host(self.settings.hostname.clone())
            .command(format!("kopi-docka {}", crate::VERSION))
            .description(description)
            .to_snapshot()
            .map_err(engine("preparing the snapshot"))?;
        for tag in meta.tags() {
            snap.tags.add(tag);
        }
        let dir = meta.snapshot_path();
        let node = rustic_core::repofile::Node::new_node(
            std::ffi::OsStr::new(file_name),
            rustic_core::repofile::NodeType::File,
            rustic_core::repofile::Metadata {
                mode: Some(0o600),
                mtime: Some(now),
                ..Default::default()
            },
        );
        let source = OneFile(std::sync::Mutex::new(Some(rustic_core::ReadSourceEntry {
            path: dir.join(file_name),
            node,
            open: Some(reader),
        })));
        let mut parents = ParentOptions::default();
        parents.force = true;
        let backup = BackupOptions::default()
            .no_scan(true)
            .cancel(Some(cancel.0.clone()))
            .parent_opts(parents);
        let indexed = self
            .fresh()?
            .to_indexed_ids()
            .map_err(engine("reading the index"))?;
        let snap = indexed
            .archive(&backup, &source, snap, &[dir])
            .map_err(|error| {
                if cancel.is_cancelled() {
                    RepoError::Cancelled
                } else {
                    engine("backup")(error)
                }
            })?;
        if cancel.is_cancelled() {
            // Saved before the flag was seen: it must not count.
            let id = snap.id;
            indexed
                .delete_snapshots(&[id])
                .map_err(engine("removing a cancelled snapshot"))?;
            return Err(RepoError::Cancelled);
        }
        info_of(&snap).ok_or_else(|| RepoError::Task("new snapshot has unreadable tags".into()))
    }

    /// Removes the snapshots with these ids (e.g. a backup's warm-pass snapshots). Only ours.
    pub async fn forget_ids(&self, ids: Vec<String>) -> Result<usize, RepoError> {
        let this = self.clone();
        blocking(move || {
            let ours: Vec<_> = this
                .our_snapshots()?
                .into_iter()
                .filter(|s| ids.contains(&s.id.to_string()))
                .map(|s| s.id)
                .collect();
            if !ours.is_empty() {
                this.inner
                    .delete_snapshots(&ours)
                    .map_err(engine("removing snapshots"))?;
            }
            Ok(ours.len())
        })
        .await
    }

    /// Adds a key for `new`, proves it opens the repository, writes it to `password_file` when
    /// given (atomically, 0600), then removes the key this handle was opened with. At every
    /// moment the password on record opens the repository.
    pub async fn change_password(
        &self,
        new: Password,
        password_file: Option<PathBuf>,
    ) -> Result<(), RepoError> {
        let this = self.clone();
        blocking(move || {
            let settings = &this.settings;
            let old_key = *this.inner.key_id();
            let new_key = this
                .inner
                .add_key(new.expose(), &key_options(settings))
                .map_err(engine("adding the new key"))?;
            let stored = unopened(settings, Arc::new(Silent))?
                .open(&Credentials::password(new.expose()))
                .map_err(engine("opening with the new password"))
                .and_then(|with_new| {
                    if let Some(path) = &password_file {
                        write_password_file(path, &new).map_err(|source| RepoError::Io {
                            operation: "writing the new password to",
                            path: path.clone(),
                            source,
                        })?;
                    }
                    Ok(with_new)
                });
            let with_new = match stored {
                Ok(with_new) => with_new,
                Err(error) => {
                    // Leave the repository as it was: only the old password.
                    if let Err(undo) = this.inner.delete_key(&new_key) {
                        tracing::warn!(%undo, "cannot remove the unused new key");
                    }
                    return Err(error);
                }
            };
            // rustic_core refuses to remove the key a handle was opened with, so the old key
            // goes through the handle opened with the new one.
            if let Some(old) = old_key.filter(|old| *old != new_key) {
                with_new
                    .delete_key(&old)
                    .map_err(engine("removing the old key"))?;
            }
            Ok(())
        })
        .await
    }

    /// Applies the retention policy: forgets whole points ([`Repo::retention_plan`] shows
    /// which).
    pub async fn forget(&self, now: jiff::Timestamp) -> Result<ForgetReport, RepoError> {
        self.forget_points(now, false).await
    }

    /// Removes data no snapshot references ([`Repo::prune_plan`] shows what).
    pub async fn prune(&self) -> Result<PruneReport, RepoError> {
        self.prune_data(false).await
    }
}

impl SnapshotFilter {
    fn matches(&self, info: &SnapshotInfo) -> bool {
        self.host.as_ref().is_none_or(|h| *h == info.host)
            && self.unit.as_ref().is_none_or(|u| {
                info.meta
                    .unit
                    .as_ref()
                    .is_some_and(|r| r.name.as_str() == u)
            })
            && self
                .backup_id
                .as_ref()
                .is_none_or(|b| *b == info.meta.backup_id)
    }
}

fn lock(settings: &RepoSettings, mode: LockMode) -> Result<Lock, RepoError> {
    let key = crate::lock::key_for(&settings.location.to_string());
    Ok(Lock::try_acquire(&settings.lock_dir, &key, mode)?)
}

fn unopened(
    settings: &RepoSettings,
    progress: Arc<dyn ProgressSink>,
) -> Result<Repository<()>, RepoError> {
    let spec = sftp::prepare(&settings.backend, &settings.ssh_dir)?;
    let mut backend = BackendOptions::default().repository(spec.repository);
    backend.options = spec.options.into_iter().collect();
    let backends = backend
        .to_backends()
        .map_err(engine("connecting to the repository"))?;
    let options = RepositoryOptions::default().cache_dir(settings.cache_dir.clone());
    Repository::new_with_progress(&options, &backends, progress::Bars(progress))
        .map_err(engine("connecting to the repository"))
}

/// Whether a repository is at the location of `settings`, found without opening it (no
/// password needed): `setup`'s connection test. A remote location is reached (for SFTP: the
/// pinned host key and the login checked) and its `config` file looked for; a local one
/// that does not exist yet must be creatable (its nearest existing parent writable).
pub async fn exists(settings: RepoSettings) -> Result<bool, RepoError> {
    blocking(move || {
        if let RepositoryLocation::Local(path) = &settings.location {
            return match check_local_location(path, true) {
                Err(RepoError::AlreadyExists { .. }) => Ok(true),
                Err(error) => Err(error),
                Ok(()) => creatable(path).map(|()| false),
            };
        }
        let repo = unopened(&settings, Arc::new(Silent))?;
        Ok(repo
            .config_id()
            .map_err(|e| unreachable_or(&e, &settings, "reading the repository"))?
            .is_some())
    })
    .await
}

/// `path` exists as a directory we may write, or can be created.
fn creatable(path: &Path) -> Result<(), RepoError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    rustix::fs::access(existing, rustix::fs::Access::WRITE_OK).map_err(|e| RepoError::Io {
        operation: "creating the repository in",
        path: existing.to_path_buf(),
        source: e.into(),
    })
}

/// Scrypt parameters of the keys we write: N=2^15, r=8, p=4 is the work of rustic_core's
/// default (N=2^17, r=8, p=1) in 32 MiB instead of 128 MiB, which was most of the peak memory
/// of every command that opens the repository. restic 0.14 calibrates to the same N and r with
/// p around 5-8, and opens these keys. Keys already in a repository keep their parameters.
const KEY_SCRYPT: ScryptParams = ScryptParams {
    log_n: 15,
    r: 8,
    p: 4,
};

fn key_options(settings: &RepoSettings) -> KeyOptions {
    KeyOptions::default()
        .hostname(settings.hostname.clone())
        .username("kopi-docka".to_owned())
        .scrypt_params(KEY_SCRYPT)
}

fn wrong_password_or(error: &RusticError, settings: &RepoSettings, op: &'static str) -> RepoError {
    if error.is_incorrect_password() {
        RepoError::WrongPassword {
            location: settings.location.to_string(),
            source_name: settings.password.to_string(),
        }
    } else {
        RepoError::Engine {
            operation: op,
            detail: concise(error),
        }
    }
}

/// Local checks rustic_core would report less clearly.
fn check_local_location(path: &Path, for_init: bool) -> Result<(), RepoError> {
    let not_repo = |reason: &str| RepoError::NotARepository {
        location: path.display().to_string(),
        reason: reason.to_owned(),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if for_init {
                Ok(())
            } else {
                Err(RepoError::NotFound {
                    location: path.display().to_string(),
                })
            }
        }
        Err(source) => Err(RepoError::Io {
            operation: "reading",
            path: path.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.is_dir() => Err(not_repo("it is a file, not a directory")),
        Ok(_) if path.join("config").is_file() => {
            if for_init {
                Err(RepoError::AlreadyExists {
                    location: path.display().to_string(),
                })
            } else {
                Ok(())
            }
        }
        Ok(_) if is_empty_or_absent(path) => {
            if for_init {
                Ok(())
            } else {
                Err(RepoError::NotFound {
                    location: path.display().to_string(),
                })
            }
        }
        Ok(_) => Err(not_repo(
            "the directory holds other files and no repository `config`",
        )),
    }
}

fn is_empty_or_absent(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn apply_root_meta(target: &Path, root: &RootMeta) -> Result<(), RepoError> {
    use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps, chmod, chownat, utimensat};
    let io = |source: std::io::Error| RepoError::Io {
        operation: "restoring the metadata of",
        path: target.to_path_buf(),
        source,
    };
    if std::fs::symlink_metadata(target)
        .map_err(io)?
        .file_type()
        .is_symlink()
    {
        return Ok(());
    }
    chownat(
        CWD,
        target,
        Some(rustix::fs::Uid::from_raw(root.uid)),
        Some(rustix::fs::Gid::from_raw(root.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| io(e.into()))?;
    // chown clears setuid/setgid, so the mode comes after it.
    chmod(target, Mode::from_raw_mode(root.mode)).map_err(|e| io(e.into()))?;
    let mtime = Timespec {
        tv_sec: root.mtime_sec,
        tv_nsec: i64::from(root.mtime_nsec),
    };
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    utimensat(CWD, target, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(e.into()))?;
    Ok(())
}

/// The one file of [`WriteRepo::snapshot_stream`], handed out once.
struct OneFile<R>(std::sync::Mutex<Option<rustic_core::ReadSourceEntry<R>>>);

impl<R: std::io::Read + Send + 'static> rustic_core::ReadSource for OneFile<R> {
    type Open = R;
    type Iter = std::option::IntoIter<rustic_core::RusticResult<rustic_core::ReadSourceEntry<R>>>;

    fn size(&self) -> rustic_core::RusticResult<Option<u64>> {
        Ok(None)
    }

    fn entries(&self) -> Self::Iter {
        self.0
            .lock()
            .map_or(None, |mut entry| entry.take())
            .map(Ok)
            .into_iter()
    }
}

/// This process's uid and gid (the owner a dump's directory is restored with).
fn rustix_ids() -> (u32, u32) {
    std::fs::metadata("/proc/self").map_or((0, 0), |m| (m.uid(), m.gid()))
}

/// How [`Repo::snapshot_blocking`] takes a snapshot.
#[derive(Debug)]
struct How {
    /// Backdated time (imports, tests); `None` is now.
    time: Option<jiff::Timestamp>,
    /// The parent's snapshot id; `None` searches for the newest snapshot of the same path.
    parent: Option<String>,
    /// Walk the source once more to count its size for the progress total.
    count_total: bool,
    /// Abandons the snapshot when set.
    cancel: Option<Cancel>,
    /// Exclude globs, relative to the source ([`check_exclude_glob`]).
    excludes: Vec<String>,
}

impl Default for How {
    fn default() -> Self {
        Self {
            time: None,
            parent: None,
            count_total: true,
            cancel: None,
            excludes: Vec::new(),
        }
    }
}

/// Why `glob` cannot be an exclude glob, if it cannot: rustic_core's own glob compiler (the
/// gitignore syntax restic users know) says whether it parses; a negation (`!keep`) is refused
/// because an exclude list cannot re-include, and `..` because nothing outside the volume or
/// bind is read anyway.
pub fn check_exclude_glob(glob: &str) -> Result<(), String> {
    let trimmed = glob.trim();
    if trimmed.is_empty() {
        return Err("an empty exclude glob".into());
    }
    if trimmed.starts_with('!') {
        return Err(format!(
            "exclude glob `{glob}`: negations (`!`) are not supported; list only what to leave out"
        ));
    }
    if trimmed.contains('\0') || trimmed.split('/').any(|c| c == "..") {
        return Err(format!(
            "exclude glob `{glob}` leaves the volume or bind; globs are relative to its root"
        ));
    }
    Excludes::default()
        .globs(anchored_excludes(Path::new("/"), &[glob.to_owned()]).globs)
        .as_override()
        .map(|_| ())
        .map_err(|error| {
            let why = std::error::Error::source(&*error)
                .map_or_else(|| concise(&error), ToString::to_string);
            // globset says "error parsing glob '!/the/anchored/form': why": only the why is
            // about what the user wrote.
            let why = why.rsplit_once("': ").map_or(why.as_str(), |(_, w)| w);
            format!("exclude glob `{glob}` is not a valid glob: {why}")
        })
}

/// The exclude globs of a snapshot of `root`, in rustic_core's override syntax (`!` excludes).
/// A glob with a `/` (other than a trailing one) is anchored at `root`, as gitignore anchors
/// it at the directory of the `.gitignore`: `cache/**` is `root/cache/**`, not every `cache`
/// below it. One without (`*.tmp`, `node_modules`) matches at any depth.
fn anchored_excludes(root: &Path, globs: &[String]) -> Excludes {
    let globs = globs
        .iter()
        .map(|glob| {
            let glob = glob.trim();
            if glob.trim_end_matches('/').contains('/') {
                let root = escape_glob(&root.to_string_lossy());
                format!(
                    "!{}/{}",
                    root.trim_end_matches('/'),
                    glob.trim_start_matches('/')
                )
            } else {
                format!("!{glob}")
            }
        })
        .collect::<Vec<_>>();
    Excludes::default().globs(globs)
}

/// `path` with the characters that are special in a glob escaped.
fn escape_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a tree entry at `path` named `name` must not be restored, if it must not: names are
/// single components (no `/`, not `.` or `..`, no NUL) and `path` is relative with only such
/// components; an entry must not repeat the path of the one before it (the listing is sorted).
fn unsafe_entry(
    path: &Path,
    name: &std::ffi::OsStr,
    previous: Option<&Path>,
) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("is empty");
    }
    if bytes.contains(&0) {
        return Some("contains a NUL byte");
    }
    if bytes.contains(&b'/') {
        return Some("contains `/`");
    }
    if bytes == b"." || bytes == b".." {
        return Some("is `.` or `..`");
    }
    if !path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Some("leads outside the restore target (absolute or `..`)");
    }
    if previous == Some(path) {
        return Some("appears twice in one directory");
    }
    None
}

fn info_of(snap: &SnapshotFile) -> Option<SnapshotInfo> {
    let meta = match SnapshotMeta::parse(snap.tags.iter().map(String::as_str)) {
        Ok(Some(meta)) => meta,
        Ok(None) => return None,
        Err(error) => {
            tracing::warn!(snapshot = %snap.id, %error, "ignoring a snapshot with unreadable kopi-docka tags");
            return None;
        }
    };
    let summary = snap.summary.as_ref().map(|s| BackupSummary {
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        bytes_total: s.total_bytes_processed,
        bytes_added: s.data_added,
        bytes_added_packed: s.data_added_packed,
    });
    Some(SnapshotInfo {
        id: snap.id.to_string(),
        time: snap.time.timestamp(),
        host: snap.hostname.clone(),
        path: snap.paths.iter().next().cloned().unwrap_or_default(),
        size: summary.map(|s| s.bytes_total),
        summary,
        meta,
    })
}

/// One snapshot inside a [`RetentionItem`].
struct Member {
    file_id: rustic_core::repofile::SnapshotId,
    info: SnapshotInfo,
    meta: SnapshotMeta,
}

/// What retention keeps or forgets as a whole: a restore point (all snapshots of one unit
/// backup), a host snapshot, or a warm-pass copy.
struct RetentionItem {
    members: Vec<Member>,
    /// Stands for the item in rustic_core's policy (its newest snapshot, relabelled with the
    /// item's group); `None` when the policy does not decide (incomplete, warm).
    representative: Option<SnapshotFile>,
    /// For incomplete points: the unit (kind, name) and the time of the point.
    incomplete: Option<((String, String), jiff::Timestamp)>,
    keep: bool,
    reasons: Vec<String>,
}

impl RetentionItem {
    fn from_snapshots(snaps: Vec<SnapshotFile>) -> Vec<Self> {
        type PointKey = (String, String, BackupId);
        let mut points: std::collections::BTreeMap<PointKey, Vec<(SnapshotFile, Member)>> =
            std::collections::BTreeMap::new();
        let mut items = Vec::new();
        for snap in snaps {
            // Unreadable tags: nobody can say what it belongs to, so it is left alone.
            let Some(info) = info_of(&snap) else {
                continue;
            };
            let member = Member {
                file_id: snap.id,
                meta: info.meta.clone(),
                info,
            };
            if member.meta.pass == Some(Pass::Warm) {
                items.push(Self {
                    members: vec![member],
                    representative: None,
                    incomplete: None,
                    keep: false,
                    reasons: vec!["warm-pass copy (never a restore point)".into()],
                });
                continue;
            }
            if let Some(unit) = member.meta.unit.clone() {
                points
                    .entry((
                        unit.kind.to_string(),
                        unit.name.to_string(),
                        member.meta.backup_id.clone(),
                    ))
                    .or_default()
                    .push((snap, member));
            } else {
                let mut representative = snap;
                representative.label.clone_from(&member.info.path);
                items.push(Self {
                    members: vec![member],
                    representative: Some(representative),
                    incomplete: None,
                    keep: true,
                    reasons: Vec::new(),
                });
            }
        }
        for ((kind, unit, _), mut group) in points {
            group.sort_by_key(|(_, m)| m.info.time);
            let status = PointStatus::of(group.iter().map(|(_, m)| &m.meta));
            let time = group
                .last()
                .map_or(jiff::Timestamp::UNIX_EPOCH, |(_, m)| m.info.time);
            let (files, members): (Vec<SnapshotFile>, Vec<Member>) = group.into_iter().unzip();
            let (representative, incomplete) = if status.restorable_by_default() {
                let mut newest = files.into_iter().last();
                if let Some(rep) = &mut newest {
                    rep.label = format!("/kopi-docka/{kind}/{unit}");
                }
                (newest, None)
            } else {
                (None, Some(((kind, unit), time)))
            };
            items.push(Self {
                members,
                representative,
                incomplete,
                keep: true,
                reasons: Vec::new(),
            });
        }
        items
    }

    /// Decides the incomplete points: kept while newer than their unit's newest complete point
    /// that the policy keeps, forgotten otherwise.
    fn drop_superseded_incomplete(items: &mut [Self]) {
        let mut newest_kept: std::collections::HashMap<(String, String), jiff::Timestamp> =
            std::collections::HashMap::new();
        for item in items.iter().filter(|i| i.keep && i.incomplete.is_none()) {
            let Some(unit) = item.members.first().and_then(|m| m.meta.unit.as_ref()) else {
                continue;
            };
            let key = (unit.kind.to_string(), unit.name.to_string());
            let time = item.members.iter().map(|m| m.info.time).max();
            if let Some(time) = time {
                let entry = newest_kept.entry(key).or_insert(time);
                *entry = (*entry).max(time);
            }
        }
        for item in items.iter_mut() {
            let Some((unit, time)) = &item.incomplete else {
                continue;
            };
            match newest_kept.get(unit) {
                Some(complete) if complete > time => {
                    item.keep = false;
                    item.reasons = vec!["incomplete, older than a complete point".into()];
                }
                _ => {
                    item.keep = true;
                    item.reasons = vec!["incomplete, newer than every complete point".into()];
                }
            }
        }
    }
}

fn keep_options(retention: &RetentionConfig) -> KeepOptions {
    let n = |v: u32| (v > 0).then(|| i32::try_from(v).unwrap_or(i32::MAX));
    let mut keep = KeepOptions::default();
    keep.keep_last = n(retention.keep_last);
    keep.keep_hourly = n(retention.keep_hourly);
    keep.keep_daily = n(retention.keep_daily);
    keep.keep_weekly = n(retention.keep_weekly);
    keep.keep_monthly = n(retention.keep_monthly);
    keep.keep_yearly = n(retention.keep_yearly);
    keep.keep_within = retention
        .keep_within
        .as_ref()
        .map(crate::config::KeepWithin::span);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// Issue 16.8: what a crafted tree could name (restic itself cannot write these, so they
    /// are checked here rather than with a crafted repository).
    #[test]
    fn unsafe_tree_entries_are_refused() {
        let ok = |p: &str, n: &str| unsafe_entry(Path::new(p), OsStr::new(n), None);
        assert_eq!(ok("a/b", "b"), None);
        assert_eq!(ok("..", ".."), Some("is `.` or `..`"));
        assert_eq!(
            ok("a/../../etc", "etc"),
            Some("leads outside the restore target (absolute or `..`)")
        );
        assert_eq!(
            ok("/etc/passwd", "passwd"),
            Some("leads outside the restore target (absolute or `..`)")
        );
        assert_eq!(ok("a/etc/passwd", "etc/passwd"), Some("contains `/`"));
        assert_eq!(ok("a/x", "x\0y"), Some("contains a NUL byte"));
        assert_eq!(ok("a/", ""), Some("is empty"));
        assert_eq!(
            unsafe_entry(Path::new("a/b"), OsStr::new("b"), Some(Path::new("a/b"))),
            Some("appears twice in one directory")
        );
    }
}
