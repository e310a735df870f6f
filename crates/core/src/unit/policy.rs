//! What a backup does with each service: stop it (the default), dump its database while it
//! keeps running, snapshot its data while it keeps running (`snapshot-live`), or leave it
//! alone. Read from container labels, where compose users
//! configure everything else:
//!
//! | label | values |
//! |---|---|
//! | `kopi-docka.policy` | `stop` (default), `dump`, `skip`, `snapshot-live` |
//! | `kopi-docka.dump` | `postgres`, `mariadb`, `mysql`, `redis`, `sqlite`, `mongodb` (default: from the image name) |
//! | `kopi-docka.dump.database` | PostgreSQL: one database, dumped with `pg_dump -Fc` instead of `pg_dumpall` |
//! | `kopi-docka.dump.path` | `SQLite`: the database file inside the container (required) |
//! | `kopi-docka.exclude` | exclude globs for the service's volumes and binds ([`super::service`]) |
//! | `kopi-docka.stop-timeout` | seconds the service gets to stop ([`super::service`]) |
//!
//! The same keys per service in the config (`[units.<name>.services.<service>]`) win over the
//! labels ([`super::service`]).
//!
//! An unknown value is an error, never a silent `stop`: the unit is refused (listed, not
//! backed up) and `units` and `doctor` say why.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Label keys.
pub mod label {
    /// `stop`, `dump`, `skip` or `snapshot-live`.
    pub const POLICY: &str = "kopi-docka.policy";
    /// The dump engine.
    pub const DUMP: &str = "kopi-docka.dump";
    /// PostgreSQL: one database instead of the whole cluster.
    pub const DATABASE: &str = "kopi-docka.dump.database";
    /// `SQLite`: the database file inside the container.
    pub const PATH: &str = "kopi-docka.dump.path";
    /// Exclude globs, comma or newline separated.
    pub const EXCLUDE: &str = "kopi-docka.exclude";
    /// Seconds to stop before a kill.
    pub const STOP_TIMEOUT: &str = "kopi-docka.stop-timeout";
    /// `previous` or `always`: whether a container stopped before the backup is started after.
    pub const RESTORE_STATE: &str = "kopi-docka.restore-state";
}

/// The policy word alone, as the config names it (`policy = "dump"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    /// `stop`.
    Stop,
    /// `dump`.
    Dump,
    /// `skip`.
    Skip,
    /// `snapshot-live`.
    SnapshotLive,
}

impl PolicyKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Dump => "dump",
            Self::Skip => "skip",
            Self::SnapshotLive => "snapshot-live",
        }
    }
}

/// A service's backup policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum Policy {
    /// Stopped for the cold pass, its volumes and binds backed up (the default).
    #[default]
    Stop,
    /// Keeps running; its database is dumped into the restore point.
    Dump(DumpSpec),
    /// Neither stopped nor backed up.
    Skip,
    /// Never stopped: all its mounts frozen by one atomic btrfs snapshot while it runs, read
    /// from the snapshot. Crash-consistent (what a power cut would leave): for crash-safe
    /// services only (PostgreSQL, `SQLite` in WAL mode, ...).
    SnapshotLive,
}

impl Policy {
    /// True when a backup stops this container.
    pub fn stops(&self) -> bool {
        matches!(self, Self::Stop)
    }

    /// True when a backup copies this container's volumes and binds (`stop`, `snapshot-live`).
    pub fn copies_files(&self) -> bool {
        matches!(self, Self::Stop | Self::SnapshotLive)
    }

    /// The dump, for `dump`.
    pub fn dump(&self) -> Option<&DumpSpec> {
        match self {
            Self::Dump(spec) => Some(spec),
            Self::Stop | Self::Skip | Self::SnapshotLive => None,
        }
    }

    /// One word for people (`stop`, `dump postgres (all databases)`, `skip`).
    pub fn describe(&self) -> String {
        match self {
            Self::Stop => "stop".into(),
            Self::Skip => "skip".into(),
            Self::SnapshotLive => "snapshot-live".into(),
            Self::Dump(spec) => format!("dump {} ({})", spec.engine, spec.what()),
        }
    }
}

/// The database server engines a dump can come from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DumpEngine {
    /// PostgreSQL: `pg_dumpall` (or `pg_dump -Fc` of one database).
    Postgres,
    /// `MariaDB`: `mariadb-dump --all-databases`.
    Mariadb,
    /// `MySQL`: `mysqldump --all-databases`.
    Mysql,
    /// Redis: an RDB file from `redis-cli --rdb`.
    Redis,
    /// `SQLite`: `sqlite3 FILE .dump`.
    Sqlite,
    /// `MongoDB`: `mongodump --archive`.
    Mongodb,
}

impl DumpEngine {
    /// Every engine, in the order messages list them.
    pub const ALL: [Self; 6] = [
        Self::Postgres,
        Self::Mariadb,
        Self::Mysql,
        Self::Redis,
        Self::Sqlite,
        Self::Mongodb,
    ];

    /// The label and tag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mariadb => "mariadb",
            Self::Mysql => "mysql",
            Self::Redis => "redis",
            Self::Sqlite => "sqlite",
            Self::Mongodb => "mongodb",
        }
    }

    /// Parses a label or tag value.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == value)
    }

    /// The engine an image name suggests (`postgres:16`, `bitnami/mariadb`, `redis:7`, ...).
    /// Only used when `kopi-docka.policy=dump` is set without `kopi-docka.dump`.
    pub fn from_image(image: &str) -> Option<Self> {
        // The repository's last path component, without tag or digest.
        let name = image.split('@').next().unwrap_or(image);
        let name = name.rsplit('/').next().unwrap_or(name);
        let name = name.split(':').next().unwrap_or(name).to_ascii_lowercase();
        [
            ("postgres", Self::Postgres),
            ("postgis", Self::Postgres),
            ("mariadb", Self::Mariadb),
            ("mysql", Self::Mysql),
            ("redis", Self::Redis),
            ("valkey", Self::Redis),
            ("mongo", Self::Mongodb),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, engine)| engine)
    }

    /// The name of the dump file inside the snapshot and under `--target-dir`.
    pub fn file_name(self, spec: &DumpSpec) -> String {
        match (self, &spec.database) {
            (Self::Postgres, Some(db)) => format!("{db}.pgdump"),
            (Self::Postgres, None) => "pg_dumpall.sql".into(),
            (Self::Mariadb | Self::Mysql, _) => "all-databases.sql".into(),
            (Self::Redis, _) => "dump.rdb".into(),
            (Self::Sqlite, _) => "sqlite.sql".into(),
            (Self::Mongodb, _) => "mongodump.archive".into(),
        }
    }
}

impl fmt::Display for DumpEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to dump from a `dump` service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DumpSpec {
    /// The server engine.
    pub engine: DumpEngine,
    /// PostgreSQL: one database (`pg_dump -Fc`); `None`: the whole cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `SQLite`: the database file inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl DumpSpec {
    /// Which databases, for people.
    pub fn what(&self) -> String {
        match (&self.database, &self.path) {
            (Some(db), _) => format!("database {db}"),
            (None, Some(path)) => format!("file {}", path.display()),
            (None, None) => match self.engine {
                DumpEngine::Redis => "the whole keyspace".into(),
                _ => "all databases".into(),
            },
        }
    }
}

/// The policy a container's labels ask for, or why they cannot be followed.
pub fn from_labels<S: std::hash::BuildHasher>(
    labels: &std::collections::HashMap<String, String, S>,
    image: &str,
) -> Result<Policy, String> {
    let get = |key: &str| labels.get(key).map(|v| v.trim());
    let policy = get(label::POLICY).unwrap_or("stop");
    match policy {
        "stop" | "skip" | "snapshot-live" => {
            if let Some(key) = [label::DUMP, label::DATABASE, label::PATH]
                .into_iter()
                .find(|k| labels.contains_key(*k))
            {
                return Err(format!(
                    "label {key} is set but {} is `{policy}`; set {}=dump to dump this \
                     service, or remove the label",
                    label::POLICY,
                    label::POLICY
                ));
            }
            Ok(match policy {
                "stop" => Policy::Stop,
                "skip" => Policy::Skip,
                _ => Policy::SnapshotLive,
            })
        }
        "dump" => {
            let engine = match get(label::DUMP) {
                Some(value) => DumpEngine::parse(value).ok_or_else(|| {
                    format!(
                        "label {}={value:?} is not a dump engine; use one of {}",
                        label::DUMP,
                        engines()
                    )
                })?,
                None => DumpEngine::from_image(image).ok_or_else(|| {
                    format!(
                        "{}=dump, but the image {image:?} does not say which database it runs; \
                         add the label {} with one of {}",
                        label::POLICY,
                        label::DUMP,
                        engines()
                    )
                })?,
            };
            if engine == DumpEngine::Mongodb {
                // No MongoDB server can be had where kopi-docka is tested: untested dump code
                // is not offered.
                return Err(format!(
                    "mongodb dumps are not supported yet; set {}=stop to back up its files \
                     with the service stopped",
                    label::POLICY
                ));
            }
            let database = get(label::DATABASE).map(str::to_owned);
            if let Some(db) = &database {
                if engine != DumpEngine::Postgres {
                    return Err(format!(
                        "label {} is for PostgreSQL only ({engine} dumps every database)",
                        label::DATABASE
                    ));
                }
                if db.is_empty() || db.contains(['\0', '/']) || db.starts_with('-') {
                    return Err(format!(
                        "label {}={db:?} is not a database name",
                        label::DATABASE
                    ));
                }
            }
            let path = get(label::PATH).map(PathBuf::from);
            match (&path, engine) {
                (None, DumpEngine::Sqlite) => {
                    return Err(format!(
                        "{}=sqlite needs the database file inside the container: add the \
                         label {}=/path/to/file.db",
                        label::DUMP,
                        label::PATH
                    ));
                }
                (Some(p), DumpEngine::Sqlite) if !p.is_absolute() => {
                    return Err(format!(
                        "label {}={} must be an absolute path",
                        label::PATH,
                        p.display()
                    ));
                }
                (Some(_), e) if e != DumpEngine::Sqlite => {
                    return Err(format!("label {} is for SQLite only", label::PATH));
                }
                _ => {}
            }
            Ok(Policy::Dump(DumpSpec {
                engine,
                database,
                path,
            }))
        }
        other => Err(format!(
            "label {}={other:?} is not a policy; use stop, dump, skip or snapshot-live",
            label::POLICY
        )),
    }
}

fn engines() -> String {
    DumpEngine::ALL.map(DumpEngine::as_str).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_is_stop_and_dump_engine_comes_from_label_or_image() {
        assert_eq!(from_labels(&labels(&[]), "nginx"), Ok(Policy::Stop));
        assert_eq!(
            from_labels(&labels(&[(label::POLICY, "skip")]), "x"),
            Ok(Policy::Skip)
        );
        assert_eq!(
            from_labels(&labels(&[(label::POLICY, "snapshot-live")]), "postgres:15"),
            Ok(Policy::SnapshotLive)
        );
        let dump = from_labels(
            &labels(&[(label::POLICY, "dump")]),
            "docker.io/library/postgres:16",
        )
        .unwrap();
        assert_eq!(dump.dump().unwrap().engine, DumpEngine::Postgres);
        let dump = from_labels(
            &labels(&[(label::POLICY, "dump"), (label::DUMP, "mariadb")]),
            "registry.local/db:1",
        )
        .unwrap();
        assert_eq!(dump.dump().unwrap().engine, DumpEngine::Mariadb);
        assert_eq!(
            DumpEngine::from_image("bitnami/redis:7.2@sha256:abc"),
            Some(DumpEngine::Redis)
        );
    }

    #[test]
    fn mongodb_dumps_are_refused_not_silently_untested() {
        for labels in [
            labels(&[(label::POLICY, "dump")]),
            labels(&[(label::POLICY, "dump"), (label::DUMP, "mongodb")]),
        ] {
            let error = from_labels(&labels, "mongo:7").unwrap_err();
            assert!(
                error.contains("mongodb dumps are not supported yet"),
                "{error}"
            );
        }
    }

    #[test]
    fn unknown_values_are_errors_that_name_the_choices() {
        let error = from_labels(&labels(&[(label::POLICY, "dumpp")]), "postgres").unwrap_err();
        assert!(
            error.contains("stop, dump, skip or snapshot-live"),
            "{error}"
        );
        let error = from_labels(
            &labels(&[(label::POLICY, "dump"), (label::DUMP, "oracle")]),
            "x",
        )
        .unwrap_err();
        assert!(error.contains("postgres, mariadb"), "{error}");
        let error = from_labels(&labels(&[(label::POLICY, "dump")]), "myapp:1").unwrap_err();
        assert!(error.contains(label::DUMP), "{error}");
        let error = from_labels(&labels(&[(label::DUMP, "postgres")]), "postgres").unwrap_err();
        assert!(error.contains("is `stop`"), "{error}");
        let error = from_labels(
            &labels(&[(label::POLICY, "dump"), (label::DUMP, "sqlite")]),
            "app",
        )
        .unwrap_err();
        assert!(error.contains(label::PATH), "{error}");
    }
}
