#!/usr/bin/env bash
# A throwaway SAP CAP service for the test suite, on 127.0.0.1 only: S/4HANA-like OData APIs
# (servers/cap: API_BUSINESS_PARTNER, API_PRODUCT_SRV, API_SALES_ORDER_SRV, the pricing conditions
# and API_CREDIT_MEMO_REQUEST_SRV) as OData V4 at
# /odata/v4/<API> and V2 at /odata/v2/<API> (with a CSRF check like SAP Gateway's), basic auth
# user erp / erp-secret, seeded in an in-memory database: every start begins with fresh data.
#   scripts/cap.sh start   install (npm, into .servers/cap) if missing, start; prints the base URL
#   scripts/cap.sh stop    stop it (its data goes with it)
# Port: ERPBRIDGE_CAP_PORT (54004). Page size cap: ERPBRIDGE_CAP_PAGE_MAX (3: small, so that
# server-driven paging, @odata.nextLink / d.__next, happens on every longer list).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/servers/cap"
dir="${ERPBRIDGE_CAP_DIR:-$root/.servers/cap}"
port="${ERPBRIDGE_CAP_PORT:-54004}"
page_max="${ERPBRIDGE_CAP_PAGE_MAX:-3}"
pidfile="$dir/cap-$port.pid"
log="$dir/cap-$port.log"
node="$dir/node_modules/.bin/node"

install() {
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "cap.sh: npm is not installed; run 'sudo apt-get install nodejs npm'" >&2
      exit 1
    fi
    echo "cap.sh: installing nodejs and npm from Debian packages" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p "$dir"
  local stamp
  stamp="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
  if [ -x "$node" ] && [ "$(cat "$dir/.installed" 2>/dev/null)" = "$stamp" ]; then
    return
  fi
  echo "cap.sh: installing @sap/cds, its SQLite driver, the OData V2 adapter and Node 22 (npm)" >&2
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  # @sap/cds 10 needs Node >= 22; the npm package 'node' brings it along, whatever node runs npm.
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$stamp" >"$dir/.installed"
}

answers() {
  # $metadata of one service, with the mocked user: the server is up and has loaded the model.
  # (Node's fetch sends "Accept-Language: *" unless told otherwise; the V2 adapter answers that
  # with a 500, so the probe names a language.)
  "$node" -e '
    const auth = "Basic " + Buffer.from("erp:erp-secret").toString("base64");
    fetch(process.argv[1], { headers: { authorization: auth, "accept-language": "en" } })
      .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));
  ' "http://127.0.0.1:$port/odata/v2/API_BUSINESS_PARTNER/\$metadata"
}

start() {
  install
  stop quiet
  # The model is copied at every start, so an edit in servers/cap is served at once.
  rm -rf "$dir/db" "$dir/srv"
  cp -r "$src/db" "$src/srv" "$src/server.js" "$src/package.json" "$dir/"
  (
    cd "$dir"
    PORT="$port" ERPBRIDGE_CAP_PAGE_MAX="$page_max" NODE_NO_WARNINGS=1 \
      nohup "$node" node_modules/@sap/cds/bin/serve.js >"$log" 2>&1 &
    echo $! >"$pidfile"
  )
  for _ in $(seq 1 150); do
    if answers; then
      echo "http://127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  echo "cap.sh: the CAP service did not come up on port $port; its log:" >&2
  cat "$log" >&2 || true
  stop quiet
  exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid
    pid="$(cat "$pidfile")"
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile" "$log"
  if [ "${1:-}" != quiet ]; then echo "cap.sh: stopped" >&2; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
