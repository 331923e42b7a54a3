#!/usr/bin/env bash
# Creates (or reuses) .venv, installs the package, then runs the metta-numba command.
#   ./run.sh examples/family.metta
#   ./run.sh snapshot build examples/family.metta -o /tmp/family.kb
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.numba_cache}"
ensure_venv ""
exec "$VENV/bin/metta-numba" "$@"
