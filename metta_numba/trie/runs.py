"""Sorted runs of paths and their k-way merge: the out-of-core half of building a trie.

A run is what `Trie.build` computes before the layout, for one chunk of a batch: its distinct
paths in byte order as a front-coded stream (stream.py: `suffixes`, `common`, `length`), with
each path's count and the name of its first occurrence. Runs are stored back to back in five
flat arrays (so that they can be memory-mapped files), with `path_start` and `byte_start`
telling where run r begins.

`merge_runs` merges any number of runs into one stream, exactly the stream `Trie.build` gives
for the chunks' paths together: equal paths fold into one, counts add, and the name is the
one of the earliest run holding the path (a heap ordered by path, then run number). The merge
is resumable: it stops after a given number of input paths, keeping its whole state in
`MergeState`'s arrays, so the caller can report progress between calls.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie import sort
from metta_numba.trie.layout import i32_arr, i32_ro, i64_arr, i64_ro, u8_arr, u8_ro, u64_arr, u64_ro

Int = types.int64
u8_2d = types.Array(types.uint8, 2, "C")

# Slots of the merge's scalar state.
STARTED, HEAP_SIZE, N_OUT, N_BYTES, LAST_LEN, CONSUMED = range(6)
N_SCALARS = 6


def sorted_run(
    data: np.ndarray, offsets: np.ndarray, names: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One chunk's paths as a run: (suffixes, common, length, counts, names), as `Trie.build`
    sorts and folds them."""
    counts = np.zeros(0, np.int64)
    order = sort.sort_paths(data, offsets)
    first, common, length, total, picked = sort.fold_duplicates(data, offsets, order, counts, names)
    del order
    suffixes = sort.suffix_labels(data, offsets, first, common, length)
    return suffixes, common, length, total, picked


@njit(Int(u8_2d, i64_arr, Int, Int), cache=True, nogil=True)
def compare_heads(heads, head_len, a, b):
    """-1, 0 or 1 as run a's current path sorts before, equal to or after run b's."""
    a_len = head_len[a]
    b_len = head_len[b]
    limit = min(a_len, b_len)
    for k in range(limit):
        if heads[a, k] != heads[b, k]:
            return -1 if heads[a, k] < heads[b, k] else 1
    if a_len == b_len:
        return 0
    return -1 if a_len < b_len else 1


@njit(types.boolean(u8_2d, i64_arr, Int, Int), cache=True, nogil=True)
def comes_first(heads, head_len, a, b):
    """Heap order: by current path, and among equal paths the earlier run."""
    order = compare_heads(heads, head_len, a, b)
    return order < 0 or (order == 0 and a < b)


@njit(types.boolean(u8_2d, i64_arr, Int, u8_arr, Int), cache=True, nogil=True)
def same_head(heads, head_len, run, path, path_len):
    """Whether run `run`'s current path is path[:path_len]."""
    if head_len[run] != path_len:
        return False
    for k in range(path_len):
        if heads[run, k] != path[k]:
            return False
    return True


@njit(types.void(i64_arr, Int, Int, u8_2d, i64_arr), cache=True, nogil=True)
def sift_down(heap, size, at, heads, head_len):
    while True:
        smallest = at
        for child in (2 * at + 1, 2 * at + 2):
            if child < size and comes_first(heads, head_len, heap[child], heap[smallest]):
                smallest = child
        if smallest == at:
            return
        heap[at], heap[smallest] = heap[smallest], heap[at]
        at = smallest


@njit(types.void(i64_arr, Int, u8_2d, i64_arr), cache=True, nogil=True)
def sift_up(heap, at, heads, head_len):
    while at > 0:
        parent = (at - 1) // 2
        if not comes_first(heads, head_len, heap[at], heap[parent]):
            return
        heap[at], heap[parent] = heap[parent], heap[at]
        at = parent


@njit(types.boolean(u8_ro, i32_ro, i32_ro, i64_ro, i64_arr, i64_arr, u8_2d, i64_arr, Int), cache=True, nogil=True)
def load_next(suffixes, common, length, path_start, next_path, next_byte, heads, head_len, run):
    """Rebuild run `run`'s next path in its head row; False when the run is exhausted."""
    index = next_path[run]
    if index == path_start[run + 1]:
        return False
    shared = common[index]
    size = length[index]
    at = next_byte[run]
    heads[run, shared:size] = suffixes[at : at + size - shared]
    head_len[run] = size
    next_path[run] = index + 1
    next_byte[run] = at + size - shared
    return True


@njit(
    types.boolean(
        *(u8_ro, i32_ro, i32_ro, u64_ro, i64_ro, i64_ro),
        *(i64_arr, i64_arr, i64_arr, u8_2d, i64_arr, u8_arr, i64_arr),
        *(u8_arr, i32_arr, i32_arr, u64_arr, i64_arr, Int),
    ),
    cache=True,
    nogil=True,
)
def merge_runs(
    suffixes, common, length, counts, names, path_start,
    scalars, next_path, next_byte, heads, head_len, last, heap,
    out_suffixes, out_common, out_length, out_count, out_name, budget,
):  # fmt: skip
    """Merge the runs into the out_* stream until about `budget` input paths more are read;
    True when every run is exhausted. `path_start` has one entry per run plus the end; the
    state arrays come from `MergeState`. The outputs are as large as the inputs together."""
    n_runs = path_start.shape[0] - 1
    if scalars[STARTED] == 0:
        scalars[STARTED] = 1
        size = 0
        for run in range(n_runs):
            if load_next(suffixes, common, length, path_start, next_path, next_byte, heads, head_len, run):
                heap[size] = run
                sift_up(heap, size, heads, head_len)
                size += 1
        scalars[HEAP_SIZE] = size
    size = scalars[HEAP_SIZE]
    n_out = scalars[N_OUT]
    n_bytes = scalars[N_BYTES]
    last_len = scalars[LAST_LEN]
    read = 0
    while size > 0 and read < budget:
        first_run = heap[0]
        path_len = head_len[first_run]
        name = names[next_path[first_run] - 1]  # the heap's top is the earliest run holding it
        shared = 0
        limit = min(last_len, path_len)
        while shared < limit and last[shared] == heads[first_run, shared]:
            shared += 1
        last[shared:path_len] = heads[first_run, shared:path_len]
        last_len = path_len
        out_suffixes[n_bytes : n_bytes + path_len - shared] = last[shared:path_len]
        n_bytes += path_len - shared
        # Take this path from every run whose head it is; their counts add up.
        total = np.uint64(0)
        while size > 0 and same_head(heads, head_len, heap[0], last, path_len):
            run = heap[0]
            total += counts[next_path[run] - 1]
            read += 1
            if not load_next(suffixes, common, length, path_start, next_path, next_byte, heads, head_len, run):
                size -= 1
                heap[0] = heap[size]
            sift_down(heap, size, 0, heads, head_len)
        out_common[n_out] = shared
        out_length[n_out] = path_len
        out_count[n_out] = total
        out_name[n_out] = name
        n_out += 1
    scalars[HEAP_SIZE] = size
    scalars[N_OUT] = n_out
    scalars[N_BYTES] = n_bytes
    scalars[LAST_LEN] = last_len
    scalars[CONSUMED] += read
    return size == 0


class MergeState:
    """The arrays `merge_runs` resumes from, for runs whose longest path is `widest` bytes."""

    def __init__(self, path_start: np.ndarray, byte_start: np.ndarray, widest: int) -> None:
        n_runs = len(path_start) - 1
        self.path_start = np.ascontiguousarray(path_start, np.int64)
        self.scalars = np.zeros(N_SCALARS, np.int64)
        self.next_path = self.path_start[:-1].copy()
        self.next_byte = np.ascontiguousarray(byte_start[:-1], np.int64).copy()
        self.heads = np.zeros((n_runs, max(widest, 1)), np.uint8)
        self.head_len = np.zeros(n_runs, np.int64)
        self.last = np.zeros(max(widest, 1), np.uint8)
        self.heap = np.zeros(max(n_runs, 1), np.int64)

    @property
    def consumed(self) -> int:
        """Input paths read so far."""
        return int(self.scalars[CONSUMED])

    @property
    def merged(self) -> tuple[int, int]:
        """(paths, suffix bytes) written so far."""
        return int(self.scalars[N_OUT]), int(self.scalars[N_BYTES])

    def step(self, runs: tuple[np.ndarray, ...], out: tuple[np.ndarray, ...], budget: int) -> bool:
        """Merge about `budget` more input paths of `runs` (suffixes, common, length, counts,
        names) into `out` (the same five, with room for all of them); True when done."""
        suffixes, common, length, counts, names = runs
        return merge_runs(
            suffixes, common, length, counts, names, self.path_start,
            self.scalars, self.next_path, self.next_byte, self.heads, self.head_len, self.last, self.heap,
            *out, budget,
        )  # fmt: skip
