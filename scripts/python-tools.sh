#!/usr/bin/env bash
# Installs the Python tools some tests use as independent checkers (today: `standardwebhooks`,
# the reference verifier of Standard Webhooks signatures) into a virtual environment, and prints
# that environment's python path on stdout. Everything else goes to stderr.
#
# Usage: SEVLOOP_PYTHON="$(scripts/python-tools.sh)"   (venv: $SEVLOOP_PYTHON_ENV or the default below)
# Idempotent: does not touch the network when the venv already has the pinned version.
set -euo pipefail

# Pinned: the tests check our signatures against this exact reference implementation.
PACKAGE="standardwebhooks"
VERSION="1.1.0"
VENV="${SEVLOOP_PYTHON_ENV:-$HOME/.cache/sevloop/venv}"
PY="$VENV/bin/python"

log() { echo "python-tools: $*" >&2; }

installed() {
    "$PY" -c "import importlib.metadata as m, $PACKAGE; assert m.version('$PACKAGE') == '$VERSION'" 2>/dev/null
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

log "installing $PACKAGE==$VERSION from PyPI"
"$PY" -m pip install --quiet --disable-pip-version-check "$PACKAGE==$VERSION" >&2
installed || { log "installed, but $PY cannot import $PACKAGE $VERSION"; exit 1; }
echo "$PY"
