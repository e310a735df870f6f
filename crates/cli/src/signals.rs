//! SIGINT and SIGTERM become a flag the backup checks: containers we stopped are started
//! again before the process exits with code 130. For the daemon, SIGTERM/SIGINT and SIGHUP
//! become the events core's daemon loop reads.

use std::sync::OnceLock;

use anyhow::Context as _;
use kopi_docka_core::daemon::DaemonEvent;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

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

/// Installs the daemon's handlers now (a SIGTERM during start-up must not kill it half-way)
/// and forwards each signal as an event: SIGTERM and SIGINT stop, SIGHUP reloads.
pub fn daemon_events() -> anyhow::Result<mpsc::Receiver<DaemonEvent>> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (sender, receiver) = mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                Some(()) = term.recv() => DaemonEvent::Stop,
                Some(()) = int.recv() => DaemonEvent::Stop,
                Some(()) = hup.recv() => DaemonEvent::Reload,
                else => break,
            };
            if sender.send(event).await.is_err() {
                // The daemon has ended; nobody listens any more.
                break;
            }
        }
    });
    Ok(receiver)
}
