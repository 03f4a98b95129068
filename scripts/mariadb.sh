#!/usr/bin/env bash
# A throwaway MariaDB for the test suite, on 127.0.0.1 only.
#   scripts/mariadb.sh start   install (Debian package) if missing, init, start; prints the URL
#   scripts/mariadb.sh stop    stop it and remove its data
# Port and folder: ERPBRIDGE_MARIADB_PORT (53306), ERPBRIDGE_MARIADB_DIR
# (/tmp/erpbridge-mariadb-<port>). The URL is an admin URL (root, no password: the instance
# listens on the loopback only and lives for one test run). The server's clock runs in
# ERPBRIDGE_MARIADB_TZ (Europe/Berlin), as a plant's MES server does, so that tests see what a
# non-UTC server does to TIMESTAMP columns.
set -euo pipefail

port="${ERPBRIDGE_MARIADB_PORT:-53306}"
dir="${ERPBRIDGE_MARIADB_DIR:-/tmp/erpbridge-mariadb-$port}"

install() {
  if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    return
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "mariadb.sh: MariaDB is not installed; run 'sudo apt-get install mariadb-server'" >&2
    exit 1
  fi
  echo "mariadb.sh: installing MariaDB from Debian packages" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  # The package may start its own server on 3306; we never use it, stop it to save memory.
  service mariadb stop >/dev/null 2>&1 || true
}

# The server runs as 'mysql' when started by root (mariadbd refuses root), else as the caller.
run_user() {
  if [ "$(id -u)" = 0 ]; then echo mysql; else id -un; fi
}

answers() {
  mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u root \
    --connect-timeout=1 ping >/dev/null 2>&1
}

start() {
  install
  export PATH="$PATH:/usr/sbin"
  stop quiet
  local user
  user="$(run_user)"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown "$user" "$dir"; fi
  # normal: root logs in with a (blank) password over TCP, not by unix-socket identity.
  mariadb-install-db --no-defaults --user="$user" --datadir="$dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
    cat "$dir/install.log" >&2
    exit 1
  }
  # Detached from this script's stdout, so `$(scripts/mariadb.sh start)` returns.
  TZ="${ERPBRIDGE_MARIADB_TZ:-Europe/Berlin}" setsid mariadbd --no-defaults --user="$user" --datadir="$dir/data" --socket="$dir/s.sock" \
    --pid-file="$dir/mariadbd.pid" --port="$port" --bind-address=127.0.0.1 \
    --log-error="$dir/log" --character-set-server=utf8mb4 --max-connections=200 \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-buffer-pool-size=64M \
    </dev/null >>"$dir/log" 2>&1 &
  local i
  for i in $(seq 1 300); do
    if answers; then
      echo "mysql+pymysql://root@127.0.0.1:$port/"
      return
    fi
    if ! kill -0 $! 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "mariadb.sh: MariaDB did not answer on 127.0.0.1:$port; its log:" >&2
  tail -n 30 "$dir/log" >&2 || true
  exit 1
}

stop() {
  local pid=""
  if [ -f "$dir/mariadbd.pid" ]; then pid="$(cat "$dir/mariadbd.pid")"; fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # Its data is removed next: no clean shutdown needed (like pg_ctl -m immediate).
    kill -9 "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then echo "mariadb.sh: stopped" >&2; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
