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
fn mariadb_stack(env: &mut Env) -> (String, PathBuf) {
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
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, check, restore, check"
)]
fn mariadb_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v() {
    if !support::docker_tests_enabled(
        "mariadb_dump_is_consistent_with_the_stopped_app_and_restores_after_down_v",
    ) {
        return;
    }
    let mut env = installation();
    let (stack, dir) = mariadb_stack(&mut env);
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
            .any(|s| s["type"] == "dump" && s["engine"] == "mariadb"),
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
    let (stack, _dir) = mariadb_stack(&mut env);
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
fn sqlite_dump_is_taken_online_and_restores_through_target_dir() {
    if !support::docker_tests_enabled("sqlite_dump_is_taken_online_and_restores_through_target_dir")
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
    let committed_after: u64 = sqlite_sql(&app, "select count(*) from rows_")
        .parse()
        .unwrap();

    // A restore does not load it (the app creates its own file as it starts): refused before
    // anything is touched, with the way to do it.
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let refused = env
        .cmd(&["restore", "--unit", &stack, "--latest", "--yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("which a restore does not load"), "{stderr}");
    assert!(stderr.contains("--target-dir"), "{stderr}");
    let gone = Command::new("docker")
        .args(["container", "inspect", &app])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the refused restore created the app"
    );

    // The documented way: the dump from --target-dir, loaded into a new file.
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
    let db_file = env.path("restored.db");
    let loaded = Command::new("sqlite3")
        .arg(&db_file)
        .stdin(std::fs::File::open(&dumped).unwrap())
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let ids = Command::new("sqlite3")
        .arg(&db_file)
        .arg("select count(*), min(id), max(id) from rows_")
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&ids.stdout).trim().to_owned();
    let parts: Vec<u64> = ids.split('|').map(|p| p.parse().unwrap_or(0)).collect();
    // Every row committed before the backup began, no gap (one consistent moment), nothing
    // from after it ended.
    assert!(parts[0] >= committed_before, "{ids} < {committed_before}");
    assert_eq!((parts[1], parts[2]), (1, parts[0]), "{ids}");
    assert!(parts[0] <= committed_after, "{ids} > {committed_after}");
}

const REDIS_IMAGE: &str = "kdtest/redis:7";

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: back up, check the file, check the refusal"
)]
fn redis_dump_is_an_rdb_and_comes_back_through_target_dir() {
    if !support::docker_tests_enabled("redis_dump_is_an_rdb_and_comes_back_through_target_dir") {
        return;
    }
    require_image(REDIS_IMAGE);
    let mut env = installation();
    let dir = env.path("rstack");
    std::fs::create_dir(&dir).unwrap();
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
volumes:
  rdata: {{}}
"#
        ),
    )
    .unwrap();
    let stack = format!("{}-rd", env.prefix);
    env.resources.compose_up(&stack, &dir);
    let cache = format!("{stack}_cache_1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        let set = Command::new("docker")
            .args([
                "exec",
                "-e",
                &format!("REDISCLI_AUTH={DB_PASSWORD}"),
                &cache,
            ])
            .args([
                "redis-cli",
                "--no-auth-warning",
                "set",
                "kopi-docka-key",
                "kept-value-42",
            ])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&set.stdout).trim() == "OK" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redis does not answer"
        );
        // Polling the server: nothing announces "accepting connections".
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let started = inspect(&cache, "{{.State.StartedAt}}");
    let report = env.json(&["backup", "--unit", &stack, "--json"]);
    let unit = unit_report(&report, &stack);
    assert_eq!(unit["status"], "success", "{unit:#}");
    assert!(
        unit["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "dump" && s["engine"] == "redis"),
        "{unit:#}"
    );
    assert_eq!(inspect(&cache, "{{.State.StartedAt}}"), started);
    assert!(!format!("{report}").contains(DB_PASSWORD));

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
    let bytes = std::fs::read(&rdb).unwrap();
    assert!(
        bytes.starts_with(b"REDIS"),
        "not an RDB file: {:?}",
        &bytes[..bytes.len().min(16)]
    );
    let key = b"kopi-docka-key";
    assert!(
        bytes.windows(key.len()).any(|w| w == key),
        "the key written before the backup is not in the RDB"
    );
    // A restore would not load it: refused with the way to do it, the server untouched
    // (while it runs, and after `down -v` alike).
    let refused = env
        .cmd(&["restore", "--unit", &stack, "--latest", "--yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("which a restore does not load"), "{stderr}");
    assert_eq!(inspect(&cache, "{{.State.StartedAt}}"), started);
    support::run(
        Command::new("docker-compose")
            .args(["-p", &stack, "down", "-v", "--timeout", "5"])
            .current_dir(&dir),
    );
    let refused = env
        .cmd(&["restore", "--unit", &stack, "--latest", "--yes"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        stderr.contains("dump.rdb into the data directory"),
        "{stderr}"
    );
    // --no-start loads nothing anyway: not refused, it says where the dump is.
    let out = env
        .cmd(&[
            "restore",
            "--unit",
            &stack,
            "--latest",
            "--no-start",
            "--yes",
        ])
        .assert()
        .success();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.get_output().stdout),
        String::from_utf8_lossy(&out.get_output().stderr)
    );
    assert!(
        said.contains("is not loaded (--no-start: no server runs to load it into)"),
        "{said}"
    );
}
