//! Bringing a restored unit up: a stack through its compose files, a standalone container
//! recreated from its saved inspect document through the Engine API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, NetworkConnectRequest};
use serde_json::{Map, Value};

use super::RestoreError;
use crate::backup::recipe::REDACTED;
use crate::docker::Engine;

/// The compose implementation found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeTool {
    /// `docker compose` (v2 plugin).
    Plugin(PathBuf),
    /// `docker-compose` (v1 or the v2 standalone binary).
    Standalone(PathBuf),
    /// `podman-compose`: the tool that made a Podman stack makes it again (with its own
    /// `io.podman.compose.*` labels and its pod), against the local Podman.
    Podman(PathBuf),
}

/// The label podman-compose puts on every container, volume and network it makes.
pub const PODMAN_COMPOSE_LABEL: &str = "io.podman.compose.project";

impl ComposeTool {
    /// The tool that made the stack: `podman-compose` when its containers carry
    /// [`PODMAN_COMPOSE_LABEL`], else [`ComposeTool::find`]'s.
    pub async fn for_stack(made_by_podman_compose: bool) -> Option<Self> {
        if made_by_podman_compose {
            return on_path("podman-compose").map(Self::Podman);
        }
        Self::find().await
    }

    /// Finds `docker compose`, else `docker-compose`, on `PATH`.
    pub async fn find() -> Option<Self> {
        if let Some(docker) = on_path("docker") {
            let works = tokio::process::Command::new(&docker)
                .args(["compose", "version"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status();
            // A CLI plugin that hangs is not a working one.
            let works = tokio::time::timeout(Duration::from_secs(30), works)
                .await
                .is_ok_and(|s| s.is_ok_and(|s| s.success()));
            if works {
                return Some(Self::Plugin(docker));
            }
        }
        on_path("docker-compose").map(Self::Standalone)
    }

    /// The compose command, without kopi-docka's secrets in its environment: compose
    /// interpolates `${VAR}` from it into the containers it creates.
    fn command(&self) -> tokio::process::Command {
        let mut cmd = match self {
            Self::Plugin(docker) => {
                let mut cmd = tokio::process::Command::new(docker);
                cmd.arg("compose");
                cmd
            }
            Self::Standalone(path) | Self::Podman(path) => tokio::process::Command::new(path),
        };
        crate::config::environment::remove_secrets(&mut cmd);
        cmd
    }

    /// How the user would type it.
    pub fn display(&self) -> &'static str {
        match self {
            Self::Plugin(_) => "docker compose",
            Self::Standalone(_) => "docker-compose",
            Self::Podman(_) => "podman-compose",
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
}

/// `compose -p PROJECT -f FILE... up -d [SERVICE...]` in `project_dir`, against `engine`.
/// Past `timeout` (`[backup] compose-timeout-seconds`) compose is killed with its whole process
/// group (a compose that forks, or a wrapper script, leaves nothing running).
pub async fn compose_up(
    tool: &ComposeTool,
    engine: &Engine,
    project: &str,
    project_dir: &Path,
    files: &[PathBuf],
    services: &[String],
    timeout: Duration,
) -> Result<(), RestoreError> {
    let mut cmd = tool.command();
    cmd.arg("-p").arg(project);
    for file in files {
        cmd.arg("-f").arg(file);
    }
    // podman-compose drives the `podman` of whoever runs it, not the API socket: a rootless
    // user's stack is made again by that user, in their own storage.
    if let ComposeTool::Podman(_) = tool
        && let Some(owner) = crate::account::Account::engine_owner(engine).map_err(|output| {
            RestoreError::Compose {
                command: tool.display().into(),
                output,
            }
        })?
    {
        owner.run_as(&mut cmd);
    }
    cmd.args(["up", "-d"])
        .args(services)
        .current_dir(project_dir)
        .env("DOCKER_HOST", engine.endpoint().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills everything it started.
        .process_group(0);
    cmd.kill_on_drop(true);
    tracing::info!(project, dir = %project_dir.display(), tool = tool.display(), "starting the stack");
    let child = cmd.spawn().map_err(|e| RestoreError::Compose {
        command: tool.display().into(),
        output: e.to_string(),
    })?;
    let group = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid.cast_signed()));
    let Ok(output) = tokio::time::timeout(timeout, child.wait_with_output()).await else {
        if let Some(group) = group
            && let Err(error) =
                rustix::process::kill_process_group(group, rustix::process::Signal::KILL)
        {
            tracing::warn!(%error, "cannot kill the compose process group");
        }
        return Err(RestoreError::Compose {
            command: format!("{} -p {project} up -d", tool.display()),
            output: format!(
                "did not finish within {}s ([backup] compose-timeout-seconds) and was killed \
                 (an image pull that hangs? a registry that does not answer?); run it by hand \
                 in {} to see why",
                timeout.as_secs(),
                project_dir.display()
            ),
        });
    };
    let output = output.map_err(|e| RestoreError::Compose {
        command: tool.display().into(),
        output: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let start = text.len().saturating_sub(1500);
    Err(RestoreError::Compose {
        command: format!("{} up -d", tool.display()),
        output: text[text.ceil_char_boundary(start)..].trim().to_owned(),
    })
}

/// Renames applied to a recreated container (a drill's sandbox).
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Volume name to sandbox volume name.
    pub volumes: BTreeMap<String, String>,
    /// Bind source to sandbox path.
    pub binds: BTreeMap<PathBuf, PathBuf>,
    /// Network name to sandbox network name.
    pub networks: BTreeMap<String, String>,
    /// Set for a sandbox: no published ports, no restart policy, compose labels dropped, and
    /// `kopi-docka.drill=<value>` added.
    pub drill: Option<String>,
}

/// A container to create: the create body and the networks to connect after creation.
#[derive(Debug)]
pub struct Recreation {
    /// Create body.
    pub body: ContainerCreateBody,
    /// Further networks (the engine attaches one at creation).
    pub more_networks: Vec<(String, EndpointSettings)>,
    /// In a drill: what became of each recorded mount (empty otherwise).
    pub mounts: Vec<SandboxMount>,
}

/// What a drill did with one mount of a recorded container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SandboxMount {
    /// The drilled container (its recorded name).
    pub container: String,
    /// Path inside the container (or the device path for a host device).
    pub destination: String,
    /// `volume`, `bind`, `tmpfs`, `device`, `volumes-from`...
    pub kind: String,
    /// The production volume, path or container it named.
    pub source: String,
    /// What the sandbox container got instead.
    #[serde(flatten)]
    pub treatment: Treatment,
}

/// A drill mounts a sandbox copy or nothing; never production data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "treatment", rename_all = "snake_case")]
pub enum Treatment {
    /// The copy restored from the point: a sandbox volume or a directory in the drill's dir.
    SandboxCopy {
        /// The sandbox volume or path.
        copy: String,
    },
    /// A new empty volume or a tmpfs: nothing of production.
    Fresh,
    /// Not mounted at all.
    LeftOut {
        /// Why.
        reason: String,
    },
}

/// Names of the redacted environment variables in a saved inspect document.
pub fn redacted_env(inspect: &Value) -> Vec<String> {
    env_entries(inspect)
        .filter(|(_, value)| value.contains(REDACTED))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Parts of a saved inspect document besides the environment that hold redacted secrets.
pub fn redacted_config(inspect: &Value) -> Vec<String> {
    ["Cmd", "Entrypoint", "Healthcheck", "Labels"]
        .into_iter()
        .filter(|field| {
            inspect
                .pointer(&format!("/Config/{field}"))
                .is_some_and(|v| v.to_string().contains(REDACTED))
        })
        .map(str::to_owned)
        .collect()
}

fn env_entries(inspect: &Value) -> impl Iterator<Item = (&str, &str)> {
    inspect
        .pointer("/Config/Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|e| e.split_once('='))
}

/// The create request that rebuilds a container from its saved inspect document: image, cmd,
/// entrypoint, env (redacted values from `env_values`), ports, mounts, networks with aliases
/// and static addresses, restart policy, labels, user, workdir, capabilities, limits.
pub fn recreation(
    inspect: &Value,
    env_values: &BTreeMap<String, String>,
    rewrite: &Rewrite,
    service: Option<&str>,
) -> Result<Recreation, RestoreError> {
    let missing: Vec<String> = redacted_env(inspect)
        .into_iter()
        .filter(|n| !env_values.contains_key(n))
        .collect();
    if !missing.is_empty() {
        return Err(RestoreError::RedactedEnv { names: missing });
    }
    let mut config = inspect.get("Config").cloned().unwrap_or(Value::Null);
    let config_obj = config
        .as_object_mut()
        .ok_or_else(|| recipe_error("no Config"))?;
    let id = inspect
        .get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // The engine's default hostname is the old container's short id; let it pick a new one.
    if config_obj
        .get("Hostname")
        .and_then(Value::as_str)
        .is_some_and(|h| id.starts_with(h))
    {
        config_obj.remove("Hostname");
    }
    let env: Vec<Value> = env_entries(inspect)
        .map(|(name, value)| {
            let value = match env_values.get(name) {
                Some(v) if value.contains(REDACTED) => v.as_str(),
                _ => value,
            };
            Value::String(format!("{name}={value}"))
        })
        .collect();
    config_obj.insert("Env".into(), Value::Array(env));
    let mut host = inspect.get("HostConfig").cloned().unwrap_or(Value::Null);
    let mut networks: Vec<(String, Value)> = inspect
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), endpoint(v, id, service)))
                .collect()
        })
        .unwrap_or_default();
    // The network named by NetworkMode goes first: the engine attaches it at creation.
    let mode = host
        .get("NetworkMode")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    networks.sort_by_key(|(name, _)| *name != mode);
    let mounts = match &rewrite.drill {
        Some(_) => sandbox_mounts(
            &mut host,
            rewrite,
            inspect
                .get("Name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_start_matches('/'),
        ),
        None => Vec::new(),
    };
    apply_rewrite(config_obj, &mut host, &mut networks, rewrite);
    let mut body = config;
    let first: Map<String, Value> = networks.first().cloned().into_iter().collect();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("HostConfig".into(), host);
        obj.insert(
            "NetworkingConfig".into(),
            serde_json::json!({ "EndpointsConfig": first }),
        );
    }
    let body: ContainerCreateBody =
        serde_json::from_value(body).map_err(|e| recipe_error(&e.to_string()))?;
    let more_networks = networks
        .into_iter()
        .skip(1)
        .map(|(name, ep)| {
            serde_json::from_value(ep)
                .map(|ep| (name, ep))
                .map_err(|e| recipe_error(&e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Recreation {
        body,
        more_networks,
        mounts,
    })
}

fn recipe_error(reason: &str) -> RestoreError {
    RestoreError::Recipe {
        path: "inspect".into(),
        reason: reason.to_owned(),
    }
}

/// The endpoint settings worth recreating: aliases (without the old container id), static
/// addresses, links, driver options.
fn endpoint(saved: &Value, old_id: &str, service: Option<&str>) -> Value {
    let mut aliases: Vec<Value> = saved
        .get("Aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.as_str().is_some_and(|a| !old_id.starts_with(a)))
        .cloned()
        .collect();
    if let Some(service) = service
        && !aliases.iter().any(|a| a == service)
    {
        aliases.push(Value::String(service.to_owned()));
    }
    let mut out = Map::new();
    out.insert("Aliases".into(), Value::Array(aliases));
    for key in ["IPAMConfig", "Links", "DriverOpts"] {
        if let Some(v) = saved.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn apply_rewrite(
    config: &mut Map<String, Value>,
    host: &mut Value,
    networks: &mut [(String, Value)],
    rewrite: &Rewrite,
) {
    for (name, _) in networks.iter_mut() {
        if let Some(new) = rewrite.networks.get(name) {
            name.clone_from(new);
        }
    }
    let Some(host) = host.as_object_mut() else {
        return;
    };
    if let Some(mode) = host.get("NetworkMode").and_then(Value::as_str)
        && let Some(new) = rewrite.networks.get(mode)
    {
        host.insert("NetworkMode".into(), Value::String(new.clone()));
    }
    if let Some(binds) = host.get_mut("Binds").and_then(Value::as_array_mut) {
        for bind in binds.iter_mut() {
            if let Some(text) = bind.as_str() {
                *bind = Value::String(rewrite_bind_spec(text, rewrite));
            }
        }
    }
    if let Some(mounts) = host.get_mut("Mounts").and_then(Value::as_array_mut) {
        for mount in mounts.iter_mut() {
            let kind = mount
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let Some(source) = mount.get("Source").and_then(Value::as_str) else {
                continue;
            };
            let new = match kind.as_str() {
                "volume" => rewrite.volumes.get(source).cloned(),
                "bind" => rewrite
                    .binds
                    .get(Path::new(source))
                    .map(|p| p.to_string_lossy().into_owned()),
                _ => None,
            };
            if let Some(new) = new {
                mount["Source"] = Value::String(new);
            }
        }
    }
    if let Some(drill) = &rewrite.drill {
        host.remove("PortBindings");
        host.insert("PublishAllPorts".into(), Value::Bool(false));
        host.insert("RestartPolicy".into(), serde_json::json!({"Name": "no"}));
        host.remove("Links");
        config.remove("ExposedPorts");
        let labels = config
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.retain(|k, _| !k.starts_with("com.docker.compose."));
            labels.insert("kopi-docka.drill".into(), Value::String(drill.clone()));
        }
    }
}

/// A drill's mounts: every volume and bind in the point becomes its sandbox copy; everything
/// else that would reach production (volumes and binds outside the point, device-backed
/// volumes' inline driver options, `--volumes-from`, host devices) is left out. Says what
/// became of each.
#[allow(
    clippy::too_many_lines,
    reason = "one walk over the four places a create body names mounts"
)]
fn sandbox_mounts(host: &mut Value, rewrite: &Rewrite, container: &str) -> Vec<SandboxMount> {
    let mut out = Vec::new();
    let Some(host) = host.as_object_mut() else {
        return out;
    };
    let mut record = |kind: &str, source: &str, destination: &str, treatment: Treatment| {
        out.push(SandboxMount {
            container: container.to_owned(),
            destination: destination.to_owned(),
            kind: kind.to_owned(),
            source: source.to_owned(),
            treatment,
        });
    };
    let not_in_point = || Treatment::LeftOut {
        reason: "not in the restore point; a drill never mounts production data".into(),
    };
    let copy = |kind: &str, source: &str| match kind {
        "volume" => rewrite.volumes.get(source).cloned(),
        "bind" => rewrite
            .binds
            .get(Path::new(source))
            .map(|p| p.to_string_lossy().into_owned()),
        _ => None,
    };
    if let Some(binds) = host.get_mut("Binds").and_then(Value::as_array_mut) {
        binds.retain_mut(|bind| {
            let spec = bind.as_str().unwrap_or_default().to_owned();
            let (source, rest) = spec.split_once(':').unwrap_or((&spec, ""));
            let destination = rest.split(':').next().unwrap_or_default();
            let kind = if source.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            if let Some(new) = copy(kind, source) {
                *bind = Value::String(format!("{new}:{rest}"));
                record(
                    kind,
                    source,
                    destination,
                    Treatment::SandboxCopy { copy: new },
                );
                true
            } else {
                record(kind, source, destination, not_in_point());
                false
            }
        });
    }
    if let Some(mounts) = host.get_mut("Mounts").and_then(Value::as_array_mut) {
        mounts.retain_mut(|mount| {
            let text = |key: &str| {
                mount
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let (kind, source, destination) = (text("Type"), text("Source"), text("Target"));
            if kind == "tmpfs" || (kind == "volume" && source.is_empty()) {
                // Memory, or an anonymous volume the engine creates empty.
                if let Some(m) = mount.as_object_mut() {
                    m.remove("VolumeOptions");
                }
                record(&kind, &source, &destination, Treatment::Fresh);
                return true;
            }
            if let Some(new) = copy(&kind, &source) {
                mount["Source"] = Value::String(new.clone());
                // Inline driver options (`o=bind,device=...`) would point the sandbox
                // volume at the production device.
                if let Some(m) = mount.as_object_mut() {
                    m.remove("VolumeOptions");
                }
                record(
                    &kind,
                    &source,
                    &destination,
                    Treatment::SandboxCopy { copy: new },
                );
                true
            } else {
                record(&kind, &source, &destination, not_in_point());
                false
            }
        });
    }
    for (key, kind) in [("VolumesFrom", "volumes-from"), ("Devices", "device")] {
        let Some(Value::Array(items)) = host.remove(key) else {
            continue;
        };
        for item in items {
            let source = match &item {
                Value::String(s) => s.clone(),
                other => other
                    .get("PathOnHost")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
            let destination = item
                .get("PathInContainer")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            record(
                kind,
                &source,
                &destination,
                Treatment::LeftOut {
                    reason: "production data or hardware; a drill never mounts it".into(),
                },
            );
        }
    }
    out
}

/// `SOURCE:DEST[:MODE]` with the source renamed when it is a volume or bind being rewritten.
fn rewrite_bind_spec(spec: &str, rewrite: &Rewrite) -> String {
    let (source, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let new = if source.starts_with('/') {
        rewrite
            .binds
            .get(Path::new(source))
            .map(|p| p.to_string_lossy().into_owned())
    } else {
        rewrite.volumes.get(source).cloned()
    };
    match new {
        Some(new) if rest.is_empty() => new,
        Some(new) => format!("{new}:{rest}"),
        None => spec.to_owned(),
    }
}

/// Creates `name` from `recreation` and attaches its further networks; returns its id.
pub async fn create(
    engine: &Engine,
    name: &str,
    recreation: Recreation,
) -> Result<String, RestoreError> {
    let id = engine.create_container(name, recreation.body).await?;
    for (network, endpoint) in recreation.more_networks {
        engine
            .connect_network(
                &network,
                NetworkConnectRequest {
                    container: id.clone(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inspect() -> Value {
        json!({
            "Id": "0123456789abcdef",
            "Name": "/app",
            "Config": {
                "Hostname": "0123456789ab", "Image": "kdtest/busybox:1",
                "Env": ["PATH=/bin", "API_KEY=***REDACTED***", "URL=http://u:***REDACTED***@h"],
                "Cmd": ["sleep", "1"], "Labels": {"com.docker.compose.project": "p", "keep": "1"},
                "ExposedPorts": {"80/tcp": {}}
            },
            "HostConfig": {
                "NetworkMode": "front", "Binds": ["data:/data", "/srv/x:/x:ro"],
                "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                "RestartPolicy": {"Name": "always"}, "CapAdd": ["NET_ADMIN"], "Memory": 1_048_576
            },
            "NetworkSettings": {"Networks": {
                "back": {"Aliases": ["0123456789ab", "db"], "IPAddress": "1.2.3.4"},
                "front": {"Aliases": null, "IPAMConfig": {"IPv4Address": "172.20.0.9"}}
            }}
        })
    }

    #[test]
    fn compose_runs_without_our_secrets() {
        for tool in [
            ComposeTool::Plugin("/usr/bin/docker".into()),
            ComposeTool::Standalone("/usr/bin/docker-compose".into()),
        ] {
            let command = tool.command();
            let removed: Vec<_> = command
                .as_std()
                .get_envs()
                .filter(|(_, value)| value.is_none())
                .map(|(name, _)| name.to_string_lossy().into_owned())
                .collect();
            assert_eq!(removed, ["KOPI_DOCKA_DR_PASSPHRASE", "KOPI_DOCKA_PASSWORD"]);
        }
    }

    #[test]
    fn secrets_redacted_outside_the_environment_are_named() {
        let doc = serde_json::json!({"Config": {
            "Cmd": ["redis-server", "--requirepass", REDACTED],
            "Labels": {"a.basicauth.users": REDACTED, "b": "c"},
            "Entrypoint": null,
        }});
        assert_eq!(redacted_config(&doc), ["Cmd", "Labels"]);
        assert_eq!(redacted_config(&inspect()), Vec::<String>::new());
    }

    #[test]
    fn redacted_values_must_be_supplied() {
        assert_eq!(redacted_env(&inspect()), vec!["API_KEY", "URL"]);
        let err = recreation(&inspect(), &BTreeMap::new(), &Rewrite::default(), None).unwrap_err();
        assert!(matches!(err, RestoreError::RedactedEnv { names } if names == ["API_KEY", "URL"]));
    }

    #[test]
    fn recreation_keeps_the_configuration() {
        let env = BTreeMap::from([
            ("API_KEY".to_owned(), "k".to_owned()),
            ("URL".to_owned(), "http://u:p@h".to_owned()),
        ]);
        let r = recreation(&inspect(), &env, &Rewrite::default(), Some("web")).unwrap();
        let body = serde_json::to_value(&r.body).unwrap();
        assert_eq!(
            body["Env"],
            json!(["PATH=/bin", "API_KEY=k", "URL=http://u:p@h"])
        );
        assert!(body.get("Hostname").is_none());
        assert_eq!(body["HostConfig"]["CapAdd"], json!(["NET_ADMIN"]));
        assert_eq!(
            body["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        let eps = &body["NetworkingConfig"]["EndpointsConfig"];
        assert_eq!(eps["front"]["IPAMConfig"]["IPv4Address"], "172.20.0.9");
        assert_eq!(r.more_networks.len(), 1);
        assert_eq!(r.more_networks[0].0, "back");
        assert_eq!(
            r.more_networks[0].1.aliases.as_deref(),
            Some(&["db".to_owned(), "web".to_owned()][..])
        );
    }

    #[test]
    fn drill_rewrite_isolates_the_sandbox() {
        let rewrite = Rewrite {
            volumes: BTreeMap::from([("data".into(), "drill_data".into())]),
            binds: BTreeMap::from([("/srv/x".into(), "/cache/drill/x".into())]),
            networks: BTreeMap::from([("front".into(), "drill_front".into())]),
            drill: Some("d1".into()),
        };
        let env = BTreeMap::from([
            ("API_KEY".to_owned(), "k".to_owned()),
            ("URL".to_owned(), "u".to_owned()),
        ]);
        let r = recreation(&inspect(), &env, &rewrite, None).unwrap();
        let body = serde_json::to_value(&r.body).unwrap();
        assert_eq!(
            body["HostConfig"]["Binds"],
            json!(["drill_data:/data", "/cache/drill/x:/x:ro"])
        );
        assert_eq!(body["HostConfig"]["NetworkMode"], "drill_front");
        assert!(body["HostConfig"].get("PortBindings").is_none());
        assert_eq!(body["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(
            body["Labels"],
            json!({"keep": "1", "kopi-docka.drill": "d1"})
        );
        assert!(
            body["NetworkingConfig"]["EndpointsConfig"]
                .get("drill_front")
                .is_some()
        );
    }
}
