#!/usr/bin/env bash
# The whole test suite: starts the servers the tests need, runs pytest, stops them again.
# Each scripts/<server>.sh prints its address on start; it is exported for the tests. A missing
# server fails the run (ERPBRIDGE_REQUIRE_SERVERS=1), it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# server script : variable the tests read
servers=(
  "postgres:ERPBRIDGE_TEST_PG_URL"
  "mariadb:ERPBRIDGE_TEST_MARIADB_URL"
  "restapi:ERPBRIDGE_TEST_RESTAPI"
  "cap:ERPBRIDGE_TEST_CAP_URL"
  "sshd:ERPBRIDGE_TEST_SFTP"
  "tryton:ERPBRIDGE_TEST_TRYTON"
  "rabbitmq:ERPBRIDGE_TEST_AMQP_URL"
  "nats:ERPBRIDGE_TEST_NATS_URL"
)

# Each server gets free ports of its own unless the caller chose them, so that two test runs on one
# machine never answer each other's tests (each script derives its data folder from its port).
free_ports() {
  # $1 consecutive free ports on 127.0.0.1; prints the first.
  python3 - "$1" <<'PY'
import socket, sys
count = int(sys.argv[1])
for _ in range(200):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        first = probe.getsockname()[1]
    if first + count > 65535:
        continue
    try:
        for port in range(first, first + count):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(first)
    break
else:
    sys.exit("test.sh: no free ports")
PY
}
export ERPBRIDGE_PG_PORT="${ERPBRIDGE_PG_PORT:-$(free_ports 1)}"
export ERPBRIDGE_MARIADB_PORT="${ERPBRIDGE_MARIADB_PORT:-$(free_ports 1)}"
export ERPBRIDGE_RESTAPI_PORT="${ERPBRIDGE_RESTAPI_PORT:-$(free_ports 3)}"
export ERPBRIDGE_CAP_PORT="${ERPBRIDGE_CAP_PORT:-$(free_ports 1)}"
export ERPBRIDGE_SSHD_PORT="${ERPBRIDGE_SSHD_PORT:-$(free_ports 1)}"
export ERPBRIDGE_TRYTON_PORT="${ERPBRIDGE_TRYTON_PORT:-$(free_ports 1)}"
# AMQP, then the node's Erlang distribution and its own epmd (scripts/rabbitmq.sh).
export ERPBRIDGE_RABBITMQ_PORT="${ERPBRIDGE_RABBITMQ_PORT:-$(free_ports 3)}"
export ERPBRIDGE_NATS_PORT="${ERPBRIDGE_NATS_PORT:-$(free_ports 1)}"

started=()
stop_all() {
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    bash "scripts/${started[i]}.sh" stop || true
  done
}
trap stop_all EXIT

for entry in "${servers[@]}"; do
  name="${entry%%:*}"
  variable="${entry#*:}"
  started+=("$name")
  value="$(bash "scripts/$name.sh" start)"
  export "$variable=$value"
done
export ERPBRIDGE_REQUIRE_SERVERS=1

if [[ $# -gt 0 ]]; then
  .venv/bin/pytest "$@"
  exit
fi

# The whole suite runs as two pytest sessions side by side, so that it stays well inside CI's
# 30 minutes: the tests that spend most of their time waiting on processes of their own (served
# hubs, Chromium, pip installs, the network-namespace cluster) and touch no shared server but
# fresh PostgreSQL databases, and everything else. Each session prints its own summary; the
# run fails when either fails.
own=(tests/ui tests/observe tests/events tests/test_packaging.py tests/cluster
  tests/engine/test_backfill_served.py tests/engine/test_worker_crash.py)
ignored=()
for path in "${own[@]}"; do ignored+=("--ignore=$path"); done
own_log="$(mktemp "${TMPDIR:-/tmp}/erpbridge-tests-own.XXXXXX")"
.venv/bin/pytest --durations=15 "${own[@]}" >"$own_log" 2>&1 &
own_pid=$!
trap 'kill "$own_pid" 2>/dev/null || true; stop_all' EXIT
status=0
.venv/bin/pytest --durations=25 "${ignored[@]}" || status=$?
own_status=0
wait "$own_pid" || own_status=$?
echo
echo "==== the tests with processes of their own (${own[*]}) ===="
cat "$own_log"
rm -f "$own_log"
if ((status != 0)); then exit "$status"; fi
exit "$own_status"
