#!/usr/bin/env bash
# The erpbridge demo (`make demo`): generate an MES database and ERP export files, sync them into
# the hub, look around, then drop the same files again and prove the second run changed nothing.
#
# Usage: bash examples/demo/run.sh [path/to/erpbridge]   (default: erpbridge on PATH)
set -euo pipefail

# Resolve the executable before leaving the caller's folder: a relative path is theirs.
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
# The Python beside the executable has erpbridge installed; used for the generator and the check.
PYTHON="$(dirname "$ERPBRIDGE")/python"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"

cd "$(dirname "${BASH_SOURCE[0]}")"
# The demo always uses its own configuration and hub database, whatever the shell has set.
unset ERPBRIDGE_DATABASE_URL
export ERPBRIDGE_CONFIG=erpbridge.yaml
export COLUMNS="${COLUMNS:-140}"

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ erpbridge %s\n' "$*"; "$ERPBRIDGE" "$@"; }

# The highest run id so far, and the totals of the runs after a given id (from the hub store).
last_run_id() {
    "$PYTHON" - <<'EOF'
from sqlalchemy import create_engine, func, select

from erpbridge import load_config
from erpbridge.store.tables import runs

engine = create_engine(load_config("erpbridge.yaml").database_url())
with engine.connect() as conn:
    print(conn.execute(select(func.coalesce(func.max(runs.c.id), 0))).scalar_one())
EOF
}

runs_after() {
    "$PYTHON" - "$1" <<'EOF'
import sys

from sqlalchemy import create_engine, func, select

from erpbridge import load_config
from erpbridge.store.tables import runs

after = int(sys.argv[1])
engine = create_engine(load_config("erpbridge.yaml").database_url())
columns = [runs.c.read, runs.c.created, runs.c.updated, runs.c.unchanged, runs.c.rejected]
query = select(func.count(), *(func.coalesce(func.sum(c), 0) for c in columns))
with engine.connect() as conn:
    row = conn.execute(query.where(runs.c.id > after)).one()
    failed = conn.execute(
        select(func.count()).where(runs.c.id > after, runs.c.status != "succeeded")
    ).scalar_one()
print(*row, failed)
EOF
}

step "1. Generate the sources: data/mes.db (MES) and data/inbox/ (ERP exports)"
rm -rf data
"$PYTHON" generate.py

step "2. Check the configuration"
show check erpbridge.yaml

step "3. Sync every flow into the hub (data/hub.db)"
show sync --all

step "4. Look into the hub"
show records customer --limit 5
show records customer --key 10001

step "5. What was rejected, and why"
show rejected

step "6. Deliver the production orders OUT to the shop's import folder"
mkdir -p data/shop_import
show worker --once
show deliveries --limit 5
echo "$(ls data/shop_import | wc -l) files in data/shop_import, e.g.:"
cat "data/shop_import/$(ls data/shop_import | head -n 1)"

step "7. Drop the same export files again and sync once more"
before="$(last_run_id)"
"$PYTHON" generate.py --files-only
show sync --all

read -r count read_ created updated unchanged rejected failed <<<"$(runs_after "$before")"
echo
if [[ "$count" -eq 0 || "$failed" -ne 0 ]]; then
    echo "FAILED: the second sync recorded $count run(s), $failed of them not succeeded" >&2
    exit 1
fi
if [[ "$created" -ne 0 || "$updated" -ne 0 ]]; then
    echo "FAILED: the second sync changed the hub: $created created, $updated updated" >&2
    exit 1
fi
echo "Second sync: $count runs, $read_ records read, $unchanged unchanged, $rejected rejected" \
    "again (the same bad row) — 0 created, 0 updated: nothing changed, re-running is safe."
