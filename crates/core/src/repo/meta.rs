//! Snapshot metadata: built and parsed here and nowhere else.
//!
//! Every snapshot kopi-docka writes carries restic tags (`key=value` strings, readable with
//! `restic snapshots --tag ...`):
//!
//! | tag | when |
//! |---|---|
//! | `kopi-docka` | always (the marker; snapshots without it are never touched) |
//! | `unit=<name>`, `kind=<stack\|standalone>` | unit snapshots |
//! | `type=<recipe\|networks\|volume\|bind\|docker-config\|run>` | always |
//! | `volume=<name>` / `bind=<source>` | volume / bind snapshots |
//! | `backup_id=<id>` | always; shared by all snapshots of one unit backup |
//! | `scope=<minimal\|standard\|full>` | always |
//! | `pass=warm` | a warm-pass copy: taken while the unit ran, never part of a restore point |
//! | `pass=final` | a part of a restore point (recipe, networks, cold volume or bind) |
//! | `type=point`, `parts=<n>` | the point's commit marker, written last (see below) |
//! | `type=dump`, `container=<name>`, `engine=<engine>` | a database dump taken while the container ran (`kopi-docka.policy=dump`): one file |
//!
//! **Completeness.** A unit backup saves its parts, then, only when every part it planned was
//! saved by a successful cold pass, one last small snapshot: the marker (`type=point`), whose
//! `parts` tag says how many parts the point has. A point whose parts carry `pass=final` is
//! complete when its marker is there and the number of its parts matches; anything a crash,
//! a signal, an abandoned cold pass or a failed hook leaves behind is incomplete by
//! construction ([`PointStatus`]). Snapshots written before markers existed carry no `pass`
//! tag: their points count as complete ([`PointStatus::Unmarked`]).
//!
//! The snapshot path is stable per (unit, type, volume or bind), so restic-style parent
//! detection and retention work across runs: `/kopi-docka/<kind>/<unit>/volumes/<volume>`,
//! `/kopi-docka/<kind>/<unit>/binds/<source without leading slash>`,
//! `/kopi-docka/<kind>/<unit>/recipe`, `/kopi-docka/<kind>/<unit>/networks`,
//! `/kopi-docka/<kind>/<unit>/point`, `/kopi-docka/<kind>/<unit>/dumps/<container>`,
//! `/kopi-docka/host/docker-config`,
//! `/kopi-docka/host/runs`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::unit::{UnitKind, UnitName};

/// The marker tag.
pub const MARKER: &str = "kopi-docka";

/// Identifies one backup of one unit: `YYYYMMDDTHHMMSSZ-xxxx` (UTC, sortable by time, with a
/// random suffix so two backups in the same second differ).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup starting at `now`.
    pub fn new(now: jiff::Timestamp, random: u16) -> Self {
        Self(format!("{}-{random:04x}", now.strftime("%Y%m%dT%H%M%SZ")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BackupId {
    type Error = MetaError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(value))
        } else {
            Err(MetaError::Invalid {
                tag: "backup_id",
                value,
            })
        }
    }
}

impl From<BackupId> for String {
    fn from(value: BackupId) -> Self {
        value.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How much of a unit a backup includes; a config value, also written into snapshot tags.
pub use crate::config::Scope;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Part {
    /// Compose files, env files, inspect output, manifest.
    Recipe,
    /// Network definitions.
    Networks,
    /// The engine's configuration (once per run, not per unit).
    DockerConfig,
    /// The report of a whole backup run, so history survives the loss of the host.
    Run,
    /// One named volume.
    Volume {
        /// Volume name.
        volume: String,
    },
    /// One bind mount source.
    Bind {
        /// Host path.
        bind: PathBuf,
    },
    /// A database dump, streamed from the server's own client inside the running container.
    Dump {
        /// The database container.
        container: String,
        /// Its engine.
        engine: crate::unit::DumpEngine,
    },
    /// The commit marker of a restore point, written after all its parts.
    Point {
        /// How many parts (recipe, networks, volumes, binds) the point has.
        parts: u32,
    },
}

impl Part {
    fn type_tag(&self) -> &'static str {
        match self {
            Self::Recipe => "recipe",
            Self::Networks => "networks",
            Self::DockerConfig => "docker-config",
            Self::Run => "run",
            Self::Volume { .. } => "volume",
            Self::Bind { .. } => "bind",
            Self::Point { .. } => "point",
            Self::Dump { .. } => "dump",
        }
    }

    /// True for the parts a restore point is made of (not the marker, not host snapshots).
    pub fn is_point_part(&self) -> bool {
        matches!(
            self,
            Self::Recipe
                | Self::Networks
                | Self::Volume { .. }
                | Self::Bind { .. }
                | Self::Dump { .. }
        )
    }
}

/// Which pass wrote a unit's snapshot (the `pass` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// Taken while the unit ran, as the cold pass's parent: never part of a restore point.
    Warm,
    /// Part of a restore point (or its marker).
    Final,
}

impl Pass {
    fn as_str(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Final => "final",
        }
    }
}

/// Whether a restore point may be restored without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    /// Its marker is there and lists as many parts as it has.
    Complete,
    /// Written by a version with markers, without (a matching) one: a run that was killed,
    /// interrupted, abandoned, or whose stop, hook or cold pass failed.
    Incomplete,
    /// Written before markers existed (no `pass` tag): counted as complete.
    Unmarked,
}

impl PointStatus {
    /// The status of a point made of the snapshots with these metas (warm copies ignored).
    pub fn of<'a>(metas: impl IntoIterator<Item = &'a SnapshotMeta>) -> Self {
        let (mut marked, mut parts, mut planned) = (false, 0_u32, None);
        for meta in metas {
            if meta.pass == Some(Pass::Warm) {
                continue;
            }
            marked |= meta.pass.is_some();
            match meta.part {
                Part::Point { parts: n } => planned = Some(n),
                ref part if part.is_point_part() => parts += 1,
                _ => {}
            }
        }
        match planned {
            _ if !marked => Self::Unmarked,
            Some(n) if n == parts => Self::Complete,
            _ => Self::Incomplete,
        }
    }

    /// Complete, or written before markers existed.
    pub fn restorable_by_default(self) -> bool {
        self != Self::Incomplete
    }
}

/// The unit a snapshot belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitRef {
    /// Unit name.
    pub name: UnitName,
    /// Stack or standalone.
    pub kind: UnitKind,
}

/// Everything kopi-docka records about a snapshot, besides what restic records itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotMeta {
    /// The unit; `None` only for `docker-config` and `run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitRef>,
    /// What it holds.
    #[serde(flatten)]
    pub part: Part,
    /// The unit backup it belongs to.
    pub backup_id: BackupId,
    /// The backup's scope.
    pub scope: Scope,
    /// Which pass wrote it; `None` for host snapshots and for snapshots of earlier versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<Pass>,
}

/// A tag set that claims to be ours but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// A required tag is absent.
    #[error("snapshot tagged `kopi-docka` has no `{0}=` tag")]
    Missing(&'static str),
    /// A name or path a restore could be steered outside its target with.
    #[error(
        "snapshot tag `{tag}={value:?}` is refused: {why}; a restore could be steered outside \
         its target with it (the repository may have been tampered with)"
    )]
    Unsafe {
        /// The tag key.
        tag: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A tag has a value we do not understand.
    #[error("snapshot tag `{tag}={value}` is not valid")]
    Invalid {
        /// The tag key.
        tag: &'static str,
        /// Its value.
        value: String,
    },
}

impl SnapshotMeta {
    /// The restic tags for this snapshot.
    pub fn tags(&self) -> Vec<String> {
        let mut tags = vec![MARKER.to_owned()];
        if let Some(unit) = &self.unit {
            tags.push(format!("unit={}", unit.name));
            tags.push(format!("kind={}", unit.kind));
        }
        tags.push(format!("type={}", self.part.type_tag()));
        match &self.part {
            Part::Volume { volume } => tags.push(format!("volume={volume}")),
            Part::Bind { bind } => tags.push(format!("bind={}", bind.display())),
            Part::Point { parts } => tags.push(format!("parts={parts}")),
            Part::Dump { container, engine } => {
                tags.push(format!("container={container}"));
                tags.push(format!("engine={engine}"));
            }
            Part::Recipe | Part::Networks | Part::DockerConfig | Part::Run => {}
        }
        tags.push(format!("backup_id={}", self.backup_id));
        tags.push(format!("scope={}", self.scope));
        if let Some(pass) = self.pass {
            tags.push(format!("pass={}", pass.as_str()));
        }
        tags
    }

    /// Reads our tags back. `Ok(None)` for snapshots that are not ours (no marker).
    pub fn parse<'a>(tags: impl IntoIterator<Item = &'a str>) -> Result<Option<Self>, MetaError> {
        let mut marker = false;
        let mut values: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        for tag in tags {
            if tag == MARKER {
                marker = true;
            } else if let Some((key, value)) = tag.split_once('=') {
                values.insert(key, value);
            }
        }
        if !marker {
            return Ok(None);
        }
        let get = |key: &'static str| values.get(key).copied().ok_or(MetaError::Missing(key));
        let part = match get("type")? {
            "recipe" => Part::Recipe,
            "networks" => Part::Networks,
            "docker-config" => Part::DockerConfig,
            "run" => Part::Run,
            "volume" => Part::Volume {
                volume: safe_name("volume", get("volume")?)?.to_owned(),
            },
            "bind" => Part::Bind {
                bind: safe_bind(get("bind")?)?,
            },
            "dump" => {
                let engine = get("engine")?;
                Part::Dump {
                    container: safe_name("container", get("container")?)?.to_owned(),
                    engine: crate::unit::DumpEngine::parse(engine).ok_or_else(|| {
                        MetaError::Invalid {
                            tag: "engine",
                            value: engine.to_owned(),
                        }
                    })?,
                }
            }
            "point" => {
                let parts = get("parts")?;
                Part::Point {
                    parts: parts.parse().map_err(|_| MetaError::Invalid {
                        tag: "parts",
                        value: parts.to_owned(),
                    })?,
                }
            }
            other => {
                return Err(MetaError::Invalid {
                    tag: "type",
                    value: other.to_owned(),
                });
            }
        };
        let unit = match (values.get("unit"), values.get("kind")) {
            (Some(name), Some(kind)) => Some(UnitRef {
                name: UnitName::new(safe_name("unit", name)?),
                kind: match *kind {
                    "stack" => UnitKind::Stack,
                    "standalone" => UnitKind::Standalone,
                    other => {
                        return Err(MetaError::Invalid {
                            tag: "kind",
                            value: other.into(),
                        });
                    }
                },
            }),
            (None, None) if matches!(part, Part::DockerConfig | Part::Run) => None,
            (None, _) => return Err(MetaError::Missing("unit")),
            (Some(_), None) => return Err(MetaError::Missing("kind")),
        };
        let scope = get("scope")?;
        let pass = match values.get("pass").copied() {
            None => None,
            Some("warm") => Some(Pass::Warm),
            Some("final") => Some(Pass::Final),
            Some(other) => {
                return Err(MetaError::Invalid {
                    tag: "pass",
                    value: other.to_owned(),
                });
            }
        };
        Ok(Some(Self {
            pass,
            unit,
            part,
            backup_id: BackupId::try_from(get("backup_id")?.to_owned())?,
            scope: Scope::parse(scope).ok_or_else(|| MetaError::Invalid {
                tag: "scope",
                value: scope.to_owned(),
            })?,
        }))
    }

    /// The stable path the snapshot's content is stored under.
    pub fn snapshot_path(&self) -> PathBuf {
        let base = match &self.unit {
            Some(unit) => Path::new("/kopi-docka")
                .join(unit.kind.to_string())
                .join(unit.name.as_str()),
            None => PathBuf::from("/kopi-docka/host"),
        };
        match &self.part {
            Part::Recipe => base.join("recipe"),
            Part::Networks => base.join("networks"),
            Part::DockerConfig => base.join("docker-config"),
            Part::Run => base.join("runs"),
            Part::Point { .. } => base.join("point"),
            Part::Volume { volume } => base.join("volumes").join(volume),
            Part::Dump { container, .. } => base.join("dumps").join(container),
            Part::Bind { bind } => base
                .join("binds")
                .join(bind.strip_prefix("/").unwrap_or(bind)),
        }
    }
}

/// A unit or volume name from a tag: one path component, never `.`, `..`, `/` or NUL (they
/// become directory names under `--target-dir` and the cache).
fn safe_name<'a>(tag: &'static str, value: &'a str) -> Result<&'a str, MetaError> {
    let why = if value.is_empty() {
        Some("it is empty")
    } else if value.contains('\0') {
        Some("it contains a NUL byte")
    } else if value.contains('/') {
        Some("a name must not contain `/`")
    } else if value == "." || value == ".." {
        Some("a name must not be `.` or `..`")
    } else {
        None
    };
    match why {
        Some(why) => Err(MetaError::Unsafe {
            tag,
            value: value.to_owned(),
            why,
        }),
        None => Ok(value),
    }
}

/// A bind source from a tag: an absolute path of plain components (no `..`, no NUL).
fn safe_bind(value: &str) -> Result<PathBuf, MetaError> {
    let path = Path::new(value);
    let why = if value.contains('\0') {
        Some("it contains a NUL byte")
    } else if !path.is_absolute() {
        Some("a bind source must be an absolute path")
    } else if value.split('/').any(|c| c == "..") {
        Some("a bind source must not contain `..`")
    } else if path.parent().is_none() {
        Some("a bind source must not be `/`")
    } else {
        None
    };
    match why {
        Some(why) => Err(MetaError::Unsafe {
            tag: "bind",
            value: value.to_owned(),
            why,
        }),
        None => Ok(path.to_path_buf()),
    }
}

/// Mode, owner and mtime of the backed-up directory itself. rustic_core does not store them
/// for the root of a backup source (measured), and a Postgres data directory (0700, uid 999)
/// is unusable without them, so we keep them in the snapshot description and put them back
/// after a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootMeta {
    /// Permission bits including setuid/setgid/sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the mtime.
    pub mtime_nsec: u32,
}

/// The JSON document kept in a snapshot's description.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Description {
    pub root: RootMeta,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(part: Part) -> SnapshotMeta {
        SnapshotMeta {
            unit: Some(UnitRef {
                name: UnitName::new("nextcloud"),
                kind: UnitKind::Stack,
            }),
            part,
            backup_id: BackupId::new("2026-11-22T03:04:05Z".parse().unwrap(), 0xbeef),
            scope: Scope::Standard,
            pass: None,
        }
    }

    /// Issue 16.8: names and paths in tags that could steer a restore are refused.
    #[test]
    fn unsafe_tag_values_are_refused() {
        let parse = |extra: &[&str]| {
            let mut tags = vec![
                "kopi-docka",
                "kind=stack",
                "backup_id=20261122T030405Z-beef",
                "scope=standard",
            ];
            tags.extend(extra);
            SnapshotMeta::parse(tags)
        };
        for bad in [
            &["unit=../x", "type=recipe"][..],
            &["unit=a/b", "type=recipe"],
            &["unit=..", "type=recipe"],
            &["unit=x", "type=volume", "volume=../../etc"],
            &["unit=x", "type=volume", "volume=a\0b"],
            &["unit=x", "type=bind", "bind=srv/app"],
            &["unit=x", "type=bind", "bind=/srv/../etc"],
            &["unit=x", "type=bind", "bind=/"],
        ] {
            let error = parse(bad).unwrap_err();
            assert!(
                matches!(error, MetaError::Unsafe { .. }),
                "{bad:?}: {error}"
            );
        }
        assert!(
            parse(&["unit=x", "type=bind", "bind=/srv/app..old"])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn tags_round_trip() {
        for part in [
            Part::Recipe,
            Part::Networks,
            Part::Volume {
                volume: "nextcloud_db".into(),
            },
            Part::Bind {
                bind: "/srv/nc, with comma=and equals".into(),
            },
        ] {
            let m = meta(part);
            let tags = m.tags();
            let parsed = SnapshotMeta::parse(tags.iter().map(String::as_str)).unwrap();
            assert_eq!(parsed, Some(m));
        }
        for (part, pass) in [
            (Part::Volume { volume: "v".into() }, Pass::Warm),
            (Part::Recipe, Pass::Final),
            (Part::Point { parts: 4 }, Pass::Final),
        ] {
            let m = SnapshotMeta {
                pass: Some(pass),
                ..meta(part)
            };
            let parsed = SnapshotMeta::parse(m.tags().iter().map(String::as_str)).unwrap();
            assert_eq!(parsed, Some(m));
        }
        let docker = SnapshotMeta {
            unit: None,
            ..meta(Part::DockerConfig)
        };
        let parsed = SnapshotMeta::parse(docker.tags().iter().map(String::as_str)).unwrap();
        assert_eq!(parsed, Some(docker));
    }

    #[test]
    fn tags_and_paths_are_stable() {
        let m = meta(Part::Volume {
            volume: "nextcloud_db".into(),
        });
        assert_eq!(
            m.tags(),
            vec![
                "kopi-docka",
                "unit=nextcloud",
                "kind=stack",
                "type=volume",
                "volume=nextcloud_db",
                "backup_id=20261122T030405Z-beef",
                "scope=standard"
            ]
        );
        assert_eq!(
            m.snapshot_path(),
            Path::new("/kopi-docka/stack/nextcloud/volumes/nextcloud_db")
        );
        let b = meta(Part::Bind {
            bind: "/srv/nc/config".into(),
        });
        assert_eq!(
            b.snapshot_path(),
            Path::new("/kopi-docka/stack/nextcloud/binds/srv/nc/config")
        );
    }

    #[test]
    fn foreign_and_broken_tags() {
        assert_eq!(SnapshotMeta::parse(["daily", "unit=x"]), Ok(None));
        assert_eq!(
            SnapshotMeta::parse(["kopi-docka", "type=volume", "unit=x", "kind=stack"]),
            Err(MetaError::Missing("volume"))
        );
        assert!(SnapshotMeta::parse(["kopi-docka", "type=disk"]).is_err());
    }

    #[test]
    fn a_point_is_complete_only_with_a_matching_marker() {
        let with = |part: Part, pass: Option<Pass>| SnapshotMeta { pass, ..meta(part) };
        let vol = || Part::Volume { volume: "v".into() };
        let fin = Some(Pass::Final);
        let recipe = with(Part::Recipe, fin);
        let volume = with(vol(), fin);
        let warm = with(vol(), Some(Pass::Warm));
        let marker = |n| with(Part::Point { parts: n }, fin);
        let status = |metas: &[&SnapshotMeta]| PointStatus::of(metas.iter().copied());
        assert_eq!(
            status(&[&recipe, &volume, &marker(2)]),
            PointStatus::Complete
        );
        assert_eq!(
            status(&[&recipe, &warm, &marker(2)]),
            PointStatus::Incomplete,
            "a warm copy never stands in for a part"
        );
        assert_eq!(status(&[&recipe, &volume]), PointStatus::Incomplete);
        assert_eq!(status(&[&recipe, &warm]), PointStatus::Incomplete);
        assert_eq!(
            status(&[&recipe, &marker(3), &volume]),
            PointStatus::Incomplete,
            "a part is missing"
        );
        let old = [with(Part::Recipe, None), with(vol(), None)];
        assert_eq!(PointStatus::of(&old), PointStatus::Unmarked);
        assert!(PointStatus::Unmarked.restorable_by_default());
        assert!(!PointStatus::Incomplete.restorable_by_default());
        assert!(
            SnapshotMeta::parse([
                "kopi-docka",
                "type=recipe",
                "unit=x",
                "kind=stack",
                "backup_id=b",
                "scope=minimal",
                "pass=lukewarm"
            ])
            .is_err()
        );
    }

    #[test]
    fn backup_ids_sort_by_time() {
        let a = BackupId::new("2026-01-01T00:00:00Z".parse().unwrap(), 0xffff);
        let b = BackupId::new("2026-01-01T00:00:01Z".parse().unwrap(), 0);
        assert!(a < b);
        assert!(BackupId::try_from("a/b".to_owned()).is_err());
        // Up to 64 letters, digits, `-` and `_`; nothing else, and not empty.
        for ok in ["x".repeat(64), "Ab_9-z".into()] {
            assert_eq!(BackupId::try_from(ok.clone()).unwrap().as_str(), ok);
        }
        for bad in ["x".repeat(65), String::new(), "a b".into(), "a.b".into()] {
            assert_eq!(
                BackupId::try_from(bad.clone()),
                Err(MetaError::Invalid {
                    tag: "backup_id",
                    value: bad
                })
            );
        }
        // In reports and the journal it is a plain string.
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"20260101T000001Z-0000\"");
        assert_eq!(serde_json::from_str::<BackupId>(&json).unwrap(), b);
        assert!(serde_json::from_str::<BackupId>("\"../x\"").is_err());
    }

    #[test]
    fn only_unit_parts_count_towards_a_point() {
        for part in [
            Part::Recipe,
            Part::Networks,
            Part::Volume { volume: "v".into() },
            Part::Bind { bind: "/b".into() },
            Part::Dump {
                container: "db".into(),
                engine: crate::unit::DumpEngine::Postgres,
            },
        ] {
            assert!(part.is_point_part(), "{part:?}");
        }
        for part in [Part::DockerConfig, Part::Run, Part::Point { parts: 1 }] {
            assert!(!part.is_point_part(), "{part:?}");
        }
        // A host snapshot of the same run is not a part of the unit's point.
        let fin = |part| SnapshotMeta {
            pass: Some(Pass::Final),
            ..meta(part)
        };
        let metas = [
            fin(Part::Recipe),
            fin(Part::Run),
            fin(Part::DockerConfig),
            fin(Part::Point { parts: 1 }),
        ];
        assert_eq!(PointStatus::of(&metas), PointStatus::Complete);
        assert!(PointStatus::Complete.restorable_by_default());
    }

    #[test]
    fn unit_tags_are_required_except_for_host_snapshots() {
        let base = ["kopi-docka", "backup_id=b", "scope=standard"];
        let parse = |extra: &[&'static str]| {
            SnapshotMeta::parse(base.iter().chain(extra).copied().collect::<Vec<_>>())
        };
        assert_eq!(parse(&["type=recipe"]), Err(MetaError::Missing("unit")));
        assert_eq!(
            parse(&["type=recipe", "kind=stack"]),
            Err(MetaError::Missing("unit"))
        );
        assert_eq!(
            parse(&["type=recipe", "unit=x"]),
            Err(MetaError::Missing("kind"))
        );
        assert_eq!(
            parse(&["type=recipe", "unit=x", "kind=pod"]),
            Err(MetaError::Invalid {
                tag: "kind",
                value: "pod".into()
            })
        );
        let run = parse(&["type=run"]).unwrap().unwrap();
        assert_eq!((run.unit, run.part), (None, Part::Run));
        assert_eq!(
            parse(&["type=point", "unit=x", "kind=stack", "parts=many"]),
            Err(MetaError::Invalid {
                tag: "parts",
                value: "many".into()
            })
        );
    }
}
