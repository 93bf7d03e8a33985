#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the browser tests of the web
# UI; "make test" calls it. Without root or apt-get it says what is missing,
# and the tests then skip (or fail under CI=true).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser tests: installing chromium (apt-get install -y chromium)" >&2
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
else
  echo "browser tests: chromium is missing and cannot be installed here (needs root and apt-get)" >&2
fi
