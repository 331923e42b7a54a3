#!/usr/bin/env bash
# Usage: profiling/perf_stat.sh CMD [ARGS...]
# Runs CMD under `perf stat` and keeps the counters. Where the kernel refuses hardware
# counters (containers, VMs), perf still reports the software ones (page faults, task clock).
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = "-h" ]; then sed -n 2,4p "$0"; exit 2; fi
source "$(dirname "$0")/_common.sh"
command -v perf >/dev/null || { echo "perf is not installed (Debian: apt-get install linux-perf)" >&2; exit 1; }
events="task-clock,page-faults,minor-faults,major-faults,context-switches"
if perf stat -e instructions true >/dev/null 2>&1; then
    events="$events,cycles,instructions,cache-misses,branch-misses"
fi
perf stat -e "$events" -o "$STEM.perf-stat.txt" -- "$@"
cat "$STEM.perf-stat.txt"
