"""Interpreter workloads, ours against hyperon in the same process (BENCHMARKS.md section 3).

`python -m metta_numba.bench.interp_bench [--fib 20,25] [--repeat 3] [--kb 10000] [--no-hyperon]`
prints medians: `!(fib N)` from a fresh runner holding only the fib rule, and a warm
`!(match &self (= (and{i} $a $b) $r) ($a $b $r))` on the baseline KB loaded into the
in-memory space (i from the middle of the KB). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import sys

from metta_numba.bench.kbgen import generate_kb
from metta_numba.bench.timing import time_call, time_once

FIB_RULE = "(= (fib $n) (if (< $n 2) $n (+ (fib (- $n 1)) (fib (- $n 2)))))"


def _engines(with_hyperon: bool) -> dict:
    from metta_numba import MeTTa

    engines = {"metta-numba": MeTTa}
    if with_hyperon:
        try:
            import hyperon
        except ImportError:
            print("hyperon is not installed; measuring metta-numba only", file=sys.stderr)
        else:
            engines["hyperon " + getattr(hyperon, "__version__", "")] = hyperon.MeTTa
    return engines


def fib_times(make, n: int, repeat: int) -> dict:
    runner = make()
    runner.run(FIB_RULE)
    stats = time_call(lambda: runner.run(f"!(fib {n})"), repeat=repeat, unit="s")
    return {"median_s": stats.median, "min_s": stats.min, "max_s": stats.max}


def match_times(make, kb_size: int, repeat: int) -> dict:
    runner = make()
    load_ms, _ = time_once(lambda: runner.run(generate_kb(kb_size)), unit="ms")
    index = kb_size // 8
    query = f"!(match &self (= (and{index} $a $b) $r) ($a $b $r))"
    runner.run(query)  # warm
    stats = time_call(lambda: runner.run(query), repeat=max(repeat, 50), unit="us")
    return {"load_ms": load_ms, "query": query, "median_us": stats.median, "min_us": stats.min}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fib", default="20,25", help="comma-separated fib arguments")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kb", type=int, default=10_000, help="baseline KB size n (4n rules)")
    parser.add_argument("--no-hyperon", action="store_true")
    args = parser.parse_args(argv)
    report: dict = {}
    for name, make in _engines(not args.no_hyperon).items():
        entry: dict = {"match": match_times(make, args.kb, args.repeat)}
        for n in (int(x) for x in args.fib.split(",") if x):
            entry[f"fib {n}"] = fib_times(make, n, args.repeat)
        report[name] = entry
        print(json.dumps({name: entry}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
