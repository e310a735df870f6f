//! Keeping a fresh bundle in `[disaster-recovery] bundle-dir` after each backup run.
//!
//! A refresh that fails is reported and never fails the backup: the backup itself succeeded.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{DrError, ExportOptions, Passphrase, bundle};
use crate::config::LoadedConfig;
use crate::durable::PrivateFileError;
use crate::repo::Repo;

/// Why no fresh bundle was written.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The passphrase file cannot be used.
    #[error(transparent)]
    PassphraseFile(#[from] PrivateFileError),
    /// Building, encrypting or writing the bundle failed.
    #[error(transparent)]
    Bundle(#[from] DrError),
    /// The bundle directory cannot be created.
    #[error("creating {}", dir.display())]
    CreateDir {
        /// The bundle directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Old bundles cannot be removed.
    #[error("removing old bundles in {}", dir.display())]
    Prune {
        /// The bundle directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A fresh bundle was written.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// The new bundle.
    pub file: PathBuf,
    /// How many older bundles were removed (beyond `keep`).
    pub removed: usize,
}

/// The bundle passphrase from `file` (private to its owner), else from
/// `$KOPI_DOCKA_DR_PASSPHRASE`; `None` when neither is given.
pub fn given_passphrase(file: Option<&Path>) -> Result<Option<Passphrase>, RefreshError> {
    if let Some(path) = file {
        let text = crate::durable::read_private(path)?;
        return Ok(Some(Passphrase::new(&text)?));
    }
    match std::env::var(super::PASSPHRASE_ENV) {
        Ok(text) => Ok(Some(Passphrase::new(&text)?)),
        Err(_) => Ok(None),
    }
}

/// Writes a fresh bundle into `[disaster-recovery] bundle-dir` and removes the oldest beyond
/// `keep`. `Ok(None)` when no bundle directory and passphrase file are configured.
pub async fn refresh(
    loaded: &LoadedConfig,
    repo: &Repo,
) -> Result<Option<RefreshReport>, RefreshError> {
    let config = &loaded.config.disaster_recovery;
    let (Some(dir), Some(passphrase_file)) = (&config.bundle_dir, &config.passphrase_file) else {
        return Ok(None);
    };
    let text = crate::durable::read_private(passphrase_file)?;
    let passphrase = Passphrase::new(&text)?;
    let options = ExportOptions {
        include_ssh_key: config.include_ssh_key,
    };
    let (bundle, info) = super::build(loaded, repo, options).await?;
    crate::durable::create_dir_all(dir, 0o700).map_err(|source| RefreshError::CreateDir {
        dir: dir.clone(),
        source,
    })?;
    let file = bundle::default_name(dir, &info.host, info.created_at);
    bundle::write_new(&file, &bundle.to_tar()?, &passphrase)?;
    let keep = usize::try_from(config.keep).unwrap_or(usize::MAX);
    let removed =
        super::prune_bundles(dir, &info.host, keep).map_err(|source| RefreshError::Prune {
            dir: dir.clone(),
            source,
        })?;
    tracing::info!(bundle = %file.display(), removed = removed.len(), "disaster-recovery bundle refreshed");
    Ok(Some(RefreshReport {
        file,
        removed: removed.len(),
    }))
}
