#!/usr/bin/env bash
# What the tests need from outside npm: Debian's Chromium, which the dashboard's browser test
# drives through playwright-core (which downloads no browser of its own), and a Postgres for
# the durable-mode tests (scripts/test-postgres.sh). Idempotent: does nothing when they are
# already there. Called by `npm test` (pretest).
#
# Without root (or apt-get), it says what to install and exits 0: the browser test then fails
# with the same message, so a missing browser is never a silent pass.
set -uo pipefail

find_chromium() {
  for c in "${CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

bash "$(dirname "$0")/test-postgres.sh"

if path=$(find_chromium); then
  echo "test-deps: chromium found at $path"
  exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: Chromium is missing and cannot be installed from here (need root and apt-get)." >&2
  echo "test-deps: install it with:  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2
  echo "test-deps: or set CHROMIUM=/path/to/chromium. The dashboard's browser test fails without it." >&2
  exit 0
fi

echo "test-deps: installing Debian's chromium (apt-get)…"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -q && apt-get install -y -q --no-install-recommends chromium; then
  echo "test-deps: chromium installed at $(find_chromium)"
else
  echo "test-deps: apt-get could not install chromium; install it with: apt-get install -y --no-install-recommends chromium" >&2
fi
exit 0
