#!/bin/sh
# MariaDB 10.11 entrypoint of the kopi-docka test image: the official image's environment
# (MARIADB_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD [_FILE], MARIADB_DATABASE / MYSQL_DATABASE);
# root authenticates by password only (no unix_socket), so wrong credentials really fail.
set -e
DATADIR=/var/lib/mysql
ROOT_PW=${MARIADB_ROOT_PASSWORD:-$MYSQL_ROOT_PASSWORD}
f=${MARIADB_ROOT_PASSWORD_FILE:-$MYSQL_ROOT_PASSWORD_FILE}
if [ -n "$f" ]; then ROOT_PW=$(cat "$f"); fi
DB=${MARIADB_DATABASE:-$MYSQL_DATABASE}
mkdir -p "$DATADIR" /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld
if [ ! -d "$DATADIR/mysql" ]; then
  [ -n "$ROOT_PW" ] || { echo "MARIADB_ROOT_PASSWORD is not set" >&2; exit 1; }
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db >/dev/null
  mariadbd --user=mysql --datadir="$DATADIR" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  until mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1; do sleep 0.2; done
  {
    [ -z "$DB" ] || echo "CREATE DATABASE IF NOT EXISTS \`$DB\`;"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$ROOT_PW';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$ROOT_PW'; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
  } | mariadb --socket=/run/mysqld/init.sock -uroot
  kill "$pid"; wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 --socket=/run/mysqld/mysqld.sock
