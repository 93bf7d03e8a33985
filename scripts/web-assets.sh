#!/usr/bin/env bash
# Installs the web UI's chart library from the npm registry, at the version
# web/package-lock.json pins, and copies the files the binary embeds into
# web/static/vendor (not in the repository). Called by "make build".
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "web: installing npm (apt-get install -y npm)" >&2
    apt-get install -y -q npm >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q npm >/dev/null; }
  else
    echo "web: npm is needed to build the web UI (it installs the pinned chart library); install Node.js and npm" >&2
    exit 1
  fi
fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p static/vendor
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css static/vendor/
