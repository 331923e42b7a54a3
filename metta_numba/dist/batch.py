"""Batch querying on Dask (DESIGN.md section 8).

A batch is a file of `!` queries against one KB snapshot. The queries are cut into chunks,
each chunk runs on a Dask worker, and the printed lines come back in the order of the file.
Each worker process opens the snapshot once and keeps it (opening is O(1), over a shared
filesystem too), so a chunk costs only its queries.

The default cluster is a LocalCluster on this machine; `scheduler=` takes the address of a
running one (for instance a dask-jobqueue cluster on SLURM or PBS).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

# One open interpreter per worker process and KB path: workers run many chunks.
_WORKER_SESSIONS: dict[str, object] = {}


@dataclass
class BatchResult:
    lines: list[str]
    """One printed line per query, in the order of the file."""
    workers: int
    chunks: int


def _session_for(kb_path: str):
    session = _WORKER_SESSIONS.get(kb_path)
    if session is None:
        from metta_numba.interp.runner import MeTTa
        from metta_numba.space import SnapshotSpace
        from metta_numba.store import PersistentKB

        kb = PersistentKB.open(kb_path, readonly=True)
        session = MeTTa(space=SnapshotSpace(kb))
        _WORKER_SESSIONS[kb_path] = session
    return session


def run_chunk(kb_path: str, queries: list[str]) -> list[str]:
    """Evaluate query texts (each without its `!`) against the KB; one printed line each.

    Runs inside a worker. Each query runs on its own, so one query's Error does not stop the
    chunk; it prints as its result line, as it would at the end of a file."""
    from metta_numba.syntax.printer import format_results

    session = _session_for(kb_path)
    lines = []
    for text in queries:
        results = session.run("!" + text)
        lines.append(format_results(results[0]) if results else "[]")
    return lines


def split_queries(text: str, filename: str) -> list[str]:
    """The `!` queries of a batch file as texts; a non-query atom is an error (a batch never
    writes to the KB)."""
    from metta_numba.syntax.parser import iter_program
    from metta_numba.syntax.printer import format_atom

    queries = []
    for item in iter_program(text, filename):
        if not item.is_query:
            raise ValueError(
                f"{filename}:{item.line}:{item.col}: a batch file holds `!` queries only, "
                f"found a plain atom {format_atom(item.atom)}"
            )
        queries.append(format_atom(item.atom))
    return queries


def chunked(items: list[str], chunks: int) -> list[list[str]]:
    """Cut items into at most `chunks` contiguous, nearly equal parts (order kept)."""
    chunks = max(1, min(chunks, len(items)))
    size, extra = divmod(len(items), chunks)
    parts, start = [], 0
    for i in range(chunks):
        end = start + size + (1 if i < extra else 0)
        parts.append(items[start:end])
        start = end
    return [p for p in parts if p]


def run_batch(
    kb_path: str,
    queries: list[str],
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    chunks_per_worker: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Run the queries on a Dask cluster and return their printed lines in order."""
    from dask.distributed import Client, LocalCluster, as_completed

    kb_path = os.path.abspath(kb_path)
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        worker_count = max(1, len(client.scheduler_info().get("workers", {})))
        parts = chunked(queries, worker_count * chunks_per_worker)
        futures = [client.submit(run_chunk, kb_path, part, pure=False) for part in parts]
        index_of = {f.key: i for i, f in enumerate(futures)}
        outputs: list[list[str] | None] = [None] * len(parts)
        done = 0
        for future in as_completed(futures):
            outputs[index_of[future.key]] = future.result()
            done += 1
            if progress:
                progress(done, len(parts))
        lines = [line for part in outputs for line in (part or [])]
        return BatchResult(lines=lines, workers=worker_count, chunks=len(parts))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
