//! Fixture data for the renderers' snapshot tests: one small installation (a compose stack
//! `nextcloud` and a standalone `portainer` on host `pve-01`) described as the core values the
//! commands render. Built by hand, so the tests need no Docker and no repository.

use std::path::PathBuf;

use kopi_docka_core::fs_snapshot::{Filesystem, FsSupport, Method};
use kopi_docka_core::repo::{
    BackupId, BackupSummary, Part, Scope, SnapshotInfo, SnapshotMeta, UnitRef,
};
use kopi_docka_core::unit::{
    BindMount, ComposeProject, Container, ContainerState, Coverage, CoverageEntry, CoverageKind,
    CoverageReason, CoverageStatus, CoverageSummary, Health, Policy, ProjectFile, Unit, UnitBind,
    UnitKind, UnitName, UnitVolume, Verdict, VolumeMount,
};

/// The host every fixture was made on.
pub const HOST: &str = "pve-01";

/// A fixed UTC time: `"2026-11-22T03:00:00Z"`.
pub fn time(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

/// The backup id of a backup started at `text`.
pub fn backup_id(text: &str, random: u16) -> BackupId {
    BackupId::new(time(text), random)
}

fn entry(kind: CoverageKind, identifier: &str, verdict: Verdict) -> CoverageEntry {
    let detail = verdict.reason.as_ref().map(ToString::to_string);
    CoverageEntry {
        kind,
        identifier: identifier.into(),
        verdict,
        detail,
        filesystem: None,
        exclude: Vec::new(),
    }
}

/// A btrfs mount the cold pass can snapshot.
pub fn btrfs() -> FsSupport {
    FsSupport {
        filesystem: Filesystem::Btrfs,
        method: Some(Method::BtrfsSnapshot),
        reason: None,
    }
}

/// An ext4 mount, read while stopped.
pub fn ext4() -> FsSupport {
    FsSupport {
        filesystem: Filesystem::Ext4,
        method: None,
        reason: Some("ext4 cannot snapshot or clone files".into()),
    }
}

fn coverage(entries: Vec<CoverageEntry>) -> Coverage {
    let mut summary = CoverageSummary::default();
    for e in &entries {
        match e.verdict.status {
            CoverageStatus::BackedUp => summary.backed_up += 1,
            CoverageStatus::Skipped => summary.skipped += 1,
            CoverageStatus::NotProtected => summary.not_protected += 1,
        }
    }
    Coverage {
        has_gaps: summary.not_protected > 0,
        entries,
        summary,
    }
}

fn container(name: &str, service: Option<&str>, image: &str, state: ContainerState) -> Container {
    Container {
        id: format!("{:0<64}", name.len()),
        name: name.into(),
        service: service.map(Into::into),
        image: image.into(),
        state,
        health: None,
        restart_policy: "unless-stopped".into(),
        depends_on: Vec::new(),
        volumes: Vec::new(),
        binds: Vec::new(),
        tmpfs: Vec::new(),
        networks: Vec::new(),
        policy: Policy::Stop,
        exclude: Vec::new(),
        stop_timeout: None,
        restore_state: None,
        systemd: None,
        auto_remove: false,
    }
}

fn project_file(path: &str, present: bool) -> ProjectFile {
    ProjectFile {
        path: path.into(),
        present,
        recorded_as: None,
        resolved_via: None,
        refused: None,
    }
}

/// The two units: a stack with a gap (a missing bind source) and a standalone container whose
/// docker socket is skipped.
pub fn units() -> Vec<Unit> {
    vec![nextcloud(), portainer()]
}

fn volume(name: &str, used_by: &str) -> UnitVolume {
    UnitVolume {
        name: name.into(),
        driver: Some("local".into()),
        mountpoint: Some(PathBuf::from(format!(
            "/var/lib/docker/volumes/{name}/_data"
        ))),
        device: None,
        used_by: vec![used_by.into()],
        verdict: Verdict::BACKED_UP,
        filesystem: Some(btrfs()),
        exclude: Vec::new(),
    }
}

fn nextcloud_project() -> ComposeProject {
    ComposeProject {
        working_dir: Some("/opt/stacks/nextcloud".into()),
        compose_files: vec![project_file("/opt/stacks/nextcloud/compose.yaml", true)],
        env_files: vec![project_file("/opt/stacks/nextcloud/.env", true)],
    }
}

fn nextcloud() -> Unit {
    let mut app = container(
        "nextcloud-app-1",
        Some("app"),
        "nextcloud:29",
        ContainerState::Running,
    );
    app.health = Some(Health::Healthy);
    app.depends_on = vec!["db".into()];
    app.volumes = vec![VolumeMount {
        name: "nextcloud_html".into(),
        destination: "/var/www/html".into(),
        read_only: false,
    }];
    app.binds = vec![BindMount {
        source: "/srv/nextcloud/config".into(),
        destination: "/var/www/html/config".into(),
        read_only: false,
    }];
    app.tmpfs = vec!["/tmp".into()];
    app.exclude = vec!["*.part".into()];
    app.stop_timeout = Some(120);
    app.networks = vec!["nextcloud_default".into()];
    let mut db = container(
        "nextcloud-db-1",
        Some("db"),
        "postgres:16",
        ContainerState::Running,
    );
    db.volumes = vec![VolumeMount {
        name: "nextcloud_db".into(),
        destination: "/var/lib/postgresql/data".into(),
        read_only: false,
    }];
    db.binds = vec![BindMount {
        source: "/srv/nextcloud/initdb".into(),
        destination: "/docker-entrypoint-initdb.d".into(),
        read_only: true,
    }];
    db.networks = vec!["nextcloud_default".into()];
    Unit {
        name: UnitName::new("nextcloud"),
        kind: UnitKind::Stack,
        project: Some(nextcloud_project()),
        containers: vec![db, app],
        volumes: vec![
            volume("nextcloud_db", "nextcloud-db-1"),
            // `[units.nextcloud.volumes.nextcloud_html] exclude` and the app's label.
            UnitVolume {
                exclude: vec!["data/appdata_*/preview/**".into(), "*.part".into()],
                ..volume("nextcloud_html", "nextcloud-app-1")
            },
        ],
        binds: vec![
            UnitBind {
                source: "/srv/nextcloud/config".into(),
                destinations: vec!["/var/www/html/config".into()],
                used_by: vec!["nextcloud-app-1".into()],
                read_only: false,
                is_file: false,
                verdict: Verdict::BACKED_UP,
                filesystem: Some(ext4()),
                exclude: vec!["*.part".into()],
            },
            UnitBind {
                source: "/srv/nextcloud/initdb".into(),
                destinations: vec!["/docker-entrypoint-initdb.d".into()],
                used_by: vec!["nextcloud-db-1".into()],
                read_only: true,
                is_file: false,
                verdict: Verdict::not_protected(CoverageReason::Missing),
                filesystem: None,
                exclude: Vec::new(),
            },
        ],
        networks: vec!["nextcloud_default".into()],
        start_order: vec!["nextcloud-db-1".into(), "nextcloud-app-1".into()],
        refused: None,
        policy_errors: Vec::new(),
        coverage: coverage(vec![
            entry(CoverageKind::Volume, "nextcloud_db", Verdict::BACKED_UP),
            CoverageEntry {
                exclude: vec!["data/appdata_*/preview/**".into(), "*.part".into()],
                ..entry(CoverageKind::Volume, "nextcloud_html", Verdict::BACKED_UP)
            },
            CoverageEntry {
                exclude: vec!["*.part".into()],
                ..entry(
                    CoverageKind::Bind,
                    "/srv/nextcloud/config",
                    Verdict::BACKED_UP,
                )
            },
            entry(
                CoverageKind::Bind,
                "/srv/nextcloud/initdb",
                Verdict::not_protected(CoverageReason::Missing),
            ),
            entry(
                CoverageKind::Tmpfs,
                "nextcloud-app-1:/tmp",
                Verdict::skipped(CoverageReason::Tmpfs),
            ),
            entry(
                CoverageKind::ComposeFile,
                "/opt/stacks/nextcloud/compose.yaml",
                Verdict::BACKED_UP,
            ),
            entry(
                CoverageKind::EnvFile,
                "/opt/stacks/nextcloud/.env",
                Verdict::BACKED_UP,
            ),
        ]),
    }
}

fn portainer() -> Unit {
    let mut portainer_container = container(
        "portainer",
        None,
        "portainer/portainer-ce:2.21",
        ContainerState::Exited,
    );
    portainer_container.binds = vec![BindMount {
        source: "/var/run/docker.sock".into(),
        destination: "/var/run/docker.sock".into(),
        read_only: false,
    }];
    portainer_container.volumes = vec![VolumeMount {
        name: "portainer_data".into(),
        destination: "/data".into(),
        read_only: false,
    }];
    portainer_container.networks = vec!["bridge".into()];
    // Run by a Quadlet unit (`PODMAN_SYSTEMD_UNIT`): stopped and started through it.
    portainer_container.systemd = Some(kopi_docka_core::systemd::control::Service {
        unit: "portainer.service".into(),
        user: None,
        configured: false,
    });
    portainer_container.auto_remove = true;
    Unit {
        name: UnitName::new("portainer"),
        kind: UnitKind::Standalone,
        project: None,
        containers: vec![portainer_container],
        volumes: vec![volume("portainer_data", "portainer")],
        binds: vec![UnitBind {
            source: "/var/run/docker.sock".into(),
            destinations: vec!["/var/run/docker.sock".into()],
            used_by: vec!["portainer".into()],
            read_only: false,
            is_file: true,
            verdict: Verdict::skipped(CoverageReason::Socket),
            filesystem: None,
            exclude: Vec::new(),
        }],
        networks: vec!["bridge".into()],
        start_order: vec!["portainer".into()],
        refused: None,
        policy_errors: Vec::new(),
        coverage: coverage(vec![
            entry(CoverageKind::Volume, "portainer_data", Verdict::BACKED_UP),
            entry(
                CoverageKind::Bind,
                "/var/run/docker.sock",
                Verdict::skipped(CoverageReason::Socket),
            ),
        ]),
    }
}

fn snapshot(
    id: &str,
    at: &str,
    unit: Option<(&str, UnitKind)>,
    part: Part,
    backup_id: &BackupId,
    size: Option<u64>,
) -> SnapshotInfo {
    SnapshotInfo {
        id: format!("{id:0<64}"),
        time: time(at),
        host: HOST.into(),
        meta: SnapshotMeta {
            unit: unit.map(|(name, kind)| UnitRef {
                name: UnitName::new(name),
                kind,
            }),
            part,
            backup_id: backup_id.clone(),
            scope: Scope::Standard,
            pass: None,
        },
        path: "/kopi-docka".into(),
        size,
        summary: size.map(|bytes| BackupSummary {
            files_new: 12,
            files_changed: 3,
            files_unmodified: 1480,
            bytes_total: bytes,
            bytes_added: bytes / 10,
            bytes_added_packed: bytes / 12,
        }),
    }
}

/// The repository's kopi-docka snapshots, newest first (as `snapshots` lists them): two
/// backups of `nextcloud`, one of `portainer`, and a run report.
pub fn snapshots() -> Vec<SnapshotInfo> {
    let old = backup_id("2026-11-21T03:00:00Z", 0x1a2b);
    let new = backup_id("2026-11-22T03:00:00Z", 0x3c4d);
    let portainer = backup_id("2026-11-22T03:02:10Z", 0x5e6f);
    let run = backup_id("2026-11-22T03:00:00Z", 0x0001);
    let nc = Some(("nextcloud", UnitKind::Stack));
    let pt = Some(("portainer", UnitKind::Standalone));
    vec![
        snapshot(
            "a7",
            "2026-11-22T03:02:40Z",
            None,
            Part::Run,
            &run,
            Some(2_310),
        ),
        snapshot(
            "a6",
            "2026-11-22T03:02:12Z",
            pt,
            Part::Volume {
                volume: "portainer_data".into(),
            },
            &portainer,
            Some(4_520_000),
        ),
        snapshot(
            "a5",
            "2026-11-22T03:00:31Z",
            nc,
            Part::Bind {
                bind: "/srv/nextcloud/config".into(),
            },
            &new,
            Some(48_213),
        ),
        snapshot(
            "a4",
            "2026-11-22T03:00:30Z",
            nc,
            Part::Volume {
                volume: "nextcloud_html".into(),
            },
            &new,
            Some(1_288_490_188),
        ),
        snapshot(
            "a3",
            "2026-11-22T03:00:22Z",
            nc,
            Part::Volume {
                volume: "nextcloud_db".into(),
            },
            &new,
            Some(73_400_320),
        ),
        snapshot(
            "a2",
            "2026-11-22T03:00:05Z",
            nc,
            Part::Networks,
            &new,
            Some(1_024),
        ),
        snapshot(
            "a1",
            "2026-11-22T03:00:04Z",
            nc,
            Part::Recipe,
            &new,
            Some(18_432),
        ),
        snapshot(
            "b3",
            "2026-11-21T03:00:30Z",
            nc,
            Part::Volume {
                volume: "nextcloud_html".into(),
            },
            &old,
            Some(1_288_000_000),
        ),
        snapshot(
            "b2",
            "2026-11-21T03:00:22Z",
            nc,
            Part::Volume {
                volume: "nextcloud_db".into(),
            },
            &old,
            None,
        ),
        snapshot(
            "b1",
            "2026-11-21T03:00:04Z",
            nc,
            Part::Recipe,
            &old,
            Some(18_432),
        ),
    ]
}
