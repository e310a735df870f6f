//! Progress for people: bars on a terminal, a log line per task otherwise (journald-friendly).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kopi_docka_core::progress::{ProgressSink, ProgressTask, ProgressUnit};

/// The front end's [`ProgressSink`].
#[derive(Debug, Clone)]
pub struct CliProgress {
    bars: Option<MultiProgress>,
}

impl CliProgress {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn new() -> Self {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { bars }
    }
}

impl ProgressSink for CliProgress {
    fn start(&self, unit: ProgressUnit, title: &str) -> Arc<dyn ProgressTask> {
        let Some(bars) = &self.bars else {
            return Arc::new(LogTask {
                title: std::sync::Mutex::new(title.to_owned()),
            });
        };
        let template = match unit {
            ProgressUnit::Spinner => "{spinner} {prefix} {elapsed}",
            ProgressUnit::Items => "{spinner} {prefix} {pos}/{len} {wide_bar} {elapsed}/{eta}",
            ProgressUnit::Bytes => {
                "{spinner} {prefix} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {elapsed}/{eta}"
            }
        };
        let bar = bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(title.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        Arc::new(BarTask(bar))
    }
}

#[derive(Debug)]
struct BarTask(ProgressBar);

impl ProgressTask for BarTask {
    fn set_length(&self, total: u64) {
        self.0.set_length(total);
    }
    fn set_title(&self, title: &str) {
        self.0.set_prefix(title.to_owned());
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[derive(Debug)]
struct LogTask {
    title: std::sync::Mutex<String>,
}

impl ProgressTask for LogTask {
    fn set_length(&self, _total: u64) {}
    fn set_title(&self, title: &str) {
        if let Ok(mut t) = self.title.lock() {
            title.clone_into(&mut t);
        }
    }
    fn inc(&self, _delta: u64) {}
    fn finish(&self) {
        if let Ok(title) = self.title.lock() {
            tracing::info!("{title}: done");
        }
    }
}
