#!/usr/bin/env bash
# Installs what the browser tests need and prints the chromium path on stdout (everything else
# goes to stderr):
#   - Debian's chromium (apt), when /usr/bin/chromium is missing;
#   - playwright-core, pinned by tests/browser/package-lock.json, into tests/browser/node_modules.
# Usage: SEVLOOP_CHROMIUM="$(scripts/browser-tools.sh)". Idempotent: no network when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "browser-tools: $*" >&2; }

CHROMIUM="${SEVLOOP_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
    log "installing Debian's chromium"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi

command -v npm >/dev/null || { log "node and npm are required (Debian: apt-get install nodejs npm)"; exit 1; }
if [[ ! -f tests/browser/node_modules/playwright-core/package.json ]]; then
    log "installing playwright-core (tests/browser/package-lock.json)"
    npm ci --prefix tests/browser --no-audit --no-fund --silent >&2
fi
echo "$CHROMIUM"
