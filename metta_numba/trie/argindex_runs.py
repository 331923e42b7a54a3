"""The argument index (argindex.py) of a trie of any size, built by an external sort.

`ArgIndex.build` sorts every entry of the trie in memory: some 25 bytes an entry, several
entries a path, and as much again for the sort, which made the index the peak of a large
build. Here the entries of ranges of ranks are sorted into runs of at most `run_entries`
entries each, by (slot, kind, key) with ranks ascending, and appended to two files: each
entry's sort key `group << 32 | key` (`group` = slot * 3 + kind; a key has 32 bits) and its
rank. A run is sorted in place by a radix sort of those 64-bit numbers (argindex_entries
.sort_pairs) in one buffer that every run reuses. Two streaming k-way merges of the runs follow:
the first counts the distinct keys of each position, from which `argindex_plan.RowPlan` lays out
the table exactly as the in-memory build does; the second writes every posting, key and key
start straight to its place in the output arrays, which are zero-filled files mapped from the
build folder (or plain arrays when there is none). Runs cover ascending rank ranges, so the
order (group, key, run) is the order (group, key, rank) of the in-memory sort, and the arrays
come out byte for byte the same.

The merges stop every MERGE_STEP entries (`_Merge`), and the caller lets go of the pages
of the mapped files in between (spill.drop_pages), so the resident set stays bounded by the
runs' size and the merge state, not by the size of the index. A merge holds the pages around
each run's next entry, so with more runs than `fan_in`, groups of runs in a row are merged
into longer runs first (`fewer_entry_runs`), as store.chunked_build does with its path runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie import argindex_entries as entries
from metta_numba.trie import packed
from metta_numba.trie.argindex import (
    MIN_RATIO_CAP,
    ArgIndex,
    IndexOptions,
    _cover_ranges,
    _in_ranges,
    position_code,
    served_codes,
)
from metta_numba.trie.argindex_plan import CODE_COLUMN, FENCE_STRIDE, RANK_COLUMN, RowPlan, code_slots, dense_rows
from metta_numba.trie.layout import i32_arr, i64_arr, i64_ro, u32_arr, u64_arr, u64_ro
from metta_numba.trie.spill import (
    append_in_pieces,
    append_to_run_file,
    drop_pages,
    file_array,
    run_groups,
    zeroed_file_array,
)
from metta_numba.trie.trie import Trie

Int = types.int64
i32_ro = types.Array(types.int32, 1, "C", readonly=True)
i8_ro = types.Array(types.int8, 1, "C", readonly=True)

ENTRY_FILES = (("sort_key", np.uint64), ("rank", np.int32))
"""An entry's `group << 32 | key` (argindex_entries.entry_sort_keys) and its rank, which fits
int32: a trie holds at most layout.MAX_DISTINCT_PATHS paths."""
ENTRY_BUILD_BYTES = 256
"""Memory an entry of a run takes while its rank range is read, filtered and sorted, with
margin for the trie read alongside: sizes the runs from the budget."""
KEEP_KEYED = 1
"""Flags of a slot in the second merge: its ground and open entries are written..."""
KEEP_VARIABLES = 2
"""...its variable entries are written (argindex_plan.RowPlan.reads_variables)."""
MIN_RUN_ENTRIES = 16
MAX_RUN_ENTRIES = 1 << 22
"""Runs hold at most this many entries, whatever the budget: larger runs were slower, not
faster (the large KB's index: 3.0-3.8 s with runs of 4M entries, 5.3-5.8 s with 16M). Their
buffers (48 MiB at this size) stay closer to the caches and touch less fresh memory, and a
merge of more runs costs little more."""
MERGE_STEP = 1 << 20
ENTRY_RUN_HEAD_BYTES = 128 << 10
"""Memory a merge holds for each entry run it reads: the mapped pages around the next entry
in each of its two files."""
READ_CHUNK = 1 << 16
"""Paths read from the trie at a time (fewer when a run holds fewer entries, so that a tiny
budget gives many runs, each of a few paths)."""
MAX_ENTRIES_PER_PATH = 16

# Slots of the merge's scalar state.
STARTED, HEAP_SIZE, LAST_GROUP, UNIQUE, N_OUT, CONSUMED = range(6)
N_SCALARS = 6


def run_entries_for(memory_budget: int) -> int:
    """Entries per run within a memory budget."""
    return max(MIN_RUN_ENTRIES, min(MAX_RUN_ENTRIES, memory_budget // ENTRY_BUILD_BYTES))


@njit(types.boolean(u64_ro, i64_arr, Int, Int), cache=True, nogil=True, inline="always")
def _before(sort_keys, next_at, a, b):
    """Heap order: run a's next entry before run b's, by (group, key, run)."""
    i = next_at[a]
    j = next_at[b]
    if sort_keys[i] != sort_keys[j]:
        return sort_keys[i] < sort_keys[j]
    return a < b


@njit(types.void(u64_ro, i64_arr, i64_arr, Int, Int), cache=True, nogil=True)
def _sift_down(sort_keys, next_at, heap, size, at):
    while True:
        smallest = at
        for child in (2 * at + 1, 2 * at + 2):
            if child < size and _before(sort_keys, next_at, heap[child], heap[smallest]):
                smallest = child
        if smallest == at:
            return
        heap[at], heap[smallest] = heap[smallest], heap[at]
        at = smallest


@njit(Int(u64_ro, i64_ro, i64_arr, i64_arr), cache=True, nogil=True)
def _heap_of_runs(sort_keys, run_start, next_at, heap):
    """Put every run that is not empty on the heap; returns its size."""
    size = 0
    for run in range(run_start.shape[0] - 1):
        if run_start[run] < run_start[run + 1]:
            heap[size] = run
            size += 1
    for at in range(size // 2 - 1, -1, -1):
        _sift_down(sort_keys, next_at, heap, size, at)
    return size


@njit(Int(u64_ro, i64_ro, i64_arr, i64_arr, Int), cache=True, nogil=True, inline="always")
def _next_of_run(sort_keys, run_start, next_at, heap, size):
    """Move the heap's first run past the entry just taken, dropping it when it is exhausted;
    returns the heap's size."""
    run = heap[0]
    next_at[run] += 1
    if next_at[run] == run_start[run + 1]:
        size -= 1
        heap[0] = heap[size]
    _sift_down(sort_keys, next_at, heap, size, 0)
    return size


@njit(types.void(u64_arr, Int, Int), cache=True, nogil=True)
def put_packed(words, i, value):
    """Set value i of a zero-filled packed array (trie.packed) to `value`."""
    width = np.int64(words[0])
    if width == 0:
        return
    bit = i * width
    packed.put_bits(words, packed.HEADER_WORDS + (bit >> 6), np.uint64(bit & 63), np.uint64(value))


@njit(
    types.boolean(
        *(u64_ro, i32_ro, i64_ro, i64_arr, i64_arr, i64_arr, u64_arr, Int, types.boolean),
        *(i8_ro, i64_ro, i64_ro, i64_arr, u32_arr, u64_arr, u64_arr),
    ),
    cache=True,
    nogil=True,
)
def merge_entry_runs(
    sort_keys, ranks, run_start, next_at, heap, scalars, last_key, budget, count_only,
    keyed, key_lo, fence_lo, key_counts, hashes, key_start, out_ranks,
):  # fmt: skip
    """Merge the runs until about `budget` more entries are read; True when all are.

    count_only: add the distinct ground keys of each slot to `key_counts`. Otherwise write
    the entries the plan keeps: the variable entries of a slot with KEEP_VARIABLES, and the
    ground and open entries of a slot with KEEP_KEYED, to `out_ranks` in merged order; each
    distinct key of a keyed slot to `hashes[key_lo[slot] + k]` with its first posting in
    `key_start`, every FENCE_STRIDE-th also to the fence at `fence_lo[slot]` (whose key start
    stays 0)."""
    if scalars[STARTED] == 0:
        scalars[STARTED] = 1
        scalars[LAST_GROUP] = -1
        scalars[HEAP_SIZE] = _heap_of_runs(sort_keys, run_start, next_at, heap)
    size = scalars[HEAP_SIZE]
    last_group = scalars[LAST_GROUP]
    unique = scalars[UNIQUE]
    n_out = scalars[N_OUT]
    read = 0
    while size > 0 and read < budget:
        run = heap[0]
        at = next_at[run]
        group = np.int64(sort_keys[at] >> np.uint64(32))
        key = sort_keys[at] & np.uint64(entries.KEY_MASK)
        slot = group // 3
        kind = group % 3
        if group != last_group:
            unique = 0
            new_key = True
        else:
            new_key = key != last_key[0]
        if count_only:
            if kind == entries.GROUND and new_key:
                key_counts[slot] += 1
        elif (keyed[slot] & (KEEP_VARIABLES if kind == entries.VARIABLE else KEEP_KEYED)) != 0:
            if kind == entries.GROUND and new_key:
                hashes[key_lo[slot] + unique] = np.uint32(key)
                put_packed(key_start, key_lo[slot] + unique, n_out)
                if unique % FENCE_STRIDE == 0:
                    hashes[fence_lo[slot] + unique // FENCE_STRIDE] = np.uint32(key)
            put_packed(out_ranks, n_out, np.int64(ranks[at]))
            n_out += 1
        if kind == entries.GROUND and new_key:
            unique += 1
        last_group = group
        last_key[0] = key
        read += 1
        size = _next_of_run(sort_keys, run_start, next_at, heap, size)
    scalars[HEAP_SIZE] = size
    scalars[LAST_GROUP] = last_group
    scalars[UNIQUE] = unique
    scalars[N_OUT] = n_out
    scalars[CONSUMED] += read
    return size == 0


@njit(types.boolean(u64_ro, i32_ro, i64_ro, i64_arr, i64_arr, i64_arr, u64_arr, i32_arr, Int), cache=True, nogil=True)
def merge_into_run(sort_keys, ranks, run_start, next_at, heap, scalars, out_keys, out_ranks, budget):
    """Merge the runs into one run (`out_keys`, `out_ranks`, in the heap's order: by sort key,
    then run) until about `budget` more entries are read; True when all are."""
    if scalars[STARTED] == 0:
        scalars[STARTED] = 1
        scalars[HEAP_SIZE] = _heap_of_runs(sort_keys, run_start, next_at, heap)
    size = scalars[HEAP_SIZE]
    n_out = scalars[N_OUT]
    read = 0
    while size > 0 and read < budget:
        run = heap[0]
        at = next_at[run]
        out_keys[n_out] = sort_keys[at]
        out_ranks[n_out] = ranks[at]
        n_out += 1
        read += 1
        size = _next_of_run(sort_keys, run_start, next_at, heap, size)
    scalars[HEAP_SIZE] = size
    scalars[N_OUT] = n_out
    scalars[CONSUMED] += read
    return size == 0


def fewer_entry_runs(
    mapped: tuple[np.ndarray, ...], run_start: np.ndarray, fan_in: int, folder: Path
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """(mapped arrays, run starts) of at most `fan_in` runs holding the entries of the runs
    given: while there are more, each group of `fan_in` runs in a row is merged into one, in
    files `entries<pass>.*` of `folder`, and the files of the pass before are deleted. Runs
    cover ascending rank ranges and a group keeps them in order, so the merges that follow see
    the entries in the same order."""
    level = 0
    while len(run_start) - 1 > fan_in:
        level += 1
        files = [open(folder / f"entries{level}.{name}", "wb") for name, _ in ENTRY_FILES]  # noqa: SIM115
        longer = [0]
        for group in run_groups(len(run_start) - 1, fan_in):
            starts = run_start[group]
            n = int(starts[-1] - starts[0])
            out = tuple(zeroed_file_array(folder / f"group.{name}", dtype, n) for name, dtype in ENTRY_FILES)
            next_at = starts[:-1].copy()
            heap = np.zeros(len(starts) - 1, np.int64)
            scalars = np.zeros(N_SCALARS, np.int64)
            while not merge_into_run(*mapped, starts, next_at, heap, scalars, *out, MERGE_STEP):
                for array in (*mapped, *out):
                    drop_pages(array)
            for f, array in zip(files, out):
                append_in_pieces(f, array)
            for name, _ in ENTRY_FILES:
                (folder / f"group.{name}").unlink()
            longer.append(longer[-1] + n)
        for f in files:
            f.close()
        del mapped
        for name, _ in ENTRY_FILES:
            (folder / f"entries{'' if level == 1 else level - 1}.{name}").unlink()
        mapped = tuple(file_array(folder / f"entries{level}.{name}", dtype) for name, dtype in ENTRY_FILES)
        run_start = np.array(longer, np.int64)
    return mapped, run_start


class EntryRuns:
    """Sorted runs of index entries, appended to two files in `folder` (ENTRY_FILES).

    Entries gather in one buffer, which is sorted and written out as a run once it holds
    `run_entries`. The buffer and the sort's scratch are allocated once and serve every run:
    memory a process has not touched yet costs a page fault per page (on a virtual machine
    that hands freed memory back to its host, every time)."""

    def __init__(self, folder: Path, run_entries: int) -> None:
        self.folder = folder
        self.files = [open(folder / f"entries.{name}", "wb") for name, _ in ENTRY_FILES]  # noqa: SIM115
        self.run_entries = run_entries
        self.run_start = [0]
        self.group_counts = np.zeros(0, np.int64)
        self.buffers: tuple[np.ndarray, ...] = ()
        self.n_pending = 0

    def add(self, sort_keys: np.ndarray, ranks: np.ndarray) -> None:
        """Add entries (sort keys and ranks, in rank order); a full buffer becomes a run."""
        needed = self.n_pending + len(sort_keys)
        if not self.buffers or needed > len(self.buffers[0]):
            capacity = max(needed, self.run_entries + len(sort_keys))
            grown = (np.empty(capacity, np.uint64), np.empty(capacity, np.int32))
            for old, new in zip(self.buffers, grown):
                new[: self.n_pending] = old[: self.n_pending]
            self.buffers = (*grown, np.empty(capacity, np.uint64), np.empty(capacity, np.int32))
        self.buffers[0][self.n_pending : needed] = sort_keys
        self.buffers[1][self.n_pending : needed] = ranks
        self.n_pending = needed
        counts = np.bincount((sort_keys >> np.uint64(32)).astype(np.int64))
        if len(counts) > len(self.group_counts):
            counts[: len(self.group_counts)] += self.group_counts
            self.group_counts = counts
        else:
            self.group_counts[: len(counts)] += counts
        if self.n_pending >= self.run_entries:
            self.flush()

    def flush(self) -> None:
        """Sort the entries gathered and append them as one run (nothing when there are none)."""
        n = self.n_pending
        if n == 0:
            return
        sort_keys, ranks, spare_keys, spare_ranks = self.buffers
        entries.sort_pairs(sort_keys[:n], ranks[:n], spare_keys, spare_ranks)
        append_to_run_file(self.files[0], sort_keys[:n])
        append_to_run_file(self.files[1], ranks[:n])
        self.run_start.append(self.run_start[-1] + n)
        self.n_pending = 0

    def close(self) -> None:
        self.buffers = ()
        for f in self.files:
            f.close()

    def mapped(self) -> tuple[np.ndarray, ...]:
        self.close()
        return tuple(file_array(self.folder / f"entries.{name}", dtype) for name, dtype in ENTRY_FILES)


def _kept_entries(trie: Trie, lo: int, hi: int, options: IndexOptions, cover: np.ndarray, wanted_codes):
    """(sort keys, ranks) of the entries of ranks lo..hi-1 that the index keeps."""
    data, offsets, _, _ = trie.batch(lo, hi)
    columns = list(entries.batch_entries(data, offsets, lo, options.max_child))
    del data, offsets
    keep = _in_ranges(columns[RANK_COLUMN], cover)
    if wanted_codes is not None:
        keep &= np.isin(columns[CODE_COLUMN], wanted_codes)
    if not keep.all():
        columns = [column[keep] for column in columns]
    codes, kinds, keys, ranks = columns
    groups = code_slots(codes, options.max_child) * 3 + kinds
    return entries.entry_sort_keys(groups, keys), ranks.astype(np.int32)


def spill_entry_runs(
    trie: Trie, options: IndexOptions, cover: np.ndarray, folder: Path, run_entries: int, after_run=None
) -> EntryRuns:
    """Every kept entry of the trie, in sorted runs of about `run_entries` entries."""
    wanted_codes = None
    if options.positions is not None:
        wanted = [position_code(p) for p in options.positions]
        # A depth-2 position needs its parent's variables; bare variables always count.
        wanted_codes = wanted + [code & ~entries.DEPTH2_MASK for code in wanted] + [entries.TOP_VARIABLE_CODE]
    runs = EntryRuns(folder, run_entries)
    step = min(READ_CHUNK, max(1, run_entries // MAX_ENTRIES_PER_PATH))
    for lo in range(0, len(trie), step):
        n_runs = len(runs.run_start)
        runs.add(*_kept_entries(trie, lo, min(lo + step, len(trie)), options, cover, wanted_codes))
        if after_run is not None and len(runs.run_start) > n_runs:
            after_run()
    runs.flush()
    if after_run is not None:
        after_run()
    return runs


class _Merge:
    """One pass of `merge_entry_runs` over the runs, in steps with the pages let go between."""

    def __init__(self, runs: tuple[np.ndarray, ...], run_start: np.ndarray) -> None:
        self.runs = runs
        self.run_start = run_start
        self.next_at = run_start[:-1].copy()
        self.heap = np.zeros(max(len(run_start) - 1, 1), np.int64)
        self.scalars = np.zeros(N_SCALARS, np.int64)
        self.last_key = np.zeros(1, np.uint64)

    def run(
        self,
        count_only: bool,
        plan_arrays: tuple[np.ndarray, ...],
        outputs: tuple[np.ndarray, ...],
        on_step: Callable[[int], None] | None = None,
    ) -> int:
        sort_keys, ranks = self.runs
        while True:
            done = merge_entry_runs(
                sort_keys, ranks, self.run_start, self.next_at, self.heap, self.scalars, self.last_key,
                MERGE_STEP, count_only, *plan_arrays, *outputs,
            )  # fmt: skip
            for array in (*self.runs, *outputs):
                drop_pages(array)
            if on_step is not None:
                on_step(int(self.scalars[CONSUMED]))
            if done:
                return int(self.scalars[N_OUT])


def build_index_from_runs(
    trie: Trie,
    options: IndexOptions | None,
    folder: Path,
    run_entries: int,
    after_run: Callable[[], None] | None = None,
    on_merge: Callable[[int, int], None] | None = None,
    fan_in: int = 1 << 62,
) -> ArgIndex:
    """The argument index `ArgIndex.build(trie, options)` gives, built within about
    `run_entries` entries of memory; its arrays are files in `folder` (which the caller
    removes once they are written elsewhere). `after_run` is called after each run is spilled
    (to let go of the trie's pages, when it is a mapped one); `on_merge(done, total)` as the
    two merges read the runs' entries (each entry is read twice). A merge reads at most
    `fan_in` runs (`fewer_entry_runs`)."""
    options = options or IndexOptions()
    n_leaves = len(trie)
    cover = _cover_ranges(trie, options.heads)
    runs = spill_entry_runs(trie, options, cover, folder, run_entries, after_run)
    mapped, run_start = fewer_entry_runs(runs.mapped(), np.array(runs.run_start, np.int64), fan_in, folder)
    counts = runs.group_counts
    n_slots = -(-len(counts) // 3)
    counts = np.concatenate([counts, np.zeros(3 * n_slots - len(counts), np.int64)]).reshape(n_slots, 3)
    key_counts = np.zeros(n_slots, np.int64)
    empty_i64, empty_u32, empty_u64 = np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint64)
    no_plan = (np.zeros(n_slots, np.int8), empty_i64, empty_i64, key_counts)
    total = 2 * int(run_start[-1])

    def counted(done: int) -> None:
        if on_merge is not None:
            on_merge(done, total)

    def written(done: int) -> None:
        counted(total // 2 + done)

    _Merge(mapped, run_start).run(True, no_plan, (empty_u32, empty_u64, empty_u64), counted)

    present = np.flatnonzero(counts.sum(axis=1))
    slot_codes = dense_rows(present, options.max_child)[1].tolist()
    cap = options.max_bytes
    if cap is None and options.max_ratio is not None:
        cap = max(int(options.max_ratio * trie.nbytes), MIN_RATIO_CAP)
    keyed_codes = None if options.positions is None else {position_code(p) for p in options.positions}
    rows = counts[present]
    plan = RowPlan(
        slot_codes,
        rows[:, entries.GROUND].tolist(),
        key_counts[present].tolist(),
        rows[:, entries.OPEN].tolist(),
        rows[:, entries.VARIABLE].tolist(),
        n_leaves,
        cover,
        options.max_child,
        keyed_codes,
        cap,
        served_codes(trie, options),
    )
    keyed = np.zeros(n_slots, np.int8)
    key_lo = np.zeros(n_slots, np.int64)
    fence_lo = np.zeros(n_slots, np.int64)
    flags = np.array(plan.keyed, np.int8) * KEEP_KEYED
    keyed[present] = flags + np.array(plan.reads_variables, np.int8) * KEEP_VARIABLES
    key_lo[present] = plan.key_lo
    fence_lo[present] = plan.fence_lo
    hashes = zeroed_file_array(folder / "index.hashes", np.uint32, plan.n_hashes)
    key_start = _packed_file(folder / "index.key_start", plan.n_hashes, plan.start_width)
    ranks = _packed_file(folder / "index.ranks", plan.n_ranks, plan.rank_width)
    plan_arrays = (keyed, key_lo, fence_lo, key_counts)
    n_out = _Merge(mapped, run_start).run(False, plan_arrays, (hashes, key_start, ranks), written)
    if n_out != plan.n_ranks:
        raise AssertionError(f"the merge wrote {n_out} postings, the plan has {plan.n_ranks}")
    del mapped
    return ArgIndex({"table": plan.table, "hashes": hashes, "key_start": key_start, "ranks": ranks})


def _packed_file(path: Path, n: int, width: int) -> np.ndarray:
    """A zero-filled packed array (trie.packed) of n values of `width` bits, in a file."""
    words = zeroed_file_array(path, np.uint64, packed.words_for(n, width))
    words[0] = width
    words[1] = n
    return words
