"""The fact-KB figures (BENCHMARKS.md section 2): `(edge n_i n_j)` facts, forward and reverse
lookups and a two-hop join, through the Python API (PersistentKB.query) and through the
interpreter over a SnapshotSpace, with hyperon on the same KB where it fits.

The first query on each argument position is reported on its own: an engine that builds an
index on first use pays for it there.
"""

from __future__ import annotations

import time
from pathlib import Path

from metta_numba.bench.kbgen import write_fact_kb
from metta_numba.bench.peers import run_hyperon
from metta_numba.bench.suite_common import Options, failed, stats_json, timed_samples
from metta_numba.interp.runner import MeTTa
from metta_numba.space import SnapshotSpace
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_file

FACT_QUERIES = {
    "forward": "!(match &self (edge n_5 $y) $y)",
    "reverse": "!(match &self (edge $x n_5) $x)",
    "two-hop": "!(match &self (, (edge n_5 $y) (edge $y $z)) $z)",
}
API_PATTERNS = {"forward": "(edge n_5 $y)", "reverse": "(edge $x n_5)"}
HYPERON_FACT_LIMIT = 100_000
"""Largest fact KB loaded into hyperon in a bench run (1M takes it about 10 s and 1.3 GB)."""


def fact_source(count: int, workdir: Path) -> Path:
    path = (Path("/tmp") if count >= 10_000 else workdir) / f"facts_{count}.metta"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_fact_kb(count, partial)
        partial.replace(path)
    return path


def bench_facts_size(count: int, opts: Options) -> dict:
    source = fact_source(count, opts.workdir)
    kb_path = opts.workdir / f"facts_{count}.kb"
    start = time.perf_counter()
    batch = encode_file(source)
    build_snapshot(batch, batch.terms, kb_path, merkleize=False, overwrite=True)
    result: dict = {"facts": count, "source_bytes": source.stat().st_size}
    result["build_ms"] = stats_json([(time.perf_counter() - start) * 1e3], "ms")
    with PersistentKB.open(kb_path, readonly=True) as kb:
        for name, text in API_PATTERNS.items():
            pattern = parse_atom(text)
            start = time.perf_counter()
            answers = kb.query(pattern)
            result[f"api_{name}_first_us"] = (time.perf_counter() - start) * 1e6
            result[f"api_{name}_answers"] = len(answers)
            result[f"api_{name}_us"] = timed_samples(lambda p=pattern: kb.query(p), opts.repeat, "us", inner=100)
        runner = MeTTa(space=SnapshotSpace(kb))
        for name, text in FACT_QUERIES.items():
            start = time.perf_counter()
            results = runner.run(text)
            result[f"interp_{name}_first_us"] = (time.perf_counter() - start) * 1e6
            result[f"interp_{name}_answers"] = len(results[0])
            result[f"interp_{name}_us"] = timed_samples(lambda t=text: runner.run(t), opts.repeat, "us", inner=20)
    result["index"] = index_figures(count, opts)
    result["hyperon"] = hyperon_facts(source, count, opts)
    return result


def index_figures(count: int, opts: Options) -> dict:
    """bench.facts_bench's figures (argument index size and build, warm queries as the median
    over 16 nodes, cold first queries, reverse lookup without the index), when it is present."""
    try:
        from metta_numba.bench.facts_bench import measure_facts
    except ImportError as error:
        return failed(f"not run: bench.facts_bench unavailable ({error})")
    try:
        figures = measure_facts(count, opts.workdir, max(5, opts.repeat * 4))
    except Exception as error:  # a failure there shows in the table; the run goes on
        return failed(f"{type(error).__name__}: {str(error)[:200]}")
    return {key: value for key, value in figures.items() if key not in ("index_positions", "two-hop_plans")}


def hyperon_facts(source: Path, count: int, opts: Options) -> dict:
    if not opts.hyperon_python:
        return failed("not run: hyperon not importable")
    if count > HYPERON_FACT_LIMIT:
        return failed("not run: beyond hyperon's size limit for one bench run")
    spec = {"kb_file": str(source), "queries": list(FACT_QUERIES.values()), "repeat": min(opts.repeat, 5)}
    out = run_hyperon(opts.hyperon_python, spec, timeout_s=600)
    if "failed" in out:
        return out
    return {
        "load_ms": stats_json([out["load_ms"]], "ms"),
        "queries": {
            name: {"us": stats_json([ms * 1e3 for ms in out["queries"][text]["ms"]], "us"),
                   "answers": len(out["queries"][text]["results"][0])}
            for name, text in FACT_QUERIES.items()
        },
    }


def bench_facts(opts: Options) -> dict:
    out = {}
    for count in opts.fact_sizes:
        opts.log(f"[facts {count:,}]")
        out[str(count)] = bench_facts_size(count, opts)
    return out
