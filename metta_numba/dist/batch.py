"""Batch querying on Dask (DESIGN.md section 8), fit for HPC batches of millions of queries.

A batch is a file of `!` queries against one KB (plain or sharded). The queries are cut into
chunks; each chunk runs on a Dask worker, and the result lines are handed to `emit` in the
order of the file as soon as every earlier line is in, so output streams while the batch runs.

- Each worker process opens the KB once and keeps it (opening is O(1) over a shared
  filesystem); every query runs in a fresh interpreter session over it, so an `add-atom` in
  one query never shows in the next (the KB is opened read-only: nothing is written).
- `timeout` bounds each query's time: a watchdog thread raises QueryTimeout inside the
  evaluating thread, and the query's line says it timed out. A Numba kernel already running
  finishes its call first (kernels are bounded by the KB's size, never by the query).
- `max_results` caps the results printed per query (the evaluation itself is bounded by
  `timeout`).
- Chunks are submitted a window at a time as earlier ones finish, so memory stays bounded and
  workers that join later (an adaptive dask-jobqueue cluster) take the next chunks.
- On a sharded KB, a plain `(match &self PATTERN ...)` whose pattern has a ground key reads one
  shard and shard 0; chunks of such queries are grouped by that shard and sent to the worker
  the placement map gives the shard (shard index modulo the workers present), so each worker
  keeps its shards' pages hot. Other queries go to any worker, which opens all shards.
"""

from __future__ import annotations

import atexit
import ctypes
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from metta_numba.dist.cluster import worker_addresses


@dataclass(frozen=True)
class BatchOptions:
    timeout: float | None = None
    max_results: int | None = None
    chunk_size: int | None = None


@dataclass
class BatchStats:
    queries: int
    chunks: int
    workers: int
    seconds: float
    routed_chunks: int = 0


class QueryTimeout(BaseException):
    """Raised inside a query that ran out of time (a BaseException, so that the interpreter's
    own `except Exception` handlers do not turn it into an Error atom and carry on)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise QueryTimeout in this thread once `seconds` have passed inside the block."""
    if not seconds or seconds <= 0:
        yield
        return
    target = ctypes.c_ulong(threading.get_ident())
    finished = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if not finished.wait(seconds):
            fired.set()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(QueryTimeout))

    watcher = threading.Thread(target=watch, daemon=True, name="metta-numba-query-timeout")
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()
        if fired.is_set():
            # The exception may still be pending (the block ended just as it fired): clear it
            # and raise it here, where the caller is ready for it.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
    if fired.is_set():
        raise QueryTimeout


# ---- on a worker ------------------------------------------------------------------------------

# The KBs a worker process has opened, by path: workers run many chunks.
_WORKER_KBS: dict[str, object] = {}


@atexit.register
def _close_worker_kbs() -> None:
    """Release the KBs' locks and maps while the interpreter is still whole."""
    while _WORKER_KBS:
        _WORKER_KBS.popitem()[1].close()


def _open_kb(kb_path: str):
    kb = _WORKER_KBS.get(kb_path)
    if kb is None:
        from metta_numba.dist.manifest import is_sharded

        if is_sharded(kb_path):
            from metta_numba.dist.sharded_kb import ShardedKB

            kb = ShardedKB.open(kb_path)
        else:
            from metta_numba.store import PersistentKB

            kb = PersistentKB.open(kb_path, readonly=True)
        _WORKER_KBS[kb_path] = kb
    return kb


def _fresh_session(kb):
    from metta_numba.interp.runner import MeTTa

    if hasattr(kb, "shards"):
        from metta_numba.dist.sharded_kb import ShardedSpace

        return MeTTa(space=ShardedSpace(kb))
    from metta_numba.space import SnapshotSpace

    return MeTTa(space=SnapshotSpace(kb))


def run_query(kb, text: str, options: BatchOptions) -> str:
    """One query's printed line, run in a fresh session over `kb`."""
    from metta_numba.syntax.printer import format_results

    from metta_numba.store.errors import SnapshotError

    try:
        with time_limit(options.timeout):
            results = _fresh_session(kb).run("!" + text)
    except QueryTimeout:
        return _error_line(text, f"timed out after {options.timeout:g} s")
    except SnapshotError:
        raise  # a bad KB ends the batch (exit 3), it is no answer of this query
    except Exception as err:  # one query's failure is its line; the batch goes on
        return _error_line(text, f"{type(err).__name__}: {err}")
    answers = results[0] if results else []
    if options.max_results is not None:
        answers = answers[: options.max_results]
    # One line per query, whatever a grounded value's text holds.
    return format_results(answers).replace("\n", "\\n")


def _error_line(text: str, message: str) -> str:
    from metta_numba.atoms import Grounded
    from metta_numba.syntax.printer import format_atom

    return f"[(Error {text} {format_atom(Grounded(message))})]".replace("\n", "\\n")


def run_chunk(kb_path: str, queries: list[str], options: BatchOptions = BatchOptions()) -> list[str]:
    """Evaluate query texts (each without its `!`) against the KB; one printed line each.
    Runs inside a worker. One query's Error does not stop the chunk: it is that query's line.
    The chunk's plain matches are answered together first (`plain_match_lines`)."""
    kb = _open_kb(kb_path)
    lines = plain_match_lines(kb, queries, options)
    return [run_query(kb, text, options) if line is None else line for text, line in zip(queries, lines)]


def _plain_match(text: str) -> tuple | None:
    """(pattern, template) of a query `(match &self PATTERN TEMPLATE)` whose pattern is no
    conjunction, else None."""
    from metta_numba.atoms import Expression, Symbol
    from metta_numba.space.conjunction import conjuncts
    from metta_numba.syntax.errors import ParseError
    from metta_numba.syntax.parser import parse_atom

    try:
        atom = parse_atom(text)
    except ParseError:
        return None
    kids = atom.children if type(atom) is Expression else ()
    if len(kids) != 4 or kids[0] != Symbol("match") or kids[1] != Symbol("&self") or conjuncts(kids[2]) is not None:
        return None
    return kids[2], kids[3]


def plain_match_lines(kb, queries: list[str], options: BatchOptions) -> list[str | None]:
    """The lines of the queries that are plain matches on &self, answered through one
    `query_many` call over all their patterns; None for every other query (and for a match
    whose instantiated templates the evaluator would not give back unchanged: those run in a
    session as usual). A line is the one a session prints for the query."""
    from metta_numba.syntax.errors import ParseError
    from metta_numba.syntax.printer import format_atom, format_results
    from metta_numba.unify import substitute

    lines: list[str | None] = [None] * len(queries)
    session = _fresh_session(kb)  # never evaluates: it tells final answers (no rule reduces them)
    tier = session.ev.tier
    final = tier.final_match_answers() if tier is not None else None
    if final is None:
        return lines
    picked = []
    for i, text in enumerate(queries):
        parts = _plain_match(text)
        # A pattern or template that holds one of the session's tokens reads differently there.
        if parts is not None and all(session.apply_tokens(part) == part for part in parts):
            picked.append((i, *parts))
    if not picked:
        return lines
    try:
        found = kb.query_many([format_atom(pattern) for _, pattern, _ in picked])
    except (ParseError, ValueError):
        return lines  # a pattern that does not read back as one atom: every query runs as usual
    for k, (i, _, template) in enumerate(picked):
        results = [substitute(template, bindings) for _, bindings in found[k]]
        if final(results):
            if options.max_results is not None:
                results = results[: options.max_results]
            lines[i] = format_results(results).replace("\n", "\\n")
    return lines


# ---- on the client ------------------------------------------------------------------------------


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


def chunked(items: list, chunks: int) -> list[list]:
    """Cut items into at most `chunks` contiguous, nearly equal parts (order kept)."""
    chunks = max(1, min(chunks, len(items)))
    size, extra = divmod(len(items), chunks)
    parts, start = [], 0
    for i in range(chunks):
        end = start + size + (1 if i < extra else 0)
        parts.append(items[start:end])
        start = end
    return [p for p in parts if p]


def query_home(text: str, shards: int) -> int | None:
    """The keyed shard a `(match &self PATTERN ...)` query reads (besides shard 0), or None."""
    from metta_numba.atoms import Expression, Symbol
    from metta_numba.dist.partition import home_shard
    from metta_numba.syntax.parser import parse_atom

    try:
        atom = parse_atom(text)
    except Exception:  # the worker reports the query's own error
        return None
    if (
        type(atom) is Expression
        and len(atom.children) == 4
        and atom.children[0] == Symbol("match")
        and atom.children[1] == Symbol("&self")
    ):
        return home_shard(atom.children[2], shards)
    return None


def plan_chunks(queries: list[str], start: int, chunk_size: int, block: int, shards: int) -> Iterator[tuple[list[int], int | None]]:
    """(query indices, home shard or None) per chunk, block by block in file order; inside a
    block, queries of one home shard go together."""
    for block_start in range(start, len(queries), block):
        indices = range(block_start, min(block_start + block, len(queries)))
        if shards <= 1:
            groups = {None: list(indices)}
        else:
            groups: dict[int | None, list[int]] = {}
            for i in indices:
                groups.setdefault(query_home(queries[i], shards), []).append(i)
        for home, members in groups.items():
            for k in range(0, len(members), chunk_size):
                yield members[k : k + chunk_size], home


def run_batch(
    client,
    kb_path: str,
    queries: list[str],
    emit: Callable[[str], None],
    *,
    options: BatchOptions = BatchOptions(),
    start: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> BatchStats:
    """Run queries[start:] on the cluster of `client`; `emit` gets each line, in file order."""
    import os

    from dask.distributed import wait

    from metta_numba.dist.manifest import is_sharded, read_manifest

    started = time.perf_counter()
    kb_path = os.path.abspath(kb_path)
    shards = read_manifest(kb_path).shards if is_sharded(kb_path) else 1
    remaining = len(queries) - start
    workers_now = max(1, len(worker_addresses(client)))
    chunk_size = options.chunk_size or max(1, min(1000, math.ceil(remaining / (workers_now * 8))))
    block = chunk_size * workers_now * 4
    plan = plan_chunks(queries, start, chunk_size, block, shards)
    lines: dict[int, str] = {}
    next_out = start
    in_flight: dict = {}
    chunks = routed = 0
    seen_workers: set[str] = set()
    exhausted = False
    while True:
        addresses = worker_addresses(client)
        seen_workers.update(addresses)
        window = max(4, 3 * len(addresses))
        while not exhausted and len(in_flight) < window:
            task = next(plan, None)
            if task is None:
                exhausted = True
                break
            indices, home = task
            texts = [queries[i] for i in indices]
            placement = {}
            if home is not None and addresses:
                placement = {"workers": [addresses[home % len(addresses)]], "allow_other_workers": True}
                routed += 1
            future = client.submit(run_chunk, kb_path, texts, options, pure=False, **placement)
            in_flight[future] = indices
            chunks += 1
        if not in_flight:
            break
        done, _ = wait(list(in_flight), return_when="FIRST_COMPLETED")
        for future in done:
            indices = in_flight.pop(future)
            for i, line in zip(indices, future.result(), strict=True):
                lines[i] = line
        while next_out in lines:
            emit(lines.pop(next_out))
            next_out += 1
        if progress:
            progress(next_out - start, remaining)
    return BatchStats(
        queries=remaining,
        chunks=chunks,
        workers=len(seen_workers),
        seconds=time.perf_counter() - started,
        routed_chunks=routed,
    )
