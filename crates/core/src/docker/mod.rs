//! The container engine, reached through its HTTP API (bollard), never through the docker CLI.
//!
//! This module owns the connection and the raw reads discovery needs. It hands out bollard's
//! own response types; turning them into our model is `unit`'s job.

pub mod compose;

use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, NetworkConnectRequest, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::models::{ContainerInspectResponse, Volume};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, InspectNetworkOptions,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::config::DockerHost;

/// How long we wait for the engine to answer the first ping.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout handed to bollard, in seconds.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Parallel `inspect` requests during discovery.
const INSPECT_CONCURRENCY: usize = 8;

/// Errors talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Nothing usable answers at the endpoint.
    #[error(
        "cannot reach the container engine at {endpoint}: {reason}\n\
         Is dockerd running (`systemctl status docker`)? May this user use the socket \
         (run with sudo, or join the `docker` group)? To use another engine, set DOCKER_HOST \
         or `[docker] host` in the config."
    )]
    Unreachable {
        /// The endpoint we tried.
        endpoint: DockerHost,
        /// Why it failed, in the engine client's words.
        reason: String,
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
    /// Connects, pings and negotiates the API version.
    pub async fn connect(endpoint: DockerHost) -> Result<Self, DockerError> {
        let unreachable = |reason: String| DockerError::Unreachable {
            endpoint: endpoint.clone(),
            reason,
        };
        let client = match &endpoint {
            DockerHost::Unix(path) => Docker::connect_with_unix(
                &path.to_string_lossy(),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            DockerHost::Tcp(addr) => Docker::connect_with_http(
                &format!("http://{addr}"),
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
        }
        .map_err(|e| unreachable(e.to_string()))?;
        let client = tokio::time::timeout(CONNECT_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
        let api_version = client.client_version().to_string();
        tracing::debug!(%endpoint, %api_version, "connected to the container engine");
        Ok(Self { client, endpoint })
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

    /// Stops a container, killing it after `timeout_secs`. Stopping a stopped one succeeds.
    pub async fn stop(&self, id: &str, timeout_secs: u32) -> Result<(), DockerError> {
        let t = i32::try_from(timeout_secs).unwrap_or(i32::MAX);
        self.client
            .stop_container(
                id,
                Some(StopContainerOptionsBuilder::default().t(t).build()),
            )
            .await
            .map_err(|source| DockerError::Api {
                operation: format!("stop container {id}"),
                source,
            })
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
