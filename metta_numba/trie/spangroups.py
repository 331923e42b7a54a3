"""Equal byte spans grouped in bulk, so that each distinct value of a query's answers is decoded
once: a million answers that name a quarter of a million symbols decode a quarter of a million
times, and the rest is an index into a list.

Spans are hashed (FNV-1a), sorted by hash, and each run of equal hashes is split by comparing
the bytes themselves, so a hash collision never merges two different values.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import u8_ro

i64_arr = types.Array(types.int64, 1, "C")
u64_arr = types.Array(types.uint64, 1, "C")

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(u64_arr(u8_ro, i64_arr, i64_arr), cache=True, nogil=True)
def span_hashes(buf, starts, ends):
    out = np.empty(starts.shape[0], np.uint64)
    for i in range(starts.shape[0]):
        h = _FNV_OFFSET
        for k in range(starts[i], ends[i]):
            h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
        out[i] = h
    return out


@njit(types.boolean(u8_ro, types.int64, types.int64, types.int64, types.int64), cache=True, nogil=True)
def _same_bytes(buf, start_a, end_a, start_b, end_b):
    if end_a - start_a != end_b - start_b:
        return False
    for k in range(end_a - start_a):
        if buf[start_a + k] != buf[start_b + k]:
            return False
    return True


@njit(types.Tuple((i64_arr, i64_arr))(u8_ro, i64_arr, i64_arr, u64_arr, i64_arr), cache=True, nogil=True)
def _assign(buf, starts, ends, hashes, order):
    """(group of each span, one representative span per group) given spans sorted by hash;
    groups are numbered in the order of their first span."""
    n = order.shape[0]
    group = np.empty(n, np.int64)
    representative = np.empty(n, np.int64)
    groups = 0
    run_start = 0
    while run_start < n:
        run_end = run_start + 1
        while run_end < n and hashes[order[run_end]] == hashes[order[run_start]]:
            run_end += 1
        first_group = groups
        for r in range(run_start, run_end):
            i = order[r]
            found = -1
            for g in range(first_group, groups):
                j = representative[g]
                if _same_bytes(buf, starts[i], ends[i], starts[j], ends[j]):
                    found = g
                    break
            if found < 0:
                found = groups
                representative[groups] = i
                groups += 1
            group[i] = found
        run_start = run_end
    # Renumber by first occurrence: a column whose values all differ is then its own list of
    # distinct values, in order.
    renumbered = np.full(groups, -1, np.int64)
    first_span = np.empty(groups, np.int64)
    next_group = 0
    for i in range(n):
        g = group[i]
        if renumbered[g] < 0:
            renumbered[g] = next_group
            first_span[next_group] = i
            next_group += 1
        group[i] = renumbered[g]
    return group, first_span


def group_spans(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per span, index of one span per group): spans with equal bytes share a group,
    and groups are numbered in the order of their first span (which represents them)."""
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    hashes = span_hashes(buf, starts, ends)
    order = np.argsort(hashes, kind="stable").astype(np.int64)
    return _assign(buf, starts, ends, hashes, order)


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
