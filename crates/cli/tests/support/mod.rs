//! Shared test support: running the real binary, and real Docker resources that clean up
//! after themselves.
//!
//! Docker tests run only when `KOPI_DOCKA_DOCKER_TESTS=1` (the README's test command sets it).
//! With the switch on, an unreachable engine FAILS the test: it never turns into a skip.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// The local image every fixture uses (built by scripts/build-test-image.sh).
pub const IMAGE: &str = "kdtest/busybox:1";

/// A shell command for PID 1 that exits at once on SIGTERM (a bare `sleep` would ignore it and
/// make every stop wait for the whole timeout).
pub const IDLE: &str = "trap 'exit 0' TERM; sleep 2147483647 & wait";

/// The real `kopi-docka` binary with an environment that does not leak the developer's config
/// or engine settings into the test.
pub fn kopi_docka() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kopi-docka").expect("binary built");
    cmd.env_remove("KOPI_DOCKA_CONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("KOPI_DOCKA_LOG")
        .env("XDG_CONFIG_HOME", "/nonexistent/kopi-docka-test-config");
    cmd
}

/// [`kopi_docka`] as one isolated installation: `config`, and the state and cache dirs under
/// `work`.
pub fn kopi_docka_at(config: &Path, work: &Path) -> assert_cmd::Command {
    let mut cmd = kopi_docka();
    cmd.arg("--config")
        .arg(config)
        .env("KOPI_DOCKA_STATE_DIR", work.join("state"))
        .env("KOPI_DOCKA_CACHE_DIR", work.join("cache"));
    cmd
}

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

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `docker <args>`, panicking on failure.
pub fn docker(args: &[&str]) -> String {
    String::from_utf8_lossy(&run(Command::new("docker").args(args)).stdout)
        .trim()
        .to_owned()
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

/// Copies a fixture directory from tests/fixtures into `dest`.
pub fn copy_fixture(name: &str, dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest));
}

/// Runs Debian's `restic` on a repository (no cache) and panics with its stderr on failure.
pub fn restic<I, S>(repo: &Path, password_file: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run(Command::new("restic")
        .args(["--no-cache", "-r"])
        .arg(repo)
        .arg("--password-file")
        .arg(password_file)
        .args(args))
}

/// Sends SIGTERM to a child process.
pub fn sigterm(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

/// Writes `bytes` (a multiple of 1 MiB) of incompressible pseudo-random data to `path`.
pub fn fill_random(path: &Path, bytes: usize) {
    use std::io::Write as _;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0_u8; 1 << 20];
    for _ in 0..bytes / block.len() {
        for chunk in block.chunks_mut(8) {
            // xorshift64*: incompressible and fast enough.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
}
