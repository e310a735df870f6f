//! Networks: recreate missing ones with every attribute, report the ones that differ.
//!
//! Never stops a container: an existing network that differs is recreated only when asked and
//! only when no container is attached to it (a shared proxy network of other stacks stays).

use std::collections::BTreeMap;

use bollard::models::NetworkCreateRequest;
use serde::Serialize;
use serde_json::Value;

use super::RestoreError;
use crate::docker::Engine;

/// What happened to one network.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum NetworkAction {
    /// It did not exist and was created.
    Created,
    /// It exists with the recorded configuration.
    Unchanged,
    /// It exists with another configuration and was kept.
    Differs {
        /// What differs.
        differences: Vec<String>,
    },
    /// It existed with another configuration and was recreated.
    Recreated {
        /// What differed.
        differences: Vec<String>,
    },
}

/// A network outcome.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkOutcome {
    /// Network name.
    pub name: String,
    /// What was done.
    #[serde(flatten)]
    pub action: NetworkAction,
}

/// The recorded network documents of a `networks` snapshot, read through a scratch copy under
/// `work_dir/name` (removed again).
pub async fn read_recorded(
    repo: &crate::repo::Repo,
    snapshot: &str,
    work_dir: &std::path::Path,
    name: &str,
) -> Result<Vec<Value>, RestoreError> {
    let dir = work_dir.join(name);
    super::data::remove_any(&dir)?;
    repo.restore(
        snapshot.to_owned(),
        dir.clone(),
        crate::repo::RestoreMode::EmptyOnly,
    )
    .await?;
    let path = dir.join("networks.json");
    let text = std::fs::read(&path).map_err(RestoreError::io(&path))?;
    super::data::remove_any(&dir)?;
    serde_json::from_slice(&text).map_err(|e| RestoreError::Recipe {
        path,
        reason: e.to_string(),
    })
}

/// The attributes we compare and recreate, from an inspect document.
fn attributes(doc: &Value) -> BTreeMap<&'static str, Value> {
    let get = |p: &str| doc.pointer(p).cloned().unwrap_or(Value::Null);
    let non_empty = |v: Value| match v {
        Value::Object(m) if m.is_empty() => Value::Null,
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        Value::Bool(false) => Value::Null,
        other => other,
    };
    let mut out = BTreeMap::new();
    out.insert("driver", non_empty(get("/Driver")));
    out.insert("internal", non_empty(get("/Internal")));
    out.insert("attachable", non_empty(get("/Attachable")));
    out.insert("ipv6", non_empty(get("/EnableIPv6")));
    out.insert("labels", non_empty(get("/Labels")));
    out.insert("options", non_empty(get("/Options")));
    out.insert("ipam driver", non_empty(get("/IPAM/Driver")));
    out.insert("ipam options", non_empty(get("/IPAM/Options")));
    out.insert("ipam config", non_empty(get("/IPAM/Config")));
    out
}

/// The attributes of `existing` that differ from `recorded`, described.
pub fn differences(recorded: &Value, existing: &Value) -> Vec<String> {
    let (a, b) = (attributes(recorded), attributes(existing));
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: recorded {v}, found {}",
                b.get(*k).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

/// The create request that rebuilds the recorded network under `name`.
pub fn create_request(recorded: &Value, name: &str) -> Result<NetworkCreateRequest, RestoreError> {
    let mut doc = recorded.clone();
    if let Some(obj) = doc.as_object_mut() {
        // Engine-assigned or swarm-only fields a create must not carry.
        for key in [
            "Id",
            "Created",
            "Containers",
            "Peers",
            "Services",
            "ConfigFrom",
            "Status",
        ] {
            obj.remove(key);
        }
        obj.insert("Name".into(), Value::String(name.to_owned()));
    }
    serde_json::from_value(doc).map_err(|e| RestoreError::Recipe {
        path: "networks.json".into(),
        reason: format!("network {name}: {e}"),
    })
}

/// Creates the recorded networks that are missing; reports (or, with `recreate`, recreates
/// when nothing is attached) the ones that differ.
pub async fn restore(
    engine: &Engine,
    recorded: &[Value],
    recreate: bool,
) -> Result<Vec<NetworkOutcome>, RestoreError> {
    let mut outcomes = Vec::new();
    for doc in recorded {
        let Some(name) = doc.get("Name").and_then(Value::as_str) else {
            continue;
        };
        let action = match engine.find_network_json(name).await? {
            None => {
                create(engine, doc, name).await?;
                NetworkAction::Created
            }
            Some(existing) => {
                let differences = differences(doc, &existing);
                let attached = existing
                    .get("Containers")
                    .and_then(Value::as_object)
                    .is_some_and(|c| !c.is_empty());
                if differences.is_empty() {
                    NetworkAction::Unchanged
                } else if recreate && !attached {
                    engine.remove_network(name).await?;
                    create(engine, doc, name).await?;
                    NetworkAction::Recreated { differences }
                } else {
                    if recreate {
                        tracing::warn!(network = name, "containers are attached: not recreated");
                    }
                    NetworkAction::Differs { differences }
                }
            }
        };
        outcomes.push(NetworkOutcome {
            name: name.to_owned(),
            action,
        });
    }
    Ok(outcomes)
}

/// Creates `name` from its recorded document. When its recorded subnet is taken on this host
/// (another network got it first), the engine picks one and we say so.
pub async fn create(engine: &Engine, recorded: &Value, name: &str) -> Result<(), RestoreError> {
    let request = create_request(recorded, name)?;
    match engine.create_network(request.clone()).await {
        Ok(_) => Ok(()),
        Err(error) if error.to_string().contains("overlap") => {
            tracing::warn!(
                network = name,
                "its recorded subnet overlaps a network on this host; created with a subnet \
                 the engine chose"
            );
            let mut request = request;
            if let Some(ipam) = &mut request.ipam {
                ipam.config = None;
            }
            engine.create_network(request).await?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net() -> Value {
        json!({
            "Name": "app_backend", "Id": "abc", "Driver": "bridge", "Scope": "local",
            "EnableIPv6": false, "Internal": true, "Attachable": false,
            "IPAM": {"Driver": "default", "Options": null,
                     "Config": [{"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]},
            "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
            "Containers": {}, "Options": {"com.docker.network.bridge.name": "br-app"},
            "Labels": {"com.docker.compose.network": "backend"}
        })
    }

    #[test]
    fn create_request_carries_every_attribute() {
        let req = create_request(&net(), "app_backend").unwrap();
        assert_eq!(req.name, "app_backend");
        assert_eq!(req.driver.as_deref(), Some("bridge"));
        assert_eq!(req.internal, Some(true));
        let ipam = req.ipam.unwrap();
        assert_eq!(
            ipam.config.unwrap()[0].subnet.as_deref(),
            Some("172.30.0.0/16")
        );
        assert_eq!(req.labels.unwrap()["com.docker.compose.network"], "backend");
        assert_eq!(
            req.options.unwrap()["com.docker.network.bridge.name"],
            "br-app"
        );
        assert!(req.config_from.is_none());
    }

    #[test]
    fn differences_ignore_ids_and_name_what_changed() {
        let mut other = net();
        other["Id"] = json!("zzz");
        other["Containers"] = json!({"x": {}});
        assert!(differences(&net(), &other).is_empty());
        other["Internal"] = json!(false);
        other["Labels"] = json!({});
        let d = differences(&net(), &other);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("internal:")));
        assert!(d.iter().any(|l| l.starts_with("labels:")));
    }
}
