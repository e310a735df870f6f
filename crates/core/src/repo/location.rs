//! Turns a configured location into rustic_backend's options.
//!
//! Users write restic-style locations (`sftp:user@host:/path`, `s3:endpoint/bucket/path`);
//! rustic_backend wants `rest:`/`rclone:` strings or `opendal:<scheme>` plus an options map.
//! Options from `[repository] options` are passed through and win over derived ones.

use std::collections::BTreeMap;

use crate::config::{RemoteBackend, RepositoryLocation};

/// The repository string and options for rustic_backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// `BackendOptions::repository`.
    pub repository: String,
    /// `BackendOptions::options`.
    pub options: BTreeMap<String, String>,
}

/// A location we cannot translate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("repository location `{location}`: {reason}")]
pub struct LocationError {
    /// The location as configured.
    pub location: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

/// Translates `location`, adding `extra` options.
pub fn backend_spec(
    location: &RepositoryLocation,
    extra: &BTreeMap<String, String>,
) -> Result<BackendSpec, LocationError> {
    let err = |reason: &str| LocationError {
        location: location.to_string(),
        reason: reason.into(),
    };
    let (repository, mut options) = match location {
        RepositoryLocation::Local(path) => (path.to_string_lossy().into_owned(), BTreeMap::new()),
        RepositoryLocation::Remote { backend, target } => match backend {
            RemoteBackend::Rest => (format!("rest:{target}"), BTreeMap::new()),
            RemoteBackend::Rclone => (format!("rclone:{target}"), BTreeMap::new()),
            RemoteBackend::Sftp => {
                let opts = sftp_options(target).ok_or_else(|| {
                    err("write sftp:user@host:/path or sftp://user@host:port/path")
                })?;
                ("opendal:sftp".to_owned(), opts)
            }
            RemoteBackend::S3 => {
                let opts = s3_options(target).ok_or_else(|| {
                    err("write s3:https://endpoint/bucket/path or s3:endpoint/bucket/path")
                })?;
                ("opendal:s3".to_owned(), opts)
            }
            RemoteBackend::B2 => {
                let (bucket, root) =
                    bucket_and_root(target).ok_or_else(|| err("write b2:bucket:path"))?;
                (
                    "opendal:b2".to_owned(),
                    BTreeMap::from([("bucket".into(), bucket), ("root".into(), root)]),
                )
            }
            RemoteBackend::Azure => {
                let (container, root) =
                    bucket_and_root(target).ok_or_else(|| err("write azure:container:/path"))?;
                (
                    "opendal:azblob".to_owned(),
                    BTreeMap::from([("container".into(), container), ("root".into(), root)]),
                )
            }
            RemoteBackend::Gcs => {
                let (bucket, root) =
                    bucket_and_root(target).ok_or_else(|| err("write gs:bucket:/path"))?;
                (
                    "opendal:gcs".to_owned(),
                    BTreeMap::from([("bucket".into(), bucket), ("root".into(), root)]),
                )
            }
        },
    };
    options.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(BackendSpec {
        repository,
        options,
    })
}

/// `user@host:/path`, `host:/path`, `sftp://user@host:port/path`.
fn sftp_options(target: &str) -> Option<BTreeMap<String, String>> {
    let (userhost, port, root) = if let Some(url) = target.strip_prefix("//") {
        let (authority, path) = url.split_once('/')?;
        let (userhost, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, Some(p)),
            _ => (authority, None),
        };
        (userhost, port, format!("/{}", path.trim_start_matches('/')))
    } else {
        let (userhost, path) = target.split_once(':')?;
        (userhost, None, path.to_owned())
    };
    let (user, host) = match userhost.split_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, userhost),
    };
    if host.is_empty() || root.is_empty() {
        return None;
    }
    let mut opts = BTreeMap::new();
    // Without a port the host goes to ssh as written, so the user's ssh config (a `Host` alias
    // with its `HostName`, `Port`, `User`, `IdentityFile`) applies, as with restic.
    let endpoint = match port {
        Some(port) => format!("ssh://{host}:{port}"),
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    };
    opts.insert("endpoint".into(), endpoint);
    opts.insert("root".into(), root);
    if let Some(user) = user {
        opts.insert("user".into(), user.into());
    }
    Some(opts)
}

/// `https://endpoint/bucket/path`, `endpoint/bucket/path` (https assumed).
fn s3_options(target: &str) -> Option<BTreeMap<String, String>> {
    let (scheme, rest) = if let Some(r) = target.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = target.strip_prefix("http://") {
        ("http", r)
    } else {
        ("https", target)
    };
    let mut parts = rest.splitn(3, '/');
    let endpoint = parts.next().filter(|s| !s.is_empty())?;
    let bucket = parts.next().filter(|s| !s.is_empty())?;
    let root = format!("/{}", parts.next().unwrap_or_default());
    Some(BTreeMap::from([
        ("endpoint".into(), format!("{scheme}://{endpoint}")),
        ("bucket".into(), bucket.into()),
        ("root".into(), root),
        ("region".into(), "us-east-1".into()),
    ]))
}

/// `bucket:path` (path may be empty).
fn bucket_and_root(target: &str) -> Option<(String, String)> {
    let (bucket, path) = target.split_once(':').unwrap_or((target, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((
        bucket.to_owned(),
        format!("/{}", path.trim_start_matches('/')),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(location: &str) -> BackendSpec {
        let location = RepositoryLocation::try_from(location.to_owned()).unwrap();
        backend_spec(&location, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn local_and_passthrough() {
        assert_eq!(spec("/srv/repo").repository, "/srv/repo");
        assert_eq!(
            spec("rest:http://127.0.0.1:8000/r").repository,
            "rest:http://127.0.0.1:8000/r"
        );
        assert_eq!(
            spec("rclone:remote:bucket/x").repository,
            "rclone:remote:bucket/x"
        );
    }

    #[test]
    fn sftp_forms() {
        let s = spec("sftp:backup@nas:/volume1/kd");
        assert_eq!(s.repository, "opendal:sftp");
        assert_eq!(s.options["endpoint"], "nas");
        assert_eq!(s.options["user"], "backup");
        assert_eq!(s.options["root"], "/volume1/kd");
        let u = spec("sftp://backup@127.0.0.1:2222//srv/repo");
        assert_eq!(u.options["endpoint"], "ssh://127.0.0.1:2222");
        assert_eq!(u.options["root"], "/srv/repo");
    }

    #[test]
    fn s3_b2_azure_gcs() {
        let s = spec("s3:http://127.0.0.1:9000/bucket/kd");
        assert_eq!(s.repository, "opendal:s3");
        assert_eq!(s.options["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(s.options["bucket"], "bucket");
        assert_eq!(s.options["root"], "/kd");
        assert_eq!(spec("b2:bkt:host1").options["root"], "/host1");
        assert_eq!(spec("azure:cont:/p").repository, "opendal:azblob");
        assert_eq!(spec("gs:bkt:/p").options["bucket"], "bkt");
    }

    fn refused(location: &str) -> String {
        let location = RepositoryLocation::try_from(location.to_owned()).unwrap();
        backend_spec(&location, &BTreeMap::new())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn sftp_hosts_ports_and_what_is_refused() {
        let plain = spec("sftp:nas:/kd");
        assert_eq!(plain.options["endpoint"], "nas");
        assert!(!plain.options.contains_key("user"));
        // A bracketed IPv6 address: its colons are not a port.
        let v6 = spec("sftp://backup@[fd00::5]//srv/repo");
        assert_eq!(v6.options["endpoint"], "fd00::5");
        assert_eq!(v6.options["user"], "backup");
        let v6_port = spec("sftp://[fd00::5]:2222/srv/repo");
        assert_eq!(v6_port.options["endpoint"], "ssh://[fd00::5]:2222");
        assert_eq!(v6_port.options["root"], "/srv/repo");
        for bad in [
            "sftp:backup@:/kd",
            "sftp:nas:",
            "sftp:nas",
            "sftp://nas",
            "sftp://backup@/srv",
        ] {
            let message = refused(bad);
            assert!(message.contains(bad), "{message}");
            assert!(message.contains("write sftp:user@host:/path"), "{message}");
        }
    }

    #[test]
    fn s3_defaults_and_what_is_refused() {
        let s = spec("s3:minio.lan/bucket");
        assert_eq!(s.options["endpoint"], "https://minio.lan");
        assert_eq!(s.options["root"], "/");
        assert_eq!(s.options["region"], "us-east-1");
        let t = spec("s3:https://s3.example/b/deep/path");
        assert_eq!(t.options["endpoint"], "https://s3.example");
        assert_eq!(t.options["bucket"], "b");
        assert_eq!(t.options["root"], "/deep/path");
        for bad in ["s3:minio.lan", "s3:minio.lan/", "s3:/bucket", "s3:https://"] {
            assert!(refused(bad).contains("write s3:"), "{bad}");
        }
    }

    #[test]
    fn bucket_backends_and_what_is_refused() {
        let b2 = spec("b2:bkt");
        assert_eq!(b2.repository, "opendal:b2");
        assert_eq!(b2.options["bucket"], "bkt");
        assert_eq!(b2.options["root"], "/");
        let azure = spec("azure:cont://p/q");
        assert_eq!(azure.options["container"], "cont");
        assert_eq!(azure.options["root"], "/p/q");
        let gcs = spec("gs:bkt:p");
        assert_eq!(gcs.repository, "opendal:gcs");
        assert_eq!(gcs.options["root"], "/p");
        assert!(refused("b2::path").contains("write b2:bucket:path"));
        assert!(refused("azure::/p").contains("write azure:container:/path"));
        assert!(refused("gs::/p").contains("write gs:bucket:/path"));
    }

    #[test]
    fn extra_options_win() {
        let location = RepositoryLocation::try_from("s3:minio:9000/b".to_owned()).unwrap();
        let extra = BTreeMap::from([("region".to_owned(), "eu-central-1".to_owned())]);
        assert_eq!(
            backend_spec(&location, &extra).unwrap().options["region"],
            "eu-central-1"
        );
    }
}
