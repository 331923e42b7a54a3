"""Benchmarks of sharded KBs and Dask batches (DESIGN.md section 8), on the baseline KB.

    python -m metta_numba.bench.suite_dist [--sizes small,medium] [--repeat N] [--queries N]

Per size: the unsharded build, the 2-shard build in this process and on a LocalCluster of 1 and
2 workers (cluster start-up not counted), `batch` throughput on 1 and 2 workers over the plain
and the 2-shard KB (queries per second, the workers already warm), and the worker start-up cost
(a LocalCluster of N workers up, and the first chunk on every worker, which imports the
library and opens the KB). The large size is never built here: it is too big for a shared
machine's benchmark run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.kbgen import SIZES, write_kb
from metta_numba.bench.report import Table
from metta_numba.bench.suite_common import failed, is_failed, stats_json

DIST_SIZES = ("small", "medium")
SHARDS = 2
DEFAULT_QUERIES = {"smoke": 200, "small": 2000, "medium": 4000, "large": 100_000}


def batch_queries(n: int, count: int, seed: int = 0) -> list[str]:
    """Rule calls and rule-head matches on random indices of the baseline KB of size n (half
    of them ground-key matches, the ones a sharded batch routes)."""
    rng = random.Random(seed)
    top = max(1, n // 4)
    out = []
    for _ in range(count):
        i = rng.randrange(top)
        if rng.random() < 0.5:
            out.append(f"(match &self (= (and{i} $a $b) $r) ($a $b $r))")
        else:
            out.append(f"(add{i} zero zero)")
    return out


def _build_plain(source: Path, target: Path) -> float:
    from metta_numba.codec.terms import TermStore
    from metta_numba.store import build_snapshot
    from metta_numba.syntax.bulk import encode_source

    start = time.perf_counter()
    terms = TermStore()
    build_snapshot(encode_source(source.read_bytes(), str(source), terms), terms, target, overwrite=True)
    return time.perf_counter() - start


def _build_sharded(source: Path, target: Path, client) -> float:
    import shutil

    from metta_numba.dist.shard_build import BuildOptions, build_sharded

    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    build_sharded([str(source)], target, SHARDS, BuildOptions(), client=client)
    return time.perf_counter() - start


def _batch_rate(client, kb: Path, queries: list[str]) -> float:
    from metta_numba.dist.batch import run_batch

    lines: list[str] = []
    start = time.perf_counter()
    run_batch(client, str(kb), queries, lines.append)
    return len(lines) / (time.perf_counter() - start)


def _startup(workers: int, kb: Path, query: str) -> dict:
    """Seconds to a running LocalCluster of `workers`, then to the first chunk done on each."""
    from dask.distributed import Client, LocalCluster

    from metta_numba.dist.batch import run_chunk

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    client.wait_for_workers(workers)
    up = time.perf_counter()
    try:
        addresses = sorted(client.scheduler_info()["workers"])
        futures = [client.submit(run_chunk, str(kb), [query], workers=[a], pure=False) for a in addresses]
        client.gather(futures)
        first = time.perf_counter()
        futures = [client.submit(run_chunk, str(kb), [query], workers=[a], pure=False) for a in addresses]
        client.gather(futures)
        second = time.perf_counter()
    finally:
        client.close()
        cluster.close()
    return {"cluster_up_s": up - start, "first_chunk_s": first - up, "warm_chunk_s": second - first}


def bench_size(label: str, n: int, workdir: Path, repeat: int, query_count: int, log) -> dict:
    from dask.distributed import Client, LocalCluster

    source = workdir / f"dist-{label}.metta"
    write_kb(n, source)
    plain, sharded = workdir / f"dist-{label}-plain", workdir / f"dist-{label}-sharded"
    result: dict = {"n": n, "source_bytes": source.stat().st_size, "shards": SHARDS}
    log(f"dist {label}: builds")
    result["build_plain_s"] = stats_json([_build_plain(source, plain) for _ in range(repeat)], "s")
    result["build_sharded_local_s"] = stats_json([_build_sharded(source, sharded, None) for _ in range(repeat)], "s")
    queries = batch_queries(n, query_count)
    warm = queries[:50]
    for workers in (1, 2):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        try:
            with Client(cluster) as client:
                client.wait_for_workers(workers)
                log(f"dist {label}: {workers} worker(s)")
                _build_sharded(source, sharded, client)  # workers load the kernels once
                samples = [_build_sharded(source, sharded, client) for _ in range(repeat)]
                result[f"build_sharded_{workers}w_s"] = stats_json(samples, "s")
                for name, kb in (("plain", plain), ("sharded", sharded)):
                    _batch_rate(client, kb, warm)  # workers open the KB and warm their caches
                    rates = [_batch_rate(client, kb, queries) for _ in range(repeat)]
                    result[f"batch_{name}_{workers}w_qps"] = stats_json(rates, "q/s")
        finally:
            cluster.close()
    log(f"dist {label}: worker start-up")
    result["startup"] = {f"{w}w": _startup(w, plain, queries[0]) for w in (1, 2)}
    result["queries"] = len(queries)
    return result


def bench_dist(opts) -> dict:
    """The suite's entry: figures per size."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return {"failed": "not run: dask.distributed is not installed (pip install 'metta-numba[dist]')"}
    out: dict = {}
    sizes = opts.sizes if not opts.smoke else ["smoke"]
    for label in sizes:
        n = 400 if label == "smoke" else SIZES[label]
        # Large builds take a minute each and its batch is 100K queries: measured once.
        repeat = 1 if opts.smoke or label == "large" else min(opts.repeat, 3)
        try:
            out[label] = bench_size(
                label, n, opts.workdir, repeat, DEFAULT_QUERIES.get(label, 2000), opts.log
            )
        except Exception as error:  # a figure that could not be taken is reported as such
            out[label] = failed(f"{type(error).__name__}: {error}")
    return out


def _median(figures: dict, key: str) -> str:
    figure = figures.get(key)
    if not isinstance(figure, dict) or "median" not in figure:
        return "n/a"
    unit = figure["unit"]
    value = figure["median"]
    return f"{value:,.0f} {unit}" if unit == "q/s" else f"{value:.2f} {unit}"


def dist_table(dist: dict) -> Table:
    table = Table(
        f"Sharded KBs and Dask batches ({SHARDS} shards; LocalCluster, 1 thread per worker)",
        ["size", "what", "1 worker", "2 workers", "in process"],
        note="Build: `snapshot build --shards 2` (partition by byte range, then one task per shard), "
        "cluster start-up not counted. Batch: queries per second, half rule calls, half rule-head "
        "matches with a ground key, each in a fresh session; workers warm. Start-up: LocalCluster up, "
        "then the first chunk on every worker (imports, KB open), against a warm chunk.",
    )
    if is_failed(dist):
        table.add("-", dist["failed"], "-", "-", "-")
        return table
    for label, figures in dist.items():
        if is_failed(figures):
            table.add(label, figures["failed"], "-", "-", "-")
            continue
        table.add(label, "build, unsharded", "-", "-", _median(figures, "build_plain_s"))
        table.add(
            label,
            "build, 2 shards",
            _median(figures, "build_sharded_1w_s"),
            _median(figures, "build_sharded_2w_s"),
            _median(figures, "build_sharded_local_s"),
        )
        for name in ("plain", "sharded"):
            table.add(
                label,
                f"batch of {figures['queries']:,}, {name} KB",
                _median(figures, f"batch_{name}_1w_qps"),
                _median(figures, f"batch_{name}_2w_qps"),
                "-",
            )
        start = figures["startup"]
        for key, title in (("cluster_up_s", "cluster start-up"), ("first_chunk_s", "first chunk per worker")):
            table.add(label, title, f"{start['1w'][key]:.2f} s", f"{start['2w'][key]:.2f} s", "-")
    return table


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(prog="python -m metta_numba.bench.suite_dist", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium", help="small, medium and/or large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from metta_numba.bench.suite_common import Options

    with tempfile.TemporaryDirectory(prefix="metta-dist-bench-") as scratch:
        opts = Options(
            sizes=args.sizes.split(","),
            repeat=args.repeat,
            out=Path(scratch),
            workdir=Path(scratch),
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        figures = bench_dist(opts)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    print(dist_table(figures).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
