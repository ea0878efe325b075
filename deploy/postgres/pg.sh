#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and local runs (Debian's postgresql packages;
# installs nothing). Data lives in the git-ignored .local/pg; listens on 127.0.0.1 only.
# As root, when the `postgres` user cannot enter the clone (any clone under /root), the
# data goes to /var/tmp/billsync-pg-<hash of the clone's path> instead (owner-only).
# BILLSYNC_PG_DIR overrides both.
#   pg.sh up      initdb (once), start, create the `billsync` database, print its URL
#   pg.sh down    stop (a stopped cluster is not an error)
#   pg.sh status  exit 0 when the server answers
#   pg.sh url     print the URL
# As root the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Where the cluster lives: the same answer for up, down, status and url of one clone.
default_base() {
  local in_clone="$root/.local/pg" probe="$root"
  [[ -d "$root/.local" ]] && probe="$root/.local"
  [[ -d "$in_clone" ]] && probe="$in_clone"
  if [[ $(id -u) -ne 0 ]] || (cd / && runuser -u postgres -- test -x "$probe"); then
    echo "$in_clone"
  else
    echo "/var/tmp/billsync-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
  fi
}
base="${BILLSYNC_PG_DIR:-$(default_base)}"
data="$base/data"
sock="$base/run"
logfile="$base/postgres.log"
port="${BILLSYNC_PG_PORT:-55432}"
db=billsync

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/pg_ctl" ]] && candidate="$d"
  done
  if [[ -z "${candidate:-}" ]]; then
    echo "pg: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
    exit 1
  fi
  echo "$candidate"
}

owner="$(id -un)"
if [[ $(id -u) -eq 0 ]]; then owner=postgres; fi

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")  # the clone may be a folder postgres cannot enter
  else
    "$@"
  fi
}

url() { echo "postgresql+asyncpg://$owner@127.0.0.1:$port/$db"; }

answers() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; }

up() {
  if [[ $(id -u) -eq 0 && -d "$base" ]]; then
    local found
    found="$(stat -c %U "$base")"
    if [[ $found != postgres && $found != root ]]; then
      echo "pg: $base belongs to $found, not postgres; remove it or set BILLSYNC_PG_DIR" >&2
      exit 1
    fi
  fi
  mkdir -p -m 0700 "$base" "$sock"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$base" "$sock"
    if ! (cd / && runuser -u postgres -- test -w "$base"); then
      echo "pg: the postgres user cannot reach $base; set BILLSYNC_PG_DIR elsewhere" >&2
      exit 1
    fi
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$data" -U "$owner" --auth=trust --encoding=UTF8 \
      --no-instructions >/dev/null
  fi
  if ! answers; then
    as_owner "$bin/pg_ctl" -D "$data" -l "$logfile" -w -t 60 start \
      -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$sock \
          -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
          -c max_connections=200" >/dev/null
  fi
  if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U "$owner" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$owner" "$db"
  fi
  echo "pg: data in $base" >&2
  url
}

down() {
  if [[ -f "$data/postmaster.pid" ]]; then
    as_owner "$bin/pg_ctl" -D "$data" -w -t 60 -m fast stop >/dev/null || true
  fi
  echo "pg: stopped"
}

bin="$(bindir)"
case "${1:-}" in
  up) up ;;
  down) down ;;
  status) answers ;;
  url) url ;;
  *) echo "usage: $0 up|down|status|url" >&2; exit 2 ;;
esac
