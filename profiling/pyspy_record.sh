#!/usr/bin/env bash
# Usage: profiling/pyspy_record.sh CMD [ARGS...]
# Records CMD with py-spy (native frames included, so Numba kernels show up by address) and
# writes a flame graph SVG and a speedscope JSON into the results folder.
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = "-h" ]; then sed -n 2,4p "$0"; exit 2; fi
source "$(dirname "$0")/_common.sh"
command -v py-spy >/dev/null || { echo "py-spy is not installed: pip install py-spy" >&2; exit 1; }
py-spy record --rate 250 --native -o "$STEM.svg" -- "$@"
py-spy record --rate 250 --format speedscope -o "$STEM.speedscope.json" -- "$@" >/dev/null
echo "wrote $STEM.svg and $STEM.speedscope.json"
