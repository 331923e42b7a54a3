"""The baseline-KB figures (BENCHMARKS.md section 1) for one size: compile, serialize, open,
query cold and warm, startup from source and from a snapshot, file sizes, the effect of
merkleizing, memory and page faults; and the same workloads through hyperon when it runs.

In-process figures come from this process (kernels warmed first); whole-process figures from
fresh processes, each measured alone with wait4.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from metta_numba.bench.kbgen import SIZES, baseline_rule_count, write_kb
from metta_numba.bench.peers import run_hyperon
from metta_numba.bench.suite_common import (
    SMOKE_SIZES,
    Options,
    baseline_queries,
    failed,
    metta_py,
    middle_index,
    repeated_processes,
    run_child,
    run_cli,
    run_metta_py,
    stats_json,
    timed_samples,
)
from metta_numba.interp.runner import MeTTa
from metta_numba.space import SnapshotSpace
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax import parse_atom
from metta_numba.syntax.bulk import encode_source
from metta_numba.trie import Trie

RSS_QUERY_COUNT = 100
SLOW_FIRST_RUN_MS = 60_000
"""A query whose first run takes longer than this (the variable-head query at large) is not
repeated for a warm figure."""
HYPERON_SIZES = {"smoke", "small", "medium"}
"""Sizes hyperon loads in a bench run; at large its load alone takes minutes and gigabytes."""


def size_n(label: str) -> int:
    return SMOKE_SIZES.get(label) or SIZES[label]


def source_file(label: str, workdir: Path) -> Path:
    """The baseline KB text of a size: /tmp/kb_<label>.metta for the named sizes (shared with
    the other bench scripts), the work folder for the smoke size."""
    directory = Path("/tmp") if label in SIZES else workdir
    path = directory / f"kb_{label}.metta"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_kb(size_n(label), partial)
        partial.replace(path)
    return path


def compile_text(data: bytes) -> Trie:
    """Text to a queryable trie: the bulk reader, then the trie build."""
    batch = encode_source(data)
    return Trie.build(batch.data, batch.offsets, names=batch.names)


def warm_up(workdir: Path) -> None:
    """Load every kernel of the measured paths from Numba's cache on a tiny KB, so that the
    in-process figures are the KB's."""
    data = b"(: Nat Type)\n(= (add0 zero $x) $x)\n(= (and0 True True) True)\n(edge n_1 n_2)\n"
    batch = encode_source(data)
    Trie.build(batch.data, batch.offsets, names=batch.names).merkleize()
    kb_path = workdir / "warm.kb"
    build_snapshot(batch, batch.terms, kb_path, merkleize=False, overwrite=True)
    with PersistentKB.open(kb_path, readonly=True) as kb:
        runner = MeTTa(space=SnapshotSpace(kb))
        for text in baseline_queries(4).values():
            runner.run(text)
        kb.query(parse_atom("(edge $x n_2)"))


def open_samples(kb_path: Path, repeat: int, checksums: bool = True) -> dict:
    """In-process read-only open, to ready-to-query (closing is not timed). `checksums=False`
    skips the checksum pass of a generation under OPEN_CHECK_BYTES, to show what it costs."""
    from metta_numba.store import generation

    limit = generation.OPEN_CHECK_BYTES
    generation.OPEN_CHECK_BYTES = limit if checksums else -1
    samples = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            kb = PersistentKB.open(kb_path, readonly=True)
            samples.append((time.perf_counter() - start) * 1e6)
            kb.close()
    finally:
        generation.OPEN_CHECK_BYTES = limit
    return stats_json(samples, "us")


def snapshot_figures(data: bytes, source: Path, kb_path: Path, merkleize: bool, repeat: int) -> dict:
    """Build the snapshot in-process `repeat` times: compile (to the trie, plus merkleizing
    when asked) and serialize (writing the generation) as separate figures."""
    compile_s, serialize_s, report = [], [], None
    for _ in range(repeat):
        batch = encode_source(data)
        report = build_snapshot(batch, batch.terms, kb_path, merkleize=merkleize, overwrite=True)
        compile_s.append(report["trie_seconds"] * 1e3)
        serialize_s.append((report["total_seconds"] - report["trie_seconds"]) * 1e3)
    snapshot_bytes = sum(report["files"].values())
    return {
        "build_ms": stats_json(compile_s, "ms"),
        "serialize_ms": stats_json(serialize_s, "ms"),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_vs_source": snapshot_bytes / source.stat().st_size,
        "atoms": report["counts"]["atoms"],
    }


def warm_queries(kb_path: Path, n: int, repeat: int) -> dict:
    """Warm figures in this process: the Python API and the interpreter."""
    i = middle_index(n)
    ground = parse_atom(f"(= (and{i} True True) True)")
    head = parse_atom(f"(= (and{i} $a $b) $r)")
    out: dict = {}
    with PersistentKB.open(kb_path, readonly=True) as kb:
        kb.query(ground)
        out["api_ground_query_us"] = timed_samples(lambda: kb.query(ground), repeat, "us", inner=200)
        out["api_ground_count_us"] = timed_samples(lambda: kb.count(ground), repeat, "us", inner=200)
        out["api_match_head_us"] = timed_samples(lambda: kb.query(head), repeat, "us", inner=200)
        runner = MeTTa(space=SnapshotSpace(kb))
        interp: dict = {}
        for name, text in baseline_queries(n).items():
            start = time.perf_counter()
            results = runner.run(text)
            first_ms = (time.perf_counter() - start) * 1e3
            inner = 50 if first_ms < 5 else 1
            if first_ms > SLOW_FIRST_RUN_MS:
                warm = failed(f"not run: the first run took {first_ms / 1e3:.0f} s")
            else:
                warm = timed_samples(lambda text=text: runner.run(text), repeat, "us", budget_s=15, inner=inner)
            interp[name] = {"first_ms": first_ms, "warm_us": warm, "answers": len(results[0]) if results else 0}
        out["interp"] = interp
    return out


def query_file(path: Path, queries: list[str]) -> Path:
    path.write_text("".join(q + "\n" for q in queries))
    return path


def hyperon_figures(label: str, source: Path, n: int, opts: Options) -> dict:
    if not opts.hyperon_python:
        return failed("not run: hyperon not importable")
    if label not in HYPERON_SIZES:
        return failed("not run: beyond hyperon's size limit for one bench run")
    queries = baseline_queries(n)
    if label == "medium":
        # Its variable-head query returns 100K answers and takes minutes in hyperon.
        queries = {k: v for k, v in queries.items() if k != "variable head"}
    spec = {"kb_file": str(source), "queries": list(queries.values()), "repeat": min(opts.repeat, 3)}
    out = run_hyperon(opts.hyperon_python, spec, timeout_s=900)
    if "failed" in out:
        return out
    return {
        "version": out.get("version"),
        "load_ms": stats_json([out["load_ms"]], "ms"),
        "rss_after_load_bytes": out.get("rss_after_load_bytes"),
        "queries": {
            name: {"us": stats_json([ms * 1e3 for ms in out["queries"][text]["ms"]], "us"),
                   "answers": len(out["queries"][text]["results"][0]) if out["queries"][text]["results"] else 0}
            for name, text in queries.items()
        },
    }


def bench_size(label: str, opts: Options) -> dict:
    n = size_n(label)
    log = opts.log
    source = source_file(label, opts.workdir)
    data = source.read_bytes()
    big = label == "large"
    repeat = 1 if big else opts.repeat
    result: dict = {"n": n, "rules": baseline_rule_count(n), "source_bytes": len(data)}
    log(f"[{label}] compile")
    result["compile_ms"] = timed_samples(lambda: compile_text(data), repeat, "ms", budget_s=60)
    batch = encode_source(data)
    trie = Trie.build(batch.data, batch.offsets, names=batch.names)
    start = time.perf_counter()
    dag = trie.merkleize()
    result["merkleize_ms"] = stats_json([(time.perf_counter() - start) * 1e3], "ms")
    result["trie_nodes"], result["dag_nodes"] = trie.n_nodes, dag.n_nodes
    del trie, dag, batch

    kb_path = opts.workdir / f"{label}.kb"
    merkle_path = opts.workdir / f"{label}-merkle.kb"
    log(f"[{label}] snapshot")
    result["plain"] = snapshot_figures(data, source, kb_path, False, min(repeat, 3))
    result["merkleized"] = snapshot_figures(data, source, merkle_path, True, 1)
    cli_kb = opts.workdir / f"{label}-cli.kb"
    result["compile_save_process"] = repeated_processes(
        lambda: run_cli("snapshot", "build", str(source), "-o", str(cli_kb), "--no-merkleize"),
        1 if big else min(repeat, 3),
    )
    result["open_us"] = open_samples(kb_path, 20 if big else max(20, opts.repeat * 10))
    result["open_unchecked_us"] = open_samples(kb_path, 20 if big else max(20, opts.repeat * 10), checksums=False)
    result["open_merkleized_us"] = open_samples(merkle_path, 20)

    log(f"[{label}] queries")
    i = middle_index(n)
    result["cold"] = _cold(kb_path, f"(= (and{i} $a $b) $r)", 2 if big else min(repeat, 5))
    result.update(warm_queries(kb_path, n, repeat))

    log(f"[{label}] whole-process startup")
    queries = list(baseline_queries(n).values())
    one = query_file(opts.workdir / f"q1_{label}.metta", queries[:1])
    five = query_file(opts.workdir / f"q5_{label}.metta", queries)
    result["startup_snapshot_one"] = repeated_processes(
        lambda: run_cli("--load-snapshot", str(kb_path), str(one)), 2 if big else min(repeat, 5)
    )
    result["startup_snapshot_five"] = repeated_processes(
        lambda: run_cli("--load-snapshot", str(kb_path), str(five), timeout_s=600), 1 if big else min(repeat, 3)
    )
    # From text with one query (a rule call): the program's atoms go through the bulk loader.
    with_one = opts.workdir / f"src1_{label}.metta"
    with_one.write_bytes(data + (queries[0] + "\n").encode())
    result["startup_source_one"] = repeated_processes(
        lambda: run_cli(str(with_one), timeout_s=900), 1 if big else min(repeat, 3)
    )
    # hyperon on the same file, whole process (it cannot load the large KB).
    command = metta_py(opts)
    if command is None or label not in HYPERON_SIZES:
        result["hyperon_source_one"] = failed("not run: " + ("no hyperon `metta-py` given" if command is None
                                                             else "beyond hyperon's size limit for one bench run"))
    else:
        result["hyperon_source_one"] = repeated_processes(lambda: run_metta_py(command, with_one), min(repeat, 3))
    with_one.unlink()
    if big:
        result["startup_source_five"] = failed("not run at large: the match queries decode 1M answers as objects")
    else:
        with_source = opts.workdir / f"src_{label}.metta"
        with_source.write_bytes(data + "".join(q + "\n" for q in queries).encode())
        result["startup_source_five"] = repeated_processes(
            lambda: run_cli(str(with_source), timeout_s=900), 1 if label == "medium" else min(repeat, 3)
        )
    rss = run_child("rss-after-queries", str(kb_path), str(RSS_QUERY_COUNT),
                    f"(= (and{i} True True) True)", f"(= (and{i} $a $b) $r)", f"(= (or{i} $a $b) False)")
    result["rss_after_queries"] = rss
    log(f"[{label}] hyperon")
    result["hyperon"] = hyperon_figures(label, source, n, opts)
    return result


def _cold(kb_path: Path, pattern: str, repeat: int) -> dict:
    """The first query after opening KB with its pages dropped from the page cache, without
    and with prefetch, and how long reading in what queries touch takes (`snapshot warm`)."""
    # The child loads the query's kernels by the same query on a copy of the KB (any other KB
    # may take other code paths, and each kernel is loaded at its first call).
    copy = kb_path.with_name(kb_path.name + "-warmcopy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(kb_path, copy)
    try:
        variants = {}
        for variant in ("plain", "prefetch"):
            runs = []
            for _ in range(max(1, repeat)):
                out = run_child("cold-query", str(kb_path), str(copy), pattern, variant)
                if "failed" in out:
                    return out
                runs.append(out)
            variants[variant] = runs
        warms = [run_child("warm-after-drop", str(kb_path)) for _ in range(max(1, min(repeat, 3)))]
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    plain, prefetched = variants["plain"], variants["prefetch"]
    result = {
        "open_us": stats_json([r["open_us"] for r in plain], "us"),
        "first_query_us": stats_json([r["first_query_us"] for r in plain], "us"),
        "major_faults": stats_json([float(r["open_and_query_major_faults"]) for r in plain], "faults"),
        "prefetch_first_query_us": stats_json([r["first_query_us"] for r in prefetched], "us"),
        "prefetch_read_ms": stats_json([r["prefetch_read_s"] * 1e3 for r in prefetched], "ms"),
        "answers": plain[0]["answers"],
    }
    if all("warm_s" in w for w in warms):
        result["warm_read_ms"] = stats_json([w["warm_s"] * 1e3 for w in warms], "ms")
    return result


def bench_baseline(opts: Options) -> dict:
    return {label: bench_size(label, opts) for label in opts.sizes}
