//! The `sd_notify` protocol, by hand: one datagram of `KEY=VALUE` lines to the unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). No library, no
//! optional dependency: the original's daemon needed a Python extra and, without it, never
//! became ready and was restarted in a loop.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use super::SystemdError;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    display: String,
}

impl Notifier {
    /// A notifier for the `$NOTIFY_SOCKET` value `target` (a path or `@abstract-name`).
    pub fn new(target: &str) -> Result<Self, SystemdError> {
        let error = |source| SystemdError::Notify {
            socket: target.to_owned(),
            source,
        };
        let address = if let Some(name) = target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(error)?
        } else if target.starts_with('/') {
            SocketAddr::from_pathname(target).map_err(error)?
        } else {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
            )));
        };
        let socket = UnixDatagram::unbound().map_err(error)?;
        Ok(Self {
            socket,
            address,
            display: target.to_owned(),
        })
    }

    /// Sends `state`: newline-separated assignments such as `READY=1\nSTATUS=idle`.
    pub fn notify(&self, state: &str) -> Result<(), SystemdError> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.address)
            .map(|_| ())
            .map_err(|source| SystemdError::Notify {
                socket: self.display.clone(),
                source,
            })
    }
}

/// The service manager as the daemon sees it: `sd_notify` when systemd (or a test playing it)
/// gave us a socket, a no-op otherwise. Cheap to clone; clones share the socket.
#[derive(Debug, Clone, Default)]
pub struct ServiceManager(Option<Arc<Notifier>>);

impl ServiceManager {
    /// The manager `$NOTIFY_SOCKET` names; none when it is unset or empty.
    pub fn from_env() -> Result<Self, SystemdError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(target) if !target.is_empty() => Ok(Self(Some(Arc::new(Notifier::new(&target)?)))),
            _ => Ok(Self(None)),
        }
    }

    /// Sends `state`; a failure is logged, never returned: systemd gone or restarting does not
    /// stop the daemon's own work.
    pub fn notify(&self, state: &str) {
        if let Some(notifier) = &self.0
            && let Err(error) = notifier.notify(state)
        {
            tracing::warn!(%error, "cannot notify systemd");
        }
    }

    /// Pings the watchdog (`$WATCHDOG_USEC`, when meant for us) from its own task for the rest
    /// of the process, so a long backup never starves it. Needs a tokio runtime.
    pub fn spawn_watchdog(&self) {
        let interval = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        );
        let (Some(_), Some(every)) = (&self.0, interval) else {
            return;
        };
        let this = self.clone();
        tracing::debug!(?every, "watchdog pings");
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                this.notify("WATCHDOG=1");
            }
        });
    }
}

/// The variables through which systemd talks to its main process; a child the daemon starts
/// must not see them, or it would speak for the service.
pub const ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How often to ping the watchdog: half of `$WATCHDOG_USEC` (systemd's advice), when the
/// watchdog is meant for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt as _;

    #[test]
    fn sends_to_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        Notifier::new(path.to_str().unwrap())
            .unwrap()
            .notify("READY=1\nSTATUS=idle")
            .unwrap();
        let mut buf = [0_u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=idle");

        let name = format!("kopi-docka-test-{}", std::process::id());
        let abstract_server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .notify("WATCHDOG=1")
            .unwrap();
        let n = abstract_server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        assert!(Notifier::new("relative").is_err());
    }

    #[test]
    fn watchdog_interval_is_half_and_only_for_us() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("3000000"), None),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            watchdog_interval(Some("3000000"), Some(&me)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(watchdog_interval(Some("3000000"), Some("1")), None);
        assert_eq!(watchdog_interval(None, None), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
    }
}
