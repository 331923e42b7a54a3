"""The xlarge baseline KB (10M items, 40M rules, about 1.4 GB of text) end to end: built out of
core by `snapshot build --memory-budget 4G` in a child process (time and peak RSS), then opened
with one query in fresh processes, alternately with the small KB built the same way, so that
start-up at both sizes comes from the same minutes of one run. Sources are /tmp/kb_<size>.metta,
shared with bench.build_scaling (written on first use, about 10 s for xlarge)."""

from __future__ import annotations

import shutil

from metta_numba.bench.build_scaling import directory_bytes, source_for
from metta_numba.bench.kbgen import SIZES
from metta_numba.bench.suite_baseline import query_file
from metta_numba.bench.suite_common import (
    Options,
    baseline_queries,
    is_failed,
    process_stats,
    run_cli,
)

BUDGET = "4G"
STARTUP_RUNS = 5
LABELS = ("small", "xlarge")


def bench_xlarge(opts: Options) -> dict:
    """{"budget", "small": figures, "xlarge": figures}: each size's source bytes, KB bytes,
    build (process figures of `snapshot build`) and start-up with one query (Stats)."""
    result: dict = {"budget": BUDGET}
    kbs, queries = {}, {}
    for label in LABELS:
        source = source_for(label)
        kb = opts.workdir / f"{label}-out-of-core.kb"
        shutil.rmtree(kb, ignore_errors=True)
        opts.log(f"xlarge suite: building {label} with --memory-budget {BUDGET}")
        build = run_cli("snapshot", "build", str(source), "-o", str(kb), "--memory-budget", BUDGET, timeout_s=1800)
        if is_failed(build):
            result[label] = {"build": build}
            return result
        result[label] = {"source_bytes": source.stat().st_size, "kb_bytes": directory_bytes(kb), "build": build}
        kbs[label] = kb
        queries[label] = query_file(
            opts.workdir / f"q1_{label}_out_of_core.metta", [baseline_queries(SIZES[label])["rule call"]]
        )
    runs: dict[str, list[dict]] = {label: [] for label in LABELS}
    for _ in range(STARTUP_RUNS):
        for label in LABELS:
            figures = run_cli("--load-snapshot", str(kbs[label]), str(queries[label]))
            if is_failed(figures):
                result[label]["startup_snapshot_one"] = figures
                return result
            runs[label].append(figures)
    for label in LABELS:
        result[label]["startup_snapshot_one"] = process_stats(runs[label])
    return result
