//! `kopi-docka units` against a real Docker Engine and real fixture stacks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{DockerResources, IDLE, IMAGE, docker, kopi_docka};

/// The units of this test only: the engine may hold other things, which we never touch.
fn our_units<'a>(report: &'a Value, prefix: &str) -> Vec<&'a Value> {
    report["units"]
        .as_array()
        .expect("units array")
        .iter()
        .filter(|u| u["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

fn find<'a>(units: &[&'a Value], name: &str, kind: &str) -> &'a Value {
    units
        .iter()
        .find(|u| u["name"] == name && u["kind"] == kind)
        .unwrap_or_else(|| panic!("unit {kind} {name} missing"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

fn coverage<'a>(unit: &'a Value, kind: &str, identifier: &str) -> &'a Value {
    unit["coverage"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["kind"] == kind && e["identifier"] == identifier)
        .unwrap_or_else(|| panic!("no coverage entry {kind} {identifier} in {}", unit["name"]))
}

/// Everything the test created; dropping it removes the Docker resources and the temp dir.
struct Fixture {
    prefix: String,
    stack: String,
    stack_dir: PathBuf,
    solo: String,
    netdata: String,
    portainer: String,
    managed_stack: String,
    managed_dir: PathBuf,
    gone: PathBuf,
    config: PathBuf,
    _resources: DockerResources,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let prefix = support::unique_prefix();
        let mut resources = DockerResources::new(&prefix);
        let tmp_dir = tempfile::tempdir().unwrap();
        let tmp = tmp_dir.path();

        // 1. A compose v1 stack from the fixture.
        let stack_dir = tmp.join("stack");
        std::fs::create_dir(&stack_dir).unwrap();
        support::copy_fixture("stack", &stack_dir);
        let stack = format!("{prefix}-stack");
        resources.compose_up(&stack, &stack_dir);

        // 2. A running standalone container with a named volume.
        let solo = format!("{prefix}-solo");
        let volume = format!("{solo}-data:/data");
        docker(&[
            "run", "-d", "--name", &solo, "-v", &volume, IMAGE, "sh", "-c", IDLE,
        ]);

        // 3. A stopped container with a `/` bind and a docker.sock bind (netdata-like).
        let netdata = format!("{prefix}-netdata");
        docker(&[
            "create",
            "--name",
            &netdata,
            "-v",
            "/:/host/root:ro",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            IMAGE,
            "true",
        ]);

        // 4. A stack deployed by a manager container (Portainer-like): compose ran inside the
        //    manager, so the recorded paths exist only under its /data mount. The labels are
        //    those compose v2 writes (absolute config_files, a depends_on label); Debian ships
        //    only v1, so the containers are created with those labels directly.
        let manager_data = tmp.join("manager-data");
        let managed_dir = manager_data.join("compose/3");
        std::fs::create_dir_all(&managed_dir).unwrap();
        std::fs::write(
            managed_dir.join("docker-compose.yml"),
            "services:\n  app: {}\n  cache: {}\n",
        )
        .unwrap();
        std::fs::write(managed_dir.join(".env"), "TOKEN=x\n").unwrap();
        let portainer = format!("{prefix}-portainer");
        let data_mount = format!("{}:/data", manager_data.display());
        docker(&[
            "create",
            "--name",
            &portainer,
            "-v",
            &data_mount,
            IMAGE,
            "true",
        ]);
        let managed_stack = format!("{prefix}-managed");
        let gone = tmp.join("gone");
        std::fs::create_dir(&gone).unwrap();
        for (service, depends) in [("cache", ""), ("app", "cache:service_started:false")] {
            let mut args = vec![
                "create".to_owned(),
                "--name".into(),
                format!("{managed_stack}-{service}-1"),
                "--label".into(),
                format!("com.docker.compose.project={managed_stack}"),
                "--label".into(),
                format!("com.docker.compose.service={service}"),
                "--label".into(),
                "com.docker.compose.project.working_dir=/data/compose/3".into(),
                "--label".into(),
                "com.docker.compose.project.config_files=/data/compose/3/docker-compose.yml".into(),
            ];
            if !depends.is_empty() {
                args.extend([
                    "--label".into(),
                    format!("com.docker.compose.depends_on={depends}"),
                ]);
                args.extend(["-v".into(), format!("{}:/gone", gone.display())]);
            }
            args.extend([IMAGE.to_owned(), "true".into()]);
            docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        // A bind source that disappeared after the container was created: a real gap.
        std::fs::remove_dir(&gone).unwrap();

        let config = tmp.join("config.toml");
        let repo = format!("[repository]\nlocation = \"{}/repo\"\n", tmp.display());
        std::fs::write(&config, repo).unwrap();
        Self {
            prefix,
            stack,
            stack_dir,
            solo,
            netdata,
            portainer,
            managed_stack,
            managed_dir,
            gone,
            config,
            _resources: resources,
            _tmp: tmp_dir,
        }
    }
}

fn paths(files: &Value) -> Vec<String> {
    files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

fn check_compose_stack(units: &[&Value], fx: &Fixture) {
    let stack = &fx.stack;
    let s = find(units, stack, "stack");
    let db = format!("{stack}_db_1");
    let web = format!("{stack}_web_1");
    assert_eq!(strings(&s["start_order"]), vec![db, web.clone()]);
    let containers = s["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["state"], "running");
    assert_eq!(
        containers[0]["health"], "healthy",
        "compose waited for db to be healthy"
    );
    assert_eq!(strings(&containers[1]["depends_on"]), vec!["db"]);
    assert_eq!(strings(&containers[1]["tmpfs"]), vec!["/run/app"]);
    let volumes: Vec<&str> = s["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        volumes,
        vec![format!("{stack}_db-data"), format!("{stack}_web-cache")]
    );
    for v in s["volumes"].as_array().unwrap() {
        assert_eq!(v["status"], "backed_up");
        assert_eq!(v["driver"], "local");
        assert!(Path::new(v["mountpoint"].as_str().unwrap()).is_dir());
    }
    let binds = s["binds"].as_array().unwrap();
    assert_eq!(binds.len(), 1);
    assert_eq!(
        binds[0]["source"],
        fx.stack_dir.join("html").display().to_string()
    );
    assert_eq!(strings(&binds[0]["destinations"]), vec!["/www"]);
    assert_eq!(binds[0]["read_only"], true);
    assert_eq!(binds[0]["status"], "backed_up");
    assert_eq!(
        strings(&s["networks"]),
        vec![format!("{stack}_backend"), format!("{stack}_frontend")]
    );
    let project = &s["project"];
    let dir = |name: &str| fx.stack_dir.join(name).display().to_string();
    assert_eq!(project["working_dir"], fx.stack_dir.display().to_string());
    assert_eq!(
        paths(&project["compose_files"]),
        vec![dir("docker-compose.yml")]
    );
    assert_eq!(
        project["compose_files"][0]["recorded_as"], "docker-compose.yml",
        "v1 records it relative"
    );
    assert_eq!(
        paths(&project["env_files"]),
        vec![dir(".env"), dir("web.env")]
    );
    let tmpfs = coverage(s, "tmpfs", &format!("{web}:/run/app"));
    assert_eq!(tmpfs["status"], "skipped");
    assert_eq!(tmpfs["reason"]["code"], "tmpfs");
    assert_eq!(s["coverage"]["has_gaps"], false);
    assert_eq!(
        s["coverage"]["summary"]["backed_up"], 6,
        "2 volumes, 1 bind, 1 compose file, 2 env files"
    );
}

fn check_standalone(units: &[&Value], fx: &Fixture) {
    let u = find(units, &fx.solo, "standalone");
    assert_eq!(u["containers"][0]["state"], "running");
    assert_eq!(u["volumes"][0]["name"], format!("{}-data", fx.solo));
    assert_eq!(u["volumes"][0]["status"], "backed_up");
    assert!(u.get("project").is_none());

    // `/` and docker.sock binds are reported as skipped, with the reason.
    let u = find(units, &fx.netdata, "standalone");
    assert_eq!(u["containers"][0]["state"], "created");
    let root = coverage(u, "bind", "/");
    assert_eq!(root["status"], "skipped");
    assert_eq!(root["reason"]["code"], "root_filesystem");
    let sock = coverage(u, "bind", "/var/run/docker.sock");
    assert_eq!(sock["status"], "skipped");
    assert_eq!(sock["reason"]["code"], "host_internal");
    assert_eq!(sock["reason"]["under"], "/var/run");
    assert!(sock["detail"].as_str().unwrap().contains("host-internal"));
    assert_eq!(u["coverage"]["summary"]["backed_up"], 0);
    assert_eq!(u["coverage"]["has_gaps"], false);
}

fn check_managed_stack(units: &[&Value], fx: &Fixture) {
    let managed = &fx.managed_stack;
    let u = find(units, managed, "stack");
    let compose = &u["project"]["compose_files"][0];
    assert_eq!(
        compose["path"],
        fx.managed_dir
            .join("docker-compose.yml")
            .display()
            .to_string()
    );
    assert_eq!(compose["recorded_as"], "/data/compose/3/docker-compose.yml");
    assert_eq!(compose["resolved_via"], fx.portainer.as_str());
    assert_eq!(compose["present"], true);
    let env = fx.managed_dir.join(".env").display().to_string();
    assert_eq!(paths(&u["project"]["env_files"]), vec![env]);
    let order = vec![format!("{managed}-cache-1"), format!("{managed}-app-1")];
    assert_eq!(strings(&u["start_order"]), order);
    let gap = coverage(u, "bind", &fx.gone.display().to_string());
    assert_eq!(gap["status"], "not_protected");
    assert_eq!(gap["reason"]["code"], "missing");
    assert_eq!(u["coverage"]["has_gaps"], true);
}

#[test]
fn units_json_lists_fixture_stacks_volumes_binds_and_coverage() {
    if !support::docker_tests_enabled("units_json_lists_fixture_stacks_volumes_binds_and_coverage")
    {
        return;
    }
    let fx = Fixture::new();
    let out = kopi_docka()
        .args(["units", "--json", "--config"])
        .arg(&fx.config)
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).expect("valid JSON");
    let units = our_units(&report, &fx.prefix);

    let ids: BTreeSet<(&str, &str)> = units
        .iter()
        .map(|u| (u["kind"].as_str().unwrap(), u["name"].as_str().unwrap()))
        .collect();
    let expected: BTreeSet<(&str, &str)> = [
        ("stack", fx.stack.as_str()),
        ("standalone", fx.solo.as_str()),
        ("standalone", fx.netdata.as_str()),
        ("standalone", fx.portainer.as_str()),
        ("stack", fx.managed_stack.as_str()),
    ]
    .into_iter()
    .collect();
    assert_eq!(ids, expected);
    check_compose_stack(&units, &fx);
    check_standalone(&units, &fx);
    check_managed_stack(&units, &fx);

    // The text output says the same to a person.
    let out = kopi_docka()
        .args(["units", "--config"])
        .arg(&fx.config)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains(&format!("stack {}\n", fx.stack)), "{text}");
    let gap = format!("NOT PROTECTED bind {}: does not exist", fx.gone.display());
    assert!(text.contains(&gap), "{text}");
    assert!(
        text.contains("skipped       bind /: the host's root filesystem"),
        "{text}"
    );

    let prefix = fx.prefix.clone();
    drop(fx);
    let left = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={prefix}"),
        "--format",
        "{{.Names}}",
    ]);
    assert!(left.is_empty(), "cleanup left containers: {left}");
}

/// A `[units."x"]` table or a `[daemon] units` entry that names no unit is a warning in
/// `units` (text and JSON), `backup` and `doctor`; names that exist are not.
#[test]
fn config_names_without_a_unit_are_warnings() {
    if !support::docker_tests_enabled("config_names_without_a_unit_are_warnings") {
        return;
    }
    let prefix = support::unique_prefix();
    let (web, typo, gone) = (
        format!("{prefix}-web"),
        format!("{prefix}-wbe"),
        format!("{prefix}-gone"),
    );
    let env = support::Env::builder()
        .prefix(&prefix)
        .extra(&format!(
            "[units.\"{web}\"]\nmax-age-hours = 48\n[units.\"{typo}\"]\nmax-age-hours = 48\n\
             [daemon]\nunits = [\"{web}\", \"{gone}\"]\n"
        ))
        .init()
        .build();
    docker(&["run", "-d", "--name", &web, IMAGE, "sh", "-c", IDLE]);

    let report = env.json(&["units", "--json"]);
    let warnings = strings(&report["warnings"]);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with(&format!("[units.\"{typo}\"] names no discovered unit")));
    assert!(warnings[1].starts_with(&format!("[daemon] units names \"{gone}\"")));
    assert!(!warnings.iter().any(|w| w.contains(&format!("\"{web}\""))));
    let text = env.cmd(&["units"]).assert().success();
    let stdout = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("warning: [units.\"{typo}\"]")),
        "{stdout}"
    );

    let backup = env.cmd(&["backup", "--unit", &web]).assert().success();
    let stderr = String::from_utf8_lossy(&backup.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&format!("[units.\"{typo}\"] names no discovered unit")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("\"{gone}\", which is no discovered unit")),
        "{stderr}"
    );

    let doctor = env.cmd(&["doctor", "--json"]).output().unwrap();
    let doctor: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let config_checks: Vec<&Value> = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "configured units")
        .collect();
    assert_eq!(config_checks.len(), 2, "{doctor:#}");
    assert!(
        config_checks.iter().all(|c| c["status"] == "warn"),
        "{doctor:#}"
    );
}
