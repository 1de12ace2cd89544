#!/usr/bin/env bash
# A local PostgreSQL for custscore's tests and for a try-out, on 127.0.0.1 only.
#
#   scripts/postgres.sh start [DIR]   create (if new) and start a cluster in DIR (default: a new
#                                     temporary folder), print its folder, then its URL on the last line
#   scripts/postgres.sh stop DIR      stop it; a temporary folder made by `start` is removed
#
# Installs Debian's `postgresql` package with apt-get when initdb/pg_ctl are missing. initdb
# and pg_ctl refuse to run as root, so as root the cluster belongs to the `postgres` user.
# Logins from 127.0.0.1 need the password (scram-sha-256), so the URL printed holds one: it is a
# local throwaway's, shown so the caller can use it; custscore itself never prints it.
set -euo pipefail

find_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
  done
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then dirname "$(command -v pg_ctl)"; return 0; fi
  return 1
}

install_postgres() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: PostgreSQL's server (initdb, pg_ctl) is not installed; install Debian's postgresql package (sudo apt-get install postgresql) and run again" >&2
    exit 1
  fi
  # Test processes start in parallel (pytest -n 2): one installs, the others wait and find it installed.
  exec 9>/tmp/custscore-postgres-install.lock
  flock 9
  if ! find_bin >/dev/null; then
    echo "installing Debian's postgresql package (apt-get)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 postgresql >&2
  fi
  flock -u 9
}

# Run a server tool as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="${1:-}" bin port password
  bin=$(find_bin) || { install_postgres; bin=$(find_bin) || { echo "error: postgresql installed but no initdb found under /usr/lib/postgresql/*/bin" >&2; exit 1; }; }
  if [[ -z "$dir" ]]; then
    dir=$(mktemp -d /tmp/custscore-pg.XXXXXX)
    touch "$dir/.throwaway"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir"; chmod 0755 "$dir"; fi
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
    printf '%s\n' "$password" > "$dir/.pwfile"
    chmod 0600 "$dir/.pwfile"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$dir/.pwfile"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/.pwfile" --auth-local=trust \
      --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { echo "error: initdb failed, see $dir/initdb.log" >&2; exit 1; }
  fi
  password=$(cat "$dir/.pwfile")
  port=$(cat "$dir/port" 2>/dev/null || free_port)
  if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    # Another process may take the free port between our look and the server's bind: try others.
    local tries=0
    until as_owner "$bin/pg_ctl" -D "$dir/data" -w -t 60 -l "$dir/data/server.log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null; do
      tries=$((tries + 1))
      if [[ $tries -ge 3 ]]; then echo "error: the server did not start, see $dir/data/server.log" >&2; exit 1; fi
      port=$(free_port)
    done
  fi
  echo "$port" > "$dir/port"
  if ! as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'custscore'" | grep -q 1; then
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U postgres custscore
  fi
  echo "$dir"
  echo "postgresql://postgres:${password}@127.0.0.1:${port}/custscore"
}

stop() {
  local dir="${1:?usage: scripts/postgres.sh stop DIR}" bin
  bin=$(find_bin) || { echo "error: no pg_ctl found" >&2; exit 1; }
  if [[ -f "$dir/data/PG_VERSION" ]]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [[ -f "$dir/.throwaway" ]]; then rm -rf "$dir"; fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) echo "usage: scripts/postgres.sh start [DIR] | stop DIR" >&2; exit 2 ;;
esac
