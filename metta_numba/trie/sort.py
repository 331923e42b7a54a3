"""Sorting a batch of paths and folding duplicates, in Numba.

The sort is an MSD radix sort whose digits are 7-byte chunks: each group of paths that agree
so far is ordered by one uint64 key per path (the next 7 bytes, big-endian, then how many of
them exist), and every run of equal full keys becomes a group one digit deeper. The byte count
in the low bits puts a path before its own zero-padded extensions, so key order is byte order.
Paths of a knowledge base share long prefixes (`(= (` and the head symbol), which this skips
7 bytes per pass instead of comparing them again in every comparison. Small groups finish
with an insertion sort on the bytes themselves.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import i32_arr, i64_arr, i64_ro, u8_arr, u8_ro, u64_arr

DIGIT_BYTES = 7
SMALL_GROUP = 24
"""Groups this small are insertion-sorted: a key pass and an argsort cost more there."""


@njit(types.uint64(u8_ro, i64_ro, types.int64, types.int64), cache=True, nogil=True)
def digit_key(data, offsets, path, depth):
    """The sort key of `path` at byte `depth`: 7 bytes, then how many of them exist (0..7)."""
    start = offsets[path] + depth
    end = offsets[path + 1]
    present = min(max(end - start, 0), DIGIT_BYTES)
    key = np.uint64(0)
    for j in range(DIGIT_BYTES):
        byte = data[start + j] if j < present else 0
        key = (key << np.uint64(8)) | np.uint64(byte)
    return (key << np.uint64(8)) | np.uint64(present)


@njit(types.int64(u8_ro, i64_ro, types.int64, types.int64, types.int64), cache=True, nogil=True)
def compare_paths(data, offsets, a, b, depth):
    """-1, 0 or 1 as path a sorts before, equal to or after path b; bytes before `depth` are
    known to be equal."""
    a_pos = offsets[a] + depth
    b_pos = offsets[b] + depth
    a_end = offsets[a + 1]
    b_end = offsets[b + 1]
    while a_pos < a_end and b_pos < b_end:
        if data[a_pos] != data[b_pos]:
            return -1 if data[a_pos] < data[b_pos] else 1
        a_pos += 1
        b_pos += 1
    if a_pos < a_end:
        return 1
    if b_pos < b_end:
        return -1
    return 0


@njit(types.int64(u8_ro, types.int64, types.int64, u8_ro, types.int64, types.int64), cache=True, nogil=True)
def common_prefix(a, a_start, a_end, b, b_start, b_end):
    """Length of the common prefix of a[a_start:a_end] and b[b_start:b_end]."""
    limit = min(a_end - a_start, b_end - b_start)
    k = 0
    while k < limit and a[a_start + k] == b[b_start + k]:
        k += 1
    return k


@njit(types.void(u8_ro, i64_ro, i64_arr, types.int64, types.int64, types.int64), cache=True, nogil=True)
def insertion_sort(data, offsets, order, lo, hi, depth):
    for i in range(lo + 1, hi):
        item = order[i]
        j = i - 1
        while j >= lo and compare_paths(data, offsets, order[j], item, depth) > 0:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = item


@njit(i64_arr(u8_ro, i64_ro), cache=True, nogil=True)
def sort_paths(data, offsets):
    """The permutation that puts the paths in byte order (equal paths end up adjacent)."""
    n = offsets.shape[0] - 1
    order = np.arange(n)
    keys = np.empty(n, np.uint64)
    # Pending groups (lo, hi, depth); at most one per element of `order`.
    groups = np.empty((max(n, 1), 3), np.int64)
    groups[0, 0] = 0
    groups[0, 1] = n
    groups[0, 2] = 0
    n_groups = 1 if n > 1 else 0
    while n_groups > 0:
        n_groups -= 1
        lo = groups[n_groups, 0]
        hi = groups[n_groups, 1]
        depth = groups[n_groups, 2]
        if hi - lo <= SMALL_GROUP:
            insertion_sort(data, offsets, order, lo, hi, depth)
            continue
        for i in range(lo, hi):
            keys[i] = digit_key(data, offsets, order[i], depth)
        by_key = np.argsort(keys[lo:hi])
        order[lo:hi] = order[lo:hi][by_key]
        keys[lo:hi] = keys[lo:hi][by_key]
        run_start = lo
        for i in range(lo + 1, hi + 1):
            if i < hi and keys[i] == keys[run_start]:
                continue
            # A run of equal keys with all 7 bytes present goes on to the next digit; a run
            # whose paths ended inside this digit holds copies of one path.
            full_digit = (keys[run_start] & np.uint64(0xFF)) == DIGIT_BYTES
            if i - run_start > 1 and full_digit:
                groups[n_groups, 0] = run_start
                groups[n_groups, 1] = i
                groups[n_groups, 2] = depth + DIGIT_BYTES
                n_groups += 1
            run_start = i
    return order


@njit(
    types.Tuple((i64_arr, i32_arr, i32_arr, u64_arr, i64_arr))(u8_ro, i64_ro, i64_ro, i64_ro, i64_ro),
    cache=True,
    nogil=True,
)
def fold_duplicates(data, offsets, order, counts, names):
    """Walk the sorted paths once and fold runs of equal paths into one distinct path.

    Returns, per distinct path in order: the input index of its first occurrence, its common
    prefix length with the previous distinct path, its length, its summed count (each input
    counts 1 when `counts` is empty) and the name of its first occurrence (-1 when `names` is
    empty)."""
    n = order.shape[0]
    first = np.empty(n, np.int64)
    common = np.empty(n, np.int32)
    length = np.empty(n, np.int32)
    total = np.empty(n, np.uint64)
    n_distinct = 0
    i = 0
    while i < n:
        head = order[i]
        earliest = head
        count = np.uint64(counts[head]) if counts.shape[0] > 0 else np.uint64(1)
        j = i + 1
        while j < n and compare_paths(data, offsets, order[j], head, 0) == 0:
            other = order[j]
            earliest = min(earliest, other)
            count += np.uint64(counts[other]) if counts.shape[0] > 0 else np.uint64(1)
            j += 1
        lcp = 0
        if n_distinct > 0:
            prev = first[n_distinct - 1]
            lcp = common_prefix(data, offsets[prev], offsets[prev + 1], data, offsets[head], offsets[head + 1])
        first[n_distinct] = earliest
        common[n_distinct] = lcp
        length[n_distinct] = offsets[head + 1] - offsets[head]
        total[n_distinct] = count
        n_distinct += 1
        i = j
    picked = np.full(n_distinct, -1, np.int64)
    if names.shape[0] > 0:
        for k in range(n_distinct):
            picked[k] = names[first[k]]
    return (
        first[:n_distinct].copy(),
        common[:n_distinct].copy(),
        length[:n_distinct].copy(),
        total[:n_distinct].copy(),
        picked,
    )


@njit(u8_arr(u8_ro, i64_ro, i64_ro, i32_arr, i32_arr), cache=True, nogil=True)
def suffix_labels(data, offsets, first, common, length):
    """Concatenate each distinct path's bytes past its common prefix with the previous one:
    exactly the label bytes of the trie (every byte position of the trie appears once)."""
    total = 0
    for k in range(first.shape[0]):
        total += length[k] - common[k]
    labels = np.empty(total, np.uint8)
    pos = 0
    for k in range(first.shape[0]):
        start = offsets[first[k]] + common[k]
        size = length[k] - common[k]
        labels[pos : pos + size] = data[start : start + size]
        pos += size
    return labels


@njit(i64_arr(u8_ro, i64_ro, i64_ro), cache=True, nogil=True)
def group_copies(data, offsets, order):
    """For paths sorted by `order` (equal paths adjacent): the rank of the distinct path of
    each input path, that is its path rank in the trie that Trie.build makes of them."""
    n = order.size
    rank_of = np.empty(n, np.int64)
    rank = -1
    prev_start = 0
    prev_end = 0
    for k in range(n):
        i = order[k]
        start = offsets[i]
        end = offsets[i + 1]
        same = k > 0 and end - start == prev_end - prev_start
        if same:
            for j in range(end - start):
                if data[start + j] != data[prev_start + j]:
                    same = False
                    break
        if not same:
            rank += 1
        rank_of[i] = rank
        prev_start = start
        prev_end = end
    return rank_of
