//! Restore points: the snapshots of one unit backup, grouped.
//!
//! A backup of a unit writes several snapshots (recipe, networks, one per volume and bind)
//! that share a `backup_id`. A restore point is that group, per host and unit. Warm-pass
//! copies belong to no point. Whether a point is complete is decided by its marker
//! ([`PointStatus`]): `--latest`, `--restore-all` and the wizard use complete points only and
//! say which newer incomplete ones they skipped; naming an incomplete one takes
//! `allow_incomplete`.
//!
//! Choosing one is narrowing down: host, then unit, then point ([`PointSelector`]). Each step
//! that finds nothing says what there is instead ([`PointError`]), so a wrong flag is corrected
//! from the message alone. Asking the user at a step is the caller's business.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::repo::{BackupId, Part, Pass, PointStatus, Scope, SnapshotInfo, SnapshotMeta};
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
    /// The point asked for is incomplete, and nobody allowed that.
    #[error(
        "restore point {id} of unit `{unit}` is incomplete (the backup that wrote it did not \
         save every part: it was killed, interrupted, or a stop, hook or cold pass failed); \
         restore it anyway with --allow-incomplete, or pick a complete one"
    )]
    Incomplete {
        /// The unit.
        unit: String,
        /// The backup id asked for.
        id: String,
    },
    /// The unit has points, none of them complete.
    #[error(
        "unit `{unit}` has no complete restore point; incomplete ones: {} (restore one with \
         --backup-id ID --allow-incomplete)",
        list(incomplete)
    )]
    NoCompletePoint {
        /// The unit.
        unit: String,
        /// Its incomplete points, newest first (at most five).
        incomplete: Vec<String>,
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
    /// (default the newest complete one).
    pub fn select(
        &self,
        host: Option<&str>,
        unit: Option<&str>,
        backup_id: Option<&str>,
        allow_incomplete: bool,
    ) -> Result<&'a RestorePoint, PointError> {
        let host = host.unwrap_or(&self.this_host);
        let Some(unit) = unit else {
            return Err(self.unit_not_named(host));
        };
        let of_unit = self.points(host, unit)?;
        match backup_id {
            Some(id) => find_backup(&of_unit, unit, id, allow_incomplete),
            None => newest(&of_unit, unit, allow_incomplete).map(|n| n.point),
        }
    }
}

/// The point with backup `id` among `of_unit` (the points of `unit`, newest first); an
/// incomplete one only with `allow_incomplete`.
pub fn find_backup<'a>(
    of_unit: &[&'a RestorePoint],
    unit: &str,
    id: &str,
    allow_incomplete: bool,
) -> Result<&'a RestorePoint, PointError> {
    let point = of_unit
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
        })?;
    if point.complete || allow_incomplete {
        Ok(point)
    } else {
        Err(PointError::Incomplete {
            unit: unit.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// The newest point of a unit that may be restored, and the newer ones it passed over.
#[derive(Debug, Clone, Copy)]
pub struct Newest<'a, P> {
    /// The point.
    pub point: P,
    /// Newer incomplete points that were skipped, newest first.
    pub skipped: &'a [P],
}

/// The newest complete point among `of_unit` (the points of `unit`, newest first), or simply
/// the newest with `allow_incomplete`.
pub fn newest<'a, 'p>(
    of_unit: &'a [&'p RestorePoint],
    unit: &str,
    allow_incomplete: bool,
) -> Result<Newest<'a, &'p RestorePoint>, PointError> {
    let index = of_unit
        .iter()
        .position(|p| p.complete || allow_incomplete)
        .ok_or_else(|| PointError::NoCompletePoint {
            unit: unit.to_owned(),
            incomplete: of_unit
                .iter()
                .take(5)
                .map(|p| p.backup_id.to_string())
                .collect(),
        })?;
    Ok(Newest {
        point: of_unit[index],
        skipped: &of_unit[..index],
    })
}

/// The points a user may pick from without `allow_incomplete` (all with it), newest first.
pub fn restorable<'p>(
    of_unit: &[&'p RestorePoint],
    unit: &str,
    allow_incomplete: bool,
) -> Result<Vec<&'p RestorePoint>, PointError> {
    newest(of_unit, unit, allow_incomplete)?;
    Ok(of_unit
        .iter()
        .copied()
        .filter(|p| p.complete || allow_incomplete)
        .collect())
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
    /// Complete, incomplete, or written before completeness was recorded.
    pub status: PointStatus,
    /// Restored without `--allow-incomplete`: complete, or written before markers existed.
    pub complete: bool,
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
    /// Database dumps by container (`kopi-docka.policy=dump`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dumps: BTreeMap<String, PointDump>,
}

/// A database dump of a restore point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointDump {
    /// Its snapshot.
    #[serde(flatten)]
    pub snapshot: PointSnapshot,
    /// The database engine.
    pub engine: crate::unit::DumpEngine,
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
/// configuration, run records) and warm-pass copies belong to no point.
pub fn group(snapshots: &[SnapshotInfo]) -> Vec<RestorePoint> {
    let mut points: BTreeMap<(String, String, BackupId), RestorePoint> = BTreeMap::new();
    let mut metas: BTreeMap<(String, String, BackupId), Vec<&SnapshotMeta>> = BTreeMap::new();
    for info in snapshots {
        let Some(unit) = &info.meta.unit else {
            continue;
        };
        if info.meta.pass == Some(Pass::Warm) {
            continue;
        }
        let key = (
            info.host.clone(),
            unit.name.to_string(),
            info.meta.backup_id.clone(),
        );
        metas.entry(key.clone()).or_default().push(&info.meta);
        let point = points.entry(key).or_insert_with(|| RestorePoint {
            host: info.host.clone(),
            unit: unit.name.to_string(),
            kind: unit.kind,
            backup_id: info.meta.backup_id.clone(),
            time: info.time,
            scope: info.meta.scope,
            status: PointStatus::Unmarked,
            complete: true,
            recipe: None,
            networks: None,
            volumes: BTreeMap::new(),
            binds: BTreeMap::new(),
            dumps: BTreeMap::new(),
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
            Part::Dump { container, engine } => {
                point.dumps.insert(
                    container.clone(),
                    PointDump {
                        snapshot,
                        engine: *engine,
                    },
                );
            }
            Part::DockerConfig | Part::Run | Part::Point { .. } => {}
        }
    }
    for (key, point) in &mut points {
        let status = PointStatus::of(metas.get(key).into_iter().flatten().copied());
        point.status = status;
        point.complete = status.restorable_by_default();
    }
    let mut points: Vec<RestorePoint> = points.into_values().collect();
    points.sort_by(|a, b| (b.time, &b.backup_id).cmp(&(a.time, &a.backup_id)));
    points
}

/// The newest complete point of each (host, unit), from points sorted newest first by
/// [`group`], with the newer incomplete points it skipped; `point` is `None` for a unit
/// without a complete point.
pub fn newest_per_unit(points: Vec<RestorePoint>) -> Vec<UnitNewest> {
    let mut units: Vec<UnitNewest> = Vec::new();
    for point in points {
        let found = units
            .iter()
            .position(|u| u.host == point.host && u.unit == point.unit);
        let index = found.unwrap_or_else(|| {
            units.push(UnitNewest {
                host: point.host.clone(),
                unit: point.unit.clone(),
                point: None,
                skipped: Vec::new(),
            });
            units.len() - 1
        });
        let entry = &mut units[index];
        if entry.point.is_some() {
            continue;
        }
        if point.complete {
            entry.point = Some(point);
        } else {
            entry.skipped.push(point.backup_id);
        }
    }
    units
}

/// A unit's newest complete point, and the newer incomplete ones passed over.
#[derive(Debug, Clone)]
pub struct UnitNewest {
    /// Host that made the backups.
    pub host: String,
    /// Unit name.
    pub unit: String,
    /// The newest complete point, if any.
    pub point: Option<RestorePoint>,
    /// Newer incomplete points, newest first.
    pub skipped: Vec<BackupId>,
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
                pass: None,
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
        assert_eq!(newest[0].point.as_ref().unwrap().backup_id.as_str(), "b2");
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
                .select(Some("h1"), Some("app"), None, false)
                .unwrap()
                .backup_id
                .as_str(),
            "b2"
        );
        let message = |r: Result<&RestorePoint, PointError>| r.unwrap_err().to_string();
        assert_eq!(
            message(selector.select(Some("h3"), Some("app"), None, false)),
            "no restore points from host `h3`; hosts in the repository: h2, h1 (pick one with \
             --from-host HOST)"
        );
        assert_eq!(
            message(selector.select(None, None, None, false)),
            "name the unit with --unit; units with restore points from `h2`: db"
        );
        assert_eq!(
            message(selector.select(None, Some("app"), None, false)),
            "unknown unit `app` on host `h2`; it has restore points from h1: add --from-host; \
             units with restore points there: db"
        );
        assert_eq!(
            message(selector.select(Some("h1"), Some("app"), Some("b9"), false)),
            "unit `app` has no restore point `b9`; the newest are: b2, b1"
        );
    }

    #[test]
    fn incomplete_points_are_skipped_by_default_and_warm_copies_never_grouped() {
        let final_ = |mut s: SnapshotInfo| {
            s.meta.pass = Some(Pass::Final);
            s
        };
        let vol = || Part::Volume { volume: "d".into() };
        let mut warm = snap("w", "h", "app", "b3", vol(), "2026-01-03T00:00:00Z");
        warm.meta.pass = Some(Pass::Warm);
        let snaps = vec![
            final_(snap("a1", "h", "app", "b1", vol(), "2026-01-01T00:00:00Z")),
            final_(snap(
                "a2",
                "h",
                "app",
                "b1",
                Part::Point { parts: 1 },
                "2026-01-01T00:00:01Z",
            )),
            final_(snap(
                "a3",
                "h",
                "app",
                "b2",
                Part::Recipe,
                "2026-01-02T00:00:00Z",
            )),
            warm,
        ];
        let points = group(&snaps);
        assert_eq!(points.len(), 2, "the warm copy makes no point: {points:?}");
        assert_eq!(points[0].status, PointStatus::Incomplete);
        assert!(points[1].complete);
        let selector = PointSelector::new(&points, "h");
        let latest = selector.select(None, Some("app"), None, false).unwrap();
        assert_eq!(latest.backup_id.as_str(), "b1");
        let of_unit = selector.points("h", "app").unwrap();
        let chosen = newest(&of_unit, "app", false).unwrap();
        assert_eq!(chosen.skipped.len(), 1);
        assert_eq!(chosen.skipped[0].backup_id.as_str(), "b2");
        let err = selector
            .select(None, Some("app"), Some("b2"), false)
            .unwrap_err();
        assert!(matches!(err, PointError::Incomplete { .. }), "{err}");
        assert!(selector.select(None, Some("app"), Some("b2"), true).is_ok());
        let newest = newest_per_unit(points.clone());
        assert_eq!(newest[0].point.as_ref().unwrap().backup_id.as_str(), "b1");
        assert_eq!(newest[0].skipped[0].as_str(), "b2");
        // What a user may pick from: the complete points, or all of them when allowed.
        let ids = |v: Vec<&RestorePoint>| -> Vec<String> {
            v.iter().map(|p| p.backup_id.to_string()).collect()
        };
        assert_eq!(ids(restorable(&of_unit, "app", false).unwrap()), ["b1"]);
        assert_eq!(
            ids(restorable(&of_unit, "app", true).unwrap()),
            ["b2", "b1"]
        );
        let only_incomplete: Vec<RestorePoint> = points[..1].to_vec();
        let selector = PointSelector::new(&only_incomplete, "h");
        let err = selector.select(None, Some("app"), None, false).unwrap_err();
        assert!(
            err.to_string()
                .contains("no complete restore point; incomplete ones: b2"),
            "{err}"
        );
        let of_unit = selector.points("h", "app").unwrap();
        let err = restorable(&of_unit, "app", false).unwrap_err();
        assert!(matches!(err, PointError::NoCompletePoint { .. }), "{err}");
        assert_eq!(
            ids(restorable(&of_unit, "app", true).unwrap()),
            ["b2"],
            "with --allow-incomplete"
        );
        let none = PointError::NoVolume {
            backup_id: "b2".into(),
            volume: "data".into(),
            has: Vec::new(),
        };
        assert_eq!(
            none.to_string(),
            "restore point b2 has no volume `data`; it has: none"
        );
    }
}
