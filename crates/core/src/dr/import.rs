//! Importing a bundle on a new machine: open it, install its files, and with `--restore-all`
//! restore every unit from its newest point.
//!
//! Three steps, so that a caller can stop after any of them: [`plan`] opens the bundle and
//! computes the files ([`ImportPlan::dry_run`] reports it and writes nothing),
//! [`ImportPlan::install`] writes them and connects to the repository, and
//! [`Installed::restore_all`] restores: it takes the run lock (it stops and starts containers)
//! and first repairs what a killed run left on this host, as `restore` and `backup` do (a
//! re-run on a half-restored host: swapped volumes rolled back, stopped containers started).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{DrError, InstallFile, Passphrase, RecoveryInfo};
use crate::backup::Interrupt;
use crate::config::{self, ConfigError, Environment, LoadedConfig};
use crate::docker::{DockerError, Engine};
use crate::progress::ProgressSink;
use crate::repo::{BackupId, Repo, RepoError, RepoSettings, SnapshotFilter};
use crate::restore::{self, RestoreOutcome};
use crate::stop::RecoveryReport;

/// What can stop an import after the bundle is opened.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Installing the files failed.
    #[error(transparent)]
    Dr(#[from] DrError),
    /// The installed configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository cannot be reached or read.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The engine cannot be reached.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// Another run holds the run lock.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// What a killed run left could not be repaired; nothing was restored.
    #[error(
        "{}\nresolve this (`kopi-docka admin restart-stopped`) before restoring; nothing was \
         restored",
        errors.join("\n")
    )]
    Recovery {
        /// What failed.
        errors: Vec<String>,
    },
}

/// What to import and where its configuration goes.
#[derive(Debug)]
pub struct ImportRequest<'a> {
    /// The bundle file.
    pub bundle: &'a Path,
    /// Its passphrase.
    pub passphrase: &'a Passphrase,
    /// Where the configuration is installed.
    pub config_path: PathBuf,
    /// When the command started: the report's duration counts from here.
    pub started: Instant,
}

/// An opened bundle and the files installing it would write.
#[derive(Debug)]
pub struct ImportPlan {
    info: RecoveryInfo,
    files: Vec<InstallFile>,
    config_path: PathBuf,
    started: Instant,
}

/// Opens the bundle and plans its installation; writes nothing.
pub fn plan(request: ImportRequest<'_>) -> Result<ImportPlan, DrError> {
    let sealed = std::fs::File::open(request.bundle).map_err(|source| DrError::Open {
        path: request.bundle.to_path_buf(),
        source,
    })?;
    let (bundle, info) = super::open(sealed, request.passphrase)?;
    let files = super::plan_install(&bundle, &info, &request.config_path)?;
    Ok(ImportPlan {
        info,
        files,
        config_path: request.config_path,
        started: request.started,
    })
}

impl ImportPlan {
    /// The report of `--dry-run`: what would be installed.
    pub fn dry_run(self) -> ImportReport {
        ImportReport::new(
            true,
            self.info,
            self.files,
            RestoreAll::default(),
            self.started,
        )
    }

    /// Installs the files (what they replace is kept aside), loads the installed configuration
    /// and opens the repository it names.
    pub async fn install(
        mut self,
        env: Environment,
        progress: Arc<dyn ProgressSink>,
    ) -> Result<Installed, ImportError> {
        let stamp = crate::durable::stamp(jiff::Timestamp::now());
        super::install(&mut self.files, &stamp)?;
        let loaded = config::load(Some(&self.config_path), env)?;
        let settings = RepoSettings::from_config(&loaded)?;
        let repo = Repo::open(settings, progress).await?;
        Ok(Installed {
            info: self.info,
            files: self.files,
            loaded,
            repo,
            started: self.started,
        })
    }
}

/// An installed bundle, its configuration loaded and its repository open.
#[derive(Debug)]
pub struct Installed {
    info: RecoveryInfo,
    files: Vec<InstallFile>,
    loaded: LoadedConfig,
    repo: Repo,
    started: Instant,
}

impl Installed {
    /// The installed configuration.
    pub fn loaded(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// Restores every unit of the bundle's host from its newest complete point and starts it,
    /// one after the other, until `interrupt` is set, holding the run lock (containers are
    /// stopped and started: never at the same time as a backup). First, what a killed run left
    /// is repaired ([`crate::stop::lock_and_recover`]); if that fails nothing is restored.
    /// Newer incomplete points are skipped (and named in the result); a unit without a complete
    /// point is not restored. A unit whose recipe asks for more than a plain restore
    /// ([`crate::restore::trust`]) is not restored unless `trust_recipe`.
    pub async fn restore_all(
        &self,
        interrupt: &Interrupt,
        trust_recipe: bool,
    ) -> Result<RestoreAll, ImportError> {
        let engine = Engine::connect(self.loaded.engine_target()?).await?;
        let (_run_lock, recovered) = crate::stop::lock_and_recover(
            &engine,
            &self.loaded.env.state_dir(),
            interrupt,
            self.loaded.config.backup.health_timeout(),
        )
        .await?;
        if !recovered.errors.is_empty() {
            return Err(ImportError::Recovery {
                errors: recovered.errors,
            });
        }
        let journal = self.loaded.env.state_dir().journal();
        let snapshots = self
            .repo
            .snapshots(SnapshotFilter {
                host: Some(self.info.host.clone()),
                ..SnapshotFilter::default()
            })
            .await?;
        let units = restore::newest_per_unit(restore::group(&snapshots));
        let mut outcomes = Vec::new();
        for newest in units {
            if *interrupt.borrow() {
                break;
            }
            let (unit, skipped) = (newest.unit, newest.skipped);
            if !skipped.is_empty() {
                tracing::warn!(
                    unit = %unit,
                    skipped = %skipped.iter().map(BackupId::as_str).collect::<Vec<_>>().join(", "),
                    "skipping newer incomplete restore points"
                );
            }
            let Some(point) = newest.point else {
                outcomes.push(UnitRestore {
                    error: Some(
                        restore::PointError::NoCompletePoint {
                            unit: unit.clone(),
                            incomplete: skipped.iter().map(ToString::to_string).collect(),
                        }
                        .to_string(),
                    ),
                    unit,
                    outcome: None,
                    skipped_incomplete: skipped,
                });
                continue;
            };
            tracing::info!(unit = %point.unit, backup_id = %point.backup_id, "restoring");
            // One unit that cannot be restored (a missing secret, a missing image) must not keep
            // the others down.
            let result = restore::restore_point(
                &self.loaded,
                &engine,
                &self.repo,
                &journal,
                point,
                interrupt,
                trust_recipe,
            )
            .await;
            outcomes.push(match result {
                Ok(outcome) => UnitRestore {
                    unit,
                    outcome: Some(outcome),
                    error: None,
                    skipped_incomplete: skipped,
                },
                Err(error) => UnitRestore {
                    unit,
                    outcome: None,
                    error: Some(crate::durable::error_chain(&error)),
                    skipped_incomplete: skipped,
                },
            });
        }
        Ok(RestoreAll {
            recovered,
            units: outcomes,
        })
    }

    /// The report of the import, with what `restore_all` returned (nothing without it).
    pub fn report(self, restored: RestoreAll) -> ImportReport {
        ImportReport::new(false, self.info, self.files, restored, self.started)
    }
}

/// What [`Installed::restore_all`] did.
#[derive(Debug, Default)]
pub struct RestoreAll {
    /// What a killed run had left and was repaired first.
    pub recovered: RecoveryReport,
    /// One entry per unit.
    pub units: Vec<UnitRestore>,
}

/// What an import did (`--json` prints it as is).
#[derive(Debug, Serialize)]
pub struct ImportReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The bundle's recovery info.
    pub info: RecoveryInfo,
    /// The files installed (or that would be).
    pub installed: Vec<InstallFile>,
    /// What `--restore-all` repaired first (an interrupted restore rolled back, containers a
    /// killed run left stopped started).
    #[serde(default, skip_serializing_if = "RecoveryReport::is_empty")]
    pub recovered: RecoveryReport,
    /// One entry per unit of `--restore-all`.
    pub restored: Vec<UnitRestore>,
    /// Seconds since the command started.
    pub duration_seconds: f64,
}

/// How an import ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Everything asked for was done.
    Done,
    /// Some units were not restored.
    Partial,
    /// SIGINT or SIGTERM stopped a restore.
    Interrupted,
}

impl ImportReport {
    fn new(
        dry_run: bool,
        info: RecoveryInfo,
        installed: Vec<InstallFile>,
        restored: RestoreAll,
        started: Instant,
    ) -> Self {
        Self {
            dry_run,
            info,
            installed,
            recovered: restored.recovered,
            restored: restored.units,
            duration_seconds: started.elapsed().as_secs_f64(),
        }
    }

    /// Interrupted wins over failed units: an interrupted run is never reported as partial.
    pub fn outcome(&self) -> ImportOutcome {
        let interrupted = self
            .restored
            .iter()
            .any(|r| r.outcome.as_ref().is_some_and(|o| o.interrupted));
        if interrupted {
            ImportOutcome::Interrupted
        } else if self.restored.iter().any(|r| !r.ok()) {
            ImportOutcome::Partial
        } else {
            ImportOutcome::Done
        }
    }
}

/// One unit of `--restore-all`: its outcome, or why it could not even start.
#[derive(Debug, Serialize)]
pub struct UnitRestore {
    /// The unit.
    pub unit: String,
    /// What the restore did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RestoreOutcome>,
    /// Why there is no outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Newer incomplete points of the unit that were passed over, newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_incomplete: Vec<BackupId>,
}

impl UnitRestore {
    /// Restored completely.
    pub fn ok(&self) -> bool {
        self.outcome.as_ref().is_some_and(RestoreOutcome::ok)
    }
}
