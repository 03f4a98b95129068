#!/usr/bin/env bash
# The whole test suite: starts the servers the tests need, runs pytest, stops them again.
# The hub tests run on SQLite and on PostgreSQL; a missing server fails the run (never a skip).
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop' EXIT
export ERPBRIDGE_TEST_PG_URL="$pg_url"
export ERPBRIDGE_REQUIRE_SERVERS=1

.venv/bin/pytest "$@"
