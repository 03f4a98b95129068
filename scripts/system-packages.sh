#!/usr/bin/env bash
# The Debian packages erpbridge needs beyond Python, installed when missing (as root or with sudo).
# Each entry is "check:package"; the check is a program on PATH or, when it names a shared library
# (lib*.so*), that library in the dynamic linker's cache.
set -euo pipefail

packages=(
  "xmlsec1:xmlsec1" # verifies the signatures of SAML assertions (pysaml2 runs it)
  "chromium:chromium" # the browser the back office's tests drive (Playwright; tests/ui)
  # PDF documents: WeasyPrint lays out with Pango (through HarfBuzz and fontconfig) and needs a font.
  "libpango-1.0.so.0:libpango-1.0-0"
  "libpangoft2-1.0.so.0:libpangoft2-1.0-0"
  "libharfbuzz.so.0:libharfbuzz0b"
  "fc-list:fontconfig"
  "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf:fonts-dejavu-core"
  "pdftotext:poppler-utils" # the tests read PDFs back (pdftotext) and render them (pdftoppm)
  "systemd-analyze:systemd" # the tests verify deploy/systemd/*.service
  # The brokers of the streaming transports' tests (scripts/rabbitmq.sh, scripts/nats.sh).
  "/usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server"
  "/usr/sbin/nats-server:nats-server"
)

present() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    lib*.so*) PATH="$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null |
      awk -v lib="$1" '$1 == lib { found = 1 } END { exit !found }' ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for entry in "${packages[@]}"; do
  present "${entry%%:*}" || missing+=("${entry#*:}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "erpbridge needs these Debian packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "erpbridge needs: ${missing[*]}; install them with your system's package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -q "${missing[@]}" ||
  { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "${missing[@]}"; }
