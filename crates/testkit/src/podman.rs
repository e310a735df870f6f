//! Real rootful Podman for tests: its Docker-compatible API service on a private socket, with
//! a private `containers.conf` (runc, no default ulimits: Debian's crun fails on this kind of
//! host's hybrid cgroups, and `/etc` stays unchanged), and the `kdtest-*` objects a test made
//! removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker::IMAGE;
use crate::process::{LoggedChild, run};

/// One `podman system service` on a socket in a temp dir; killed (by its PID) on drop.
pub struct Podman {
    service: Option<LoggedChild>,
    socket: PathBuf,
    conf: PathBuf,
    prefix: String,
    compose_projects: Vec<(String, PathBuf)>,
    dir: tempfile::TempDir,
}

impl Podman {
    /// Starts rootful Podman's API service for objects named with `prefix` and makes sure the
    /// test image is in Podman's storage (copied from Docker's, no registry).
    pub fn rootful(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        let socket = dir.path().join("podman.sock");
        let mut podman = Self {
            service: None,
            socket,
            conf,
            prefix: prefix.to_owned(),
            compose_projects: Vec::new(),
            dir,
        };
        podman.load_test_image();
        let mut service = LoggedChild::spawn(
            podman
                .command("podman")
                .args(["--log-level=info", "system", "service", "--time=0"])
                .arg(format!("unix://{}", podman.socket.display())),
        );
        service.wait_for_line("podman's API service listens", |l| {
            l.contains("API service listening")
        });
        podman.service = Some(service);
        podman
    }

    /// `unix://` address of the API socket, for `DOCKER_HOST` or `[docker] host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The private `containers.conf`: every podman and podman-compose run needs it in
    /// `CONTAINERS_CONF`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `program` with `CONTAINERS_CONF` set.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("CONTAINERS_CONF", &self.conf);
        cmd
    }

    /// `podman <args>`, panicking on failure; its trimmed stdout.
    pub fn podman(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run(self.command("podman").args(args)).stdout)
            .trim()
            .to_owned()
    }

    /// `podman-compose -p <project> up -d` in `dir`, remembered for `down -v`.
    pub fn compose_up(&mut self, project: &str, dir: &Path) {
        assert!(
            project.starts_with(&self.prefix),
            "{project} must use the test prefix"
        );
        self.compose_projects
            .push((project.to_owned(), dir.to_path_buf()));
        run(self
            .command("podman-compose")
            .args(["-p", project, "up", "-d"])
            .current_dir(dir));
    }

    /// Where a Podman volume's data lives.
    pub fn volume_mountpoint(&self, volume: &str) -> PathBuf {
        PathBuf::from(self.podman(&["volume", "inspect", "--format", "{{.Mountpoint}}", volume]))
    }

    /// A scratch directory that lives as long as this value.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn load_test_image(&self) {
        let local = format!("localhost/{IMAGE}");
        let exists = self
            .command("podman")
            .args(["image", "exists", &local])
            .status()
            .unwrap();
        if exists.success() {
            return;
        }
        let archive = self.dir.path().join("image.tar");
        run(Command::new("docker")
            .args(["save", "-o"])
            .arg(&archive)
            .arg(IMAGE));
        run(self.command("podman").arg("load").arg("-i").arg(&archive));
        std::fs::remove_file(&archive).unwrap();
    }

    fn names(&self, kind: &str) -> Vec<String> {
        let filter = format!("name={}", self.prefix);
        let mut args: Vec<&str> = kind.split(' ').collect();
        let format = if kind == "ps -a" {
            "{{.Names}}"
        } else {
            "{{.Name}}"
        };
        args.extend(["--filter", &filter, "--format", format]);
        self.command("podman")
            .args(&args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|n| n.starts_with(&self.prefix))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for (project, dir) in &self.compose_projects {
            let done = self
                .command("podman-compose")
                .args(["-p", project, "down", "-v"])
                .current_dir(dir)
                .output();
            if !done.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: podman-compose down for {project} failed; removing by name");
            }
        }
        // Containers first (they hold volumes, networks and pods).
        for (kind, remove) in [
            ("ps -a", "rm -f"),
            ("pod ls", "pod rm -f"),
            ("volume ls", "volume rm -f"),
            ("network ls", "network rm -f"),
        ] {
            let names = self.names(kind);
            if names.is_empty() {
                continue;
            }
            let mut args: Vec<&str> = remove.split(' ').collect();
            args.extend(names.iter().map(String::as_str));
            if !self
                .command("podman")
                .args(&args)
                .output()
                .is_ok_and(|o| o.status.success())
            {
                eprintln!("warning: podman {remove} {names:?} failed");
            }
        }
        // Dropping the child kills the service (by its PID) and reaps it.
        self.service.take();
    }
}
