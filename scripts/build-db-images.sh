#!/usr/bin/env bash
# Builds the database server test images from Debian bookworm packages: one debootstrap rootfs
# (PostgreSQL 15, MariaDB 10.11, Redis 7, sqlite3) imported with `docker import` (no registry),
# then one thin image per engine with its entrypoint (scripts/db-images/*-entry.sh).
# Cached by content: the tag carries a hash of this script and the entrypoints; nothing is
# rebuilt when the tagged images exist. Stable aliases for the tests:
#   kdtest/postgres:15  kdtest/mariadb:10.11  kdtest/redis:7  kdtest/sqlite:3
set -euo pipefail
cd "$(dirname "$0")"

MIRROR="${KDTEST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HASH=$(cat build-db-images.sh db-images/*.sh | sha256sum | cut -c1-12)
BASE="kdtest/dbbase:$HASH"

declare -A ALIAS=([postgres]="kdtest/postgres:15" [mariadb]="kdtest/mariadb:10.11"
    [redis]="kdtest/redis:7" [sqlite]="kdtest/sqlite:3")

all_present=1
for engine in "${!ALIAS[@]}"; do
    docker image inspect "kdtest/$engine:$HASH" >/dev/null 2>&1 || all_present=0
done
if ((all_present)); then
    for engine in "${!ALIAS[@]}"; do docker tag "kdtest/$engine:$HASH" "${ALIAS[$engine]}"; done
    echo "database test images ($HASH) present; reusing them"
    exit 0
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { echo "error: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    rootfs=$(mktemp -d /var/tmp/kdtest-dbroot.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "debootstrap bookworm with postgresql, mariadb-server, redis-server, sqlite3 (a few minutes)"
    # Debian's postinst scripts must not start servers inside the chroot.
    debootstrap --variant=minbase --include=postgresql,mariadb-server,redis-server,sqlite3,procps \
        bookworm "$rootfs" "$MIRROR" >/dev/null
    rm -f "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/lib/postgresql/15 "$rootfs"/var/lib/mysql/*
    : > "$rootfs/etc/machine-id"
    install -m 0755 db-images/*-entry.sh "$rootfs/usr/local/bin/"
    tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --message "kopi-docka database test base from Debian bookworm" - "$BASE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
fi

build() { # engine, Dockerfile lines
    local engine=$1; shift
    printf '%s\n' "FROM $BASE" "$@" | docker build -q -t "kdtest/$engine:$HASH" - >/dev/null
    docker tag "kdtest/$engine:$HASH" "${ALIAS[$engine]}"
}
build postgres 'ENV PGDATA=/var/lib/postgresql/data' 'STOPSIGNAL SIGINT' \
    'ENTRYPOINT ["/usr/local/bin/pg-entry.sh"]'
build mariadb 'ENTRYPOINT ["/usr/local/bin/mariadb-entry.sh"]'
build redis 'ENTRYPOINT ["/usr/local/bin/redis-entry.sh"]'
build sqlite 'CMD ["sleep", "infinity"]'
echo "built database test images ($HASH): ${ALIAS[*]}"
