#!/usr/bin/env bash
# A throwaway RabbitMQ (Debian package rabbitmq-server) for the test suite, on 127.0.0.1 only.
#   scripts/rabbitmq.sh start   install if missing, start a node of its own; prints the AMQP URL
#   scripts/rabbitmq.sh restart kill the node (as a crash would) and start it again on its data;
#                               prints the URL (the tests' broker restarted mid-stream)
#   scripts/rabbitmq.sh stop    stop it (and its epmd) and remove its data
# Ports: ERPBRIDGE_RABBITMQ_PORT (55672) for AMQP; the Erlang distribution listens on the next
# port and the node's own epmd on the one after, so that two runs on one machine never meet
# (another run's epmd would otherwise register both nodes). Data: ERPBRIDGE_RABBITMQ_DIR
# (/tmp/erpbridge-rabbitmq-<port>): mnesia, logs, configuration and the Erlang cookie (HOME).
# The URL logs in as guest/guest, which RabbitMQ allows from the loopback only.
set -euo pipefail

port="${ERPBRIDGE_RABBITMQ_PORT:-55672}"
dir="${ERPBRIDGE_RABBITMQ_DIR:-/tmp/erpbridge-rabbitmq-$port}"
server=/usr/lib/rabbitmq/bin/rabbitmq-server

log() { echo "rabbitmq.sh: $*" >&2; }

install() {
  if [ -x "$server" ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    log "RabbitMQ is not installed; run 'sudo apt-get install rabbitmq-server'"
    exit 1
  fi
  log "installing RabbitMQ from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq rabbitmq-server >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && apt-get install -y -qq rabbitmq-server >/dev/null; }
  # The package may start the system's node; we never use it.
  service rabbitmq-server stop >/dev/null 2>&1 || true
}

# The node answers AMQP 0-9-1 (connection.start), not merely a TCP connect: the listener opens
# once the node has booted.
answers() {
  python3 - "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        sys.exit(0 if sock.recv(1) == b"\x01" else 1)
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
  kill_node
  launch
}

launch() {
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "[]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
disk_free_limit.absolute = 50MB
log.file.level = warning
CONF
  (
    export HOME="$dir"
    export RABBITMQ_NODENAME="erpbridge-$port@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$port"
    export RABBITMQ_DIST_PORT="$((port + 1))"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_EPMD_PORT="$((port + 2))"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
    # The distribution port on the loopback too (Erlang listens on every interface otherwise).
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    # setsid: the node outlives this script; its session is stopped as a whole.
    setsid "$server" </dev/null >"$dir/server.log" 2>&1 &
    echo $! >"$dir/session.pid"
  )
  # Bounded: 120 s (a node boots in 5-30 s on a busy 2-core machine).
  local i
  for i in $(seq 1 1200); do
    if answers; then
      echo "amqp://guest:guest@127.0.0.1:$port/"
      return
    fi
    if ! kill -0 "$(cat "$dir/session.pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "RabbitMQ did not answer on 127.0.0.1:$port within 120 s; its log:"
  tail -n 30 "$dir/server.log" "$dir"/log/*.log >&2 2>/dev/null || true
  # The node goes; its data stays for a look (and for `restart`); `stop` removes it.
  kill_node
  exit 1
}

kill_node() {
  local pid=""
  if [ -f "$dir/session.pid" ]; then pid="$(cat "$dir/session.pid")"; fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # No clean shutdown: a crash is what durable queues must survive. The whole session: erl
    # and its helpers.
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
}

stop() {
  kill_node
  # The node's own epmd (on its own port) goes too; a system epmd on 4369 is left alone.
  if [ -d "$dir" ]; then
    ERL_EPMD_PORT="$((port + 2))" epmd -kill >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then log "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "usage: $0 start|restart|stop" >&2; exit 2 ;;
esac
