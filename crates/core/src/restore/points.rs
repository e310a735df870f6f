//! Restore points: the snapshots of one unit backup, grouped.
//!
//! A backup of a unit writes several snapshots (recipe, networks, one per volume and bind)
//! that share a `backup_id`. A restore point is that group, per host and unit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::repo::{BackupId, Part, Scope, SnapshotInfo};
use crate::unit::UnitKind;

/// One snapshot inside a restore point.
#[derive(Debug, Clone, Serialize)]
pub struct PointSnapshot {
    /// Full snapshot id.
    pub id: String,
    /// Bytes of the source when it was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// Everything one backup of one unit holds.
#[derive(Debug, Clone, Serialize)]
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
}
