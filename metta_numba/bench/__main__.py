"""`python -m metta_numba.bench`: run the benchmark suite and regenerate BASELINE.md.

    python -m metta_numba.bench [--sizes small,medium,large] [--profile] [--peers hyperon]
                                [--repeat N] [--out DIR] [--smoke]

Writes DIR/BASELINE.md, DIR/results/<sizes>.json and DIR/figures/*.png (DIR defaults to the
repository's benchmarks/). `--smoke` runs every measurement once on a tiny KB, to check that
the suite still produces every figure; its times mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.kbgen import IN_MEMORY_SIZES, SIZES
from metta_numba.bench.machine import describe_machine
from metta_numba.bench.peers import find_hyperon_python
from metta_numba.bench.suite_common import Options

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "benchmarks"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m metta_numba.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium", help="baseline KB sizes: small,medium,large")
    parser.add_argument("--facts", help="fact-KB sizes, e.g. 10000,100000 (default: 10K and 100K, plus 1M with large)")
    parser.add_argument("--join-facts", type=int, default=1_000_000,
                        help="edges of the graphs of the join figures (default 1M; --smoke: 2,000)")
    parser.add_argument("--repeat", type=int, default=5, help="repeats per in-process figure (default 5)")
    parser.add_argument("--peers", default="auto",
                        help="'hyperon' (or 'auto': when importable), 'none', or a venv or python with hyperon")
    parser.add_argument("--profile", action="store_true", help="add flame graphs, page faults, perf stat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where BASELINE.md, results/ and figures/ go")
    parser.add_argument("--workdir", type=Path, help="keep generated KBs here (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="every figure once on a tiny KB (for CI)")
    parser.add_argument("--xlarge", action="store_true",
                        help="also build the xlarge KB (1.4 GB of text) out of core and time start-up on it")
    parser.add_argument("--from-json", type=Path, metavar="RESULTS",
                        help="only regenerate BASELINE.md and the figures from a results file")
    args = parser.parse_args(argv)
    for label in args.sizes.split(","):
        if label not in IN_MEMORY_SIZES:
            extra = f" ({label}: python -m metta_numba.bench.build_scaling)" if label in SIZES else ""
            parser.error(f"unknown size {label!r} (choose from {', '.join(IN_MEMORY_SIZES)}){extra}")
    return args


def hyperon_python(spec: str) -> tuple[str | None, str]:
    if spec == "none":
        return None, "hyperon not run (--peers none)"
    python = find_hyperon_python(None if spec in ("auto", "hyperon") else spec)
    if python is None:
        return None, "hyperon not importable here" + ("" if spec == "auto" else f" ({spec})")
    return python, f"hyperon run with {python}"


def source_revision() -> str:
    """The commit the measured code came from, marked when the working tree had changes.
    METTA_NUMBA_REVISION names it for a copy outside git (e.g. from `git archive`)."""
    if os.environ.get("METTA_NUMBA_REVISION"):
        return os.environ["METTA_NUMBA_REVISION"]
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def write_outputs(results: dict, out: Path, command: str) -> Path:
    from metta_numba.bench.suite_report import make_figures, render
    from metta_numba.bench.targets import judge_all

    results["verdicts"] = judge_all(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    (out / "results" / results["results_file"]).write_text(json.dumps(results, indent=1, default=str))
    figures = make_figures(results, out / "figures")
    (out / "BASELINE.md").write_text(render(results, figures, command))
    return out / "BASELINE.md"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        log(f"wrote {write_outputs(results, args.out, results.get('command', 'python -m metta_numba.bench'))}")
        return 0
    # Imported here so that `--help` does not load numba.
    from metta_numba.bench.suite_baseline import bench_baseline, warm_up
    from metta_numba.bench.suite_compiled import bench_compiled
    from metta_numba.bench.suite_dist import bench_dist
    from metta_numba.bench.suite_facts import bench_facts
    from metta_numba.bench.suite_first_run import bench_first_run
    from metta_numba.bench.suite_interp import bench_interp
    from metta_numba.bench.suite_joins import bench_joins
    from metta_numba.bench.suite_profile import bench_profile
    from metta_numba.bench.suite_query import bench_query
    from metta_numba.bench.suite_startup import bench_startup
    from metta_numba.bench.suite_xlarge import bench_xlarge

    sizes = ["smoke"] if args.smoke else args.sizes.split(",")
    if args.facts:
        fact_sizes = [int(x) for x in args.facts.split(",")]
    elif args.smoke:
        fact_sizes = [1000]
    else:
        fact_sizes = [10_000, 100_000] + ([1_000_000] if "large" in sizes else [])
    python, peer_note = hyperon_python(args.peers)
    scratch = Path(tempfile.mkdtemp(prefix="metta-bench-")) if args.workdir is None else args.workdir
    scratch.mkdir(parents=True, exist_ok=True)
    opts = Options(
        sizes=sizes, repeat=1 if args.smoke else args.repeat, out=args.out, workdir=scratch,
        profile=args.profile or args.smoke, hyperon_python=python, smoke=args.smoke,
        fact_sizes=fact_sizes, fib=[10] if args.smoke else [20, 25], log=log,
        join_facts=2_000 if args.smoke else args.join_facts,
    )
    started = time.time()
    results: dict = {
        "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "args": {"sizes": sizes, "facts": fact_sizes, "repeat": opts.repeat, "peers": args.peers,
                 "profile": opts.profile, "smoke": args.smoke},
        "machine": describe_machine(),
        "revision": source_revision(),
        "notes": [
            peer_note,
            "Fact-KB queries are measured through `PersistentKB.query` and through the interpreter "
            "over a SnapshotSpace (bench.suite_facts).",
            "Join figures (bench.suite_joins) are single-threaded on our side; DuckDB uses its default "
            "thread count (recorded in the results).",
            "hyperon runs in a subprocess of the same bench run; a crash or timeout there shows as failed.",
        ],
    }
    try:
        log("warming the kernels")
        warm_up(scratch)
        results["baseline"] = bench_baseline(opts)
        results["startup"] = bench_startup(opts)
        results["first_run"] = bench_first_run(opts)
        results["facts"] = bench_facts(opts)
        results["query"] = bench_query(opts)
        results["joins"] = bench_joins(opts)
        results["interp"] = bench_interp(opts)
        results["compiled"] = bench_compiled(opts)
        results["dist"] = bench_dist(opts)
        if args.xlarge:
            results["xlarge"] = bench_xlarge(opts)
        if opts.profile:
            results["profile"] = bench_profile(opts, results["baseline"])
    finally:
        if args.workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    results["duration_s"] = time.time() - started
    results["results_file"] = ("smoke" if args.smoke else "-".join(sizes)) + ".json"
    command = "python -m metta_numba.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    results["command"] = command.strip()
    write_outputs(results, args.out, results["command"])
    log(f"wrote {args.out / 'BASELINE.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
