//! Per-service and per-mount settings: exclude globs inside volumes and binds, the
//! `kopi-docka.stop-timeout` label, the same keys in the config's `[units]` tables, and label
//! values that cannot be followed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use kopi_docka_testkit as support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::{EngineEvents, Env, IMAGE, docker, volume_mountpoint};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Every path below the snapshot's root, relative to it, as restic lists it.
fn listed(env: &Env, id: &str) -> BTreeSet<String> {
    let out = support::restic(&env.repo(), &env.password_file(), ["ls", "--json", id]);
    let mut lines = out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let head: Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let root = head["paths"][0].as_str().unwrap().to_owned();
    lines
        .map(|l| serde_json::from_slice::<Value>(l).unwrap())
        .filter_map(|node| {
            let path = node["path"].as_str()?.to_owned();
            path.strip_prefix(&format!("{root}/")).map(str::to_owned)
        })
        .collect()
}

/// `units --json` with `config`, whatever its exit code: other tests on the same engine may
/// have units with label errors at the same moment (exit 2). Returns the unit `name`, which
/// must have none.
fn unit_listing(env: &Env, config: &str, name: &str) -> (Value, Value) {
    let out = env.cmd_with(config, &["units", "--json"]).output().unwrap();
    let units: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {units:#}"))
        .clone();
    assert!(unit.get("policy_errors").is_none(), "{unit}");
    (units, unit)
}

/// The id of the unit's snapshot of `volume` in a backup report.
fn volume_snapshot(report: &Value, volume: &str) -> String {
    report["units"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "volume" && s["volume"] == volume)
        .unwrap_or_else(|| panic!("no snapshot of {volume}: {report:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Globs from a label (`cache/**, *.tmp` on the service) and from the config (per volume) keep
/// those files out of the restore point; everything else is in it and comes back with a
/// restore, which replaces the volume (the excluded files are in the rollback copy, not in the
/// restored volume). `units`, `--dry-run` and the coverage show the globs.
#[test]
fn excluded_files_are_not_in_the_point_and_the_rest_round_trips() {
    if !support::docker_tests_enabled(
        "excluded_files_are_not_in_the_point_and_the_rest_round_trips",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let stack = format!("{prefix}-stack");
    let (cache, db) = (format!("{stack}_web-cache"), format!("{stack}_db-data"));
    let mut env = Env::builder()
        .prefix(&prefix)
        .extra(&format!(
            "[units.\"{stack}\".volumes.\"{db}\"]\nexclude = [\"node_modules\"]\n"
        ))
        .init()
        .build();
    env.stack("services:\n  web:\n    labels:\n      kopi-docka.exclude: \"cache/**, *.tmp\"\n");
    let cache_dir = volume_mountpoint(&cache);
    for (rel, text) in [
        ("cache/big.bin", "regenerated"),
        ("cache/sub/x", "regenerated"),
        ("notes.tmp", "scratch"),
        ("deep/a/b.tmp", "scratch"),
        ("deep/a/keep.dat", "keep me"),
        // `cache/**` is anchored at the volume's root: a deeper `cache` is kept.
        ("deep/cache/inner.txt", "keep me too"),
        ("keep.txt", "precious"),
    ] {
        write(&cache_dir, rel, text);
    }
    let db_dir = volume_mountpoint(&db);
    for (rel, text) in [
        ("node_modules/pkg/index.js", "vendored"),
        ("src/node_modules/y.js", "vendored"),
        ("src/app.js", "source"),
    ] {
        write(&db_dir, rel, text);
    }

    let (_, unit) = unit_listing(&env, "config.toml", &stack);
    let volume = |name: &str| {
        unit["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        volume(&cache)["exclude"],
        serde_json::json!(["cache/**", "*.tmp"])
    );
    assert_eq!(volume(&db)["exclude"], serde_json::json!(["node_modules"]));
    let covered = unit["coverage"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["identifier"] == cache.as_str())
        .unwrap();
    assert_eq!(
        covered["exclude"],
        serde_json::json!(["cache/**", "*.tmp"]),
        "{covered}"
    );
    let plan = env
        .cmd(&["backup", "--unit", &stack, "--dry-run"])
        .assert()
        .success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(
        plan.contains(&format!("volume:      {cache}")) && plan.contains("except cache/**, *.tmp"),
        "{plan}"
    );

    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    assert_eq!(report["units"][0]["status"], "success", "{report:#}");
    let in_cache = listed(&env, &volume_snapshot(&report, &cache));
    for gone in ["cache/big.bin", "cache/sub", "notes.tmp", "deep/a/b.tmp"] {
        assert!(
            !in_cache.contains(gone),
            "{gone} is in the point: {in_cache:?}"
        );
    }
    for kept in ["deep/a/keep.dat", "deep/cache/inner.txt", "keep.txt"] {
        assert!(
            in_cache.contains(kept),
            "{kept} is not in the point: {in_cache:?}"
        );
    }
    let in_db = listed(&env, &volume_snapshot(&report, &db));
    assert!(
        !in_db.iter().any(|p| p.contains("node_modules")),
        "{in_db:?}"
    );
    assert!(
        in_db.contains("src/app.js") && in_db.contains("state"),
        "{in_db:?}"
    );

    // Changed after the backup: the restore brings back the backed-up content.
    write(&cache_dir, "keep.txt", "changed later");
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    let read = |root: &Path, rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    assert_eq!(read(&cache_dir, "keep.txt").as_deref(), Some("precious"));
    assert_eq!(
        read(&cache_dir, "deep/a/keep.dat").as_deref(),
        Some("keep me")
    );
    assert_eq!(
        read(&cache_dir, "deep/cache/inner.txt").as_deref(),
        Some("keep me too")
    );
    assert_eq!(read(&db_dir, "src/app.js").as_deref(), Some("source"));
    // The restore replaced the volume: what the point left out is not in it.
    for gone in ["cache/big.bin", "notes.tmp", "deep/a/b.tmp"] {
        assert!(
            !cache_dir.join(gone).exists(),
            "{gone} survived the restore"
        );
    }
    assert!(!db_dir.join("node_modules").exists());
}

/// A glob that does not parse is a clear error: in a label, `units` exits 2 and names the
/// label and the glob, and a backup leaves the unit untouched; in the config, loading fails.
#[test]
fn a_bad_exclude_glob_is_a_clear_error() {
    if !support::docker_tests_enabled("a_bad_exclude_glob_is_a_clear_error") {
        return;
    }
    let env = Env::builder().init().build();
    let name = format!("{}-badglob", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "kopi-docka.exclude=cache/[abc",
        IMAGE,
        "sh",
        "-c",
        support::IDLE,
    ]);
    let out = env.cmd(&["units"]).assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains(
            "label kopi-docka.exclude: exclude glob `cache/[abc` is not a valid glob: unclosed \
             character class"
        ),
        "{text}"
    );
    let started = support::started_at(&name);
    let out = env
        .cmd(&["backup", "--unit", &name, "--json"])
        .assert()
        .failure();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["units"][0]["status"], "failed", "{report:#}");
    assert_eq!(
        support::started_at(&name),
        started,
        "the container was touched"
    );

    env.write_config(
        "bad.toml",
        &format!("[units.\"{name}\"]\nexclude = [\"ok/**\", \"{{unclosed\"]\n"),
    );
    let out = env.cmd_with("bad.toml", &["units"]).assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        text.contains(&format!(
            "[units.\"{name}\"] exclude: exclude glob `{{unclosed`"
        )),
        "{text}"
    );
}

/// `kopi-docka.policy=stpo` (a typo) and a stop timeout that is no number are errors in
/// `units` (exit 2) and `doctor`, never a silent `stop`; the config's services table fixes
/// the typo without touching the container.
#[test]
fn unknown_label_values_are_errors_and_the_config_wins() {
    if !support::docker_tests_enabled("unknown_label_values_are_errors_and_the_config_wins") {
        return;
    }
    let env = Env::builder().init().build();
    let name = format!("{}-typo", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "kopi-docka.policy=stpo",
        "--label",
        "kopi-docka.stop-timeout=30s",
        IMAGE,
        "sh",
        "-c",
        support::IDLE,
    ]);
    let out = env.cmd(&["units"]).assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("label kopi-docka.policy=\"stpo\" is not a policy; use stop, dump, skip or snapshot-live"),
        "{text}"
    );
    let doctor = env.cmd(&["doctor", "--json"]).assert().failure();
    let doctor: Value = serde_json::from_slice(&doctor.get_output().stdout).unwrap();
    let check = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("labels {name}"))
        .unwrap_or_else(|| panic!("no labels check: {doctor:#}"));
    assert_eq!(check["status"], "fail", "{check}");

    // The config replaces the policy; the stop timeout label is still wrong.
    env.write_config(
        "fixed.toml",
        &format!("[units.\"{name}\".services.\"{name}\"]\npolicy = \"skip\"\n"),
    );
    let out = env.cmd_with("fixed.toml", &["units"]).assert().code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(!text.contains("stpo"), "{text}");
    assert!(
        text.contains("label kopi-docka.stop-timeout=\"30s\" is not a number of seconds"),
        "{text}"
    );
    env.write_config(
        "fixed.toml",
        &format!(
            "[units.\"{name}\".services.\"{name}\"]\npolicy = \"skip\"\nstop-timeout-seconds = 30\n\
             [units.\"{name}\".services.\"nosuch\"]\npolicy = \"skip\"\n"
        ),
    );
    let (units, unit) = unit_listing(&env, "fixed.toml", &name);
    assert_eq!(unit["containers"][0]["policy"]["policy"], "skip", "{unit}");
    assert_eq!(unit["containers"][0]["stop_timeout"], 30, "{unit}");
    // A table that names no service of the unit is said, not silently ignored.
    let warned = units["warnings"].as_array().cloned().unwrap_or_default();
    let want = format!("[units.\"{name}\".services.\"nosuch\"] names no service of the unit");
    assert!(
        warned
            .iter()
            .any(|w| w.as_str().unwrap().starts_with(&want)),
        "{warned:?}"
    );
}

/// A PID 1 that ignores SIGTERM: every stop waits for the whole timeout, then the engine kills.
const IGNORES_TERM: &str = "trap '' TERM; while true; do sleep 1; done";

/// `kopi-docka.stop-timeout` gives one service a longer stop than `[backup]
/// stop-timeout-seconds`, measured from the engine's own events (stop signal to kill); the
/// report names it as killed after that timeout. The config's `stop-timeout-seconds` for a
/// service wins over its label.
#[test]
fn the_stop_timeout_label_and_config_key_set_a_services_stop() {
    if !support::docker_tests_enabled("the_stop_timeout_label_and_config_key_set_a_services_stop") {
        return;
    }
    let prefix = support::unique_prefix();
    let (labelled, configured) = (format!("{prefix}-label5"), format!("{prefix}-config4"));
    let env = Env::builder()
        .prefix(&prefix)
        .extra(&format!(
            "[backup]\nstop-timeout-seconds = 1\n\
             [units.\"{configured}\".services.\"{configured}\"]\nstop-timeout-seconds = 4\n"
        ))
        .init()
        .build();
    for (name, label) in [(&labelled, "5"), (&configured, "9")] {
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &format!("kopi-docka.stop-timeout={label}"),
            IMAGE,
            "sh",
            "-c",
            IGNORES_TERM,
        ]);
    }
    let events = EngineEvents::start(&env.prefix);
    let report = env.json(&[
        "backup",
        "--unit",
        &labelled,
        "--unit",
        &configured,
        "--scope",
        "minimal",
        "--json",
    ]);
    for (name, timeout) in [(&labelled, 5_u32), (&configured, 4)] {
        let want = f64::from(timeout);
        let signalled = events.find(name, "kill", events.since()).unwrap();
        let died = events.wait_for(name, "die", signalled.time);
        let waited = died
            .time
            .duration_since(signalled.time)
            .unwrap()
            .as_secs_f64();
        assert!(
            (want - 0.5..want + 3.0).contains(&waited),
            "{name} was killed {waited:.1}s after its stop signal, expected {want}s"
        );
        let unit = report["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name.as_str())
            .unwrap();
        let killed = unit["killed"].as_array().unwrap();
        assert_eq!(killed.len(), 1, "{unit}");
        assert_eq!(killed[0]["name"], name.as_str(), "{unit}");
        assert_eq!(
            killed[0]["timeout_seconds"].as_u64().unwrap(),
            u64::from(timeout),
            "{unit}"
        );
        assert_eq!(
            support::docker(&["inspect", "--format", "{{.State.Running}}", name]).trim(),
            "true",
            "{name} was not started again"
        );
    }
}

/// The snapshot cold pass reads a frozen copy of the bind (btrfs snapshot): the globs apply
/// there too, anchored at the copy's root.
#[test]
fn excludes_apply_to_the_snapshot_cold_pass() {
    if !support::docker_tests_enabled("excludes_apply_to_the_snapshot_cold_pass") {
        return;
    }
    let fs = support::loopfs::btrfs();
    let env = Env::builder()
        .extra("[backup]\ncold-pass = \"snapshot\"\n")
        .init()
        .build();
    let name = format!("{}-frozen", env.prefix);
    let bind = fs.data.join(&name);
    for (rel, text) in [
        ("cache/big.bin", "regenerated"),
        ("sub/x.tmp", "scratch"),
        ("sub/keep.txt", "precious"),
    ] {
        write(&bind, rel, text);
    }
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "kopi-docka.exclude=cache/**\n*.tmp",
        "-v",
        &format!("{}:/bind", bind.display()),
        IMAGE,
        "sh",
        "-c",
        support::IDLE,
    ]);
    let report = env.json(&["backup", "--unit", &name, "--scope", "minimal", "--json"]);
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "success", "{unit}");
    assert_eq!(unit["cold_pass"], "snapshot", "{unit}");
    let id = unit["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "bind")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let in_point = listed(&env, &id);
    assert!(in_point.contains("sub/keep.txt"), "{in_point:?}");
    assert!(
        !in_point.contains("cache/big.bin") && !in_point.contains("sub/x.tmp"),
        "{in_point:?}"
    );
    docker(&["rm", "-f", &name]);
    std::fs::remove_dir_all(&bind).unwrap();
}
