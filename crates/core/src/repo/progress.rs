//! Bridges rustic_core's progress callbacks to our [`ProgressSink`].

use std::sync::Arc;

use rustic_core::{Progress, ProgressBars, ProgressType, RusticProgress};

use crate::progress::{ProgressSink, ProgressTask, ProgressUnit};

#[derive(Debug, Clone)]
pub(super) struct Bars(pub Arc<dyn ProgressSink>);

impl ProgressBars for Bars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> Progress {
        let unit = match progress_type {
            ProgressType::Spinner => ProgressUnit::Spinner,
            ProgressType::Counter => ProgressUnit::Items,
            ProgressType::Bytes => ProgressUnit::Bytes,
        };
        Progress::new(Task(
            self.0.start(unit, prefix.trim_end_matches(['.', ' '])),
        ))
    }
}

#[derive(Debug)]
struct Task(Arc<dyn ProgressTask>);

impl RusticProgress for Task {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_title(title);
    }
    fn inc(&self, inc: u64) {
        self.0.inc(inc);
    }
    fn finish(&self) {
        self.0.finish();
    }
}
