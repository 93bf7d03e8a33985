#!/usr/bin/env bash
# What `make demo` runs, in ./demo (fresh each time): a Python training loop
# logs a run through a service it starts, the run is listed, audited and
# folded back into its state, then synced to a local hub and shown there.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${RUNLOG_BIN:-bin/runlog}
PYTHON=${PYTHON:-.venv/bin/python}
ROOT=demo
HUB_PID=

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

cleanup() {
  if [ -n "$HUB_PID" ] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill -TERM "$HUB_PID"
    wait "$HUB_PID" || true
  fi
  stop_service || true
}
trap cleanup EXIT

# The service is started by the client library; tell it which binary.
export RUNLOG_BIN="$BIN"

echo "==> training with the Python client (examples/train.py starts a service in $ROOT)"
"$PYTHON" examples/train.py --root "$ROOT" --epochs 10 | tee "$ROOT.train.log"
RUN=$(tail -n 1 "$ROOT.train.log")
rm -f "$ROOT.train.log"

echo "==> logging a second run with the Go client"
"$BIN" demo --root "$ROOT"

echo "==> runs in $ROOT"
"$BIN" runs --root "$ROOT"

echo "==> the first records of run $RUN"
"$BIN" replay "$RUN" --root "$ROOT" --to 8

echo "==> verifying run $RUN record by record"
"$BIN" replay "$RUN" --root "$ROOT" --verify

echo "==> run $RUN folded back from its log"
"$BIN" replay "$RUN" --root "$ROOT" --state

stop_service

echo "==> starting a hub on loopback, store in $ROOT/hub"
"$BIN" hub --listen 127.0.0.1:0 --http "${DEMO_HTTP:-127.0.0.1:0}" --store "$ROOT/hub" --port-file "$ROOT/hub.port" 2>"$ROOT/hub.log" &
HUB_PID=$!
for _ in $(seq 300); do
  [ -s "$ROOT/hub.port" ] && break
  kill -0 "$HUB_PID" 2>/dev/null || { cat "$ROOT/hub.log" >&2; exit 1; }
  sleep 0.1
done
HUB=grpc://$(sed -E 's/.*"tcp": *"([^"]+)".*/\1/' "$ROOT/hub.port")

echo "==> syncing every run in $ROOT to $HUB"
"$BIN" sync --root "$ROOT" --upstream "$HUB" --all
echo "==> syncing again: nothing left to send"
"$BIN" sync --root "$ROOT" --upstream "$HUB" --all

echo "==> runs on the hub"
"$BIN" runs --hub "$HUB"
echo "==> run $RUN on the hub"
"$BIN" show "$RUN" --hub "$HUB" --history train/loss,val/acc --samples 10

UI=$(sed -E 's/.*"http": *"([^"]+)".*/\1/' "$ROOT/hub.port")
echo "==> done: logs in $ROOT/runs/, the hub's store in $ROOT/hub/"
if [ -n "${DEMO_NO_WAIT:-}" ]; then
  echo "==> the hub's web UI was at $UI"
  exit 0
fi
echo
echo "==> the hub's web UI, with the demo runs: $UI"
echo "    (open it in a browser; Ctrl-C stops the hub)"
wait "$HUB_PID" || true
