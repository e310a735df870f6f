//! A service's backup settings: its `kopi-docka.*` labels merged with
//! `[units.<name>.services.<service>]`, key by key, the config winning.
//!
//! | key | label | config |
//! |---|---|---|
//! | policy, dump engine and options | [`super::policy`] | `policy`, `dump`, `dump-database`, `dump-path` |
//! | exclude globs | `kopi-docka.exclude` (comma or newline separated) | `exclude = [..]` |
//! | stop timeout | `kopi-docka.stop-timeout` (seconds) | `stop-timeout-seconds` |
//! | restore state | `kopi-docka.restore-state` (`previous`, `always`) | the unit's `restore-state` |
//!
//! A value that cannot be followed is an error (the unit is refused, `units` and `doctor` say
//! why), never a silent default.

use std::collections::HashMap;

use crate::config::ServiceConfig;

use super::Policy;
use super::policy::{self, label};

/// What a backup does with one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSettings {
    /// Stop, dump or skip.
    pub policy: Policy,
    /// Exclude globs for every volume and bind it mounts.
    pub exclude: Vec<String>,
    /// Seconds it gets to stop, instead of `[backup] stop-timeout-seconds`.
    pub stop_timeout: Option<u32>,
    /// Its `kopi-docka.restore-state` label: wins over the unit's `restore-state`.
    pub restore_state: Option<crate::config::RestoreState>,
}

/// The settings of a container with `labels` running `image`, with the config's `overrides`.
pub fn resolve<S: std::hash::BuildHasher>(
    labels: &HashMap<String, String, S>,
    image: &str,
    overrides: Option<&ServiceConfig>,
) -> Result<ServiceSettings, String> {
    let Some(config) = overrides else {
        return from_labels(labels, image);
    };
    let mut merged: HashMap<String, String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("kopi-docka."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(kind) = config.policy {
        merged.insert(label::POLICY.into(), kind.as_str().into());
        if kind != policy::PolicyKind::Dump {
            // The config turned dumping off: the labels' dump options no longer apply.
            for key in [label::DUMP, label::DATABASE, label::PATH] {
                merged.remove(key);
            }
        }
    }
    let mut set = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            merged.insert(key.into(), value);
        }
    };
    set(label::DUMP, config.dump.map(|e| e.as_str().into()));
    set(label::DATABASE, config.dump_database.clone());
    set(
        label::PATH,
        config.dump_path.as_ref().map(|p| p.display().to_string()),
    );
    // A key the config sets replaces the label, a bad label value included.
    if config.exclude.is_some() {
        merged.remove(label::EXCLUDE);
    }
    if config.stop_timeout_seconds.is_some() {
        merged.remove(label::STOP_TIMEOUT);
    }
    let dump_keys_set = config.policy.is_some()
        || config.dump.is_some()
        || config.dump_database.is_some()
        || config.dump_path.is_some();
    let mut settings = from_labels(&merged, image).map_err(|e| {
        if dump_keys_set {
            format!("{e} (the labels with the config's [units] services keys applied)")
        } else {
            e
        }
    })?;
    if let Some(exclude) = &config.exclude {
        settings.exclude.clone_from(exclude);
    }
    if let Some(seconds) = config.stop_timeout_seconds {
        settings.stop_timeout = Some(seconds);
    }
    Ok(settings)
}

fn from_labels<S: std::hash::BuildHasher>(
    labels: &HashMap<String, String, S>,
    image: &str,
) -> Result<ServiceSettings, String> {
    let policy = policy::from_labels(labels, image)?;
    let exclude = match labels.get(label::EXCLUDE) {
        Some(value) => split_globs(value)
            .into_iter()
            .map(|glob| {
                crate::repo::check_exclude_glob(&glob)
                    .map(|()| glob)
                    .map_err(|e| format!("label {}: {e}", label::EXCLUDE))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let stop_timeout = labels
        .get(label::STOP_TIMEOUT)
        .map(|value| parse_seconds(value))
        .transpose()?;
    let restore_state = labels
        .get(label::RESTORE_STATE)
        .map(|value| {
            crate::config::RestoreState::parse(value.trim()).ok_or_else(|| {
                format!(
                    "label {}={value:?} is neither \"previous\" nor \"always\"",
                    label::RESTORE_STATE
                )
            })
        })
        .transpose()?;
    Ok(ServiceSettings {
        policy,
        exclude,
        stop_timeout,
        restore_state,
    })
}

/// A label's globs: separated by commas or newlines (compose's `>-` and `|` blocks both work),
/// blanks around each trimmed, empty entries dropped. A glob that needs a comma (`{a,b}`)
/// goes in the config, which takes a list.
pub fn split_globs(value: &str) -> Vec<String> {
    value
        .split([',', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_seconds(value: &str) -> Result<u32, String> {
    let max = crate::config::load::MAX_TIMEOUT_SECONDS;
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            format!(
                "label {}={value:?} is not a number of seconds in 1..={max}",
                label::STOP_TIMEOUT
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::DumpEngine;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn labels_give_excludes_and_stop_timeout() {
        let s = resolve(
            &labels(&[
                (label::EXCLUDE, "cache/**, *.tmp\nnode_modules,"),
                (label::STOP_TIMEOUT, " 90 "),
            ]),
            "app",
            None,
        )
        .unwrap();
        assert_eq!(s.exclude, ["cache/**", "*.tmp", "node_modules"]);
        assert_eq!(s.stop_timeout, Some(90));
        assert_eq!(s.policy, Policy::Stop);
    }

    #[test]
    fn bad_label_values_are_errors() {
        for (key, value, expect) in [
            (label::STOP_TIMEOUT, "30s", "is not a number of seconds"),
            (label::STOP_TIMEOUT, "0", "is not a number of seconds"),
            (label::EXCLUDE, "cache/[abc", "not a valid glob"),
            (label::EXCLUDE, "!keep", "negations"),
            (label::EXCLUDE, "../etc", "leaves the volume"),
            (label::POLICY, "stpo", "is not a policy"),
        ] {
            let error = resolve(&labels(&[(key, value)]), "app", None).unwrap_err();
            assert!(error.contains(expect), "{key}={value}: {error}");
        }
    }

    #[test]
    fn config_wins_key_by_key() {
        let l = labels(&[
            (label::POLICY, "dump"),
            (label::DUMP, "postgres"),
            (label::EXCLUDE, "*.tmp"),
            (label::STOP_TIMEOUT, "5"),
        ]);
        // Only the stop timeout set in the config: the rest stays as labelled.
        let config = ServiceConfig {
            stop_timeout_seconds: Some(120),
            ..ServiceConfig::default()
        };
        let s = resolve(&l, "db", Some(&config)).unwrap();
        assert_eq!(s.stop_timeout, Some(120));
        assert_eq!(s.exclude, ["*.tmp"]);
        assert_eq!(s.policy.dump().unwrap().engine, DumpEngine::Postgres);
        // policy = "stop" drops the labels' dump options instead of refusing them; an empty
        // exclude list drops the label's.
        let config = ServiceConfig {
            policy: Some(policy::PolicyKind::Stop),
            exclude: Some(Vec::new()),
            ..ServiceConfig::default()
        };
        let s = resolve(&l, "db", Some(&config)).unwrap();
        assert_eq!(s.policy, Policy::Stop);
        assert!(s.exclude.is_empty());
        // A config that fixes bad labels.
        let config = ServiceConfig {
            policy: Some(policy::PolicyKind::Skip),
            stop_timeout_seconds: Some(30),
            exclude: Some(vec!["*.log".into()]),
            ..ServiceConfig::default()
        };
        let bad = labels(&[
            (label::POLICY, "stpo"),
            (label::STOP_TIMEOUT, "30s"),
            (label::EXCLUDE, "[oops"),
        ]);
        let s = resolve(&bad, "x", Some(&config)).unwrap();
        assert_eq!(s.policy, Policy::Skip);
        assert_eq!(s.stop_timeout, Some(30));
        assert_eq!(s.exclude, ["*.log"]);
        // Dump from the config alone.
        let config = ServiceConfig {
            policy: Some(policy::PolicyKind::Dump),
            dump: Some(DumpEngine::Mariadb),
            ..ServiceConfig::default()
        };
        let s = resolve(&labels(&[]), "registry.local/db:1", Some(&config)).unwrap();
        assert_eq!(s.policy.dump().unwrap().engine, DumpEngine::Mariadb);
        // snapshot-live from the config, over a label that says stop.
        let config: ServiceConfig = toml::from_str(r#"policy = "snapshot-live""#).unwrap();
        let s = resolve(&labels(&[(label::POLICY, "stop")]), "pg", Some(&config)).unwrap();
        assert_eq!(s.policy, Policy::SnapshotLive);
    }
}
