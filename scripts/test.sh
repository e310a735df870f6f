#!/usr/bin/env bash
# The whole test suite against REAL parts: a running Docker Engine, docker-compose, the local
# test image. Idempotent: reuses what is already there, installs and starts what is missing,
# and says what it did. If the engine cannot be brought up it FAILS; it never skips tests.
#
#   scripts/test.sh            # everything: tests with Docker, rustfmt, clippy
#
# Needs root (or passwordless sudo) only when packages must be installed or dockerd started.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo -n"
fi

# Debian packages the tests use (restic, openssl and age are for the repository and DR tests;
# strace proves that a DR export writes no plaintext; stunnel is the TLS front of the engine-endpoint tests;
# podman, podman-compose, runc and uidmap run the rootful and rootless Podman tests (slirp4netns
# gives the rootless user's podman-compose stack its network); script (util-linux) gives `age` a terminal;
# time and Debian's python3 run the benchmark harness; systemd brings systemd-analyze, which
# verifies the generated units; aiosmtpd is the real SMTP server and prometheus-client the real
# exposition-format parser of the notification tests; openssh-server is the real SFTP server of
# the SFTP tests, started by each test binary on 127.0.0.1 with its own config and port: the
# system service is not used; btrfs-progs and xfsprogs make the loop-mounted filesystems of the
# snapshot cold-pass tests; debootstrap builds the Debian images of the database and systemd tests;
# chromium and chromium-driver run the dashboard's browser test headless through WebDriver).
PACKAGES=(docker.io docker-compose busybox-static restic openssl age strace time python3 stunnel4
    podman podman-compose runc uidmap slirp4netns
    systemd python3-aiosmtpd python3-prometheus-client openssh-server btrfs-progs xfsprogs
    debootstrap chromium chromium-driver)
need_install=()
command -v dockerd >/dev/null 2>&1 || need_install+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need_install+=(docker-compose)
[[ "$(ldd /bin/busybox 2>&1 || true)" == *"not a dynamic executable"* ]] || need_install+=(busybox-static)
command -v restic >/dev/null 2>&1 || need_install+=(restic)
[[ -x /usr/sbin/sshd ]] && command -v ssh-keyscan >/dev/null 2>&1 || need_install+=(openssh-server)
command -v openssl >/dev/null 2>&1 || need_install+=(openssl)
command -v age >/dev/null 2>&1 || need_install+=(age)
command -v strace >/dev/null 2>&1 || need_install+=(strace)
command -v stunnel >/dev/null 2>&1 || need_install+=(stunnel4)
command -v podman >/dev/null 2>&1 || need_install+=(podman)
command -v podman-compose >/dev/null 2>&1 || need_install+=(podman-compose)
command -v runc >/dev/null 2>&1 || need_install+=(runc)
command -v newuidmap >/dev/null 2>&1 || need_install+=(uidmap)
command -v slirp4netns >/dev/null 2>&1 || need_install+=(slirp4netns)
[[ -x /usr/bin/time ]] || need_install+=(time)
[[ -x /usr/bin/python3 ]] || need_install+=(python3)
command -v systemd-analyze >/dev/null 2>&1 || need_install+=(systemd)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_install+=(python3-aiosmtpd)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need_install+=(python3-prometheus-client)
command -v mkfs.btrfs >/dev/null 2>&1 || need_install+=(btrfs-progs)
command -v mkfs.xfs >/dev/null 2>&1 || need_install+=(xfsprogs)
command -v debootstrap >/dev/null 2>&1 || need_install+=(debootstrap)
[[ -x /usr/bin/chromium ]] || need_install+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_install+=(chromium-driver)
if ((${#need_install[@]})); then
    say "installing Debian packages: ${need_install[*]} (of ${PACKAGES[*]})"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null \
        || die "apt-get install ${need_install[*]} failed"
else
    say "Debian packages present: ${PACKAGES[*]}"
fi
# slirp4netns, run by a rootless user, opens /dev/net/tun: udev makes it 0666; some hosts and
# containers have it 0600, and the rootless podman-compose test then fails on its network. Set
# it to the udev default (a user can only make tun devices in a network namespace of their own).
if [[ -e /dev/net/tun && "$(stat -c %a /dev/net/tun)" != 666 ]]; then
    say "/dev/net/tun is mode $(stat -c %a /dev/net/tun); setting the udev default 0666 for the rootless Podman test"
    chmod 0666 /dev/net/tun || die "cannot chmod /dev/net/tun; run the tests as root or set it to 0666"
fi

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_answers; then
    say "Docker Engine answers: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
else
    DOCKERD_LOG=/var/log/kopi-docka-test-dockerd.log
    say "no Docker Engine answers; starting dockerd in the background (log: $DOCKERD_LOG)"
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        $SUDO systemctl start docker || true
    fi
    if ! engine_answers; then
        $SUDO sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 &"
    fi
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 1
    done
    if ! engine_answers; then
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "the Docker Engine did not come up within 60 s; the Docker tests cannot run (see $DOCKERD_LOG)"
    fi
    say "Docker Engine started: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
fi
docker-compose version --short >/dev/null || die "docker-compose does not run"

scripts/build-test-image.sh
# Storage servers for the remote-repository tests (moto, fake-gcs-server, Azurite, rclone),
# installed once into a cache directory; the testkit starts them on loopback.
KOPI_DOCKA_TEST_SERVERS="$(scripts/test-servers.sh)" || die "installing the test servers failed"
export KOPI_DOCKA_TEST_SERVERS
say "test servers in $KOPI_DOCKA_TEST_SERVERS"
# Database servers (PostgreSQL 15, MariaDB 10.11, Redis 7, sqlite3) from Debian packages for
# the dump tests; cached by a hash of their recipe (a first build takes a few minutes).
scripts/build-db-images.sh
# systemd + Podman (Debian bookworm) booted as PID 1 in a container for the tests of units
# managed by systemd (crates/cli/tests/systemd_units.rs); cached by a hash of its recipe.
scripts/build-systemd-image.sh

# Docker tests are ON: with this switch an unreachable engine fails them instead of skipping.
export KOPI_DOCKA_DOCKER_TESTS=1
# insta must compare snapshots, never write them, in this command.
export INSTA_UPDATE=no

say "cargo test (Docker tests enabled)"
cargo test --workspace --all-targets --locked
say "rustic_core's own unit tests on our patched copy (vendor/PATCHES.md)"
# Outside the workspace, with its own lock file (vendor/rustic_core/Cargo.lock). The [patch]
# makes its dev-dependencies (rustic_backend, rustic_testing) use this copy instead of a second
# rustic_core from crates.io; dependencies are optimised as in the workspace (scrypt, zstd and
# AES are slow unoptimised). Its dependencies resolve differently from the workspace's, so none
# of the workspace's builds is reused; it gets its own directory under the target directory, so
# the two never invalidate each other (a first run builds ~250 crates once).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/vendor-rustic-core" cargo test --locked \
    --manifest-path vendor/rustic_core/Cargo.toml --lib \
    --config 'patch.crates-io.rustic_core.path="vendor/rustic_core"' \
    --config 'profile.dev.package."*".opt-level=2'
say "benchmark harness, small-data mode (checks the harness; asserts nothing about speed)"
/usr/bin/python3 scripts/bench.py --small --bin "${CARGO_TARGET_DIR:-target}/debug/kopi-docka" >/dev/null
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "all checks passed"
