//! `--target-dir`: the parts of a point as plain files, no container touched.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::repo::{Repo, RestoreMode};

use super::{RestoreError, RestoreRequest, nofollow};

/// One part restored into a directory.
#[derive(Debug, Serialize)]
pub struct ExtractedPart {
    /// What it is (`recipe`, `networks`, `volume NAME`, `bind PATH`).
    pub part: String,
    /// Where it went.
    pub path: PathBuf,
    /// Files and directories written.
    pub restored: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Restores the selected parts as plain files under `dir` (`recipe/`, `networks/`,
/// `volumes/NAME/`, `binds/PATH`), touching no container. `dir` must be empty or absent.
///
/// Nothing is written outside `dir`: names come from tags that refuse `/`, `..` and NUL
/// ([`crate::repo::SnapshotMeta::parse`]), and each part's directory is opened from `/`
/// without following a symlink, so a symlink an earlier part restored (a bind `/a` holding
/// `b -> /etc`, then a bind `/a/b`) cannot redirect a later one.
pub async fn extract(
    repo: &Repo,
    request: &RestoreRequest,
    dir: &Path,
) -> Result<Vec<ExtractedPart>, RestoreError> {
    let point = &request.point;
    let dir =
        &nofollow::resolve_trusted(&std::path::absolute(dir).map_err(RestoreError::io(dir))?)?;
    let mut jobs: Vec<(String, String, PathBuf)> = Vec::new();
    if request.parts.recipe
        && let Some(s) = &point.recipe
    {
        jobs.push(("recipe".into(), s.id.clone(), dir.join("recipe")));
    }
    if request.parts.networks
        && let Some(s) = &point.networks
    {
        jobs.push(("networks".into(), s.id.clone(), dir.join("networks")));
    }
    if request.parts.volumes {
        for (name, s) in &point.volumes {
            if request.volumes.is_empty() || request.volumes.contains(name) {
                jobs.push((
                    format!("volume {name}"),
                    s.id.clone(),
                    dir.join("volumes").join(name),
                ));
            }
        }
    }
    if request.parts.binds {
        for (source, s) in &point.binds {
            if request.binds.is_empty() || request.binds.contains(source) {
                let rel = source.strip_prefix("/").unwrap_or(source);
                jobs.push((
                    format!("bind {}", source.display()),
                    s.id.clone(),
                    dir.join("binds").join(rel),
                ));
            }
        }
    }
    if request.parts.volumes && request.volumes.is_empty() {
        for (container, dump) in &point.dumps {
            jobs.push((
                format!("{} dump of {container}", dump.engine),
                dump.snapshot.id.clone(),
                dir.join("dumps").join(container),
            ));
        }
    }
    let mut out = Vec::new();
    for (part, id, path) in jobs {
        let escapes = path.strip_prefix(dir).map_or(true, |rel| {
            !rel.components().all(|c| matches!(c, Component::Normal(_)))
        });
        if escapes {
            return Err(RestoreError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "leads outside the target directory; refused",
                ),
            });
        }
        let name = nofollow::file_name(&path).map_err(RestoreError::io(&path))?;
        let parent = nofollow::open_parent(&path).map_err(RestoreError::io(&path))?;
        if nofollow::exists_in(&parent, &name.to_string_lossy()).map_err(RestoreError::io(&path))? {
            // `dir` was empty: an earlier part of this point put something here (a symlink,
            // perhaps); writing the part into it would follow it.
            return Err(RestoreError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists already (an earlier part of this point put it there, possibly a \
                     symlink); a restore does not write through it",
                ),
            });
        }
        // Through the descriptor: what the path names cannot change while the part is written.
        let through = nofollow::fd_path(&parent).join(name);
        let report = repo.restore(id, through, RestoreMode::EmptyOnly).await?;
        out.push(ExtractedPart {
            part,
            path,
            restored: report.restored,
            bytes: report.bytes,
        });
    }
    Ok(out)
}
