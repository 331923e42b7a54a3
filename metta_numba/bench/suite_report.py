"""BASELINE.md and the figures, from a results dict of `python -m metta_numba.bench`.

Every cell comes from the results: a Stats figure prints as `median (min-max)`, a peer that
failed or was not run prints its reason, and a missing figure prints `n/a` (which the smoke
test treats as a bug in the suite).
"""

from __future__ import annotations

from pathlib import Path

from metta_numba.bench.report import Table, fmt, fmt_bytes, plot_series, ratio
from metta_numba.bench.suite_common import from_json, is_failed, median_of


def cell(figure: object) -> str:
    if figure is None:
        return "n/a"
    if is_failed(figure):
        reason = figure["failed"]
        return reason if reason.startswith("not run") else f"failed: {reason}"
    if isinstance(figure, dict) and "median" in figure:
        stats = from_json(figure)
        if stats.unit == "B":
            spread = f" ({fmt_bytes(stats.min)}-{fmt_bytes(stats.max)})" if len(stats.samples) > 1 else ""
            return fmt_bytes(stats.median) + spread
        if stats.unit == "faults":
            return f"{stats.median:,.0f}" + (f" ({stats.min:,.0f}-{stats.max:,.0f})" if len(stats.samples) > 1 else "")
        return fmt(stats)
    if isinstance(figure, bool):
        return "yes" if figure else "no"
    return fmt(figure)


def get(figures: object, path: str) -> object:
    """The figure at `path`; a failure met on the way (a measurement that did not run) is
    returned instead, so the table shows its reason."""
    for key in path.split("/"):
        if is_failed(figures):
            return figures
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


def _peer_cell(ours: object, theirs: object, failure: object) -> tuple[str, str]:
    """(hyperon's cell, ratio cell) for a figure of ours against hyperon's."""
    if is_failed(failure):
        text = cell(failure)
        return text, text
    return cell(theirs), ratio(median_of(ours), median_of(theirs))


BASELINE_ROWS = (
    ("rules", "rules", None),
    ("source text", "source_bytes", fmt_bytes),
    ("compile: text to a queryable trie (in-process)", "compile_ms", None),
    ("snapshot build from the batch (trie, in-process)", "plain/build_ms", None),
    ("serialize: argument index and write the generation", "plain/serialize_ms", None),
    ("compile and save, whole process (`snapshot build --no-merkleize`)", "compile_save_process/wall_s", None),
    ("peak RSS of compile and save", "compile_save_process/peak_rss_bytes", None),
    ("snapshot size, not merkleized", "plain/snapshot_bytes", fmt_bytes),
    ("snapshot / source, not merkleized", "plain/snapshot_vs_source", lambda v: f"{v:.0%}"),
    ("merkleize (in-process)", "merkleize_ms", None),
    ("trie nodes, tree / merkleized DAG", None, lambda f: f"{f['trie_nodes']:,} / {f['dag_nodes']:,}"),
    ("snapshot size, merkleized", "merkleized/snapshot_bytes", fmt_bytes),
    ("snapshot / source, merkleized", "merkleized/snapshot_vs_source", lambda v: f"{v:.0%}"),
    ("snapshot build, merkleized (in-process)", "merkleized/build_ms", None),
    ("deserialize: open the snapshot (in-process, warm)", "open_us", None),
    ("open without the checksum pass of KBs up to 64 MB", "open_unchecked_us", None),
    ("open the merkleized snapshot (in-process, warm)", "open_merkleized_us", None),
    ("cold open (pages dropped from the page cache)", "cold/open_us", None),
    ("cold first query after open", "cold/first_query_us", None),
    ("cold first query after open with `prefetch=True`", "cold/prefetch_first_query_us", None),
    ("prefetch: reading what queries touch (background thread)", "cold/prefetch_read_ms", None),
    ("`snapshot warm` with the pages dropped (reads what queries touch)", "cold/warm_read_ms", None),
    ("major page faults, cold open + first query", "cold/major_faults", None),
    ("warm ground lookup, `PersistentKB.query`", "api_ground_query_us", None),
    ("warm ground count, `PersistentKB.count`", "api_ground_count_us", None),
    ("warm match on a rule head, `PersistentKB.query`", "api_match_head_us", None),
    ("startup from a snapshot + 1 query, whole process", "startup_snapshot_one/wall_s", None),
    ("startup from a snapshot + 5 queries, whole process", "startup_snapshot_five/wall_s", None),
    ("startup from source + 1 query, whole process", "startup_source_one/wall_s", None),
    ("hyperon `metta-py`, the same file (source + 1 query), whole process", "hyperon_source_one/wall_s", None),
    ("source + 1 query: hyperon's time / ours", None, lambda f: _times_faster(f, "startup_source_one",
                                                                              "hyperon_source_one")),
    ("startup from source + 5 queries, whole process", "startup_source_five/wall_s", None),
    ("peak RSS, source + 1 query", "startup_source_one/peak_rss_bytes", None),
    ("hyperon's peak RSS, source + 1 query", "hyperon_source_one/peak_rss_bytes", None),
    ("peak RSS, snapshot + 5 queries", "startup_snapshot_five/peak_rss_bytes", None),
    ("peak RSS, source + 5 queries", "startup_source_five/peak_rss_bytes", None),
    ("minor page faults, snapshot + 1 query", "startup_snapshot_one/minor_faults", None),
    ("major page faults, snapshot + 1 query", "startup_snapshot_one/major_faults", None),
    ("RSS after imports, before open", "rss_after_queries/rss_before_open_bytes", fmt_bytes),
    ("RSS after open + 100 queries", "rss_after_queries/rss_after_bytes", fmt_bytes),
    ("USS after open + 100 queries", "rss_after_queries/uss_after_bytes", fmt_bytes),
)


def _times_faster(figures: dict, ours: str, theirs: str) -> str:
    ours_figure, theirs_figure = get(figures, f"{ours}/wall_s"), get(figures, f"{theirs}/wall_s")
    ours_s, theirs_s = median_of(ours_figure), median_of(theirs_figure)
    if theirs_s is None:
        return cell(theirs_figure)  # why hyperon was not measured
    if ours_s is None:
        return cell(ours_figure)
    return f"{theirs_s / ours_s:.1f}x"


def baseline_table(baseline: dict) -> Table:
    labels = list(baseline)
    table = Table("Baseline KB: compile, store, open, startup, memory", ["metric", *labels])
    for title, path, render in BASELINE_ROWS:
        cells = []
        for label in labels:
            figures = baseline[label]
            if path is None:
                cells.append(render(figures))
                continue
            value = get(figures, path)
            cells.append(render(value) if render and value is not None and not is_failed(value) else cell(value))
        table.add(title, *cells)
    return table


def baseline_peer_tables(baseline: dict) -> list[Table]:
    tables = []
    for label, figures in baseline.items():
        peer = figures.get("hyperon")
        table = Table(
            f"Baseline KB, {label}: queries through the interpreter, against hyperon",
            ["workload", "ours: first run", "ours: warm", "answers", "hyperon", "ratio"],
            note="Each query runs as `MeTTa.run(\"!(...)\")` on a runner whose `&self` is the KB "
            "(ours: a SnapshotSpace over the opened snapshot; hyperon: its space after loading the text).",
        )
        theirs, ratio_text = _peer_cell(figures.get("compile_ms"), get(peer, "load_ms"), peer)
        table.add("load: the KB text to a queryable space (ours: compile)", "-", cell(figures.get("compile_ms")),
                  fmt(figures["rules"] + 3), theirs, ratio_text)
        for name, query in figures.get("interp", {}).items():
            if is_failed(peer):
                theirs, ratio_text = cell(peer), cell(peer)
            elif name not in peer.get("queries", {}):
                theirs = ratio_text = "not run: too slow in hyperon at this size"
            else:
                theirs, ratio_text = _peer_cell(query["warm_us"], peer["queries"][name]["us"], None)
            table.add(name, f"{query['first_ms']:.2f} ms", cell(query["warm_us"]), fmt(query["answers"]),
                      theirs, ratio_text)
        if not is_failed(peer):
            ours = fmt_bytes(get(figures, "rss_after_queries/rss_after_bytes"))
            table.add("RSS (ours: after open + 100 queries; hyperon: after load)", "-", ours, "-",
                      fmt_bytes(peer.get("rss_after_load_bytes")), "-")
        tables.append(table)
    return tables


def facts_table(facts: dict) -> Table:
    counts = list(facts)
    table = Table("Fact KB: `(edge n_i n_j)`", ["metric", *[f"{int(c):,} facts" for c in counts]])
    rows = [("build the snapshot (in-process)", "build_ms")]
    for kind in ("forward", "reverse"):
        rows += [
            (f"{kind}, `PersistentKB.query`, first call", f"api_{kind}_first_us"),
            (f"{kind}, `PersistentKB.query`, warm", f"api_{kind}_us"),
            (f"{kind}, answers", f"api_{kind}_answers"),
        ]
    for kind in ("forward", "reverse", "two-hop"):
        rows += [
            (f"{kind}, interpreter `!(match ...)`, first run", f"interp_{kind}_first_us"),
            (f"{kind}, interpreter, warm", f"interp_{kind}_us"),
            (f"{kind}, interpreter, answers", f"interp_{kind}_answers"),
            (f"{kind}, hyperon `!(match ...)`", f"hyperon/queries/{kind}/us"),
        ]
    rows.append(("hyperon: load", "hyperon/load_ms"))
    rows += [
        ("argument index: build (facts_bench)", "index/index_build_s"),
        ("argument index: bytes / trie bytes", "index/index_section_bytes"),
        ("forward through SnapshotSpace, warm, median over 16 nodes", "index/forward_warm"),
        ("reverse through SnapshotSpace, warm, median over 16 nodes", "index/reverse_warm"),
        ("two-hop through SnapshotSpace, warm, median over 16 nodes", "index/two-hop_warm"),
        ("reverse by the trie's match kernel alone (no index)", "index/reverse_no_index_us"),
        ("reverse, cold first query after open", "index/reverse_cold_us"),
        ("checkpoint of 1,000 new facts", "index/checkpoint_s"),
    ]
    for title, path in rows:
        cells = []
        for count in counts:
            figures = facts[count]
            value = get(figures, path)
            plain_number = isinstance(value, int | float) and not isinstance(value, bool)
            if plain_number and (path.startswith("index/") or path.endswith("first_us")):
                value = _unit_cell(path, value, figures)
            if path.startswith("hyperon") and is_failed(figures.get("hyperon")):
                value = figures["hyperon"]
            cells.append(cell(value))
        table.add(title, *cells)
    return table


def _unit_cell(path: str, value: float, figures: dict) -> str:
    if path.endswith("_s"):
        return f"{value:.3f} s"
    if path.endswith("_us"):
        return f"{value:,.1f} us"
    if path == "index/index_section_bytes":
        return f"{fmt_bytes(value)} / {fmt_bytes(figures['index']['trie_section_bytes'])}"
    return fmt(value)


def interp_table(interp: dict) -> Table:
    table = Table("Interpreter workloads (a fresh runner per run)",
                  ["program", "ours", "hyperon", "ratio", "same results"])
    for name, figures in interp.items():
        peer = figures.get("hyperon")
        theirs, ratio_text = _peer_cell(figures["ms"], get(peer, "ms"), peer)
        same = figures.get("same_results_as_hyperon")
        table.add(name, cell(figures["ms"]), theirs, ratio_text, "-" if same is None else cell(same))
    return table


def verdict_table(title: str, rows: list[dict]) -> Table:
    table = Table(title, ["metric", "target", "measured", "verdict"])
    for row in rows:
        table.add(row["metric"], row["target"], row["measured"], f"**{row['verdict']}**")
    return table


def profile_table(profile: dict) -> Table:
    table = Table(f"Profile ({profile['size']} KB)", ["what", "figure"])
    for key, title in (("flame_compile", "py-spy flame graph: compile"),
                       ("flame_query_loop", "py-spy flame graph: interpreter query loop")):
        figure = profile[key]
        table.add(title, cell(figure) if is_failed(figure) else f"[{figure['svg']}](figures/{figure['svg']})")
    for key, title in (("rusage_build", "snapshot build, whole process"),
                       ("rusage_startup", "startup from the snapshot + 1 query")):
        figure = profile[key]
        if is_failed(figure):
            table.add(title, cell(figure))
        else:
            table.add(title, f"{figure['wall_s']:.2f} s, {figure['minor_faults']:,} minor / "
                      f"{figure['major_faults']:,} major faults, peak RSS {fmt_bytes(figure['peak_rss_bytes'])}")
    trace = profile["rss_trace_build"]
    table.add("snapshot build, sampled every 10 ms (psutil)", cell(trace) if is_failed(trace) else
              f"peak RSS {fmt_bytes(trace['peak_rss_bytes'])}, peak USS {fmt_bytes(trace['peak_uss_bytes'])}")
    perf = profile["perf_stat_startup"]
    table.add("`perf stat` of startup + 1 query", cell(perf) if is_failed(perf) else
              ", ".join(f"{k} {fmt(v) if isinstance(v, float) else v}" for k, v in perf.items()))
    return table


def _series(baseline: dict, path: str, scale: float = 1.0) -> list[tuple[float, float]]:
    points = []
    for figures in baseline.values():
        value = median_of(get(figures, path))
        if value is not None:
            points.append((float(figures["rules"]), value * scale))
    return points


def make_figures(results: dict, figures_dir: Path) -> list[Path]:
    baseline = results.get("baseline", {})
    made = [
        plot_series(figures_dir / "time-vs-size.png", "Time against KB size", "rules", "seconds", {
            "compile (in-process)": _series(baseline, "compile_ms", 1e-3),
            "compile and save (process)": _series(baseline, "compile_save_process/wall_s"),
            "startup from snapshot + 5 queries": _series(baseline, "startup_snapshot_five/wall_s"),
            "startup from source + 5 queries": _series(baseline, "startup_source_five/wall_s"),
            "hyperon load": _series(baseline, "hyperon/load_ms", 1e-3),
        }),
        plot_series(figures_dir / "memory-vs-size.png", "Memory and file size against KB size", "rules", "bytes", {
            "peak RSS, compile and save": _series(baseline, "compile_save_process/peak_rss_bytes"),
            "RSS after open + 100 queries": _series(baseline, "rss_after_queries/rss_after_bytes"),
            "hyperon RSS after load": _series(baseline, "hyperon/rss_after_load_bytes"),
            "snapshot file": _series(baseline, "plain/snapshot_bytes"),
            "source text": _series(baseline, "source_bytes"),
        }),
        plot_series(figures_dir / "open-vs-size.png", "Snapshot open time against KB size", "rules", "microseconds", {
            "open (warm)": _series(baseline, "open_us"),
            "open merkleized (warm)": _series(baseline, "open_merkleized_us"),
            "open (cold page cache)": _series(baseline, "cold/open_us"),
            "first query after cold open": _series(baseline, "cold/first_query_us"),
        }),
    ]
    return [path for path in made if path is not None]


def compiled_tables(compiled: dict) -> list[Table]:
    whole = Table("Compiled evaluation, whole process (`metta-numba prog.metta`)",
                  ["program", "metta-numba", "--no-compile", "PeTTa", "ours / PeTTa"])
    for name, figures in compiled.get("whole process", {}).items():
        ours = figures.get("metta-numba")
        petta = figures.get("PeTTa")
        theirs, ratio_text = _peer_cell(get(ours, "s"), get(petta, "s"), petta)
        plain = figures.get("metta-numba --no-compile")
        table_plain = "-" if plain is None else (cell(plain) if "failed" in plain else cell(plain["s"]))
        whole.add(name, cell(ours) if "failed" in ours else cell(ours["s"]), table_plain, theirs, ratio_text)
    first = compiled.get("first call", {})
    costs = Table("First-call compile cost of fib", ["tier", "seconds"])
    if first:
        costs.add("tier 1 (Python source)", f"{first['tier 1 s']:.4f} s")
        for label, figure in first.get("tier 2 (numba import included)", {}).items():
            shown = cell(figure) if "failed" in figure else f"{figure['s']:.3f} s"
            costs.add(f"tier 2, numba import included, {label}", shown)
    return [whole, costs]


def render(results: dict, figures: list[Path], command: str) -> str:
    from metta_numba.bench.suite_first_run import first_run_table
    from metta_numba.bench.suite_joins import joins_table
    from metta_numba.bench.suite_startup import startup_table

    machine = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    parts = [
        "# Baseline: measured figures\n",
        f"Regenerated by `{command}` on {results['started']} (the run took "
        f"{results['duration_s'] / 60:.1f} min). Each figure is the median over repeats, with the "
        "min and max in brackets; whole-process figures come from fresh processes, in-process "
        "figures from one process with the kernels already loaded. Targets are those of "
        "BENCHMARKS.md section 5; nothing here fails on a time. The raw figures are in "
        f"`results/{results['results_file']}`.\n",
        "## Machine\n",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; memory {machine['memory_gib']} GiB; {machine['os']}",
        f"- Python {machine['python']}; {packages}",
        f"- metta-numba source: commit {results.get('revision', 'not recorded')}\n",
        "## Reproduce\n",
        "```bash\n"
        ".venv/bin/python -m metta_numba.bench --sizes small,medium          # this table, without large\n"
        ".venv/bin/python -m metta_numba.bench --sizes small,medium,large    # adds large (about 4M rules)\n"
        ".venv/bin/python -m metta_numba.bench --profile --out /tmp/bench    # flame graphs, faults, perf stat\n"
        ".venv/bin/python -m metta_numba.bench --smoke --out /tmp/bench      # every metric on a tiny KB\n"
        "```\n"
        "The scripts of `profiling/` collect the same process figures for any command of your own "
        "(py-spy, perf stat, page faults, RSS over time).\n",
        verdict_table("Targets (BENCHMARKS.md section 5)", results["verdicts"]["targets"]).to_markdown(),
        verdict_table("Hypotheses of the seed baseline", results["verdicts"]["hypotheses"]).to_markdown(),
        *(
            [verdict_table("Scale: the xlarge KB (`--xlarge`)", results["verdicts"]["scale"]).to_markdown()]
            if results.get("xlarge")
            else []
        ),
        "## Baseline KB\n",
        baseline_table(results["baseline"]).to_markdown(),
        *[t.to_markdown() for t in baseline_peer_tables(results["baseline"])],
        *(["## Start-up\n", startup_table(results["startup"]).to_markdown()] if results.get("startup") else []),
        *([first_run_table(results["first_run"]).to_markdown()] if results.get("first_run") else []),
        "## Fact KB\n",
        facts_table(results["facts"]).to_markdown(),
        *(["## Joins\n", joins_table(results["joins"]).to_markdown()] if results.get("joins") else []),
        "## Interpreter\n",
        interp_table(results["interp"]).to_markdown(),
        *[t.to_markdown() for t in compiled_tables(results.get("compiled", {}))],
    ]
    if results.get("query"):
        from metta_numba.bench.suite_query import query_tables

        parts += ["## The query tool\n", *[t.to_markdown() for t in query_tables(results["query"])]]
    if results.get("dist"):
        from metta_numba.bench.suite_dist import dist_table

        parts += ["## Beyond one machine\n", dist_table(results["dist"]).to_markdown()]
    if results.get("profile"):
        parts.append(profile_table(results["profile"]).to_markdown())
    if figures:
        parts.append("## Figures\n")
        parts += [f"![{path.stem}](figures/{path.name})\n" for path in figures]
    if results.get("notes"):
        parts.append("## Notes\n")
        parts += [f"- {note}" for note in results["notes"]]
    return "\n".join(parts) + "\n"
