//! Real rootful Podman through its Docker-compatible API: `units` names the engine, a
//! podman-compose stack is one unit, and it round-trips: back up, `down -v`, restore, and
//! the restore recreates it with podman-compose (its labels on the new containers), with the
//! volume's files, owners and modes as they were.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::process::Command;

use serde_json::Value;
use support::tree::{self, CompareOptions};
use support::{Env, Podman, run};

const COMPOSE: &str = r#"version: "3"
services:
  web:
    image: kdtest/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    volumes:
      - webdata:/data
      - ./html:/html
volumes:
  webdata:
"#;

fn podman_tests_enabled(test: &str) -> bool {
    support::docker_tests_enabled(test)
        && (rustix::process::geteuid().is_root() || {
            eprintln!("SKIPPED {test}: rootful Podman needs root");
            false
        })
}

/// Restores `stack` (latest point) without errors; its container `web` runs afterwards, made
/// by podman-compose, not docker-compose (its own label is on the container).
fn restore_made_by_podman_compose(env: &Env, podman: &Podman, stack: &str, web: &str) {
    let out = env
        .cmd(&["restore", "--unit", stack, "--latest", "--yes", "--json"])
        .env("CONTAINERS_CONF", podman.conf())
        .assert()
        .success();
    let outcome: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.State.Running}}", web]),
        "true"
    );
    assert_eq!(
        podman.podman(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"io.podman.compose.project\"}}",
            web
        ]),
        stack
    );
}

#[test]
fn podman_compose_stack_round_trips_through_podman_compose() {
    if !podman_tests_enabled("podman_compose_stack_round_trips_through_podman_compose") {
        return;
    }
    let env = Env::builder().init().build();
    let mut podman = Podman::rootful(&env.prefix);
    env.write_config(
        "config.toml",
        &format!(
            "[docker]\nhost = \"{}\"\n[backup]\nhealth-timeout-seconds = 30\n",
            podman.host()
        ),
    );
    let dir = env.path("stack");
    std::fs::create_dir_all(dir.join("html")).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE).unwrap();
    std::fs::write(dir.join("html/index.html"), "<h1>podman</h1>").unwrap();
    let stack = format!("{}-pstack", env.prefix);
    podman.compose_up(&stack, &dir);
    let volume = format!("{stack}_webdata");
    let data = podman.volume_mountpoint(&volume).join("rich");
    std::fs::create_dir(&data).unwrap();
    tree::build_rich_tree(&data);

    let units = env.json(&["units", "--json"]);
    assert_eq!(units["engine"], podman.host().as_str());
    assert_eq!(units["engine_identity"]["kind"], "podman", "{units:#}");
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == stack.as_str())
        .unwrap_or_else(|| panic!("no unit {stack}: {units:#}"));
    assert_eq!(unit["kind"], "stack");

    env.cmd(&["backup", "--unit", &stack])
        .env("CONTAINERS_CONF", podman.conf())
        .assert()
        .success();
    let web = format!("{stack}_web_1");
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.State.Running}}", &web]),
        "true",
        "the backup must start the stack again"
    );

    // A fresh host: the stack gone with its volume; a reference copy kept for comparison.
    let reference = env.path("reference");
    run(Command::new("cp").arg("-a").arg(&data).arg(&reference));
    run(podman
        .command("podman-compose")
        .args(["-p", &stack, "down", "-v"])
        .current_dir(&dir));
    // podman-compose 1.0.3 leaves the network behind; a fresh host has none.
    let network = format!("{stack}_default");
    if podman
        .command("podman")
        .args(["network", "exists", &network])
        .status()
        .unwrap()
        .success()
    {
        podman.podman(&["network", "rm", &network]);
    }
    assert!(
        !podman
            .command("podman")
            .args(["volume", "exists", &volume])
            .status()
            .unwrap()
            .success()
    );

    restore_made_by_podman_compose(&env, &podman, &stack, &web);
    tree::assert_trees_equal(
        &reference,
        &podman.volume_mountpoint(&volume).join("rich"),
        &CompareOptions::default(),
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("html/index.html")).unwrap(),
        "<h1>podman</h1>"
    );
}

/// The first sub-UID of `user` (`/etc/subuid`).
fn subuid_base(user: &str) -> u32 {
    std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(user)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{user} has no sub-UIDs"))
}

fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn rootless_podman_volume_keeps_sub_uid_owners_when_run_as_root() {
    if !podman_tests_enabled("rootless_podman_volume_keeps_sub_uid_owners_when_run_as_root") {
        return;
    }
    let env = Env::builder().init().build();
    let podman = Podman::rootless(&env.prefix);
    let user = podman.user().unwrap().to_owned();
    // Root backs up the user's engine: found by `[docker] user`, not named by address.
    env.write_config(
        "config.toml",
        &format!(
            "[docker]\nengine = \"podman\"\nuser = \"{user}\"\n[backup]\nhealth-timeout-seconds = 30\n"
        ),
    );
    let name = format!("{}-solo", env.prefix);
    let volume = format!("{}-vol", env.prefix);
    podman.podman(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        &format!("localhost/{}", support::IMAGE),
        "sh",
        "-c",
        support::IDLE,
    ]);
    podman.podman(&[
        "exec", &name, "sh", "-c",
        "mkdir /data/app && echo hi > /data/app/by70 && chown -R 70:70 /data/app && chmod 750 /data/app && echo root > /data/byroot",
    ]);
    let data = podman.volume_mountpoint(&volume);
    let sub70 = subuid_base(&user) + 69;
    assert_eq!(owner(&data.join("app/by70")), (sub70, sub70));

    let units = env.json(&["units", "--json"]);
    assert_eq!(units["engine_identity"]["kind"], "podman", "{units:#}");
    assert_eq!(units["engine_identity"]["rootless"], true, "{units:#}");
    assert!(
        units["engine"]
            .as_str()
            .unwrap()
            .ends_with("/podman/podman.sock"),
        "{units:#}"
    );

    env.cmd(&["backup", "--unit", &name]).assert().success();
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true"
    );
    let reference = env.path("reference");
    run(Command::new("cp").arg("-a").arg(&data).arg(&reference));
    podman.podman(&["rm", "-f", &name]);
    podman.podman(&["volume", "rm", &volume]);

    let out = env
        .cmd(&["restore", "--unit", &name, "--latest", "--yes", "--json"])
        .assert()
        .success();
    let outcome: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true"
    );
    let restored = podman.volume_mountpoint(&volume);
    assert_eq!(owner(&restored.join("app/by70")), (sub70, sub70));
    // Podman stamps the volume root with the image directory's times when the recreated
    // container first mounts it (it did so to the original too, before the writes moved
    // them on): the root's mtime is Podman's; its owner and mode must be ours.
    tree::assert_trees_equal(
        &reference,
        &restored,
        &CompareOptions {
            ignore_root_metadata: true,
            ..CompareOptions::default()
        },
    );
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
    };
    assert_eq!(owner(&restored), owner(&reference));
    assert_eq!(mode(&restored), mode(&reference));
    // The user's engine sees its own uid 70 again.
    assert_eq!(
        podman.podman(&["exec", &name, "stat", "-c", "%u:%g %a", "/data/app/by70"]),
        "70:70 644"
    );
}

/// A rootless podman-compose stack, backed up by root through the user's engine, gone with
/// its volume and its directory (a fresh host), restored by root: podman-compose runs as the
/// user, so the stack is the user's again (in their storage, with podman-compose's labels),
/// and the volume's files keep their sub-UID owners.
#[test]
fn rootless_podman_compose_stack_round_trips_as_its_user() {
    if !podman_tests_enabled("rootless_podman_compose_stack_round_trips_as_its_user") {
        return;
    }
    let env = Env::builder().init().build();
    let mut podman = Podman::rootless(&env.prefix);
    let user = podman.user().unwrap().to_owned();
    let (home, uid, gid) = podman.home().map(|(h, u, g)| (h.to_owned(), u, g)).unwrap();
    env.write_config(
        "config.toml",
        &format!(
            "[docker]\nengine = \"podman\"\nuser = \"{user}\"\n[backup]\nhealth-timeout-seconds = 30\n"
        ),
    );
    // The user's project, in the user's home (its network through slirp4netns).
    let dir = home.join("stack");
    std::fs::create_dir_all(dir.join("html")).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE).unwrap();
    std::fs::write(dir.join("html/index.html"), "<h1>rootless</h1>").unwrap();
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(&dir));
    let stack = format!("{}-rstack", env.prefix);
    podman.compose_up(&stack, &dir);
    let web = format!("{stack}_web_1");
    podman.podman(&[
        "exec",
        &web,
        "sh",
        "-c",
        "mkdir /data/app && echo hi > /data/app/by70 && chown -R 70:70 /data/app",
    ]);
    let volume = format!("{stack}_webdata");
    let data = podman.volume_mountpoint(&volume);
    let sub70 = subuid_base(&user) + 69;
    assert_eq!(owner(&data.join("app/by70")), (sub70, sub70));

    let units = env.json(&["units", "--json"]);
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == stack.as_str())
        .unwrap_or_else(|| panic!("no unit {stack}: {units:#}"));
    assert_eq!(unit["kind"], "stack", "{unit:#}");
    env.cmd(&["backup", "--unit", &stack])
        .env("CONTAINERS_CONF", podman.conf())
        .assert()
        .success();
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.State.Running}}", &web]),
        "true",
        "the backup must start the stack again"
    );

    // A fresh host: the stack, its volume and its directory gone.
    let reference = env.path("reference");
    run(Command::new("cp").arg("-a").arg(&data).arg(&reference));
    run(podman
        .command("podman-compose")
        .args(["-p", &stack, "down", "-v"])
        .current_dir(&dir));
    std::fs::remove_dir_all(&dir).unwrap();

    // The user's engine runs it (as `podman` of the user sees it).
    restore_made_by_podman_compose(&env, &podman, &stack, &web);
    let restored = podman.volume_mountpoint(&volume);
    assert_eq!(owner(&restored.join("app/by70")), (sub70, sub70));
    tree::assert_trees_equal(
        &reference,
        &restored,
        &CompareOptions {
            ignore_root_metadata: true,
            ..CompareOptions::default()
        },
    );
    assert_eq!(
        podman.podman(&["exec", &web, "stat", "-c", "%u:%g", "/data/app/by70"]),
        "70:70"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("html/index.html")).unwrap(),
        "<h1>rootless</h1>"
    );
    // The project stays the user's to edit.
    for path in [dir.join("docker-compose.yml"), dir.join("html/index.html")] {
        assert_eq!(owner(&path), (uid, gid), "{}", path.display());
    }
}

/// A container of a `podman generate systemd --new` or Quadlet unit runs with `--rm`: stopped
/// through the API it is gone, and the unit's job is to stop and start it. When its unit
/// cannot be asked (here: no systemd runs this engine), the backup refuses it before anything
/// is stopped. (Stopped and started through a real unit: `tests/systemd_units.rs`.)
#[test]
fn a_systemd_managed_rm_container_is_refused_and_left_running() {
    if !podman_tests_enabled("a_systemd_managed_rm_container_is_refused_and_left_running") {
        return;
    }
    let env = Env::builder().init().build();
    let podman = Podman::rootful(&env.prefix);
    env.write_config(
        "config.toml",
        &format!("[docker]\nhost = \"{}\"\n", podman.host()),
    );
    let name = format!("{}-web", env.prefix);
    let unit = format!("container-{name}.service");
    let id = podman.podman(&[
        "run",
        "-d",
        "--rm",
        "--label",
        &format!("PODMAN_SYSTEMD_UNIT={unit}"),
        "--name",
        &name,
        "-v",
        &format!("{}-data:/data", env.prefix),
        &format!("localhost/{}", support::IMAGE),
        "sh",
        "-c",
        support::IDLE,
    ]);

    let units = env.json(&["units", "--json"]);
    let found = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no unit {name}: {units:#}"));
    assert_eq!(found["containers"][0]["systemd"]["unit"], unit.as_str());
    assert_eq!(found["containers"][0]["auto_remove"], true);

    let out = env.cmd(&["backup", "--unit", &name]).assert().failure();
    let said = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        said.contains(&unit) && said.contains("--rm") && said.contains("nothing was stopped"),
        "{said}"
    );
    // Untouched: the same container still runs.
    assert_eq!(
        podman.podman(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &name]),
        format!("{id} true")
    );
}
