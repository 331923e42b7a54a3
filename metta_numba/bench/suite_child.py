"""Measurements that need a fresh process, run by the suite as
`python -m metta_numba.bench.suite_child JOB ARGS...`. Each job prints one JSON line.

    cold-query KB WARM_KB PATTERN [prefetch]
                                      open KB with its pages dropped from the page cache, then
                                      time the first query (kernels already loaded by the same
                                      query on WARM_KB, a copy of KB); `prefetch` opens with
                                      PersistentKB.open(prefetch=True)
    warm-after-drop KB                time `snapshot warm KB` with KB's pages dropped first
    rss-after-queries KB N PATTERN... RSS and USS after opening KB and running N queries
    query-loop KB SECONDS QUERY       run an interpreter query over KB for SECONDS (profiling)
    compile SRC COUNT                 compile SRC to a trie COUNT times (profiling)
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _major_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


def cold_query(kb_path: str, warm_kb: str, pattern_text: str, prefetch: bool = False) -> dict:
    from metta_numba.bench.measure import drop_from_page_cache
    from metta_numba.store import PersistentKB
    from metta_numba.syntax import parse_atom

    pattern = parse_atom(pattern_text)
    # Load the kernels the query needs (each is loaded from Numba's cache at its first call) by
    # the same query on a copy of the KB, so what follows is the snapshot's own cost.
    with PersistentKB.open(warm_kb, readonly=True) as kb:
        kb.query(pattern)
    drop_from_page_cache([kb_path])
    faults = _major_faults()
    start = time.perf_counter()
    kb = PersistentKB.open(kb_path, readonly=True, prefetch=prefetch)
    opened = time.perf_counter()
    answers = kb.query(pattern)
    answered = time.perf_counter()
    out = {
        "open_us": (opened - start) * 1e6,
        "first_query_us": (answered - opened) * 1e6,
        "open_and_query_major_faults": _major_faults() - faults,
        "answers": len(answers),
    }
    if prefetch:
        kb.prefetch.done.wait()
        out["prefetch_read_s"] = kb.prefetch.seconds
        out["prefetch_bytes"] = kb.prefetch.bytes
    return out


def warm_after_drop(kb_path: str) -> dict:
    """`snapshot warm` of KB with its pages dropped: how long reading what queries touch takes."""
    from metta_numba.bench.measure import drop_from_page_cache
    from metta_numba.store.snapshot import snapshot_warm

    drop_from_page_cache([kb_path])
    report = snapshot_warm(kb_path)
    # The read itself, without the open (which on a small KB checks its sections' hashes).
    return {"warm_s": report["seconds"], "warm_bytes": report["bytes"]}


def rss_after_queries(kb_path: str, count: int, patterns: list[str]) -> dict:
    import psutil

    from metta_numba.store import PersistentKB
    from metta_numba.syntax import parse_atom

    process = psutil.Process()
    before = process.memory_full_info()
    kb = PersistentKB.open(kb_path, readonly=True)
    atoms = [parse_atom(text) for text in patterns]
    answers = 0
    for index in range(count):
        answers += len(kb.query(atoms[index % len(atoms)]))
    after = process.memory_full_info()
    return {
        "rss_before_open_bytes": before.rss,
        "rss_after_bytes": after.rss,
        "uss_after_bytes": after.uss,
        "queries": count,
        "answers": answers,
    }


def query_loop(kb_path: str, seconds: float, query: str) -> dict:
    from metta_numba.interp.runner import MeTTa
    from metta_numba.space import SnapshotSpace
    from metta_numba.store import PersistentKB

    runner = MeTTa(space=SnapshotSpace(PersistentKB.open(kb_path, readonly=True)))
    runs = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        runner.run(query)
        runs += 1
    return {"runs": runs}


def compile_loop(source: str, count: int) -> dict:
    from metta_numba.syntax.bulk import encode_file
    from metta_numba.trie import Trie

    for _ in range(count):
        batch = encode_file(source)
        trie = Trie.build(batch.data, batch.offsets, names=batch.names)
    return {"paths": len(trie)}


def main(argv: list[str]) -> int:
    job, args = argv[0], argv[1:]
    if job == "cold-query":
        out = cold_query(args[0], args[1], args[2], prefetch=args[3:] == ["prefetch"])
    elif job == "warm-after-drop":
        out = warm_after_drop(args[0])
    elif job == "rss-after-queries":
        out = rss_after_queries(args[0], int(args[1]), args[2:])
    elif job == "query-loop":
        out = query_loop(args[0], float(args[1]), args[2])
    elif job == "compile":
        out = compile_loop(args[0], int(args[1]))
    else:
        print(f"unknown job {job!r}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
