//! What a restore does not take from a repository on trust: host-internal targets, files
//! outside the project directory, and containers that would get power over the host.
//!
//! A repository can be written by whoever holds its password (or tampered with where it is
//! stored). A restore therefore refuses outright what no backup of ours can contain (a bind
//! target under `/etc`, `/usr`, `/proc` ... or `/` itself: backups never include those), and
//! asks before it does what a real recipe may legitimately contain but an attacker would want:
//! files outside the unit's project directory, privileged containers, host namespaces, added
//! capabilities, devices, and binds of host-internal paths (the Docker socket). On a terminal
//! the user is asked; without one, `--trust-recipe` is required (`--yes` alone confirms the
//! overwrite, not these).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::defaults::HOST_INTERNAL_PATHS;

/// Top-level directories a restore never replaces as a whole.
const TOP_LEVEL: &[&str] = &[
    "/home", "/root", "/srv", "/opt", "/var", "/var/lib", "/mnt", "/media", "/tmp",
];

/// Capabilities that amount to root on the host.
const POWERFUL_CAPS: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
    "SYS_BOOT",
];

/// The host-internal directory `path` is (or is under), if any: `/` itself, the OS tree,
/// runtime state and the engine's data ([`HOST_INTERNAL_PATHS`]).
pub fn host_internal(path: &Path) -> Option<String> {
    if path.parent().is_none() {
        return Some("/".into());
    }
    HOST_INTERNAL_PATHS
        .iter()
        .find(|p| path.starts_with(p))
        .map(|p| (*p).to_owned())
}

/// Why a restore must not write to `target` (a bind source as restored), if it must not.
pub fn refused_target(target: &Path) -> Option<String> {
    if let Some(under) = host_internal(target) {
        return Some(format!("it is under the host-internal path {under}"));
    }
    TOP_LEVEL
        .iter()
        .any(|t| target == Path::new(t))
        .then(|| "it is a top-level directory of the host".to_owned())
}

/// What a container's saved configuration (an inspect document) asks of the host.
pub fn inspect_privileges(container: &str, inspect: &Value) -> Vec<String> {
    let Some(host) = inspect.get("HostConfig") else {
        return Vec::new();
    };
    let who = format!("container {container}");
    let container = who.as_str();
    let mut out = Vec::new();
    let flag = |key: &str| host.get(key).and_then(Value::as_bool).unwrap_or(false);
    let text = |key: &str| host.get(key).and_then(Value::as_str).unwrap_or_default();
    if flag("Privileged") {
        out.push(format!("{container}: privileged"));
    }
    for (key, what) in [
        ("NetworkMode", "network_mode"),
        ("PidMode", "pid"),
        ("IpcMode", "ipc"),
        ("UTSMode", "uts"),
        ("UsernsMode", "userns_mode"),
    ] {
        if text(key) == "host" {
            out.push(format!("{container}: {what} host"));
        }
    }
    out.extend(caps(container, host.get("CapAdd")));
    if host
        .get("Devices")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty())
    {
        out.push(format!("{container}: host devices"));
    }
    out.extend(security_opts(container, host.get("SecurityOpt")));
    let binds = host
        .get("Binds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|b| b.split(':').next())
        .map(PathBuf::from);
    let mounts = host
        .get("Mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("Type").and_then(Value::as_str) == Some("bind"))
        .filter_map(|m| m.get("Source").and_then(Value::as_str))
        .map(PathBuf::from);
    out.extend(internal_binds(container, binds.chain(mounts)));
    out
}

/// What a compose file's services ask of the host (`file` names it in the messages).
pub fn compose_privileges(file: &str, doc: &serde_yaml_ng::Value) -> Vec<String> {
    let Some(services) = doc
        .get("services")
        .and_then(serde_yaml_ng::Value::as_mapping)
    else {
        return Vec::new();
    };
    let json = |v: &serde_yaml_ng::Value| serde_json::to_value(v).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for (name, service) in services {
        let service = json(service);
        let who = format!("service {} ({file})", json(name).as_str().unwrap_or("?"));
        if service.get("privileged").and_then(Value::as_bool) == Some(true) {
            out.push(format!("{who}: privileged"));
        }
        for key in ["network_mode", "pid", "ipc", "uts", "userns_mode"] {
            if service.get(key).and_then(Value::as_str) == Some("host") {
                out.push(format!("{who}: {key} host"));
            }
        }
        out.extend(caps(&who, service.get("cap_add")));
        if service
            .get("devices")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty())
        {
            out.push(format!("{who}: host devices"));
        }
        out.extend(security_opts(&who, service.get("security_opt")));
        let sources = service
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => s.split(':').next().map(PathBuf::from),
                other => other
                    .get("source")
                    .and_then(Value::as_str)
                    .map(PathBuf::from),
            })
            .filter(|p| p.is_absolute());
        out.extend(internal_binds(&who, sources));
    }
    out
}

fn caps(who: &str, list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .filter(|c| POWERFUL_CAPS.contains(&c.as_str()))
        .map(|c| format!("{who}: cap_add {c}"))
        .collect()
}

fn security_opts(who: &str, list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|o| o.contains("unconfined") || o.starts_with("label:disable"))
        .map(|o| format!("{who}: security_opt {o}"))
        .collect()
}

fn internal_binds(who: &str, sources: impl Iterator<Item = PathBuf>) -> Vec<String> {
    sources
        .filter_map(|s| host_internal(&s).map(|under| (s, under)))
        .map(|(s, under)| format!("{who}: binds {} (host-internal: {under})", s.display()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_targets() {
        for bad in [
            "/",
            "/etc",
            "/etc/cron.d",
            "/usr/local/bin",
            "/var/run/docker.sock",
            "/home",
            "/var/lib",
        ] {
            assert!(refused_target(Path::new(bad)).is_some(), "{bad}");
        }
        for good in ["/srv/app/data", "/home/alice/app", "/var/lib/app", "/opt/x"] {
            assert_eq!(refused_target(Path::new(good)), None, "{good}");
        }
    }

    #[test]
    fn privileges_in_compose_and_inspect() {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "services:\n  evil:\n    image: x\n    privileged: true\n    network_mode: host\n    \
             pid: host\n    cap_add: [ALL]\n    devices: ['/dev/sda:/dev/sda']\n    volumes:\n      \
             - /etc:/host-etc\n      - /var/run/docker.sock:/var/run/docker.sock\n      - ./data:/data\n  \
             fine:\n    image: x\n    cap_add: [NET_ADMIN]\n",
        )
        .unwrap();
        let found = compose_privileges("docker-compose.yml", &doc);
        assert_eq!(
            found,
            [
                "service evil (docker-compose.yml): privileged",
                "service evil (docker-compose.yml): network_mode host",
                "service evil (docker-compose.yml): pid host",
                "service evil (docker-compose.yml): cap_add ALL",
                "service evil (docker-compose.yml): host devices",
                "service evil (docker-compose.yml): binds /etc (host-internal: /etc)",
                "service evil (docker-compose.yml): binds /var/run/docker.sock (host-internal: /var/run)",
            ]
        );
        let inspect = serde_json::json!({"HostConfig": {
            "Privileged": true, "NetworkMode": "bridge", "CapAdd": ["CAP_SYS_ADMIN"],
            "Binds": ["/srv/x:/x", "/:/host:ro"]
        }});
        assert_eq!(
            inspect_privileges("solo", &inspect),
            [
                "container solo: privileged",
                "container solo: cap_add SYS_ADMIN",
                "container solo: binds / (host-internal: /)",
            ]
        );
    }
}
