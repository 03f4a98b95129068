#!/usr/bin/env bash
# A little cluster of "hosts" on this machine: Linux network namespaces joined by veth links to a
# bridge that lives in a namespace of its own. Addresses exist only inside the namespaces (the
# machine's own network is untouched), so two clusters with different names never meet.
#
#   scripts/cluster.sh up NAME HOST...     namespaces NAME-HOST with 10.77.0.<n>/24 (n = 1, 2, …
#                                          in the order given) and NAME-sw with the bridge
#   scripts/cluster.sh down NAME           kill every process in them, delete them, PG's data
#   scripts/cluster.sh pg-start NAME HOST  PostgreSQL in NAME-HOST on its address, port 5432,
#                                          trusting the cluster's subnet; data in /tmp/NAME-pg
#   scripts/cluster.sh pg-restart NAME HOST [fast|immediate]
#   scripts/cluster.sh cut NAME HOST       take HOST's link down at the bridge (its packets go
#                                          nowhere; its sockets hang as on a cut cable)
#   scripts/cluster.sh heal NAME HOST      bring it back
#   scripts/cluster.sh kill NAME HOST      kill -9 every process in HOST (the host "dies")
#   scripts/cluster.sh exec NAME HOST CMD… run a command in HOST
# Needs root (ip netns) and iproute2; PostgreSQL from Debian's postgresql package.
set -euo pipefail

subnet=10.77.0

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "cluster.sh: network namespaces need root" >&2
    exit 1
  fi
  command -v ip >/dev/null || { echo "cluster.sh: iproute2 (ip) is not installed" >&2; exit 1; }
}

port_of() { echo "p${1: -6}-$2" | cut -c1-15; } # the bridge-side end of HOST's veth (<= 15 chars)

up() {
  local name=$1
  shift
  ip netns add "$name-sw"
  ip -n "$name-sw" link add br0 type bridge
  ip -n "$name-sw" link set br0 up
  ip -n "$name-sw" link set lo up
  local n=0 host
  for host in "$@"; do
    n=$((n + 1))
    ip netns add "$name-$host"
    ip link add eth0 netns "$name-$host" type veth peer name "$(port_of "$name" "$host")" netns "$name-sw"
    ip -n "$name-sw" link set "$(port_of "$name" "$host")" master br0 up
    ip -n "$name-$host" addr add "$subnet.$n/24" dev eth0
    ip -n "$name-$host" link set eth0 up
    ip -n "$name-$host" link set lo up
    echo "$host $subnet.$n"
  done
}

down() {
  local name=$1 ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-" || true); do
    ip netns pids "$ns" | xargs -r kill -9 2>/dev/null || true
  done
  sleep 0.2
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$name-" || true); do
    ip netns del "$ns"
  done
  rm -rf "/tmp/$name-pg"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

address_of() { ip -n "$1-$2" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1; }

pg_start() {
  local name=$1 host=$2 dir="/tmp/$1-pg" bin
  bin="$(pg_bin)"
  [ -x "$bin/initdb" ] || { echo "cluster.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
  if [ ! -d "$dir/data" ]; then
    mkdir -p "$dir" && chown postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
    printf '%s\n' 'local all all trust' "host all all $subnet.0/24 trust" \
      'host all all 127.0.0.1/32 trust' | runuser -u postgres -- tee "$dir/data/pg_hba.conf" >/dev/null
  fi
  ip netns exec "$name-$host" runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=$(address_of "$name" "$host") -p 5432 -k $dir -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
    start >/dev/null
  echo "postgresql+psycopg://postgres@$(address_of "$name" "$host"):5432/postgres"
}

pg_restart() {
  local name=$1 host=$2 mode=${3:-fast} dir="/tmp/$1-pg"
  runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null
  pg_start "$name" "$host" >/dev/null
}

need_root
command=${1:-}
shift || true
case "$command" in
  up) up "$@" ;;
  down) down "$@" ;;
  pg-start) pg_start "$@" ;;
  pg-restart) pg_restart "$@" ;;
  cut) ip -n "$1-sw" link set "$(port_of "$1" "$2")" down ;;
  heal) ip -n "$1-sw" link set "$(port_of "$1" "$2")" up ;;
  kill) ip netns pids "$1-$2" | xargs -r kill -9 ;;
  exec) name=$1 host=$2; shift 2; exec ip netns exec "$name-$host" "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
