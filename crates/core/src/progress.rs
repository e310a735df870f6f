//! Progress of long operations, reported to whoever drives the library (the CLI draws bars on a
//! terminal and writes periodic log lines otherwise). The library never prints.

use std::fmt::Debug;
use std::sync::Arc;

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Nothing countable: show activity only.
    Spinner,
    /// Items (files, snapshots, packs).
    Items,
    /// Bytes.
    Bytes,
}

/// Receives progress; implemented by the front end.
pub trait ProgressSink: Debug + Send + Sync + 'static {
    /// A task started.
    fn start(&self, unit: ProgressUnit, title: &str) -> Arc<dyn ProgressTask>;
}

/// One running task.
pub trait ProgressTask: Debug + Send + Sync + 'static {
    /// The total is now known.
    fn set_length(&self, total: u64);
    /// The title changed.
    fn set_title(&self, title: &str);
    /// `delta` more units are done.
    fn inc(&self, delta: u64);
    /// The task is over.
    fn finish(&self);
}

/// Reports nothing (tests, `--json` runs without a terminal).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl ProgressSink for Silent {
    fn start(&self, _unit: ProgressUnit, _title: &str) -> Arc<dyn ProgressTask> {
        Arc::new(Silent)
    }
}

impl ProgressTask for Silent {
    fn set_length(&self, _total: u64) {}
    fn set_title(&self, _title: &str) {}
    fn inc(&self, _delta: u64) {}
    fn finish(&self) {}
}
