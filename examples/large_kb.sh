#!/usr/bin/env bash
# Build a snapshot of a large generated KB once, then query it from fresh processes.
#   examples/large_kb.sh [N]     N is the baseline size label's n: 4*N rules (default 100000)
# N=1000000 gives the 4-million-rule, 139 MB KB of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
WORK="${WORK:-/tmp/metta-numba-large}"
mkdir -p "$WORK"
./run.sh --version >/dev/null   # creates the venv on first use
PY=.venv/bin/python

$PY -m metta_numba.bench.kbgen baseline "$N" "$WORK/kb.metta"
/usr/bin/time -f "snapshot build: %e s, peak RSS %M KiB" \
    .venv/bin/metta-numba snapshot build "$WORK/kb.metta" -o "$WORK/kb" --no-merkleize
.venv/bin/metta-numba snapshot info "$WORK/kb"

MID=$((N / 8))
cat > "$WORK/queries.metta" <<METTA
!(add$MID zero zero)
!(length$MID (cons a (cons b ())))
!(match &self (= (and$MID \$a \$b) \$r) (\$a \$b \$r))
!(match &self (= (or$MID \$a \$b) False) \$a)
!(match &self (= (append$MID () \$y) \$r) \$r)
METTA
/usr/bin/time -f "whole process with the snapshot: %e s, peak RSS %M KiB" \
    .venv/bin/metta-numba --load-snapshot "$WORK/kb" "$WORK/queries.metta"

# The match-only fast path, straight on the kernels:
.venv/bin/metta-numba query "$WORK/kb" "(= (mul$MID \$a \$b) \$r)" "(\$a \$b -> \$r)"
