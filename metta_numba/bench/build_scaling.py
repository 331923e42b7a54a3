"""Build time and peak memory of `snapshot build` across sizes, with and without a budget.

    python -m metta_numba.bench.build_scaling [--sizes small,medium,large,xlarge]
                                              [--budgets none,1G] [--jobs N] [--json OUT]

Each build runs in a fresh child process (`metta-numba snapshot build`), whose peak resident
set (ru_maxrss of the child alone) and wall time are recorded: the growth with the KB's size
shows whether memory stays flat past the budget. Sources are /tmp/kb_<size>.metta, shared
with the other bench scripts; `none` builds with the default budget (a share of the RAM).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.kbgen import SIZES, write_kb

_CHILD = """
import resource, sys
from metta_numba.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
raise SystemExit(code)
"""


def source_for(label: str) -> Path:
    path = Path("/tmp") / f"kb_{label}.metta"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_kb(SIZES[label], partial)
        partial.replace(path)
    return path


def directory_bytes(kb: Path) -> int:
    """The bytes of the files of a KB directory."""
    return sum(entry.stat().st_size for entry in os.scandir(kb) if entry.is_file())


def measure_build(source: Path, budget: str | None, jobs: int | None, workdir: Path) -> dict:
    """One build in a child process: seconds, peak RSS in bytes, KB bytes, runs."""
    kb = workdir / f"{source.stem}-{budget or 'default'}.kb"
    shutil.rmtree(kb, ignore_errors=True)
    args = ["snapshot", "build", str(source), "-o", str(kb)]
    if budget:
        args += ["--memory-budget", budget]
    if jobs:
        args += ["--jobs", str(jobs)]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"build of {source} failed: {proc.stderr.strip()}")
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    kb_bytes = directory_bytes(kb)
    shutil.rmtree(kb, ignore_errors=True)
    return {
        "source_bytes": source.stat().st_size,
        "budget": budget or "default",
        "seconds": seconds,
        "peak_rss_bytes": peak_kib * 1024,
        "kb_bytes": kb_bytes,
    }


def markdown_table(rows: list[dict]) -> str:
    """The rows as a Markdown table: a line per size, a column per budget (time, peak RSS)."""
    budgets = list(dict.fromkeys(row["budget"] for row in rows))
    sizes = list(dict.fromkeys(row["size"] for row in rows))
    cells = {(row["size"], row["budget"]): row for row in rows}
    lines = [
        "| KB (text) | " + " | ".join(f"budget {budget}" for budget in budgets) + " |",
        "|---" * (len(budgets) + 1) + "|",
    ]
    for size in sizes:
        text = next(row["source_bytes"] for row in rows if row["size"] == size)
        shown = [
            f"{cells[size, b]['seconds']:.1f} s, {cells[size, b]['peak_rss_bytes'] / 2**20:,.0f} MiB"
            if (size, b) in cells
            else ""
            for b in budgets
        ]
        lines.append(f"| {size} ({text / 1e6:,.1f} MB) | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metta_numba.bench.build_scaling", description=__doc__)
    parser.add_argument("--sizes", default="small,medium", help="baseline sizes, from " + ",".join(SIZES))
    parser.add_argument("--budgets", default="none,256M", help="--memory-budget values; none: the default")
    parser.add_argument("--jobs", type=int, default=None, help="--jobs of each build (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    labels = args.sizes.split(",")
    unknown = [label for label in labels if label not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r} (choose from {', '.join(SIZES)})")
    budgets = [None if b == "none" else b for b in args.budgets.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="build-scaling-") as scratch:
        for label in labels:
            source = source_for(label)
            for budget in budgets:
                row = {"size": label, **measure_build(source, budget, args.jobs, Path(scratch))}
                rows.append(row)
                print(
                    f"{label:7s} {row['source_bytes'] / 1e6:8.1f} MB  budget {row['budget']:>7s}  "
                    f"{row['seconds']:7.2f} s  peak RSS {row['peak_rss_bytes'] / 2**20:8.0f} MiB  "
                    f"KB {row['kb_bytes'] / row['source_bytes']:.0%} of the text",
                    flush=True,
                )
    print()
    print(markdown_table(rows), end="")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
