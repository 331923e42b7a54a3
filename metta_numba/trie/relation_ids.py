"""A relation's cells as value ids, read straight from a leaf stream (trie.stream).

What store.join_views needs of a relation `(head a1 ... ak)` is, per stored row, the value id
of each argument (trie.value_table). Reading it as a batch would expand the front-coded stream
into whole paths (a million rows of `(edge n_i n_j)`: 21 MB), split every path into its
children (trie.relation_cells) and look every cell up. Here one pass keeps only the current
row: it takes the row's suffix past the bytes it shares with the row before, and every child
that ends within those shared bytes is the previous row's value, id and all; only the
children from the first one that changes on are parsed, checked and looked up. Rows come in
byte order, so the first argument changes once per run of rows.

A relation is only joinable when every row is (see relation_cells for the reasons a row is
not): the first row that is not stops the pass, and the values it numbered are forgotten.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import i32_arr, i32_ro, i64_2d, i64_arr, u8_arr, u8_ro
from metta_numba.trie.relation_cells import ROW_MALFORMED, ROW_OK, child_end
from metta_numba.trie.value_table import CHUNK, add_keyed, rebuilt_slots, span_key, with_room

Int = types.int64


@njit(
    types.UniTuple(Int, 3)(
        u8_ro, i32_ro, i32_ro, Int, Int, Int, Int, u8_arr, i64_arr, u8_arr, i64_arr, i64_arr, i64_2d, i64_arr
    ),
    cache=True,
    nogil=True,
)
def _parse_rows(suffixes, common, length, arity, first, last, at, path, ends, staging, starts, stops, keyed,
                pending):
    """Rows first..last-1 of the stream (their suffixes read from `at`): each child that is
    not the previous row's goes to `staging` (its bytes), starts/stops (where) and keyed
    (span_key), in the order met, and pending[cell] (cell: a row's child, from the chunk's
    first row) is its index there, or -1 for a child the row shares with the one before.
    `path` holds the previous row, ends[c] where its child c ends (c = 0: the head). Returns
    (status, where the next row's suffix starts, children queued)."""
    width = arity - 1
    queued = 0
    used = 0
    for i in range(first, last):
        shared = np.int64(common[i])
        size = np.int64(length[i])
        for k in range(shared, size):
            path[k] = suffixes[at + k - shared]
        at += size - shared
        changed = 0  # the first child not within the shared bytes (0: the head)
        if i > 0:
            while changed <= width and ends[changed] <= shared:
                changed += 1
        if changed == 0 and (size == 0 or np.int64(path[0]) != arity):
            return ROW_MALFORMED, at, queued
        row = (i - first) * width
        for child in range(1, min(changed, width + 1)):
            pending[row + child - 1] = -1
        pos = 1 if changed == 0 else ends[changed - 1]
        state = ROW_OK
        for child in range(changed, width + 1):
            child_start = pos
            pos, state = child_end(path, pos, size, state)
            if state != ROW_OK:
                return state, at, queued
            ends[child] = pos
            if child > 0:
                starts[queued] = used
                for k in range(child_start, pos):
                    staging[used] = path[k]
                    used += 1
                stops[queued] = used
                w0, w1, h = span_key(staging, starts[queued], used)
                keyed[queued, 0] = w0
                keyed[queued, 1] = w1
                keyed[queued, 2] = h
                pending[row + child - 1] = queued
                queued += 1
        if ends[width] != size:
            return ROW_MALFORMED, at, queued
    return ROW_OK, at, queued


@njit(
    types.Tuple((i64_arr, Int, i32_arr, i64_arr, i64_arr, u8_arr, Int))(
        u8_ro, i32_ro, i32_ro, Int, i32_arr, i64_arr, i64_arr, u8_arr, Int
    ),
    cache=True,
    nogil=True,
)
def relation_ids(suffixes, common, length, arity, slots, keys, offsets, blob, count):
    """(ids, status, slots, keys, offsets, blob, count) for the stream (suffixes, common,
    length) of expressions of `arity` children: ids[i * (arity - 1) + c] is the value id of
    child c + 1 (after the head) of row i, new values numbered from `count` in the order met
    and added to the table (slots, keys, offsets, blob; grown as needed). With a status other
    than ROW_OK (the first row's that was not) the ids are void and the table is as it was."""
    n = common.shape[0]
    width = max(arity - 1, 0)
    ids = np.empty(n * width, np.int64)
    longest = 1
    most = 1  # the bytes of the longest chunk of rows
    for first in range(0, n, CHUNK):
        size = 0
        for i in range(first, min(n, first + CHUNK)):
            longest = max(longest, np.int64(length[i]))
            size += length[i]
        most = max(most, size)
    path = np.empty(longest, np.uint8)
    ends = np.zeros(width + 1, np.int64)
    cells = min(n, CHUNK) * width
    staging = np.empty(most, np.uint8)
    starts = np.empty(cells, np.int64)
    stops = np.empty(cells, np.int64)
    keyed = np.empty((cells, 3), np.int64)
    pending = np.empty(cells, np.int64)
    found = np.empty(cells, np.int64)
    before = count
    at = 0
    for first in range(0, n, CHUNK):
        last = min(n, first + CHUNK)
        status, at, queued = _parse_rows(suffixes, common, length, arity, first, last, at, path, ends, staging,
                                         starts, stops, keyed, pending)
        if status != ROW_OK:
            return ids, status, rebuilt_slots(slots.shape[0], offsets, blob, before), keys, offsets, blob, before
        staged = stops[queued - 1] if queued else 0
        slots, keys, offsets, blob = with_room(slots, keys, offsets, blob, count, queued, staged)
        count = add_keyed(staging, starts, stops, 0, keyed, queued, found, slots, keys, offsets, blob, count)
        for cell in range(first * width, last * width):
            j = pending[cell - first * width]
            ids[cell] = found[j] if j >= 0 else ids[cell - width]
    return ids, ROW_OK, slots, keys, offsets, blob, count
