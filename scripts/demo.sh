#!/usr/bin/env bash
# What `make demo` runs: start a service in ./demo (fresh each time), log an
# example run with the Go client, list the runs, stop the service.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${RUNLOG_BIN:-bin/runlog}
ROOT=demo

if [ ! -x "$BIN" ]; then
  echo "demo: $BIN is missing; build it with \"make build\"" >&2
  exit 1
fi

# service_pid prints the pid in ROOT/service.lock if that process is alive.
service_pid() {
  local pid
  [ -f "$ROOT/service.lock" ] || return 0
  pid=$(grep -o '"pid": *[0-9]*' "$ROOT/service.lock" | grep -o '[0-9]*$' || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

# stop_service sends SIGTERM to the demo root's service and waits for it.
stop_service() {
  local pid
  pid=$(service_pid)
  [ -n "$pid" ] || return 0
  echo "==> stopping the service in $ROOT (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "demo: service pid $pid did not stop within 10s" >&2
  return 1
}

echo "==> stopping any previous demo service"
stop_service
rm -rf "$ROOT"

echo "==> logging an example run with the Go client (starts a service in $ROOT)"
"$BIN" demo --root "$ROOT"

echo "==> runs in $ROOT"
"$BIN" runs --root "$ROOT"

stop_service
echo "==> done: the run's log is in $ROOT/runs/"
