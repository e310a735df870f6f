//! Snapshots of `admin service status` and `write-units`, both renderings, from fixture states.

use kopi_docka_core::history::RunSummary;
use kopi_docka_core::lock::LockState;
use kopi_docka_core::systemd::UnitState;

use super::ServiceStatus;
use crate::render::{assert_renders, fixtures};

fn unit(name: &'static str, active: &str, enabled: &str) -> UnitState {
    UnitState {
        name,
        installed: true,
        active: Some(active.into()),
        enabled: Some(enabled.into()),
        next_run: None,
        result: Some("success".into()),
    }
}

#[test]
fn renders_installed_units() {
    let mut timer = unit("kopi-docka.timer", "active", "enabled");
    timer.next_run = Some(fixtures::time("2026-11-23T03:00:00Z"));
    timer.result = None;
    assert_renders!(
        "service_status",
        &ServiceStatus {
            systemd: true,
            units: vec![
                timer,
                unit("kopi-docka-backup.service", "inactive", "static"),
                unit("kopi-docka.service", "inactive", "disabled"),
            ],
            last_run: Some(RunSummary {
                run_id: "20261122T030000Z-0001".into(),
                started_at: fixtures::time("2026-11-22T03:00:00Z"),
                result: "partial".into(),
            }),
            lock: LockState::Free,
            daemon_lock: LockState::Free,
        }
    );
}

#[test]
fn renders_a_host_without_systemd() {
    let absent = |name| UnitState {
        name,
        installed: false,
        active: None,
        enabled: None,
        next_run: None,
        result: None,
    };
    assert_renders!(
        "service_status_no_systemd",
        &ServiceStatus {
            systemd: false,
            units: vec![
                absent("kopi-docka.timer"),
                absent("kopi-docka-backup.service"),
                absent("kopi-docka.service"),
            ],
            last_run: None,
            lock: LockState::Held,
            daemon_lock: LockState::Held,
        }
    );
}

/// `write-units` into systemd's directory (the text says how to enable them) and elsewhere.
#[test]
fn renders_units_written() {
    use kopi_docka_core::systemd::units::WriteOutcome;

    use super::{UnitFile, UnitsWritten};
    let file = |name: &str, outcome| UnitFile {
        path: format!("/etc/systemd/system/{name}").into(),
        outcome,
    };
    let installed = UnitsWritten {
        files: vec![
            file("kopi-docka.service", WriteOutcome::Created),
            file("kopi-docka.timer", WriteOutcome::Unchanged),
            file("kopi-docka-daemon.service", WriteOutcome::Replaced),
        ],
        installed: true,
        user: false,
    };
    assert_renders!("units_written_installed", &installed);
    // `--user`: the user manager's commands, and lingering.
    let user = UnitsWritten {
        files: vec![
            UnitFile {
                path: "/home/alice/.config/systemd/user/kopi-docka-backup.service".into(),
                outcome: WriteOutcome::Created,
            },
            UnitFile {
                path: "/home/alice/.config/systemd/user/kopi-docka.timer".into(),
                outcome: WriteOutcome::Created,
            },
        ],
        installed: true,
        user: true,
    };
    assert_renders!("units_written_user", &user);
    let elsewhere = UnitsWritten {
        installed: false,
        ..installed
    };
    assert_renders!("units_written_elsewhere", &elsewhere);
}
