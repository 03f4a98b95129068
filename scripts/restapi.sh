#!/usr/bin/env bash
# A throwaway REST API for the test suite: json-server 0.17 behind an API gateway (API key,
# basic, bearer JWT from an OAuth 2.0 server, mutual TLS, injected 429/500), on 127.0.0.1 only.
#   scripts/restapi.sh start   install (npm) if missing, make certificates, start; prints one
#                              JSON line: url, https_url, token_url, dir, certificate files and
#                              the test secrets (random per start)
#   scripts/restapi.sh stop    stop it and remove its data
# Ports: ERPBRIDGE_RESTAPI_PORT (58080, plain HTTP), ERPBRIDGE_RESTAPI_HTTPS_PORT (port + 1),
# ERPBRIDGE_RESTAPI_OAUTH_PORT (port + 2). Data: ERPBRIDGE_RESTAPI_DIR (/tmp/erpbridge-restapi-<port>).
# The server's code is tests/integration/rest_server/; its npm packages go to .servers/rest/.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
port="${ERPBRIDGE_RESTAPI_PORT:-58080}"
https_port="${ERPBRIDGE_RESTAPI_HTTPS_PORT:-$((port + 1))}"
oauth_port="${ERPBRIDGE_RESTAPI_OAUTH_PORT:-$((port + 2))}"
dir="${ERPBRIDGE_RESTAPI_DIR:-/tmp/erpbridge-restapi-$port}"
source_dir="$root/tests/integration/rest_server"
prefix="$root/.servers/rest"

log() { echo "restapi.sh: $*" >&2; }

install() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
      log "Node.js is not installed; run 'sudo apt-get install nodejs npm'"
      exit 1
    fi
    log "installing Node.js from Debian packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  if ! command -v openssl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
  mkdir -p "$prefix"
  # Installed once per lock file: a changed lock file installs again.
  if ! cmp -s "$source_dir/package-lock.json" "$prefix/package-lock.json" \
    || [ ! -d "$prefix/node_modules/json-server" ]; then
    log "installing json-server, oauth2-mock-server and jose into $prefix"
    cp "$source_dir/package.json" "$source_dir/package-lock.json" "$prefix/"
    npm ci --prefix "$prefix" --no-audit --no-fund --loglevel=error >&2
  fi
  # Run from the install folder, so that node finds the packages beside it.
  cp "$source_dir/server.js" "$prefix/server.js"
}

certificates() {
  local cnf="$dir/san.cnf"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$cnf"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=erpbridge test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$cnf" -out "$dir/server.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=erpbridge client" \
    -keyout "$dir/client.key" -out "$dir/client.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$dir/client.cnf"
  openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/client.cnf" -out "$dir/client.pem" 2>/dev/null
}

start() {
  install
  stop quiet
  mkdir -p "$dir"
  certificates
  local api_key password secret
  api_key="$(openssl rand -hex 16)"
  password="$(openssl rand -hex 12)"
  secret="$(openssl rand -hex 16)"
  cat >"$dir/config.json" <<EOF
{"port": $port, "https_port": $https_port, "oauth_port": $oauth_port,
 "api_key": "$api_key", "username": "erp", "password": "$password",
 "client_id": "erpbridge", "client_secret": "$secret",
 "ca": "$dir/ca.pem", "server_cert": "$dir/server.pem", "server_key": "$dir/server.key"}
EOF
  # setsid: the server outlives this script and is stopped by its pid.
  setsid node "$prefix/server.js" "$dir/config.json" >"$dir/log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local health="http://127.0.0.1:$port/_admin/health"
  for _ in $(seq 1 100); do
    if node -e "fetch('$health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" \
      2>/dev/null; then
      printf '{"url": "http://127.0.0.1:%s", "https_url": "https://127.0.0.1:%s", ' "$port" "$https_port"
      printf '"token_url": "http://127.0.0.1:%s/token", "dir": "%s", ' "$oauth_port" "$dir"
      printf '"ca": "%s/ca.pem", "client_cert": "%s/client.pem", "client_key": "%s/client.key", ' \
        "$dir" "$dir" "$dir"
      printf '"api_key": "%s", "username": "erp", "password": "%s", ' "$api_key" "$password"
      printf '"client_id": "erpbridge", "client_secret": "%s"}\n' "$secret"
      return
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  log "the server did not start; its log:"
  cat "$dir/log" >&2
  stop quiet
  exit 1
}

stop() {
  if [ -f "$dir/pid" ]; then
    local pid
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$dir"
  if [ "${1:-}" != quiet ]; then log "stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
