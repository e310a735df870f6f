//! Where the backups go: the location kinds `setup` offers and the fields each one needs.
//! Credentials become the text of a private env file (docs/repository.md), never argv or the
//! config itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::ValueEnum;
use kopi_docka_core::config::{RemoteBackend, RepositoryLocation};
use kopi_docka_core::tailscale::{self, Peer};

use super::ask::Asker;
use crate::cli::SetupArgs;
use crate::commands::UsageError;

/// The kinds of location `setup` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A directory on this machine (or a mounted disk).
    Local,
    /// Another machine over SSH.
    Sftp,
    /// A peer of this machine's tailnet, over SSH.
    Tailscale,
    /// S3-compatible storage (AWS, `MinIO`, Wasabi, Ceph).
    S3,
    /// Backblaze B2 (through its S3 API).
    B2,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
    /// A restic REST server.
    Rest,
    /// Any rclone remote.
    Rclone,
    /// `WebDAV` (Nextcloud, ownCloud).
    Webdav,
}

const KINDS: [(Kind, &str, &str); 10] = [
    (
        Kind::Local,
        "local",
        "a directory on this machine (or a mounted disk)",
    ),
    (
        Kind::Sftp,
        "sftp",
        "another machine over SSH (a NAS, a server)",
    ),
    (
        Kind::Tailscale,
        "tailscale",
        "a peer of your tailnet, over SSH",
    ),
    (
        Kind::S3,
        "s3",
        "S3-compatible storage (AWS, MinIO, Wasabi, Ceph)",
    ),
    (Kind::B2, "b2", "Backblaze B2"),
    (Kind::Azure, "azure", "Azure Blob Storage"),
    (Kind::Gcs, "gcs", "Google Cloud Storage"),
    (
        Kind::Rest,
        "rest",
        "a restic REST server (rest-server, rclone serve restic)",
    ),
    (Kind::Rclone, "rclone", "any remote rclone knows"),
    (Kind::Webdav, "webdav", "WebDAV (Nextcloud, ownCloud)"),
];

/// Why off-site, said once before the choice.
pub const WHY_OFF_SITE: &str = "A backup on this machine's own disk does not survive the day \
     that disk dies, and that is the day you need it: keep at least one copy on another \
     machine or in the cloud.";

/// The location the answers describe.
#[derive(Debug, Default)]
pub struct Chosen {
    /// The location string for the config.
    pub location: String,
    /// `[repository.options]` the kind needs (an endpoint, a region).
    pub options: BTreeMap<String, String>,
    /// The text of the private env file with the credentials, when the kind takes any.
    pub credentials: Option<String>,
    /// The rclone.conf an `rclone:` location uses.
    pub rclone_config: Option<PathBuf>,
    /// The Tailscale peer chosen.
    pub peer: Option<Peer>,
}

/// Asks for the kind and its fields (or takes them from the flags).
pub fn choose(args: &SetupArgs, ask: &Asker<'_>, default_local: &str) -> anyhow::Result<Chosen> {
    let kind = match (args.kind, &args.repository, &args.tailscale_peer) {
        (Some(kind), _, _) => kind,
        (None, _, Some(_)) => Kind::Tailscale,
        (None, Some(text), None) => kind_of(text),
        (None, None, None) if ask.interactive => {
            ask.printer.notice(WHY_OFF_SITE);
            let choices: Vec<(String, String)> = KINDS
                .iter()
                .map(|(_, name, about)| ((*name).to_owned(), (*about).to_owned()))
                .collect();
            KINDS[ask.choose("Where should the backups go?", &choices, 0)?].0
        }
        (None, None, None) => Kind::Local,
    };
    let mut chosen = Chosen::default();
    if kind == Kind::B2 {
        let endpoint = ask.required(
            args.endpoint.as_deref(),
            "--endpoint",
            "B2 S3 endpoint (on the bucket's page, e.g. https://s3.us-west-004.backblazeb2.com)",
        )?;
        chosen.options.insert("endpoint".into(), endpoint);
    }
    if kind == Kind::Tailscale {
        let peer = tailscale_peer(args, ask)?;
        let address = peer
            .address()
            .map(|a| a.to_string())
            .ok_or_else(|| UsageError(format!("the peer {} has no address", peer.name)))?;
        chosen.peer = Some(peer);
        chosen.location = sftp_location(args, ask, &address)?;
    } else if let Some(given) = &args.repository {
        chosen.location.clone_from(given);
    } else {
        chosen.location = ask_location(kind, args, ask, default_local)?;
    }
    if kind == Kind::Rclone {
        let config = ask.text(
            args.rclone_config.as_deref().and_then(|p| p.to_str()),
            "rclone.conf to use (empty: rclone's default)",
            "",
        )?;
        chosen.rclone_config = (!config.is_empty()).then(|| PathBuf::from(config));
    }
    chosen.credentials = credentials(kind, args, ask)?;
    Ok(chosen)
}

/// The location of `kind`, asked piece by piece.
fn ask_location(
    kind: Kind,
    args: &SetupArgs,
    ask: &Asker<'_>,
    default_local: &str,
) -> anyhow::Result<String> {
    let bucket =
        |what: &str| ask.required(None, "--repository", &format!("{what} (it must exist)"));
    let prefix = |what: &str| ask.text(None, &format!("Path inside the {what}"), &hostname());
    Ok(match kind {
        Kind::Local => ask.text(None, "Repository directory", default_local)?,
        // (A Tailscale peer is chosen from the list before this is reached.)
        Kind::Sftp | Kind::Tailscale => {
            let host = ask.required(None, "--repository", "SFTP server (host name or address)")?;
            sftp_location(args, ask, &host)?
        }
        Kind::S3 => {
            let endpoint = ask.text(
                args.endpoint.as_deref(),
                "S3 endpoint URL",
                "https://s3.amazonaws.com",
            )?;
            let bucket = bucket("Bucket")?;
            let prefix = prefix("bucket")?;
            format!("s3:{}/{bucket}/{prefix}", endpoint.trim_end_matches('/'))
        }
        Kind::B2 => format!("b2:{}:{}", bucket("Bucket")?, prefix("bucket")?),
        Kind::Azure => format!("azure:{}:/{}", bucket("Container")?, prefix("container")?),
        Kind::Gcs => format!("gs:{}:/{}", bucket("Bucket")?, prefix("bucket")?),
        Kind::Rest => {
            let url = ask.required(
                None,
                "--repository",
                "REST server URL (http(s)://host:8000/path)",
            )?;
            format!("rest:{url}")
        }
        Kind::Rclone => {
            let remote =
                ask.required(None, "--repository", "rclone remote and path (remote:path)")?;
            format!("rclone:{remote}")
        }
        Kind::Webdav => {
            let url = ask.required(None, "--repository", "WebDAV URL (https://host/path)")?;
            format!("webdav:{url}")
        }
    })
}

/// The kind a location string names.
fn kind_of(text: &str) -> Kind {
    match RepositoryLocation::try_from(text.to_owned()) {
        Ok(RepositoryLocation::Remote { backend, .. }) => match backend {
            RemoteBackend::Sftp => Kind::Sftp,
            RemoteBackend::S3 => Kind::S3,
            RemoteBackend::B2 => Kind::B2,
            RemoteBackend::Azure => Kind::Azure,
            RemoteBackend::Gcs => Kind::Gcs,
            RemoteBackend::Rest => Kind::Rest,
            RemoteBackend::Rclone => Kind::Rclone,
            RemoteBackend::Webdav => Kind::Webdav,
        },
        _ => Kind::Local,
    }
}

fn hostname() -> String {
    kopi_docka_core::repo::this_hostname()
}

/// `sftp:` for `host`: the user (not assumed to be root), port and directory.
fn sftp_location(args: &SetupArgs, ask: &Asker<'_>, host: &str) -> anyhow::Result<String> {
    let me = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let user = ask.text(args.remote_user.as_deref(), "User to log in as", &me)?;
    let port = ask.text(
        args.remote_port.map(|p| p.to_string()).as_deref(),
        "SSH port",
        "22",
    )?;
    let port: u16 = port
        .parse()
        .map_err(|_| UsageError(format!("`{port}` is not a port number")))?;
    let default_path = format!("/srv/kopi-docka/{}", hostname());
    let path = ask.text(
        args.remote_path.as_deref(),
        "Directory on the server",
        &default_path,
    )?;
    if !path.starts_with('/') {
        bail!(UsageError(format!(
            "`{path}`: give an absolute directory on the server"
        )));
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(format!("sftp://{user}@{host}:{port}/{path}"))
}

/// The peer named by `--tailscale-peer`, or chosen from the online ones.
fn tailscale_peer(args: &SetupArgs, ask: &Asker<'_>) -> anyhow::Result<Peer> {
    let port = args.remote_port.unwrap_or(22);
    let peers = tailscale::peers(port, Duration::from_secs(2))?;
    if let Some(name) = &args.tailscale_peer {
        let peer = peers
            .iter()
            .find(|p| {
                p.name == *name
                    || p.dns_name == *name
                    || p.dns_name.starts_with(&format!("{name}."))
            })
            .ok_or_else(|| {
                UsageError(format!(
                    "no Tailscale peer named `{name}`; the peers are: {}",
                    names(&peers)
                ))
            })?;
        if !peer.online {
            bail!(UsageError(format!("the Tailscale peer {name} is offline")));
        }
        return Ok(peer.clone());
    }
    let online: Vec<&Peer> = peers.iter().filter(|p| p.online).collect();
    if online.is_empty() {
        bail!(UsageError(format!(
            "no Tailscale peer is online (peers: {}); start one, or choose sftp with its address",
            names(&peers)
        )));
    }
    let offline = peers.len() - online.len();
    if offline > 0 {
        ask.printer
            .notice(&format!("({offline} offline peers not shown)"));
    }
    let choices: Vec<(String, String)> = online
        .iter()
        .map(|p| {
            let latency = p.latency_ms.map_or_else(
                || format!("port {port} closed"),
                |ms| format!("{ms} ms to port {port}"),
            );
            let address = p.address().map(|a| a.to_string()).unwrap_or_default();
            (
                p.name.clone(),
                format!("{:<8} {address:<16} {latency}", p.os),
            )
        })
        .collect();
    let n = ask.choose("Which peer?", &choices, 0)?;
    Ok(online[n].clone())
}

fn names(peers: &[Peer]) -> String {
    if peers.is_empty() {
        return "none".into();
    }
    peers
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                p.name,
                if p.online { "online" } else { "offline" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The variables a kind asks for: (name, question, secret, required).
fn variables(kind: Kind) -> &'static [(&'static str, &'static str, bool, bool)] {
    match kind {
        Kind::S3 => &[
            ("AWS_ACCESS_KEY_ID", "Access key ID", false, true),
            ("AWS_SECRET_ACCESS_KEY", "Secret access key", true, true),
            (
                "AWS_DEFAULT_REGION",
                "Region (empty: us-east-1)",
                false,
                false,
            ),
        ],
        Kind::B2 => &[
            ("B2_ACCOUNT_ID", "Application key ID", false, true),
            ("B2_ACCOUNT_KEY", "Application key", true, true),
        ],
        Kind::Azure => &[
            ("AZURE_ACCOUNT_NAME", "Storage account name", false, true),
            ("AZURE_ACCOUNT_KEY", "Account key", true, true),
        ],
        Kind::Gcs => &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "Service-account JSON file",
            false,
            true,
        )],
        Kind::Rest => &[
            ("RESTIC_REST_USERNAME", "User (empty: none)", false, false),
            ("RESTIC_REST_PASSWORD", "Password", true, false),
        ],
        Kind::Webdav => &[
            ("WEBDAV_USERNAME", "User", false, false),
            ("WEBDAV_PASSWORD", "Password", true, false),
        ],
        Kind::Local | Kind::Sftp | Kind::Tailscale | Kind::Rclone => &[],
    }
}

/// The env file text: `--credentials-file`'s content, or the variables asked for.
fn credentials(kind: Kind, args: &SetupArgs, ask: &Asker<'_>) -> anyhow::Result<Option<String>> {
    if let Some(file) = &args.credentials_file {
        let text = kopi_docka_core::durable::read_private(file)
            .map_err(|e| UsageError(format!("--credentials-file {}: {e}", file.display())))?;
        return Ok(Some(text));
    }
    let wanted = variables(kind);
    if wanted.is_empty() {
        return Ok(None);
    }
    if !ask.interactive {
        if wanted.iter().any(|(_, _, _, required)| *required) {
            bail!(UsageError(format!(
                "this location needs credentials: give --credentials-file FILE (mode 0600) with \
                 {} (one NAME=value a line)",
                wanted
                    .iter()
                    .map(|(n, ..)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        return Ok(None);
    }
    let mut text =
        String::from("# Written by `kopi-docka setup`; keep this file private (0600).\n");
    let mut any = false;
    for (name, question, secret, required) in wanted {
        let value = loop {
            let value = if *secret {
                ask.secret(question)?
            } else {
                Some(ask.text(None, question, "")?).filter(|v| !v.is_empty())
            };
            match value {
                Some(v) => break Some(v),
                None if *required => ask.printer.notice("  an answer is needed here"),
                None => break None,
            }
        };
        if let Some(value) = value {
            // Writing into a String cannot fail.
            let _ = writeln!(text, "{name}={value}");
            any = true;
        }
    }
    Ok(any.then_some(text))
}
