//! Real Docker resources for tests: named with a unique `kdtest-<random>` prefix, removed on
//! drop, and nothing else on the engine touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::process::run;

/// The local image every fixture uses (built by scripts/build-test-image.sh).
pub const IMAGE: &str = "kdtest/busybox:1";

/// A shell command for PID 1 that exits at once on SIGTERM (a bare `sleep` would ignore it and
/// make every stop wait for the whole timeout).
pub const IDLE: &str = "trap 'exit 0' TERM; sleep 2147483647 & wait";

/// True when Docker tests must run; prints why not otherwise.
pub fn docker_tests_enabled(test: &str) -> bool {
    if std::env::var("KOPI_DOCKA_DOCKER_TESTS").as_deref() == Ok("1") {
        let out = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        match out {
            Ok(o) if o.status.success() => true,
            Ok(o) => panic!(
                "KOPI_DOCKA_DOCKER_TESTS=1 but the Docker Engine does not answer: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("KOPI_DOCKA_DOCKER_TESTS=1 but `docker` cannot run: {e}"),
        }
    } else {
        eprintln!(
            "SKIPPED {test}: needs a Docker Engine; run scripts/test.sh or set KOPI_DOCKA_DOCKER_TESTS=1"
        );
        false
    }
}

/// A unique `kdtest-<random>` prefix for everything one test creates.
pub fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
    format!(
        "kdtest-{:08x}",
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
    )
}

/// `docker <args>`, panicking on failure.
pub fn docker(args: &[&str]) -> String {
    String::from_utf8_lossy(&run(Command::new("docker").args(args)).stdout)
        .trim()
        .to_owned()
}

/// Where the named volume's data lives on the host.
pub fn volume_mountpoint(volume: &str) -> PathBuf {
    PathBuf::from(docker(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        volume,
    ]))
}

/// Starts the idle container `name` with the named volume `<name>-data` at `/data`; returns
/// the volume's mountpoint on the host.
pub fn idle_with_volume(name: &str) -> PathBuf {
    let volume = format!("{name}-data");
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-v",
        &format!("{volume}:/data"),
        IMAGE,
        "sh",
        "-c",
        IDLE,
    ]);
    volume_mountpoint(&volume)
}

/// Everything a Docker test created, removed on drop (also when the test panics).
#[derive(Default)]
pub struct DockerResources {
    prefix: String,
    compose_projects: Vec<(String, PathBuf)>,
}

impl DockerResources {
    /// Tracks resources named with `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            compose_projects: Vec::new(),
        }
    }

    /// `docker-compose -p <project> up -d` in `dir`, remembered for `down -v`.
    pub fn compose_up(&mut self, project: &str, dir: &Path) {
        assert!(
            project.starts_with(&self.prefix),
            "{project} must use the test prefix"
        );
        self.compose_projects
            .push((project.to_owned(), dir.to_path_buf()));
        run(Command::new("docker-compose")
            .args(["-p", project, "up", "-d"])
            .current_dir(dir));
    }
}

impl Drop for DockerResources {
    fn drop(&mut self) {
        for (project, dir) in &self.compose_projects {
            let status = Command::new("docker-compose")
                .args(["-p", project, "down", "-v", "--timeout", "1"])
                .current_dir(dir)
                .output();
            if !status.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: docker-compose down for {project} failed; removing by name");
            }
        }
        // Anything else named with our prefix: containers first (they hold volumes and networks).
        let filter = format!("name={}", self.prefix);
        let list = |kind: &[&str], format: &str| -> Vec<String> {
            let mut args = kind.to_vec();
            args.extend(["--filter", &filter, "--format", format]);
            Command::new("docker")
                .args(&args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        for (kind, format, rm) in [
            (&["ps", "-a"][..], "{{.Names}}", &["rm", "-f", "-v"][..]),
            (
                &["volume", "ls"][..],
                "{{.Name}}",
                &["volume", "rm", "-f"][..],
            ),
            (&["network", "ls"][..], "{{.Name}}", &["network", "rm"][..]),
        ] {
            for name in list(kind, format)
                .into_iter()
                .filter(|n| n.starts_with(&self.prefix))
            {
                let ok = Command::new("docker")
                    .args(rm)
                    .arg(&name)
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !ok {
                    eprintln!("warning: could not remove {name}");
                }
            }
        }
    }
}
