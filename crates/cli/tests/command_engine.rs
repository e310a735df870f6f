//! The external job engine (`[units.<name>] engine = "command"`) and each unit's daily log
//! file, on the real binary, a real engine and a real backup tool: the job is `restic backup`
//! of the unit's volume into a restic repository of the test's own, started in the background
//! by a job script the way Duplicati's `run` enqueues a job, and watched by a status script
//! that says `Active task: None` once restic has finished.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{EngineEvents, Env, docker};

/// An executable script (mode 0755, owned by the user running the test) in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn running(name: &str) -> bool {
    docker(&["inspect", "--format", "{{.State.Running}}", name]) == "true"
}

/// `[units."<unit>"]` with the command engine, polling every second.
fn engine_config(unit: &str, job: &str, status: &str, wait: u32) -> String {
    format!(
        "[units.\"{unit}\"]\nengine = \"command\"\njob = [[\"{job}\", \"nightly\"]]\n\
         status = [\"{status}\"]\nstatus-interval-seconds = 1\nwait-timeout-seconds = {wait}\n\
         job-timeout-seconds = 10\n"
    )
}

fn the_unit(report: &Value, name: &str) -> Value {
    report["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {report:#}"))
        .clone()
}

/// The restic repository the "user's own tool" writes to, and its password file.
fn own_repository(dir: &Path) -> (PathBuf, PathBuf) {
    let (repo, password) = (dir.join("own-repo"), dir.join("own-password"));
    std::fs::write(&password, "the user's own tool\n").unwrap();
    support::restic(&repo, &password, ["init"]);
    (repo, password)
}

/// The job script (restic backup of `volume` in the background, recording what it saw) and
/// the status script (idle once restic is done) in `dir`.
fn write_job_scripts(dir: &Path, app: &str, (repo, password): (&Path, &Path), volume_path: &Path) {
    script(
        dir,
        "job",
        &format!(
            "docker inspect --format '{{{{.State.Running}}}}' {app} > {dir}/running-during-job\n\
             echo \"$1 $KOPI_DOCKA_UNIT\" > {dir}/job-args\n\
             rm -f {dir}/done\n\
             ( restic --no-cache -r {repo} --password-file {password} backup {volume} \
               > {dir}/restic.log 2>&1; echo $? > {dir}/done.tmp; mv {dir}/done.tmp {dir}/done ) \
               </dev/null >/dev/null 2>&1 &\n\
             echo 'job nightly enqueued'",
            dir = dir.display(),
            repo = repo.display(),
            password = password.display(),
            volume = volume_path.display(),
        ),
    );
    script(
        dir,
        "status",
        &format!(
            "echo 'Server state: Running'\n\
             if [ -f {dir}/done ]; then echo 'Active task: None'; else echo 'Active task: Backup nightly'; fi",
            dir = dir.display()
        ),
    );
}

/// The dry run shows the commands, as JSON and as text, and runs nothing.
fn check_dry_run(env: &Env, app: &str, (job, status): (&str, &str), dir: &Path) {
    let plan = env.json(&["backup", "--unit", app, "--dry-run", "--json"]);
    let planned = &plan["units"][0]["job"];
    assert_eq!(planned["job"][0][0], job, "{plan:#}");
    assert_eq!(planned["status"][0], status, "{plan:#}");
    let text = env
        .cmd(&["backup", "--unit", app, "--dry-run"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("job:         {job} nightly")),
        "{text}"
    );
    assert!(!dir.join("job-args").exists(), "a dry run ran the job");
}

/// The whole promise: the unit is stopped while the job runs (the job itself sees it
/// stopped, and the engine's events put the restic run between the stop and the start), it
/// runs again afterwards, the user's repository holds the volume's data, kopi-docka wrote no
/// restore point of the unit, and the report says the engine was `command` and what the job
/// returned. The dry run shows the commands.
#[test]
fn a_command_job_runs_while_the_unit_is_stopped() {
    if !support::docker_tests_enabled("a_command_job_runs_while_the_unit_is_stopped") {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path();
    let prefix = support::unique_prefix();
    let app = format!("{prefix}-app");
    // The config names the scripts; they are written once the volume exists.
    let (job, status) = (
        dir.join("job").display().to_string(),
        dir.join("status").display().to_string(),
    );
    let env = Env::builder()
        .prefix(&prefix)
        .extra(&engine_config(&app, &job, &status, 120))
        .init()
        .build();
    let (repo, password) = own_repository(dir);
    let volume_path = support::idle_with_volume(&app);
    std::fs::write(volume_path.join("data.txt"), "what the job must save\n").unwrap();
    write_job_scripts(dir, &app, (&repo, &password), &volume_path);
    check_dry_run(&env, &app, (&job, &status), dir);

    let events = EngineEvents::start(&prefix);
    let out = env
        .cmd(&["backup", "--unit", &app, "--json"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = the_unit(&report, &app);
    assert_eq!(unit["status"], "success", "{unit:#}");
    assert_eq!(unit["engine"], "command", "{unit:#}");
    assert_eq!(unit["job"]["idle"], true, "{unit:#}");
    assert_eq!(unit["job"]["commands"][0]["exit_code"], 0, "{unit:#}");
    assert!(
        unit["job"]["commands"][0]["output"]
            .as_str()
            .unwrap()
            .contains("job nightly enqueued"),
        "{unit:#}"
    );
    assert!(unit["job"]["polls"].as_u64().unwrap() >= 1, "{unit:#}");

    // The job saw the unit stopped, with its own argument and the unit in its environment.
    assert_eq!(
        std::fs::read_to_string(dir.join("running-during-job"))
            .unwrap()
            .trim(),
        "false"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("job-args"))
            .unwrap()
            .trim(),
        format!("nightly {app}")
    );
    // Stopped before the job, started only after restic had finished.
    let since = events.since();
    let died = events
        .find(&app, "die", since)
        .expect("the unit was stopped");
    let started = events.wait_for(&app, "start", died.time);
    let restic_done = std::fs::metadata(dir.join("done"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(
        died.time <= restic_done && restic_done <= started.time,
        "restic finished at {restic_done:?}, outside the stop ({:?}) .. start ({:?})",
        died.time,
        started.time
    );
    assert!(running(&app));

    // The user's repository holds the data; restic itself succeeded.
    assert_eq!(
        std::fs::read_to_string(dir.join("done")).unwrap().trim(),
        "0"
    );
    let dumped = support::restic(
        &repo,
        &password,
        [
            "dump".as_ref(),
            "latest".as_ref(),
            volume_path.join("data.txt").as_os_str(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&dumped.stdout),
        "what the job must save\n"
    );
    // kopi-docka wrote no restore point of the unit.
    let listed = env.json(&["snapshots", "--unit", &app, "--json"]);
    assert_eq!(
        listed["snapshots"].as_array().unwrap().len(),
        0,
        "{listed:#}"
    );
}

/// A job that never becomes idle: the wait ends at its timeout, the unit runs again, and the
/// run fails with a message naming the timeout.
#[test]
fn a_job_that_never_becomes_idle_hits_the_wait_timeout() {
    if !support::docker_tests_enabled("a_job_that_never_becomes_idle_hits_the_wait_timeout") {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path();
    let prefix = support::unique_prefix();
    let app = format!("{prefix}-app");
    let job = script(dir, "job", "echo enqueued");
    let status = script(dir, "status", "echo 'Active task: Backup nightly'");
    let env = Env::builder()
        .prefix(&prefix)
        .extra(&engine_config(&app, &job, &status, 3))
        .init()
        .build();
    support::idle_with_volume(&app);
    let events = EngineEvents::start(&prefix);
    let out = env
        .cmd(&["backup", "--unit", &app, "--json"])
        .assert()
        .code(1);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = the_unit(&report, &app);
    assert_eq!(unit["status"], "failed", "{unit:#}");
    assert_eq!(unit["job"]["idle"], false, "{unit:#}");
    let errors = unit["errors"].to_string();
    assert!(
        errors.contains("wait-timeout-seconds (3s)") && errors.contains("Active task: Backup"),
        "{errors}"
    );
    let died = events.find(&app, "die", events.since()).expect("stopped");
    events.wait_for(&app, "start", died.time);
    assert!(
        running(&app),
        "the unit was started again after the timeout"
    );
}

/// A job command that fails fails the unit: the status is never polled and the unit runs
/// again.
#[test]
fn a_failing_job_command_fails_the_unit() {
    if !support::docker_tests_enabled("a_failing_job_command_fails_the_unit") {
        return;
    }
    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path();
    let prefix = support::unique_prefix();
    let app = format!("{prefix}-app");
    let job = script(dir, "job", "echo 'no backup job named nightly' >&2; exit 4");
    let polled = dir.join("polled");
    let status = script(
        dir,
        "status",
        &format!("touch {}; echo 'Active task: None'", polled.display()),
    );
    let env = Env::builder()
        .prefix(&prefix)
        .extra(&engine_config(&app, &job, &status, 60))
        .init()
        .build();
    support::idle_with_volume(&app);
    let out = env
        .cmd(&["backup", "--unit", &app, "--json"])
        .assert()
        .code(1);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let unit = the_unit(&report, &app);
    assert_eq!(unit["status"], "failed", "{unit:#}");
    assert_eq!(unit["job"]["commands"][0]["exit_code"], 4, "{unit:#}");
    let errors = unit["errors"].to_string();
    assert!(
        errors.contains("exit 4") && errors.contains("no backup job named nightly"),
        "{errors}"
    );
    assert!(!polled.exists(), "the status was polled after a failed job");
    assert!(running(&app));
    // The history records the failure like any other.
    let history = env.json(&["history", "--json"]);
    assert!(history.to_string().contains("failed"), "{history:#}");
}

/// Each unit's lines of a run go to its daily file in the state dir (0600), not another
/// unit's.
#[test]
fn each_unit_logs_to_its_own_daily_file() {
    if !support::docker_tests_enabled("each_unit_logs_to_its_own_daily_file") {
        return;
    }
    let env = Env::builder().init().build();
    let (one, two) = (format!("{}-one", env.prefix), format!("{}-two", env.prefix));
    support::idle_with_volume(&one);
    support::idle_with_volume(&two);
    env.cmd(&["backup", "--unit", &one, "--unit", &two])
        .assert()
        .success();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let file = |unit: &str| env.path(&format!("state/logs/{unit}/{today}.log"));
    let text = std::fs::read_to_string(file(&one)).unwrap();
    assert!(text.contains("backing up") && text.contains(&one), "{text}");
    assert!(text.contains("stopped"), "the stop is in the file: {text}");
    assert!(!text.contains(&two), "another unit's lines: {text}");
    let other = std::fs::read_to_string(file(&two)).unwrap();
    assert!(other.contains(&two) && !other.contains(&one), "{other}");
    let mode = std::fs::metadata(file(&one)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(file(&one).parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}
