//! SIGINT and SIGTERM become a flag the backup checks: containers we stopped are started
//! again before the process exits with code 130.

use std::sync::OnceLock;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

static INTERRUPTED: OnceLock<watch::Sender<bool>> = OnceLock::new();

/// Installs the handlers (once per process; needs a running tokio runtime).
pub fn install_once() {
    let sender = INTERRUPTED.get_or_init(|| watch::channel(false).0);
    let sender = sender.clone();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::error!("cannot install signal handlers; SIGTERM would not restart containers");
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::warn!(
                "interrupted: finishing safely (containers we stopped are started again)"
            );
            sender.send_replace(true);
        }
    });
}

/// A receiver that turns `true` on the first signal.
pub fn subscribe() -> watch::Receiver<bool> {
    INTERRUPTED
        .get_or_init(|| watch::channel(false).0)
        .subscribe()
}
