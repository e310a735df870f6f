#!/bin/sh
# Redis 7 entrypoint of the kopi-docka test image: data in /data, a password from
# REDIS_PASSWORD[_FILE] when set (the Bitnami convention).
set -e
if [ -n "$REDIS_PASSWORD_FILE" ]; then REDIS_PASSWORD=$(cat "$REDIS_PASSWORD_FILE"); fi
mkdir -p /data
chown redis:redis /data
set -- --dir /data --bind 0.0.0.0 --protected-mode no --appendonly no --save 60 1
if [ -n "$REDIS_PASSWORD" ]; then set -- "$@" --requirepass "$REDIS_PASSWORD"; fi
exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@"
