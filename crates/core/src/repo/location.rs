//! Turns a configured location into rustic_backend's options.
//!
//! Users write restic-style locations (`sftp:user@host:/path`, `s3:endpoint/bucket/path`);
//! rustic_backend wants `rest:`/`rclone:` strings or `opendal:<scheme>` plus an options map.
//! Options from `[repository] options` are passed through and win over derived ones.

use std::collections::BTreeMap;

use crate::config::{RemoteBackend, RepositoryLocation};

/// The repository string and options for rustic_backend. Its `Debug` shows option names
/// only: values and a `rest:` URL may hold credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// `BackendOptions::repository`.
    pub repository: String,
    /// `BackendOptions::options`.
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.repository.starts_with('/') {
            self.repository.clone()
        } else {
            let scheme = self.repository.split(':').next().unwrap_or_default();
            format!("{scheme}:...")
        };
        f.debug_struct("BackendSpec")
            .field("repository", &shown)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
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

/// Translates `location`; `extra` (credentials from the env file, then `[repository] options`)
/// wins over derived options.
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
            RemoteBackend::Rest => (
                rest_url(target, extra).map_err(|r| err(&r))?,
                BTreeMap::new(),
            ),
            RemoteBackend::Rclone => {
                let (remote, _) = target.split_once(':').unwrap_or(("", target));
                if target.trim().is_empty() || (target.contains(':') && remote.is_empty()) {
                    return Err(err(
                        "write rclone:remote:path (a remote from rclone.conf) or rclone:/abs/path",
                    ));
                }
                (format!("rclone:{target}"), BTreeMap::new())
            }
            RemoteBackend::Sftp => {
                let opts = sftp_options(target).ok_or_else(|| {
                    err("write sftp:user@host:/path or sftp://user@host:port/path")
                })?;
                ("opendal:sftp".to_owned(), opts)
            }
            RemoteBackend::S3 => (
                "opendal:s3".to_owned(),
                s3_options(target).map_err(|r| err(&r))?,
            ),
            RemoteBackend::B2 => (
                "opendal:s3".to_owned(),
                b2_options(target, extra).map_err(|r| err(&r))?,
            ),
            RemoteBackend::Azure => (
                "opendal:azblob".to_owned(),
                azure_options(target, extra).map_err(|r| err(&r))?,
            ),
            RemoteBackend::Gcs => {
                let (bucket, root) =
                    bucket_and_root(target).ok_or_else(|| err("write gs:bucket:/path"))?;
                (
                    "opendal:gcs".to_owned(),
                    BTreeMap::from([("bucket".into(), bucket), ("root".into(), root)]),
                )
            }
            RemoteBackend::Webdav => (
                "opendal:webdav".to_owned(),
                webdav_options(target).map_err(|r| err(&r))?,
            ),
        },
    };
    options.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    options.remove(REST_USER_OPTION);
    options.remove(REST_PASSWORD_OPTION);
    Ok(BackendSpec {
        repository,
        options,
    })
}

/// `bucket:path` through B2's S3-compatible API: opendal's native b2 service only talks to
/// api.backblazeb2.com; the S3 API takes any S3 client and can be tested.
fn b2_options(
    target: &str,
    extra: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let (bucket, root) = bucket_and_root(target)
        .ok_or("write b2:bucket:path (it goes through B2's S3-compatible API)")?;
    let Some(endpoint) = extra.get("endpoint") else {
        return Err(
            "b2: goes through Backblaze B2's S3-compatible API, which needs its \
                    endpoint: set endpoint = \"https://s3.<region>.backblazeb2.com\" under \
                    [repository.options] (the bucket's page shows it), or write \
                    s3:https://s3.<region>.backblazeb2.com/bucket/path"
                .into(),
        );
    };
    let region = endpoint
        .split("://")
        .nth(1)
        .and_then(|host| host.strip_prefix("s3."))
        .and_then(|host| host.split('.').next())
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1");
    Ok(BTreeMap::from([
        ("bucket".into(), bucket),
        ("root".into(), root),
        ("region".into(), region.to_owned()),
    ]))
}

/// `container:/path`; the endpoint is the account's unless the options name one.
fn azure_options(
    target: &str,
    extra: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let (container, root) = bucket_and_root(target).ok_or("write azure:container:/path")?;
    let mut opts = BTreeMap::from([("container".into(), container), ("root".into(), root)]);
    match (extra.get("endpoint"), extra.get("account_name")) {
        (Some(_), _) => {}
        (None, Some(account)) => {
            opts.insert(
                "endpoint".into(),
                format!("https://{account}.blob.core.windows.net"),
            );
        }
        (None, None) => {
            return Err(
                "azure: needs the storage account: put AZURE_ACCOUNT_NAME and \
                        AZURE_ACCOUNT_KEY in the file named by [repository] env-file"
                    .into(),
            );
        }
    }
    Ok(opts)
}

/// What a location says about its server: scheme, optional `user:pass`, host (with port),
/// path. `None` when it is not an `http(s)://host...` URL.
struct HttpUrl<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    path: &'a str,
}

fn http_url(target: &str) -> Option<HttpUrl<'_>> {
    let (scheme, rest) = target.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() || host.starts_with(':') {
        return None;
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return None;
    }
    Some(HttpUrl {
        scheme,
        userinfo,
        host,
        path,
    })
}

/// `rest:http(s)://[user:pass@]host:port/path`; `RESTIC_REST_USERNAME`/`_PASSWORD` from the env
/// file go into the URL when it has no user part.
fn rest_url(target: &str, extra: &BTreeMap<String, String>) -> Result<String, String> {
    let url = http_url(target)
        .ok_or("write rest:http://host:8000/path or rest:https://user:pass@host:8000/path")?;
    let (Some(user), Some(pass), None) = (
        extra.get(REST_USER_OPTION),
        extra.get(REST_PASSWORD_OPTION),
        url.userinfo,
    ) else {
        return Ok(format!("rest:{target}"));
    };
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Ok(format!(
        "rest:{}://{}:{}@{}{}",
        url.scheme,
        encode(user),
        encode(pass),
        url.host,
        url.path
    ))
}

/// Option names under which the env file's REST credentials reach [`backend_spec`] (the REST
/// backend takes them in the URL; they are removed from the options it gets).
pub(crate) const REST_USER_OPTION: &str = "rest-username";
/// See [`REST_USER_OPTION`].
pub(crate) const REST_PASSWORD_OPTION: &str = "rest-password";

/// `https://[user:pass@]host[:port]/path`.
fn webdav_options(target: &str) -> Result<BTreeMap<String, String>, String> {
    let url = http_url(target).ok_or("write webdav:https://host/path")?;
    let mut opts = BTreeMap::from([
        ("endpoint".into(), format!("{}://{}", url.scheme, url.host)),
        (
            "root".into(),
            format!("/{}", url.path.trim_start_matches('/')),
        ),
    ]);
    if let Some(userinfo) = url.userinfo {
        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        opts.insert("username".into(), decode(user));
        if !pass.is_empty() {
            opts.insert("password".into(), decode(pass));
        }
    }
    Ok(opts)
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
fn s3_options(target: &str) -> Result<BTreeMap<String, String>, String> {
    const FORM: &str = "write s3:https://endpoint/bucket/path (s3:https://s3.amazonaws.com/bucket \
                        for AWS, s3:https://s3.<region>.backblazeb2.com/bucket for B2)";
    let (scheme, rest) = if let Some(r) = target.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = target.strip_prefix("http://") {
        ("http", r)
    } else if target.contains("://") {
        return Err(format!("only http:// and https:// endpoints; {FORM}"));
    } else {
        ("https", target)
    };
    let mut parts = rest.splitn(3, '/');
    let endpoint = parts.next().filter(|s| !s.is_empty()).ok_or(FORM)?;
    if endpoint.contains('@') {
        return Err(
            "credentials do not belong in the location (it is shown and logged): put \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the file named by [repository] \
             env-file"
                .into(),
        );
    }
    let bucket = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("no bucket; {FORM}"))?;
    let root = format!("/{}", parts.next().unwrap_or_default().trim_matches('/'));
    Ok(BTreeMap::from([
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

    fn spec_with(location: &str, extra: &[(&str, &str)]) -> BackendSpec {
        let location = RepositoryLocation::try_from(location.to_owned()).unwrap();
        let extra = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        backend_spec(&location, &extra).unwrap()
    }

    #[test]
    fn s3_b2_azure_gcs() {
        let s = spec("s3:http://127.0.0.1:9000/bucket/kd");
        assert_eq!(s.repository, "opendal:s3");
        assert_eq!(s.options["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(s.options["bucket"], "bucket");
        assert_eq!(s.options["root"], "/kd");
        // b2: is B2's S3-compatible API; the region comes from its endpoint.
        let b2 = spec_with(
            "b2:bkt:host1",
            &[("endpoint", "https://s3.us-west-004.backblazeb2.com")],
        );
        assert_eq!(b2.repository, "opendal:s3");
        assert_eq!(b2.options["root"], "/host1");
        assert_eq!(b2.options["region"], "us-west-004");
        let azure = spec_with("azure:cont:/p", &[("account_name", "acct")]);
        assert_eq!(azure.repository, "opendal:azblob");
        assert_eq!(
            azure.options["endpoint"],
            "https://acct.blob.core.windows.net"
        );
        let emulator = spec_with(
            "azure:cont:/p",
            &[("endpoint", "http://127.0.0.1:10000/devstoreaccount1")],
        );
        assert_eq!(
            emulator.options["endpoint"],
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(spec("gs:bkt:/p").options["bucket"], "bkt");
    }

    #[test]
    fn rest_and_webdav_urls() {
        assert_eq!(
            spec("rest:https://kd:pw@rest.lan:8000/host1").repository,
            "rest:https://kd:pw@rest.lan:8000/host1"
        );
        // Credentials from the env file go into the URL (encoded) and nowhere else.
        let from_file = spec_with(
            "rest:http://127.0.0.1:8000/r",
            &[
                (REST_USER_OPTION, "kd"),
                (REST_PASSWORD_OPTION, "p@ss/w:rd"),
            ],
        );
        assert_eq!(
            from_file.repository,
            "rest:http://kd:p%40ss%2Fw%3Ard@127.0.0.1:8000/r"
        );
        assert!(from_file.options.is_empty(), "{:?}", from_file.options);
        let debug = format!("{from_file:?}");
        assert!(!debug.contains("p%40ss"), "{debug}");
        let dav = spec("webdav:https://kd:s%40cret@dav.lan:8443/backups/kd");
        assert_eq!(dav.repository, "opendal:webdav");
        assert_eq!(dav.options["endpoint"], "https://dav.lan:8443");
        assert_eq!(dav.options["root"], "/backups/kd");
        assert_eq!(dav.options["username"], "kd");
        assert_eq!(dav.options["password"], "s@cret");
        let bare = spec("webdav:http://127.0.0.1:8080");
        assert_eq!(bare.options["root"], "/");
        assert!(!bare.options.contains_key("username"));
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
        let b2 = spec_with("b2:bkt", &[("endpoint", "http://127.0.0.1:9000")]);
        assert_eq!(b2.options["bucket"], "bkt");
        assert_eq!(b2.options["root"], "/");
        assert_eq!(b2.options["region"], "us-east-1");
        let azure = spec_with("azure:cont://p/q", &[("account_name", "a")]);
        assert_eq!(azure.options["container"], "cont");
        assert_eq!(azure.options["root"], "/p/q");
        let gcs = spec("gs:bkt:p");
        assert_eq!(gcs.repository, "opendal:gcs");
        assert_eq!(gcs.options["root"], "/p");
        assert!(refused("b2::path").contains("write b2:bucket:path"));
        let b2_without_endpoint = refused("b2:bkt:p");
        assert!(
            b2_without_endpoint.contains("S3-compatible API")
                && b2_without_endpoint.contains("https://s3.<region>.backblazeb2.com"),
            "{b2_without_endpoint}"
        );
        assert!(refused("azure::/p").contains("write azure:container:/path"));
        assert!(refused("azure:c:/p").contains("AZURE_ACCOUNT_NAME"));
        assert!(refused("gs::/p").contains("write gs:bucket:/path"));
    }

    #[test]
    fn every_refusal_names_the_location_and_the_form() {
        for (bad, says) in [
            ("s3:minio.lan", "no bucket"),
            ("s3:ftp://minio.lan/b", "only http:// and https://"),
            ("s3:https://AKIA:secret@minio.lan/b", "env-file"),
            ("rest:127.0.0.1:8000/r", "write rest:http://host:8000/path"),
            ("rest:ftp://h/r", "write rest:http://"),
            ("rest:http://:8000/r", "write rest:http://"),
            ("rest:http://h:port/r", "write rest:http://"),
            ("rclone::path", "write rclone:remote:path"),
            ("webdav:dav.lan/kd", "write webdav:https://host/path"),
            ("webdav:https:///kd", "write webdav:https://host/path"),
        ] {
            let message = refused(bad);
            assert!(
                message.starts_with(&format!("repository location `{bad}`: ")),
                "{message}"
            );
            assert!(message.contains(says), "{bad}: {message}");
        }
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
