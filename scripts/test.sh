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
)

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

.venv/bin/pytest "$@"
