"""Conjunctions over a fact graph: triangles, 4-cycles, 4-cliques and two-hop paths through
`PersistentKB.join` (the worst-case-optimal join of store.join), against DuckDB's SQL
self-joins on the same edges in the same run.

Two graphs of `(edge n_i n_j)` facts: the random one of the fact KB (kbgen.write_fact_kb) and a
power-law one (kbgen.write_powerlaw_fact_kb). Our KB is built and opened, and DuckDB's table
loaded from the same file, before anything is timed. The first join after opening builds the
sorted views it reads, and is reported on its own; the figures after it are warm. Counts are
made without decoding (`join_count`, against `SELECT count(*)`); rows are the binding table of
ids (`join`, one int array per variable, against DuckDB's `SELECT *` fetched as NumPy arrays);
two-hop paths from one node are a binding table of ids, and also decoded to atoms. DuckDB is
optional (`pip install duckdb`, the `bench` extra): without it its cells say so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from metta_numba.bench.kbgen import write_fact_kb, write_powerlaw_fact_kb
from metta_numba.bench.report import Table, ratio
from metta_numba.bench.suite_common import Options, failed, is_failed, median_of, stats_json, timed_samples
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_file

COUNT_QUERIES = {
    "triangles": (
        "(, (edge $a $b) (edge $b $c) (edge $c $a))",
        "SELECT count(*) FROM edge e1 JOIN edge e2 ON e1.dst = e2.src JOIN edge e3 ON e2.dst = e3.src"
        " AND e3.dst = e1.src",
    ),
    "4-cycles": (
        "(, (edge $a $b) (edge $b $c) (edge $c $d) (edge $d $a))",
        "SELECT count(*) FROM edge e1 JOIN edge e2 ON e1.dst = e2.src JOIN edge e3 ON e2.dst = e3.src"
        " JOIN edge e4 ON e3.dst = e4.src AND e4.dst = e1.src",
    ),
    "4-cliques": (
        "(, (edge $a $b) (edge $a $c) (edge $a $d) (edge $b $c) (edge $b $d) (edge $c $d))",
        "SELECT count(*) FROM edge ab JOIN edge ac ON ac.src = ab.src JOIN edge ad ON ad.src = ab.src"
        " JOIN edge bc ON bc.src = ab.dst AND bc.dst = ac.dst JOIN edge bd ON bd.src = ab.dst"
        " AND bd.dst = ad.dst JOIN edge cd ON cd.src = ac.dst AND cd.dst = ad.dst",
    ),
}
TWO_HOP = "(, (edge n_{k} $b) (edge $b $c))"
TWO_HOP_SQL = "SELECT e2.src, e2.dst FROM edge e1 JOIN edge e2 ON e1.dst = e2.src WHERE e1.src = {k}"
GRAPHS = {"random": write_fact_kb, "power-law": write_powerlaw_fact_kb}
THREADS = os.cpu_count() or 1
"""Threads of the second figure of each count (the first is on one thread)."""
BUDGET_S = 60.0
"""Time spent on the repeats of one figure, at most (a slow query gets fewer samples)."""


def graph_source(kind: str, count: int, workdir: Path) -> Path:
    path = (Path("/tmp") if count >= 10_000 else workdir) / f"{kind}_edges_{count}.metta"
    if not path.exists():
        partial = path.with_suffix(".partial")
        GRAPHS[kind](count, partial)
        partial.replace(path)
    return path


def two_hop_node(kind: str, count: int) -> int:
    """The node two-hop paths start from: n_5 in the random graph; in the power-law one a node
    of middling rank (n_5 there is a hub)."""
    return 5 if kind == "random" else max(1, count // 10) // 2


def bench_joins(opts: Options) -> dict:
    count = opts.join_facts
    out: dict = {"facts": count}
    for kind in GRAPHS:
        opts.log(f"[joins: {kind} graph of {count:,} edges]")
        try:
            out[kind] = bench_graph(kind, count, opts)
        except Exception as error:  # a failure shows in the table; the run goes on
            out[kind] = failed(f"{type(error).__name__}: {str(error)[:200]}")
    return out


def bench_graph(kind: str, count: int, opts: Options) -> dict:
    source = graph_source(kind, count, opts.workdir)
    kb_path = opts.workdir / f"{kind}_edges_{count}.kb"
    batch = encode_file(source)
    build_snapshot(batch, batch.terms, kb_path, merkleize=False, overwrite=True)
    del batch
    node = two_hop_node(kind, count)
    result: dict = {"two_hop_node": f"n_{node}"}
    with PersistentKB.open(kb_path, readonly=True) as kb:
        result["ours"] = our_figures(kb, node, opts)
    result["duckdb"] = duckdb_figures(source, node, opts)
    return result


def our_figures(kb: PersistentKB, node: int, opts: Options) -> dict:
    out: dict = {"threads": THREADS}
    for name, (text, _) in COUNT_QUERIES.items():
        pattern = parse_atom(text)
        start = time.perf_counter()
        out[f"{name}_answers"] = kb.join_count(pattern)
        out[f"{name}_first_ms"] = (time.perf_counter() - start) * 1e3  # the first one builds the views
        out[f"{name}_ms"] = timed_samples(lambda p=pattern: kb.join_count(p), opts.repeat, "ms", BUDGET_S)
        out[f"{name}_threads_ms"] = timed_samples(lambda p=pattern: kb.join_count(p, threads=THREADS), opts.repeat,
                                                  "ms", BUDGET_S)
        out[f"{name}_rows"] = len(kb.join(pattern))
        out[f"{name}_rows_ms"] = timed_samples(lambda p=pattern: kb.join(p), opts.repeat, "ms", BUDGET_S)
        out[f"{name}_rows_threads_ms"] = timed_samples(lambda p=pattern: kb.join(p, threads=THREADS), opts.repeat,
                                                       "ms", BUDGET_S)
    pattern = parse_atom(TWO_HOP.format(k=node))
    out["two_hop_answers"] = len(kb.join(pattern))
    out["two_hop_us"] = timed_samples(lambda: kb.join(pattern), opts.repeat, "us", BUDGET_S, inner=100)
    out["two_hop_decoded_us"] = timed_samples(lambda: kb.join(pattern).columns(), opts.repeat, "us", BUDGET_S,
                                              inner=100)
    return out


def duckdb_figures(source: Path, node: int, opts: Options) -> dict:
    try:
        import duckdb
    except ImportError:
        return failed("not run: duckdb not installed (pip install duckdb)")
    con = duckdb.connect()
    start = time.perf_counter()
    # The same edges, read from the same file: `(edge n_12 n_34)` -> (12, 34).
    con.execute(
        "CREATE TABLE edge AS SELECT CAST(substr(s, 3) AS BIGINT) AS src,"
        " CAST(substr(d, 3, length(d) - 3) AS BIGINT) AS dst FROM read_csv(?, delim = ' ', header = false,"
        " columns = {'h': 'VARCHAR', 's': 'VARCHAR', 'd': 'VARCHAR'})",
        [str(source)],
    )
    out: dict = {"load_ms": stats_json([(time.perf_counter() - start) * 1e3], "ms"),
                 "threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0]),
                 "version": duckdb.__version__}
    for name, (_, sql) in COUNT_QUERIES.items():
        out[f"{name}_answers"] = int(con.execute(sql).fetchone()[0])
        out[f"{name}_ms"] = timed_samples(lambda q=sql: con.execute(q).fetchone(), opts.repeat, "ms", BUDGET_S)
        rows_sql = sql.replace("count(*)", "*")
        out[f"{name}_rows"] = len(con.execute(rows_sql).fetchnumpy()["src"])
        out[f"{name}_rows_ms"] = timed_samples(lambda q=rows_sql: con.execute(q).fetchnumpy(), opts.repeat, "ms",
                                               BUDGET_S)
    sql = TWO_HOP_SQL.format(k=node)
    out["two_hop_answers"] = len(con.execute(sql).fetchall())
    out["two_hop_us"] = timed_samples(lambda: con.execute(sql).fetchall(), opts.repeat, "us", BUDGET_S, inner=20)
    con.close()
    return out


def joins_table(joins: dict) -> Table:
    """Rows per query and graph, its count and its rows: ours, DuckDB's, the ratio, and both
    answer counts."""
    from metta_numba.bench.suite_report import cell, get

    columns = ["graph", "query", "ours (warm, 1 thread)", "ours, first join", f"ours, {THREADS} threads", "DuckDB",
               "ours (best) / DuckDB", "answers (ours / DuckDB)"]
    table = Table(f"Joins over {joins.get('facts', 0):,} `(edge n_i n_j)` facts (`PersistentKB.join`, DuckDB SQL)",
                  columns)
    for kind in GRAPHS:
        figures = joins.get(kind)
        if figures is None or is_failed(figures):
            table.add(kind, "all", cell(figures), "-", "-", "-", "-")
            continue
        ours, theirs = figures["ours"], figures["duckdb"]
        for name in COUNT_QUERIES:
            threaded = ours.get(f"{name}_threads_ms")
            best = min((f for f in (ours[f"{name}_ms"], threaded) if median_of(f) is not None), key=median_of)
            table.add(kind, f"{name} (count)", cell(ours[f"{name}_ms"]), f"{ours[f'{name}_first_ms']:,.1f} ms",
                      cell(threaded), cell(get(theirs, f"{name}_ms")), _ratio(best, theirs, f"{name}_ms"),
                      f"{ours[f'{name}_answers']:,} / {_answers(theirs, name)}")
            if f"{name}_rows_ms" in ours:  # results of runs before the rows were measured have none
                threaded = ours[f"{name}_rows_threads_ms"]
                best = min((ours[f"{name}_rows_ms"], threaded), key=lambda f: median_of(f) or float("inf"))
                table.add(kind, f"{name} (rows)", cell(ours[f"{name}_rows_ms"]), "-", cell(threaded),
                          cell(get(theirs, f"{name}_rows_ms")), _ratio(best, theirs, f"{name}_rows_ms"),
                          f"{ours[f'{name}_rows']:,} / {_answers(theirs, f'{name}_rows', '')}")
        node = figures["two_hop_node"]
        table.add(kind, f"two-hop from {node} (ids)", cell(ours["two_hop_us"]), "-", "-",
                  cell(get(theirs, "two_hop_us")), _ratio(ours["two_hop_us"], theirs, "two_hop_us"),
                  f"{ours['two_hop_answers']:,} / {_answers(theirs, 'two_hop')}")
        table.add(kind, f"two-hop from {node} (decoded)", cell(ours["two_hop_decoded_us"]), "-", "-",
                  cell(get(theirs, "two_hop_us")), _ratio(ours["two_hop_decoded_us"], theirs, "two_hop_us"),
                  f"{ours['two_hop_answers']:,} / {_answers(theirs, 'two_hop')}")
    return table


def _ratio(ours: object, theirs: dict, their_key: str) -> str:
    if is_failed(theirs):
        return "-"
    return ratio(median_of(ours), median_of(theirs[their_key]))


def _answers(theirs: dict, name: str, suffix: str = "_answers") -> str:
    return "-" if is_failed(theirs) else f"{theirs[f'{name}{suffix}']:,}"
