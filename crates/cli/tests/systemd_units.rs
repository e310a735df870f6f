//! Units managed by systemd, with real systemd: Debian's systemd boots as PID 1 in a Docker
//! container (private cgroup namespace and a private cgroup2 mount; the host's
//! /sys/fs/cgroup is never mounted), with Podman inside, and the real kopi-docka binary runs
//! next to it. A container of a `podman generate systemd --new` unit (`--rm --replace`,
//! `PODMAN_SYSTEMD_UNIT`) and a `*-stack.service` wrapping podman-compose under a lingering
//! user's `--user` manager are stopped and started through their units; an inactive stack
//! stays inactive; a run killed while a unit is stopped leaves it to `admin restart-stopped`;
//! frozen on-demand sockets are stopped during the backup and put back, also on failure.
//!
//! The image is built (cached by content) by `scripts/build-systemd-image.sh`, which
//! `scripts/test.sh` runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the failure report"
)]

use kopi_docka_testkit as support;

use std::process::{Command, Output, Stdio};

use serde_json::Value;

const IMAGE: &str = "kdtest/systemd-podman:bookworm";
const USER: &str = "kduser";

/// One systemd container, removed (with its anonymous volumes) when dropped.
struct SystemdHost {
    name: String,
    /// The container's `/kd` (config, repository, state), readable from the host.
    kd: tempfile::TempDir,
}

impl SystemdHost {
    fn boot(prefix: &str) -> Self {
        assert!(
            Command::new("docker")
                .args(["image", "inspect", IMAGE])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success(),
            "{IMAGE} is missing: run scripts/build-systemd-image.sh"
        );
        let name = format!("{prefix}-systemd");
        let host = Self {
            name,
            kd: tempfile::tempdir().unwrap(),
        };
        let kd_mount = format!("{}:/kd", host.kd.path().display());
        support::docker(&[
            "run",
            "-d",
            "--name",
            &host.name,
            "--label",
            "kdtest=1",
            // systemd needs its own cgroup2 (sd-init mounts it) and mounts; nested Podman
            // needs the rest (docs: shared/research/systemd-podman-realism.md §4).
            "--cgroupns=private",
            "--cap-add",
            "SYS_ADMIN",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--device",
            "/dev/net/tun",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "-v",
            "/var/lib/containers",
            "-v",
            "/home",
            "-v",
            &kd_mount,
            "--stop-signal",
            "SIGRTMIN+3",
            IMAGE,
        ]);
        // `is-system-running --wait` returns when the boot is done; systemd may not answer
        // on its bus for the first moments after the container starts.
        let mut state = String::new();
        for _ in 0..100 {
            let out = host.exec_output(None, "systemctl is-system-running --wait");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .clone_into(&mut state);
            if state == "running" || state == "degraded" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(
            state,
            "running",
            "systemd did not boot: {}",
            host.sh("systemctl --failed --no-legend; true")
        );
        host
    }

    fn exec_output(&self, user: Option<&str>, script: &str) -> Output {
        let mut cmd = Command::new("docker");
        cmd.arg("exec").arg("-i");
        if let Some(user) = user {
            let uid = self.uid(user);
            cmd.args(["-u", user, "-w", &format!("/home/{user}")])
                .arg("-e")
                .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"));
        }
        cmd.arg(&self.name).args(["sh", "-c", script]);
        cmd.output().unwrap()
    }

    fn uid(&self, user: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.name, "id", "-u", user])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs `script` as root; it must succeed. Returns its trimmed stdout.
    fn sh(&self, script: &str) -> String {
        self.sh_as(None, script)
    }

    fn sh_as(&self, user: Option<&str>, script: &str) -> String {
        let out = self.exec_output(user, script);
        assert!(
            out.status.success(),
            "`{script}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Loads the local busybox test image into root's (or `user`'s) Podman.
    fn load_busybox(&self, user: Option<&str>) {
        let mut save = Command::new("docker")
            .args(["save", support::IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut cmd = Command::new("docker");
        cmd.args(["exec", "-i"]);
        if let Some(user) = user {
            cmd.args(["-u", user, "-w", &format!("/home/{user}")]);
        }
        let status = cmd
            .args([&self.name, "podman", "load", "-q"])
            .stdin(save.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(save.wait().unwrap().success(), "docker save failed");
        assert!(status.success(), "podman load failed");
    }

    /// Copies the kopi-docka binary in and writes a config (repository in /kd) with `extra`.
    fn install_kopi_docka(&self, extra: &str) {
        let binary = assert_cmd::cargo::cargo_bin("kopi-docka");
        support::docker(&[
            "cp",
            binary.to_str().unwrap(),
            &format!("{}:/usr/local/bin/kopi-docka", self.name),
        ]);
        self.sh(&format!(
            "umask 077 && echo kdtest-password > /kd/pw && cat > /kd/config.toml <<'EOF'
[repository]
location = \"/kd/repo\"
password-file = \"/kd/pw\"
[backup]
health-timeout-seconds = 30
{extra}
EOF
"
        ));
        self.kd(&["admin", "repo", "init"]);
    }

    fn kd_output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args([
            "exec",
            "-e",
            "KOPI_DOCKA_STATE_DIR=/kd/state",
            "-e",
            "KOPI_DOCKA_CACHE_DIR=/kd/cache",
            &self.name,
            "kopi-docka",
            "--config",
            "/kd/config.toml",
        ]);
        cmd.args(args).output().unwrap()
    }

    /// Runs kopi-docka inside; it must succeed. Returns stdout and stderr.
    fn kd(&self, args: &[&str]) -> (String, String) {
        let out = self.kd_output(args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            out.status.success(),
            "kopi-docka {args:?} failed ({}): {stdout}{stderr}",
            out.status
        );
        (stdout, stderr)
    }

    /// `ActiveState` of a unit, and how many stop and start jobs of it the journal records as
    /// done (systemd forgets an inactive unit's timestamps when it unloads it; the journal
    /// keeps the record).
    fn unit_jobs(&self, user: Option<&str>, unit: &str) -> (String, usize, usize) {
        let (manager, field) = match user {
            Some(_) => ("--user", "USER_UNIT"),
            None => ("", "UNIT"),
        };
        let state = self
            .exec_output(user, &format!("systemctl {manager} is-active {unit}"))
            .stdout;
        let count = |job: &str| {
            self.sh(&format!(
                "journalctl --sync && journalctl -o cat {field}={unit} JOB_TYPE={job} \
                 JOB_RESULT=done | wc -l"
            ))
            .parse()
            .unwrap()
        };
        (
            String::from_utf8_lossy(&state).trim().to_owned(),
            count("stop"),
            count("start"),
        )
    }
}

impl Drop for SystemdHost {
    fn drop(&mut self) {
        // Removes the container, its Podman storage and /home (anonymous volumes).
        let status = Command::new("docker")
            .args(["rm", "-f", "-v", &self.name])
            .stdout(Stdio::null())
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("warning: could not remove {}", self.name);
        }
    }
}

/// A `podman generate systemd --new` unit of the system manager: backup stops and starts it
/// through systemd (the container is recreated by the unit, as `--rm --replace` does), and a
/// restore of its volume does the same; the data round-trips.
#[test]
fn generated_podman_unit_is_stopped_and_started_through_systemd() {
    if !support::docker_tests_enabled(
        "generated_podman_unit_is_stopped_and_started_through_systemd",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let host = SystemdHost::boot(&prefix);
    host.load_busybox(None);
    let web = format!("{prefix}-web");
    let unit = format!("container-{web}.service");
    host.sh(&format!(
        "podman create --name {web} -v {prefix}-webvol:/data --stop-signal TERM \
         localhost/{image} sh -c \"{idle}\" >/dev/null
         cd /etc/systemd/system && podman generate systemd --new --files --name {web} >/dev/null
         podman rm {web} >/dev/null && systemctl daemon-reload && systemctl start {unit}
         podman exec {web} sh -c 'echo original > /data/file'",
        image = support::IMAGE,
        idle = support::IDLE,
    ));
    let before_id = host.sh(&format!("podman inspect --format '{{{{.Id}}}}' {web}"));
    host.install_kopi_docka("[docker]\nhost = \"unix:///run/podman/podman.sock\"\n");

    let (units, _) = host.kd(&["units"]);
    assert!(units.contains(&format!("systemd unit:  {unit}")), "{units}");
    let (state, stops, starts) = host.unit_jobs(None, &unit);
    assert_eq!((state.as_str(), stops), ("active", 0));
    // Named by its systemd unit: the same unit as `{web}`.
    let (_, log) = host.kd(&["backup", "--unit", &unit]);
    assert!(log.contains("stopped through systemd"), "{log}");
    // The unit went inactive and active again: one stop job, one more start job.
    assert_eq!(
        host.unit_jobs(None, &unit),
        ("active".to_owned(), 1, starts + 1)
    );
    // The unit made a new container (`--rm --replace`); the engine never started the old one.
    let after_id = host.sh(&format!(
        "podman inspect --format '{{{{.Id}}}} {{{{.State.Running}}}}' {web}"
    ));
    assert_ne!(after_id, format!("{before_id} true"));
    assert!(after_id.ends_with(" true"), "{after_id}");

    // The data round-trips: changed, then restored through the same unit.
    host.sh(&format!(
        "podman exec {web} sh -c 'echo changed > /data/file'"
    ));
    let out = host.kd_output(&["restore", "--unit", &web, "--latest", "--yes", "--json"]);
    let outcome: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{outcome:#}");
    assert_eq!(outcome["errors"], serde_json::json!([]), "{outcome:#}");
    assert_eq!(
        host.unit_jobs(None, &unit),
        ("active".to_owned(), 2, starts + 2)
    );
    assert_eq!(
        host.sh(&format!("podman exec {web} cat /data/file")),
        "original"
    );
    assert_eq!(
        host.sh("cat /kd/state/stopped-containers.json 2>/dev/null; true"),
        ""
    );
    // The unit's file is part of the recipe.
    let found = support::restic(
        &host.kd.path().join("repo"),
        &host.kd.path().join("pw"),
        ["find", unit.as_str()],
    );
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(
        found.contains(&format!("/recipe/systemd/etc/systemd/system/{unit}")),
        "the unit file is part of the recipe: {found}"
    );
    restore_puts_a_gone_unit_back(&host, &web, &unit);
}

/// The unit and its `--rm` container gone (a fresh host, as far as this unit goes): the
/// restore puts the unit file back (trusted only: it runs as root), reloads the manager and
/// starts the unit, which makes the container on the restored data; nothing through the API.
fn restore_puts_a_gone_unit_back(host: &SystemdHost, web: &str, unit: &str) {
    let file = format!("/etc/systemd/system/{unit}");
    host.sh(&format!(
        "podman exec {web} sh -c 'echo changed > /data/file' && systemctl stop {unit} && \
         rm {file} && systemctl daemon-reload && ! podman container exists {web}"
    ));
    let (_, stops, starts) = host.unit_jobs(None, unit);
    let out = host.kd_output(&["restore", "--unit", web, "--latest", "--dry-run", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(plan["start"]["method"], "systemd", "{plan:#}");
    assert_eq!(plan["start"]["services"][0]["unit"], unit, "{plan:#}");
    assert_eq!(plan["unit_files"][0]["path"], file.as_str(), "{plan:#}");
    assert_eq!(plan["unit_files"][0]["action"], "create", "{plan:#}");
    // A unit file from the repository runs as root: not without trust.
    let out = host.kd_output(&["restore", "--unit", web, "--latest", "--yes"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&file),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host.sh(&format!("test -e {file} || echo gone")), "gone");

    let out = host.kd_output(&[
        "restore",
        "--unit",
        web,
        "--latest",
        "--yes",
        "--trust-recipe",
        "--json",
    ]);
    let outcome: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{outcome:#}");
    assert_eq!(outcome["started"], serde_json::json!([web]), "{outcome:#}");
    // Back with its owner and mode, loaded, started by systemd (one more start job).
    assert_eq!(host.sh(&format!("stat -c '%U %a' {file}")), "root 644");
    assert_eq!(
        host.unit_jobs(None, unit),
        ("active".to_owned(), stops, starts + 1)
    );
    assert_eq!(
        host.sh(&format!(
            "podman inspect --format '{{{{.State.Running}}}} {{{{index .Config.Labels \"PODMAN_SYSTEMD_UNIT\"}}}}' {web}"
        )),
        format!("true {unit}")
    );
    assert_eq!(
        host.sh(&format!("podman exec {web} cat /data/file")),
        "original"
    );
}

/// Two podman-compose stacks of the user, each under its own `<stack>-stack.service`: `app`
/// active, `idle` started once and stopped again (its containers exist, stopped).
fn user_stacks(host: &SystemdHost, app: &str, idle: &str) {
    for stack in [app, idle] {
        host.sh_as(
            Some(USER),
            &format!(
                "mkdir -p ~/stacks/{stack} ~/.config/systemd/user && cd ~/stacks/{stack} && \
                 cat > docker-compose.yml <<'EOF'
version: \"3\"
services:
  app:
    image: localhost/{image}
    command: [\"sh\", \"-c\", \"{idle_cmd}\"]
    volumes:
      - appdata:/data
volumes:
  appdata:
EOF
cat > ~/.config/systemd/user/{stack}-stack.service <<'EOF'
[Unit]
Description={stack} stack (podman-compose)
[Service]
Type=oneshot
RemainAfterExit=yes
WorkingDirectory=%h/stacks/{stack}
ExecStart=/usr/bin/podman-compose -p {stack} up -d
ExecStop=/usr/bin/podman-compose -p {stack} stop
EOF
",
                image = support::IMAGE,
                idle_cmd = support::IDLE,
            ),
        );
    }
    host.sh_as(
        Some(USER),
        &format!(
            "systemctl --user daemon-reload && systemctl --user start podman.socket \
             {app}-stack.service {idle}-stack.service && systemctl --user stop {idle}-stack.service \
             && podman exec {app}_app_1 sh -c 'echo app > /data/file'"
        ),
    );
}

/// A `*-stack.service` of a lingering user's `--user` manager that wraps podman-compose,
/// mapped in the config (`[units.<name>] systemd-unit`), with root backing up the user's
/// rootless Podman: stopped and started through the unit; an inactive stack stays inactive
/// (policy `previous`); a run killed after the stop leaves the unit to `admin
/// restart-stopped`.
#[test]
fn user_stack_service_is_stopped_and_started_through_the_user_manager() {
    if !support::docker_tests_enabled(
        "user_stack_service_is_stopped_and_started_through_the_user_manager",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let host = SystemdHost::boot(&prefix);
    // The container's own tun node (a copy of the host's, 0600): rootless networks need it.
    host.sh(&format!(
        "chmod 0666 /dev/net/tun && useradd -m -s /bin/sh {USER} && loginctl enable-linger {USER} \
         && systemctl start user@$(id -u {USER}).service"
    ));
    host.load_busybox(Some(USER));
    let (app, idle) = (format!("{prefix}-app"), format!("{prefix}-idle"));
    user_stacks(&host, &app, &idle);
    let running = |name: &str| {
        host.sh_as(
            Some(USER),
            &format!("podman inspect --format '{{{{.State.Running}}}}' {name}"),
        )
    };
    assert_eq!(running(&format!("{app}_app_1")), "true");
    assert_eq!(running(&format!("{idle}_app_1")), "false");
    // Three spellings of the same stack: the unit, without `.service`, the stack name.
    host.install_kopi_docka(&format!(
        "[docker]\nengine = \"podman\"\nuser = \"{USER}\"\n\
         [units.\"{app}-stack.service\"]\nsystemd-unit = \"{app}-stack.service\"\n\
         [units.\"{idle}\"]\nsystemd-unit = \"{idle}-stack\"\n"
    ));

    let user = Some(USER);
    let (app_unit, idle_unit) = (
        format!("{app}-stack.service"),
        format!("{idle}-stack.service"),
    );
    let (state, app_stops, app_starts) = host.unit_jobs(user, &app_unit);
    assert_eq!(state, "active");
    let idle_before = host.unit_jobs(user, &idle_unit);
    assert_eq!(idle_before.0, "inactive");
    let (_, log) = host.kd(&[
        "backup",
        "--unit",
        &format!("{app}-stack"),
        "--unit",
        &idle_unit,
    ]);
    assert!(log.contains("stopped through systemd"), "{log}");
    assert_eq!(
        host.unit_jobs(user, &app_unit),
        ("active".to_owned(), app_stops + 1, app_starts + 1),
        "{app_unit} must have gone inactive and active again"
    );
    assert_eq!(running(&format!("{app}_app_1")), "true");
    // Policy `previous`: what was inactive stays inactive, its containers stopped.
    assert_eq!(
        host.unit_jobs(user, &idle_unit),
        idle_before,
        "{idle_unit} was touched"
    );
    assert_eq!(running(&format!("{idle}_app_1")), "false");
    let found = support::restic(
        &host.kd.path().join("repo"),
        &host.kd.path().join("pw"),
        ["find", app_unit.as_str()],
    );
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(
        found.contains(&format!(
            "/recipe/systemd/home/{USER}/.config/systemd/user/{app_unit}"
        )),
        "the unit file is part of the recipe: {found}"
    );
    let points = host.kd(&["snapshots", "--json"]).0;
    for stack in [&app, &idle] {
        assert!(
            points.contains(stack.as_str()),
            "no point of {stack}: {points}"
        );
    }

    restore_through_the_user_manager(&host, &app, &app_unit);

    // A run killed right after the stop (its post-stop hook kills it): the unit stays
    // inactive, journaled; `admin restart-stopped` starts it through systemd.
    host.sh("cat >> /kd/config.toml <<'EOF'
[hooks]
post-stop = [\"/bin/sh\", \"-c\", \"kill -9 $PPID\"]
EOF");
    let out = host.kd_output(&["backup", "--unit", &app]);
    assert!(!out.status.success());
    assert_eq!(host.unit_jobs(user, &app_unit).0, "inactive");
    assert!(
        host.sh("cat /kd/state/stopped-containers.json")
            .contains(&format!("{app}-stack.service"))
    );
    let (out, _) = host.kd(&["admin", "restart-stopped", "--json"]);
    assert!(out.contains(&app_unit), "{out}");
    assert_eq!(host.unit_jobs(user, &app_unit).0, "active");
    assert_eq!(running(&format!("{app}_app_1")), "true");

    host.sh("sed -i '/^\\[hooks\\]/,$d' /kd/config.toml");
    restore_a_gone_user_stack(&host, &app, &app_unit);
}

/// The fresh-host case of a user's stack: its containers, volume, project directory and unit
/// file all gone. The restore puts the unit file and the compose file back as the user's, the
/// volume with its data, and starts the unit, whose podman-compose makes the stack again.
fn restore_a_gone_user_stack(host: &SystemdHost, app: &str, app_unit: &str) {
    let user = Some(USER);
    host.sh_as(
        user,
        &format!(
            "systemctl --user stop {app_unit} && cd ~/stacks/{app} && \
             podman-compose -p {app} down -v && cd && rm -r ~/stacks/{app} \
             ~/.config/systemd/user/{app_unit} && systemctl --user daemon-reload"
        ),
    );
    assert_eq!(
        host.sh_as(
            user,
            &format!("podman ps -a --filter name={app} --format '{{{{.Names}}}}'")
        ),
        ""
    );
    let out = host.kd_output(&[
        "restore",
        "--unit",
        app,
        "--latest",
        "--yes",
        "--trust-recipe",
        "--json",
    ]);
    let outcome: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{outcome:#}");
    assert_eq!(host.unit_jobs(user, app_unit).0, "active");
    assert_eq!(
        host.sh_as(user, &format!("podman exec {app}_app_1 cat /data/file")),
        "app"
    );
    assert_eq!(
        host.sh(&format!(
            "stat -c '%U' /home/{USER}/stacks/{app}/docker-compose.yml \
             /home/{USER}/.config/systemd/user/{app_unit}"
        )),
        format!("{USER}\n{USER}")
    );
}

/// A restore of the mapped stack goes through the user's manager too, and puts the unit file
/// the user had deleted back, the user's own (the manager still had it loaded).
fn restore_through_the_user_manager(host: &SystemdHost, app: &str, app_unit: &str) {
    let user = Some(USER);
    let running = |name: &str| {
        host.sh_as(
            user,
            &format!("podman inspect --format '{{{{.State.Running}}}}' {name}"),
        )
    };
    let file = format!("/home/{USER}/.config/systemd/user/{app_unit}");
    host.sh_as(
        user,
        &format!("podman exec {app}_app_1 sh -c 'echo changed > /data/file' && rm {file}"),
    );
    let (_, stops, starts) = host.unit_jobs(user, app_unit);
    let out = host.kd_output(&[
        "restore",
        "--unit",
        app,
        "--latest",
        "--yes",
        "--trust-recipe",
        "--json",
    ]);
    let outcome: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{outcome:#}");
    assert_eq!(
        host.unit_jobs(user, app_unit),
        ("active".to_owned(), stops + 1, starts + 1),
        "the restore must stop and start {app_unit} through systemctl --user"
    );
    assert_eq!(
        host.sh(&format!("stat -c '%U %a' {file}")),
        format!("{USER} 644")
    );
    assert_eq!(running(&format!("{app}_app_1")), "true");
    assert_eq!(
        host.sh_as(user, &format!("podman exec {app}_app_1 cat /data/file")),
        "app"
    );
}

/// Every backup hook point, in the order they run.
const HOOK_POINTS: [&str; 7] = [
    "pre-backup",
    "pre-stop",
    "post-stop",
    "pre-start",
    "post-start",
    "verify",
    "post-backup",
];

/// An on-demand stack (the seed's Zoopa socket): `freeze-sockets` stops the active socket and
/// its service before the stack's unit (the `post-stop` hook sees all three inactive), and
/// afterwards puts each back as it was (a socket whose service was inactive gets its socket
/// back, its service stays inactive), also when the backup fails (a failing `post-stop`
/// hook). The hooks of every point run in order, `verify` after `post-start`.
#[test]
fn frozen_sockets_are_stopped_during_the_backup_and_restored_even_on_failure() {
    if !support::docker_tests_enabled(
        "frozen_sockets_are_stopped_during_the_backup_and_restored_even_on_failure",
    ) {
        return;
    }
    let prefix = support::unique_prefix();
    let host = SystemdHost::boot(&prefix);
    host.load_busybox(None);
    let web = format!("{prefix}-web");
    let unit = format!("container-{web}.service");
    let (od, idle) = (format!("{prefix}-od"), format!("{prefix}-odidle"));
    host.sh(&format!(
        "podman create --name {web} -v {prefix}-webvol:/data --stop-signal TERM \
         localhost/{image} sh -c \"{idle_cmd}\" >/dev/null
         cd /etc/systemd/system && podman generate systemd --new --files --name {web} >/dev/null
         for s in {od} {idle}; do
           printf '[Socket]\\nListenStream=/run/%s.sock\\n' $s > $s.socket
           printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > $s.service
         done
         podman rm {web} >/dev/null && systemctl daemon-reload
         systemctl start {unit} {od}.socket {od}.service {idle}.socket",
        image = support::IMAGE,
        idle_cmd = support::IDLE,
    ));
    let point = |name: &str| {
        format!(
            "{name} = [\"/bin/sh\", \"-c\", \"echo {name} $(systemctl is-active {od}.socket \
             {od}.service {unit} | tr '\\\\n' ' ') >> /kd/hooks.log\"]\n"
        )
    };
    let hooks: String = HOOK_POINTS.into_iter().map(point).collect();
    let table = format!(
        "[docker]\nhost = \"unix:///run/podman/podman.sock\"\n\
         [units.\"{web}\"]\nfreeze-sockets = [\"{od}.socket\", \"{idle}.socket\"]\n"
    );
    host.install_kopi_docka(&format!("{table}[units.\"{web}\".hooks]\n{hooks}"));
    let before: Vec<_> = [&format!("{od}.socket"), &format!("{od}.service")]
        .into_iter()
        .map(|u| host.unit_jobs(None, u))
        .collect();
    let idle_service = host.unit_jobs(None, &format!("{idle}.service"));
    assert_eq!(idle_service.0, "inactive");
    // The dry run names the unit that stops it and the sockets it freezes.
    let (plan, _) = host.kd(&["backup", "--dry-run", &web]);
    assert!(
        plan.contains(&format!("through:     systemd unit {unit}"))
            && plan.contains(&format!("frozen:      {od}.socket, {idle}.socket")),
        "{plan}"
    );

    host.kd(&["backup", "--unit", &web]);
    let log = host.sh("cat /kd/hooks.log");
    let points: Vec<&str> = log
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(points, HOOK_POINTS, "{log}");
    let states = |name: &str| {
        log.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(states("pre-stop"), ["active", "active", "active"], "{log}");
    assert_eq!(
        states("post-stop"),
        ["inactive", "inactive", "inactive"],
        "the socket, its service and the stack were stopped for the cold pass: {log}"
    );
    assert_eq!(states("verify"), ["active", "active", "active"], "{log}");
    for (name, (_, stops, starts)) in [format!("{od}.socket"), format!("{od}.service")]
        .iter()
        .zip(&before)
    {
        let (state, stops_now, starts_now) = host.unit_jobs(None, name);
        assert_eq!(state, "active", "{name}");
        assert!(
            stops_now > *stops && starts_now > *starts,
            "{name} was not stopped and started"
        );
    }
    assert_eq!(host.unit_jobs(None, &format!("{idle}.socket")).0, "active");
    assert_eq!(
        host.unit_jobs(None, &format!("{idle}.service")),
        idle_service,
        "an inactive triggered service stays untouched"
    );
    frozen_and_a_failing_post_stop_hook(&host, &table, &web, (&od, &idle));
}

/// A failing post-stop hook: the backup fails, the frozen socket was stopped, and everything
/// comes back as it was (nothing left in the journal).
fn frozen_and_a_failing_post_stop_hook(
    host: &SystemdHost,
    table: &str,
    web: &str,
    (od, idle): (&str, &str),
) {
    let unit = format!("container-{web}.service");
    host.sh(&format!(
        "cat > /kd/hooks.toml <<'EOF'\n{table}[units.\"{web}\".hooks]\n\
         post-stop = [\"/bin/sh\", \"-c\", \"systemctl is-active {od}.socket > /kd/frozen; exit 9\"]\nEOF\n\
         sed -i '/^\\[docker\\]/,$d' /kd/config.toml && cat /kd/hooks.toml >> /kd/config.toml"
    ));
    let out = host.kd_output(&["backup", "--unit", web]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("post-stop hook"), "{said}");
    assert_eq!(host.sh("cat /kd/frozen"), "inactive");
    for name in [
        format!("{od}.socket"),
        format!("{od}.service"),
        unit.clone(),
        format!("{idle}.socket"),
    ] {
        assert_eq!(host.unit_jobs(None, &name).0, "active", "{name}");
    }
    assert_eq!(
        host.unit_jobs(None, &format!("{idle}.service")).0,
        "inactive"
    );
    assert_eq!(
        host.sh("cat /kd/state/stopped-containers.json 2>/dev/null; true"),
        ""
    );
}
