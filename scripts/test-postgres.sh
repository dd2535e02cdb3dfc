#!/usr/bin/env bash
# A Postgres for the durable-mode tests (issue 13): Debian's `postgresql`, initialised outside
# the repository and started on loopback on a free port. Called by scripts/test-deps.sh
# (`npm test`'s pretest); safe to run by hand.
#
# Idempotent and fast when everything is there: an initialised data directory is reused, a
# server already running is left running. The connection URL is written to
# `.cache/postgres-url` in the repository (gitignored), where the tests read it; a test that
# needs Postgres FAILS when the file is missing, naming this script.
#
# Settings:
#   ORGANISM_PG_DATA  the data directory (default /var/tmp/xml-organism-pg)
#
# The server is a throwaway test server: trust authentication on 127.0.0.1 only, fsync off.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
data="${ORGANISM_PG_DATA:-/var/tmp/xml-organism-pg}"
url_file="$repo/.cache/postgres-url"
mkdir -p "$repo/.cache"
rm -f "$url_file"

say() { echo "test-postgres: $*"; }
fail() {
  echo "test-postgres: $*" >&2
  echo "test-postgres: the durable-mode tests fail without it (they read $url_file)." >&2
  exit 0
}

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"; return 0
  fi
  return 1
}

if ! bin=$(find_bin); then
  if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "Postgres is missing and cannot be installed from here (need root and apt-get). Install it with:  sudo apt-get update && sudo apt-get install -y --no-install-recommends postgresql"
  fi
  say "installing Debian's postgresql (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; }; then
    fail "apt-get could not install postgresql; install it with: apt-get install -y --no-install-recommends postgresql"
  fi
  bin=$(find_bin) || fail "postgresql was installed but no pg_ctl/initdb was found under /usr/lib/postgresql/*/bin"
fi

# As root, the server runs as the `postgres` user (Postgres refuses to run as root).
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || fail "the postgres user is missing (reinstall Debian's postgresql-common)"
  as_pg() { runuser -u postgres -- "$@"; }
  owner=postgres
else
  as_pg() { "$@"; }
  owner="$(id -un)"
fi

url_of() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

# Already running: reuse it (its port is line 4 of postmaster.pid).
if [ -f "$data/postmaster.pid" ] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port=$(sed -n 4p "$data/postmaster.pid")
  url_of "$port" > "$url_file"
  say "reusing the server running on 127.0.0.1:$port ($data)"
  exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
  say "initialising $data"
  mkdir -p "$data" && chown "$owner" "$data" && chmod 700 "$data" || fail "cannot create $data"
  as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-instructions >"$data.initdb.log" 2>&1 \
    || fail "initdb failed (see $data.initdb.log)"
fi

port=$(node -e 'const s=require("node:net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
if ! as_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w -t 60 start >/dev/null; then
  tail -n 20 "$data/server.log" >&2 2>/dev/null
  fail "pg_ctl could not start the server in $data (log above)"
fi
url_of "$port" > "$url_file"
say "started on 127.0.0.1:$port ($data); URL in .cache/postgres-url"
exit 0
