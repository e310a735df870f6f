#!/usr/bin/env bash
# Builds the systemd + Podman test image from Debian bookworm packages: a debootstrap rootfs
# with systemd as init, Podman (runc), podman-compose, slirp4netns and the user-session bits a lingering
# user's manager needs, imported with `docker import` (no registry). The systemd tests
# (crates/cli/tests/systemd_units.rs) boot it as PID 1 in a container with a private cgroup
# namespace (scripts/systemd-image/sd-init.sh; the host's /sys/fs/cgroup is never mounted).
# Cached by content: the tag carries a hash of this script and its files; nothing is rebuilt
# when the tagged image exists. Stable alias for the tests: kdtest/systemd-podman:bookworm
set -euo pipefail
cd "$(dirname "$0")"

MIRROR="${KDTEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HASH=$(cat build-systemd-image.sh systemd-image/* | sha256sum | cut -c1-12)
IMAGE="kdtest/systemd-podman:$HASH"
ALIAS="kdtest/systemd-podman:bookworm"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker tag "$IMAGE" "$ALIAS"
    echo "systemd test image ($HASH) present; reusing it"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
rootfs=$(mktemp -d /var/tmp/kdtest-sdroot.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap bookworm with systemd, podman, podman-compose (a few minutes)"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,podman,runc,conmon,netavark,aardvark-dns,iptables,uidmap,slirp4netns,podman-compose,procps,iproute2 \
    bookworm "$rootfs" "$MIRROR" >/dev/null
rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
rm -rf "$rootfs"/var/lib/apt/lists/*
: > "$rootfs/etc/machine-id"
install -m 0755 systemd-image/sd-init.sh "$rootfs/usr/local/sbin/sd-init"
install -m 0644 systemd-image/containers.conf "$rootfs/etc/containers/containers.conf"
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV container=docker' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/usr/local/sbin/sd-init"]' \
    --message "kopi-docka systemd + Podman test image from Debian bookworm" - "$IMAGE" >/dev/null
docker tag "$IMAGE" "$ALIAS"
echo "built systemd test image ($HASH): $ALIAS"
