#!/usr/bin/env bash
# A throwaway Tryton server (trytond 8.2 from PyPI, SQLite) for the test suite, on 127.0.0.1 only.
#   scripts/tryton.sh start   install if missing, copy a fresh database, start trytond; prints one
#                             line: http://admin:<password>@127.0.0.1:<port>/<database>
#   scripts/tryton.sh stop    stop it and remove its data
# Port: ERPBRIDGE_TRYTON_PORT (58000). Data: ERPBRIDGE_TRYTON_DIR (/tmp/erpbridge-tryton-<port>).
#
# trytond and its modules go into their own virtualenv, .servers/tryton/venv (pins in
# tests/integration/tryton_server/requirements.txt). The first start builds a database with the
# modules below activated, a company (EUR) the admin user belongs to and a few countries, and
# caches it under .servers/tryton/cache (about a minute); every later start copies that file
# (a few seconds). A changed module list, requirements file or setup script rebuilds the cache.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
port="${ERPBRIDGE_TRYTON_PORT:-58000}"
dir="${ERPBRIDGE_TRYTON_DIR:-/tmp/erpbridge-tryton-$port}"
home="$root/.servers/tryton"
venv="$home/venv"
cache="$home/cache"
source_dir="$root/tests/integration/tryton_server"
database=erpbridge
modules=(party product sale sale_price_list stock account account_invoice company currency)

log() { echo "tryton.sh: $*" >&2; }

install() {
  mkdir -p "$home"
  if [ -x "$venv/bin/trytond" ] && cmp -s "$source_dir/requirements.txt" "$venv/requirements.txt"; then
    return
  fi
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      log "python3 venv support is missing; run 'sudo apt-get install python3-venv'"
      exit 1
    fi
    log "installing python3-venv from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  log "installing trytond and its modules into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$source_dir/requirements.txt" >&2
  cp "$source_dir/requirements.txt" "$venv/requirements.txt"
}

# The environment trytond, trytond-admin and proteus read their configuration from.
use_folder() {
  export TRYTOND_DATABASE__URI="sqlite://"
  export TRYTOND_DATABASE__PATH="$1"
  export TRYTOND_WEB__LISTEN="127.0.0.1:$port"
}

stamp() {
  { echo "${modules[*]}"; cat "$source_dir/requirements.txt" "$source_dir/setup_db.py"; } \
    | sha256sum | cut -d' ' -f1
}

build_cache() {
  local wanted
  wanted="$(stamp)"
  if [ -f "$cache/$database.sqlite" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$wanted" ]; then
    return
  fi
  log "building the cached database (about a minute, once)"
  rm -rf "$cache.new"
  mkdir -p "$cache.new"
  head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$cache.new/admin-password"
  touch "$cache.new/$database.sqlite"
  (
    use_folder "$cache.new"
    export TRYTONPASSFILE="$cache.new/admin-password"
    "$venv/bin/trytond-admin" -d "$database" --all --email admin@example.com \
      -u "${modules[@]}" --activate-dependencies >"$cache.new/admin.log" 2>&1 \
      || { log "trytond-admin failed, see $cache.new/admin.log"; exit 1; }
    "$venv/bin/python" "$source_dir/setup_db.py" "$database" >>"$cache.new/admin.log" 2>&1 \
      || { log "the database setup failed, see $cache.new/admin.log"; exit 1; }
  )
  echo "$wanted" >"$cache.new/stamp"
  rm -rf "$cache"
  mv "$cache.new" "$cache"
}

wait_until_answering() {
  "$venv/bin/python" - "$port" "$dir/trytond.pid" <<'EOF'
import json, os, sys, time, urllib.error, urllib.request

port, pidfile = sys.argv[1], sys.argv[2]
body = json.dumps({"id": 0, "method": "common.server.version", "params": []}).encode()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/rpc/", body, {"Content-Type": "application/json"}
    )
    try:
        # Only our own server counts: another one on the port must not pass for it.
        with open(pidfile) as fh:
            os.kill(int(fh.read().strip()), 0)
    except ProcessLookupError:
        sys.exit(f"tryton.sh: trytond exited (is port {port} taken? ERPBRIDGE_TRYTON_PORT)")
    except (OSError, ValueError):
        pass  # the pid file is not written yet
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            if "result" in json.load(response):
                sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.2)
sys.exit(f"tryton.sh: trytond did not answer on port {port} within 60 s")
EOF
}

# Several test runs may start servers at once: one at a time installs and builds the cache, so
# a run never copies a database built by one run with the password file of another.
locked() {
  mkdir -p "$home"
  (
    flock 9
    "$@"
  ) 9>"$home/.lock"
}

start() {
  locked install
  locked build_cache
  stop quiet
  # SO_REUSEADDR, as trytond's own server binds: connections of a server just stopped
  # (TIME_WAIT) do not count, only a program listening on the port does.
  if ! "$venv/bin/python" -c '
import socket, sys
probe = socket.socket()
probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
probe.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    log "port $port is taken by another program; choose one with ERPBRIDGE_TRYTON_PORT"
    exit 1
  fi
  mkdir -p "$dir"
  cp "$cache/$database.sqlite" "$dir/$database.sqlite"
  use_folder "$dir"
  # setsid: the server outlives this script and is stopped by its pid.
  setsid "$venv/bin/trytond" -d "$database" --pidfile "$dir/trytond.pid" \
    >"$dir/trytond.log" 2>&1 </dev/null &
  if ! wait_until_answering; then
    tail -n 20 "$dir/trytond.log" >&2
    stop quiet
    exit 1
  fi
  echo "http://admin:$(cat "$cache/admin-password")@127.0.0.1:$port/$database"
}

stop() {
  if [ -f "$dir/trytond.pid" ]; then
    local pid
    pid="$(cat "$dir/trytond.pid")"
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then log "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
