#!/usr/bin/env bash
# A throwaway OpenSSH SFTP server for the test suite, on 127.0.0.1 only.
#   scripts/sshd.sh start   install openssh-server (Debian package) if missing, start a private
#                           sshd; prints sftp://erpsftp<port>@127.0.0.1:<port>/?dir=<data dir>
#   scripts/sshd.sh stop    stop it (and its sessions) and remove its data
# Port and folder: ERPBRIDGE_SSHD_PORT (52222), ERPBRIDGE_SSHD_DIR (/tmp/erpbridge-sshd-<port>).
#
# The data dir holds what a client needs: known_hosts (the server's host key for
# [127.0.0.1]:<port>), id_ed25519 (a client key the server accepts), id_ed25519_enc (the same
# kind, encrypted with the passphrase in `passphrase`), `password` (the user's password) and
# files/, where every SFTP session starts. The only system-wide changes: an unprivileged user
# erpsftp<port> of this instance's own (no home, no shell; created on start with a fresh password,
# removed on stop, so that two test runs with their own ports never share a login) and sshd's
# privilege separation folder /run/sshd. The system's own sshd is never started.
set -euo pipefail

port="${ERPBRIDGE_SSHD_PORT:-52222}"
dir="${ERPBRIDGE_SSHD_DIR:-/tmp/erpbridge-sshd-$port}"
user="erpsftp$port"
sshd=/usr/sbin/sshd

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "sshd.sh: $1 needs root (sshd switches to the SFTP user after login)" >&2
    exit 1
  fi
}

install() {
  if [ -x "$sshd" ]; then
    return
  fi
  echo "sshd.sh: installing openssh-server from Debian packages" >&2
  local guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keeps the package from starting the system's sshd on port 22 while it installs.
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$guard"
    chmod 755 "$guard"
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    openssh-server >/dev/null
  if [ -n "$guard" ]; then rm -f "$guard"; fi
  # We only want the binary: leave the system's ssh service as it was before (not running).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
}

ensure_user() {
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  fi
}

wait_ready() {
  # Ready when the port answers with an SSH banner.
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port" && head -c 4 <&3 | grep -q SSH-) 2>/dev/null; then
      return
    fi
    sleep 0.05
  done
  echo "sshd.sh: sshd did not answer on 127.0.0.1:$port; log:" >&2
  cat "$dir/sshd.log" >&2 || true
  exit 1
}

start() {
  need_root start
  install
  stop quiet
  ensure_user
  mkdir -p "$dir/files" /run/sshd
  chmod 755 "$dir" /run/sshd
  chown "$user:" "$dir/files"
  ssh-keygen -q -t ed25519 -N '' -C "erpbridge-sshd-$port" -f "$dir/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C erpbridge-client -f "$dir/id_ed25519"
  head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 20 >"$dir/passphrase"
  ssh-keygen -q -t ed25519 -N "$(cat "$dir/passphrase")" -C erpbridge-client-enc \
    -f "$dir/id_ed25519_enc"
  cat "$dir/id_ed25519.pub" "$dir/id_ed25519_enc.pub" >"$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  echo "[127.0.0.1]:$port $(cut -d ' ' -f 1-2 "$dir/ssh_host_ed25519_key.pub")" >"$dir/known_hosts"
  head -c 512 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 24 >"$dir/password"
  chmod 600 "$dir/password" "$dir/passphrase"
  echo "$user:$(cat "$dir/password")" | chpasswd
  cat >"$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
UsePAM no
PermitRootLogin no
AllowUsers $user
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication no
AuthorizedKeysFile none
AllowTcpForwarding no
AllowAgentForwarding no
AllowStreamLocalForwarding no
X11Forwarding no
PermitTTY no
LoginGraceTime 20
MaxStartups 50
LogLevel VERBOSE
Subsystem sftp internal-sftp
Match User $user
    PasswordAuthentication yes
    PubkeyAuthentication yes
    # A root-owned command, so sshd's StrictModes checks pass although the keys live in /tmp.
    AuthorizedKeysCommand /bin/cat $dir/authorized_keys
    AuthorizedKeysCommandUser $user
    ForceCommand internal-sftp -d $dir/files
EOF
  "$sshd" -t -f "$dir/sshd_config"
  "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"
  wait_ready
  echo "sftp://$user@127.0.0.1:$port/?dir=$dir"
}

running() {
  # Gone, or a zombie its parent has not reaped yet (its port is closed either way).
  [ -r "/proc/$1/stat" ] && [ "$(cut -d ')' -f 2 "/proc/$1/stat" | cut -d ' ' -f 2)" != Z ]
}

stop() {
  if [ -f "$dir/sshd.pid" ]; then
    local pid
    pid="$(cat "$dir/sshd.pid")"
    # Its sessions first (children of this listener only), then the listener.
    pkill -TERM -P "$pid" >/dev/null 2>&1 || true
    kill -TERM "$pid" >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 100); do
      running "$pid" || break
      sleep 0.02
    done
  fi
  rm -rf "$dir"
  if id "$user" >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    userdel "$user" >/dev/null 2>&1 || passwd -q -l "$user" >/dev/null 2>&1 || true
  fi
  if [ "${1:-}" != quiet ]; then echo "sshd.sh: stopped" >&2; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
