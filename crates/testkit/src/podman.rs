//! Real rootful Podman for tests: its Docker-compatible API service on a private socket, with
//! a private `containers.conf` (runc, no default ulimits: Debian's crun fails on this kind of
//! host's hybrid cgroups, and `/etc` stays unchanged), and the `kdtest-*` objects a test made
//! removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::docker::IMAGE;
use crate::process::{LoggedChild, run};

/// One `podman system service` (rootful on a socket in a temp dir, or rootless as a test
/// user created for it); killed (by its PID) on drop.
pub struct Podman {
    service: Option<LoggedChild>,
    /// The rootless test user: name, uid, home.
    user: Option<(String, u32, u32, PathBuf)>,
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
            user: None,
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

    /// Rootless Podman as a new user named `prefix` (with sub-UIDs, as Debian's `useradd`
    /// gives them), its API service on `/run/user/UID/podman/podman.sock` as a logind
    /// session would have it; the user and everything of theirs are removed on drop.
    pub fn rootless(prefix: &str) -> Self {
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", prefix]));
        let id = |flag: &str| -> u32 {
            String::from_utf8_lossy(&run(Command::new("id").args([flag, prefix])).stdout)
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let home = PathBuf::from(format!("/home/{prefix}"));
        // A tmpfs of its own, as logind mounts it: rootless Podman's network namespace (the
        // bridge networks podman-compose makes) bind-mounts it and fails on a plain directory.
        let runtime = PathBuf::from(format!("/run/user/{uid}"));
        std::fs::create_dir_all(&runtime).unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("mode=0700,uid={uid},gid={gid},size=64m"))
            .arg("tmpfs")
            .arg(&runtime));
        let conf = home.join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut podman = Self {
            service: None,
            user: Some((prefix.to_owned(), uid, gid, home)),
            socket: runtime.join("podman/podman.sock"),
            conf,
            prefix: prefix.to_owned(),
            compose_projects: Vec::new(),
            dir,
        };
        podman.load_test_image();
        let mut service = LoggedChild::spawn(podman.command("podman").args([
            "--log-level=info",
            "system",
            "service",
            "--time=0",
        ]));
        service.wait_for_line("rootless podman's API service listens", |l| {
            l.contains("API service listening")
        });
        podman.service = Some(service);
        podman
    }

    /// The rootless test user's name.
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|(name, ..)| name.as_str())
    }

    /// The rootless test user's home, and their uid and gid.
    pub fn home(&self) -> Option<(&Path, u32, u32)> {
        self.user
            .as_ref()
            .map(|(_, uid, gid, home)| (home.as_path(), *uid, *gid))
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

    /// `program` with `CONTAINERS_CONF` set; as the rootless user (setpriv execs, so the
    /// child's PID is the program's) with their home and runtime dir.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = match &self.user {
            None => Command::new(program),
            Some((_, uid, gid, home)) => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--init-groups", program])
                    .env("HOME", home)
                    .env("XDG_RUNTIME_DIR", format!("/run/user/{uid}"))
                    .env("USER", self.prefix.as_str())
                    .current_dir(home);
                cmd
            }
        };
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
        std::fs::set_permissions(
            &archive,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
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
        if let Some((name, uid, ..)) = &self.user {
            // The user's leftovers (Podman's pause process, conmon), each by its PID: all of
            // them were started for this test, as this user.
            for pid in processes_of(*uid) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid)
                    && let Err(error) =
                        rustix::process::kill_process(pid, rustix::process::Signal::KILL)
                {
                    // It may have ended meanwhile; userdel below says if anything is left.
                    eprintln!("warning: cannot kill {}: {error}", pid.as_raw_nonzero());
                }
            }
            let removed = Command::new("userdel").args(["-r", "-f", name]).output();
            if !removed.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: userdel -r {name} failed");
            }
            // Lazily: the user's network namespaces may still be mounted below it.
            let unmounted = Command::new("umount")
                .arg("--lazy")
                .arg(format!("/run/user/{uid}"))
                .output();
            if !unmounted.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: cannot unmount /run/user/{uid}");
            }
            if let Err(error) = std::fs::remove_dir_all(format!("/run/user/{uid}")) {
                eprintln!("warning: cannot remove /run/user/{uid}: {error}");
            }
        }
    }
}

/// PIDs of the processes whose real uid is `uid`.
fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status.lines().any(|l| {
                    l.strip_prefix("Uid:")
                        .and_then(|ids| ids.split_whitespace().next())
                        .is_some_and(|real| real == uid.to_string())
                })
            })
        })
        .collect()
}
