#!/usr/bin/env bash
# Usage: profiling/perf_record.sh CMD [ARGS...]
# Samples CMD with `perf record -g` and writes the raw data plus a text report. Numba kernels
# show up as bare JIT addresses here (py-spy --native names them better); perf shows where the
# cycles go in NumPy, libc and the kernel (page faults on a cold snapshot, for instance).
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = "-h" ]; then sed -n 2,5p "$0"; exit 2; fi
source "$(dirname "$0")/_common.sh"
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
perf record -g -o "$STEM.perf.data" -- "$@"
perf report -i "$STEM.perf.data" --stdio --percent-limit 1 > "$STEM.perf-report.txt" 2>/dev/null
echo "wrote $STEM.perf.data and $STEM.perf-report.txt"
