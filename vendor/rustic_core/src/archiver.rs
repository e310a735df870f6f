pub(crate) mod file_archiver;
pub(crate) mod parent;
pub(crate) mod tree;
pub(crate) mod tree_archiver;

use std::path::{Path, PathBuf};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use std::thread::scope;

use itertools::Itertools;
use jiff::Zoned;
use log::warn;
use pariter::IteratorExt;

use crate::{
    Progress,
    archiver::{
        file_archiver::FileArchiver,
        parent::{ItemWithParent, Parent, ParentResult},
        tree::{TreeIterator, TreeType},
        tree_archiver::TreeArchiver,
    },
    backend::node::NodeType,
    backend::{ReadSource, ReadSourceEntry, decrypt::DecryptFullBackend},
    blob::BlobType,
    error::{ErrorKind, RusticError, RusticResult},
    index::{
        ReadGlobalIndex,
        indexer::{Indexer, SharedIndexer},
    },
    repofile::{configfile::ConfigFile, snapshotfile::SnapshotFile},
};

#[derive(thiserror::Error, Debug, displaydoc::Display)]
/// Tree stack empty
pub struct TreeStackEmptyError;

/// The `Archiver` is responsible for archiving files and trees.
/// It will read the file, chunk it, and write the chunks to the backend.
///
/// # Type Parameters
///
/// * `BE` - The backend type.
/// * `I` - The index to read from.
#[allow(missing_debug_implementations)]
#[allow(clippy::struct_field_names)]
pub struct Archiver<'a, BE: DecryptFullBackend, I: ReadGlobalIndex> {
    /// The `FileArchiver` is responsible for archiving files.
    file_archiver: FileArchiver<'a, BE, I>,

    /// The `TreeArchiver` is responsible for archiving trees.
    tree_archiver: TreeArchiver<'a, BE, I>,

    /// The parent snapshot to use.
    parent: Parent,

    /// The `SharedIndexer` is used to index the data.
    indexer: SharedIndexer<BE>,

    /// The backend to write to.
    be: BE,

    /// The backend to write to.
    index: &'a I,

    /// The `SnapshotFile` to write to.
    snap: SnapshotFile,

    /// kopi-docka patch: set to abandon the backup (see `BackupOptions::cancel`).
    cancel: Option<Arc<AtomicBool>>,
}

/// kopi-docka patch: the error of an abandoned backup.
fn cancelled() -> Box<RusticError> {
    RusticError::new(
        ErrorKind::Other,
        "The backup was cancelled; no snapshot was saved.",
    )
}

/// kopi-docka patch: true once `cancel` is set.
fn is_set(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|c| c.load(Ordering::Relaxed))
}

impl<'a, BE: DecryptFullBackend, I: ReadGlobalIndex> Archiver<'a, BE, I> {
    /// Creates a new `Archiver`.
    ///
    /// # Arguments
    ///
    /// * `be` - The backend to write to.
    /// * `index` - The index to read from.
    /// * `config` - The config file.
    /// * `parent` - The parent snapshot to use.
    /// * `snap` - The `SnapshotFile` to write to.
    ///
    /// # Errors
    ///
    /// * If sending the message to the raw packer fails.
    /// * If converting the data length to u64 fails
    pub fn new(
        be: BE,
        index: &'a I,
        config: &ConfigFile,
        parent: Parent,
        mut snap: SnapshotFile,
    ) -> RusticResult<Self> {
        let indexer = Indexer::new(be.clone()).into_shared();
        let mut summary = snap.summary.take().unwrap_or_default();
        summary.backup_start = Zoned::now();

        let file_archiver = FileArchiver::new(be.clone(), index, indexer.clone(), config)?;
        let tree_archiver = TreeArchiver::new(be.clone(), index, indexer.clone(), config, summary)?;

        Ok(Self {
            file_archiver,
            tree_archiver,
            parent,
            indexer,
            be,
            index,
            snap,
            cancel: None,
        })
    }

    /// kopi-docka patch: abandon the backup once `cancel` is set.
    #[must_use]
    pub fn cancellable(mut self, cancel: Option<Arc<AtomicBool>>) -> Self {
        self.file_archiver.cancel.clone_from(&cancel);
        self.cancel = cancel;
        self
    }

    /// Archives the given source.
    ///
    /// This will archive all files and trees in the given source.
    ///
    /// # Type Parameters
    ///
    /// * `R` - The type of the source.
    ///
    /// # Arguments
    ///
    /// * `index` - The index to read from.
    /// * `src` - The source to archive.
    /// * `backup_path` - The path to the backup.
    /// * `as_path` - The path to archive the backup as.
    /// * `skip_identical_parent` - skip saving of snapshot if tree is identical to parent tree.
    /// * `p` - The progress bar.
    ///
    /// # Errors
    ///
    /// * If sending the message to the raw packer fails.
    /// * If the index file could not be serialized.
    /// * If the time is not in the range of `Local::now()`.
    pub fn archive<R>(
        mut self,
        src: &R,
        backup_path: &Path,
        as_path: Option<&PathBuf>,
        skip_identical_parent: bool,
        no_scan: bool,
        p: &Progress,
    ) -> RusticResult<SnapshotFile>
    where
        R: ReadSource + 'static,
        <R as ReadSource>::Open: Send,
        <R as ReadSource>::Iter: Send,
    {
        let cancel = self.cancel.clone();
        let cancel = cancel.as_deref();
        let scope_result = scope(|s| -> RusticResult<_> {
            // determine backup size in parallel to running backup
            let src_size_handle = s.spawn(|| {
                if !no_scan && !p.is_hidden() {
                    match src.size() {
                        Ok(Some(size)) => p.set_length(size),
                        Ok(None) => {}
                        Err(err) => warn!("error determining backup size: {}", err.display_log()),
                    }
                }
            });

            // filter out errors and handle as_path
            // kopi-docka patch: the walk ends once the backup is cancelled
            let iter = src.entries().take_while(|_| !is_set(cancel));
            let iter = iter.filter_map(|item| match item {
                Err(err) => {
                    warn!("ignoring error: {}", err.display_log());
                    None
                }
                Ok(ReadSourceEntry { path, node, open }) => {
                    let snapshot_path = if let Some(as_path) = as_path {
                        as_path
                            .clone()
                            .join(path.strip_prefix(backup_path).unwrap())
                    } else {
                        path
                    };
                    Some(if node.is_dir() {
                        (snapshot_path, node, open)
                    } else {
                        (
                            snapshot_path
                                .parent()
                                .expect("file path should have a parent!")
                                .to_path_buf(),
                            node,
                            open,
                        )
                    })
                }
            });
            // kopi-docka patch: the walk (directory reads, stat, xattrs) runs in its own
            // thread, ahead of the parent-tree matching below, handing over batches
            let iter = iter.chunks_ahead().readahead_scoped(s).flatten();
            // handle beginning and ending of trees
            let iter = TreeIterator::new(iter);

            // use parent snapshot
            let result = iter
                .filter_map(
                    |item| match self.parent.process(&self.be, self.index, item) {
                        Ok(item) => Some(item),
                        Err(err) => {
                            warn!("ignoring error reading parent snapshot: {err:?}");
                            None
                        }
                    },
                )
                // kopi-docka patch: in batches (see `Batch`), not one item at a time
                .batching(Batch::collect)
                // archive files in parallel
                .parallel_map_scoped(s, |batch| {
                    // kopi-docka patch: a cancelled backup opens no further file
                    if is_set(cancel) {
                        return Vec::new();
                    }
                    batch
                        .into_iter()
                        .map(|item| self.file_archiver.process(item, p))
                        .collect::<Vec<_>>()
                })
                .readahead_scoped(s)
                .flatten()
                .filter_map(|item| match item {
                    Ok(item) => Some(item),
                    Err(err) => {
                        warn!("ignoring error: {}", err.display_log());
                        None
                    }
                })
                .try_for_each(|item| {
                    // kopi-docka patch: stop consuming (which stops the workers) once cancelled
                    if is_set(cancel) {
                        return Err(cancelled());
                    }
                    self.tree_archiver.add(item)
                });
            if is_set(cancel) {
                // kopi-docka patch: index what was packed so far, save no tree and no snapshot
                src_size_handle
                    .join()
                    .expect("Scoped Size Handler thread should not panic!");
                return Err(cancelled());
            }
            result?;

            src_size_handle
                .join()
                .expect("Scoped Size Handler thread should not panic!");

            Ok(())
        });
        if let Err(error) = scope_result {
            if is_set(cancel) {
                // kopi-docka patch: flush and index the data packed so far (so the repository
                // has no unindexed pack); the partial tree and the snapshot are never written
                _ = self.file_archiver.finalize()?;
                self.indexer.write().unwrap().finalize()?;
                p.finish();
            }
            return Err(error);
        }

        let stats = self.file_archiver.finalize()?;
        let (id, mut summary) = self.tree_archiver.finalize(self.parent.tree_id())?;
        stats.apply(&mut summary, BlobType::Data);
        self.snap.tree = id;

        self.indexer.write().unwrap().finalize()?;

        summary.finalize(&self.snap.time);
        self.snap.summary = Some(summary);

        // kopi-docka patch: the last moment to give up; after it the snapshot is saved
        if is_set(cancel) {
            p.finish();
            return Err(cancelled());
        }
        if !skip_identical_parent || Some(self.snap.tree) != self.parent.tree_id() {
            let id = self.be.save_file(&self.snap)?;
            self.snap.id = id.into();
        }

        p.finish();
        Ok(self.snap)
    }
}

/// kopi-docka patch: fixed-size batches for a thread that only walks.
trait ChunksAhead: Iterator + Sized {
    fn chunks_ahead(self) -> impl Iterator<Item = Vec<Self::Item>> {
        let mut iter = self;
        std::iter::from_fn(move || {
            let chunk: Vec<_> = iter.by_ref().take(Batch::MAX_ITEMS).collect();
            (!chunk.is_empty()).then_some(chunk)
        })
    }
}

impl<I: Iterator> ChunksAhead for I {}

/// kopi-docka patch: items travel to the archiver threads in batches.
///
/// Upstream hands every file and directory to the worker threads on its own: several channel
/// hops and thread wake-ups per item. For a cold pass over 50,000 unchanged files that was
/// most of the time (perf: scheduler and channel code on top). A batch closes after
/// [`Batch::MAX_ITEMS`] items, or once the files in it that must be read add up to
/// [`Batch::MAX_BYTES`], so large files still spread over the workers.
struct Batch;

impl Batch {
    const MAX_ITEMS: usize = 256;
    const MAX_BYTES: u64 = 4 * 1024 * 1024;

    fn collect<O>(
        items: &mut impl Iterator<Item = ItemWithParent<O>>,
    ) -> Option<Vec<ItemWithParent<O>>> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        for item in items.by_ref() {
            if let TreeType::Other((_, node, (_, parent))) = &item {
                if node.node_type == NodeType::File && !matches!(parent, ParentResult::Matched(()))
                {
                    bytes += node.meta.size;
                }
            }
            batch.push(item);
            if batch.len() >= Self::MAX_ITEMS || bytes >= Self::MAX_BYTES {
                break;
            }
        }
        (!batch.is_empty()).then_some(batch)
    }
}
