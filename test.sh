#!/usr/bin/env bash
# Creates (or reuses) .venv, installs the package with its test extras, then runs the suite.
# Extra arguments go to pytest, e.g. ./test.sh -m slow  or  ./test.sh tests/test_codec.py
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
ensure_venv "test,dist"
# CI runs fewer hypothesis examples per property; locally the default profile applies.
if [ "${CI:-}" = "true" ]; then export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"; fi
"$VENV/bin/ruff" check .
"$VENV/bin/python" -m pytest -m "not slow" "$@"
