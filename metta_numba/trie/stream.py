"""Leaf streams: the paths of a trie (or of a rank range of it) in byte order, front-coded.

A stream is three arrays: for each path, `common` (bytes it shares with the path before it in
the stream, 0 for the first) and `length`, and `suffixes`, all the paths' bytes past their
common prefix, back to back. That is exactly what `build.layout_trie` lays out, what `merge`
merges, and what `expand` turns into a plain batch of paths. A tree's full stream is as big as
its labels; a DAG's is the size of the tree it stands for.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import (
    StructureType,
    i32_arr,
    i32_ro,
    i64_2d,
    i64_arr,
    u8_arr,
    u8_ro,
    u64_ro,
)
from metta_numba.trie.walk import (
    edge_child,
    edge_for_rank,
    edge_rank,
    grown,
    grown_rows,
    node_edges,
    node_label,
    trie_bounds,
)

Int = types.int64
StreamType = types.Tuple((u8_arr, i32_arr, i32_arr))
BoundsType = types.UniTuple(types.int64, 3)

# Columns of the walk's stack: a node, the next edge to take from it, where its edges end,
# the path length at the end of the node's label, and the rank of the node's first leaf.
NODE, NEXT_EDGE, LAST_EDGE, PATH_END, FIRST_RANK = 0, 1, 2, 3, 4

# The walk's scalars, kept in an array so that it can stop to grow a buffer and resume.
DEPTH, PATH_LEN, N_OUT, N_BYTES, AT_NODE, NODE_RANK, SEEK, SHARED, NEEDED = range(9)

# Why `stream_steps` returned.
FINISHED, GROW_STACK, GROW_PATH, GROW_SUFFIXES = 0, 1, 2, 3


@njit(
    Int(
        *(u8_ro, u64_ro, u8_ro, u64_ro, u64_ro, u64_ro, BoundsType, Int),
        *(i64_arr, i64_2d, u8_arr, u8_arr, i32_arr, i32_arr),
    ),
    cache=True,
    nogil=True,
)
def stream_steps(
    labels, label_off, label_len, child_start, children, rank_offset, bounds, lo,
    walk, stack, path, suffixes, common, length,
):
    """Walk the leaves from where `walk` stands until `common` is full or a buffer is; returns
    FINISHED or which buffer to grow (to walk[NEEDED]).

    No array is reassigned in here (Numba would count references to it on every turn of the
    loop); `leaf_stream` grows the buffers and calls again, and the walk resumes unchanged."""
    n_nodes, n_edges, n_labels = bounds
    count = common.shape[0]
    while walk[N_OUT] < count:
        # Go down from AT_NODE to a leaf: leftmost, or towards SEEK on the first descent.
        node = walk[AT_NODE]
        offset, size = node_label(label_off, label_len, n_nodes, n_labels, node)
        path_len = walk[PATH_LEN]
        if path_len + size > n_labels:
            raise CorruptTrieError("path longer than all labels")
        if path_len + size > path.shape[0]:
            walk[NEEDED] = path_len + size
            return GROW_PATH
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        if first < end and walk[DEPTH] == stack.shape[0]:
            walk[NEEDED] = walk[DEPTH] + 1
            return GROW_STACK
        path[path_len : path_len + size] = labels[offset : offset + size]
        path_len += size
        walk[PATH_LEN] = path_len
        if first < end:
            seek = walk[SEEK]
            if seek > 0:
                edge, step, _ = edge_for_rank(rank_offset, first, end, seek)
            else:
                edge, step = first, edge_rank(rank_offset, first)
            depth = walk[DEPTH]
            stack[depth, NODE] = node
            stack[depth, NEXT_EDGE] = edge + 1
            stack[depth, LAST_EDGE] = end
            stack[depth, PATH_END] = path_len
            stack[depth, FIRST_RANK] = walk[NODE_RANK]
            walk[DEPTH] = depth + 1
            walk[SEEK] = seek - step
            walk[NODE_RANK] += step
            walk[AT_NODE] = edge_child(children, n_nodes, node, edge)
            continue
        # A leaf. Consecutive leaves have consecutive ranks: checking it bounds a walk over
        # corrupt arrays by the number of leaves.
        if walk[SEEK] != 0 or walk[NODE_RANK] != lo + walk[N_OUT]:
            raise CorruptTrieError("rank offsets disagree with the leaves")
        shared = walk[SHARED]
        suffix = path_len - shared
        if walk[N_BYTES] + suffix > suffixes.shape[0]:
            walk[PATH_LEN] = path_len - size  # this leaf's label is appended again on resume
            walk[NEEDED] = walk[N_BYTES] + suffix
            return GROW_SUFFIXES
        suffixes[walk[N_BYTES] : walk[N_BYTES] + suffix] = path[shared:path_len]
        walk[N_BYTES] += suffix
        common[walk[N_OUT]] = shared
        length[walk[N_OUT]] = path_len
        walk[N_OUT] += 1
        if walk[N_OUT] == count:
            break
        # Back up to the deepest node with an edge left, and take it.
        depth = walk[DEPTH]
        while depth > 0 and stack[depth - 1, NEXT_EDGE] == stack[depth - 1, LAST_EDGE]:
            depth -= 1
        if depth == 0:
            raise CorruptTrieError("fewer leaves than leaf_count says")
        top = depth - 1
        edge = stack[top, NEXT_EDGE]
        stack[top, NEXT_EDGE] = edge + 1
        walk[DEPTH] = depth
        walk[PATH_LEN] = stack[top, PATH_END]
        walk[SHARED] = stack[top, PATH_END]
        walk[NODE_RANK] = stack[top, FIRST_RANK] + edge_rank(rank_offset, edge)
        walk[AT_NODE] = edge_child(children, n_nodes, stack[top, NODE], edge)
    return FINISHED


@njit(StreamType(StructureType, Int, Int, Int), cache=True, nogil=True)
def leaf_stream(trie, lo, hi, n_leaves):
    """The stream of the paths of ranks lo..hi-1 (clipped to the n_leaves there are)."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    bounds = trie_bounds(trie)
    n_nodes, n_edges, n_labels = bounds
    count = max(min(hi, n_leaves) - lo, 0)
    common = np.empty(count, np.int32)
    length = np.empty(count, np.int32)
    root_first, root_end = node_edges(child_start, n_nodes, n_edges, 0)
    if count == 0 or root_first == root_end:
        return np.empty(0, np.uint8), common[:0].copy(), length[:0].copy()
    suffixes = np.empty(max(256, 16 * count), np.uint8)
    stack = np.empty((16, 5), np.int64)
    path = np.empty(256, np.uint8)
    walk = np.zeros(9, np.int64)
    walk[SEEK] = lo
    while True:
        grow = stream_steps(
            labels, label_off, label_len, child_start, children, rank_offset, bounds, lo,
            walk, stack, path, suffixes, common, length,
        )
        if grow == FINISHED:
            return suffixes[: walk[N_BYTES]].copy(), common, length
        if grow == GROW_STACK:
            stack = grown_rows(stack, walk[NEEDED])
        elif grow == GROW_PATH:
            path = grown(path, walk[NEEDED])
        else:
            suffixes = grown(suffixes, walk[NEEDED])


@njit(types.Tuple((u8_arr, i64_arr))(u8_ro, i32_ro, i32_ro), cache=True, nogil=True)
def expand(suffixes, common, length):
    """A stream as a plain batch (data, offsets) of whole paths."""
    offsets = np.zeros(common.shape[0] + 1, np.int64)
    for k in range(common.shape[0]):
        offsets[k + 1] = offsets[k] + length[k]
    data = np.empty(offsets[-1], np.uint8)
    at = 0
    for k in range(common.shape[0]):
        start = offsets[k]
        shared = common[k]
        if shared > 0:
            previous = offsets[k - 1]
            data[start : start + shared] = data[previous : previous + shared]
        size = length[k] - shared
        data[start + shared : start + length[k]] = suffixes[at : at + size]
        at += size
    return data, offsets
