"""Batched lookups and streamed answers (issue 15, the `query` tool).

- Ground lookups: patterns already in memory as MeTTa text (ground atoms of the KB's own
  source, sampled), parsing included, printing excluded. Per call: `parse_atom` then
  `PersistentKB.query` for each text. Batched: one `PersistentKB.query_many` over all texts
  (the bulk reader, then every lookup in one kernel call); and the same with every answer read
  back as (atom, bindings) pairs. Goal: 500K lookups per second on one core.
- `--limit`: a KB of 1M facts `(p n_i)` and 10 facts `(q n_i)`. The first 10 answers of
  `(p $x)` (1M answers) against all answers of `(q $x)` (10 answers), streamed
  (space.query_answers), in process and as whole `metta-numba query` processes; beside them
  `--count` of `(p $x)`.

Run alone on KBs of your own:

    python -m metta_numba.bench.suite_query --kb /tmp/kb/medium.kb /tmp/kb/medium.metta \\
        --kb /tmp/kb/facts1m.kb /tmp/kb/facts1m.metta --limit-kb /tmp/query/limit.kb
"""

from __future__ import annotations

import argparse
import json
import random
import time
from itertools import islice
from pathlib import Path

from metta_numba.bench.report import Table
from metta_numba.bench.suite_common import (
    Options,
    failed,
    is_failed,
    median_of,
    repeated_processes,
    run_cli,
    stats_json,
    timed_samples,
)
from metta_numba.bench.suite_report import cell

LOOKUP_TARGET_PER_S = 500_000
BATCH = 200_000
PER_CALL = 20_000
LIMIT_FACTS = 1_000_000


def ground_lines(source: Path, count: int, seed: int = 15) -> list[str]:
    """`count` ground atoms of a source file (one atom per line, no variable, no comment), a
    random sample (with repeats when the file holds fewer)."""
    with open(source, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.startswith("(") and "$" not in line and ";" not in line]
    if not lines:
        raise ValueError(f"{source}: no ground atom on a line of its own")
    rng = random.Random(seed)
    return [rng.choice(lines) for _ in range(count)]


def lookup_figures(kb_path: Path, source: Path, repeat: int, batch: int = BATCH, per_call: int = PER_CALL) -> dict:
    from metta_numba.store import PersistentKB
    from metta_numba.syntax.parser import parse_atom

    texts = ground_lines(source, batch)
    few = texts[:per_call]
    with PersistentKB.open(kb_path, readonly=True) as kb:
        kb.query_many(texts[:100])  # kernels loaded, first pages touched
        for text in few[:100]:
            kb.query(parse_atom(text))

        def one_by_one() -> None:
            for text in few:
                kb.query(parse_atom(text))

        def batched() -> None:
            kb.query_many(texts)

        def batched_read() -> None:
            found = kb.query_many(texts)
            for i in range(len(found)):
                found[i]

        hits = int((kb.query_many(texts).counts() > 0).sum())
        per_call_s = timed_samples(one_by_one, repeat, "s")
        batched_s = timed_samples(batched, repeat, "s")
        read_s = timed_samples(batched_read, repeat, "s")
    return {
        "kb": str(kb_path),
        "patterns": batch,
        "hits": hits,
        "per_call_per_s": stats_json([per_call / s for s in per_call_s["samples"]], "/s"),
        "batched_per_s": stats_json([batch / s for s in batched_s["samples"]], "/s"),
        "batched_read_per_s": stats_json([batch / s for s in read_s["samples"]], "/s"),
    }


def limit_kb(path: Path, facts: int = LIMIT_FACTS) -> Path:
    """A KB of `facts` facts (p n_i) and 10 facts (q n_i), built once."""
    from metta_numba.store import build_snapshot
    from metta_numba.syntax.bulk import encode_source

    if (path / "CURRENT").exists():
        return path
    text = "".join(f"(p n_{i})\n" for i in range(facts)) + "".join(f"(q n_{i})\n" for i in range(10))
    batch = encode_source(text.encode())
    build_snapshot(batch, batch.terms, path, merkleize=False, overwrite=True)
    return path


def limit_figures(kb_path: Path, repeat: int) -> dict:
    from metta_numba.space.query_answers import answers, count_answers
    from metta_numba.store import PersistentKB
    from metta_numba.syntax.parser import parse_atom

    many, ten = parse_atom("(p $x)"), parse_atom("(q $x)")
    out: dict = {"kb": str(kb_path)}
    with PersistentKB.open(kb_path, readonly=True) as kb:
        out["answers"] = count_answers(kb, many)
        list(islice(answers(kb, many), 10))
        out["limit10_of_many_us"] = timed_samples(lambda: list(islice(answers(kb, many), 10)), repeat, "us", inner=50)
        out["all_of_ten_us"] = timed_samples(lambda: list(answers(kb, ten)), repeat, "us", inner=50)
        out["count_of_many_us"] = timed_samples(lambda: count_answers(kb, many), repeat, "us", inner=5)
    path = str(kb_path)
    out["process_limit10"] = repeated_processes(lambda: run_cli("query", path, "(p $x)", "--limit", "10"), repeat)
    out["process_ten"] = repeated_processes(lambda: run_cli("query", path, "(q $x)"), repeat)
    out["process_count"] = repeated_processes(lambda: run_cli("query", path, "(p $x)", "--count"), repeat)
    return out


def bench_query(opts: Options) -> dict:
    """The suite's figures: lookups on the largest fact KB suite_facts built, `--limit` on a KB
    of its own (LIMIT_FACTS facts, 2,000 with --smoke)."""
    from metta_numba.bench.suite_facts import fact_source

    results: dict = {"lookups": {}}
    count = max(opts.fact_sizes) if opts.fact_sizes else None
    kb_path = opts.workdir / f"facts_{count}.kb"
    if count and (kb_path / "CURRENT").exists():
        opts.log(f"query: batched lookups on facts_{count}")
        batch = 2_000 if opts.smoke else BATCH
        try:
            figures = lookup_figures(
                kb_path, fact_source(count, opts.workdir), opts.repeat, batch, min(batch, PER_CALL)
            )
        except Exception as error:  # a failure shows in the table; the run goes on
            figures = failed(f"{type(error).__name__}: {str(error)[:200]}")
        results["lookups"][f"facts {count:,}"] = figures
    opts.log("query: --limit on a pattern with many answers")
    try:
        facts = 2_000 if opts.smoke else LIMIT_FACTS
        results["limit"] = limit_figures(limit_kb(opts.workdir / f"limit_{facts}.kb", facts), opts.repeat)
    except Exception as error:
        results["limit"] = failed(f"{type(error).__name__}: {str(error)[:200]}")
    return results


def _rate(figure: object) -> str:
    value = median_of(figure)
    return "-" if value is None else f"{value / 1e3:,.0f}K/s"


def query_tables(results: dict) -> list[Table]:
    lookups = Table(
        "Ground lookups: one at a time and batched (query_many)",
        ["KB", "patterns (hits)", "per call", "batched", "batched, answers read", "goal"],
        note="Patterns in memory as text, parsing included, printing excluded; one core.",
    )
    for label, figures in results.get("lookups", {}).items():
        if is_failed(figures):
            lookups.add(label, figures["failed"], "-", "-", "-", "-")
            continue
        batched = median_of(figures["batched_per_s"]) or 0
        lookups.add(
            label,
            f"{figures['patterns']:,} ({figures['hits']:,})",
            _rate(figures["per_call_per_s"]),
            _rate(figures["batched_per_s"]),
            _rate(figures["batched_read_per_s"]),
            f"500K/s: {'met' if batched >= LOOKUP_TARGET_PER_S else 'not met'}",
        )
    limit = Table(
        "`query --limit 10` on a pattern with many answers",
        ["what", "in process", "whole process"],
        note="(p $x) has the many answers, (q $x) ten; whole process: `metta-numba query` with kernels cached.",
    )
    figures = results.get("limit")
    if figures is None or is_failed(figures):
        limit.add("-", figures["failed"] if figures else "not run", "-")
    else:
        rows = (
            (f"first 10 of {figures['answers']:,} answers", "limit10_of_many_us", "process_limit10"),
            ("all 10 answers of (q $x)", "all_of_ten_us", "process_ten"),
            (f"--count of {figures['answers']:,} answers", "count_of_many_us", "process_count"),
        )
        for what, in_process, whole in rows:
            limit.add(what, cell(figures[in_process]), cell(figures[whole]["wall_s"]))
    return [lookups, limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m metta_numba.bench.suite_query", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--kb", nargs=2, action="append", default=[], metavar=("KB", "SOURCE"), help="a KB and its source"
    )
    parser.add_argument("--limit-kb", type=Path, help="where the --limit KB is (built there when absent)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=BATCH)
    args = parser.parse_args(argv)
    results: dict = {"lookups": {}}
    for kb, source in args.kb:
        results["lookups"][Path(kb).name] = lookup_figures(Path(kb), Path(source), args.repeat, args.batch)
    if args.limit_kb:
        started = time.perf_counter()
        limit_kb(args.limit_kb)
        results["limit_kb_build_s"] = time.perf_counter() - started
        results["limit"] = limit_figures(args.limit_kb, args.repeat)
    print(json.dumps(results, indent=1))
    for table in query_tables(results):
        print(table.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
