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

/// `--quiet`: no bars (the log lines are info, which `--quiet` filters out).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the bars off for the whole process (`--quiet`); called once from `main`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

impl CliProgress {
    /// Bars when stderr is a terminal (and no `--quiet`), log lines otherwise.
    pub fn new() -> Self {
        let bars = (std::io::stderr().is_terminal()
            && !QUIET.load(std::sync::atomic::Ordering::Relaxed))
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { bars }
    }
}

impl ProgressSink for CliProgress {
    fn start(&self, unit: ProgressUnit, title: &str) -> Arc<dyn ProgressTask> {
        let Some(bars) = &self.bars else {
            return Arc::new(LogTask::new(unit, title));
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

/// Without a terminal: a line every [`LOG_EVERY`] while a task runs, and one when a task that
/// ran that long ends.
#[derive(Debug)]
struct LogTask {
    state: std::sync::Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    title: String,
    unit: ProgressUnit,
    done: u64,
    total: u64,
    last: std::time::Instant,
    started: std::time::Instant,
}

/// How often a running task logs its progress without a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl LogTask {
    fn new(unit: ProgressUnit, title: &str) -> Self {
        let state = LogState {
            title: title.to_owned(),
            unit,
            done: 0,
            total: 0,
            last: std::time::Instant::now(),
            started: std::time::Instant::now(),
        };
        Self {
            state: std::sync::Mutex::new(state),
        }
    }
}

impl LogState {
    fn line(&self) -> String {
        let amount = |n: u64| match self.unit {
            ProgressUnit::Bytes => crate::render::human_bytes(n),
            ProgressUnit::Items | ProgressUnit::Spinner => n.to_string(),
        };
        if self.total > 0 {
            format!(
                "{}: {} of {}",
                self.title,
                amount(self.done),
                amount(self.total)
            )
        } else {
            format!("{}: {}", self.title, amount(self.done))
        }
    }
}

impl ProgressTask for LogTask {
    fn set_length(&self, total: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.total = total;
        }
    }
    fn set_title(&self, title: &str) {
        if let Ok(mut s) = self.state.lock() {
            title.clone_into(&mut s.title);
        }
    }
    fn inc(&self, delta: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.done += delta;
            if s.last.elapsed() >= LOG_EVERY && !s.title.is_empty() {
                s.last = std::time::Instant::now();
                tracing::info!("{}", s.line());
            }
        }
    }
    fn finish(&self) {
        // Short tasks (index reads, small snapshots) stay quiet; long ones close their lines.
        if let Ok(s) = self.state.lock()
            && s.started.elapsed() >= LOG_EVERY
            && !s.title.is_empty()
        {
            tracing::info!("{} (done)", s.line());
        }
    }
}
