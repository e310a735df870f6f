//! A second Docker Engine whose data root is on a loop-mounted btrfs, so that named volumes
//! live on btrfs (`<mount>/docker/volumes/NAME/_data`, inside the subvolume `docker`). Started
//! once per test binary on a socket of its own, with a bridge of its own (`kdtestbr...`) and no
//! iptables, masquerading or forwarding changes: the host's engine and network are left alone.
//! Never `--bridge=none`: a daemon started with it deletes the host engine's `docker0`.
//!
//! The test image is copied in from the main engine (`docker save | docker load`, no registry).
//! The filesystem's watchdog ([`crate::loopfs`]) stops the daemon by its PID (TERM, KILL after
//! 30 s, then its containerd) when the test process ends, however it ends, and only then
//! deletes the bridge and unmounts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::loopfs::{LoopFs, LoopKind};
use crate::process::run;

/// The second engine of this test binary.
pub struct BtrfsEngine {
    /// Its btrfs filesystem (the data root is the subvolume `docker` at its root).
    pub fs: LoopFs,
    socket: PathBuf,
    /// The daemon's output (a file: a pipe would end with the test process and take the
    /// daemon along before the watchdog stops it in order).
    log: PathBuf,
    /// The daemon, stopped by the watchdog.
    _daemon: Mutex<std::process::Child>,
}

/// The btrfs engine of this test binary, started on first use with the test image loaded.
pub fn btrfs_engine() -> &'static BtrfsEngine {
    static ENGINE: OnceLock<BtrfsEngine> = OnceLock::new();
    ENGINE.get_or_init(start)
}

fn start() -> BtrfsEngine {
    let name = format!("{}-engine-{}", crate::unique_prefix(), std::process::id());
    let run_dir = PathBuf::from("/run");
    let socket = run_dir.join(format!("{name}.sock"));
    let pidfile = run_dir.join(format!("{name}.pid"));
    let exec_root = run_dir.join(format!("{name}-exec"));
    // Interface names have at most 15 characters.
    let bridge = format!("kdtestbr{}", &name["kdtest-".len().."kdtest-".len() + 7]);
    let stop = format!(
        r#"pid=$(cat '{pidfile}' 2>/dev/null)
           if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
             i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
             kill -KILL "$pid" 2>/dev/null
           fi
           cpid=$(cat '{exec}/containerd/containerd.pid' 2>/dev/null)
           [ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null
           ip link del '{bridge}' 2>/dev/null
           rm -rf '{exec}' '{pidfile}' '{socket}'"#,
        pidfile = pidfile.display(),
        exec = exec_root.display(),
        socket = socket.display(),
    );
    let fs = crate::loopfs::make_with(LoopKind::Btrfs, 4 << 30, &stop);
    let data_root = fs.mount.join("docker");
    run(Command::new("btrfs")
        .args(["subvolume", "create"])
        .arg(&data_root));
    run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]));
    // An address of its own: a daemon given a bridge without one picks a subnet itself.
    let octet = std::process::id() % 250 + 1;
    run(Command::new("ip").args([
        "addr",
        "add",
        &format!("10.213.{octet}.1/24"),
        "dev",
        &bridge,
    ]));
    run(Command::new("ip").args(["link", "set", &bridge, "up"]));
    let log = fs.mount.parent().unwrap().join("dockerd.log");
    let output = std::fs::File::create(&log).unwrap();
    let mut daemon = Command::new("dockerd")
        .arg("--data-root")
        .arg(&data_root)
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--exec-root")
        .arg(&exec_root)
        .arg(format!("--bridge={bridge}"))
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--storage-driver=btrfs",
        ])
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .expect("cannot run dockerd");
    // Ready when its API answers; bounded, and a daemon that exits says why.
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    let answers = || {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    while !answers() {
        let log = || std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("the btrfs engine's dockerd exited ({status}):\n{}", log());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the btrfs engine's dockerd did not listen within a minute:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let engine = BtrfsEngine {
        fs,
        socket,
        log,
        _daemon: Mutex::new(daemon),
    };
    engine.load(crate::IMAGE);
    engine
}

impl BtrfsEngine {
    /// `unix://` address of its API socket, for `[docker] host`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// `docker -H <this engine> <args>`, panicking on failure; its trimmed stdout.
    pub fn docker(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&run(self.command().args(args)).stdout)
            .trim()
            .to_owned()
    }

    /// A `docker` command against this engine.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H").arg(self.host());
        cmd
    }

    /// Copies `image` from the main engine (no registry).
    pub fn load(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let loaded = self
            .command()
            .arg("load")
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        let saved = save.wait().unwrap();
        assert!(
            loaded.status.success(),
            "docker load into the btrfs engine failed: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&loaded.stderr),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        assert!(saved.success(), "docker save {image} failed");
    }

    /// Where a named volume's data lives (on the btrfs filesystem).
    pub fn volume_mountpoint(&self, volume: &str) -> PathBuf {
        PathBuf::from(self.docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", volume]))
    }

    /// Removes this engine's containers and volumes named `prefix...` when dropped (also
    /// when the test panics).
    pub fn resources(&'static self, prefix: &str) -> EngineResources {
        EngineResources {
            engine: self,
            prefix: prefix.to_owned(),
        }
    }

    /// The data root.
    pub fn data_root(&self) -> &Path {
        &self.fs.mount
    }
}

/// A test's containers and volumes on the btrfs engine, removed on drop.
pub struct EngineResources {
    engine: &'static BtrfsEngine,
    prefix: String,
}

impl Drop for EngineResources {
    fn drop(&mut self) {
        let filter = format!("name={}", self.prefix);
        for (list, format, remove) in [
            (&["ps", "-a"][..], "{{.Names}}", &["rm", "-f", "-v"][..]),
            (
                &["volume", "ls"][..],
                "{{.Name}}",
                &["volume", "rm", "-f"][..],
            ),
        ] {
            let names = self
                .engine
                .command()
                .args(list)
                .args(["--filter", &filter, "--format", format])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for name in names.lines().filter(|n| n.starts_with(&self.prefix)) {
                let ok = self
                    .engine
                    .command()
                    .args(remove)
                    .arg(name)
                    .output()
                    .is_ok_and(|o| o.status.success());
                if !ok {
                    eprintln!("warning: could not remove {name} from the btrfs engine");
                }
            }
        }
    }
}
