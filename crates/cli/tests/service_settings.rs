//! Per-service, per-mount and per-unit settings: exclude globs inside volumes and binds, the
//! `kopi-docka.stop-timeout` label, the same keys in the config's `[units]` tables, label
//! values that cannot be followed, hooks inside containers, the `verify` hook, restore state
//! `always` and per-unit stop and start timeouts.

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
        events.assert_killed_after(&report, name, timeout);
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

/// `kopi-docka backup --json --unit <names>` with `config`, whatever its exit code: the
/// report, and the exit code.
fn backup_report(env: &Env, config: &str, units: &[&str]) -> (Value, Option<i32>) {
    let mut args = vec!["backup", "--scope", "minimal", "--json"];
    for unit in units {
        args.extend(["--unit", unit]);
    }
    let out = env.cmd_with(config, &args).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.code())
}

fn running(name: &str) -> String {
    docker(&["inspect", "--format", "{{.State.Running}}", name])
        .trim()
        .to_owned()
}

/// An in-container hook that appends `<point> <uid>` to /data/hooks/log inside `container`
/// (not under /tmp: `fs.protected_regular` keeps root from appending to another user's file in
/// a sticky directory) and creates `/data/hooks/by-<point>`.
fn logging_hook(container: &str, user: Option<&str>) -> String {
    let user = user
        .map(|u| format!("user = \"{u}\", "))
        .unwrap_or_default();
    format!(
        "{{ container = \"{container}\", {user}argv = [\"sh\", \"-c\", \
         \"echo \\\"$KOPI_DOCKA_HOOK $(id -u)\\\" >> /data/hooks/log && touch /data/hooks/by-$KOPI_DOCKA_HOOK\"] }}"
    )
}

/// Hooks inside a container (Nextcloud's `php occ maintenance:mode` as `www-data`): they run
/// through the engine's exec API as the given user (the file they create belongs to it), at
/// pre-stop, post-start and verify, in that order; one that fails fails the unit with its
/// output, and the container is never left stopped; one at post-stop (the container is
/// stopped then) and one naming no container of the unit are clear errors.
#[test]
fn hooks_run_inside_a_container_as_its_user_and_failures_say_why() {
    if !support::docker_tests_enabled(
        "hooks_run_inside_a_container_as_its_user_and_failures_say_why",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let name = format!("{prefix}-inhook");
    let env = Env::builder().prefix(&prefix).init().build();
    support::idle_with_volume(&name);
    docker(&["exec", &name, "mkdir", "-m", "777", "/data/hooks"]);
    env.write_config(
        "hooks.toml",
        &format!(
            "[units.\"{name}\".hooks]\npre-stop = {}\npost-start = {}\nverify = {}\n",
            logging_hook(&name, Some("nobody")),
            logging_hook(&name, None),
            logging_hook(&name, Some("65534:65534")),
        ),
    );
    let (report, code) = backup_report(&env, "hooks.toml", &[&name]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(
        docker(&["exec", &name, "cat", "/data/hooks/log"]),
        "pre-stop 65534\npost-start 0\nverify 65534"
    );
    assert_eq!(
        docker(&[
            "exec",
            &name,
            "stat",
            "-c",
            "%U %u",
            "/data/hooks/by-pre-stop"
        ])
        .trim(),
        "nobody 65534",
        "the hook ran as the configured user"
    );
    assert_eq!(
        docker(&[
            "exec",
            &name,
            "stat",
            "-c",
            "%u",
            "/data/hooks/by-post-start"
        ])
        .trim(),
        "0"
    );
    assert_eq!(running(&name), "true");

    for (point, hook, expected) in [
        (
            "pre-stop",
            format!(
                "{{ container = \"{name}\", argv = [\"sh\", \"-c\", \"echo maintenance-mode-refused >&2; exit 3\"] }}"
            ),
            "pre-stop hook sh in container",
        ),
        (
            "post-stop",
            logging_hook(&name, None),
            "is not running: a hook inside a container needs it running",
        ),
        (
            "pre-stop",
            "{ container = \"nope\", argv = [\"true\"] }".to_owned(),
            "has no service or container `nope`",
        ),
    ] {
        env.write_config(
            "bad.toml",
            &format!("[units.\"{name}\".hooks]\n{point} = {hook}\n"),
        );
        let (report, code) = backup_report(&env, "bad.toml", &[&name]);
        assert_eq!(code, Some(1), "{report:#}");
        let unit = &report["units"][0];
        assert_eq!(unit["status"], "failed", "{unit:#}");
        let errors = unit["errors"].to_string();
        assert!(errors.contains(expected), "{point}: {errors}");
        if expected.starts_with("pre-stop hook sh") {
            assert!(
                errors.contains("exit code 3") && errors.contains("maintenance-mode-refused"),
                "the exit code and the hook's output are in the error: {errors}"
            );
        }
        assert_eq!(running(&name), "true", "{point}: left stopped");
    }
}

/// A failing `verify` hook (after the unit is back) fails the unit and the run, names the
/// hook's output, keeps the restore point (complete) and leaves the unit running.
#[test]
fn a_failing_verify_hook_fails_the_unit_and_keeps_it_running() {
    if !support::docker_tests_enabled("a_failing_verify_hook_fails_the_unit_and_keeps_it_running") {
        return;
    }
    let prefix = support::unique_prefix();
    let name = format!("{prefix}-verify");
    let env = Env::builder().prefix(&prefix).init().build();
    support::idle_with_volume(&name);
    env.write_config(
        "verify.toml",
        &format!(
            "[units.\"{name}\".hooks]\n\
             verify = [\"/bin/sh\", \"-c\", \"echo app-did-not-answer >&2; exit 7\"]\n"
        ),
    );
    let (report, code) = backup_report(&env, "verify.toml", &[&name]);
    assert_eq!(code, Some(1), "{report:#}");
    let unit = &report["units"][0];
    assert_eq!(unit["status"], "failed", "{unit:#}");
    assert_eq!(unit["complete"], true, "the point is kept: {unit:#}");
    let errors = unit["errors"].to_string();
    assert!(
        errors.contains("verify hook") && errors.contains("app-did-not-answer"),
        "{errors}"
    );
    assert_eq!(running(&name), "true");
}

/// Restore state: `always` (the unit's key, or a container's `kopi-docka.restore-state`
/// label, which wins for its container) starts a stopped container after the backup;
/// `previous` (the default) leaves one stopped.
#[test]
fn restore_state_always_starts_a_stopped_container() {
    if !support::docker_tests_enabled("restore_state_always_starts_a_stopped_container") {
        return;
    }
    let prefix = support::unique_prefix();
    let (label_previous, label_always, unit_always) = (
        format!("{prefix}-lprevious"),
        format!("{prefix}-lalways"),
        format!("{prefix}-ualways"),
    );
    let env = Env::builder().prefix(&prefix).init().build();
    for (name, label) in [
        (&label_previous, "kopi-docka.restore-state=previous"),
        (&label_always, "kopi-docka.restore-state=always"),
        (&unit_always, "kdtest.unlabelled=1"),
    ] {
        docker(&[
            "create",
            "--name",
            name,
            "--label",
            label,
            "-v",
            &format!("{name}-data:/data"),
            IMAGE,
            "sh",
            "-c",
            support::IDLE,
        ]);
    }
    env.write_config(
        "always.toml",
        &format!(
            "[units.\"{label_previous}\"]\nrestore-state = \"always\"\n\
             [units.\"{label_always}\"]\nrestore-state = \"previous\"\n\
             [units.\"{unit_always}\"]\nrestore-state = \"always\"\n"
        ),
    );
    // The dry run says which stopped containers the backup will start.
    let out = env
        .cmd_with(
            "always.toml",
            &[
                "backup",
                "--dry-run",
                "--json",
                &label_previous,
                &label_always,
                &unit_always,
            ],
        )
        .assert()
        .success();
    let plan: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let start_after = |name: &str| {
        plan["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {plan:#}"))["start_after"]
            .clone()
    };
    assert_eq!(start_after(&label_previous), Value::Null, "{plan:#}");
    assert_eq!(
        start_after(&label_always),
        serde_json::json!([label_always])
    );
    assert_eq!(start_after(&unit_always), serde_json::json!([unit_always]));
    let (report, code) = backup_report(
        &env,
        "always.toml",
        &[&label_previous, &label_always, &unit_always],
    );
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(running(&label_previous), "false", "its label says previous");
    assert_eq!(running(&label_always), "true", "its label says always");
    assert_eq!(running(&unit_always), "true", "its unit says always");
    docker(&["stop", "-t", "0", &unit_always]);
    // Without `always` anywhere: nothing stopped is started.
    env.write_config("previous.toml", "");
    let (report, code) = backup_report(&env, "previous.toml", &[&unit_always]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(running(&unit_always), "false");
}

/// `[units."x"] stop-timeout-seconds` replaces `[backup] stop-timeout-seconds` for the unit's
/// containers (a container that ignores SIGTERM is killed after the unit's timeout), and
/// `start-timeout-seconds` replaces `health-timeout-seconds` (a container that never becomes
/// healthy is reported after the unit's timeout, not the run's two minutes).
#[test]
fn per_unit_stop_and_start_timeouts() {
    if !support::docker_tests_enabled("per_unit_stop_and_start_timeouts") {
        return;
    }
    let prefix = support::unique_prefix();
    let name = format!("{prefix}-unittimeout");
    let env = Env::builder().prefix(&prefix).init().build();
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--health-cmd",
        "false",
        "--health-interval",
        "1s",
        "-v",
        &format!("{name}-data:/data"),
        IMAGE,
        "sh",
        "-c",
        IGNORES_TERM,
    ]);
    env.write_config(
        "timeouts.toml",
        &format!(
            "[backup]\nstop-timeout-seconds = 1\n\
             [units.\"{name}\"]\nstop-timeout-seconds = 3\nstart-timeout-seconds = 2\n"
        ),
    );
    let events = EngineEvents::start(&env.prefix);
    let started = std::time::Instant::now();
    let (report, _) = backup_report(&env, "timeouts.toml", &[&name]);
    assert!(
        started.elapsed() < std::time::Duration::from_mins(1),
        "the run's health timeout (120 s) was used"
    );
    let waited = events.stop_signal_to_death(&name);
    assert!(
        (2.5..6.0).contains(&waited),
        "killed {waited:.1}s after its stop signal, expected the unit's 3s"
    );
    let unit = &report["units"][0];
    assert_eq!(unit["killed"][0]["timeout_seconds"], 3, "{unit:#}");
    let warnings = unit["warnings"].to_string();
    assert!(warnings.contains("2s after its start"), "{warnings}");
    assert_eq!(running(&name), "true");
}
