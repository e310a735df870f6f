//! Everything that can stop a restore.

use std::path::{Path, PathBuf};

use crate::repo::RepoError;

/// What can go wrong in a restore.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The engine failed.
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A systemd unit of the recipe cannot be put back or asked.
    #[error("systemd unit {unit}: {reason} (docs/podman.md, units managed by systemd)")]
    SystemdUnit {
        /// The unit (or the manager's action).
        unit: String,
        /// Why.
        reason: String,
    },
    /// The recipe cannot be read.
    #[error("the recipe is unreadable: {path}: {reason}")]
    Recipe {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The point has no recipe, and one is needed.
    #[error(
        "restore point {backup_id} of {unit} has no recipe (it was made with scope `minimal`), \
         so there is nothing to recreate the unit from.\nRestore its data only: \
         `kopi-docka restore --unit {unit} --backup-id {backup_id} --only volumes,binds \
         --no-start` (into existing containers), or into a directory with `--target-dir DIR`."
    )]
    NoRecipe {
        /// Unit.
        unit: String,
        /// Backup.
        backup_id: String,
    },
    /// The point holds a database dump, and its database container exists with its data.
    #[error(
        "restore point {backup_id} holds a {engine} dump of {container}, which still exists with \
         its data volume: a dump is loaded into a fresh database only.\nRemove the unit with its \
         volumes first (`docker compose down -v`, after a copy of them if you want one), or \
         restore without the dump: name the volumes with `--volume NAME` or leave them out \
         with `--only recipe,networks,binds`; the dump file itself comes with \
         `--target-dir DIR`."
    )]
    DumpNeedsFreshDatabase {
        /// The point.
        backup_id: String,
        /// The database container.
        container: String,
        /// Its engine.
        engine: crate::unit::DumpEngine,
    },
    /// The point holds a dump that a restore does not load (`MongoDB`, refused at backup today).
    #[error(
        "restore point {backup_id} holds a {engine} dump of {container}, which a restore does \
         not load: take it with `--target-dir DIR` (it is in DIR/dumps/{container}/) and put \
         it in place before that service starts ({how}), or restore without the dump: name \
         the volumes with `--volume NAME` or leave them out with `--only recipe,networks,binds`."
    )]
    DumpRestoredByHand {
        /// The point.
        backup_id: String,
        /// The container the dump came from.
        container: String,
        /// Its engine.
        engine: crate::unit::DumpEngine,
        /// How to put the file in place.
        how: &'static str,
    },
    /// The compose implementation the stack needs is not installed.
    #[error(
        "starting stack {unit} needs {tool}, and it is not on PATH.\n\
         Install it, or restore without starting: add `--no-start`, then start it yourself \
         from {dir}."
    )]
    ComposeMissing {
        /// Unit.
        unit: String,
        /// Where the compose files go.
        dir: String,
        /// Which tool, and how to install it.
        tool: &'static str,
    },
    /// Compose failed.
    #[error("`{command}` failed: {output}")]
    Compose {
        /// The command.
        command: String,
        /// Its output, shortened.
        output: String,
    },
    /// Redacted environment values nobody supplied.
    #[error(
        "the saved configuration has redacted secret values for {names:?}; supply them in an env \
         file (`NAME=value` lines, mode 0600) with `--env-file FILE`, or name it in the config \
         as `[units.<name>] env-file`"
    )]
    RedactedEnv {
        /// Variable names.
        names: Vec<String>,
    },
    /// Secrets redacted outside the environment (command arguments, health check, labels):
    /// a container recreated from them would run with the placeholder.
    #[error(
        "the saved configuration of {container} has redacted secrets in {fields:?} (kopi-docka \
         does not keep them in plain text); create the container yourself (`docker create` with \
         its real command and labels), then restore again: the data goes into it"
    )]
    RedactedConfig {
        /// The container.
        container: String,
        /// `Cmd`, `Entrypoint`, `Healthcheck`, `Labels`.
        fields: Vec<String>,
    },
    /// A target is a mount point: a rename cannot swap it.
    #[error(
        "{path} is a mount point, so it cannot be swapped with a restored copy; restore it with \
         `--target-dir DIR` and copy the files into place yourself"
    )]
    MountPoint {
        /// The target.
        path: PathBuf,
    },
    /// Not enough room for the restored copies beside the current content.
    #[error(
        "not enough space for this restore on the filesystem of {}: it needs {} for {parts} \
         (the current content stays as a rollback copy, so nothing is freed while it runs), \
         {} is free.{} Nothing was changed.",
        path.display(),
        bytesize::ByteSize(*needed).display().iec(),
        bytesize::ByteSize(*free).display().iec(),
        rollback_hint(*rollback_copies, *rollback_bytes)
    )]
    NoSpace {
        /// A path on the filesystem.
        path: PathBuf,
        /// What lands there.
        parts: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
        /// Rollback copies of earlier restores on that filesystem.
        rollback_copies: usize,
        /// Their bytes.
        rollback_bytes: u64,
    },
    /// A target no backup of ours can have.
    #[error(
        "the restore point would write {}, but {why}: a backup never includes such a path, \
         so the repository may have been tampered with. Nothing was changed; look at the point \
         with `--target-dir DIR`",
        path.display()
    )]
    RefusedTarget {
        /// The target.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The recipe asks for more than a plain restore, and nobody confirmed it.
    #[error(
        "the recipe of {unit} asks for more than a plain restore:\n  {}\nNothing was changed. \
         Review it (`kopi-docka restore --unit {unit} --dry-run`, or `--target-dir DIR`), then \
         confirm on a terminal or add --trust-recipe",
        items.join("\n  ")
    )]
    Untrusted {
        /// Unit.
        unit: String,
        /// What needs trust.
        items: Vec<String>,
    },
    /// What the restore would do changed between the plan the user confirmed and the one made
    /// again under the run lock.
    #[error(
        "what the restore would do changed while it waited for the answer (a container \
         started or stopped, a file appeared, an interrupted restore was rolled back); nothing \
         was changed: run the restore again"
    )]
    PlanChanged,
    /// The swap journal could not be written, or a target not put back.
    #[error(transparent)]
    Swap(#[from] super::swaps::SwapError),
    /// A target path another user could redirect.
    #[error(transparent)]
    Unsafe(#[from] super::nofollow::UnsafePath),
    /// A volume has no local mountpoint.
    #[error(
        "volume {name} has no local mountpoint (driver {driver}); restore it with --target-dir"
    )]
    NotLocal {
        /// Volume.
        name: String,
        /// Its driver.
        driver: String,
    },
    /// A device-backed local volume whose data is not on this host (nfs, cifs), or whose
    /// device is refused.
    #[error("volume {name} cannot be restored in place: {why}; restore it with --target-dir")]
    DeviceVolume {
        /// Volume.
        name: String,
        /// Why.
        why: String,
    },
    /// The pre-restore hook failed.
    #[error("{0}; nothing was restored")]
    Hook(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// The test failpoint fired.
    #[error("injected failure restoring {path}")]
    Injected {
        /// The target.
        path: PathBuf,
    },
    /// The private working directory cannot be created.
    #[error("creating {}", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn rollback_hint(copies: usize, bytes: u64) -> String {
    if copies == 0 {
        " Free space there.".to_owned()
    } else {
        format!(
            " {copies} rollback copies of earlier restores hold {} there: review them with \
             `kopi-docka admin rollback-copies list` and remove them with `kopi-docka admin \
             rollback-copies prune`, or free space otherwise.",
            bytesize::ByteSize(bytes).display().iec()
        )
    }
}

impl RestoreError {
    pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
