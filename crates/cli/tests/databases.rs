//! Database dumps (`kopi-docka.policy=dump`) against real database servers built from Debian
//! packages (scripts/build-db-images.sh): the database keeps running while the app that writes
//! to it is stopped and its dump is taken; the dump is part of the unit's restore point; a
//! restore after `down -v` brings back exactly the rows committed before the app was stopped;
//! a failing dump fails the unit, leaves no point `restore --latest` would pick, and every
//! stopped service runs again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Env, docker};

const POSTGRES_IMAGE: &str = "kdtest/postgres:15";
const DB_PASSWORD: &str = "db-secret-7f3a";

fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "--format", format, name])
}

fn require_image(image: &str) {
    let found = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "the test image {image} is missing: run scripts/build-db-images.sh (scripts/test.sh does)"
    );
}

/// A PostgreSQL stack: `db` under `kopi-docka.policy=dump`, `app` inserting one row per
/// transaction as fast as it can until it is stopped.
fn postgres_stack(env: &mut Env, extra_db_labels: &str) -> (String, PathBuf) {
    require_image(POSTGRES_IMAGE);
    let dir = env.path("pgstack");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  db:
    image: {POSTGRES_IMAGE}
    environment:
      POSTGRES_PASSWORD: {DB_PASSWORD}
      POSTGRES_DB: app
    labels:
      kopi-docka.policy: dump
{extra_db_labels}
    volumes:
      - pgdata:/var/lib/postgresql/data
  app:
    image: {POSTGRES_IMAGE}
    depends_on: [db]
    environment:
      PGPASSWORD: {DB_PASSWORD}
    entrypoint:
      - sh
      - -c
      - |
        trap 'exit 0' TERM
        until psql -h db -U postgres -d app -X -q -c 'create table if not exists rows (id serial primary key, at timestamptz not null default clock_timestamp())' 2>/dev/null; do sleep 0.2; done
        (while true; do psql -h db -U postgres -d app -X -q -c 'insert into rows default values' || sleep 0.2; done) &
        wait
volumes:
  pgdata: {{}}
"#
        ),
    )
    .unwrap();
    let project = format!("{}-pg", env.prefix);
    env.resources.compose_up(&project, &dir);
    (project, dir)
}

/// `psql` in the database container with the right password; its output.
fn sql(container: &str, query: &str) -> String {
    docker(&[
        "exec",
        "-e",
        &format!("PGPASSWORD={DB_PASSWORD}"),
        container,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "app",
        "-X",
        "-q",
        "-t",
        "-A",
        "-c",
        query,
    ])
}

/// Waits until the app has committed rows (the server answers and the table fills).
fn wait_for_rows(db: &str, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        let count = Command::new("docker")
            .args([
                "exec",
                "-e",
                &format!("PGPASSWORD={DB_PASSWORD}"),
                db,
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "app",
                "-X",
                "-t",
                "-A",
                "-c",
                "select count(*) from rows",
            ])
            .output()
            .unwrap();
        let n: u64 = String::from_utf8_lossy(&count.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if n >= at_least {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app wrote no rows within 60 s"
        );
        // Polling the table: the server has no event for "rows written".
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Waits until the server answers queries (the rows table may not exist).
fn wait_for_server(db: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        let answered = Command::new("docker")
            .args([
                "exec",
                "-e",
                &format!("PGPASSWORD={DB_PASSWORD}"),
                db,
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "app",
                "-X",
                "-c",
                "select 1",
            ])
            .output()
            .unwrap();
        if answered.status.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restored server does not answer within 60 s"
        );
        // Polling the server: it has no event for "accepting connections".
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn installation() -> Env {
    Env::builder()
        .extra("[backup]\nhealth-timeout-seconds = 60\n")
        .init()
        .build()
}

fn unit_report<'a>(report: &'a Value, unit: &str) -> &'a Value {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == unit)
        .unwrap_or_else(|| panic!("no unit {unit} in {report:#}"))
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, check, restore, check"
)]
fn postgres_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v() {
    if !support::docker_tests_enabled(
        "postgres_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v",
    ) {
        return;
    }
    let mut env = installation();
    let (stack, dir) = postgres_stack(&mut env, "");
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    wait_for_rows(&db, 20);

    // What the unit listing and the dry run say.
    let units = env.json(&["units", "--json"]);
    let unit = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == stack.as_str())
        .unwrap();
    let db_entry = unit["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == db.as_str())
        .unwrap();
    assert_eq!(db_entry["policy"]["policy"], "dump", "{db_entry:#}");
    assert_eq!(db_entry["policy"]["engine"], "postgres", "{db_entry:#}");
    let volume = unit["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == format!("{stack}_pgdata"))
        .unwrap();
    assert_eq!(volume["reason"]["code"], "covered_by_dump", "{volume:#}");
    let text = env
        .cmd(&["units"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("covered by dump (postgres dump of"), "{text}");
    let plan = env
        .cmd(&["backup", "--dry-run", "--unit", &stack])
        .assert()
        .success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(plan.contains(&format!("stop order:  {app}\n")), "{plan}");
    assert!(plan.contains("postgres (all databases)"), "{plan}");

    let db_started = inspect(&db, "{{.State.StartedAt}}");
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "success", "{unit:#}");
    assert_eq!(unit["complete"], true, "{unit:#}");
    let dump = unit["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "dump")
        .unwrap_or_else(|| panic!("no dump snapshot in {unit:#}"));
    assert_eq!(dump["engine"], "postgres");
    // The database was never stopped; the app was.
    assert_eq!(inspect(&db, "{{.State.StartedAt}}"), db_started);
    let app_restarted = inspect(&app, "{{.State.StartedAt}}");
    assert_ne!(app_restarted, app_started, "the app was not stopped");
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
    // The password is nowhere in what the run wrote.
    let state = std::fs::read_dir(env.path("state")).unwrap().count();
    assert!(state > 0);
    assert!(
        !format!("{report}").contains(DB_PASSWORD),
        "the report holds the password"
    );

    // Rows committed before the app was stopped, and rows after it ran again.
    wait_for_rows(&db, 1);
    let before: Vec<String> = sql(
        &db,
        &format!("select id from rows where at < '{app_restarted}'::timestamptz order by id"),
    )
    .lines()
    .map(str::to_owned)
    .collect();
    let after_count: u64 = sql(
        &db,
        &format!("select count(*) from rows where at >= '{app_restarted}'::timestamptz"),
    )
    .parse()
    .unwrap();
    assert!(!before.is_empty());
    // The app writes again after its restart; wait until it has, so "nothing after" can fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let mut after_count = after_count;
    while after_count == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the app wrote nothing after its restart"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        after_count = sql(
            &db,
            &format!("select count(*) from rows where at >= '{app_restarted}'::timestamptz"),
        )
        .parse()
        .unwrap();
    }

    // Into the existing database (its data volume still there), a dump is refused before
    // anything is touched.
    let refused = env
        .cmd(&["restore", "--unit", &stack, "--latest", "--yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("still exists with its data volume"),
        "{stderr}"
    );
    assert_eq!(inspect(&db, "{{.State.StartedAt}}"), db_started);
    assert_eq!(inspect(&app, "{{.State.StartedAt}}"), app_restarted);

    // A fresh host for this stack: containers and volumes gone.
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    let restored_db_started = inspect(&db, "{{.State.StartedAt}}");
    wait_for_server(&db);
    let has_rows = sql(&db, "select to_regclass('rows') is not null");
    assert_eq!(has_rows, "t", "the restored database has no rows table");
    let restored: Vec<String> = sql(&db, "select id from rows order by id")
        .lines()
        .map(str::to_owned)
        .collect();
    // The app runs again (after the load) and may have added rows since: compare what was
    // there before the app started again.
    let app_started_again = inspect(&app, "{{.State.StartedAt}}");
    assert!(restored_db_started <= app_started_again);
    let restored_before: Vec<String> = sql(
        &db,
        &format!("select id from rows where at < '{app_restarted}'::timestamptz order by id"),
    )
    .lines()
    .map(str::to_owned)
    .collect();
    assert_eq!(restored_before, before, "rows committed before the stop");
    let restored_after: u64 = sql(
        &db,
        &format!(
            "select count(*) from rows where at >= '{app_restarted}'::timestamptz and at < '{app_started_again}'::timestamptz"
        ),
    )
    .parse()
    .unwrap();
    assert_eq!(restored_after, 0, "rows from after the dump came back");
    assert!(restored.len() >= before.len());
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");

    // --target-dir writes the dump file.
    let target = env.path("extracted");
    env.cmd(&[
        "restore",
        "--unit",
        &stack,
        "--latest",
        "--target-dir",
        target.to_str().unwrap(),
        "--yes",
    ])
    .assert()
    .success();
    let dumped = find_file(&target, "pg_dumpall.sql")
        .unwrap_or_else(|| panic!("no pg_dumpall.sql under {}", target.display()));
    let text = std::fs::read_to_string(dumped).unwrap();
    assert!(text.contains("PostgreSQL database cluster dump complete"));
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// The unit failed, no point `restore --latest` would pick, the app runs again (it was
/// stopped and started), the database was never stopped.
fn assert_failed_dump_left_nothing(env: &Env, stack: &str, report: &Value, app_started: &str) {
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    let unit = unit_report(report, stack);
    assert_eq!(unit["status"], "failed", "{unit:#}");
    assert_eq!(unit["complete"], false, "{unit:#}");
    assert!(
        unit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["type"] != "dump"),
        "a failed dump was kept: {unit:#}"
    );
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
    assert_ne!(inspect(&app, "{{.State.StartedAt}}"), app_started);
    assert_eq!(inspect(&db, "{{.State.Running}}"), "true");
    let snapshots = env.json(&["snapshots", "--json"]);
    assert!(
        snapshots["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["type"] != "dump"),
        "a dump snapshot is in the repository: {snapshots:#}"
    );
    let refused = env
        .cmd(&["restore", "--unit", stack, "--latest", "--yes"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("no complete restore point"), "{stderr}");
}

#[test]
fn postgres_dump_with_wrong_credentials_fails_the_unit() {
    if !support::docker_tests_enabled("postgres_dump_with_wrong_credentials_fails_the_unit") {
        return;
    }
    let mut env = installation();
    let (stack, _dir) = postgres_stack(&mut env, "");
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    wait_for_rows(&db, 5);
    // The container's POSTGRES_PASSWORD no longer opens the server.
    sql(&db, "alter user postgres password 'changed-elsewhere'");
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let out = env
        .cmd(&["backup", "--unit", &stack, "--json"])
        .assert()
        .failure();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let errors = format!("{}", unit_report(&report, &stack)["errors"]);
    assert!(
        errors.contains("password authentication failed"),
        "{errors}"
    );
    assert!(!errors.contains(DB_PASSWORD));
    assert_failed_dump_left_nothing(&env, &stack, &report, &app_started);
}

#[test]
fn postgres_dump_killed_mid_stream_fails_the_unit() {
    if !support::docker_tests_enabled("postgres_dump_killed_mid_stream_fails_the_unit") {
        return;
    }
    let mut env = installation();
    let (stack, _dir) = postgres_stack(&mut env, "");
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    wait_for_rows(&db, 5);
    // Large enough that the dump streams for a while.
    sql(
        &db,
        "create table filler as select g as id, md5(g::text) || repeat('x', 200) as pad from generate_series(1, 1500000) g",
    );
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let mut child = env.spawn_logged(&["backup", "--unit", &stack, "--json"]);
    child.wait_for_line("the dump to start", |l| l.contains("dump started"));
    // pg_dumpall runs one pg_dump per database: kill the first one there is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    loop {
        let killed = Command::new("docker")
            .args(["exec", &db, "pkill", "-KILL", "-x", "pg_dump"])
            .output()
            .unwrap();
        if killed.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && child.running(),
            "pg_dump never ran: {}",
            child.log()
        );
    }
    let output = child.finish();
    assert!(!output.status.success(), "{}", output.stderr);
    let report: Value = serde_json::from_str(&output.stdout).unwrap();
    let errors = format!("{}", unit_report(&report, &stack)["errors"]);
    assert!(errors.contains("exited with code"), "{errors}");
    assert_failed_dump_left_nothing(&env, &stack, &report, &app_started);
}

#[test]
fn unknown_policy_labels_are_errors_in_units_doctor_and_backup() {
    if !support::docker_tests_enabled("unknown_policy_labels_are_errors_in_units_doctor_and_backup")
    {
        return;
    }
    let env = installation();
    let name = format!("{}-typo", env.prefix);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "kopi-docka.policy=dumpp",
        support::IMAGE,
        "sh",
        "-c",
        support::IDLE,
    ]);
    let started = inspect(&name, "{{.State.StartedAt}}");
    let units = env.cmd(&["units"]).assert().code(2);
    let text = String::from_utf8_lossy(&units.get_output().stdout).into_owned();
    assert!(
        text.contains("label kopi-docka.policy=\"dumpp\" is not a policy; use stop, dump, skip or snapshot-live"),
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
    assert_eq!(check["status"], "fail", "{check:#}");
    // A backup refuses the unit and never touches it.
    env.cmd(&["backup", "--unit", &name]).assert().failure();
    assert_eq!(inspect(&name, "{{.State.StartedAt}}"), started);
}

const MARIADB_IMAGE: &str = "kdtest/mariadb:10.11";

/// `mariadb` in the database container with the right password; its output.
fn mariadb_sql(container: &str, query: &str) -> Result<String, String> {
    let out = Command::new("docker")
        .args([
            "exec",
            "-e",
            &format!("MYSQL_PWD={DB_PASSWORD}"),
            container,
            "mariadb",
            "-uroot",
            "-h",
            "127.0.0.1",
            "--protocol=tcp",
            "-N",
            "-B",
            "app",
            "-e",
            query,
        ])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Polls `query` until it returns a number >= `at_least` (the server has no event for it).
fn wait_for_mariadb(db: &str, query: &str, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Ok(out) = mariadb_sql(db, query)
            && out.parse::<u64>().is_ok_and(|n| n >= at_least)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{query}` did not reach {at_least} within 90 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Docker's RFC 3339 time as a `MariaDB` `DATETIME(6)` literal (both UTC).
fn mariadb_time(docker_time: &str) -> String {
    let t = docker_time.trim_end_matches('Z').replace('T', " ");
    t.chars().take(26).collect()
}

/// A `MariaDB` stack: `db` under `kopi-docka.policy=dump`, `app` inserting one row per
/// transaction until it is stopped.
fn mariadb_stack(env: &mut Env, extra_db_labels: &str) -> (String, PathBuf) {
    require_image(MARIADB_IMAGE);
    let dir = env.path("mstack");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  db:
    image: {MARIADB_IMAGE}
    environment:
      MARIADB_ROOT_PASSWORD: {DB_PASSWORD}
      MARIADB_DATABASE: app
    labels:
      kopi-docka.policy: dump
{extra_db_labels}
    volumes:
      - mdata:/var/lib/mysql
  app:
    image: {MARIADB_IMAGE}
    depends_on: [db]
    environment:
      MYSQL_PWD: {DB_PASSWORD}
    entrypoint:
      - sh
      - -c
      - |
        trap 'exit 0' TERM
        until mariadb -uroot -h db app -e 'create table if not exists rows_ (id int auto_increment primary key, at datetime(6) not null default utc_timestamp(6))' 2>/dev/null; do sleep 0.2; done
        (while true; do mariadb -uroot -h db app -e 'insert into rows_ () values ()' || sleep 0.2; done) &
        wait
volumes:
  mdata: {{}}
"#
        ),
    )
    .unwrap();
    let stack = format!("{}-mdb", env.prefix);
    env.resources.compose_up(&stack, &dir);
    (stack, dir)
}

#[test]
fn mariadb_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v() {
    if !support::docker_tests_enabled(
        "mariadb_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v",
    ) {
        return;
    }
    mysql_family_round_trip("", "mariadb");
}

/// `kopi-docka.dump=mysql` (`mysqldump`, loaded with `mysql`) against the `MariaDB` image:
/// Debian has no `MySQL` server, and `MariaDB` ships both clients under their `MySQL` names, so
/// this proves the `mysql` kind's commands, not a `MySQL` server.
#[test]
fn mysql_dump_kind_round_trips_against_the_mariadb_server() {
    if !support::docker_tests_enabled("mysql_dump_kind_round_trips_against_the_mariadb_server") {
        return;
    }
    mysql_family_round_trip("      kopi-docka.dump: mysql", "mysql");
}

/// Back up a `MariaDB` stack whose db has `labels`, restore it after `down -v`: the rows
/// committed before the app was stopped, nothing after.
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, check, restore, check"
)]
fn mysql_family_round_trip(labels: &str, engine: &str) {
    let mut env = installation();
    let (stack, dir) = mariadb_stack(&mut env, labels);
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    wait_for_mariadb(&db, "select count(*) from rows_", 20);

    let db_started = inspect(&db, "{{.State.StartedAt}}");
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "success", "{unit:#}");
    assert_eq!(unit["complete"], true, "{unit:#}");
    assert!(
        unit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "dump" && s["engine"] == engine),
        "{unit:#}"
    );
    assert_eq!(inspect(&db, "{{.State.StartedAt}}"), db_started);
    let app_restarted = inspect(&app, "{{.State.StartedAt}}");
    assert_ne!(app_restarted, app_started, "the app was not stopped");
    let cut = mariadb_time(&app_restarted);
    let before = mariadb_sql(
        &db,
        &format!("select id from rows_ where at < '{cut}' order by id"),
    )
    .unwrap();
    assert!(!before.is_empty());
    wait_for_mariadb(
        &db,
        &format!("select count(*) from rows_ where at >= '{cut}'"),
        1,
    );

    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        outcome["dumps_loaded"],
        serde_json::json!([db]),
        "{outcome:#}"
    );
    let app_started_again = mariadb_time(&inspect(&app, "{{.State.StartedAt}}"));
    let restored_before = mariadb_sql(
        &db,
        &format!("select id from rows_ where at < '{cut}' order by id"),
    )
    .unwrap();
    assert_eq!(restored_before, before, "rows committed before the stop");
    let restored_after = mariadb_sql(
        &db,
        &format!("select count(*) from rows_ where at >= '{cut}' and at < '{app_started_again}'"),
    )
    .unwrap();
    assert_eq!(restored_after, "0", "rows from after the dump came back");
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
}

#[test]
fn mariadb_dump_with_wrong_credentials_fails_the_unit() {
    if !support::docker_tests_enabled("mariadb_dump_with_wrong_credentials_fails_the_unit") {
        return;
    }
    let mut env = installation();
    let (stack, _dir) = mariadb_stack(&mut env, "");
    let (db, app) = (format!("{stack}_db_1"), format!("{stack}_app_1"));
    wait_for_mariadb(&db, "select count(*) from rows_", 5);
    // The container's MARIADB_ROOT_PASSWORD no longer opens the server (over TCP, as the
    // dump connects).
    mariadb_sql(
        &db,
        "alter user 'root'@'%' identified by 'changed-elsewhere'; \
         alter user 'root'@'localhost' identified by 'changed-elsewhere'",
    )
    .unwrap();
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let out = env
        .cmd(&["backup", "--unit", &stack, "--json"])
        .assert()
        .failure();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let errors = format!("{}", unit_report(&report, &stack)["errors"]);
    assert!(errors.contains("Access denied for user 'root'"), "{errors}");
    assert!(!errors.contains(DB_PASSWORD));
    assert_failed_dump_left_nothing(&env, &stack, &report, &app_started);
}

const SQLITE_IMAGE: &str = "kdtest/sqlite:3";

/// `sqlite3` in `container` on the app's database; its output.
fn sqlite_sql(container: &str, query: &str) -> String {
    docker(&[
        "exec",
        container,
        "sqlite3",
        "-cmd",
        ".timeout 30000",
        "/data/app.db",
        query,
    ])
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, check, restore, check"
)]
fn sqlite_dump_is_taken_online_and_loaded_by_restore_and_drill() {
    if !support::docker_tests_enabled("sqlite_dump_is_taken_online_and_loaded_by_restore_and_drill")
    {
        return;
    }
    require_image(SQLITE_IMAGE);
    let mut env = installation();
    let dir = env.path("sqstack");
    std::fs::create_dir(&dir).unwrap();
    // The app itself holds the database and keeps writing while it is dumped.
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  app:
    image: {SQLITE_IMAGE}
    labels:
      kopi-docka.policy: dump
      kopi-docka.dump: sqlite
      kopi-docka.dump.path: /data/app.db
    entrypoint:
      - sh
      - -c
      - |
        trap 'exit 0' TERM
        sqlite3 -cmd '.timeout 30000' /data/app.db 'create table if not exists rows_ (id integer primary key, v integer not null)'
        (while true; do sqlite3 -cmd '.timeout 30000' /data/app.db 'insert into rows_ (v) values (1)' || true; done) &
        wait
    volumes:
      - sqdata:/data
volumes:
  sqdata: {{}}
"#
        ),
    )
    .unwrap();
    let stack = format!("{}-sq", env.prefix);
    env.resources.compose_up(&stack, &dir);
    let app = format!("{stack}_app_1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let committed_before = loop {
        let n: u64 = Command::new("docker")
            .args([
                "exec",
                &app,
                "sqlite3",
                "-cmd",
                ".timeout 30000",
                "/data/app.db",
            ])
            .arg("select count(*) from rows_")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(0);
        if n >= 20 {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the app wrote no rows"
        );
        // Polling the file: nothing announces "rows written".
        std::thread::sleep(std::time::Duration::from_millis(200));
    };

    // Written before the backup: must come back (the app's own new file has no such table).
    sqlite_sql(
        &app,
        "create table before_backup (x); insert into before_backup values (42)",
    );
    let app_started = inspect(&app, "{{.State.StartedAt}}");
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "success", "{unit:#}");
    assert_eq!(unit["complete"], true, "{unit:#}");
    assert!(
        unit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "dump" && s["engine"] == "sqlite"),
        "{unit:#}"
    );
    // Online: the app was never stopped.
    assert_eq!(inspect(&app, "{{.State.StartedAt}}"), app_started);

    // Written after the backup: must not come back.
    sqlite_sql(
        &app,
        "create table after_backup (x); insert into after_backup values (1)",
    );

    // --target-dir writes the dump as SQL, whole.
    let target = env.path("extracted");
    env.cmd(&[
        "restore",
        "--unit",
        &stack,
        "--latest",
        "--target-dir",
        target.to_str().unwrap(),
        "--yes",
    ])
    .assert()
    .success();
    let dumped = find_file(&target, "sqlite.sql")
        .unwrap_or_else(|| panic!("no sqlite.sql under {}", target.display()));
    assert!(
        std::fs::read_to_string(&dumped)
            .unwrap()
            .trim_end()
            .ends_with("COMMIT;")
    );

    // A fresh host: the restore loads the dump into the app's file (the app created an empty
    // one as it started; it is kept as the rollback copy) and starts the app again on it.
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        outcome["dumps_loaded"],
        serde_json::json!([app]),
        "{outcome:#}"
    );
    let warnings = format!("{}", outcome["warnings"]);
    assert!(
        warnings.contains("is kept as /data/app.db.kopi-docka-before-restore-"),
        "{outcome:#}"
    );
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
    assert_eq!(
        sqlite_sql(
            &app,
            "select count(*) from sqlite_master where name = 'after_backup'"
        ),
        "0",
        "a table created after the backup came back"
    );
    assert_eq!(
        sqlite_sql(&app, "select x from before_backup"),
        "42",
        "the data written before the backup is not there"
    );
    let ids = sqlite_sql(&app, "select count(*), min(id), max(id) from rows_");
    let parts: Vec<u64> = ids.split('|').map(|p| p.parse().unwrap_or(0)).collect();
    // Every row committed before the backup began, no gap (the app writes on after it).
    assert!(parts[0] >= committed_before, "{ids} < {committed_before}");
    assert_eq!((parts[1], parts[2]), (1, parts[0]), "{ids}");
    let listing = docker(&["exec", &app, "ls", "/data"]);
    assert!(
        listing.contains("app.db.kopi-docka-before-restore-")
            && !listing.contains(".kopi-docka-load"),
        "{listing}"
    );

    // The drill loads the dump into its sandbox; one cut short fails it.
    let drill = env.json(&["restore", "--drill", "--unit", &stack, "--json"]);
    assert_eq!(drill["passed"], true, "{drill:#}");
    assert_eq!(drill["dumps"][0]["loaded"], true, "{drill:#}");
    let failed = env
        .cmd(&["restore", "--drill", "--unit", &stack, "--json"])
        .env("KOPI_DOCKA_FAILPOINT", "dump-load-truncate:200")
        .assert()
        .failure();
    let failed: Value = serde_json::from_slice(&failed.get_output().stdout).unwrap();
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert_eq!(failed["dumps"][0]["loaded"], false, "{failed:#}");
    assert!(
        format!("{}", failed["errors"]).contains("cut short"),
        "{failed:#}"
    );
}

const REDIS_IMAGE: &str = "kdtest/redis:7";

/// `redis-cli` in `container` (with the password when `auth`); its output.
fn redis(container: &str, auth: bool, args: &[&str]) -> String {
    let mut cmd = Command::new("docker");
    cmd.arg("exec");
    if auth {
        cmd.args(["-e", &format!("REDISCLI_AUTH={DB_PASSWORD}")]);
    }
    let out = cmd
        .arg(container)
        .args(["redis-cli", "--no-auth-warning"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls until the server answers (it has no event for "accepting connections").
fn wait_for_redis(container: &str, auth: bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while redis(container, auth, &["ping"]) != "PONG" {
        assert!(
            std::time::Instant::now() < deadline,
            "{container} does not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, restore, check, kill, check, drill"
)]
fn redis_dumps_are_loaded_by_restore_and_drill_rdb_and_appendonly() {
    if !support::docker_tests_enabled(
        "redis_dumps_are_loaded_by_restore_and_drill_rdb_and_appendonly",
    ) {
        return;
    }
    require_image(REDIS_IMAGE);
    let mut env = installation();
    let dir = env.path("rstack");
    std::fs::create_dir(&dir).unwrap();
    // `cache`: a password, RDB snapshots. `queue`: the append-only file only.
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  cache:
    image: {REDIS_IMAGE}
    environment:
      REDIS_PASSWORD: {DB_PASSWORD}
    labels:
      kopi-docka.policy: dump
    volumes:
      - rdata:/data
  queue:
    image: {REDIS_IMAGE}
    labels:
      kopi-docka.policy: dump
    entrypoint: ["redis-server", "--dir", "/data", "--appendonly", "yes", "--save", "", "--protected-mode", "no"]
    volumes:
      - qdata:/data
volumes:
  rdata: {{}}
  qdata: {{}}
"#
        ),
    )
    .unwrap();
    let stack = format!("{}-rd", env.prefix);
    env.resources.compose_up(&stack, &dir);
    let servers = [
        (format!("{stack}_cache_1"), true),
        (format!("{stack}_queue_1"), false),
    ];
    for (server, auth) in &servers {
        wait_for_redis(server, *auth);
        for i in 0..100 {
            redis(server, *auth, &["set", &format!("k{i}"), &format!("v{i}")]);
        }
        assert_eq!(
            redis(server, *auth, &["set", "kopi-docka-key", "kept-value-42"]),
            "OK"
        );
    }

    let started: Vec<String> = servers
        .iter()
        .map(|(s, _)| inspect(s, "{{.State.StartedAt}}"))
        .collect();
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "success", "{unit:#}");
    let dumps = unit["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "dump" && s["engine"] == "redis")
        .count();
    assert_eq!(dumps, 2, "{unit:#}");
    for ((server, _), at) in servers.iter().zip(&started) {
        assert_eq!(
            &inspect(server, "{{.State.StartedAt}}"),
            at,
            "{server} was restarted"
        );
    }
    assert!(!format!("{report}").contains(DB_PASSWORD));
    for (server, auth) in &servers {
        redis(server, *auth, &["set", "after-backup", "1"]);
    }

    // --target-dir writes the RDB files.
    let target = env.path("extracted");
    env.cmd(&[
        "restore",
        "--unit",
        &stack,
        "--latest",
        "--target-dir",
        target.to_str().unwrap(),
        "--yes",
    ])
    .assert()
    .success();
    let rdb = find_file(&target, "dump.rdb")
        .unwrap_or_else(|| panic!("no dump.rdb under {}", target.display()));
    assert!(std::fs::read(&rdb).unwrap().starts_with(b"REDIS"));

    // A fresh host: both servers come back with the keyspace of the backup.
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let outcome = env.json(&["restore", "--unit", &stack, "--latest", "--yes", "--json"]);
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        outcome["dumps_loaded"].as_array().unwrap().len(),
        2,
        "{outcome:#}"
    );
    let check = |when: &str| {
        for (server, auth) in &servers {
            assert_eq!(
                redis(server, *auth, &["get", "kopi-docka-key"]),
                "kept-value-42",
                "{server} {when}"
            );
            assert_eq!(
                redis(server, *auth, &["exists", "after-backup"]),
                "0",
                "{server} {when}"
            );
            assert_eq!(redis(server, *auth, &["dbsize"]), "101", "{server} {when}");
            assert_eq!(
                redis(server, *auth, &["info", "replication"])
                    .lines()
                    .find(|l| l.starts_with("role:"))
                    .map(str::trim),
                Some("role:master"),
                "{server} {when}"
            );
        }
    };
    check("after the restore");
    // Killed (no save at shutdown) and started: what the load wrote is on disk, in the RDB
    // and in the append-only file.
    for (server, auth) in &servers {
        docker(&["kill", server]);
        docker(&["start", server]);
        wait_for_redis(server, *auth);
    }
    check("after a kill and a start");

    // The drill loads both into its sandbox; an RDB cut short fails it.
    let secrets = env.path("secrets.env");
    std::fs::write(&secrets, format!("REDIS_PASSWORD={DB_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let secrets = secrets.to_str().unwrap();
    let drill = env.json(&[
        "restore",
        "--drill",
        "--unit",
        &stack,
        "--env-file",
        secrets,
        "--json",
    ]);
    assert_eq!(drill["passed"], true, "{drill:#}");
    assert!(
        drill["dumps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["loaded"] == true),
        "{drill:#}"
    );
    let failed = env
        .cmd(&[
            "restore",
            "--drill",
            "--unit",
            &stack,
            "--env-file",
            secrets,
            "--json",
        ])
        .env("KOPI_DOCKA_FAILPOINT", "dump-load-truncate:100")
        .assert()
        .failure();
    let failed: Value = serde_json::from_slice(&failed.get_output().stdout).unwrap();
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert!(
        format!("{}", failed["errors"]).contains("damaged or cut short"),
        "{failed:#}"
    );
}

/// An env file (0600) with the secrets the drill's recreated containers need.
fn secrets_file(env: &Env, lines: &str) -> String {
    let path = env.path("drill-secrets.env");
    std::fs::write(&path, lines).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn postgres_drill_loads_the_dump_and_fails_on_one_cut_short() {
    if !support::docker_tests_enabled("postgres_drill_loads_the_dump_and_fails_on_one_cut_short") {
        return;
    }
    let mut env = installation();
    let (stack, _dir) = postgres_stack(&mut env, "");
    wait_for_rows(&format!("{stack}_db_1"), 20);
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    assert_eq!(unit_report(&report, &stack)["status"], "success");
    let secrets = secrets_file(
        &env,
        &format!("POSTGRES_PASSWORD={DB_PASSWORD}\nPGPASSWORD={DB_PASSWORD}\n"),
    );

    let drill = env.json(&[
        "restore",
        "--drill",
        "--unit",
        &stack,
        "--env-file",
        &secrets,
        "--json",
    ]);
    assert_eq!(drill["passed"], true, "{drill:#}");
    let dump = &drill["dumps"][0];
    assert_eq!(dump["engine"], "postgres", "{drill:#}");
    assert_eq!(dump["loaded"], true, "{drill:#}");
    let bytes = dump["bytes"].as_u64().unwrap();
    assert!(bytes > 1000, "{drill:#}");
    let text = env
        .cmd(&[
            "restore",
            "--drill",
            "--unit",
            &stack,
            "--env-file",
            &secrets,
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains("postgres dump of") && text.contains(": loaded ("),
        "{text}"
    );

    // The same point with its dump cut in the middle (as a damaged repository would hand it
    // out): psql loads what it gets without an error, the missing trailer fails the drill.
    let failed = env
        .cmd(&[
            "restore",
            "--drill",
            "--unit",
            &stack,
            "--env-file",
            &secrets,
            "--json",
        ])
        .env(
            "KOPI_DOCKA_FAILPOINT",
            format!("dump-load-truncate:{}", bytes / 2),
        )
        .assert()
        .failure();
    let failed: Value = serde_json::from_slice(&failed.get_output().stdout).unwrap();
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert_eq!(failed["dumps"][0]["loaded"], false, "{failed:#}");
    let errors = format!("{}", failed["errors"]);
    assert!(errors.contains("cut short"), "{errors}");
    assert_eq!(failed["leftovers"], serde_json::json!([]), "{failed:#}");
}

/// A dump that runs past `max-downtime-seconds` is abandoned: the services stopped for it
/// are down while it runs, so it spends their downtime budget. Deterministic: the database
/// is held under an exclusive lock, so the dump waits (up to sqlite3's own 30 s).
#[test]
fn a_dump_past_max_downtime_is_abandoned_and_the_app_restarted() {
    if !support::docker_tests_enabled("a_dump_past_max_downtime_is_abandoned_and_the_app_restarted")
    {
        return;
    }
    require_image(SQLITE_IMAGE);
    let mut env = Env::builder()
        .extra("[backup]\nmax-downtime-seconds = 3\nhealth-timeout-seconds = 60\n")
        .init()
        .build();
    let dir = env.path("lockstack");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "2.4"
services:
  store:
    image: {SQLITE_IMAGE}
    labels:
      kopi-docka.policy: dump
      kopi-docka.dump: sqlite
      kopi-docka.dump.path: /data/app.db
    entrypoint:
      - sh
      - -c
      - |
        trap 'exit 0' TERM
        sqlite3 /data/app.db 'create table t (x); insert into t values (1)'
        (echo 'begin exclusive;'; echo 'insert into t values (2);'; sleep 100000) | sqlite3 /data/app.db &
        wait
    volumes:
      - ldata:/data
  web:
    image: {SQLITE_IMAGE}
    depends_on: [store]
    entrypoint: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
volumes:
  ldata: {{}}
"#
        ),
    )
    .unwrap();
    let stack = format!("{}-lk", env.prefix);
    env.resources.compose_up(&stack, &dir);
    let (store, web) = (format!("{stack}_store_1"), format!("{stack}_web_1"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    // Until the writer holds its lock, a reader gets through.
    while !String::from_utf8_lossy(
        &Command::new("docker")
            .args([
                "exec",
                &store,
                "sqlite3",
                "/data/app.db",
                "select count(*) from t",
            ])
            .output()
            .unwrap()
            .stderr,
    )
    .contains("database is locked")
    {
        assert!(std::time::Instant::now() < deadline, "no lock taken");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let web_started = inspect(&web, "{{.State.StartedAt}}");
    let out = env
        .cmd(&["backup", "--unit", &stack, "--json"])
        .assert()
        .failure();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "failed", "{unit:#}");
    let errors = format!("{}", unit["errors"]);
    assert!(errors.contains("max-downtime-seconds"), "{errors}");
    assert!(
        unit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["type"] != "dump"),
        "{unit:#}"
    );
    // The app was stopped for the dump and runs again, well before the dump's own 30 s wait
    // would have ended.
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
    assert_ne!(inspect(&web, "{{.State.StartedAt}}"), web_started);
    let downtime = unit["downtime_seconds"].as_f64().unwrap();
    assert!(downtime < 20.0, "the app was down {downtime} s: {unit:#}");
    assert_eq!(inspect(&store, "{{.State.Running}}"), "true");
}
