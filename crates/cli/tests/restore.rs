//! `kopi-docka restore` against a real engine and a real repository: a stack and a standalone
//! container come back on a "fresh host" (containers, volumes and networks removed) with
//! identical data and configuration; restoring over existing data keeps a rollback copy and a
//! failure part-way puts the old content back; drills leave nothing behind; bad input fails
//! clearly.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::tree::{self, CompareOptions};
use support::{Env, IDLE, IMAGE, docker, volume_mountpoint};

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, name])
}

fn exists(kind: &str, name: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

/// The network attributes a restore must reproduce.
fn network_attributes(name: &str) -> Value {
    let all: Value = serde_json::from_str(&docker(&["network", "inspect", name])).unwrap();
    let n = &all[0];
    serde_json::json!({
        "driver": n["Driver"], "internal": n["Internal"], "attachable": n["Attachable"],
        "ipv6": n["EnableIPv6"], "labels": n["Labels"], "options": n["Options"],
        "ipam": n["IPAM"],
    })
}

/// Moves a directory's tree aside (same filesystem: a rename keeps every inode and time) so
/// the original can be compared with what a restore brings back.
fn move_aside(from: &Path, to: &Path) {
    std::fs::rename(from, to).unwrap();
}

fn two_subnet_octets(prefix: &str) -> (u8, u8) {
    let n = u32::from_str_radix(&prefix["kdtest-".len()..], 16).unwrap();
    (
        u8::try_from((n >> 8) % 200 + 20).unwrap(),
        u8::try_from(n % 250).unwrap(),
    )
}

/// `extra`, and a health timeout that a slow CI machine cannot miss.
fn with_health_timeout(extra: &str) -> String {
    format!("{extra}\n[backup]\nhealth-timeout-seconds = 30\n")
}

/// An installation with a repository and `extra` in its config.
fn installation(extra: &str) -> Env {
    Env::builder()
        .extra(&with_health_timeout(extra))
        .init()
        .build()
}

/// A 0600 env file with `text`.
fn env_file(env: &Env, text: &str) -> PathBuf {
    let path = env.path("secrets.env");
    support::write_private(&path, text);
    path
}

#[test]
fn stack_round_trip_on_a_fresh_host() {
    if !support::docker_tests_enabled("stack_round_trip_on_a_fresh_host") {
        return;
    }
    let mut env = installation("");
    let (a, b) = two_subnet_octets(&env.prefix);
    let (stack, dir) = env.stack(&format!(
        "networks:\n  backend:\n    internal: true\n    labels:\n      kdtest.purpose: round-trip\n    \
         driver_opts:\n      com.docker.network.driver.mtu: \"1400\"\n    ipam:\n      config:\n        \
         - subnet: 10.{a}.{b}.0/24\n"
    ));
    let db_volume = format!("{stack}_db-data");
    let cache_volume = format!("{stack}_web-cache");
    std::fs::create_dir(volume_mountpoint(&db_volume).join("rich")).unwrap();
    tree::build_rich_tree(&volume_mountpoint(&db_volume).join("rich"));
    std::fs::write(volume_mountpoint(&cache_volume).join("cached"), "cache").unwrap();
    std::fs::write(dir.join("html/index.html"), "<h1>restored</h1>").unwrap();
    std::os::unix::fs::chown(dir.join("html/index.html"), Some(33), Some(33)).unwrap();
    // The env files come back private and with their owner: the secrets in `.env` must not
    // become readable by everyone on the new host.
    let set_mode = |name: &str, mode: u32| {
        std::fs::set_permissions(
            dir.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap();
    };
    set_mode(".env", 0o600);
    set_mode("web.env", 0o640);
    std::os::unix::fs::chown(dir.join("web.env"), Some(1000), Some(1000)).unwrap();
    let networks = [format!("{stack}_backend"), format!("{stack}_frontend")];
    let net_before: Vec<Value> = networks.iter().map(|n| network_attributes(n)).collect();
    let labels_before = inspect(&db_volume, "{{json .Labels}}");

    env.cmd(&["backup", "--unit", &stack]).assert().success();

    // A fresh host: no containers, networks or volumes; the data moved aside for comparison;
    // the env files gone too (the recipe brings them back).
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "--timeout", "1"])
            .current_dir(&dir),
    );
    // The reference copy of the volume data lives in another volume: /var/lib/docker may be a
    // mount of its own, and a rename cannot leave it.
    let reference_volume = format!("{}-reference", env.prefix);
    docker(&["volume", "create", &reference_volume]);
    let reference_rich = volume_mountpoint(&reference_volume).join("rich");
    move_aside(&volume_mountpoint(&db_volume).join("rich"), &reference_rich);
    let reference_html = env.path("reference-html");
    move_aside(&dir.join("html"), &reference_html);
    docker(&["volume", "rm", &db_volume, &cache_volume]);
    std::fs::remove_file(dir.join(".env")).unwrap();
    std::fs::remove_file(dir.join("web.env")).unwrap();

    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    let db = format!("{stack}_db_1");
    let web = format!("{stack}_web_1");
    assert_eq!(inspect(&db, "{{.State.Health.Status}}"), "healthy");
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&db_volume, "{{json .Labels}}"), labels_before);
    for (name, before) in networks.iter().zip(&net_before) {
        assert_eq!(&network_attributes(name), before, "network {name}");
    }
    tree::assert_trees_equal(
        &reference_rich,
        &volume_mountpoint(&db_volume).join("rich"),
        &CompareOptions::default(),
    );
    tree::assert_trees_equal(
        &reference_html,
        &dir.join("html"),
        &CompareOptions::default(),
    );
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&cache_volume).join("cached")).unwrap(),
        "cache"
    );
    assert!(
        std::fs::read_to_string(dir.join(".env"))
            .unwrap()
            .contains("DB_PASSWORD=fixture-secret")
    );
    let meta = |name: &str| {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(dir.join(name)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(meta(".env"), (0o600, 0, 0));
    assert_eq!(meta("web.env"), (0o640, 1000, 1000));
    let env_in_web = inspect(&web, "{{json .Config.Env}}");
    assert!(
        env_in_web.contains("DB_PASSWORD=fixture-secret"),
        "{env_in_web}"
    );
}

#[test]
fn restore_over_existing_data_keeps_a_rollback_copy_and_rolls_back_on_failure() {
    if !support::docker_tests_enabled(
        "restore_over_existing_data_keeps_a_rollback_copy_and_rolls_back_on_failure",
    ) {
        return;
    }
    let mut env = installation("");
    install_restore_hooks(&env);
    let (stack, _dir) = env.stack("");
    let db_volume = format!("{stack}_db-data");
    let cache_volume = format!("{stack}_web-cache");
    let (db, web) = (format!("{stack}_db_1"), format!("{stack}_web_1"));
    let hooks_log = || std::fs::read_to_string(env.path("hooks.log")).unwrap_or_default();
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v1").unwrap();
    }
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v2").unwrap();
        std::fs::write(volume_mountpoint(v).join("newer"), "only in v2").unwrap();
    }

    // The second volume fails after the first was swapped in: both must hold v2 again.
    let failing = volume_mountpoint(&cache_volume);
    let out = env
        .cmd(&[
            "restore", "--unit", &stack, "--only", "volumes", "--yes", "--json",
        ])
        .env(
            "KOPI_DOCKA_FAILPOINT",
            format!("restore:{}", failing.display()),
        )
        .assert()
        .code(1);
    let outcome: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(outcome["rolled_back"], true, "{outcome:#}");
    for v in [&db_volume, &cache_volume] {
        let data = volume_mountpoint(v);
        assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), "v2");
        assert!(data.join("newer").exists());
        let siblings: Vec<_> = std::fs::read_dir(data.parent().unwrap()).unwrap().collect();
        assert_eq!(
            siblings.len(),
            1,
            "only _data is left in {}",
            data.display()
        );
    }
    assert_eq!(inspect(&db, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    assert_eq!(
        hooks_log(),
        format!("pre-restore {stack} \npost-restore {stack} failed\n")
    );

    // One volume, for real: only its user is stopped; the old content is kept beside it.
    let db_started = inspect(&db, "{{.State.StartedAt}}");
    let web_started = inspect(&web, "{{.State.StartedAt}}");
    let outcome = env.json(&[
        "restore",
        "--unit",
        &stack,
        "--volume",
        &cache_volume,
        "--yes",
        "--json",
    ]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(outcome["started"], serde_json::json!([web]));
    let data = volume_mountpoint(&cache_volume);
    assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), "v1");
    assert!(!data.join("newer").exists());
    let rollback = PathBuf::from(outcome["data"][0]["rollback"].as_str().unwrap());
    // In a private (0700) directory beside the volume's data.
    let private = rollback.parent().unwrap();
    assert_eq!(private.parent(), data.parent());
    assert_eq!(
        std::fs::metadata(private).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::read_to_string(rollback.join("marker")).unwrap(),
        "v2"
    );
    assert_eq!(
        inspect(&db, "{{.State.StartedAt}}"),
        db_started,
        "db was not touched"
    );
    assert_ne!(inspect(&web, "{{.State.StartedAt}}"), web_started);
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&db_volume).join("marker")).unwrap(),
        "v2"
    );
    assert!(hooks_log().ends_with(&format!(
        "pre-restore {stack} \npost-restore {stack} success\n"
    )));
}

#[test]
fn standalone_round_trip_recreates_the_configuration() {
    if !support::docker_tests_enabled("standalone_round_trip_recreates_the_configuration") {
        return;
    }
    let env = installation("");
    let name = format!("{}-solo", env.prefix);
    let net = format!("{}-net", env.prefix);
    let volume = format!("{}-data", env.prefix);
    docker(&["network", "create", "--label", "kdtest=1", &net]);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--hostname",
        "solo-host",
        "--network",
        &net,
        "--network-alias",
        "solo-alias",
        "-e",
        "API_TOKEN=secret123",
        "-e",
        "PLAIN=1",
        "-v",
        &format!("{volume}:/data"),
        "-p",
        "127.0.0.1::8080",
        "--restart",
        "unless-stopped",
        "--label",
        "kdtest.role=solo",
        "--user",
        "1234:1234",
        "-w",
        "/data",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "MKNOD",
        "--memory",
        "64m",
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    std::fs::write(
        volume_mountpoint(&volume).join("payload"),
        "standalone data",
    )
    .unwrap();
    let fields = "{{json .Config.Image}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} \
                  {{json .Config.Env}} {{json .Config.User}} {{json .Config.WorkingDir}} \
                  {{json .Config.Labels}} {{json .Config.Hostname}} \
                  {{json .HostConfig.RestartPolicy}} {{json .HostConfig.CapAdd}} \
                  {{json .HostConfig.CapDrop}} {{json .HostConfig.Memory}} \
                  {{json .HostConfig.PortBindings}} {{json .HostConfig.Binds}} \
                  {{json .HostConfig.NetworkMode}}";
    let before = inspect(&name, fields);
    let aliases_format =
        format!("{{{{json (index .NetworkSettings.Networks \"{net}\").Aliases}}}}");
    env.cmd(&["backup", "--unit", &name]).assert().success();
    docker(&["rm", "-f", &name]);
    docker(&["volume", "rm", &volume]);
    docker(&["network", "rm", &net]);

    // The token was redacted in the saved configuration: it must be supplied, and nothing is
    // created until it is.
    env.cmd(&["restore", "--unit", &name, "--yes"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("API_TOKEN"))
        .stderr(predicates::str::contains("--env-file"));
    assert!(!exists("volume", &volume));
    assert!(!exists("container", &name));

    let secrets = env_file(&env, "API_TOKEN=secret123\n");
    let outcome = env.json(&[
        "restore",
        "--unit",
        &name,
        "--yes",
        "--json",
        "--env-file",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&name, fields), before);
    assert!(inspect(&name, &aliases_format).contains("solo-alias"));
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&volume).join("payload")).unwrap(),
        "standalone data"
    );
    assert_eq!(inspect(&net, "{{json .Labels}}"), r#"{"kdtest":"1"}"#);
}

#[test]
fn another_hosts_backup_and_bad_input() {
    if !support::docker_tests_enabled("another_hosts_backup_and_bad_input") {
        return;
    }
    let env = installation("hostname = \"kdtest-old-server\"");
    env.write_config("here.toml", &with_health_timeout(""));
    let name = format!("{}-solo", env.prefix);
    let volume = format!("{}-data", env.prefix);
    // A single-file bind as well: restored in place, the changed file kept beside it.
    let conf = env.path("app.conf");
    std::fs::write(&conf, "original").unwrap();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        "-v",
        &format!("{}:/etc/app.conf:ro", conf.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    std::fs::write(
        volume_mountpoint(&volume).join("payload"),
        "from the old server",
    )
    .unwrap();
    let out = env.json(&["backup", "--unit", &name, "--json"]);
    let backup_id = out["units"][0]["backup_id"].as_str().unwrap().to_owned();
    env.cmd(&["backup", "--unit", &name, "--scope", "minimal"])
        .assert()
        .success();
    docker(&["rm", "-f", &name]);
    docker(&["volume", "rm", &volume]);
    std::fs::write(&conf, "changed on the new host").unwrap();

    bad_input(&env, &name, &volume, &backup_id);

    let outcome: Value = serde_json::from_slice(
        &env.cmd_with(
            "here.toml",
            &[
                "restore",
                "--unit",
                &name,
                "--from-host",
                "kdtest-old-server",
                "--backup-id",
                &backup_id,
                "--yes",
                "--json",
            ],
        )
        .assert()
        .success()
        .get_output()
        .stdout,
    )
    .unwrap();
    assert_eq!(outcome["host"], "kdtest-old-server");
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&volume).join("payload")).unwrap(),
        "from the old server"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "original");
    let kept: Vec<String> = std::fs::read_dir(env.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".app.conf.kopi-docka-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read_to_string(env.path(&kept[0]).join("rollback")).unwrap(),
        "changed on the new host"
    );

    // Into a directory: no container touched.
    let target = env.path("extracted");
    env.cmd_with(
        "here.toml",
        &[
            "restore",
            "--unit",
            &name,
            "--from-host",
            "kdtest-old-server",
            "--backup-id",
            &backup_id,
            "--target-dir",
            target.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(target.join("volumes").join(&volume).join("payload")).unwrap(),
        "from the old server"
    );
    assert!(target.join("recipe/manifest.json").exists());
}

#[test]
fn stack_restore_without_a_compose_tool_changes_nothing() {
    if !support::docker_tests_enabled("stack_restore_without_a_compose_tool_changes_nothing") {
        return;
    }
    let mut env = installation("");
    let (stack, dir) = env.stack("");
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "--timeout", "1", "-v"])
            .current_dir(&dir),
    );
    let out = env
        .cmd(&["restore", "--unit", &stack, "--yes"])
        .env("PATH", "/nonexistent")
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("docker-compose") && stderr.contains("--no-start"),
        "{stderr}"
    );
    assert!(!exists("volume", &format!("{stack}_db-data")));
    assert!(!exists("network", &format!("{stack}_backend")));
}

#[test]
fn drill_passes_and_leaves_nothing_behind() {
    if !support::docker_tests_enabled("drill_passes_and_leaves_nothing_behind") {
        return;
    }
    let mut env = installation("");
    let (stack, _dir) = env.stack("");
    std::fs::write(
        volume_mountpoint(&format!("{stack}_db-data")).join("rows"),
        "42 rows",
    )
    .unwrap();
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    let db = format!("{stack}_db_1");
    let started = inspect(&db, "{{.State.StartedAt}}");
    // Everything a drill creates is named `<unit>-drill-<random>...` and labelled
    // `kopi-docka.drill=<unit>-drill-<random>`: found by either, whatever its name; and its
    // copies of the binds live in a `drill-*` dir of the restore work dir.
    let sandbox = format!("{stack}-drill-");
    let work_dir = env.path("cache/restore");
    let leftovers = || drill_leftovers(&sandbox, &work_dir);

    // DB_PASSWORD comes from the recipe's .env; DATABASE_URL has no env file entry.
    env.cmd(&["restore", "--drill", "--unit", &stack])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("DATABASE_URL"));
    assert_eq!(leftovers(), Vec::<String>::new());
    // Each drill's verdict is kept as the unit's last drill (the dashboard's overview).
    let last_drill = || -> Value {
        let text = std::fs::read_to_string(env.path("state/drills.json")).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()[stack.as_str()].clone()
    };
    let failed = last_drill();
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert!(
        failed["errors"].to_string().contains("DATABASE_URL"),
        "{failed:#}"
    );
    let secrets = env_file(
        &env,
        "DATABASE_URL=postgres://app:fixture-secret@db:5432/app\n",
    );
    let report = env.json(&[
        "restore",
        "--drill",
        "--unit",
        &stack,
        "--json",
        "--env-file",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(report["passed"], true, "{report:#}");
    let passed = last_drill();
    assert_eq!(passed["passed"], true, "{passed:#}");
    assert_eq!(passed["backup_id"], report["backup_id"], "{passed:#}");
    assert_eq!(report["started"].as_array().unwrap().len(), 2, "{report:#}");
    let verified: u64 = report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["verified"].as_u64().unwrap())
        .sum();
    assert!(verified >= 3, "{report:#}");
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "the drill left something behind"
    );
    assert_eq!(
        inspect(&db, "{{.State.StartedAt}}"),
        started,
        "production untouched"
    );
}

/// The drill's verdict rests on comparing the sandbox with the snapshots: data changed after
/// the sandbox restore and before the comparison (a same-size rewrite with its mtime set back,
/// through the debug build's `drill-before-verify` failpoint) fails the drill.
#[test]
fn drill_fails_when_the_sandbox_data_is_corrupted_before_verification() {
    if !support::docker_tests_enabled(
        "drill_fails_when_the_sandbox_data_is_corrupted_before_verification",
    ) {
        return;
    }
    let mut env = installation("");
    let (stack, _dir) = env.stack("");
    let volume = format!("{stack}_db-data");
    std::fs::write(volume_mountpoint(&volume).join("rows"), "42 rows").unwrap();
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    let secrets = env_file(
        &env,
        "DATABASE_URL=postgres://app:fixture-secret@db:5432/app\n",
    );
    // Runs with every restored path as an argument; rewrites `rows` where it is found, same
    // size and the old mtime, so only a comparison by content can tell.
    let corrupt = r#"for d in "$@"; do
        if [ -f "$d/rows" ]; then
            ref=$(mktemp) && touch -r "$d/rows" "$ref" &&
            printf '43 rows' > "$d/rows" && touch -r "$ref" "$d/rows" && rm "$ref" &&
            echo "corrupted $d/rows" >&2 || exit 1
        fi
    done"#;
    let out = env
        .cmd(&[
            "restore",
            "--drill",
            "--unit",
            &stack,
            "--json",
            "--env-file",
            secrets.to_str().unwrap(),
        ])
        .env(
            "KOPI_DOCKA_FAILPOINT",
            format!("drill-before-verify:{corrupt}"),
        )
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        stderr.contains("corrupted "),
        "the failpoint did not run: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["passed"], false, "{report:#}");
    let data = report["data"].as_array().unwrap();
    let db = data.iter().find(|d| d["name"] == volume.as_str()).unwrap();
    assert_eq!(db["differing"], 1, "{report:#}");
    assert_eq!(db["additional"], 0, "{report:#}");
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{volume}: 1 files differ"))),
        "{report:#}"
    );
    // Only the corrupted volume differs; the drill still cleaned up everything.
    assert!(
        data.iter()
            .filter(|d| d["name"] != volume.as_str())
            .all(|d| d["differing"] == 0 && d["additional"] == 0),
        "{report:#}"
    );
    assert_eq!(
        drill_leftovers(&format!("{stack}-drill-"), &env.path("cache/restore")),
        Vec::<String>::new()
    );
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&volume).join("rows")).unwrap(),
        "42 rows",
        "production untouched"
    );
}

/// What a drill of sandbox `<unit>-drill-` left: engine objects by name or by label, and
/// sandbox dirs (its bind copies) in the restore work dir.
fn drill_leftovers(sandbox: &str, work_dir: &Path) -> Vec<String> {
    let labelled = "label=kopi-docka.drill";
    let mut found: Vec<String> = [
        docker(&["ps", "-a", "--format", "{{.Names}}"]),
        docker(&["volume", "ls", "--format", "{{.Name}}"]),
        docker(&["network", "ls", "--format", "{{.Name}}"]),
    ]
    .iter()
    .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
    .filter(|n| n.starts_with(sandbox))
    .collect();
    for list in [
        docker(&[
            "ps",
            "-a",
            "--filter",
            labelled,
            "--format",
            "{{.Names}} {{.Labels}}",
        ]),
        docker(&[
            "volume",
            "ls",
            "--filter",
            labelled,
            "--format",
            "{{.Name}} {{.Labels}}",
        ]),
        docker(&[
            "network",
            "ls",
            "--filter",
            labelled,
            "--format",
            "{{.Name}} {{.Labels}}",
        ]),
    ] {
        found.extend(
            list.lines()
                .filter(|l| l.contains(&format!("kopi-docka.drill={sandbox}")))
                .map(|l| format!("labelled: {l}")),
        );
    }
    if let Ok(entries) = std::fs::read_dir(work_dir) {
        found.extend(
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("drill-"))
                .map(|n| format!("sandbox dir: {n}")),
        );
    }
    found
}

/// Each wrong selector fails with exit code 2 (1 for a point without a recipe), names what
/// exists, and changes nothing.
fn bad_input(env: &Env, name: &str, volume: &str, backup_id: &str) {
    let fails = |config: &str, args: &[&str], code: i32, expect: &[&str]| {
        let out = env.cmd_with(config, args).assert().code(code);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        for e in expect {
            assert!(stderr.contains(e), "{args:?}: `{e}` not in: {stderr}");
        }
    };
    // This host made no backups of it: the error names the host that did.
    fails(
        "here.toml",
        &["restore", "--unit", name, "--yes"],
        2,
        &["--from-host", "kdtest-old-server"],
    );
    fails(
        "here.toml",
        &[
            "restore",
            "--unit",
            "kdtest-nope",
            "--from-host",
            "kdtest-old-server",
            "--yes",
        ],
        2,
        &["unknown unit `kdtest-nope`", name],
    );
    fails(
        "here.toml",
        &[
            "restore",
            "--unit",
            name,
            "--from-host",
            "kdtest-no-such-host",
            "--yes",
        ],
        2,
        &["kdtest-no-such-host", "kdtest-old-server"],
    );
    fails(
        "here.toml",
        &[
            "restore",
            "--unit",
            name,
            "--from-host",
            "kdtest-old-server",
            "--backup-id",
            "20200101T000000Z-dead",
            "--yes",
        ],
        2,
        &["no restore point `20200101T000000Z-dead`", backup_id],
    );
    // The newest point is minimal: no recipe to recreate the container from.
    fails(
        "here.toml",
        &[
            "restore",
            "--unit",
            name,
            "--from-host",
            "kdtest-old-server",
            "--yes",
        ],
        1,
        &["has no recipe", "--only volumes,binds", "--target-dir"],
    );
    assert!(!exists("volume", volume));
    // Not confirmed without a terminal.
    fails(
        "here.toml",
        &[
            "restore",
            "--unit",
            name,
            "--from-host",
            "kdtest-old-server",
            "--backup-id",
            backup_id,
        ],
        2,
        &["--yes"],
    );
}

#[test]
fn sigterm_during_a_restore_rolls_back_and_leaves_the_unit_stopped() {
    if !support::docker_tests_enabled(
        "sigterm_during_a_restore_rolls_back_and_leaves_the_unit_stopped",
    ) {
        return;
    }
    let mut env = installation("");
    let (stack, _dir) = env.stack("");
    let db_volume = format!("{stack}_db-data");
    let data = volume_mountpoint(&db_volume);
    // Big enough that the restore is still writing when the signal arrives.
    support::fill_random(&data.join("big.bin"), 512 << 20);
    std::fs::write(data.join("marker"), "v1").unwrap();
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    std::fs::write(data.join("marker"), "v2").unwrap();

    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kopi-docka"))
        .arg("--config")
        .arg(env.path("config.toml"))
        .env("KOPI_DOCKA_STATE_DIR", env.path("state"))
        .env("KOPI_DOCKA_CACHE_DIR", env.path("cache"))
        .env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("DOCKER_HOST")
        .args(["restore", "--unit", &stack, "--only", "volumes", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
            "restore ended before restoring: {log}"
        );
        log.push_str(&line);
        if line.contains("restoring") && line.contains("db-data") {
            break;
        }
    }
    support::sigterm(&child);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{log}{rest}");
    assert!(stdout.contains("left stopped"), "{stdout}");
    assert_eq!(std::fs::read_to_string(data.join("marker")).unwrap(), "v2");
    assert_eq!(
        std::fs::metadata(data.join("big.bin")).unwrap().len(),
        512 << 20
    );
    let siblings = std::fs::read_dir(data.parent().unwrap()).unwrap().count();
    assert_eq!(
        siblings, 1,
        "nothing but _data is left beside the volume data"
    );
    for c in [format!("{stack}_db_1"), format!("{stack}_web_1")] {
        assert_eq!(
            inspect(&c, "{{.State.Running}}"),
            "false",
            "{c} stays stopped"
        );
    }
    // They left the journal: the next run does not start them behind the user's back.
    let journal =
        std::fs::read_to_string(env.path("state/stopped-containers.json")).unwrap_or_default();
    assert!(!journal.contains(&stack), "{journal}");
}

/// pre-restore and post-restore hooks that append `<point> <unit> <status>` to hooks.log.
fn install_restore_hooks(env: &Env) {
    let hook = env.path("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$KOPI_DOCKA_HOOK $KOPI_DOCKA_UNIT ${{KOPI_DOCKA_STATUS:-}}\" >> {}\n",
            env.path("hooks.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.write_config(
        "config.toml",
        &with_health_timeout(&format!(
            "[hooks]\npre-restore = [\"{0}\"]\npost-restore = [\"{0}\"]",
            hook.display()
        )),
    );
}

#[test]
fn the_wizard_asks_for_what_is_missing_on_a_terminal() {
    if !support::docker_tests_enabled("the_wizard_asks_for_what_is_missing_on_a_terminal") {
        return;
    }
    let env = installation("");
    let name = format!("{}-solo", env.prefix);
    let volume = format!("{}-data", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    std::fs::write(volume_mountpoint(&volume).join("payload"), "before").unwrap();
    env.cmd(&["backup", "--unit", &name]).assert().success();
    std::fs::write(volume_mountpoint(&volume).join("payload"), "after").unwrap();

    // `script` runs the wizard on a pseudo-terminal and types the answers: the first unit,
    // the newest point, all parts, yes.
    let command = format!(
        "KOPI_DOCKA_STATE_DIR={} KOPI_DOCKA_CACHE_DIR={} {} --config {} restore",
        env.path("state").display(),
        env.path("cache").display(),
        assert_cmd::cargo::cargo_bin("kopi-docka").display(),
        env.path("config.toml").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"1\n1\n\ny\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    for question in ["Unit:", "Restore point:", "Parts [all]", "Proceed? [y/N]"] {
        assert!(
            screen.contains(question),
            "`{question}` not asked:\n{screen}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(volume_mountpoint(&volume).join("payload")).unwrap(),
        "before"
    );
}

/// A restore waiting at its confirmation does not hold the run lock: a backup (here the
/// journal recovery, which takes the same lock) can run meanwhile; the restore takes the lock
/// only after the answer.
#[test]
fn a_restore_waiting_at_a_prompt_does_not_hold_the_run_lock() {
    if !support::docker_tests_enabled("a_restore_waiting_at_a_prompt_does_not_hold_the_run_lock") {
        return;
    }
    let env = installation("");
    let name = format!("{}-solo", env.prefix);
    docker(&["run", "-d", "--name", &name, IMAGE, "sh", "-c", IDLE]);
    env.cmd(&["backup", "--unit", &name]).assert().success();

    let command = format!(
        "KOPI_DOCKA_STATE_DIR={} KOPI_DOCKA_CACHE_DIR={} {} --config {} restore --unit {name} --latest",
        env.path("state").display(),
        env.path("cache").display(),
        assert_cmd::cargo::cargo_bin("kopi-docka").display(),
        env.path("config.toml").display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut buf = [0_u8; 4096];
        let mut told = false;
        loop {
            let n = std::io::Read::read(&mut stdout, &mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
            if !told && String::from_utf8_lossy(&screen).contains("Proceed? [y/N]") {
                told = true;
                seen_tx.send(()).unwrap();
            }
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    if seen_rx
        .recv_timeout(std::time::Duration::from_mins(2))
        .is_err()
    {
        child.kill().unwrap();
        panic!("no confirmation question: {}", reader.join().unwrap());
    }
    // The restore sits at its question: another run on this state directory may go on.
    let other = env.cmd(&["admin", "restart-stopped"]).output().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"n\n").unwrap();
    let status = child.wait().unwrap();
    let screen = reader.join().unwrap();
    assert!(
        other.status.success(),
        "the run lock was held during the prompt: {}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert!(
        !status.success(),
        "not confirmed must not succeed: {screen}"
    );
    assert!(screen.contains("nothing was changed"), "{screen}");
}

/// Every file under `dir`, recursively (nothing when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The repository password and the DR passphrase never reach a hook's environment or compose's
/// interpolation (`${KOPI_DOCKA_PASSWORD}` in a compose file stays empty), and neither a dry
/// run nor a restore leaves the plaintext recipe in the cache.
#[test]
fn secrets_stay_out_of_hooks_compose_and_the_cache() {
    if !support::docker_tests_enabled("secrets_stay_out_of_hooks_compose_and_the_cache") {
        return;
    }
    let mut env = installation("");
    let hook = env.path("dump-env.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nenv >> {}\n", env.path("hook-env").display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.write_config(
        "config.toml",
        &with_health_timeout(&format!(
            "[hooks]\npre-restore = [\"{0}\"]\npre-backup = [\"{0}\"]",
            hook.display()
        )),
    );
    let (stack, dir) = env.stack(
        "services:\n  web:\n    environment:\n      LEAK: \"pw=${KOPI_DOCKA_PASSWORD:-}\"\n      \
         LEAK_DR: \"dr=${KOPI_DOCKA_DR_PASSPHRASE:-}\"\n",
    );
    let password = std::fs::read_to_string(env.password_file())
        .unwrap()
        .trim()
        .to_owned();
    let passphrase = "dr-passphrase-in-env";
    let with_secrets = |args: &[&str]| {
        let mut cmd = env.cmd(args);
        cmd.env("KOPI_DOCKA_PASSWORD", &password)
            .env("KOPI_DOCKA_DR_PASSPHRASE", passphrase);
        cmd
    };
    with_secrets(&["backup", "--unit", &stack])
        .assert()
        .success();
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "--timeout", "1"])
            .current_dir(&dir),
    );
    let cache = env.dir().join("cache");
    with_secrets(&["restore", "--unit", &stack, "--latest", "--dry-run"])
        .assert()
        .success();
    let after_dry_run = files_under(&cache.join("restore"));
    with_secrets(&["restore", "--unit", &stack, "--latest", "--yes", "--json"])
        .assert()
        .success();
    let after_restore = files_under(&cache.join("restore"));

    let web = format!("{stack}_web_1");
    let env_in_web = inspect(&web, "{{json .Config.Env}}");
    assert!(env_in_web.contains("LEAK=pw=\""), "{env_in_web}");
    assert!(env_in_web.contains("LEAK_DR=dr=\""), "{env_in_web}");
    assert!(!env_in_web.contains(&password), "{env_in_web}");
    let hook_env = std::fs::read_to_string(env.path("hook-env")).unwrap();
    assert!(
        hook_env.contains("KOPI_DOCKA_HOOK=pre-restore"),
        "{hook_env}"
    );
    assert!(
        hook_env.contains("KOPI_DOCKA_HOOK=pre-backup"),
        "{hook_env}"
    );
    for secret in [
        password.as_str(),
        passphrase,
        "KOPI_DOCKA_PASSWORD",
        "KOPI_DOCKA_DR_PASSPHRASE",
    ] {
        assert!(!hook_env.contains(secret), "{secret} in a hook: {hook_env}");
    }
    assert_eq!(after_dry_run, Vec::<PathBuf>::new(), "after the dry run");
    assert_eq!(after_restore, Vec::<PathBuf>::new(), "after the restore");
}

/// A local volume created with `o=bind,device=DIR` is mounted on its mountpoint only while a
/// container uses it: the point must hold DIR's data (not the empty mountpoint the stop leaves),
/// and a restore must put it back into DIR. An nfs-backed one is reported as not protected.
#[test]
fn device_backed_volume_is_backed_up_from_its_device_and_restored_there() {
    if !support::docker_tests_enabled(
        "device_backed_volume_is_backed_up_from_its_device_and_restored_there",
    ) {
        return;
    }
    let env = installation("");
    let name = format!("{}-dev", env.prefix);
    let device = env.path("device");
    std::fs::create_dir(&device).unwrap();
    std::fs::write(device.join("rows"), "42 rows").unwrap();
    device_volume(&name, &device);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{name}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    let units = env.json(&["units", "--json"]);
    let unit = |n: &str| {
        units["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == n)
            .unwrap()
            .clone()
    };
    let dev_volume = &unit(&name)["volumes"][0];
    assert_eq!(
        dev_volume["device"],
        device.to_str().unwrap(),
        "{dev_volume:#}"
    );
    assert_eq!(dev_volume["status"], "backed_up", "{dev_volume:#}");
    nfs_volume_is_a_reported_gap(&env);

    let report = env.json(&["backup", "--unit", &name, "--json"]);
    let u = &report["units"][0];
    assert_eq!(u["status"], "success", "{u:#}");
    assert_eq!(u["complete"], true, "{u:#}");
    let listed = env.json(&["snapshots", "--unit", &name, "--json"]);
    let snapshot = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "volume")
        .unwrap();
    let restored = env.restic_restore(snapshot);
    assert_eq!(
        std::fs::read_to_string(restored.join("rows")).unwrap(),
        "42 rows",
        "the point holds the device's data, not the empty mountpoint"
    );

    std::fs::write(device.join("rows"), "changed").unwrap();
    std::fs::write(device.join("later"), "after the backup").unwrap();
    env.cmd(&["restore", "--unit", &name, "--yes"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(device.join("rows")).unwrap(),
        "42 rows"
    );
    assert!(!device.join("later").exists());
    assert_eq!(
        docker(&["exec", &name, "cat", "/data/rows"]),
        "42 rows",
        "the container sees the restored data"
    );
}

/// A drill of a unit with a device-backed volume, a bind and an excluded bind mounts none of
/// the production paths: the container appends to a file in each of its mounts when it
/// starts, and none of the production files grows. The report says what became of each mount.
#[test]
fn drill_never_mounts_production_devices_or_binds() {
    if !support::docker_tests_enabled("drill_never_mounts_production_devices_or_binds") {
        return;
    }
    let env = installation("");
    let excluded = env.path("excluded");
    env.write_config(
        "config.toml",
        &with_health_timeout(&format!(
            "[discovery]\nexclude-paths = [\"{}\"]\n",
            excluded.display()
        )),
    );
    let name = format!("{}-drilled", env.prefix);
    let device = env.path("device");
    let bind = env.path("bind");
    for dir in [&device, &bind, &excluded] {
        std::fs::create_dir(dir).unwrap();
    }
    device_volume(&name, &device);
    let command = "rm -f /tmp/ready; for d in /data /bind /excluded; do echo start >> $d/starts; \
                   done; touch /tmp/ready; trap 'exit 0' TERM; sleep 2147483647 & wait";
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{name}:/data"),
        "-v",
        &format!("{}:/bind", bind.display()),
        "-v",
        &format!("{}:/excluded", excluded.display()),
        "--health-cmd",
        "test -f /tmp/ready",
        "--health-interval",
        "1s",
        IMAGE,
        "sh",
        "-c",
        command,
    ]);
    env.cmd(&["backup", "--unit", &name]).assert().success();
    let starts = || {
        [&device, &bind, &excluded]
            .map(|d| std::fs::read_to_string(d.join("starts")).unwrap_or_default())
    };
    let before = starts();
    assert!(
        before.iter().all(|s| s.lines().count() == 2),
        "started twice (run, backup): {before:?}"
    );

    let report = env.json(&["restore", "--drill", "--unit", &name, "--json"]);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["started"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(
        starts(),
        before,
        "the drilled container wrote into production paths"
    );
    let treatment = |destination: &str| {
        report["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == destination)
            .unwrap_or_else(|| panic!("no mount {destination} in {report:#}"))
            .clone()
    };
    let data = treatment("/data");
    assert_eq!(data["treatment"], "sandbox_copy", "{data:#}");
    assert!(
        data["copy"].as_str().unwrap().contains("-drill-"),
        "{data:#}"
    );
    let copied_bind = treatment("/bind");
    assert_eq!(copied_bind["treatment"], "sandbox_copy", "{copied_bind:#}");
    assert_ne!(copied_bind["copy"], bind.to_str().unwrap());
    let left_out = treatment("/excluded");
    assert_eq!(left_out["treatment"], "left_out", "{left_out:#}");
    assert_eq!(report["mounts"].as_array().unwrap().len(), 3, "{report:#}");
    let text = env
        .cmd(&["restore", "--drill", "--unit", &name])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains("left out") && text.contains("sandbox copy"),
        "{text}"
    );
    assert_eq!(starts(), before);
}

/// A local volume mounted from nfs is not protected, with the reason, in `units` and in the
/// dry run.
fn nfs_volume_is_a_reported_gap(env: &Env) {
    let nfs = format!("{}-nfs", env.prefix);
    docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "-o",
        "type=nfs",
        "-o",
        "o=addr=127.0.0.1,ro",
        "-o",
        "device=:/nothing",
        &nfs,
    ]);
    // Created, never started (and `nocopy`: the engine mounts it at creation otherwise): an
    // nfs mount with no server fails.
    docker(&[
        "create",
        "--name",
        &nfs,
        "-v",
        &format!("{nfs}:/data:nocopy"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);

    let units = env.json(&["units", "--json"]);
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == nfs.as_str())
        .unwrap();
    let nfs_volume = &unit["volumes"][0];
    assert_eq!(nfs_volume["status"], "not_protected", "{nfs_volume:#}");
    assert_eq!(
        nfs_volume["reason"]["code"], "device_volume",
        "{nfs_volume:#}"
    );
    let out = env
        .cmd(&["backup", "--unit", &nfs, "--dry-run"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned()
        + &String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        text.contains("mounted from nfs `:/nothing`"),
        "the dry run names the nfs gap: {text}"
    );
}

/// `docker volume create` of a local volume bound to `device`.
fn device_volume(name: &str, device: &Path) {
    docker(&[
        "volume",
        "create",
        "--driver",
        "local",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &format!("device={}", device.display()),
        name,
    ]);
}

/// Issue 16.5: a restore killed (SIGKILL) after its first volume swap leaves the unit mixed (one
/// volume restored, one not) and its containers stopped; the next run that touches the unit
/// rolls the swapped volume back before it starts any container, so the unit's data is all
/// from one point again. Then the rollback copies of a real restore are listed and pruned.
#[test]
fn a_restore_killed_between_swaps_is_rolled_back_by_the_next_run() {
    if !support::docker_tests_enabled(
        "a_restore_killed_between_swaps_is_rolled_back_by_the_next_run",
    ) {
        return;
    }
    let mut env = installation("");
    let (stack, _dir) = env.stack("");
    let db_volume = format!("{stack}_db-data");
    let cache_volume = format!("{stack}_web-cache");
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v1").unwrap();
    }
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v2").unwrap();
    }
    let marker = |v: &str| std::fs::read_to_string(volume_mountpoint(v).join("marker")).unwrap();

    // Volumes are restored in name order: db-data first. Hold right after its swap, kill.
    let first = volume_mountpoint(&db_volume);
    let mut child = env.spawn_logged_with(
        &["restore", "--unit", &stack, "--only", "volumes", "--yes"],
        &[(
            "KOPI_DOCKA_FAILPOINT",
            &format!("hold-after-swap:{}", first.display()),
        )],
    );
    child.wait_for_line("the first swap", |l| l.contains("holding after the swap"));
    child.signal(support::Signal::KILL);
    let killed = child.finish();
    assert!(!killed.status.success());
    assert_eq!(marker(&db_volume), "v1", "the first volume was swapped");
    assert_eq!(marker(&cache_volume), "v2", "the second was not");
    assert!(env.path("state/restore-swaps.json").exists());
    for c in [format!("{stack}_db_1"), format!("{stack}_web_1")] {
        assert_eq!(inspect(&c, "{{.State.Running}}"), "false", "{c} stopped");
    }

    // The next run: data rolled back first, then the containers started.
    let out = env.cmd(&["admin", "restart-stopped"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("rolled back {}", first.display())),
        "{text}"
    );
    assert_eq!(marker(&db_volume), "v2");
    assert_eq!(marker(&cache_volume), "v2");
    assert!(!env.path("state/restore-swaps.json").exists());
    for v in [&db_volume, &cache_volume] {
        let left = std::fs::read_dir(volume_mountpoint(v).parent().unwrap())
            .unwrap()
            .count();
        assert_eq!(left, 1, "only _data is left beside {v}");
    }
    for c in [format!("{stack}_db_1"), format!("{stack}_web_1")] {
        assert_eq!(inspect(&c, "{{.State.Running}}"), "true", "{c} runs again");
    }

    // A real restore keeps rollback copies: listed, then pruned.
    env.cmd(&["restore", "--unit", &stack, "--only", "volumes", "--yes"])
        .assert()
        .success();
    assert_eq!(marker(&db_volume), "v1");
    let listed = env.json(&["admin", "rollback-copies", "list", "--json"]);
    let copies = listed.as_array().unwrap();
    assert_eq!(copies.len(), 2, "{listed:#}");
    for c in copies {
        let path = PathBuf::from(c["path"].as_str().unwrap());
        assert_eq!(
            std::fs::read_to_string(path.join("marker")).unwrap(),
            "v2",
            "{c:#}"
        );
        assert_eq!(c["unit"], stack.as_str());
    }
    let kept = env.json(&[
        "admin",
        "rollback-copies",
        "prune",
        "--older-than",
        "1d",
        "--json",
    ]);
    assert_eq!(kept["removed"], serde_json::json!([]), "{kept:#}");
    assert_eq!(kept["kept"].as_array().unwrap().len(), 2);
    let pruned = env.json(&["admin", "rollback-copies", "prune", "--json"]);
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 2, "{pruned:#}");
    for c in copies {
        assert!(!Path::new(c["private"].as_str().unwrap()).exists());
    }
    let listed = env.json(&["admin", "rollback-copies", "list", "--json"]);
    assert_eq!(listed, serde_json::json!([]));
    assert_eq!(marker(&db_volume), "v1", "the live data stays");
}

/// Unmounts a test mount on drop (also when the test panics).
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        support::run(Command::new("mount").args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            at.to_str().unwrap(),
        ]));
        Self(at.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let out = Command::new("umount").arg("-l").arg(&self.0).output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("warning: cannot unmount {}", self.0.display());
        }
    }
}

/// Issue 16.5: a restore whose parts do not fit where they land is refused before anything is
/// stopped or written, with the sizes and what to do.
#[test]
fn a_restore_that_does_not_fit_is_refused_before_it_starts() {
    if !support::docker_tests_enabled("a_restore_that_does_not_fit_is_refused_before_it_starts") {
        return;
    }
    let env = installation("");
    let small = Mounted::tmpfs(&env.path("small"), "16m");
    let (one, two) = (small.0.join("one"), small.0.join("two"));
    for d in [&one, &two] {
        std::fs::create_dir(d).unwrap();
        support::fill_random(&d.join("payload.bin"), 3 << 20);
        std::fs::write(d.join("marker"), "v1").unwrap();
    }
    let name = format!("{}-solo", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{}:/one", one.display()),
        "-v",
        &format!("{}:/two", two.display()),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    env.cmd(&["backup", "--unit", &name]).assert().success();
    for d in [&one, &two] {
        std::fs::write(d.join("marker"), "v2").unwrap();
    }
    // Each bind alone (3 MiB) fits in what is left (about 4 MiB); both together do not.
    support::fill_random(&small.0.join("filler.bin"), 6 << 20);
    let started = inspect(&name, "{{.State.StartedAt}}");

    let out = env
        .cmd(&["restore", "--unit", &name, "--only", "binds", "--yes"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("not enough space"), "{stderr}");
    assert!(stderr.contains(&small.0.display().to_string()), "{stderr}");
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    for d in [&one, &two] {
        assert_eq!(std::fs::read_to_string(d.join("marker")).unwrap(), "v2");
    }
    assert_eq!(
        std::fs::read_dir(&small.0).unwrap().count(),
        3,
        "the binds and the filler only"
    );
    assert_eq!(
        inspect(&name, "{{.State.StartedAt}}"),
        started,
        "never stopped"
    );
    drop(small);
}

/// A drill of `stack` (whose recipe adds `SYS_ADMIN`) is refused without `--trust-recipe` (no
/// terminal to ask on) before it creates anything, and passes with it.
fn drill_needs_trust(env: &Env, stack: &str) {
    // A drill: refused without --trust-recipe (no terminal to ask on), nothing created.
    // DATABASE_URL is redacted in the saved configuration and in no env file of the recipe.
    let secrets = env_file(
        env,
        "DATABASE_URL=postgres://app:fixture-secret@db:5432/app\n",
    );
    let secrets = secrets.to_str().unwrap();
    let events = support::EngineEvents::start(&env.prefix);
    let out = env
        .cmd(&["restore", "--unit", stack, "--drill", "--env-file", secrets])
        .assert()
        .code(2);
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(text.contains("cap_add SYS_ADMIN"), "{text}");
    assert!(text.contains("--trust-recipe"), "{text}");
    let created: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| e.action == "create" && e.name.contains("-drill-"))
        .collect();
    assert!(created.is_empty(), "the refused drill created {created:#?}");
    let drill = env.json(&[
        "restore",
        "--unit",
        stack,
        "--drill",
        "--env-file",
        secrets,
        "--trust-recipe",
        "--json",
    ]);
    assert_eq!(drill["passed"], true, "{drill:#}");
}

/// Issue 16: a recipe that needs trust (here `cap_add: [SYS_ADMIN]`) is refused by a drill
/// unless `--trust-recipe` (a drill creates containers from the recipe too), and by
/// `disaster-recovery import --restore-all` unless `--trust-recipe`; and `--restore-all`, like
/// `restore`, first rolls back what a restore killed between its swaps left, and starts the
/// containers it left stopped, before it restores anything.
#[test]
fn restore_all_recovers_first_and_needs_trust_like_restore_and_so_does_a_drill() {
    if !support::docker_tests_enabled(
        "restore_all_recovers_first_and_needs_trust_like_restore_and_so_does_a_drill",
    ) {
        return;
    }
    let mut env = installation("");
    let (stack, _dir) = env.stack("services:\n  web:\n    cap_add: [SYS_ADMIN]\n");
    let db_volume = format!("{stack}_db-data");
    let cache_volume = format!("{stack}_web-cache");
    let containers = [format!("{stack}_db_1"), format!("{stack}_web_1")];
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v1").unwrap();
    }
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    for v in [&db_volume, &cache_volume] {
        std::fs::write(volume_mountpoint(v).join("marker"), "v2").unwrap();
    }
    let marker = |v: &str| std::fs::read_to_string(volume_mountpoint(v).join("marker")).unwrap();
    let passphrase = env.path("dr-passphrase");
    support::write_private(&passphrase, "kdtest-correct-horse-battery\n");
    let bundle = env.path("bundle.age");
    env.cmd(&[
        "dr",
        "export",
        bundle.to_str().unwrap(),
        "--passphrase-file",
    ])
    .arg(&passphrase)
    .assert()
    .success();

    drill_needs_trust(&env, &stack);

    // A restore killed right after its first swap: db-data swapped, web-cache not, the
    // containers stopped.
    let first = volume_mountpoint(&db_volume);
    let mut child = env.spawn_logged_with(
        &["restore", "--unit", &stack, "--only", "volumes", "--yes"],
        &[(
            "KOPI_DOCKA_FAILPOINT",
            &format!("hold-after-swap:{}", first.display()),
        )],
    );
    child.wait_for_line("the first swap", |l| l.contains("holding after the swap"));
    child.signal(support::Signal::KILL);
    assert!(!child.finish().status.success());
    assert_eq!(marker(&db_volume), "v1");
    for c in &containers {
        assert_eq!(inspect(c, "{{.State.Running}}"), "false", "{c} stopped");
    }

    let import = |extra: &[&str]| {
        env.cmd(&[
            "disaster-recovery",
            "import",
            bundle.to_str().unwrap(),
            "--restore-all",
            "--json",
            "--passphrase-file",
        ])
        .arg(&passphrase)
        .args(extra)
        .assert()
    };
    // Without --trust-recipe: the half-done restore is rolled back and its containers run
    // again, then the unit is refused (exit 3: not every unit was restored).
    let out = import(&[]).code(3);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        report["recovered"]["rolled_back"],
        serde_json::json!([first.display().to_string()]),
        "{report:#}"
    );
    let error = report["restored"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("cap_add SYS_ADMIN"), "{report:#}");
    assert!(error.contains("--trust-recipe"), "{report:#}");
    assert_eq!(marker(&db_volume), "v2", "rolled back");
    assert_eq!(marker(&cache_volume), "v2");
    for c in &containers {
        assert_eq!(inspect(c, "{{.State.Running}}"), "true", "{c} runs again");
    }
    assert!(!env.path("state/restore-swaps.json").exists());

    // With it: restored.
    let out = import(&["--trust-recipe"]).success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        report["restored"][0]["outcome"]["errors"],
        serde_json::json!([]),
        "{report:#}"
    );
    assert!(report.get("recovered").is_none(), "{report:#}");
    assert_eq!(marker(&db_volume), "v1");
    assert_eq!(marker(&cache_volume), "v1");
    for c in &containers {
        assert_eq!(inspect(c, "{{.State.Running}}"), "true", "{c} runs");
    }
}

/// Issue 16.3: a container the engine had to kill when the restore stopped it (it ignores
/// SIGTERM) is in the restore's outcome as data (name, seconds, timeout), with its hint in the
/// text, like in a backup's report.
#[test]
fn a_container_killed_while_the_restore_stops_it_is_in_the_outcome() {
    if !support::docker_tests_enabled(
        "a_container_killed_while_the_restore_stops_it_is_in_the_outcome",
    ) {
        return;
    }
    let env = Env::builder()
        .extra("[backup]\nstop-timeout-seconds = 2\nhealth-timeout-seconds = 30\n")
        .init()
        .build();
    let name = format!("{}-ignores-term", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        &format!("{name}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 1; done",
    ]);
    env.cmd(&["backup", "--unit", &name, "--scope", "minimal"])
        .assert()
        .success();
    let outcome = env.json(&["restore", "--unit", &name, "--yes", "--json"]);
    let killed = outcome["killed"].as_array().unwrap();
    assert_eq!(killed.len(), 1, "{outcome:#}");
    assert_eq!(killed[0]["name"], name.as_str());
    assert_eq!(killed[0]["timeout_seconds"], 2);
    assert!(killed[0]["seconds"].as_f64().unwrap() >= 1.5, "{outcome:#}");
    assert!(
        !outcome["warnings"]
            .to_string()
            .contains("ignored its stop signal"),
        "the kill is data, not a warning as well: {outcome:#}"
    );
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
    let text = env
        .cmd(&["restore", "--unit", &name, "--yes"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("killed: {name} ignored its stop signal")),
        "{text}"
    );
}

/// Issue 16.11: a `compose up` that hangs is cut off after `[backup] compose-timeout-seconds`
/// with a message that names the limit; nothing it started is left running and nothing the
/// restore stopped (here another container that uses the stack's volume) is left stopped.
///
/// The real docker-compose cannot be made to hang on its own here: with the image present it
/// never pulls, and a registry that does not answer would need a fake registry server. So the
/// compose command on PATH is a wrapper script that hangs, then would run the real
/// docker-compose.
#[test]
fn a_hanging_compose_is_cut_off_and_leaves_nothing_stopped() {
    if !support::docker_tests_enabled("a_hanging_compose_is_cut_off_and_leaves_nothing_stopped") {
        return;
    }
    let mut env = Env::builder()
        .extra("[backup]\ncompose-timeout-seconds = 3\nhealth-timeout-seconds = 30\n")
        .init()
        .build();
    let (stack, _dir) = env.stack("");
    env.cmd(&["backup", "--unit", &stack]).assert().success();
    // The stack is gone (so the restore starts it with compose), and another container uses
    // its volume: the restore stops that one while it replaces the data.
    for c in [format!("{stack}_db_1"), format!("{stack}_web_1")] {
        docker(&["rm", "-f", &c]);
    }
    let reader = format!("{}-reader", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &reader,
        "-v",
        &format!("{stack}_db-data:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);

    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v docker-compose"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = env.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let pid_file = env.path("compose-sleep.pid");
    let wrapper = bin.join("docker-compose");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > '{}'\nwait $!\nexec '{}' \"$@\"\n",
            pid_file.display(),
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let started = std::time::Instant::now();
    let out = env
        .cmd(&["restore", "--unit", &stack, "--yes", "--json"])
        .env("PATH", path)
        .assert()
        .code(1);
    let outcome: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let errors = outcome["errors"].to_string();
    assert!(
        errors.contains("docker-compose -p") && errors.contains("did not finish within 3s"),
        "{outcome:#}"
    );
    assert!(errors.contains("compose-timeout-seconds"), "{outcome:#}");
    assert!(
        started.elapsed() < std::time::Duration::from_mins(2),
        "the restore took {:?}",
        started.elapsed()
    );
    assert!(
        outcome["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == format!("{stack}_db-data").as_str()),
        "the data was restored before the start: {outcome:#}"
    );
    assert_eq!(
        inspect(&reader, "{{.State.Running}}"),
        "true",
        "the restore left {reader} stopped"
    );
    // What compose started (the wrapper's sleep) is gone, not just compose itself.
    let sleep = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sleep.trim()));
    let alive = stat.is_ok_and(|stat| {
        stat.contains("(sleep)")
            && stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    });
    assert!(
        !alive,
        "compose's child (sleep, pid {}) still runs",
        sleep.trim()
    );
}
