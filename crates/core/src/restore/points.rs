//! Restore points: the snapshots of one unit backup, grouped.
//!
//! A backup of a unit writes several snapshots (recipe, networks, one per volume and bind)
//! that share a `backup_id`. A restore point is that group, per host and unit.
//!
//! Choosing one is narrowing down: host, then unit, then point ([`PointSelector`]). Each step
//! that finds nothing says what there is instead ([`PointError`]), so a wrong flag is corrected
//! from the message alone. Asking the user at a step is the caller's business.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::repo::{BackupId, Part, Scope, SnapshotInfo};
use crate::unit::UnitKind;

/// A restore point or part that was asked for and is not there: a usage error. Each lists
/// what exists.
#[derive(Debug, thiserror::Error)]
pub enum PointError {
    /// No point from the host.
    #[error(
        "no restore points from host `{host}`; hosts in the repository: {} (pick one with \
         --from-host HOST)",
        list(hosts)
    )]
    NoPointsFromHost {
        /// The host asked for.
        host: String,
        /// Hosts that have points.
        hosts: Vec<String>,
    },
    /// No unit named, and nobody to ask.
    #[error(
        "name the unit with --unit; units with restore points from `{host}`: {}",
        list(units)
    )]
    UnitNotNamed {
        /// The host.
        host: String,
        /// Units with points from it.
        units: Vec<String>,
    },
    /// The unit has no point from the host.
    #[error(
        "unknown unit `{unit}` on host `{host}`{}; units with restore points there: {}",
        elsewhere_hint(elsewhere),
        list(units)
    )]
    UnknownUnit {
        /// The unit asked for.
        unit: String,
        /// The host.
        host: String,
        /// Other hosts that have points of this unit.
        elsewhere: Vec<String>,
        /// Units with points from the host.
        units: Vec<String>,
    },
    /// No point with that backup id.
    #[error(
        "unit `{unit}` has no restore point `{id}`; the newest are: {}",
        list(newest)
    )]
    UnknownBackupId {
        /// The unit.
        unit: String,
        /// The backup id asked for.
        id: String,
        /// The newest five backup ids of the unit.
        newest: Vec<String>,
    },
    /// `--volume` names a volume the point does not have.
    #[error(
        "restore point {backup_id} has no volume `{volume}`; it has: {}",
        list(has)
    )]
    NoVolume {
        /// The point.
        backup_id: String,
        /// The volume asked for.
        volume: String,
        /// The point's volumes.
        has: Vec<String>,
    },
    /// `--bind` names a bind the point does not have.
    #[error(
        "restore point {backup_id} has no bind `{bind}`; it has: {}",
        list(has)
    )]
    NoBind {
        /// The point.
        backup_id: String,
        /// The bind asked for.
        bind: String,
        /// The point's binds.
        has: Vec<String>,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn elsewhere_hint(hosts: &[String]) -> String {
    if hosts.is_empty() {
        String::new()
    } else {
        format!(
            "; it has restore points from {}: add --from-host",
            list(hosts)
        )
    }
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Narrows the restore points of a repository down to one: host, unit, point.
#[derive(Debug)]
pub struct PointSelector<'a> {
    points: &'a [RestorePoint],
    hosts: Vec<&'a str>,
    this_host: String,
}

impl<'a> PointSelector<'a> {
    /// Over `points` (newest first, from [`group`]), as seen from `this_host`.
    pub fn new(points: &'a [RestorePoint], this_host: &str) -> Self {
        let mut hosts: Vec<&str> = points.iter().map(|p| p.host.as_str()).collect();
        // This host first: it is the usual answer, and the default of a wizard.
        hosts.sort_by_key(|h| (*h != this_host, *h));
        hosts.dedup();
        Self {
            points,
            hosts,
            this_host: this_host.to_owned(),
        }
    }

    /// Hosts with restore points, this host first.
    pub fn hosts(&self) -> &[&'a str] {
        &self.hosts
    }

    /// Units with restore points from `host`, sorted.
    pub fn units(&self, host: &str) -> Result<Vec<&'a str>, PointError> {
        let mut units: Vec<&str> = self
            .points
            .iter()
            .filter(|p| p.host == host)
            .map(|p| p.unit.as_str())
            .collect();
        if units.is_empty() {
            return Err(PointError::NoPointsFromHost {
                host: host.to_owned(),
                hosts: owned(&self.hosts),
            });
        }
        units.sort_unstable();
        units.dedup();
        Ok(units)
    }

    /// The error for a unit that nobody named: it lists the units from `host`.
    pub fn unit_not_named(&self, host: &str) -> PointError {
        match self.units(host) {
            Ok(units) => PointError::UnitNotNamed {
                host: host.to_owned(),
                units: owned(&units),
            },
            Err(error) => error,
        }
    }

    /// The points of `unit` from `host`, newest first; never empty.
    pub fn points(&self, host: &str, unit: &str) -> Result<Vec<&'a RestorePoint>, PointError> {
        let units = self.units(host)?;
        let of_unit: Vec<&RestorePoint> = self
            .points
            .iter()
            .filter(|p| p.host == host && p.unit == unit)
            .collect();
        if of_unit.is_empty() {
            let elsewhere: Vec<&str> = self
                .hosts
                .iter()
                .copied()
                .filter(|h| self.points.iter().any(|p| p.host == *h && p.unit == unit))
                .collect();
            return Err(PointError::UnknownUnit {
                unit: unit.to_owned(),
                host: host.to_owned(),
                elsewhere: owned(&elsewhere),
                units: owned(&units),
            });
        }
        Ok(of_unit)
    }

    /// Without asking anybody: the host (default this one), the unit (required) and the backup
    /// (default the newest).
    pub fn select(
        &self,
        host: Option<&str>,
        unit: Option<&str>,
        backup_id: Option<&str>,
    ) -> Result<&'a RestorePoint, PointError> {
        let host = host.unwrap_or(&self.this_host);
        let Some(unit) = unit else {
            return Err(self.unit_not_named(host));
        };
        let of_unit = self.points(host, unit)?;
        match backup_id {
            Some(id) => find_backup(&of_unit, unit, id),
            None => Ok(of_unit[0]),
        }
    }
}

/// The point with backup `id` among `of_unit` (the points of `unit`, newest first).
pub fn find_backup<'a>(
    of_unit: &[&'a RestorePoint],
    unit: &str,
    id: &str,
) -> Result<&'a RestorePoint, PointError> {
    of_unit
        .iter()
        .copied()
        .find(|p| p.backup_id.as_str() == id)
        .ok_or_else(|| PointError::UnknownBackupId {
            unit: unit.to_owned(),
            id: id.to_owned(),
            newest: of_unit
                .iter()
                .take(5)
                .map(|p| p.backup_id.to_string())
                .collect(),
        })
}

/// One snapshot inside a restore point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointSnapshot {
    /// Full snapshot id.
    pub id: String,
    /// Bytes of the source when it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Everything one backup of one unit holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestorePoint {
    /// Host that made the backup.
    pub host: String,
    /// Unit name.
    pub unit: String,
    /// Stack or standalone.
    pub kind: UnitKind,
    /// The backup.
    pub backup_id: BackupId,
    /// When its last snapshot was taken (UTC).
    pub time: jiff::Timestamp,
    /// The backup's scope.
    pub scope: Scope,
    /// Compose files, env files, inspect output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipe: Option<PointSnapshot>,
    /// Network definitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<PointSnapshot>,
    /// Named volumes by name.
    pub volumes: BTreeMap<String, PointSnapshot>,
    /// Bind mount sources by host path.
    pub binds: BTreeMap<PathBuf, PointSnapshot>,
}

impl RestorePoint {
    /// Bytes of all its volumes and binds.
    pub fn data_size(&self) -> u64 {
        self.volumes
            .values()
            .chain(self.binds.values())
            .filter_map(|s| s.size)
            .sum()
    }
}

/// Groups snapshots into restore points, newest first. Snapshots without a unit (engine
/// configuration, run records) belong to no point.
pub fn group(snapshots: &[SnapshotInfo]) -> Vec<RestorePoint> {
    let mut points: BTreeMap<(String, String, BackupId), RestorePoint> = BTreeMap::new();
    for info in snapshots {
        let Some(unit) = &info.meta.unit else {
            continue;
        };
        let key = (
            info.host.clone(),
            unit.name.to_string(),
            info.meta.backup_id.clone(),
        );
        let point = points.entry(key).or_insert_with(|| RestorePoint {
            host: info.host.clone(),
            unit: unit.name.to_string(),
            kind: unit.kind,
            backup_id: info.meta.backup_id.clone(),
            time: info.time,
            scope: info.meta.scope,
            recipe: None,
            networks: None,
            volumes: BTreeMap::new(),
            binds: BTreeMap::new(),
        });
        point.time = point.time.max(info.time);
        let snapshot = PointSnapshot {
            id: info.id.clone(),
            size: info.size,
        };
        match &info.meta.part {
            Part::Recipe => point.recipe = Some(snapshot),
            Part::Networks => point.networks = Some(snapshot),
            Part::Volume { volume } => {
                point.volumes.insert(volume.clone(), snapshot);
            }
            Part::Bind { bind } => {
                point.binds.insert(bind.clone(), snapshot);
            }
            Part::DockerConfig | Part::Run => {}
        }
    }
    let mut points: Vec<RestorePoint> = points.into_values().collect();
    points.sort_by(|a, b| (b.time, &b.backup_id).cmp(&(a.time, &a.backup_id)));
    points
}

/// The newest point of each (host, unit), from points sorted newest first by [`group`].
pub fn newest_per_unit(points: Vec<RestorePoint>) -> Vec<RestorePoint> {
    let mut seen = std::collections::BTreeSet::new();
    points
        .into_iter()
        .filter(|p| seen.insert((p.host.clone(), p.unit.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{SnapshotMeta, UnitRef};
    use crate::unit::UnitName;

    fn snap(
        id: &str,
        host: &str,
        unit: &str,
        backup: &str,
        part: Part,
        time: &str,
    ) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            time: time.parse().unwrap(),
            host: host.into(),
            meta: SnapshotMeta {
                unit: Some(UnitRef {
                    name: UnitName::new(unit),
                    kind: UnitKind::Stack,
                }),
                part,
                backup_id: BackupId::try_from(backup.to_owned()).unwrap(),
                scope: Scope::Standard,
            },
            path: String::new(),
            size: Some(10),
            summary: None,
        }
    }

    #[test]
    fn groups_by_host_unit_and_backup_newest_first() {
        let vol = |v: &str| Part::Volume { volume: v.into() };
        let snaps = vec![
            snap(
                "a1",
                "h1",
                "app",
                "b1",
                Part::Recipe,
                "2026-01-01T00:00:00Z",
            ),
            snap("a2", "h1", "app", "b1", vol("data"), "2026-01-01T00:00:05Z"),
            snap("a3", "h1", "app", "b2", vol("data"), "2026-01-02T00:00:00Z"),
            snap("a4", "h2", "app", "b1", vol("data"), "2026-01-01T00:00:00Z"),
            snap(
                "a5",
                "h1",
                "app",
                "b1",
                Part::Bind {
                    bind: "/srv/x".into(),
                },
                "2026-01-01T00:00:06Z",
            ),
        ];
        let points = group(&snaps);
        assert_eq!(points.len(), 3);
        assert_eq!(points[0].backup_id.as_str(), "b2");
        let b1 = points
            .iter()
            .find(|p| p.host == "h1" && p.backup_id.as_str() == "b1")
            .unwrap();
        assert_eq!(b1.recipe.as_ref().unwrap().id, "a1");
        assert_eq!(b1.volumes["data"].id, "a2");
        assert_eq!(b1.binds[&PathBuf::from("/srv/x")].id, "a5");
        assert_eq!(b1.time, "2026-01-01T00:00:06Z".parse().unwrap());
        assert_eq!(b1.data_size(), 20);
        let newest = newest_per_unit(points);
        assert_eq!(newest.len(), 2, "one per host");
        assert_eq!(newest[0].backup_id.as_str(), "b2");
    }

    #[test]
    fn selection_errors_list_what_exists() {
        let vol = |v: &str| Part::Volume { volume: v.into() };
        let snaps = vec![
            snap("a1", "h1", "app", "b1", vol("d"), "2026-01-01T00:00:00Z"),
            snap("a2", "h1", "app", "b2", vol("d"), "2026-01-02T00:00:00Z"),
            snap("a3", "h2", "db", "b3", vol("d"), "2026-01-01T00:00:00Z"),
        ];
        let points = group(&snaps);
        let selector = PointSelector::new(&points, "h2");
        assert_eq!(selector.hosts(), ["h2", "h1"]);
        assert_eq!(
            selector
                .select(Some("h1"), Some("app"), None)
                .unwrap()
                .backup_id
                .as_str(),
            "b2"
        );
        let message = |r: Result<&RestorePoint, PointError>| r.unwrap_err().to_string();
        assert_eq!(
            message(selector.select(Some("h3"), Some("app"), None)),
            "no restore points from host `h3`; hosts in the repository: h2, h1 (pick one with \
             --from-host HOST)"
        );
        assert_eq!(
            message(selector.select(None, None, None)),
            "name the unit with --unit; units with restore points from `h2`: db"
        );
        assert_eq!(
            message(selector.select(None, Some("app"), None)),
            "unknown unit `app` on host `h2`; it has restore points from h1: add --from-host; \
             units with restore points there: db"
        );
        assert_eq!(
            message(selector.select(Some("h1"), Some("app"), Some("b9"))),
            "unit `app` has no restore point `b9`; the newest are: b2, b1"
        );
    }
}
