#!/usr/bin/env bash
# The MES example: an MES database with an order table (line 1) and a booking table (line 2),
# made by the demo's generator, read into the hub's production orders and delivered to the ERP's
# import folder; then the shop floor books more events and a second sync folds them in.
#
# Usage: bash examples/mes/run.sh [path/to/erpbridge]   (default: erpbridge on PATH)
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

cd "$(dirname "${BASH_SOURCE[0]}")"
unset ERPBRIDGE_DATABASE_URL MES_DB_URL
export ERPBRIDGE_CONFIG=erpbridge.yaml
export COLUMNS="${COLUMNS:-140}"

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ erpbridge %s\n' "$*"; "$ERPBRIDGE" "$@"; }

step "1. The MES database: data/mes.db (order table and booking table, from examples/demo)"
rm -rf data
"$PYTHON" ../demo/generate.py --data data
mkdir -p data/erp_import

step "2. Check the configuration, connect to the MES"
show check erpbridge.yaml
show channels test mes

step "3. Read both tables into the hub (the booking table folded into production orders)"
show sync --all
show records production_order --limit 5
show records production_order --key AB-20073   # an END without a START: kept, with its issue

step "4. Deliver the production orders to the ERP's import folder"
show worker --once
echo "$(ls data/erp_import | wc -l) files in data/erp_import"

step "5. The shop floor books on: AB-20150 (open since its START) ends, AB-20151 starts"
"$PYTHON" - <<'EOF'
import sqlite3

conn = sqlite3.connect("data/mes.db")
with conn:
    last = conn.execute("SELECT max(timestamp) FROM bookings").fetchone()[0]
    conn.execute(  # the END of the order left open, on its machine
        "INSERT INTO bookings (timestamp, order_code, product_code, machine_code, event) "
        "SELECT datetime(?, '+30 minutes'), order_code, product_code, machine_code, 'END' "
        "FROM bookings WHERE order_code = 'AB-20150'",
        (last,),
    )
    conn.execute(
        "INSERT INTO bookings (timestamp, order_code, product_code, machine_code, event) "
        "VALUES (datetime(?, '+40 minutes'), 'AB-20151', '25-1002', 'P1', 'START')",
        (last,),
    )
print("booked: AB-20150 END, AB-20151 START")
EOF
show sync production-orders-from-bookings
show records production_order --key AB-20150
show worker --once
echo "$(ls data/erp_import | wc -l) files in data/erp_import (new versions only)"
