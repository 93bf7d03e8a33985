#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl) are installed for
# the tests of the hub's PostgreSQL store; "make test" calls it. The tests
# start their own throwaway cluster in a temporary directory, so nothing is
# configured here. Without root or apt-get it fails with the line that
# installs it: the PostgreSQL tests are part of make test, never skipped.
set -euo pipefail
for d in /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then exit 0; fi
done
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "postgres tests: installing postgresql (apt-get install -y postgresql)" >&2
  apt-get install -y -q postgresql >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
  exit 0
fi
echo "postgres tests: PostgreSQL is missing; install it with: sudo apt-get install -y postgresql" >&2
exit 1
