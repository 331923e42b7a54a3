"""`snapshot build` of sources of any size: chunks, sorted runs on disk, one k-way merge.

The sources are read in chunks cut between top-level atoms. Each chunk is scanned by the bulk
reader's kernel, its strings interned (in source order, so term ids are those of reading the
sources whole), and its paths sorted and folded into a run (trie.runs), which is appended to
run files in a temporary folder inside the KB directory. Scanning and sorting run in a pool
of `jobs` threads (the kernels release the GIL); at most `jobs + 1` chunks are in flight, and
the chunk size is the memory budget shared among them. A streaming merge of all runs then
gives the distinct paths, counts and names that the in-memory build gives (with more runs
than the budget merges at once, groups of them are merged into longer runs first), from
which the trie is laid out, merkleized and written as `store.snapshot.build_snapshot` writes
it: byte for byte, unless the merkleizing's table of classes, a share of the budget, fills
(trie.dag_table; the trie then shares fewer subtries but holds the same paths).
The argument index is built by an external sort too (trie.argindex_runs), into files of the
same folder, which the writer copies into the generation.

The temporary folder is removed when the build ends, and any left by a killed build is removed
by the next build (under the writer lock, so never one in use). A killed build never touches
the KB's current generation: CURRENT is replaced last.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metta_numba.codec.terms import TermStore
from metta_numba.store.errors import os_errors_as_access_errors
from metta_numba.store.snapshot import describe_sources, generation_slot, publish_trie
from metta_numba.syntax.errors import ParseError
from metta_numba.trie import Trie
from metta_numba.trie.argindex import IndexOptions
from metta_numba.trie.argindex_runs import ENTRY_RUN_HEAD_BYTES, build_index_from_runs, run_entries_for
from metta_numba.trie.layout import narrowest_dtype
from metta_numba.trie.spill import (
    PIECE,
    append_in_pieces,
    drop_pages,
    in_pieces,
    return_freed_blocks,
    run_groups,
    trim_heap,
    zeroed_file_array,
)

RUNS_PREFIX = ".build-runs-"
DEFAULT_BUDGET_SHARE = 0.5
"""Without --memory-budget a build may use half of the machine's RAM."""
BYTES_PER_TEXT_BYTE = 16
"""Memory one byte of chunk text takes while its chunk is scanned, encoded and sorted (text,
paths, offsets, sort order and keys, fold columns, run), with margin; sizes the chunks."""
MIN_CHUNK_BYTES = 256
MERGE_STEP = 1 << 18
"""Input paths merged between two progress reports."""
CLASS_TABLE_SHARE = 4
"""A merkleized merge's table of classes (trie.dag_table) takes at most this fraction of the
budget; past it the DAG is less shared, but the build's memory no longer grows with the KB."""
MIN_CLASS_TABLE_SLOTS = 1 << 16
"""However small the budget, the table has room for this many slots (1 MiB at most)."""
RUN_HEAD_BYTES = 320 << 10
"""Memory a k-way merge holds for each run it reads: the mapped pages around the next path in
each of the run's five files (a fault maps more than the one page a read needs)."""
MERGE_SHARE = 4
"""The heads of the runs one merge reads take at most this fraction of the budget."""
MIN_FAN_IN = 16
"""However small the budget, a merge reads this many runs at once."""
RUN_FILES = ("suffixes", "common", "length", "counts", "names")
RUN_DTYPES = (np.uint8, np.int32, np.int32, np.uint64, np.int64)

_BUDGET_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class QueriesInSourceError(ValueError):
    """A snapshot source holds `!` queries; a KB holds atoms only."""

    def __init__(self, source: str, atom: int) -> None:
        super().__init__(
            f"{source}: holds `!` queries (the first is atom {atom}); a snapshot source holds atoms only. "
            "Run the program with `metta-numba --save-snapshot` instead."
        )


def machine_ram() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_memory_budget() -> int:
    """DEFAULT_BUDGET_SHARE of the machine's RAM."""
    return int(machine_ram() * DEFAULT_BUDGET_SHARE)


def parse_memory_budget(text: str) -> int:
    """Bytes of a budget such as `4G`, `512M`, `1.5GiB` or `100000000` (units are powers of
    1024). Raises ValueError saying what is accepted."""
    match = _BUDGET_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size: give a number with an optional unit K, M, G or T, e.g. 4G")
    number, unit, _ = match.groups()
    size = int(float(number) * _UNITS[unit.lower()])
    if size <= 0:
        raise ValueError(f"{text!r}: the budget must be more than 0 bytes")
    return size


@dataclass
class Chunk:
    """Bytes [start, start + len(raw)) of a source, whole top-level atoms, and where they start
    in the file's lines (to report parse errors at their place in the file)."""

    source: str
    start: int
    raw: bytes
    line_base: int  # lines before the chunk
    col_base: int  # characters between the last newline before the chunk and its start
    atom_base: int = 0  # atoms of the source before the chunk (set when scanned in order)


def _last_item_start(raw: bytes) -> int:
    """Where the last top-level item of `raw` starts (0 when none past the first): everything
    before it is whole atoms, whatever the cut in the bytes after it."""
    from metta_numba.dist.source_ranges import atom_spans

    starts, _ = atom_spans(np.frombuffer(raw, dtype=np.uint8))
    return int(starts[-1]) if len(starts) else 0


def source_chunks(source: str, chunk_bytes: int) -> Iterator[Chunk]:
    """The chunks of a source, about `chunk_bytes` each (more when one atom is longer)."""
    line_base = col_base = 0
    with open(source, "rb") as f:
        start = 0
        size = chunk_bytes
        while True:
            f.seek(start)
            raw = f.read(size)
            at_end = len(raw) < size
            if not at_end:
                cut = _last_item_start(raw)
                if cut == 0:
                    size *= 2  # no whole atom before the last item starts: read more
                    continue
                raw = raw[:cut]
            if raw:
                yield Chunk(source, start, raw, line_base, col_base)
            if at_end:
                return
            newlines = raw.count(b"\n")
            tail = raw[raw.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")
            line_base += newlines
            col_base = len(tail) if newlines else col_base + len(tail)
            start += len(raw)
            size = chunk_bytes


def _shifted(err: ParseError, chunk: Chunk) -> ParseError:
    """A chunk's parse error, moved to its place in the whole file."""
    col = err.col + (chunk.col_base if err.line == 1 else 0)
    offset = chunk.start + max(err.offset, 0)
    return ParseError(err.message, chunk.source, err.line + chunk.line_base, col, offset)


class RunFiles:
    """Runs appended to five flat files in `folder` (see trie.runs), and where each begins."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = [open(folder / f"{name}.bin", "wb") for name in RUN_FILES]  # noqa: SIM115
        self.path_start = [0]
        self.byte_start = [0]
        self.widest = 0

    def append(self, run: tuple[np.ndarray, ...], widest: int | None = None) -> None:
        """Append a run (its five arrays, read a piece at a time when mapped); `widest`: its
        longest path, when known."""
        for f, array, dtype in zip(self.files, run, RUN_DTYPES, strict=True):
            append_in_pieces(f, np.asarray(array, dtype=dtype))
        suffixes, _, length, _, _ = run
        self.path_start.append(self.path_start[-1] + len(length))
        self.byte_start.append(self.byte_start[-1] + len(suffixes))
        if widest is None and len(length):
            widest = int(length.max())
        self.widest = max(self.widest, widest or 0)

    @property
    def n_runs(self) -> int:
        return len(self.path_start) - 1

    def close(self) -> None:
        for f in self.files:
            f.close()

    def mapped(self) -> tuple[np.ndarray, ...]:
        """The five arrays, memory-mapped read-only (read once, in order, by the merge)."""
        arrays = []
        for name, dtype in zip(RUN_FILES, RUN_DTYPES, strict=True):
            path = self.folder / f"{name}.bin"
            if path.stat().st_size == 0:
                arrays.append(np.zeros(0, dtype))
                continue
            with open(path, "rb") as f:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
                mapped.madvise(mmap.MADV_SEQUENTIAL)
            arrays.append(np.frombuffer(mapped, dtype=dtype))
        return tuple(arrays)


def _scan(chunk: Chunk):
    from metta_numba.syntax.bulk import scan_source

    try:
        return scan_source(chunk.raw, chunk.source)
    except ParseError as err:
        raise _shifted(err, chunk) from None


def _run_of(batch) -> tuple[np.ndarray, ...]:
    from metta_numba.trie.runs import sorted_run

    return sorted_run(batch.data, batch.offsets, np.asarray(batch.names, dtype=np.int64))


def spill_runs(
    sources: list[str],
    terms: TermStore,
    runs: RunFiles,
    chunk_bytes: int,
    jobs: int,
    on_read: Callable[[int], None] | None = None,
) -> int:
    """Read every source in chunks into sorted runs appended to `runs`, interning strings into
    `terms` in source order; returns the number of atoms read."""
    atoms = 0
    window = jobs + 1
    scans: deque = deque()  # (chunk, future of its scan), in source order
    sorts: deque = deque()  # futures of runs, in source order

    def chunks() -> Iterator[Chunk]:
        for source in sources:
            yield from source_chunks(source, chunk_bytes)

    def advance() -> None:
        nonlocal atoms
        if scans and len(sorts) < jobs:
            chunk, future = scans.popleft()
            batch = _intern(future.result(), terms, chunk, atoms_in_source)
            atoms += len(batch)
            sorts.append(pool.submit(_run_of, batch))
        else:
            runs.append(sorts.popleft().result())

    atoms_in_source: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for chunk in chunks():
            scans.append((chunk, pool.submit(_scan, chunk)))
            if on_read is not None:
                on_read(len(chunk.raw))
            while len(scans) + len(sorts) >= window:
                advance()
        while scans or sorts:
            advance()
    return atoms


def _intern(scanned, terms: TermStore, chunk: Chunk, atoms_in_source: dict[str, int]):
    from metta_numba.syntax.bulk import intern_scanned

    before = atoms_in_source.get(chunk.source, 0)
    if np.any(scanned.is_query):
        raise QueriesInSourceError(chunk.source, before + int(np.flatnonzero(scanned.is_query)[0]) + 1)
    atoms_in_source[chunk.source] = before + len(scanned.offsets) - 1
    chunk.raw = b""  # the text is no longer needed
    return intern_scanned(scanned, terms)


def merge_spilled(
    runs: RunFiles,
    on_merge: Callable[[int, int], None] | None = None,
    merkleize: bool = False,
    memory_budget: int | None = None,
    report: dict | None = None,
) -> Trie:
    """The trie of all runs' paths, by a k-way merge of the run files (merkleized on request).

    The merge lets go of the pages of the run files it has read after every step: they are
    read once. Merkleized, each step's part of the merged stream goes to the DAG builder
    (trie.dag_build) at once, through files of the run folder whose pages are let go of too, so
    the stream is never held whole; otherwise the stream, which the tree's layout reads all at
    once, is merged into memory. Counts and names, which neither reads, are merged into files
    and narrowed from there. `memory_budget` bounds the builder's table of classes (see
    class_table_slots); `report` then gets `class_table_sweeps`, how often that table was full."""
    from metta_numba.trie.dag_build import DagBuilder
    from metta_numba.trie.runs import MergeState

    fan_in = merge_fan_in(memory_budget)
    passes = merge_passes(runs.n_runs, fan_in)
    # Progress counts the paths read by every pass: each pass, and the last merge, is a share.
    share = runs.path_start[-1]

    def passed(done: int, total: int) -> None:
        if on_merge is not None:
            on_merge(done, (passes + 1) * total)

    runs = fewer_runs(runs, fan_in, passed)
    total_paths = runs.path_start[-1]
    if total_paths == 0:
        return Trie.build(np.zeros(0, np.uint8), np.zeros(1, np.int64), merkleize=merkleize)
    arrays = runs.mapped()
    n_in, n_bytes_in = len(arrays[2]), len(arrays[0])
    builder = None
    if merkleize:
        builder = DagBuilder(n_in, n_bytes_in, runs.widest, runs.folder, class_table_slots(memory_budget))
    stream_out = (
        (
            zeroed_file_array(runs.folder / "merged.labels", np.uint8, n_bytes_in),
            zeroed_file_array(runs.folder / "merged.common", np.int32, n_in),
            zeroed_file_array(runs.folder / "merged.length", np.int32, n_in),
        )
        if merkleize
        else (np.empty(n_bytes_in, np.uint8), np.empty(n_in, np.int32), np.empty(n_in, np.int32))
    )
    out = (
        *stream_out,
        zeroed_file_array(runs.folder / "merged.counts", np.uint64, n_in),
        zeroed_file_array(runs.folder / "merged.names", np.int64, n_in),
    )
    state = MergeState(np.array(runs.path_start), np.array(runs.byte_start), runs.widest)
    fed_paths = fed_bytes = 0
    for _ in merge_steps(state, arrays, out):
        if builder is not None:
            n_paths, n_bytes = state.merged
            builder.add(out[0][fed_bytes:n_bytes], out[1][fed_paths:n_paths], out[2][fed_paths:n_paths])
            fed_paths, fed_bytes = n_paths, n_bytes
        if on_merge is not None:
            # Copies folded by the passes make the last merge's input shorter: scaled to a share.
            on_merge(passes * share + state.consumed * share // total_paths, (passes + 1) * share)
    n_paths, n_bytes = state.merged
    del arrays
    counts = narrowed(out[3][:n_paths], "leaf_count", runs.folder)
    names = narrowed(out[4][:n_paths], "leaf_name", runs.folder)
    if builder is not None:
        del out, stream_out
        labels, nodes = builder.finish()
        if report is not None:
            report["class_table_sweeps"] = builder.sweeps
        trie = Trie._from_nodes(labels, nodes, counts, names, merkleized=True, folder=runs.folder)
    else:
        # Views of the merge buffers: the pages past the ends were never touched, so cost
        # nothing. Handed over as a list, so that the layout can let go of each once it is read.
        stream = [out[0][:n_bytes], out[1][:n_paths], out[2][:n_paths]]
        del out, stream_out
        trie = Trie._from_stream(stream, counts, names)
    let_go_of(trie)
    return trie


def merge_steps(state, arrays: tuple[np.ndarray, ...], out: tuple[np.ndarray, ...]) -> Iterator[None]:
    """Step a k-way merge (trie.runs.MergeState) of `arrays` into `out` until it is done,
    MERGE_STEP input paths at a time: after each step the caller reads the output so far,
    and then the pages of the runs and of the output are let go of (a no-op for arrays in
    memory)."""
    while True:
        done = state.step(arrays, out, MERGE_STEP)
        yield
        for array in (*arrays, *out):
            drop_pages(array)
        if done:
            return


def merge_fan_in(memory_budget: int | None, head_bytes: int = RUN_HEAD_BYTES) -> int:
    """How many runs, each holding `head_bytes` while it is read, one merge may read within
    `memory_budget` (any number without)."""
    if memory_budget is None:
        return 1 << 62
    return max(MIN_FAN_IN, memory_budget // (MERGE_SHARE * head_bytes))


def merge_passes(n_runs: int, fan_in: int) -> int:
    """How many passes of group merges `fewer_runs` makes before the last merge."""
    passes = 0
    while n_runs > fan_in:
        n_runs = -(-n_runs // fan_in)
        passes += 1
    return passes


def fewer_runs(
    runs: RunFiles, fan_in: int, on_merge: Callable[[int, int], None] | None = None
) -> RunFiles:
    """Runs holding the paths of `runs`, at most `fan_in` of them (closed): while there are more,
    each group of `fan_in` runs in a row is merged into one longer run, in a new folder `pass<n>`
    inside the last, whose run files are then deleted. A path in several runs of a group is
    stored once, with their counts added and the first one's name, as the final merge does.
    `on_merge(paths read, paths in all)` reports each step, counted over all passes."""
    from metta_numba.trie.runs import MergeState

    runs.close()
    level = 0
    total = runs.path_start[-1]
    while runs.n_runs > fan_in:
        level += 1
        arrays = runs.mapped()
        (runs.folder / f"pass{level}").mkdir()
        longer = RunFiles(runs.folder / f"pass{level}")
        for group in run_groups(runs.n_runs, fan_in):
            path_start, byte_start = np.array(runs.path_start[group]), np.array(runs.byte_start[group])
            sizes = (byte_start[-1] - byte_start[0], *(path_start[-1] - path_start[0],) * 4)
            out = tuple(
                zeroed_file_array(longer.folder / f"group.{name}", dtype, int(size))
                for name, dtype, size in zip(RUN_FILES, RUN_DTYPES, sizes, strict=True)
            )
            state = MergeState(path_start, byte_start, runs.widest)
            for _ in merge_steps(state, arrays, out):
                if on_merge is not None:
                    on_merge((level - 1) * total + path_start[0] + state.consumed, total)
            n_paths, n_bytes = state.merged
            longer.append((out[0][:n_bytes], *(array[:n_paths] for array in out[1:])), runs.widest)
            for name in RUN_FILES:
                (longer.folder / f"group.{name}").unlink()
        del arrays
        for name in RUN_FILES:
            (runs.folder / f"{name}.bin").unlink()
        longer.close()
        runs = longer
    return runs


def class_table_slots(memory_budget: int | None) -> int:
    """The bound of a merkleized merge's table of classes within `memory_budget` (none without)."""
    from metta_numba.trie.dag_table import UNBOUNDED, slots_within

    if memory_budget is None:
        return UNBOUNDED
    return max(MIN_CLASS_TABLE_SLOTS, slots_within(memory_budget // CLASS_TABLE_SHARE))


def let_go_of(trie: Trie) -> None:
    """Let go of the pages of the trie's arrays that are mapped from the build's files (the
    labels, the leaves, and the node arrays of a merkleized build): they are read again from
    the page cache when needed."""
    for array in trie.arrays.values():
        drop_pages(array)


def narrowed(values: np.ndarray, name: str, folder: Path) -> np.ndarray:
    """trie.layout.narrowest of a mapped leaf array, read in pieces whose pages are let go of
    as they are read: a file `<name>.leaves` in `folder`, mapped, of the narrowest dtype."""
    out = zeroed_file_array(folder / f"{name}.leaves", narrowest_dtype(values, name), len(values))
    for start, part in in_pieces(values, PIECE, out):
        out[start : start + len(part)] = part
    return out


def remove_stale_runs(directory: Path) -> None:
    """Delete run folders a killed build left (the caller holds the writer lock)."""
    for entry in directory.iterdir():
        if entry.name.startswith(RUNS_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def chunk_size(memory_budget: int, jobs: int) -> int:
    """Bytes of text per chunk: the budget shared among the chunks in flight."""
    return max(MIN_CHUNK_BYTES, memory_budget // ((jobs + 1) * BYTES_PER_TEXT_BYTE))


def build_from_sources(
    sources: list[str],
    path: str | os.PathLike,
    *,
    memory_budget: int | None = None,
    jobs: int | None = None,
    merkleize: bool = True,
    argindex: bool = True,
    index_options: IndexOptions | None = None,
    on_read: Callable[[int], None] | None = None,
    on_merge: Callable[[int, int], None] | None = None,
    on_index: Callable[[int, int], None] | None = None,
) -> dict:
    """Build (or replace) the KB at `path` from .metta sources, reading them in chunks within
    `memory_budget` bytes (default: `default_memory_budget()`) on `jobs` threads (default:
    every core). The snapshot is the one `build_snapshot` writes for the sources read whole.
    Progress: `on_read(bytes)`, `on_merge(paths done, total)`, `on_index(entries done, total)`.
    For the rest of the process, freed large arrays go back to the system at once
    (trie.spill.return_freed_blocks).
    Raises ParseError (at its place in the file), QueriesInSourceError, or store errors."""
    started = time.perf_counter()
    return_freed_blocks()
    directory = Path(path)
    budget = default_memory_budget() if memory_budget is None else memory_budget
    jobs = max(1, jobs or os.cpu_count() or 1)
    fresh = not directory.exists()
    try:
        with os_errors_as_access_errors(directory), generation_slot(directory, overwrite=True) as number:
            remove_stale_runs(directory)
            folder = directory / f"{RUNS_PREFIX}{os.getpid()}"
            folder.mkdir()
            try:
                terms = TermStore()
                runs = RunFiles(folder)
                merge_report: dict = {}
                try:
                    atoms = spill_runs(sources, terms, runs, chunk_size(budget, jobs), jobs, on_read)
                    spilled = time.perf_counter()
                    trim_heap()
                    trie = merge_spilled(runs, on_merge, merkleize, budget, merge_report)
                finally:
                    runs.close()
                merged = time.perf_counter()
                trim_heap()
                options = (index_options or IndexOptions()) if argindex else None
                index = None
                if options is not None:
                    index = build_index_from_runs(
                        trie,
                        options,
                        folder,
                        run_entries_for(budget),
                        lambda: let_go_of(trie),
                        on_index,
                        merge_fan_in(budget, ENTRY_RUN_HEAD_BYTES),
                    )
                    trim_heap()
                indexed = time.perf_counter()
                report = publish_trie(
                    directory,
                    number,
                    trie,
                    terms,
                    source_files=describe_sources(sources),
                    started=started,
                    built=merged,
                    index_options=options,
                    index=index,
                )
                del index
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        if fresh:
            _remove_if_only_lock(directory)
        raise
    report.update(atoms_read=atoms, runs=runs.n_runs, memory_budget=budget, jobs=jobs, **merge_report)
    report.update(spill_seconds=spilled - started, merge_seconds=merged - spilled, index_seconds=indexed - merged)
    return report


def _remove_if_only_lock(directory: Path) -> None:
    """Take back a KB directory this build created and left with nothing but its lock file."""
    from metta_numba.store import layout

    try:
        if [entry.name for entry in directory.iterdir()] == [layout.LOCK]:
            (directory / layout.LOCK).unlink()
            directory.rmdir()
    except OSError:
        pass
