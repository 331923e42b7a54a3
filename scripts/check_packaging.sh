#!/usr/bin/env bash
# Checks the packaging: renders recipe/recipe.yaml, compares its requirements with pyproject.toml
# and environment.yml, builds the wheel and sdist with the oldest allowed build tools, installs
# the wheel into a fresh venv and runs it (downloads the runtime dependencies from PyPI).
#   scripts/check_packaging.sh            extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv "test,dist,packaging"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
exec "$VENV/bin/python" -m pytest -m packaging tests/test_packaging.py "$@"
