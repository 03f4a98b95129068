#!/usr/bin/env bash
# A throwaway NATS server with JetStream (Debian package nats-server) for the test suite, on
# 127.0.0.1 only.
#   scripts/nats.sh start     install if missing, start it; prints the URL nats://127.0.0.1:<port>
#   scripts/nats.sh restart   kill it (as a crash would) and start it again on its data; prints
#                             the URL (the tests' broker restarted mid-stream)
#   scripts/nats.sh stop      stop it and remove its data
# Port: ERPBRIDGE_NATS_PORT (54222). Data: ERPBRIDGE_NATS_DIR (/tmp/erpbridge-nats-<port>), the
# JetStream store under it.
set -euo pipefail

port="${ERPBRIDGE_NATS_PORT:-54222}"
dir="${ERPBRIDGE_NATS_DIR:-/tmp/erpbridge-nats-$port}"

log() { echo "nats.sh: $*" >&2; }

install() {
  if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    log "nats-server is not installed; run 'sudo apt-get install nats-server'"
    exit 1
  fi
  log "installing nats-server from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq nats-server >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq nats-server >/dev/null; }
  service nats-server stop >/dev/null 2>&1 || true
}

# The server answers with its INFO line (JetStream is up before the client port opens).
answers() {
  python3 - "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as sock:
        sys.exit(0 if sock.recv(5) == b"INFO " else 1)
except OSError:
    sys.exit(1)
PY
}

start() {
  install
  stop quiet
  launch
}

restart() {
  kill_server
  launch
}

launch() {
  mkdir -p "$dir/jetstream"
  # setsid: the server outlives this script and is stopped by its pid.
  PATH="$PATH:/usr/sbin" setsid nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir/jetstream" \
    -P "$dir/nats.pid" -l "$dir/server.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/session.pid"
  local i
  for i in $(seq 1 300); do
    if answers; then
      echo "nats://127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$dir/session.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "nats-server did not answer on 127.0.0.1:$port within 30 s (port taken? ERPBRIDGE_NATS_PORT); its log:"
  tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
  exit 1
}

kill_server() {
  local pid=""
  if [ -f "$dir/session.pid" ]; then pid="$(cat "$dir/session.pid")"; fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
}

stop() {
  kill_server
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then log "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "usage: $0 start|restart|stop" >&2; exit 2 ;;
esac
