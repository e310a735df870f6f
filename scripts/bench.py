#!/usr/bin/env python3
"""Benchmarks kopi-docka against Debian's restic on the same data, side by side.

Every figure is a ratio measured in the same run, the two sides alternated (A/B, then B/A),
reported as medians: the machines here are shared and noisy.

    scripts/bench.py                 # full size (~1.2 GiB), writes docs/BENCHMARKS.md
    scripts/bench.py --small         # seconds: checks the harness end to end, asserts no speed
    scripts/bench.py --only btrfs    # the snapshot cold pass and snapshot-live rows only, printed
    scripts/bench.py --runs 5 --bin target/release/kopi-docka

Needs: root, a running Docker Engine, the kdtest/busybox:1 image (scripts/build-test-image.sh),
kdtest/postgres:15 (scripts/build-db-images.sh),
docker-compose, restic, rclone (the `rest:` rows), OpenSSH's sshd and ssh-keygen (the `sftp:`
rows: a throwaway sshd on loopback), /usr/bin/time (Debian package `time`),
btrfs-progs (the snapshot cold pass rows use a loop-mounted btrfs). Everything it creates on the
engine is named kdtest-bench-<random> and removed at the end. The snapshot-live rows need
kdtest/postgres:15 (scripts/build-db-images.sh).
"""

import argparse
import json
import math
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import socket
import tempfile
import threading
import time

IMAGE = "kdtest/busybox:1"
IDLE = "trap 'exit 0' TERM; sleep 2147483647 & wait"
PASSWORD = "kdbench-password-not-secret"

SIZES = {
    # large files (count, bytes), small files (count, max bytes), change fraction
    "full": {"large": (4, 256 << 20), "small": (50_000, 8 << 10), "changed": 0.01, "pg_mib": 256},
    "small": {"large": (2, 2 << 20), "small": (300, 4 << 10), "changed": 0.01, "pg_mib": 2},
}
PG_IMAGE = "kdtest/postgres:15"


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def free_port():
    """A loopback port nobody listens on right now (the caller retries when it loses a race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bench:
    def __init__(self, args):
        self.args = args
        self.size = SIZES["small" if args.small else "full"]
        self.work = tempfile.mkdtemp(prefix="kdbench-", dir=args.work_dir)
        self.prefix = "kdtest-bench-" + secrets.token_hex(4)
        self.project = self.prefix
        self.bin = os.path.abspath(args.bin)
        self.rows = {}
        self.rng = random.Random(42)
        self.rest = None
        self.rest_url = None
        self.rest_dir = None
        self.dump_seconds = []
        self.dump_rows = {}
        self.sshd = None
        self.sftp_port = None
        # Where new side dirs put their repository: "local", "rest" or "sftp".
        self.remote = "local"

    # --- setup -------------------------------------------------------------------------
    def up(self):
        compose = os.path.join(self.work, "stack")
        os.makedirs(compose)
        with open(os.path.join(compose, "docker-compose.yml"), "w") as f:
            f.write(
                "services:\n  app:\n    image: %s\n    command: [\"sh\", \"-c\", \"%s\"]\n"
                "    volumes: [\"data:/data\"]\nvolumes:\n  data:\n" % (IMAGE, IDLE)
            )
        self.compose_dir = compose
        sh(["docker-compose", "-p", self.project, "up", "-d"], cwd=compose)
        self.volume = self.project + "_data"
        self.container = self.project + "_app_1"
        self.data = sh(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", self.volume]).stdout.strip()

    def down(self):
        subprocess.run(["docker-compose", "-p", self.project, "down", "-v", "-t", "1"],
                       cwd=self.compose_dir, capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)

    def generate(self):
        """Seeded dataset: a few large random files, many small files, duplicates."""
        count, size = self.size["large"]
        for i in range(count):
            with open(os.path.join(self.data, "large-%d.bin" % i), "wb") as f:
                left = size
                while left:
                    n = min(left, 8 << 20)
                    f.write(self.rng.randbytes(n))
                    left -= n
        shutil.copy(os.path.join(self.data, "large-0.bin"), os.path.join(self.data, "dup-of-large-0.bin"))
        count, maxb = self.size["small"]
        self.small_files = []
        for i in range(count):
            d = os.path.join(self.data, "small", "%03d" % (i % 500))
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "f%06d.txt" % i)
            with open(path, "wb") as f:
                f.write(self.rng.randbytes(self.rng.randint(64, maxb)))
            self.small_files.append(path)
        shutil.copytree(os.path.join(self.data, "small", "000"), os.path.join(self.data, "dup-small"))

    def change(self):
        """Rewrites the change fraction of the small files (new random content)."""
        n = max(1, int(len(self.small_files) * self.size["changed"]))
        for path in self.rng.sample(self.small_files, n):
            with open(path, "wb") as f:
                f.write(self.rng.randbytes(self.rng.randint(64, self.size["small"][1])))

    # --- the two sides -----------------------------------------------------------------
    def location(self, d):
        """The repository of side dir `d`: a local dir, or a path on the REST or SFTP server."""
        if self.remote == "rest":
            return "rest:%s/%s" % (self.rest_url, os.path.basename(d))
        if self.remote == "sftp":
            return "sftp://root@127.0.0.1:%d/%s" % (self.sftp_port, self.sftp_path(d))
        return d + "/repo"

    def sftp_path(self, d):
        return os.path.join(self.work, "sftp-server", "data", os.path.basename(d))

    def repository_options(self):
        """kopi-docka's `[repository.options]` for the SFTP server: client key, pinned host key."""
        if self.remote != "sftp":
            return ""
        return '[repository.options]\nkey = "%s"\nhost-key = "%s"\n' % (self.ssh_key, self.host_key)

    def fresh_ours(self, name, extra=""):
        d = os.path.join(self.work, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.forget_remote(d)
        with open(os.path.join(d, "password"), "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(os.path.join(d, "password"), 0o600)
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write('[repository]\nlocation = "%s"\npassword-file = "password"\n%s%s'
                    % (self.location(d), self.repository_options(), extra))
        self.ours(d, ["admin", "repo", "init"])
        return d

    def start_rest(self):
        """`rclone serve restic` on a free loopback port (killed by PID in stop_rest)."""
        self.rest_dir = os.path.join(self.work, "rest-server")
        shutil.rmtree(self.rest_dir, ignore_errors=True)
        os.makedirs(self.rest_dir)
        env = dict(os.environ, RCLONE_CONFIG=os.path.join(self.rest_dir, "rclone.conf"))
        open(env["RCLONE_CONFIG"], "w").close()
        self.rest = subprocess.Popen(["rclone", "serve", "restic", os.path.join(self.rest_dir, "data"),
                                      "--addr", "127.0.0.1:0"], env=env, stderr=subprocess.PIPE, text=True)
        for line in self.rest.stderr:
            if "Serving restic REST API on" in line:
                self.rest_url = line.split(" on ", 1)[1].strip().strip("[]").rstrip("/")
                break
        else:
            sys.exit("rclone serve restic did not start")

    def stop_rest(self):
        if self.rest is not None:
            self.rest.kill()
            self.rest.wait()
            self.rest = None
        self.rest_url = None
        shutil.rmtree(os.path.join(self.work, "rest-server"), ignore_errors=True)

    def start_sshd(self):
        """OpenSSH's sshd on a free loopback port with throwaway keys (killed by PID in
        stop_sshd); the repositories live under its dir, reached as root with the client key."""
        d = os.path.join(self.work, "sftp-server")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, "data"))
        os.makedirs("/run/sshd", exist_ok=True)
        for name in ["host_ed25519", "user_ed25519"]:
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", os.path.join(d, name)])
        shutil.copy(os.path.join(d, "user_ed25519.pub"), os.path.join(d, "authorized_keys"))
        self.ssh_key = os.path.join(d, "user_ed25519")
        self.host_key = " ".join(open(os.path.join(d, "host_ed25519.pub")).read().split()[:2])
        for _ in range(5):
            port = free_port()
            with open(os.path.join(d, "sshd_config"), "w") as f:
                f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_ed25519\nPidFile %s/sshd.pid\n"
                        "AuthorizedKeysFile %s/authorized_keys\nPubkeyAuthentication yes\n"
                        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                        "StrictModes no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
                        "MaxStartups 100:30:200\nMaxSessions 100\n" % (port, d, d, d))
            self.sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                                         stderr=subprocess.PIPE, text=True)
            for line in self.sshd.stderr:
                if "Server listening on" in line:
                    self.sftp_port = port
                    # Keeps sshd's stderr drained (it logs every connection).
                    threading.Thread(target=self.sshd.stderr.read, daemon=True).start()
                    break
            if self.sftp_port:
                break
            self.sshd.wait()  # lost the port to another process: try another one
        else:
            sys.exit("sshd did not start")
        known = os.path.join(d, "known_hosts")
        with open(known, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.sftp_port, self.host_key))
        self.restic_sftp = ("ssh -F /dev/null -p %d -i %s -o IdentitiesOnly=yes -o BatchMode=yes "
                            "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=%s -o LogLevel=ERROR "
                            "root@127.0.0.1 -s sftp" % (self.sftp_port, self.ssh_key, known))

    def stop_sshd(self):
        if self.sshd is not None:
            # The listener, then the per-connection children it forked (none should be left).
            children = subprocess.run(["pgrep", "-P", str(self.sshd.pid)], capture_output=True, text=True).stdout.split()
            self.sshd.kill()
            self.sshd.wait()
            for pid in children:
                subprocess.run(["kill", pid], capture_output=True)
            self.sshd = None
        self.sftp_port = None
        shutil.rmtree(os.path.join(self.work, "sftp-server"), ignore_errors=True)

    def forget_remote(self, d):
        """A fresh side dir gets a fresh repository on the REST or SFTP server too."""
        if self.remote == "rest":
            shutil.rmtree(os.path.join(self.rest_dir, "data", os.path.basename(d)), ignore_errors=True)
        elif self.remote == "sftp":
            shutil.rmtree(self.sftp_path(d), ignore_errors=True)

    def ours(self, d, args):
        env = dict(os.environ, KOPI_DOCKA_STATE_DIR=d + "/state", KOPI_DOCKA_CACHE_DIR=d + "/cache")
        env.pop("KOPI_DOCKA_CONFIG", None)
        return self.timed([self.bin, "--config", d + "/config.toml"] + args, env)

    def fresh_restic(self, name):
        d = os.path.join(self.work, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.forget_remote(d)
        self.restic(d, ["init"])
        return d

    def restic(self, d, args):
        env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_REPOSITORY=self.location(d),
                   RESTIC_CACHE_DIR=d + "/cache")
        options = ["-o", "sftp.command=" + self.restic_sftp] if self.remote == "sftp" else []
        return self.timed(["restic"] + options + args, env)

    def timed(self, argv, env):
        tfile = os.path.join(self.work, "time.out")
        start = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tfile] + argv,
                           env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
        if p.returncode != 0:
            sys.exit("failed: %s\n%s\n%s" % (" ".join(argv), p.stdout[-2000:], p.stderr[-2000:]))
        user, system, rss = open(tfile).read().split()[-3:]
        return {"wall": wall, "cpu": float(user) + float(system), "rss_kib": int(rss), "stdout": p.stdout}

    # --- measurements -----------------------------------------------------------------
    def record(self, key, side, value):
        self.rows.setdefault(key, {}).setdefault(side, []).append(value)

    def observed_downtime(self, since):
        """Seconds from the container's `die` to its next `start`, from the engine's events."""
        out = sh(["docker", "events", "--since", "%.3f" % since, "--until", "%.3f" % time.time(),
                  "--filter", "container=" + self.container, "--filter", "type=container",
                  "--format", "{{.TimeNano}} {{.Action}}"]).stdout
        die = start = None
        for line in out.splitlines():
            t, action = line.split(" ", 1)
            if action == "die" and die is None:
                die = int(t)
            elif action == "start" and die is not None:
                start = int(t)
        return (start - die) / 1e9 if die and start else float("nan")

    def backup_downtime(self, d, warm):
        args = ["backup", "--unit", self.project, "--json"] + ([] if warm else ["--no-warm-pass"])
        since = time.time()
        r = self.ours(d, args)
        reported = json.loads(r["stdout"])["units"][0]["downtime_seconds"]
        return reported, self.observed_downtime(since)

    def downtime(self, runs):
        for trial in range(runs):
            order = [True, False] if trial % 2 == 0 else [False, True]
            for warm in order:
                side = "warm pass" if warm else "no warm pass"
                d = self.fresh_ours("dt-new")
                rep, obs = self.backup_downtime(d, warm)  # first backup: all data is new
                self.record("downtime, new data (reported)", side, rep)
                self.record("downtime, new data (observed)", side, obs)
                d = self.fresh_ours("dt-changed")
                self.ours(d, ["backup", "--unit", self.project])
                self.change()
                rep, obs = self.backup_downtime(d, warm)
                self.record("downtime, 1% changed (reported)", side, rep)
                self.record("downtime, 1% changed (observed)", side, obs)

    def remote_downtime(self, runs):
        """Downtime of the same backup (warm pass on) to the current remote repository (A)
        and to a local one (B), same data: all new, and 1% of the small files changed."""
        remote = self.remote
        for trial in range(runs):
            order = [remote, "local"] if trial % 2 == 0 else ["local", remote]
            for where in order:
                self.remote = where
                side = "%s: repository" % where if where != "local" else "local repository"
                d = self.fresh_ours("rd-new")
                rep, obs = self.backup_downtime(d, True)
                self.record("%s downtime, new data (observed)" % remote, side, obs)
                d = self.fresh_ours("rd-changed")
                self.ours(d, ["backup", "--unit", self.project])
                self.change()
                rep, obs = self.backup_downtime(d, True)
                self.record("%s downtime, 1%% changed (observed)" % remote, side, obs)
        self.remote = remote

    # --- snapshot cold pass ----------------------------------------------------------
    def btrfs_up(self):
        """The dataset copied onto a loop-mounted btrfs (in a subvolume), bound into a
        container of its own: the snapshot cold pass needs a filesystem that can freeze."""
        self.btrfs_image = os.path.join(self.work, "btrfs.img")
        self.btrfs_mnt = os.path.join(self.work, "btrfs")
        os.makedirs(self.btrfs_mnt)
        with open(self.btrfs_image, "wb") as f:
            f.truncate(8 << 30)
        sh(["mkfs.btrfs", "-q", self.btrfs_image])
        sh(["mount", "-o", "loop", self.btrfs_image, self.btrfs_mnt])
        sh(["btrfs", "subvolume", "create", os.path.join(self.btrfs_mnt, "data")])
        self.btrfs_data = os.path.join(self.btrfs_mnt, "data", "bind")
        sh(["cp", "-a", self.data, self.btrfs_data])
        self.btrfs_container = self.prefix + "-btrfs"
        sh(["docker", "run", "-d", "--name", self.btrfs_container, "-v", self.btrfs_data + ":/data",
            IMAGE, "sh", "-c", IDLE])

    def btrfs_down(self):
        if getattr(self, "pg_container", None):
            subprocess.run(["docker", "rm", "-f", self.pg_container], capture_output=True)
        if getattr(self, "btrfs_container", None):
            subprocess.run(["docker", "rm", "-f", self.btrfs_container], capture_output=True)
        if getattr(self, "btrfs_mnt", None):
            # `mount -o loop` set autoclear: the unmount detaches the loop device.
            subprocess.run(["umount", self.btrfs_mnt], capture_output=True)

    def change_btrfs(self):
        """The change fraction of the small files rewritten in the btrfs copy."""
        n = max(1, int(len(self.small_files) * self.size["changed"]))
        for path in self.rng.sample(self.small_files, n):
            path = os.path.join(self.btrfs_data, os.path.relpath(path, self.data))
            with open(path, "wb") as f:
                f.write(self.rng.randbytes(self.rng.randint(64, self.size["small"][1])))

    def snapshot_downtime(self, runs):
        """Downtime with `cold-pass = "snapshot"` (A) against `"read"` (B, warm pass on), on
        the same btrfs data: all new, and 1% of the small files changed."""
        args = ["backup", "--unit", self.btrfs_container, "--scope", "minimal", "--json"]
        for trial in range(runs):
            order = ["snapshot", "read"] if trial % 2 == 0 else ["read", "snapshot"]
            for kind in order:
                side = kind + " cold pass"
                extra = '[backup]\ncold-pass = "%s"\n' % kind
                for phase, prepare in [("new data", None), ("1% changed", self.change_btrfs)]:
                    d = self.fresh_ours("sn-" + kind, extra)
                    if prepare:
                        self.ours(d, args)
                        prepare()
                    unit = json.loads(self.ours(d, args)["stdout"])["units"][0]
                    if unit["cold_pass"] != kind:
                        sys.exit("expected a %s cold pass, got: %s" % (kind, unit))
                    self.record("downtime, btrfs, %s (reported)" % phase, side, unit["downtime_seconds"])

    def live_latency(self, runs):
        """A PostgreSQL (kdtest/postgres:15, data on the btrfs) under `kopi-docka.policy=
        snapshot-live`, two pgbench clients inserting one row per transaction: the latency of
        the transactions that complete during its backup (A) against those of the seconds just
        before it (B), same run, same load."""
        image = "kdtest/postgres:15"
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
            sys.exit("%s is missing: run scripts/build-db-images.sh" % image)
        name = self.prefix + "-pglive"
        self.pg_container = name
        data = os.path.join(self.btrfs_mnt, "data", "pg")
        os.makedirs(data)
        sh(["docker", "run", "-d", "--name", name, "--network", "none", "-e", "POSTGRES_PASSWORD=bench",
            "-e", "POSTGRES_DB=app", "--label", "kopi-docka.policy=snapshot-live",
            "-v", data + ":/var/lib/postgresql/data", image])
        psql = ["docker", "exec", "-e", "PGPASSWORD=bench", name, "psql", "-h", "127.0.0.1", "-U",
                "postgres", "-d", "app", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
        deadline = time.monotonic() + 120
        while subprocess.run(psql + ["select 1"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                sys.exit("PostgreSQL did not start: " + sh(["docker", "logs", name]).stderr[-2000:])
            time.sleep(0.2)
        rows = 1_000_000 if not self.args.small else 20_000
        sh(psql + ["create table t (id bigserial primary key, payload text); insert into t (payload) "
                   "select md5(g::text) from generate_series(1, %d) g" % rows])
        sh(["docker", "exec", name, "sh", "-c",
            "echo 'insert into t (payload) values (md5(random()::text));' > /tmp/insert.sql"])
        d = self.fresh_ours("live")
        args = ["backup", "--unit", name, "--scope", "minimal", "--json"]
        estimate = self.ours(d, args)["wall"]
        lead = 3.0
        for trial in range(runs):
            seconds = int(lead + 2 * estimate + 3)
            prefix = "/tmp/pgb%d" % trial
            bench = subprocess.Popen(
                ["docker", "exec", "-e", "PGPASSWORD=bench", name, "/usr/lib/postgresql/15/bin/pgbench",
                 "-h", "127.0.0.1", "-U", "postgres", "-n", "-c", "2", "-j", "1", "-T", str(seconds),
                 "-f", "/tmp/insert.sql", "-l", "--log-prefix", prefix, "app"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(lead)
            t0 = time.time()
            unit = json.loads(self.ours(d, args)["stdout"])["units"][0]
            t1 = time.time()
            if unit["cold_pass"] != "snapshot_live" or unit["downtime_seconds"] != 0:
                sys.exit("expected a snapshot-live backup without downtime, got: %s" % unit)
            _, err = bench.communicate()
            if bench.returncode:
                sys.exit("pgbench failed: " + err)
            log = sh(["docker", "exec", name, "sh", "-c", "cat %s.*; rm -f %s.*" % (prefix, prefix)]).stdout
            during, before = [], []
            for line in log.splitlines():
                # client transaction latency_us script epoch_s epoch_us
                f = line.split()
                latency, end = int(f[2]) / 1000, int(f[4]) + int(f[5]) / 1e6
                if t0 <= end <= t1:
                    during.append(latency)
                elif t0 - lead + 0.5 <= end < t0:
                    before.append(latency)
            if not during or not before:
                sys.exit("pgbench logged no transactions in a window (during %d, before %d)" % (len(during), len(before)))
            for q, label in [(0.5, "p50"), (0.99, "p99")]:
                pick = lambda v: sorted(v)[min(len(v) - 1, int(q * len(v)))]
                self.record("PostgreSQL insert latency %s ms, snapshot-live" % label, "during backup", pick(during))
                self.record("PostgreSQL insert latency %s ms, snapshot-live" % label, "no backup", pick(before))
            self.record("PostgreSQL inserts/s, snapshot-live", "during backup", len(during) / (t1 - t0))
            self.record("PostgreSQL inserts/s, snapshot-live", "no backup", len(before) / (lead - 0.5))

    def throughput(self, runs, label=""):
        """Backup and restore, kopi-docka against restic; `label` prefixes the rows."""
        for trial in range(runs):
            sides = ["kopi-docka", "restic"] if trial % 2 == 0 else ["restic", "kopi-docka"]
            dirs = {}
            for side in sides:
                dirs[side] = self.fresh_ours("tp-ours") if side == "kopi-docka" else self.fresh_restic("tp-restic")
            for phase in ["first backup", "unchanged re-backup", "1% changed backup"]:
                if phase == "1% changed backup":
                    self.change()
                for side in sides:
                    if side == "kopi-docka":
                        r = self.ours(dirs[side], ["backup", "--unit", self.project, "--no-warm-pass",
                                                   "--scope", "minimal", "--json"])
                        # The data's snapshots only, like restic's: the point's marker (about a
                        # KiB of metadata every run) is not data added.
                        added = sum(s["bytes_added"] for s in json.loads(r["stdout"])["units"][0]["snapshots"]
                                    if s["type"] in ("volume", "bind"))
                    else:
                        r = self.restic(dirs[side], ["backup", "--json", self.data])
                        summary = [json.loads(l) for l in r["stdout"].splitlines() if '"summary"' in l][-1]
                        added = summary.get("data_added", 0)
                    self.record(label + phase + ": wall s", side, r["wall"])
                    self.record(label + phase + ": CPU s", side, r["cpu"])
                    self.record(label + phase + ": peak RSS MiB", side, r["rss_kib"] / 1024)
                    self.record(label + phase + ": MiB added", side, added / 2**20)
            for side in sides:
                target = os.path.join(self.work, "restore-" + side.replace("-", ""))
                shutil.rmtree(target, ignore_errors=True)
                if side == "kopi-docka":
                    r = self.ours(dirs[side], ["restore", "--unit", self.project, "--only", "volumes",
                                               "--target-dir", target])
                else:
                    r = self.restic(dirs[side], ["restore", "latest", "--target", target])
                self.record(label + "restore: wall s", side, r["wall"])
                self.record(label + "restore: peak RSS MiB", side, r["rss_kib"] / 1024)
                shutil.rmtree(target, ignore_errors=True)

    # --- database dumps ---------------------------------------------------------------
    def pg_stack(self, policy):
        """A PostgreSQL (kdtest/postgres:15, scripts/build-db-images.sh) under `policy` with
        pg_mib MiB of rows, and an idle app that depends on it; returns (project, dir)."""
        project = "%s-pg%s" % (self.prefix, policy)
        d = os.path.join(self.work, project)
        os.makedirs(d)
        with open(os.path.join(d, "docker-compose.yml"), "w") as f:
            f.write('version: "2.4"\nservices:\n  db:\n    image: %s\n    environment:\n'
                    '      POSTGRES_PASSWORD: %s\n    labels:\n      kopi-docka.policy: %s\n'
                    '    volumes: ["pgdata:/var/lib/postgresql/data"]\n  app:\n    image: %s\n'
                    '    depends_on: [db]\n    command: ["sh", "-c", "%s"]\nvolumes:\n  pgdata:\n'
                    % (PG_IMAGE, PASSWORD, policy, IMAGE, IDLE))
        sh(["docker-compose", "-p", project, "up", "-d"], cwd=d)
        db = project + "_db_1"
        psql = ["docker", "exec", "-e", "PGPASSWORD=" + PASSWORD, db, "psql", "-h", "127.0.0.1",
                "-U", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
        deadline = time.monotonic() + 120
        while subprocess.run(psql + ["select 1"], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                sys.exit("PostgreSQL in %s did not start" % db)
            time.sleep(0.5)  # polling: the server has no event for "ready"
        rows = self.size["pg_mib"] * 4000  # about 256 bytes a row
        sh(psql + ["create table t as select g as id, repeat(md5(g::text), 7) as v "
                   "from generate_series(1, %d) g" % rows])
        self.pg_stacks.append((project, d))
        return project

    def container_downtime(self, container, since):
        """Seconds from `container`'s first `die` to its next `start` since `since`; 0 when it
        never died."""
        out = sh(["docker", "events", "--since", "%.3f" % since, "--until", "%.3f" % time.time(),
                  "--filter", "container=" + container, "--filter", "type=container",
                  "--format", "{{.TimeNano}} {{.Action}}"]).stdout
        die = start = None
        for line in out.splitlines():
            t, _, action = line.strip().partition(" ")
            if action == "die" and die is None:
                die = int(t)
            elif action == "start" and die is not None:
                start = int(t)
        if die is None:
            return 0.0
        return (start - die) / 1e9 if start else float("nan")

    def dump_vs_stop(self, runs):
        """The same PostgreSQL stack under `kopi-docka.policy=dump` (A) and `stop` (B): the
        database's and the app's downtime from the engine's events, and the dump's duration
        (from the `dump started` / `dump saved` log lines as they arrive)."""
        self.pg_stacks = []
        projects = {policy: self.pg_stack(policy) for policy in ["dump", "stop"]}
        label = "postgres %d MiB" % self.size["pg_mib"]
        for trial in range(runs):
            order = ["dump", "stop"] if trial % 2 == 0 else ["stop", "dump"]
            for policy in order:
                project = projects[policy]
                d = self.fresh_ours("pg-" + policy)
                env = dict(os.environ, KOPI_DOCKA_STATE_DIR=d + "/state", KOPI_DOCKA_CACHE_DIR=d + "/cache",
                           KOPI_DOCKA_LOG="info")
                env.pop("KOPI_DOCKA_CONFIG", None)
                since = time.time()
                p = subprocess.Popen([self.bin, "--config", d + "/config.toml", "backup", "--unit", project,
                                      "--no-warm-pass", "--json"], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                began = ended = None
                for line in p.stderr:
                    if "dump started" in line:
                        began = time.monotonic()
                    elif "dump saved" in line:
                        ended = time.monotonic()
                out = p.stdout.read()
                if p.wait() != 0:
                    sys.exit("backup of %s failed: %s" % (project, out[-2000:]))
                unit = json.loads(out)["units"][0]
                side = "policy " + policy
                rows = self.dump_rows
                rows.setdefault(label + ": database downtime s (observed)", {}).setdefault(side, []).append(
                    self.container_downtime(project + "_db_1", since))
                rows.setdefault(label + ": app downtime s (reported)", {}).setdefault(side, []).append(
                    unit["downtime_seconds"])
                rows.setdefault(label + ": app downtime s (observed)", {}).setdefault(side, []).append(
                    self.container_downtime(project + "_app_1", since))
                if policy == "dump":
                    if began is None or ended is None:
                        sys.exit("no dump log lines from the dump backup")
                    self.dump_seconds.append(ended - began)

    def dump_table(self):
        """Its own table: the database's downtime under `dump` is zero by design, so no ratio."""
        lines = ["| measurement | policy dump (median) | policy stop (median) |", "|---|---|---|"]
        for key, sides in self.dump_rows.items():
            lines.append("| %s | %.3f | %.3f |" % (key, statistics.median(sides["policy dump"]),
                                                  statistics.median(sides["policy stop"])))
        lines.append("| postgres %d MiB: dump duration s (pg_dumpall into the repository) | %.3f | - |"
                     % (self.size["pg_mib"], statistics.median(self.dump_seconds)))
        return "\n".join(lines)

    def pg_down(self):
        for project, d in getattr(self, "pg_stacks", []):
            subprocess.run(["docker-compose", "-p", project, "down", "-v", "-t", "5"], cwd=d,
                           capture_output=True)

    # --- report -----------------------------------------------------------------------
    def table(self):
        lines = ["| measurement | A | median A | B | median B | ratio A/B |", "|---|---|---|---|---|---|"]
        ratios = []
        for key, sides in self.rows.items():
            (a, va), (b, vb) = list(sides.items())
            ma, mb = statistics.median(va), statistics.median(vb)
            # Both zero (nothing added on an unchanged re-run) is a tie, not a division by zero.
            ratio = ma / mb if mb else (1.0 if ma == 0 else float("inf"))
            ratios.append((key, ratio))
            lines.append("| %s | %s | %.3f | %s | %.3f | %.2f |" % (key, a, ma, b, mb, ratio))
        return "\n".join(lines), ratios

    def machine(self):
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
        versions = {
            "kopi-docka": sh([self.bin, "version"]).stdout.strip().splitlines()[0],
            "restic": sh(["restic", "version"]).stdout.strip(),
            "docker": sh(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip(),
        }
        return "%s, %d cores, %.1f GiB RAM, Linux %s; %s" % (
            cpu, os.cpu_count(), int(mem) / 2**20, platform.release(),
            "; ".join(versions.values()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="tiny data, one run: checks the harness")
    p.add_argument("--runs", type=int, default=None, help="trials per measurement (default 3; 1 with --small)")
    p.add_argument("--bin", default=None, help="kopi-docka binary (default: build --release)")
    p.add_argument("--out", default=None, help="Markdown output (default docs/BENCHMARKS.md; stdout with --small)")
    p.add_argument("--work-dir", default="/var/tmp", help="where data and repositories go")
    p.add_argument("--only", choices=["btrfs"], default=None,
                   help="btrfs: only the snapshot cold pass and snapshot-live rows, printed (not written)")
    args = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.bin is None:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=root, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        args.bin = os.path.join(target, "release", "kopi-docka")
    runs = args.runs or (1 if args.small else 3)
    b = Bench(args)
    started = time.monotonic()
    try:
        b.up()
        b.generate()
        if args.only == "btrfs":
            b.btrfs_up()
            b.snapshot_downtime(runs)
            b.live_latency(runs)
            print(b.table()[0])
            return
        b.downtime(runs)
        b.btrfs_up()
        b.snapshot_downtime(runs)
        b.live_latency(runs)
        b.throughput(runs)
        # The same over `rest:`, both sides against one `rclone serve restic` on loopback.
        b.start_rest()
        b.remote = "rest"
        b.throughput(runs, label="rest: ")
        b.remote_downtime(runs)
        b.remote = "local"
        b.stop_rest()
        b.dump_vs_stop(runs)
        # And over SFTP: both sides against one OpenSSH sshd on loopback.
        b.start_sshd()
        b.remote = "sftp"
        b.throughput(runs, label="sftp: ")
        b.remote_downtime(runs)
        b.remote = "local"
        b.stop_sshd()
        table, ratios = b.table()
        dumps = b.dump_table()
    finally:
        b.pg_down()
        b.stop_rest()
        b.stop_sshd()
        b.btrfs_down()
        b.down()
    # A zero ratio is a result only where A can add nothing while B adds a little (restic
    # writes a new tree over `rest:`/`sftp:` on an unchanged re-run); elsewhere it is a bug.
    bad = [k for k, r in ratios if not (math.isfinite(r) and (r > 0 or (r == 0 and k.endswith("MiB added"))))]
    if len(ratios) < 52 or bad:
        sys.exit("bench harness produced %d ratios, %d not finite and positive (%s):\n%s"
                 % (len(ratios), len(bad), ", ".join(bad), table))
    mode = "small (harness check only: these numbers mean nothing)" if args.small else "full"
    measured = "\n".join([
        "Produced by `scripts/bench.py` (%s mode, %d runs per measurement, medians; A and B "
        "alternated). Machine: %s." % (mode, runs, b.machine()),
        "",
        "Downtime rows compare kopi-docka's backup with the warm pass (A) and without (B); the "
        "btrfs downtime rows compare the snapshot cold pass (A) with the read cold pass and its "
        "warm pass (B) on the same data on a loop-mounted btrfs; the snapshot-live rows compare a "
        "PostgreSQL's insert latency and rate during its `snapshot-live` backup (A) with the seconds "
        "just before it (B); the other rows compare kopi-docka (A) with `restic` (B) on the same volume directory: "
        "`backup --no-warm-pass --scope minimal` against `restic backup DIR`, "
        "`restore --target-dir` against `restic restore`; `rest:` and `sftp:` rows do the same with "
        "both repositories on one `rclone serve restic`, or one OpenSSH sshd, on loopback. The "
        "`rest downtime` and `sftp downtime` rows compare the same backup (warm pass on) to that "
        "remote repository (A) with one to a local repository (B). Ratio < 1 means A is smaller "
        "(faster, leaner).",
        "",
        table,
        "",
        "Database dumps: the same PostgreSQL stack (kdtest/postgres:15 with the rows of one table, "
        "and an idle app that depends on it) backed up with the database under "
        "`kopi-docka.policy=dump` and under `stop` (`backup --no-warm-pass`); downtimes from the "
        "engine's die/start events, the dump's duration from its log lines.",
        "",
        dumps,
        "",
        "Total harness time: %.0f s." % (time.monotonic() - started),
    ])
    out = args.out or (None if args.small else os.path.join(root, "docs", "BENCHMARKS.md"))
    if out:
        old = open(out).read() if os.path.exists(out) else ""
        with open(out, "w") as f:
            f.write(splice(old, measured))
        print("wrote", out)
    else:
        print(measured)


BEGIN, END = "<!-- bench.py: measured, begin -->", "<!-- bench.py: measured, end -->"


def splice(doc, measured):
    """Puts the measured part between the markers of `doc`, keeping the hand-written rest
    (analysis, history); a document without markers gets a title and the markers."""
    block = "%s\n%s\n%s" % (BEGIN, measured, END)
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    return "# Benchmarks\n\n%s\n" % block


if __name__ == "__main__":
    main()
