"""Equal byte spans grouped in bulk, so that each distinct value of a query's answers is decoded
once: a million answers that name a quarter of a million symbols decode a quarter of a million
times, and the rest is an index into a list.

The spans are numbered by a value table (trie.value_table: a hash lookup per span, the bytes
compared, so a hash collision never merges two different values).
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import u8_ro
from metta_numba.trie.value_table import ValueTable

i64_arr = types.Array(types.int64, 1, "C")


def group_spans(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per span, index of one span per group): spans with equal bytes share a group,
    and groups are numbered in the order of their first span (which represents them)."""
    groups = ValueTable().add_spans(buf, starts, ends)
    # A span opens a new group exactly when its number passes every number before it.
    highest = np.maximum.accumulate(groups) if len(groups) else groups
    return groups, np.flatnonzero(np.diff(highest, prepend=-1) > 0)


@njit(types.Tuple((types.Array(types.uint8, 1, "C"), types.Array(types.boolean, 1, "C")))(u8_ro, i64_arr, i64_arr),
      cache=True, nogil=True)
def short_symbol_names(buf, starts, ends):
    """The UTF-8 names of the spans that are one short-symbol token (tag 0xC1-0xFF), each
    followed by a newline (no symbol name holds one), and which spans those are."""
    n = starts.shape[0]
    is_symbol = np.zeros(n, np.bool_)
    size = 0
    for i in range(n):
        length = ends[i] - starts[i]
        if length > 1:
            tag = buf[starts[i]]
            if tag > 0xC0 and (tag & 0x3F) == length - 1:
                is_symbol[i] = True
                size += length
    blob = np.empty(size, np.uint8)
    pos = 0
    for i in range(n):
        if is_symbol[i]:
            for k in range(starts[i] + 1, ends[i]):
                blob[pos] = buf[k]
                pos += 1
            blob[pos] = 10
            pos += 1
    return blob, is_symbol
