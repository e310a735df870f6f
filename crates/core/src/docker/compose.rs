//! Compose metadata: the labels compose v1 and v2 put on containers, and the few facts we read
//! from compose files themselves (`depends_on`, `env_file`).
//!
//! Differences we handle:
//! - v1 (docker-compose 1.29) records `config_files` relative to `working_dir`; v2 records
//!   absolute paths.
//! - v2 records `depends_on` in a label; v1 does not, so we read it from the compose files.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

/// Label keys set by docker-compose v1 and `docker compose` v2.
pub mod label {
    /// Project name; its presence makes a container part of a stack.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// Service name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// Project working directory as seen by compose.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// Comma-separated compose files (v1: relative to the working dir; v2: absolute).
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// Comma-separated `--env-file`s (v2 only).
    pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
    /// `True`/`true` for `compose run` one-off containers.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// v2: `svc:condition:restart,...`.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// Replica number within the service.
    pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
}

/// Splits a comma-separated label value into its non-empty items.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses v2's `com.docker.compose.depends_on` label (`db:service_healthy:false,cache:...`)
/// into service names.
pub fn parse_depends_on_label(value: &str) -> Vec<String> {
    split_list(value)
        .into_iter()
        .filter_map(|item| item.split(':').next().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .collect()
}

/// True when the labels mark a `compose run` one-off container.
pub fn is_oneoff(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// What we read from one compose file about one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// Services this one depends on (list or map form of `depends_on`).
    pub depends_on: Vec<String>,
    /// `env_file` entries as written (relative to the compose file's directory).
    pub env_files: Vec<String>,
}

/// A compose file that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("not a valid compose file: {0}")]
pub struct ComposeParseError(#[from] serde_yaml_ng::Error);

/// Reads `services.*.depends_on` and `services.*.env_file` from compose YAML. Everything else
/// in the file is ignored; unknown shapes of those two keys yield nothing rather than an error,
/// because the file is still backed up verbatim.
pub fn parse_services(text: &str) -> Result<BTreeMap<String, ServiceFacts>, ComposeParseError> {
    let doc: Value = serde_yaml_ng::from_str(text)?;
    let mut out = BTreeMap::new();
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return Ok(out);
    };
    for (name, service) in services {
        let Some(name) = name.as_str() else { continue };
        let depends_on = match service.get("depends_on") {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::Mapping(map)) => map
                .keys()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let env_entry = |v: &Value| match v {
            Value::String(path) => Some(path.clone()),
            Value::Mapping(_) => v.get("path").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let env_files = match service.get("env_file") {
            Some(Value::Sequence(items)) => items.iter().filter_map(env_entry).collect(),
            Some(other) => env_entry(other).into_iter().collect(),
            None => Vec::new(),
        };
        out.insert(
            name.to_owned(),
            ServiceFacts {
                depends_on,
                env_files,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_label_v2() {
        assert_eq!(
            parse_depends_on_label("db:service_healthy:false,cache:service_started:true"),
            vec!["db", "cache"]
        );
        assert!(parse_depends_on_label("").is_empty());
    }

    #[test]
    fn config_files_list() {
        assert_eq!(
            split_list("a.yml, b/override.yml,"),
            vec!["a.yml", "b/override.yml"]
        );
    }

    #[test]
    fn services_in_both_forms() {
        let yaml = r"
services:
  web:
    image: x
    depends_on: [db, cache]
    env_file: web.env
  worker:
    depends_on:
      db:
        condition: service_healthy
    env_file:
      - common.env
      - path: ./opt.env
        required: false
  db:
    image: y
";
        let services = parse_services(yaml).unwrap();
        assert_eq!(services["web"].depends_on, vec!["db", "cache"]);
        assert_eq!(services["web"].env_files, vec!["web.env"]);
        assert_eq!(services["worker"].depends_on, vec!["db"]);
        assert_eq!(
            services["worker"].env_files,
            vec!["common.env", "./opt.env"]
        );
        assert_eq!(services["db"], ServiceFacts::default());
    }

    #[test]
    fn oneoff_values() {
        assert!(is_oneoff(Some("True")));
        assert!(is_oneoff(Some("true")));
        assert!(!is_oneoff(Some("False")));
        assert!(!is_oneoff(None));
    }

    #[test]
    fn broken_yaml_is_an_error() {
        assert!(parse_services("services: [unclosed").is_err());
    }
}
