//! Reading a restored recipe (see `backup::recipe` for its layout) and putting its compose and
//! env files back.
//!
//! The types here read only what a restore needs and ignore the rest, so a recipe written by
//! an older or newer version still restores.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::{RestoreError, nofollow};
use crate::unit::{ContainerState, UnitKind};

/// `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    /// The unit as it was discovered at backup time.
    pub unit: RecordedUnit,
}

/// A unit as recorded in its manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedUnit {
    /// Project or container name.
    pub name: String,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// Compose facts (stacks).
    #[serde(default)]
    pub project: Option<RecordedProject>,
    /// Member containers in start order.
    #[serde(default)]
    pub containers: Vec<RecordedContainer>,
    /// Named volumes.
    #[serde(default)]
    pub volumes: Vec<RecordedVolume>,
    /// Container names in start order.
    #[serde(default)]
    pub start_order: Vec<String>,
}

/// Compose facts of a stack.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedProject {
    /// Project directory at backup time.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Compose files in the order compose used them.
    #[serde(default)]
    pub compose_files: Vec<RecordedFile>,
}

/// A project file.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedFile {
    /// Path on the host at backup time.
    pub path: PathBuf,
    /// Whether it existed then (only present files are in the recipe).
    #[serde(default)]
    pub present: bool,
}

/// A member container.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedContainer {
    /// Name.
    pub name: String,
    /// Compose service.
    #[serde(default)]
    pub service: Option<String>,
    /// State at backup time.
    #[serde(default)]
    pub state: ContainerState,
    /// Its backup policy (recipes of earlier versions have none: `stop`).
    #[serde(default)]
    pub policy: crate::unit::Policy,
}

/// A named volume.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedVolume {
    /// Name.
    pub name: String,
    /// Driver.
    #[serde(default)]
    pub driver: Option<String>,
}

/// A restored recipe directory. It holds the stack's `.env` and env files in plain text, so it
/// is removed when the recipe is dropped: after the restore, the dry run or the drill that read
/// it, whether they succeeded or not.
#[derive(Debug)]
pub struct Recipe {
    /// Where it was restored.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Volume inspect documents by name (empty for recipes older than `volumes.json`).
    pub volumes: BTreeMap<String, serde_json::Value>,
}

impl Drop for Recipe {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot remove the restored recipe copy");
            }
            _ => {}
        }
    }
}

impl Recipe {
    /// Reads the recipe restored into `dir`.
    pub fn load(dir: &Path) -> Result<Self, RestoreError> {
        let manifest: Manifest = read_json(&dir.join("manifest.json"))?;
        let volumes_path = dir.join("volumes.json");
        let volumes = if volumes_path.exists() {
            read_json::<Vec<serde_json::Value>>(&volumes_path)?
                .into_iter()
                .filter_map(|doc| {
                    let name = doc.get("Name")?.as_str()?.to_owned();
                    Some((name, doc))
                })
                .collect()
        } else {
            BTreeMap::new()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            volumes,
        })
    }

    /// The saved (redacted) inspect document of a member container.
    pub fn inspect(&self, container: &str) -> Result<serde_json::Value, RestoreError> {
        read_json(&self.dir.join("inspect").join(format!("{container}.json")))
    }

    /// The project directory at backup time.
    pub fn working_dir(&self) -> Option<&Path> {
        self.manifest
            .unit
            .project
            .as_ref()
            .and_then(|p| p.working_dir.as_deref())
    }

    /// Every file under `compose/` with the host path it goes to: relative files under
    /// `project_dir`, `_abs/...` files at their absolute path.
    pub fn project_files(
        &self,
        project_dir: &Path,
    ) -> Result<Vec<(PathBuf, PathBuf)>, RestoreError> {
        let root = self.dir.join("compose");
        let mut out = Vec::new();
        if root.is_dir() {
            collect_files(&root, &root, project_dir, &mut out)?;
        }
        out.sort();
        Ok(out)
    }

    /// Compose files in their original order, relocated under `project_dir`.
    pub fn compose_files(&self, project_dir: &Path) -> Vec<PathBuf> {
        let Some(project) = &self.manifest.unit.project else {
            return Vec::new();
        };
        project
            .compose_files
            .iter()
            .filter(|f| f.present)
            .map(|f| relocate(&f.path, project.working_dir.as_deref(), project_dir))
            .collect()
    }
}

/// Maps a path under the original project dir to the same place under `project_dir`; other
/// paths stay where they were.
pub fn relocate(path: &Path, original: Option<&Path>, project_dir: &Path) -> PathBuf {
    match original.and_then(|o| path.strip_prefix(o).ok()) {
        Some(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
            project_dir.join(rel)
        }
        _ => path.to_path_buf(),
    }
}

fn collect_files(
    root: &Path,
    dir: &Path,
    project_dir: &Path,
    out: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), RestoreError> {
    let entries = std::fs::read_dir(dir).map_err(RestoreError::io(dir))?;
    for entry in entries {
        let entry = entry.map_err(RestoreError::io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(RestoreError::io(&path))?.is_dir() {
            collect_files(root, &path, project_dir, out)?;
            continue;
        }
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let dest = match rel.strip_prefix("_abs") {
            Ok(abs) => Path::new("/").join(abs),
            Err(_) => project_dir.join(rel),
        };
        out.push((path, dest));
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, RestoreError> {
    let text = std::fs::read(path).map_err(RestoreError::io(path))?;
    serde_json::from_slice(&text).map_err(|e| RestoreError::Recipe {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Puts `from` at `to`. An existing different file is first renamed to
/// `<name>.kopi-docka-<stamp>.bak`, which is returned. The directories on the way are resolved
/// and opened without following symlinks other users own ([`nofollow`]); whatever is at `to`
/// itself (a symlink, a FIFO) is renamed aside unread, never followed. Run as root, the file
/// gets the owner it was saved with (a user's compose project stays theirs to edit).
pub fn place_file(from: &Path, to: &Path, stamp: &str) -> Result<Option<PathBuf>, RestoreError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(from).map_err(RestoreError::io(from))?;
    let mode = meta.mode() & 0o7777;
    let owner = rustix::process::geteuid()
        .is_root()
        .then(|| (meta.uid(), meta.gid()));
    place_file_as(from, to, stamp, mode, owner)
}

/// [`place_file`] with the given mode and, when given, numeric owner (set through the
/// directory's descriptor, never through a symlink).
pub fn place_file_as(
    from: &Path,
    to: &Path,
    stamp: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<Option<PathBuf>, RestoreError> {
    let new = std::fs::read(from).map_err(RestoreError::io(from))?;
    let to = nofollow::resolve_parent(to)?;
    let name = nofollow::file_name(&to).map_err(RestoreError::io(&to))?;
    let parent = nofollow::open_parent(&to).map_err(RestoreError::io(&to))?;
    let at = nofollow::fd_path(&parent).join(name);
    let backup = match std::fs::symlink_metadata(&at) {
        Ok(meta) if meta.is_file() && std::fs::read(&at).map_err(RestoreError::io(&to))? == new => {
            return Ok(None);
        }
        Ok(_) => {
            crate::durable::keep_aside(&at, stamp).map_err(RestoreError::io(&to))?;
            Some(crate::durable::aside_path(&to, stamp))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(RestoreError::io(&to)(e)),
    };
    crate::durable::write_file(&at, &new, mode).map_err(RestoreError::io(&to))?;
    if let Some((uid, gid)) = owner {
        rustix::fs::chownat(
            &parent,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| RestoreError::io(&to)(e.into()))?;
    }
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_keeps_outside_paths() {
        let orig = Some(Path::new("/srv/app"));
        let new = Path::new("/opt/app");
        assert_eq!(
            relocate(Path::new("/srv/app/html"), orig, new),
            Path::new("/opt/app/html")
        );
        assert_eq!(
            relocate(Path::new("/srv/other"), orig, new),
            Path::new("/srv/other")
        );
        assert_eq!(
            relocate(Path::new("/srv/app"), orig, new),
            Path::new("/opt/app")
        );
    }

    #[test]
    fn placing_keeps_a_backup_of_a_different_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("new.yml");
        let to = dir.path().join("sub/docker-compose.yml");
        std::fs::write(&from, "new").unwrap();
        assert_eq!(place_file(&from, &to, "s1").unwrap(), None);
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "new");
        assert_eq!(
            place_file(&from, &to, "s2").unwrap(),
            None,
            "identical: no backup"
        );
        std::fs::write(&to, "old").unwrap();
        let bak = place_file(&from, &to, "s3").unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "old");
        assert!(bak.ends_with("docker-compose.yml.kopi-docka-s3.bak"));
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "new");
    }
}
