#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite, on 127.0.0.1 only.
#   scripts/postgres.sh start   install (Debian package) if missing, init, start; prints the URL
#   scripts/postgres.sh stop    stop it and remove its data
#   scripts/postgres.sh halt [fast|immediate]   stop the server, keep its data (fault tests)
#   scripts/postgres.sh resume  start a halted server again on the same port and data
# Port and folder: ERPBRIDGE_PG_PORT (55432), ERPBRIDGE_PG_DIR (/tmp/erpbridge-pg-<port>);
# ERPBRIDGE_PG_DURABLE=1: crash-safe settings (fsync, synchronous commits) instead of fast ones.
set -euo pipefail

port="${ERPBRIDGE_PG_PORT:-55432}"
dir="${ERPBRIDGE_PG_DIR:-/tmp/erpbridge-pg-$port}"

find_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_owner() {
  # initdb and postgres refuse to run as root: run them as the 'postgres' system user then.
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install() {
  if [ -n "$(find_bin)" ] && [ -x "$(find_bin)/initdb" ]; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed; run 'sudo apt-get install postgresql'" >&2
    exit 1
  fi
  echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  # The package may start its own cluster on 5432; we never use it, stop it to save memory.
  service postgresql stop >/dev/null 2>&1 || true
}

start() {
  install
  local bin
  bin="$(find_bin)"
  stop quiet
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
  # Over TCP the superuser of the printed URL needs no password; every other role needs its own,
  # as on a real server, so that tests see a wrong password refused.
  printf '%s\n' 'local all all trust' 'host all postgres 127.0.0.1/32 trust' \
    'host all all 127.0.0.1/32 scram-sha-256' | as_owner tee "$dir/data/pg_hba.conf" >/dev/null
  run_server "$bin"
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

run_server() {
  # Fast and not crash-safe by default; ERPBRIDGE_PG_DURABLE=1 keeps every acknowledged commit
  # through an immediate stop (the fault tests stop the server that way).
  local speed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  if [ "${ERPBRIDGE_PG_DURABLE:-}" = 1 ]; then speed=""; fi
  as_owner "$1/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $speed -c max_connections=200" \
    start >/dev/null
}

halt() {
  as_owner "$(find_bin)/pg_ctl" -D "$dir/data" -m "${1:-fast}" -w stop >/dev/null
}

resume() {
  run_server "$(find_bin)"
}

stop() {
  local bin
  bin="$(find_bin)"
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then echo "postgres.sh: stopped" >&2; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  halt) halt "${2:-fast}" ;;
  resume) resume ;;
  *) echo "usage: $0 start|stop|halt [fast|immediate]|resume" >&2; exit 2 ;;
esac
