"""Trie benchmarks on the baseline KB (BENCHMARKS.md section 1): build time, array bytes with
and without merkleizing, warm exact lookup and one-variable match.

    python -m metta_numba.bench.trie_bench [--sizes small,medium,large] [--json OUT]

The paths come from `bench.kbgen` text through the bulk reader, as a KB build reads them.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np

from metta_numba.bench.kbgen import SIZES, generate_kb
from metta_numba.codec import TermStore, encode
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_source
from metta_numba.trie import Trie


def kb_batch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, TermStore]:
    """(data, offsets, names, terms) of the baseline KB of size n."""
    batch = encode_source(generate_kb(n).encode("utf-8"))
    return batch.data, batch.offsets, batch.names, batch.terms


def median_us(call, keys, repeats: int = 50) -> float:
    """Median over keys of the mean time of `repeats` warm calls, in microseconds."""
    per_key = []
    for key in keys:
        call(key)
        start = time.perf_counter_ns()
        for _ in range(repeats):
            call(key)
        per_key.append((time.perf_counter_ns() - start) / repeats / 1000)
    return statistics.median(per_key)


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def measure(label: str, n: int, build_repeats: int) -> dict:
    data, offsets, names, terms = kb_batch(n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    build_times = []
    for _ in range(build_repeats):
        trie, seconds = timed(lambda: Trie.build(data, offsets, names=names))
        build_times.append(seconds)
    dag, merkle_seconds = timed(trie.merkleize)
    rng = np.random.default_rng(0)
    mid = n // 8
    ranks = rng.choice(len(trie), size=200, replace=False)
    keys = [trie.path(int(r)) for r in ranks]
    atoms = [trie.atom(int(r), terms) for r in ranks[:50]]
    indices = rng.integers(0, max(1, n // 4), size=100)
    one_var = [encode(parse_atom(f"(= (length{i} ()) $r)"), terms)[0] for i in indices]
    one_var_atom = parse_atom(f"(= (length{mid} ()) $r)")
    head_var = parse_atom("(= ($f zero $x) $x)")
    result = {
        "size": label,
        "n": n,
        "atoms": len(offsets) - 1,
        "path_bytes": int(offsets[-1]),
        "distinct_paths": len(trie),
        "build_s_median": statistics.median(build_times),
        "build_runs": build_repeats,
        "build_peak_rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "tree_nodes": trie.n_nodes,
        "tree_bytes": trie.nbytes,
        "tree_array_bytes": {name: int(a.nbytes) for name, a in trie.arrays.items()},
        "merkleize_s": merkle_seconds,
        "dag_nodes": dag.n_nodes,
        "dag_bytes": dag.nbytes,
        "dag_array_bytes": {name: int(a.nbytes) for name, a in dag.arrays.items()},
    }
    for kind, t in (("tree", trie), ("dag", dag)):
        result[f"{kind}_lookup_path_us"] = median_us(t.count, keys)
        result[f"{kind}_lookup_atom_us"] = median_us(lambda a, t=t: t.count(a, terms), atoms)
        result[f"{kind}_match_one_var_us"] = median_us(t.match, one_var)
        match_atoms = lambda a, t=t: t.match_atoms(a, terms)  # noqa: E731
        result[f"{kind}_match_atoms_one_var_us"] = median_us(match_atoms, [one_var_atom], 200)
        found, seconds = timed(lambda t=t: t.match(head_var, terms))
        result[f"{kind}_variable_head_candidates"] = len(found)
        result[f"{kind}_variable_head_ms"] = seconds * 1000
    merged, merge_seconds = timed(lambda: trie.merge(trie))
    result["merge_self_s"] = merge_seconds
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del merged
    return result


def print_table(results: list[dict]) -> None:
    rows = [
        ("atoms", "atoms", "{:,}"),
        ("path bytes", "path_bytes", "{:,}"),
        ("build (s, median)", "build_s_median", "{:.3f}"),
        ("build peak RSS growth (MB)", "build_peak_rss_growth_mb", "{:.0f}"),
        ("tree nodes", "tree_nodes", "{:,}"),
        ("tree arrays (MB)", "tree_bytes", lambda v: f"{v / 1e6:.1f}"),
        ("merkleize (s)", "merkleize_s", "{:.3f}"),
        ("DAG nodes", "dag_nodes", "{:,}"),
        ("DAG arrays (MB)", "dag_bytes", lambda v: f"{v / 1e6:.1f}"),
        ("lookup, path bytes (us)", "tree_lookup_path_us", "{:.2f}"),
        ("lookup, atom (us)", "tree_lookup_atom_us", "{:.2f}"),
        ("lookup on DAG, path (us)", "dag_lookup_path_us", "{:.2f}"),
        ("one-var match, kernel (us)", "tree_match_one_var_us", "{:.2f}"),
        ("one-var match on DAG (us)", "dag_match_one_var_us", "{:.2f}"),
        ("one-var match_atoms (us)", "tree_match_atoms_one_var_us", "{:.2f}"),
        ("variable head: candidates", "tree_variable_head_candidates", "{:,}"),
        ("variable head (ms)", "tree_variable_head_ms", "{:.1f}"),
        ("merge with itself (s)", "merge_self_s", "{:.3f}"),
        ("process peak RSS (MB)", "peak_rss_mb", "{:.0f}"),
    ]
    print("| metric | " + " | ".join(r["size"] for r in results) + " |")
    print("|---" * (len(results) + 1) + "|")
    for title, key, fmt in rows:
        cells = [fmt(r[key]) if callable(fmt) else fmt.format(r[key]) for r in results]
        print(f"| {title} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    Trie.build(*kb_batch(40)[:2])  # load the kernels before timing
    results = []
    for label in args.sizes.split(","):
        results.append(measure(label, SIZES[label], build_repeats=1 if label == "large" else 3))
        print(f"measured {label}", file=sys.stderr)
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
