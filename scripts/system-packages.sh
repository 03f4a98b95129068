#!/usr/bin/env bash
# The Debian packages erpbridge needs beyond Python, installed when missing (as root or with sudo).
# Each entry is "program:package"; the program's presence is the check.
set -euo pipefail

packages=(
  "xmlsec1:xmlsec1" # verifies the signatures of SAML assertions (pysaml2 runs it)
  "chromium:chromium" # the browser the back office's tests drive (Playwright; tests/ui)
)

missing=()
for entry in "${packages[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
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
