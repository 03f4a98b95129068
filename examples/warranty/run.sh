#!/usr/bin/env bash
# The warranty demo (`make demo-warranty`): starts the SAP CAP service and the OpenSSH server of
# the test suite, serves examples/warranty/erpbridge.yaml with `erpbridge run`, and plays the
# vehicle platform: a vehicle, a claim approved (credit memo request in SAP, EDIFACT credit note on
# the dealer's SFTP server, PDF in the archive) and a claim rejected (PDF letter, webhook).
#
# Usage: bash examples/warranty/run.sh [path/to/erpbridge]   (default: erpbridge on PATH)
# Everything lands in examples/warranty/data/ (removed at the next start). Needs root for sshd.
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
repo="$(cd "$here/../.." && pwd)"
data="$here/data"
if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export ERPBRIDGE_CAP_PORT="${ERPBRIDGE_CAP_PORT:-$(free_port)}"
export ERPBRIDGE_SSHD_PORT="${ERPBRIDGE_SSHD_PORT:-$(free_port)}"
hub_port="$(free_port)"
hook_port="$(free_port)"

hub_pid="" hook_pid=""
cleanup() {
    [[ -n "$hub_pid" ]] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null || true
    [[ -n "$hook_pid" ]] && kill "$hook_pid" 2>/dev/null || true
    bash "$repo/scripts/sshd.sh" stop >/dev/null 2>&1 || true
    bash "$repo/scripts/cap.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "SAP (CAP service) and the dealer's SFTP server"
cap="$(bash "$repo/scripts/cap.sh" start)"
sftp="$(bash "$repo/scripts/sshd.sh" start)"
echo "SAP:  $cap/odata/v2/API_CREDIT_MEMO_REQUEST_SRV/"
echo "SFTP: $sftp"
sftp_dir="$("$PYTHON" -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["dir"][0])' "$sftp")"
sftp_user="erpsftp$ERPBRIDGE_SSHD_PORT"
mkdir -p "$sftp_dir/files/edifact"
chown "$sftp_user" "$sftp_dir/files/edifact"

rm -rf "$data"
mkdir -p "$data/archive"
cp -r "$here/templates" "$here/erpbridge.yaml" "$data/"
cd "$data"
export ERPBRIDGE_DATABASE_URL="sqlite:///$data/hub.db" ERPBRIDGE_AUTO_UPGRADE=1
export ERPBRIDGE_SECRET_KEY="${ERPBRIDGE_SECRET_KEY:-$("$PYTHON" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}"
export SAP_URL="$cap/odata/v2" SAP_PASSWORD=erp-secret
export DEALER_SFTP_HOST=127.0.0.1 DEALER_SFTP_PORT="$ERPBRIDGE_SSHD_PORT" DEALER_SFTP_USER="$sftp_user"
export DEALER_SFTP_KEY="$sftp_dir/id_ed25519" DEALER_SFTP_KNOWN_HOSTS="$sftp_dir/known_hosts"
export DEALER_SFTP_PATH=edifact ARCHIVE_PATH=archive
export PLATFORM_WEBHOOK_URL="http://127.0.0.1:$hook_port/hooks" PLATFORM_WEBHOOK_SECRET=demo-secret

step "The platform's webhook receiver (prints what it gets)"
"$PYTHON" - "$hook_port" <<'EOF' &
import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print(f"platform received: {body.decode()}", flush=True)
        self.send_response(200); self.end_headers()
    def log_message(self, *args): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
hook_pid=$!

step "erpbridge check, then erpbridge run"
"$ERPBRIDGE" check erpbridge.yaml
key="$("$ERPBRIDGE" db upgrade >/dev/null && "$ERPBRIDGE" clients add platform --scope events --scope read | grep -o 'ebk_[A-Za-z0-9_-]*' | head -1)"
"$ERPBRIDGE" run --port "$hub_port" --interval 0.2 >"$data/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$hub_port/healthz" >/dev/null && break
    sleep 0.2
done

event() {  # flow, JSON body
    printf '$ POST /api/v1/events/%s  %s\n' "$1" "$(echo "$2" | head -1 | cut -c1-80)…"
    curl -fsS -X POST "http://127.0.0.1:$hub_port/api/v1/events/$1" \
        -H "X-API-Key: $key" -H 'Content-Type: application/json' -d "$2"
    echo
}
claim() {  # number, status, extra JSON fields
    cat <<EOF
{"claim_number": "$1", "status": "$2", "vin": "WVWZZZ1JZXW000001", "dealer_id": "4711",
 "dealer_name": "Autohaus Müller + Söhne", "manufacturer_id": "4000000000001",
 "repair_date": "2026-11-30", "currency": "EUR", "labour_hours": "1.6", "labour_amount": "80.00",
 "claimed_amount": "300.40",
 "lines": [{"line_no": "10", "part_number": "1K0-615-301", "description": "Brake disc, front",
            "quantity": "2", "unit_price": "45.25", "amount": "90.50"},
           {"line_no": "20", "part_number": "5Q0-698-151", "description": "Brake pads 'sport'",
            "quantity": "1", "unit_price": "129.90", "amount": "129.90"}]$3}
EOF
}

step "The platform: a vehicle and claim WC-1, submitted → in_review → approved"
event vehicles-from-platform '{"vin": "WVWZZZ1JZXW000001", "model": "Golf", "dealer_id": "4711"}'
event claims-from-platform "$(claim WC-1 submitted '')"
event claims-from-platform "$(claim WC-1 in_review '')"
event claims-from-platform "$(claim WC-1 approved ', "credit_amount": "300.40"')"

step "Claim WC-2, submitted → rejected"
event claims-from-platform "$(claim WC-2 submitted '')"
event claims-from-platform "$(claim WC-2 rejected ', "rejection_reason": "Wear part: brake pads are excluded"')"

# Five documents' deliveries: wait until the archive holds both PDFs and the platform was told.
for _ in $(seq 1 150); do
    [[ "$(find archive -name '*.pdf' | wc -l)" -ge 2 ]] && break
    sleep 0.2
done
sleep 1
step "SAP: the credit memo request"
curl -fsS -u erp:erp-secret "$cap/odata/v4/API_CREDIT_MEMO_REQUEST_SRV/A_CreditMemoRequest?\$expand=to_Item" |
    "$PYTHON" -m json.tool | head -40
step "The dealer's SFTP inbox: the EDIFACT credit note"
for f in "$sftp_dir"/files/edifact/*.edi; do echo "$f"; sed "s/\([^?]\)'/\1'\n/g" "$f"; echo; done
step "The archive (documents with their metadata)"
find archive -type f | sort
for pdf in archive/*/*/*.pdf; do
    echo "--- $pdf"
    pdftotext -layout "$pdf" - | sed '/^\s*$/d' | head -25
    pdftoppm -png -r 60 -singlefile "$pdf" "${pdf%.pdf}"
done
step "Deliveries"
"$ERPBRIDGE" deliveries | head -20
echo
echo "PNG previews of the PDFs: $data/archive/*/*/*.png; the hub's log: $data/hub.log"
