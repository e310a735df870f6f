//! Tailscale peers as SFTP targets: the peers `tailscale status --json` lists, with the
//! time a TCP connection to their ssh port takes (measured for all peers at once).
//!
//! Only the fields we show are read; everything else in the JSON is ignored, so newer
//! tailscale versions that add fields keep working. `Peer` is `null` on a tailnet of one.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The peers cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum TailscaleError {
    /// `tailscale` is not installed or cannot run.
    #[error(
        "cannot run `tailscale status --json`: {0}. Install Tailscale on this machine \
         (https://tailscale.com/download) or give the server's address instead"
    )]
    Tool(#[source] std::io::Error),
    /// `tailscale status` failed (tailscaled not running, logged out).
    #[error("`tailscale status --json` failed: {0}. Check `tailscale status`")]
    Status(String),
    /// The output is not the JSON we know.
    #[error("`tailscale status --json` printed JSON this version does not read: {0}")]
    Json(#[from] serde_json::Error),
}

/// One peer of this machine's tailnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// Its host name (`HostName`).
    pub name: String,
    /// Its DNS name in the tailnet without the trailing dot (`DNSName`); empty without
    /// Tailscale's DNS.
    pub dns_name: String,
    /// Its operating system (`OS`: linux, windows, macOS, ...).
    pub os: String,
    /// Its Tailscale addresses, IPv4 first.
    pub addresses: Vec<IpAddr>,
    /// Whether the coordination server sees it online.
    pub online: bool,
    /// The time a TCP connection to its ssh port took; `None` when it did not connect.
    pub latency_ms: Option<u64>,
}

impl Peer {
    /// The address to reach it at: its first (IPv4) Tailscale address.
    pub fn address(&self) -> Option<IpAddr> {
        self.addresses.first().copied()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    #[serde(default)]
    peer: Option<BTreeMap<String, PeerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PeerStatus {
    #[serde(default)]
    host_name: String,
    #[serde(default, rename = "DNSName")]
    dns_name: String,
    #[serde(default, rename = "OS")]
    os: String,
    #[serde(default, rename = "TailscaleIPs")]
    tailscale_ips: Option<Vec<IpAddr>>,
    #[serde(default)]
    online: bool,
}

/// The peers in the output of `tailscale status --json`, sorted by name (latency not measured).
pub fn parse_status(json: &str) -> Result<Vec<Peer>, TailscaleError> {
    let status: Status = serde_json::from_str(json)?;
    let mut peers: Vec<Peer> = status
        .peer
        .unwrap_or_default()
        .into_values()
        .map(|p| {
            let mut addresses = p.tailscale_ips.unwrap_or_default();
            addresses.sort_by_key(IpAddr::is_ipv6);
            Peer {
                name: p.host_name,
                dns_name: p.dns_name.trim_end_matches('.').to_owned(),
                os: p.os,
                addresses,
                online: p.online,
                latency_ms: None,
            }
        })
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

/// Lists the peers (`tailscale status --json`) and measures, for every online peer at once,
/// how long a TCP connection to `port` takes (at most `timeout` each). Online peers come
/// first, fastest first.
pub fn peers(port: u16, timeout: Duration) -> Result<Vec<Peer>, TailscaleError> {
    let output = Command::new("tailscale")
        .args(["status", "--json"])
        .stdin(Stdio::null())
        .output()
        .map_err(TailscaleError::Tool)?;
    if !output.status.success() {
        let detail = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(TailscaleError::Status(if detail.is_empty() {
            output.status.to_string()
        } else {
            detail
        }));
    }
    let mut peers = parse_status(&String::from_utf8_lossy(&output.stdout))?;
    measure(&mut peers, port, timeout);
    peers.sort_by_key(|p| (!p.online, p.latency_ms.is_none(), p.latency_ms));
    Ok(peers)
}

/// Sets `latency_ms` of every online peer, all measured in parallel (one thread each: a
/// tailnet has tens of peers, not thousands).
pub fn measure(peers: &mut [Peer], port: u16, timeout: Duration) {
    std::thread::scope(|scope| {
        let probes: Vec<_> = peers
            .iter_mut()
            .filter(|p| p.online)
            .filter_map(|p| {
                let address = SocketAddr::new(p.address()?, port);
                Some((p, scope.spawn(move || connect_time(address, timeout))))
            })
            .collect();
        for (peer, probe) in probes {
            peer.latency_ms = probe.join().ok().flatten();
        }
    });
}

fn connect_time(address: SocketAddr, timeout: Duration) -> Option<u64> {
    let start = Instant::now();
    TcpStream::connect_timeout(&address, timeout).ok()?;
    u64::try_from(start.elapsed().as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded shapes of `tailscale status --json` (addresses and keys replaced).
    const TWO_PEERS: &str = include_str!("../tests/fixtures/tailscale/status-two-peers.json");
    const ALONE: &str = include_str!("../tests/fixtures/tailscale/status-no-peers.json");

    #[test]
    fn peers_are_read_from_a_recorded_status() {
        let peers = parse_status(TWO_PEERS).unwrap();
        let names: Vec<_> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["laptop", "nas"]);
        let nas = &peers[1];
        assert_eq!(nas.dns_name, "nas.tail1234.ts.net");
        assert_eq!(nas.os, "linux");
        assert!(nas.online);
        assert_eq!(nas.address(), Some("100.101.102.103".parse().unwrap()));
        assert_eq!(nas.addresses.len(), 2);
        assert!(!peers[0].online);
        assert_eq!(peers[0].os, "windows");
    }

    #[test]
    fn a_tailnet_of_one_has_no_peers() {
        assert!(parse_status(ALONE).unwrap().is_empty());
    }

    #[test]
    fn latency_is_measured_for_online_peers_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = |name: &str, online| Peer {
            name: name.into(),
            dns_name: String::new(),
            os: "linux".into(),
            addresses: vec!["127.0.0.1".parse().unwrap()],
            online,
            latency_ms: None,
        };
        let mut peers = vec![peer("up", true), peer("down", false)];
        measure(&mut peers, port, Duration::from_secs(2));
        assert!(peers[0].latency_ms.is_some());
        assert!(peers[1].latency_ms.is_none());
    }
}
