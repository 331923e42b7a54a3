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
from metta_numba.trie.layout import i32_arr, i32_ro, i64_arr, u8_arr, u8_ro
from metta_numba.trie.relation_cells import ROW_MALFORMED, ROW_OK, child_end
from metta_numba.trie.value_table import CHUNK, add_span, rebuilt_slots, slot_bits, with_room

Int = types.int64


@njit(
    types.UniTuple(Int, 3)(
        u8_ro, i32_ro, i32_ro, Int, Int, Int, Int, i64_arr, u8_arr, i64_arr,
        i32_arr, i64_arr, i64_arr, u8_arr, Int,
    ),
    cache=True,
    nogil=True,
)
def _read_rows(suffixes, common, length, arity, first, last, at, ids, path, ends, slots, keys, offsets, blob,
               count):
    """relation_ids over rows first..last-1, the stream's suffixes read from `at`, in table
    arrays with room for all their cells: (status, where the next row's suffix starts, count).
    `path` holds the previous row, ends[c] where its child c ends (c = 0: the head)."""
    width = arity - 1
    bits = slot_bits(slots)
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
            return ROW_MALFORMED, at, count
        pos = 1 if changed == 0 else ends[changed - 1]
        state = ROW_OK
        for child in range(changed, width + 1):
            child_start = pos
            pos, state = child_end(path, pos, size, state)
            if state != ROW_OK:
                return state, at, count
            ends[child] = pos
            if child > 0:
                value = add_span(path, child_start, pos, slots, keys, offsets, blob, count, bits)
                if value == count:
                    count += 1
                ids[i * width + child - 1] = value
        for child in range(1, min(changed, width + 1)):
            ids[i * width + child - 1] = ids[(i - 1) * width + child - 1]
        if ends[width] != size:
            return ROW_MALFORMED, at, count
    return ROW_OK, at, count


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
    for i in range(n):
        longest = max(longest, np.int64(length[i]))
    path = np.empty(longest, np.uint8)
    ends = np.zeros(width + 1, np.int64)
    before = count
    at = 0
    for first in range(0, n, CHUNK):
        last = min(n, first + CHUNK)
        size = 0
        for i in range(first, last):
            size += length[i]
        slots, keys, offsets, blob = with_room(slots, keys, offsets, blob, count, (last - first) * width, size)
        status, at, count = _read_rows(suffixes, common, length, arity, first, last, at, ids, path, ends,
                                       slots, keys, offsets, blob, count)
        if status != ROW_OK:
            return ids, status, rebuilt_slots(slots.shape[0], offsets, blob, before), keys, offsets, blob, before
    return ids, ROW_OK, slots, keys, offsets, blob, count
