"""Many ground lookups in one kernel call (PersistentKB.query_many).

A batch of encoded patterns (the bulk reader's one buffer and offsets) is visited in byte
order of their first 16 bytes, so that neighbouring lookups walk the same top of the trie
(and, on a cold memmap, the same pages). Each pattern without variables gets what
argindex.ground_candidates gives one: how many stored paths may unify with it (stored
variables included) and the rank of the path equal to it when that is its only candidate.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.argindex_kernels import prefix_ranges, range_total
from metta_numba.trie.layout import StructureType, i64_arr, i64_ro, u8_ro
from metta_numba.trie.pathmatch import holds_number
from metta_numba.trie.walk import lookup_rank

NOT_LOOKED_UP = -1
"""The candidate total of a pattern the kernel leaves to the caller: it has a variable, or a
number (which a snapshot may hold in its other encoding, see snapshot_probes)."""


@njit(types.uint64(u8_ro, types.int64, types.int64), cache=True, nogil=True)
def _big_endian_word(data, start, end):
    """Up to 8 bytes of data[start:end] as one big-endian word (missing bytes are zeros)."""
    word = np.uint64(0)
    for k in range(8):
        byte = data[start + k] if start + k < end else 0
        word = (word << np.uint64(8)) | np.uint64(byte)
    return word


@njit(types.Tuple((i64_arr, i64_arr))(StructureType, u8_ro, i64_ro, i64_ro), cache=True, nogil=True)
def ground_lookups(trie, data, offsets, names):
    """(totals, ranks) for the patterns data[offsets[i]:offsets[i+1]]: totals[i] stored paths
    may unify with pattern i, ranks[i] is the rank of its own path when that is its only
    candidate, else -1. Patterns with variables (names[i] >= 0) or numbers get totals[i] =
    NOT_LOOKED_UP."""
    n = offsets.shape[0] - 1
    high = np.empty(n, np.uint64)
    low = np.empty(n, np.uint64)
    for i in range(n):
        start = offsets[i]
        end = offsets[i + 1]
        if start < 0 or end < start or end > data.shape[0]:
            raise ValueError("pattern offsets out of order or out of range")
        high[i] = _big_endian_word(data, start, end)
        low[i] = _big_endian_word(data, start + 8, end)
    # Two stable passes: by the second word, then by the first.
    order = np.argsort(low, kind="mergesort")
    order = order[np.argsort(high[order], kind="mergesort")]
    totals = np.full(n, NOT_LOOKED_UP, np.int64)
    ranks = np.full(n, -1, np.int64)
    for k in range(n):
        i = order[k]
        start = offsets[i]
        end = offsets[i + 1]
        if names[i] >= 0 or holds_number(data, start, end):
            continue
        path = data[start:end]
        ranges, _ = prefix_ranges(trie, path)
        total = range_total(ranges)
        totals[i] = total
        if total == 1 and ranges.shape[0] == 2:
            rank = lookup_rank(trie, path)
            if rank == ranges[0]:
                ranks[i] = rank
    return totals, ranks
