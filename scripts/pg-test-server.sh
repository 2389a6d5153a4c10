#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests and local trials (trust auth, 127.0.0.1 only).
#
#   eval "$(scripts/pg-test-server.sh start)"   # exports GEOAI_TEST_POSTGRES_URL and GEOAI_PG_TEST_DIR
#   scripts/pg-test-server.sh stop              # stops the server in $GEOAI_PG_TEST_DIR, deletes its files
#
# `start` prints the two export lines on stdout (everything else goes to stderr). The URL
# points at the server's "postgres" database as superuser "geoai"; create a database per
# test or app from it. PostgreSQL refuses to run as root, so as root the server runs as the
# "postgres" user (Debian's package creates it).
set -euo pipefail

pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) ""; do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  exit 1
}

as_owner() {  # run a command as the user that owns the cluster
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local bin dir port
  bin=$(pg_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/geoai-pg.XXXXXX")
  chmod 755 "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" postgres
    chown postgres "$dir"
  fi
  as_owner "$bin/initdb" -D "$dir/data" -U geoai -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(free_port)
  # fsync off: a test server's data is thrown away anyway; many connections for parallel writers.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c max_connections=200" start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "export GEOAI_TEST_POSTGRES_URL=postgresql+psycopg://geoai@127.0.0.1:$port/postgres"
  echo "export GEOAI_PG_TEST_DIR=$dir"
}

stop() {
  local dir=${1:-${GEOAI_PG_TEST_DIR:-}}
  if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
    echo "no test server to stop (give its folder or set GEOAI_PG_TEST_DIR)" >&2
    return 0
  fi
  as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac
