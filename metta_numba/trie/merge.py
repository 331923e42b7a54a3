"""Merging two tries as multisets: union (counts add) and difference (counts subtract, paths
that drop to zero go).

Each side's leaves are read as a stream (stream.py) and the two sorted streams are merged like
two sorted lists into a third stream, which `Trie._from_stream` lays out. A checkpoint thus
costs time in proportion to the paths it reads and writes, and never reads text. A path present
on both sides keeps the left side's name.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import (
    StructureType,
    i32_arr,
    i32_ro,
    i64_arr,
    i64_ro,
    u8_arr,
    u8_ro,
    u64_arr,
    u64_ro,
)
from metta_numba.trie.sort import common_prefix
from metta_numba.trie.stream import leaf_stream

Int = types.int64
UNION = 0
DIFFERENCE = 1

SideType = types.Tuple((u8_ro, i32_ro, i32_ro, u64_ro, i64_ro))
"""One input: its stream (suffixes, common, length) and its counts and names."""
OutputType = types.Tuple((u8_arr, i32_arr, i32_arr, u64_arr, i64_arr))


@njit(Int(u8_ro, i32_ro, i32_ro, u8_arr, Int, Int), cache=True, nogil=True)
def next_path(suffixes, common, length, path, index, at):
    """Rebuild path `index` of a stream in `path` (which holds path index - 1), reading its
    suffix at `at`; returns where the next suffix starts."""
    shared = common[index]
    size = length[index]
    path[shared:size] = suffixes[at : at + size - shared]
    return at + size - shared


@njit(Int(u8_arr, Int, u8_arr, Int), cache=True, nogil=True)
def compare_paths(a, a_len, b, b_len):
    """-1, 0 or 1 as a[:a_len] sorts before, equal to or after b[:b_len]."""
    shared = common_prefix(a, 0, a_len, b, 0, b_len)
    if shared == a_len and shared == b_len:
        return 0
    if shared == a_len:
        return -1
    if shared == b_len:
        return 1
    return -1 if a[shared] < b[shared] else 1


@njit(Int(i32_ro), cache=True, nogil=True)
def longest(length):
    most = 0
    for size in length:
        most = max(most, size)
    return most


@njit(OutputType(SideType, SideType, Int), cache=True, nogil=True)
def merge_streams(left, right, how):
    """The stream, counts and names of `left` + `right` (UNION) or `left` - `right`.

    Every buffer is allocated at its final bound, so none is reassigned in the loop (Numba
    would count references to it on every turn): a path is no longer than the longest input
    path, and the output's suffix bytes, one per distinct prefix of the output paths, are no
    more than the inputs' together."""
    a_suffixes, a_common, a_length, a_count, a_name = left
    b_suffixes, b_common, b_length, b_count, b_name = right
    union = how == UNION
    n_a = a_common.shape[0]
    n_b = b_common.shape[0]
    capacity = n_a + (n_b if union else 0)
    out = np.empty(a_suffixes.shape[0] + (b_suffixes.shape[0] if union else 0), np.uint8)
    out_common = np.empty(capacity, np.int32)
    out_length = np.empty(capacity, np.int32)
    out_count = np.empty(capacity, np.uint64)
    out_name = np.empty(capacity, np.int64)
    widest = max(longest(a_length), longest(b_length))
    a_path = np.empty(widest, np.uint8)
    b_path = np.empty(widest, np.uint8)
    last = np.empty(widest, np.uint8)  # the last path written
    last_len = 0
    i = j = 0
    a_at = next_path(a_suffixes, a_common, a_length, a_path, 0, 0) if n_a > 0 else 0
    b_at = next_path(b_suffixes, b_common, b_length, b_path, 0, 0) if n_b > 0 else 0
    n_out = n_bytes = 0
    while i < n_a or (j < n_b and union):
        if i == n_a:
            order = 1
        elif j == n_b:
            order = -1
        else:
            order = compare_paths(a_path, a_length[i], b_path, b_length[j])
        from_left = order <= 0
        if from_left:
            count = a_count[i]
            if order == 0:
                if union:
                    count += b_count[j]
                else:
                    count = count - b_count[j] if count > b_count[j] else np.uint64(0)
            size, name = a_length[i], a_name[i]
        else:
            count, size, name = b_count[j], b_length[j], b_name[j]
        if count > 0 and (from_left or union):
            if from_left:
                shared = common_prefix(last, 0, last_len, a_path, 0, size)
                last[shared:size] = a_path[shared:size]
            else:
                shared = common_prefix(last, 0, last_len, b_path, 0, size)
                last[shared:size] = b_path[shared:size]
            out[n_bytes : n_bytes + size - shared] = last[shared:size]
            n_bytes += size - shared
            last_len = size
            out_common[n_out] = shared
            out_length[n_out] = size
            out_count[n_out] = count
            out_name[n_out] = name
            n_out += 1
        if order <= 0:
            i += 1
            if i < n_a:
                a_at = next_path(a_suffixes, a_common, a_length, a_path, i, a_at)
        if order >= 0:
            j += 1
            if j < n_b:
                b_at = next_path(b_suffixes, b_common, b_length, b_path, j, b_at)
    return (
        out[:n_bytes].copy(),
        out_common[:n_out].copy(),
        out_length[:n_out].copy(),
        out_count[:n_out].copy(),
        out_name[:n_out].copy(),
    )


@njit(OutputType(StructureType, u64_ro, i64_ro, StructureType, u64_ro, i64_ro, Int), cache=True, nogil=True)
def merge_tries(left, left_count, left_name, right, right_count, right_name, how):
    """The merged trie's stream of distinct paths, (labels, common, length, counts, names),
    which `Trie._from_stream` lays out."""
    n_left = left_count.shape[0]
    n_right = right_count.shape[0]
    a_suffixes, a_common, a_length = leaf_stream(left, 0, n_left, n_left)
    b_suffixes, b_common, b_length = leaf_stream(right, 0, n_right, n_right)
    return merge_streams(
        (a_suffixes, a_common, a_length, left_count, left_name),
        (b_suffixes, b_common, b_length, right_count, right_name),
        how,
    )
