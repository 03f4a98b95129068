#!/usr/bin/env bash
# The Tryton demo (`make demo-erp`): a throwaway Tryton, sample data in it, then the MDS-like
# catalogue of erpbridge.yaml end to end — the initial migration out of Tryton, the shop's pushes
# into Tryton (orders, a return, an allocation, a lock status, a card token), Tryton's progress
# back to the shop as signed webhooks — printing what happened at each step. Tryton, the hub and
# the shop's webhook receiver are stopped at the end (also on failure).
#
# Usage: bash examples/tryton/run.sh [path/to/erpbridge]   (default: erpbridge on PATH)
# Ports: ERPBRIDGE_TRYTON_PORT (58400), DEMO_API_PORT (8098), DEMO_SHOP_PORT (8099).
set -euo pipefail

erpbridge_arg="${1:-erpbridge}"
if [[ "$erpbridge_arg" == */* ]]; then
    ERPBRIDGE="$(cd "$(dirname "$erpbridge_arg")" 2>/dev/null && pwd)/$(basename "$erpbridge_arg")"
else
    ERPBRIDGE="$(command -v "$erpbridge_arg" || true)"
fi
if [[ -z "$ERPBRIDGE" || ! -x "$ERPBRIDGE" ]]; then
    echo "error: erpbridge executable not found: $erpbridge_arg" >&2
    exit 2
fi
PYTHON="$(dirname "$ERPBRIDGE")/python"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
unset ERPBRIDGE_DATABASE_URL
export ERPBRIDGE_CONFIG=erpbridge.yaml
export COLUMNS="${COLUMNS:-140}"
export ERPBRIDGE_TRYTON_PORT="${ERPBRIDGE_TRYTON_PORT:-58400}"
api_port="${DEMO_API_PORT:-8098}"
shop_port="${DEMO_SHOP_PORT:-8099}"

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ erpbridge %s\n' "$*"; "$ERPBRIDGE" "$@"; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash "$root/scripts/tryton.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

wait_for() {  # wait_for URL: until it answers (any HTTP status), at most 30 s
    for _ in $(seq 150); do
        if "$PYTHON" -c "import httpx, sys; httpx.get(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "error: nothing answers at $1" >&2
    return 1
}

step "1. Start a throwaway Tryton (scripts/tryton.sh; the first start builds its database, ~2 min)"
url="$(bash "$root/scripts/tryton.sh" start)"
# http://admin:<password>@127.0.0.1:<port>/<database>
eval "$("$PYTHON" - "$url" <<'EOF'
import shlex, sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
for name, value in (("TRYTON_URL", f"{u.scheme}://{u.hostname}:{u.port}/"),
                    ("TRYTON_DATABASE", u.path.strip("/")), ("TRYTON_USER", u.username),
                    ("TRYTON_PASSWORD", u.password)):
    print(f"export {name}={shlex.quote(str(value))}")
EOF
)"
echo "Tryton at $TRYTON_URL, database $TRYTON_DATABASE"
export SHOP_WEBHOOK_URL="http://127.0.0.1:$shop_port/erpbridge"
export SHOP_WEBHOOK_SECRET="demo-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
# The key that encrypts the hub's stored secrets (API signing keys): a fresh one per demo.
export ERPBRIDGE_SECRET_KEY="$("$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
rm -rf data
mkdir -p data

step "2. Sample data in Tryton: customers, products, stock, sales made in Tryton, an invoice"
"$PYTHON" demo.py seed

step "3. Check the configuration and the channel"
show check erpbridge.yaml
show channels test erp --no-sample

step "4. The initial migration: every IN flow reads everything once (erpbridge sync --all)"
show sync --all

step "5. Start the shop's webhook receiver, the hub's API and a worker"
# `erpbridge run` would also fire the schedules (card tokens every minute …); the demo runs the
# IN flows itself, so that each step shows what it did.
"$PYTHON" demo.py receive "$shop_port" data/webhooks.jsonl &
pids+=($!)
key="$("$ERPBRIDGE" clients add shop --scope events --scope operations --channel shop --channel erp \
    | tail -n 1)"
"$ERPBRIDGE" api --port "$api_port" >data/api.log 2>&1 &
pids+=($!)
"$ERPBRIDGE" worker --interval 1 >data/worker.log 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$api_port/healthz"
sleep 3  # the worker's first pass sends the migrated records to the shop
"$PYTHON" demo.py webhooks data/webhooks.jsonl

step "6. The shop pushes: an order, a return, an allocation, a lock status, a card token"
"$PYTHON" demo.py push "http://127.0.0.1:$api_port" "$key"
sleep 4  # the worker looks every second; Tryton quotes and confirms the order
show deliveries --limit 12

step "7. What they became in Tryton"
"$PYTHON" demo.py tryton

step "8. Tryton moves on: the order is shipped and invoiced, the return approved"
"$PYTHON" demo.py ship
show sync orders-from-tryton rma-status-from-tryton invoices-from-tryton customers-from-tryton \
    payment-tokens-from-tryton
sleep 4
"$PYTHON" demo.py webhooks data/webhooks.jsonl

step "9. Sync again: nothing changed, nothing is sent"
before="$(wc -l <data/webhooks.jsonl)"
show sync orders-from-tryton rma-status-from-tryton invoices-from-tryton customers-from-tryton \
    payment-tokens-from-tryton
sleep 3
after="$(wc -l <data/webhooks.jsonl)"
if [[ "$before" -ne "$after" ]]; then
    echo "FAILED: a sync without changes sent $((after - before)) webhook(s)" >&2
    exit 1
fi
echo "No new webhook: $after in all. The hub keeps runs, records and deliveries in data/hub.db:"
show runs --limit 8
echo
echo "Stopping the hub, the receiver and Tryton."
