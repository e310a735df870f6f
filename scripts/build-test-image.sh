#!/usr/bin/env bash
# Builds the local test image `kdtest/busybox:1` from Debian's busybox-static with
# `docker import` of a tiny rootfs. Nothing is pulled: no registry is reachable on CI.
# Reuses the image when it already exists.
set -euo pipefail

IMAGE="${KDTEST_IMAGE:-kdtest/busybox:1}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "test image $IMAGE present; reusing it"
    exit 0
fi

BUSYBOX=/bin/busybox
# The image has no libc: only a statically linked busybox runs in it.
if ! "$BUSYBOX" --list >/dev/null 2>&1 || [[ "$(ldd "$BUSYBOX" 2>&1 || true)" != *"not a dynamic executable"* ]]; then
    echo "error: $BUSYBOX is not Debian's busybox-static; install it: apt-get install busybox-static" >&2
    exit 1
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,var/www,data,proc,sys,dev}
chmod 1777 "$rootfs/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ "$applet" == busybox ]] && continue
    ln -sf busybox "$rootfs/bin/$applet"
done
cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
www-data:x:33:
nogroup:x:65534:
GROUP

tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    --message "kopi-docka test image from busybox-static" \
    - "$IMAGE" >/dev/null
echo "built test image $IMAGE ($("$BUSYBOX" --list | wc -l) busybox applets)"
