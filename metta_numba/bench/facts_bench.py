"""Argument-index benchmarks on the fact KB (BENCHMARKS.md section 2) and its size on the
baseline KB (section 1).

    python -m metta_numba.bench.facts_bench [--sizes 10000,100000,1000000] [--json OUT]

For each fact KB size: the snapshot's build time and its index's own build time and size;
forward `(edge n_K $y)`, reverse `(edge $x n_K)` and two-hop `(, (edge n_K $y) (edge $y $z))`
through the interpreter's space (SnapshotSpace, as `match` runs them), warm (median over
nodes K of repeated calls) and cold (the first query after opening the KB with its files
dropped from the page cache); the reverse lookup without the index (the trie's match kernel
alone) for comparison; and a checkpoint's rebuild of the index. For the baseline KB: the
index's size and build time against the trie's, and which positions the default size cap
kept. For rule lookup: calls to a function of 10,000 rules, by a ground argument in the first
or the second position, through the interpreter over a snapshot and over the in-memory space.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from metta_numba.bench.kbgen import generate_fact_kb, generate_kb
from metta_numba.bench.measure import drop_from_page_cache
from metta_numba.bench.report import Table, fmt_number
from metta_numba.bench.timing import Stats, time_call
from metta_numba.codec import TermStore, encode
from metta_numba.space import SnapshotSpace
from metta_numba.space.conjunction import match_conjunction, query_pattern
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_source
from metta_numba.trie import Trie
from metta_numba.trie.argindex import ArgIndex

QUERIES = {
    "forward": "(edge n_{k} $y)",
    "reverse": "(edge $x n_{k})",
    "two-hop": "(, (edge n_{k} $y) (edge $y $z))",
}
NODES = 16
"""Warm figures are the median over this many nodes spread over the KB."""


def nodes_of(n: int, count: int = NODES) -> list[int]:
    top = max(1, n // 10)
    return sorted({int(k) for k in np.linspace(top // 7, top - 1, count)})


def section_bytes(kb_path: Path, prefix: str) -> int:
    from metta_numba.store.actfile import ActFile

    act = ActFile.open(next(kb_path.glob("gen-*.act")))
    try:
        return sum(int(array.nbytes) for name, array in act.arrays.items() if name.startswith(prefix))
    finally:
        act.close()


def warm_query(space, text: str, nodes: list[int], repeat: int) -> tuple[Stats, float]:
    """Median over nodes of the median call time (us), and the median number of answers."""
    per_node = []
    answers = []
    for k in nodes:
        pattern = parse_atom(text.format(k=k))
        answers.append(len(query_pattern(space, pattern)))
        per_node.append(time_call(lambda p=pattern: query_pattern(space, p), repeat, "us").median)
    return Stats.of(per_node, "us"), statistics.median(answers)


def cold_query(kb_path: Path, text: str, k: int) -> tuple[float, float]:
    """(open ms, first query us) with the KB's files out of the page cache."""
    drop_from_page_cache([kb_path])
    start = time.perf_counter()
    kb = PersistentKB.open(kb_path, readonly=True)
    opened = time.perf_counter()
    try:
        query_pattern(SnapshotSpace(kb), parse_atom(text.format(k=k)))
        done = time.perf_counter()
    finally:
        kb.close()
    return (opened - start) * 1e3, (done - opened) * 1e6


def measure_facts(n: int, workdir: Path, repeat: int) -> dict:
    source = generate_fact_kb(n).encode()
    batch = encode_source(source)
    kb_path = workdir / f"facts-{n}"
    start = time.perf_counter()
    build_snapshot(batch, batch.terms, kb_path, overwrite=True)
    result: dict = {"facts": n, "source_bytes": len(source), "snapshot_build_s": time.perf_counter() - start}
    result["trie_section_bytes"] = section_bytes(kb_path, "trie.")
    result["index_section_bytes"] = section_bytes(kb_path, "argindex.")
    nodes = nodes_of(n)
    with PersistentKB.open(kb_path, readonly=True) as kb:
        generation = kb.snapshot_generation()
        trie = generation.trie
        start = time.perf_counter()
        index = ArgIndex.build(trie)
        result["index_build_s"] = time.perf_counter() - start
        result["index_positions"] = [
            {**p, "position": ".".join(map(str, p["position"]))} for p in index.positions()
        ]
        space = SnapshotSpace(kb)
        for name, text in QUERIES.items():
            stats, answers = warm_query(space, text, nodes, repeat)
            result[f"{name}_warm"] = stats.to_json()
            result[f"{name}_answers"] = answers
        plans = []
        for k in nodes[:4]:
            trace: list[int] = []
            match_conjunction(space, parse_atom(QUERIES["two-hop"].format(k=k)).children[1:], trace=trace)
            plans.append(trace)
        result["two-hop_plans"] = plans
        # Node names are short symbols: their paths need no term store.
        keys = [encode(parse_atom(QUERIES["reverse"].format(k=k)), TermStore(), intern=False)[0] for k in nodes[:4]]
        scans = [time_call(lambda key=key: trie.match(key), max(3, repeat // 10), "us").median for key in keys]
        result["reverse_no_index_us"] = statistics.median(scans)
    cold = {name: [cold_query(kb_path, text, k) for k in nodes[:3]] for name, text in QUERIES.items()}
    for name, runs in cold.items():
        result[f"{name}_cold_open_ms"] = statistics.median(r[0] for r in runs)
        result[f"{name}_cold_us"] = statistics.median(r[1] for r in runs)
    result.update(measure_checkpoint(kb_path, n))
    return result


def measure_checkpoint(kb_path: Path, n: int) -> dict:
    """A checkpoint of 1,000 new facts: its time, and the part of it that rebuilds the index."""
    with PersistentKB.open(kb_path, sync="never", checkpoint_every=None) as kb:
        with kb.batch():
            for i in range(1000):
                kb.add(parse_atom(f"(edge n_new{i} n_{i % max(1, n // 10)})"))
        start = time.perf_counter()
        kb.checkpoint()
        total = time.perf_counter() - start
        trie = kb.snapshot_generation().trie
        start = time.perf_counter()
        ArgIndex.build(trie)
        rebuild = time.perf_counter() - start
    return {"checkpoint_s": total, "checkpoint_index_rebuild_s": rebuild}


def measure_baseline(label: str, n: int) -> dict:
    batch = encode_source(generate_kb(n).encode())
    trie = Trie.build(batch.data, batch.offsets, names=batch.names)
    start = time.perf_counter()
    index = ArgIndex.build(trie)
    built = time.perf_counter() - start
    positions = index.positions()
    return {
        "size": label,
        "rules": len(batch.offsets) - 1,
        "trie_bytes": trie.nbytes,
        "index_bytes": index.nbytes,
        "index_build_s": built,
        "keyed": [".".join(map(str, p["position"])) for p in positions if p["keyed"]],
        "dropped": [".".join(map(str, p["position"])) for p in positions if not p["keyed"] and p["ground"]],
    }


RULE_CALLS = {"first argument": "!(fact {i})", "second argument": "!(pair $x {i})"}


def measure_rules(workdir: Path, n: int = 10_000, repeat: int = 30) -> dict:
    """Median time of a call (each with a new argument, so no cache answers it) to a function
    of n rules, over a snapshot KB and over the in-memory space."""
    from metta_numba.interp.runner import MeTTa
    from metta_numba.space import GroundingSpace
    from metta_numba.syntax import parse_atoms

    source = "".join(f"(= (fact {i}) v{i})\n(= (pair v{i} {i}) ok)\n" for i in range(n))
    batch = encode_source(source.encode())
    build_snapshot(batch, batch.terms, workdir / "rules", overwrite=True)
    out: dict = {"rules_per_head": n}
    with PersistentKB.open(workdir / "rules", readonly=True) as kb:
        for where, space in (("snapshot", SnapshotSpace(kb)), ("memory", GroundingSpace(parse_atoms(source)))):
            runner = MeTTa(space=space)
            for name, text in RULE_CALLS.items():
                samples = []
                for i in range(repeat):
                    program = text.format(i=(i * 331) % n)
                    start = time.perf_counter()
                    runner.run(program)
                    samples.append((time.perf_counter() - start) * 1e6)
                out[f"{where} {name}"] = statistics.median(samples[1:])
    return out


def tables(facts: list[dict], baseline: list[dict], rules: dict | None = None) -> list[Table]:
    sizes = [f"{r['facts']:,}" for r in facts]
    latency = Table("Fact KB: query latency through the interpreter's space (median)", ["query", *sizes])
    for name in QUERIES:
        latency.add(f"{name} answers", *[fmt_number(r[f"{name}_answers"]) for r in facts])
        latency.add(f"{name}, warm", *[f"{fmt_number(r[f'{name}_warm']['median'])} us" for r in facts])
        latency.add(f"{name}, cold", *[f"{fmt_number(r[f'{name}_cold_us'])} us" for r in facts])
    latency.add("reverse without the index (trie scan)", *[f"{fmt_number(r['reverse_no_index_us'])} us" for r in facts])
    latency.add("open, cold", *[f"{fmt_number(r['reverse_cold_open_ms'])} ms" for r in facts])
    size = Table("Fact KB: index size and build time", ["figure", *sizes])
    size.add("source text (MB)", *[r["source_bytes"] / 1e6 for r in facts])
    size.add("trie sections (MB)", *[r["trie_section_bytes"] / 1e6 for r in facts])
    size.add("index sections (MB)", *[r["index_section_bytes"] / 1e6 for r in facts])
    size.add("index / trie", *[f"{r['index_section_bytes'] / r['trie_section_bytes']:.0%}" for r in facts])
    size.add("index bytes per fact", *[r["index_section_bytes"] / r["facts"] for r in facts])
    size.add("snapshot build, total (s)", *[r["snapshot_build_s"] for r in facts])
    size.add("index build alone (s)", *[r["index_build_s"] for r in facts])
    size.add("checkpoint of 1,000 facts (s)", *[r["checkpoint_s"] for r in facts])
    size.add("of which index rebuild (s)", *[r["checkpoint_index_rebuild_s"] for r in facts])
    base = Table(
        "Baseline KB: index size (default cap: the trie's size)",
        ["size", "rules", "trie (MB)", "index (MB)", "index / trie", "build (s)", "positions keyed", "dropped by cap"],
    )
    for r in baseline:
        base.add(
            r["size"], r["rules"], r["trie_bytes"] / 1e6, r["index_bytes"] / 1e6,
            f"{r['index_bytes'] / r['trie_bytes']:.0%}", r["index_build_s"],
            " ".join(r["keyed"]), " ".join(r["dropped"]) or "none",
        )  # fmt: skip
    out = [latency, size, base]
    if rules:
        title = f"Rule calls, {rules['rules_per_head']:,} rules per head (median, us)"
        calls = Table(title, ["call", "snapshot", "memory"])
        for name in RULE_CALLS:
            calls.add(f"ground {name}", rules[f"snapshot {name}"], rules[f"memory {name}"])
        out.append(calls)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="fact KB sizes")
    parser.add_argument("--baseline", default="small,medium", help="baseline KB sizes (small, medium, large)")
    parser.add_argument("--repeat", type=int, default=50, help="calls per warm figure")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    baseline_sizes = {"small": 10_000, "medium": 100_000, "large": 1_000_000}
    with tempfile.TemporaryDirectory(prefix="facts-bench-") as tmp:
        facts = []
        for n in (int(s) for s in args.sizes.split(",") if s):
            print(f"fact KB {n:,}", file=sys.stderr)
            facts.append(measure_facts(n, Path(tmp), args.repeat))
        print("rule calls", file=sys.stderr)
        rules = measure_rules(Path(tmp))
    baseline = []
    for label in (s for s in args.baseline.split(",") if s):
        print(f"baseline KB {label}", file=sys.stderr)
        baseline.append(measure_baseline(label, baseline_sizes[label]))
    for table in tables(facts, baseline, rules):
        print(table.to_markdown())
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "baseline": baseline, "rules": rules}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
