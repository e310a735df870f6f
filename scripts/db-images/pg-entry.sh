#!/bin/sh
# PostgreSQL 15 entrypoint of the kopi-docka test image: the official image's environment
# (POSTGRES_USER, POSTGRES_PASSWORD[_FILE], POSTGRES_DB), password authentication also on the
# local socket, so a dump with wrong credentials really fails.
set -e
PGBIN=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
USER_NAME=${POSTGRES_USER:-postgres}
if [ -n "$POSTGRES_PASSWORD_FILE" ]; then POSTGRES_PASSWORD=$(cat "$POSTGRES_PASSWORD_FILE"); fi
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "$POSTGRES_PASSWORD" ] || { echo "POSTGRES_PASSWORD is not set" >&2; exit 1; }
  pw=$(mktemp); printf '%s\n' "$POSTGRES_PASSWORD" > "$pw"; chown postgres "$pw"
  setpriv --reuid=postgres --regid=postgres --init-groups "$PGBIN/initdb" -D "$PGDATA" \
    --auth=scram-sha-256 --username="$USER_NAME" --pwfile="$pw" --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ -n "$POSTGRES_DB" ] && [ "$POSTGRES_DB" != "$USER_NAME" ] || [ "$USER_NAME" != postgres ]; then
    db=${POSTGRES_DB:-$USER_NAME}
    echo "CREATE DATABASE \"$db\";" | setpriv --reuid=postgres --regid=postgres --init-groups \
      "$PGBIN/postgres" --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$PGBIN/postgres" -D "$PGDATA"
