//! The container engine, reached through its HTTP API (bollard), never through the docker CLI.
//!
//! This module owns the connection and the raw reads discovery needs. It hands out bollard's
//! own response types; turning them into our model is `unit`'s job.

pub mod compose;
pub mod endpoint;

pub use endpoint::{EngineTarget, TlsFiles};

use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::models::{ContainerInspectResponse, Volume};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, InspectContainerOptions,
    InspectNetworkOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StartContainerOptions, StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::config::DockerHost;

/// How long we wait for the engine to answer the first ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout handed to bollard, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Time a stop request may take beyond the stop's own timeout (kill, reap, a busy engine).
const STOP_MARGIN_SECS: u64 = 60;
/// Parallel `inspect` requests during discovery.
const INSPECT_CONCURRENCY: usize = 8;

/// Errors talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Nothing usable answers at the endpoint.
    #[error(
        "cannot reach the container engine at {endpoint}: {reason}\n{hint}",
        hint = unreachable_hint(endpoint)
    )]
    Unreachable {
        /// The endpoint we tried.
        endpoint: DockerHost,
        /// Why it failed, in the engine client's words.
        reason: String,
    },
    /// No endpoint was named and none of the usual sockets answers.
    #[error(
        "no container engine found; tried:\n{tried}\nIs dockerd (`systemctl status docker`) or \
         Podman's API service (`systemctl enable --now podman.socket`, or \
         `systemctl --user enable --now podman.socket` for rootless Podman) running? May this \
         user use the socket (run with sudo, or join the `docker` group)? To name the engine, \
         set DOCKER_HOST or `[docker] host`; for a rootless engine run as root, `[docker] user`.",
        tried = tried.iter().map(|(h, r)| format!("  {h}: {r}")).collect::<Vec<_>>().join("\n")
    )]
    NoEngine {
        /// Each endpoint probed and why it did not answer.
        tried: Vec<(DockerHost, String)>,
    },
    /// The engine answered with an error.
    #[error("container engine request `{operation}` failed: {source}")]
    Api {
        /// What we asked for.
        operation: String,
        /// bollard's error.
        source: bollard::errors::Error,
    },
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    client: Docker,
    endpoint: DockerHost,
    identity: Identity,
}

/// Which engine answers: Docker or Podman, its version, rootful or rootless.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    /// The product.
    pub kind: EngineKind,
    /// Its version (`28.2.2`, `4.3.1`).
    pub version: String,
    /// It runs without root (rootless Docker or rootless Podman): volume files belong to the
    /// user's sub-UIDs on the host.
    pub rootless: bool,
}

/// The engine products kopi-docka knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Docker Engine (dockerd).
    Docker,
    /// Podman's Docker-compatible API service.
    Podman,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.kind {
            EngineKind::Docker => "Docker",
            EngineKind::Podman => "Podman",
        };
        write!(f, "{name} {}", self.version)?;
        if self.rootless {
            f.write_str(" (rootless)")?;
        }
        Ok(())
    }
}

/// A command started inside a container ([`Engine::exec`]).
pub struct ExecStream {
    /// The exec's id, for its exit code.
    pub id: String,
    /// Its stdout and stderr, frame by frame.
    pub output: std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
                > + Send,
        >,
    >,
    /// Its stdin (closed when dropped).
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What waiting for a started container needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    /// The engine says it runs.
    pub running: bool,
    /// Its healthcheck status; `None` without a healthcheck.
    pub health: Option<crate::unit::Health>,
}

impl Engine {
    /// Connects to the first endpoint of `target` that answers, negotiates the API version
    /// and asks which engine it is. A named endpoint that does not answer is the error; when
    /// probing, the error lists every socket tried.
    pub async fn connect(target: EngineTarget) -> Result<Self, DockerError> {
        let mut tried = Vec::new();
        for endpoint in target.candidates {
            // Boxed: the TLS and ssh transports make this future large, and every command
            // awaits a connect.
            match Box::pin(Self::connect_to(&endpoint, target.tls.as_ref())).await {
                Ok(engine) => return Ok(engine),
                Err(reason) if target.named => {
                    return Err(DockerError::Unreachable { endpoint, reason });
                }
                Err(reason) => {
                    tracing::debug!(%endpoint, %reason, "no engine here");
                    tried.push((endpoint, reason));
                }
            }
        }
        Err(DockerError::NoEngine { tried })
    }

    async fn connect_to(endpoint: &DockerHost, tls: Option<&TlsFiles>) -> Result<Self, String> {
        let client = match (endpoint, tls) {
            (DockerHost::Unix(path), _) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            (DockerHost::Tcp(addr), None) => Docker::connect_with_http(
                &format!("http://{addr}"),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            (DockerHost::Tcp(addr), Some(files)) => {
                for file in [files.ca(), files.cert(), files.key()] {
                    if !file.is_file() {
                        return Err(format!(
                            "TLS is on (DOCKER_TLS_VERIFY or `[docker] tls-verify`) but {} does \
                             not exist; put ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH \
                             (or `[docker] cert-path`)",
                            file.display()
                        ));
                    }
                }
                install_crypto_provider();
                Docker::connect_with_ssl(
                    &format!("https://{addr}"),
                    &files.key(),
                    &files.cert(),
                    &files.ca(),
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                )
            }
            (DockerHost::Ssh(addr), _) => Docker::connect_with_ssh(
                &format!("ssh://{addr}"),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
                None,
            ),
        }
        .map_err(|e| describe(&e))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| describe(&e))?;
        let identity = tokio::time::timeout(CONNECT_TIMEOUT, identify(&client, endpoint))
            .await
            .map_err(|_| format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| describe(&e))?;
        let api_version = client.client_version().to_string();
        tracing::debug!(%endpoint, %api_version, engine = %identity, "connected to the container engine");
        Ok(Self {
            client,
            endpoint: endpoint.clone(),
            identity,
        })
    }

    /// Which engine this is.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The endpoint this engine was reached at.
    pub fn endpoint(&self) -> &DockerHost {
        &self.endpoint
    }

    /// The engine's product version and API version, for `doctor`.
    pub async fn version(&self) -> Result<(String, String), DockerError> {
        let version = self
            .client
            .version()
            .await
            .map_err(|source| DockerError::Api {
                operation: "version".into(),
                source,
            })?;
        Ok((
            version.version.unwrap_or_else(|| "unknown".into()),
            version.api_version.unwrap_or_else(|| "unknown".into()),
        ))
    }

    /// Inspects every container, running or not. A container removed between list and inspect
    /// is left out (it no longer exists); any other failure fails the whole call, so discovery
    /// never silently drops a container it could not read.
    pub async fn inspect_all_containers(
        &self,
    ) -> Result<Vec<ContainerInspectResponse>, DockerError> {
        let summaries = self
            .client
            .list_containers(Some(
                ListContainersOptionsBuilder::default().all(true).build(),
            ))
            .await
            .map_err(|source| DockerError::Api {
                operation: "list containers".into(),
                source,
            })?;
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected: Vec<Option<ContainerInspectResponse>> = stream::iter(ids)
            .map(|id| async move {
                match self
                    .client
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(found) => Ok(Some(found)),
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => {
                        tracing::debug!(%id, "container vanished during discovery");
                        Ok(None)
                    }
                    Err(source) => Err(DockerError::Api {
                        operation: format!("inspect container {id}"),
                        source,
                    }),
                }
            })
            .buffered(INSPECT_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(inspected.into_iter().flatten().collect())
    }

    /// Lists every volume with driver, mountpoint and labels.
    pub async fn volumes(&self) -> Result<Vec<Volume>, DockerError> {
        let response = self
            .client
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>)
            .await
            .map_err(|source| DockerError::Api {
                operation: "list volumes".into(),
                source,
            })?;
        Ok(response.volumes.unwrap_or_default())
    }

    /// The raw inspect document of one container, as the engine returns it.
    pub async fn inspect_container_json(&self, id: &str) -> Result<serde_json::Value, DockerError> {
        let found = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|source| DockerError::Api {
                operation: format!("inspect container {id}"),
                source,
            })?;
        serde_json::to_value(found).map_err(|e| DockerError::Api {
            operation: format!("encode inspect of {id}"),
            source: bollard::errors::Error::JsonSerdeError { err: e },
        })
    }

    /// The raw inspect document of one network.
    pub async fn inspect_network_json(&self, name: &str) -> Result<serde_json::Value, DockerError> {
        let found = self
            .client
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
            .map_err(|source| DockerError::Api {
                operation: format!("inspect network {name}"),
                source,
            })?;
        serde_json::to_value(found).map_err(|e| DockerError::Api {
            operation: format!("encode inspect of network {name}"),
            source: bollard::errors::Error::JsonSerdeError { err: e },
        })
    }

    /// Stops a container. `floor_secs` is a floor, never an override: the engine waits the
    /// longer of it and the container's own stop timeout (compose `stop_grace_period`,
    /// `docker run --stop-timeout`) before it kills. The request's client timeout is longer
    /// than that wait, so a slow stop is never cut off by the client and taken for a failed or
    /// finished one. Stopping a stopped container succeeds.
    pub async fn stop(&self, id: &str, floor_secs: u32) -> Result<StopOutcome, DockerError> {
        let inspected = self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|source| api(format!("inspect container {id}"), source))?;
        let own = inspected.config.as_ref().and_then(|c| c.stop_timeout);
        let timeout_secs = effective_stop_timeout(own, floor_secs);
        let since = jiff::Timestamp::now();
        let started = std::time::Instant::now();
        let t = i32::try_from(timeout_secs).unwrap_or(i32::MAX);
        self.client
            .clone()
            .with_timeout(stop_client_timeout(timeout_secs))
            .stop_container(
                id,
                Some(StopContainerOptionsBuilder::default().t(t).build()),
            )
            .await
            .map_err(|source| api(format!("stop container {id}"), source))?;
        let seconds = started.elapsed().as_secs_f64();
        let killed = match self.killed_since(id, since).await {
            Ok(killed) => killed,
            Err(error) => {
                // The events could not be read: the exit code and the time it took are the
                // next best facts (137 = SIGKILL, and only after the whole timeout).
                tracing::debug!(%error, "cannot read the engine's events; judging by exit code");
                let exit = self
                    .client
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.exit_code);
                exit == Some(137) && seconds + 0.5 >= f64::from(timeout_secs)
            }
        };
        Ok(StopOutcome {
            timeout_secs,
            seconds,
            killed,
        })
    }

    /// Whether the engine had to kill container `id` since `since`: its own `kill` events say
    /// so, a SIGKILL (signal 9) sent after a first, different stop signal that did not end it.
    async fn killed_since(&self, id: &str, since: jiff::Timestamp) -> Result<bool, DockerError> {
        let stamp = |t: jiff::Timestamp| format!("{}.{:09}", t.as_second(), t.subsec_nanosecond());
        let filters = std::collections::HashMap::from([
            ("container", vec![id]),
            ("type", vec!["container"]),
            ("event", vec!["kill"]),
        ]);
        let options = EventsOptionsBuilder::default()
            .since(&stamp(since))
            .until(&stamp(jiff::Timestamp::now()))
            .filters(&filters)
            .build();
        let signals: Vec<String> = self
            .client
            .events(Some(options))
            .map_ok(|event| {
                event
                    .actor
                    .and_then(|a| a.attributes)
                    .and_then(|mut a| a.remove("signal"))
                    .unwrap_or_default()
            })
            .try_collect()
            .await
            .map_err(|source| api(format!("events of container {id}"), source))?;
        Ok(killed_after_stop_signal(&signals))
    }

    /// Waits up to `within` until container `id` no longer runs (or no longer exists); returns
    /// whether it stopped. After a stop request that failed, the engine may still be stopping
    /// it: that is not a finished stop, and starting it now would be undone by the kill.
    pub async fn wait_stopped(&self, id: &str, within: Duration) -> Result<bool, DockerError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.state(id).await? {
                None | Some(RunState { running: false, .. }) => return Ok(true),
                Some(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Runs `cmd` inside the running container `id` (its own environment, plus `env`), with
    /// stdout and stderr attached and, when `stdin`, its standard input. Nothing of `cmd` or
    /// `env` is logged: the callers keep secrets inside the container (its own variables),
    /// and name only variables here.
    pub async fn exec(
        &self,
        id: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        stdin: bool,
    ) -> Result<ExecStream, DockerError> {
        self.exec_as(id, (cmd, env), stdin, None).await
    }

    /// [`Engine::exec`] as `user` (a name or `uid[:gid]` inside the container; `None`: the
    /// container's own user).
    pub async fn exec_as(
        &self,
        id: &str,
        (cmd, env): (Vec<String>, Vec<String>),
        stdin: bool,
        user: Option<&str>,
    ) -> Result<ExecStream, DockerError> {
        let api = |source| DockerError::Api {
            operation: format!("exec in container {id}"),
            source,
        };
        let created = self
            .client
            .create_exec(
                id,
                bollard::models::ExecConfig {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(false),
                    cmd: Some(cmd),
                    env: Some(env),
                    user: user.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await
            .map_err(api)?;
        match self
            .client
            .start_exec(&created.id, None::<bollard::exec::StartExecOptions>)
            .await
            .map_err(api)?
        {
            bollard::exec::StartExecResults::Attached { output, input } => Ok(ExecStream {
                id: created.id,
                output,
                input,
            }),
            bollard::exec::StartExecResults::Detached => Err(DockerError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: "the engine started the exec detached".into(),
            }),
        }
    }

    /// The exit code of a finished exec; `None` while it runs.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, DockerError> {
        let inspected =
            self.client
                .inspect_exec(exec_id)
                .await
                .map_err(|source| DockerError::Api {
                    operation: format!("inspect exec {exec_id}"),
                    source,
                })?;
        Ok(if inspected.running == Some(true) {
            None
        } else {
            inspected.exit_code
        })
    }

    /// The host pid of a running exec (to kill it: the API cannot); `None` once it ended.
    pub async fn exec_pid(&self, exec_id: &str) -> Result<Option<i64>, DockerError> {
        let inspected =
            self.client
                .inspect_exec(exec_id)
                .await
                .map_err(|source| DockerError::Api {
                    operation: format!("inspect exec {exec_id}"),
                    source,
                })?;
        Ok(inspected
            .pid
            .filter(|pid| *pid > 0 && inspected.running == Some(true)))
    }

    /// Starts a container. Starting a running one succeeds.
    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.client
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|source| DockerError::Api {
                operation: format!("start container {id}"),
                source,
            })
    }

    /// Running state and health of a container; `None` when it no longer exists.
    pub async fn state(&self, id: &str) -> Result<Option<RunState>, DockerError> {
        match self
            .client
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(found) => {
                let state = found.state.unwrap_or_default();
                Ok(Some(RunState {
                    running: state.running.unwrap_or(false),
                    health: state
                        .health
                        .and_then(|h| h.status)
                        .and_then(crate::unit::health),
                }))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(DockerError::Api {
                operation: format!("inspect container {id}"),
                source,
            }),
        }
    }

    /// The raw inspect document of one volume; `None` when it does not exist.
    pub async fn inspect_volume_json(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, DockerError> {
        match self.client.inspect_volume(name).await {
            Ok(found) => Ok(Some(to_json(&found, &format!("volume {name}"))?)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(api(format!("inspect volume {name}"), source)),
        }
    }

    /// Whether a network with this name exists; its inspect document when it does.
    pub async fn find_network_json(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, DockerError> {
        match self
            .client
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await
        {
            Ok(found) => Ok(Some(to_json(&found, &format!("network {name}"))?)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(source) => Err(api(format!("inspect network {name}"), source)),
        }
    }

    /// Creates a volume; returns its mountpoint on this host.
    pub async fn create_volume(
        &self,
        request: VolumeCreateRequest,
    ) -> Result<Option<std::path::PathBuf>, DockerError> {
        let name = request.name.clone().unwrap_or_default();
        let created = self
            .client
            .create_volume(request)
            .await
            .map_err(|source| api(format!("create volume {name}"), source))?;
        Ok(Some(created.mountpoint.into())
            .filter(|p: &std::path::PathBuf| !p.as_os_str().is_empty()))
    }

    /// Removes a volume (it must not be in use).
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.client
            .remove_volume(name, Some(RemoveVolumeOptionsBuilder::default().build()))
            .await
            .map_err(|source| api(format!("remove volume {name}"), source))
    }

    /// Creates a network; returns its id.
    pub async fn create_network(
        &self,
        request: NetworkCreateRequest,
    ) -> Result<String, DockerError> {
        let name = request.name.clone();
        let created = self
            .client
            .create_network(request)
            .await
            .map_err(|source| api(format!("create network {name}"), source))?;
        Ok(created.id)
    }

    /// Removes a network (no container may be attached).
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        self.client
            .remove_network(name)
            .await
            .map_err(|source| api(format!("remove network {name}"), source))
    }

    /// Creates a container named `name`; returns its id.
    pub async fn create_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, DockerError> {
        let created = self
            .client
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(name).build()),
                body,
            )
            .await
            .map_err(|source| api(format!("create container {name}"), source))?;
        Ok(created.id)
    }

    /// Attaches a created container to one more network.
    pub async fn connect_network(
        &self,
        network: &str,
        request: NetworkConnectRequest,
    ) -> Result<(), DockerError> {
        let container = request.container.clone();
        self.client
            .connect_network(network, request)
            .await
            .map_err(|source| api(format!("connect {container} to network {network}"), source))
    }

    /// Removes a container with its anonymous volumes, killing it when it runs.
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        match self
            .client
            .remove_container(
                id,
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(source) => Err(api(format!("remove container {id}"), source)),
        }
    }
}

/// What a stop did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopOutcome {
    /// The timeout the engine was given: the larger of the container's own and the floor.
    pub timeout_secs: u32,
    /// How long the stop took.
    pub seconds: f64,
    /// The engine killed the container after the timeout: it did not stop on its signal.
    pub killed: bool,
}

/// The stop timeout the engine gets: the container's own (`stop_grace_period`) when longer
/// than the configured floor. A negative own value (`-1`: wait forever) is kept as the
/// longest wait we can ask for.
pub fn effective_stop_timeout(own: Option<i64>, floor_secs: u32) -> u32 {
    let own = own.map_or(0, |o| {
        if o < 0 {
            u32::MAX / 2
        } else {
            u32::try_from(o).unwrap_or(u32::MAX / 2)
        }
    });
    own.max(floor_secs)
}

/// The client timeout of a stop request: the stop's own timeout plus time for the engine to
/// kill and reap, never shorter than the default request timeout.
pub fn stop_client_timeout(timeout_secs: u32) -> Duration {
    Duration::from_secs(u64::from(timeout_secs) + STOP_MARGIN_SECS)
        .max(Duration::from_secs(REQUEST_TIMEOUT_SECS))
}

/// Kill signals the engine recorded during a stop, in order: a SIGKILL after a first signal
/// that was not SIGKILL means the timeout ran out (a `stop_signal: SIGKILL` container is
/// killed on purpose, not after a timeout).
fn killed_after_stop_signal(signals: &[String]) -> bool {
    let is_kill =
        |s: &str| s == "9" || s.eq_ignore_ascii_case("SIGKILL") || s.eq_ignore_ascii_case("KILL");
    signals.first().is_some_and(|first| !is_kill(first))
        && signals.iter().skip(1).any(|s| is_kill(s))
}

/// What to check when a named endpoint does not answer, by its kind.
fn unreachable_hint(endpoint: &DockerHost) -> &'static str {
    match endpoint {
        DockerHost::Unix(_) => {
            "Is dockerd running (`systemctl status docker`), or Podman's API service \
             (`podman.socket`)? May this user use the socket (run with sudo, or join the \
             `docker` group)? To use another engine, set DOCKER_HOST or `[docker] host` in the \
             config."
        }
        DockerHost::Tcp(_) => {
            "Does the engine listen there? An engine that speaks TLS needs DOCKER_TLS_VERIFY=1 \
             and DOCKER_CERT_PATH (or `[docker] tls-verify`, `cert-path`) with ca.pem, cert.pem \
             and key.pem; one that speaks plain HTTP needs TLS off."
        }
        DockerHost::Ssh(_) => {
            "Does `ssh` reach the host non-interactively (key in the agent or ~/.ssh/config, \
             host key known), and can that user run `docker system dial-stdio` there?"
        }
    }
}

/// bollard's error with its causes, so a TLS failure says which certificate was refused.
fn describe(error: &bollard::errors::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// rustls needs one process-wide crypto provider when more than one is compiled in (ring for
/// some backends, aws-lc-rs for the others); bollard's TLS client asks for the default.
fn install_crypto_provider() {
    // Already installed (by an earlier connect) is fine: any provider will do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Docker or Podman (Podman's version names a "Podman Engine" component), and whether it
/// runs rootless: rootless Docker puts `name=rootless` in its security options; Podman's
/// compat API says so only in a field of its own, but a rootless engine's socket belongs to
/// its user, never to root.
async fn identify(
    client: &Docker,
    endpoint: &DockerHost,
) -> Result<Identity, bollard::errors::Error> {
    let version = client.version().await?;
    let podman = version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.to_ascii_lowercase().contains("podman"))
        || version
            .platform
            .as_ref()
            .is_some_and(|p| p.name.to_ascii_lowercase().contains("podman"));
    let info = client.info().await?;
    let rootless =
        info.security_options
            .iter()
            .flatten()
            .any(|o| o.split(',').any(|kv| kv == "name=rootless"))
            || match endpoint {
                DockerHost::Unix(path) => std::fs::metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) != 0),
                DockerHost::Tcp(_) | DockerHost::Ssh(_) => false,
            };
    Ok(Identity {
        kind: if podman {
            EngineKind::Podman
        } else {
            EngineKind::Docker
        },
        version: version.version.unwrap_or_else(|| "unknown".into()),
        rootless,
    })
}

fn api(operation: String, source: bollard::errors::Error) -> DockerError {
    DockerError::Api { operation, source }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<serde_json::Value, DockerError> {
    serde_json::to_value(value).map_err(|e| DockerError::Api {
        operation: format!("encode inspect of {what}"),
        source: bollard::errors::Error::JsonSerdeError { err: e },
    })
}
