"""Generators of the benchmark knowledge bases (BENCHMARKS.md sections 1 and 2).

`generate_kb(n)` is the baseline KB, the same shape as MeTTaTron's baseline benchmark: three
type declarations, then, for each i in range(n // 4), sixteen rules (math, logic, lists and
patterns, four each), one rule per line. That is 4 * n rules for n a multiple of 4.
`generate_fact_kb(n, seed)` is the fact KB: n `(edge n_i n_j)` facts over n // 10 nodes.
`generate_powerlaw_fact_kb(n, seed)` has the same shape with skewed degrees (a few hubs).

The large baseline KB is about 139 MB, so the writers stream it in chunks instead of building
one string.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

TYPE_DECLARATIONS = ("(: Nat Type)", "(: zero Nat)", "(: succ (-> Nat Nat))")

# The sixteen rules of one index i, in the order the spec lists them; `{i}` is the index.
RULE_TEMPLATES = (
    # math
    "(= (add{i} zero $x) $x)",
    "(= (add{i} $x zero) $x)",
    "(= (add{i} (succ $x) $y) (succ (add{i} $x $y)))",
    "(= (mul{i} zero $x) zero)",
    # logic
    "(= (and{i} True True) True)",
    "(= (and{i} True False) False)",
    "(= (and{i} False $x) False)",
    "(= (or{i} False False) False)",
    # lists
    "(= (length{i} ()) 0)",
    "(= (length{i} (cons $h $t)) (+ 1 (length{i} $t)))",
    "(= (append{i} () $y) $y)",
    "(= (append{i} (cons $h $t) $y) (cons $h (append{i} $t $y)))",
    # patterns
    "(= (match{i} $x $x) True)",
    "(= (match{i} $x $y) False)",
    "(= (equals{i} $x $x) True)",
    "(= (not-equals{i} $x $x) False)",
)

RULES_PER_INDEX = len(RULE_TEMPLATES)

# One format string for all sixteen rules of an index, so a block costs one `format` call.
_BLOCK = "".join(template + "\n" for template in RULE_TEMPLATES)

SIZES = {"small": 10_000, "medium": 100_000, "large": 1_000_000, "xlarge": 10_000_000, "xxlarge": 20_000_000}
"""The n of each named baseline size (BENCHMARKS.md section 1). xlarge (40M rules, about 1.4 GB)
and xxlarge (80M rules, about 2.9 GB; to show how a build's memory grows past xlarge) are built
only out of core (bench.build_scaling): the in-memory figures do not fit at those sizes."""
IN_MEMORY_SIZES = ("small", "medium", "large")

_CHUNK_INDICES = 2_000


def baseline_rule_count(n: int) -> int:
    """How many rules `generate_kb(n)` writes (type declarations not counted)."""
    return (n // 4) * RULES_PER_INDEX


def _baseline_chunks(n: int) -> Iterator[str]:
    yield "".join(decl + "\n" for decl in TYPE_DECLARATIONS)
    count = n // 4
    for first in range(0, count, _CHUNK_INDICES):
        last = min(first + _CHUNK_INDICES, count)
        yield "".join(_BLOCK.format(i=i) for i in range(first, last))


def generate_kb(n: int) -> str:
    """The baseline KB for size n as one string (use `write_kb` for the large sizes)."""
    return "".join(_baseline_chunks(n))


def write_kb(n: int, path: str | Path) -> int:
    """Stream the baseline KB for size n to `path`; returns the number of bytes written."""
    return _write_chunks(_baseline_chunks(n), path)


def _fact_chunks(n: int, seed: int) -> Iterator[str]:
    nodes = max(1, n // 10)
    rng = np.random.default_rng(seed)
    yield from _edge_chunks(rng.integers(0, nodes, size=(n, 2)))


POWER_LAW_EXPONENT = 0.5
"""Node k (from 0) is an edge's end with weight (k + 1) ** -POWER_LAW_EXPONENT: degrees then
follow a power law of exponent 1 + 1 / POWER_LAW_EXPONENT (3), the top node in about 0.3% of
the edges."""


def powerlaw_edges(n: int, seed: int = 0) -> np.ndarray:
    """n (source, target) pairs over n // 10 nodes, each end drawn with the weights above."""
    nodes = max(1, n // 10)
    weights = np.arange(1, nodes + 1, dtype=np.float64) ** -POWER_LAW_EXPONENT
    cumulative = np.cumsum(weights)
    rng = np.random.default_rng(seed)
    draws = rng.random((n, 2)) * cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, draws, side="right"), nodes - 1)


def _edge_chunks(ends: np.ndarray) -> Iterator[str]:
    for first in range(0, len(ends), 50_000):
        block = ends[first : first + 50_000].tolist()
        yield "".join(f"(edge n_{i} n_{j})\n" for i, j in block)


def write_powerlaw_fact_kb(n: int, path: str | Path, seed: int = 0) -> int:
    """Stream the power-law fact KB to `path`; returns the number of bytes written."""
    return _write_chunks(_edge_chunks(powerlaw_edges(n, seed)), path)


def generate_fact_kb(n: int, seed: int = 0) -> str:
    """The fact KB: n facts `(edge n_i n_j)`, i and j drawn from [0, n // 10) by a seeded RNG."""
    return "".join(_fact_chunks(n, seed))


def write_fact_kb(n: int, path: str | Path, seed: int = 0) -> int:
    """Stream the fact KB to `path`; returns the number of bytes written."""
    return _write_chunks(_fact_chunks(n, seed), path)


def _write_chunks(chunks: Iterator[str], path: str | Path) -> int:
    written = 0
    with open(path, "wb") as f:
        for chunk in chunks:
            raw = chunk.encode("utf-8")
            f.write(raw)
            written += len(raw)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m metta_numba.bench.kbgen {baseline|facts} N OUT.metta [--seed S]`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m metta_numba.bench.kbgen",
        description="Write a benchmark KB: the baseline rule KB (4*N rules) or the fact KB (N edges).",
    )
    parser.add_argument("kind", choices=("baseline", "facts", "powerlaw"))
    parser.add_argument("n", type=int, help="baseline: n of the size label (4n rules); facts: fact count")
    parser.add_argument("out", help="the .metta file to write")
    parser.add_argument("--seed", type=int, default=0, help="RNG seed of the fact KB")
    args = parser.parse_args(argv)
    if args.kind == "baseline":
        written = write_kb(args.n, args.out)
    elif args.kind == "powerlaw":
        written = write_powerlaw_fact_kb(args.n, args.out, args.seed)
    else:
        written = write_fact_kb(args.n, args.out, args.seed)
    print(f"wrote {args.out}: {written:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
