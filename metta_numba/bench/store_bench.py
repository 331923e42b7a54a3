"""Store benchmarks on the baseline KB (BENCHMARKS.md section 1): snapshot open time, the first
query after open with the snapshot's pages dropped from the page cache (cold) and repeated
(warm), and file sizes against the source text.

    python -m metta_numba.bench.store_bench [--sizes small,medium,large] [--json OUT]

`bench_store(sizes)` returns the figures as a dict for the bench command to tabulate.
Reports figures only; nothing here fails on a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.kbgen import SIZES, write_kb
from metta_numba.bench.measure import drop_from_page_cache
from metta_numba.store import PersistentKB, build_snapshot, describe_sources
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_file


def build_baseline_kb(n: int, workdir: Path, merkleize: bool = False) -> dict:
    """Generate the baseline source of size n and build its snapshot. Returns paths and figures."""
    source = workdir / f"baseline-{n}.metta"
    if not source.exists():
        write_kb(n, source)
    kb_path = workdir / f"baseline-{n}{'-merkle' if merkleize else ''}.kb"
    started = time.perf_counter()
    batch = encode_file(source)
    parsed = time.perf_counter()
    out = build_snapshot(
        batch, batch.terms, kb_path, merkleize=merkleize, source_files=describe_sources([source]), overwrite=True
    )
    return {
        "source": source,
        "kb": kb_path,
        "source_bytes": source.stat().st_size,
        "atoms": out["counts"]["atoms"],
        "parse_s": parsed - started,
        "build_s": time.perf_counter() - started,
        "files": out["files"],
    }


def _timed_us(call) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1000


def open_times_us(kb_path: Path, repeats: int) -> list[float]:
    """Warm in-process open times: read-only open to ready-to-query (close not timed)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        kb = PersistentKB.open(kb_path, readonly=True)
        times.append((time.perf_counter_ns() - start) / 1000)
        kb.close()
    return times


def queries_for(n: int) -> dict[str, str]:
    middle = (n // 4) // 2
    return {
        "rule head": f"(= (add{middle} zero $x) $r)",
        "rule body": f"(= (or{middle} $a $b) False)",
        "two-sided": f"(= (match{middle} 3 3) $r)",
    }


def cold_and_warm(kb_path: Path, pattern_text: str, cold_repeats: int = 5, warm_repeats: int = 50) -> dict:
    """Open and query with the snapshot's pages dropped from the page cache (median of
    `cold_repeats` tries), then the same query repeated warm."""
    pattern = parse_atom(pattern_text)
    cold_open, cold_query = [], []
    for _ in range(cold_repeats):
        drop_from_page_cache([kb_path])
        start = time.perf_counter_ns()
        kb = PersistentKB.open(kb_path, readonly=True)
        opened = time.perf_counter_ns()
        results = kb.query(pattern)
        answered = time.perf_counter_ns()
        cold_open.append((opened - start) / 1000)
        cold_query.append((answered - opened) / 1000)
        kb.close()
    with PersistentKB.open(kb_path, readonly=True) as kb:
        warm = [_timed_us(lambda: kb.query(pattern)) for _ in range(warm_repeats)]
    return {
        "answers": len(results),
        "cold_open_us": statistics.median(cold_open),
        "cold_first_query_us": statistics.median(cold_query),
        "warm_query_us": statistics.median(warm),
    }


def bench_size(label: str, n: int, workdir: Path, open_repeats: int = 200, merkleize_sizes: bool = True) -> dict:
    built = build_baseline_kb(n, workdir)
    kb_path = built["kb"]
    with PersistentKB.open(kb_path, readonly=True) as kb:
        generation = kb.snapshot_generation()
        index_bytes = generation.index.nbytes if generation.index is not None else 0
    opens = sorted(open_times_us(kb_path, open_repeats))
    snapshot_bytes = sum(built["files"].values())
    row = {
        "label": label,
        "n": n,
        "atoms": built["atoms"],
        "source_bytes": built["source_bytes"],
        "build_s": built["build_s"],
        "act_bytes": built["files"][next(k for k in built["files"] if k.endswith(".act"))],
        "h5_bytes": built["files"][next(k for k in built["files"] if k.endswith(".h5"))],
        "snapshot_bytes": snapshot_bytes,
        "argindex_bytes": index_bytes,
        "snapshot_vs_source": snapshot_bytes / built["source_bytes"],
        "open_us_median": statistics.median(opens),
        "open_us_p90": opens[int(0.9 * (len(opens) - 1))],
        "queries": {name: cold_and_warm(kb_path, text) for name, text in queries_for(n).items()},
    }
    if merkleize_sizes:
        merkle = build_baseline_kb(n, workdir, merkleize=True)
        row["merkleized_snapshot_bytes"] = sum(merkle["files"].values())
        row["merkleized_vs_source"] = row["merkleized_snapshot_bytes"] / built["source_bytes"]
    return row


def bench_store(sizes: list[str] | None = None, workdir: str | Path | None = None, open_repeats: int = 200) -> dict:
    """Figures for each named baseline size; `workdir` keeps the generated sources and KBs."""
    sizes = sizes or ["small", "medium"]
    with tempfile.TemporaryDirectory(prefix="store-bench-") as scratch:
        directory = Path(workdir) if workdir else Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        # Load the query kernels from Numba's cache first, so the cold figures are the snapshot's.
        warm = build_baseline_kb(16, directory)
        with PersistentKB.open(warm["kb"], readonly=True) as kb:
            for text in queries_for(16).values():
                kb.query(parse_atom(text))
        rows = [bench_size(label, SIZES[label], directory, open_repeats) for label in sizes]
    out = {"rows": rows}
    by_label = {row["label"]: row for row in rows}
    if "small" in by_label and len(by_label) > 1:
        largest = rows[-1]
        out["open_ratio_largest_vs_small"] = largest["open_us_median"] / by_label["small"]["open_us_median"]
    return out


def format_table(result: dict) -> str:
    lines = [
        "| size | atoms | source | snapshot (x source) | of which arg. index | merkleized | open µs (median / p90) "
        "| cold open + first query µs | warm query µs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        head = row["queries"]["rule head"]
        merkle = f"{row['merkleized_vs_source']:.2f}x" if "merkleized_vs_source" in row else "-"
        lines.append(
            f"| {row['label']} | {row['atoms']:,} | {row['source_bytes'] / 1e6:.1f} MB "
            f"| {row['snapshot_bytes'] / 1e6:.1f} MB ({row['snapshot_vs_source']:.2f}x) "
            f"| {row['argindex_bytes'] / 1e6:.1f} MB | {merkle} "
            f"| {row['open_us_median']:.0f} / {row['open_us_p90']:.0f} "
            f"| {head['cold_open_us']:.0f} + {head['cold_first_query_us']:.0f} | {head['warm_query_us']:.1f} |"
        )
    if "open_ratio_largest_vs_small" in result:
        lines.append(f"\nopen time, largest / small: {result['open_ratio_largest_vs_small']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--workdir", help="keep generated sources and KBs here")
    parser.add_argument("--open-repeats", type=int, default=200)
    args = parser.parse_args(argv)
    result = bench_store(args.sizes.split(","), args.workdir, args.open_repeats)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
