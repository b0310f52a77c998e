#!/usr/bin/env bash
# Installs the Python tools some tests use as independent checkers into a virtual environment,
# and prints that environment's python path on stdout. Everything else goes to stderr.
#   - standardwebhooks: the reference verifier of Standard Webhooks signatures;
#   - schemathesis: fuzzes the API from its OpenAPI document (5xx, schema violations).
#
# Usage: SEVLOOP_PYTHON="$(scripts/python-tools.sh)"   (venv: $SEVLOOP_PYTHON_ENV or the default below)
# Idempotent: does not touch the network when the venv already has the pinned version.
set -euo pipefail

# Pinned: the tests check sevloop against these exact versions.
PACKAGES=(standardwebhooks==1.1.0 schemathesis==4.32.5)
VENV="${SEVLOOP_PYTHON_ENV:-$HOME/.cache/sevloop/venv}"
PY="$VENV/bin/python"

log() { echo "python-tools: $*" >&2; }

installed() {
    local spec
    for spec in "${PACKAGES[@]}"; do
        "$PY" -c "import importlib.metadata as m; assert m.version('${spec%%==*}') == '${spec##*==}'" \
            2>/dev/null || return 1
    done
}

if [[ -x "$PY" ]] && installed; then
    log "tools already installed in $VENV"
    echo "$PY"
    exit 0
fi

command -v python3 >/dev/null || { log "python3 is required (with the venv module)"; exit 1; }

if [[ ! -x "$PY" ]]; then
    log "creating a virtual environment in $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" >&2
fi

log "installing ${PACKAGES[*]} from PyPI"
"$PY" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
installed || { log "installed, but $PY does not have ${PACKAGES[*]}"; exit 1; }
echo "$PY"
