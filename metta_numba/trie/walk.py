"""Walking the trie: checked access to nodes and edges, exact lookup, prefix ranges and
decoding by rank.

Every kernel checks each index it reads against the array it reads from, and that each edge
leads to a higher node id, so arrays opened without validation can at worst raise
CorruptTrieError: no read out of bounds, no cycle, so no endless walk. A decoded path also may
not grow longer than `labels`, which bounds every buffer.

Performance note: a kernel unpacks the structure tuple once, and the helpers here take one or
two arrays plus ints. Numba counts references to each array it takes out of a tuple or passes
to a call that is not inlined, so a helper that took the whole tuple would cost more than the
work it does.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.columns import (
    TILE,
    TILE_SHIFT,
    TILED_KIND,
    block_value,
    column_len,
    escaped_raw,
    kept_aside,
    stream_at,
    stream_width,
)
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import StructureType, i64_2d, i64_arr, i64_ro, u8_arr, u8_ro, u64_ro

Int = types.int64
IntPair = types.UniTuple(types.int64, 2)


# --- checked access ----------------------------------------------------------------------


@njit(types.UniTuple(types.int64, 3)(StructureType), cache=True, nogil=True)
def trie_bounds(trie):
    """(nodes, edges, label bytes) that every array agrees on: the limits the checks below use."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes = min(column_len(label_off), label_len.shape[0], column_len(child_start) - 1)
    n_edges = min(column_len(children), first_byte.shape[0], column_len(rank_offset))
    return max(n_nodes, 0), n_edges, labels.shape[0]


@njit(IntPair(u64_ro, Int, Int, Int), cache=True, nogil=True)
def node_edges(child_start, n_nodes, n_edges, node):
    """(first, end) of node's edges."""
    if node < 0 or node >= n_nodes:
        raise CorruptTrieError("node id out of range")
    first = block_value(child_start, node)
    end = block_value(child_start, node + 1)
    if first < 0 or end < first or end > n_edges:
        raise CorruptTrieError("child_start out of range")
    return first, end


@njit(IntPair(u64_ro, u8_ro, Int, Int, Int), cache=True, nogil=True)
def node_label(label_off, label_len, n_nodes, n_labels, node):
    """(offset, length) of node's label; only the root's may be empty."""
    if node < 0 or node >= n_nodes:
        raise CorruptTrieError("node id out of range")
    # The column reads written out: as calls of trie.columns' readers they are not inlined
    # here (8 ns a label instead of 29; see trie.columns).
    if label_off[0] != TILED_KIND:
        offset = block_value(label_off, node)
    else:
        offset = stream_at(label_off, 0, node >> TILE_SHIFT)
        for k in range(node & ~(TILE - 1), node):
            offset += np.int64(label_len[k])
    length = np.int64(label_len[node])
    if offset < 0 or length < 0 or offset + length > n_labels:
        raise CorruptTrieError("label out of range")
    if length == 0 and node > 0:
        raise CorruptTrieError("empty label below the root")
    return offset, length


@njit(Int(u64_ro, Int, Int, Int), cache=True, nogil=True)
def edge_child(children, n_nodes, parent, edge):
    """The child an edge of `parent` leads to: `parent` plus the edge's step, always a higher id
    (the format's guard against cycles). `edge` comes from `node_edges`, so it is in range."""
    width = stream_width(children, 0)
    step = escaped_raw(children, edge)
    if step == (1 << width) - 1:
        step = kept_aside(children, edge)
    child = parent + step
    if child <= parent or child >= n_nodes:
        raise CorruptTrieError("edge out of range")
    return child


@njit(Int(u64_ro, Int), cache=True, nogil=True)
def edge_rank(rank_offset, edge):
    """Leaves under the earlier edges of the same node (a column holds no negative value)."""
    width = stream_width(rank_offset, 0)
    offset = escaped_raw(rank_offset, edge)
    if offset == (1 << width) - 1:
        offset = kept_aside(rank_offset, edge)
    return offset


@njit(Int(u8_ro, Int, Int, Int), cache=True, nogil=True)
def lower_bound_edge(first_byte, first, end, byte):
    """The first edge in [first, end) whose child label starts at or above `byte`."""
    lo = first
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if first_byte[mid] < byte:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(Int(u8_ro, Int, Int, Int), cache=True, nogil=True)
def find_edge(first_byte, first, end, byte):
    """The edge in [first, end) whose child label starts with `byte`, or -1."""
    edge = lower_bound_edge(first_byte, first, end, byte)
    return edge if edge < end and first_byte[edge] == byte else -1


@njit(types.UniTuple(types.int64, 3)(u64_ro, Int, Int, Int), cache=True, nogil=True)
def edge_for_rank(rank_offset, first, end, rank):
    """(edge, its rank offset, the next edge's or -1 when it is the last) of the edge in
    [first, end) whose subtree holds relative rank `rank`: the last one whose rank offset is
    <= rank. The offsets come with it, read by the search already, because reading a value
    kept aside again costs a search of its own."""
    lo = first
    hi = end
    found = 0
    above = -1
    width = stream_width(rank_offset, 0)
    while lo < hi:
        mid = (lo + hi) >> 1
        offset = escaped_raw(rank_offset, mid)
        if offset == (1 << width) - 1:
            offset = kept_aside(rank_offset, mid)
        if offset <= rank:
            lo = mid + 1
            found = offset
        else:
            hi = mid
            above = offset
    if lo == first:
        raise CorruptTrieError("rank offsets do not start at 0")
    return lo - 1, found, above if lo < end else -1


@njit([u8_arr(u8_arr, Int), i64_arr(i64_arr, Int)], cache=True, nogil=True)
def grown(buf, needed):
    """`buf`, or a copy at least twice as large when it cannot hold `needed` items."""
    if needed <= buf.shape[0]:
        return buf
    bigger = np.empty(max(needed, 2 * buf.shape[0]), buf.dtype)
    bigger[: buf.shape[0]] = buf
    return bigger


@njit(i64_2d(i64_2d, Int), cache=True, nogil=True)
def grown_rows(rows, needed):
    """`rows`, or a copy with at least twice as many rows when it has fewer than `needed`."""
    if needed <= rows.shape[0]:
        return rows
    bigger = np.empty((max(needed, 2 * rows.shape[0]), rows.shape[1]), np.int64)
    bigger[: rows.shape[0]] = rows
    return bigger


# --- point queries -----------------------------------------------------------------------


@njit(types.UniTuple(types.int64, 3)(StructureType, u8_ro), cache=True, nogil=True)
def walk_bytes(trie, path):
    """Follow `path` from the root. Returns (node, bytes of node's label consumed, rank of the
    node's first leaf), or node -1 when the path leaves the trie."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    node = 0
    offset, length = node_label(label_off, label_len, n_nodes, n_labels, 0)
    used = 0
    rank = 0
    i = 0
    while i < path.shape[0]:
        if used < length:
            if labels[offset + used] != path[i]:
                return -1, 0, 0
            used += 1
            i += 1
            continue
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        edge = find_edge(first_byte, first, end, path[i])
        if edge < 0:
            return -1, 0, 0
        node = edge_child(children, n_nodes, node, edge)
        rank += edge_rank(rank_offset, edge)
        offset, length = node_label(label_off, label_len, n_nodes, n_labels, node)
        used = 0
    return node, used, rank


@njit(Int(StructureType, u8_ro), cache=True, nogil=True)
def lookup_rank(trie, path):
    """The rank of `path` when it is stored, else -1."""
    node, used, rank = walk_bytes(trie, path)
    if node < 0:
        return -1
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    length = node_label(trie[1], trie[2], n_nodes, n_labels, node)[1]
    first, end = node_edges(trie[3], n_nodes, n_edges, node)
    if used != length or first != end:
        return -1
    return rank


@njit(Int(StructureType, Int), cache=True, nogil=True)
def leaves_below(trie, node):
    """Number of leaves under `node`: the last edge's offset plus the leaves under its child."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    total = 0
    while True:
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        if first == end:
            return total + 1 if node != 0 else total
        total += edge_rank(rank_offset, end - 1)
        node = edge_child(children, n_nodes, node, end - 1)


@njit(IntPair(StructureType, u8_ro), cache=True, nogil=True)
def prefix_rank_range(trie, prefix):
    """[lo, hi) of the ranks of the paths that start with `prefix` (lo == hi when none)."""
    node, used, rank = walk_bytes(trie, prefix)
    if node < 0:
        return 0, 0
    return rank, rank + leaves_below(trie, node)


# --- decoding by rank --------------------------------------------------------------------


@njit(types.Tuple((u8_arr, Int))(StructureType, Int, u8_arr, Int), cache=True, nogil=True)
def append_path_of_rank(trie, rank, out, at):
    """Append the bytes of the path of rank `rank` to out[at:] (growing out). Returns (out, end)."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    start = at
    node = 0
    remaining = rank
    while True:
        offset, length = node_label(label_off, label_len, n_nodes, n_labels, node)
        if at - start + length > n_labels:
            raise CorruptTrieError("path longer than all labels")
        out = grown(out, at + length)
        out[at : at + length] = labels[offset : offset + length]
        at += length
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        if first == end:
            break
        edge, offset, _ = edge_for_rank(rank_offset, first, end, remaining)
        remaining -= offset
        node = edge_child(children, n_nodes, node, edge)
    if remaining != 0 or node == 0:
        raise CorruptTrieError("rank out of range")
    return out, at


@njit(types.Tuple((u8_arr, i64_arr))(StructureType, i64_ro), cache=True, nogil=True)
def paths_of_ranks(trie, ranks):
    """The paths of the given ranks as a batch (data, offsets)."""
    offsets = np.empty(ranks.shape[0] + 1, np.int64)
    data = np.empty(max(64, 32 * ranks.shape[0]), np.uint8)
    offsets[0] = 0
    end = 0
    for i in range(ranks.shape[0]):
        data, end = append_path_of_rank(trie, ranks[i], data, end)
        offsets[i + 1] = end
    return data[:end].copy(), offsets


@njit(types.Tuple((u8_arr, i64_arr))(StructureType, i64_ro), cache=True, nogil=True)
def paths_of_sorted_ranks(trie, ranks):
    """`paths_of_ranks` for ascending ranks: the walk keeps the nodes of the previous path and
    goes back up only as far as the next rank leaves them, so shared prefixes are read once."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    n = ranks.shape[0]
    offsets = np.empty(n + 1, np.int64)
    data = np.empty(max(64, 32 * n), np.uint8)
    offsets[0] = 0
    end = 0
    # The current path: its nodes with [lo, hi) of the ranks below each, and the path length
    # after each node's label.
    stack_node = np.empty(64, np.int64)
    stack_lo = np.empty(64, np.int64)
    stack_hi = np.empty(64, np.int64)
    stack_len = np.empty(64, np.int64)
    path = np.empty(64, np.uint8)
    depth = 0
    previous = -1
    for i in range(n):
        rank = ranks[i]
        if rank < previous:
            raise ValueError("ranks are not in ascending order")
        previous = rank
        while depth > 0 and rank >= stack_hi[depth - 1]:
            depth -= 1
        if depth == 0:
            offset, length = node_label(label_off, label_len, n_nodes, n_labels, 0)
            path = grown(path, length)
            path[:length] = labels[offset : offset + length]
            stack_node[0], stack_lo[0], stack_hi[0], stack_len[0] = 0, 0, np.iinfo(np.int64).max, length
            depth = 1
        while True:
            node = stack_node[depth - 1]
            lo = stack_lo[depth - 1]
            first, last = node_edges(child_start, n_nodes, n_edges, node)
            if first == last:
                if rank != lo or node == 0:
                    raise CorruptTrieError("rank out of range")
                break
            edge, offset, next_offset = edge_for_rank(rank_offset, first, last, rank - lo)
            child = edge_child(children, n_nodes, node, edge)
            child_lo = lo + offset
            child_hi = lo + next_offset if next_offset >= 0 else stack_hi[depth - 1]
            offset, length = node_label(label_off, label_len, n_nodes, n_labels, child)
            at = stack_len[depth - 1]
            if at + length > n_labels:
                raise CorruptTrieError("path longer than all labels")
            path = grown(path, at + length)
            path[at : at + length] = labels[offset : offset + length]
            if depth == stack_node.shape[0]:
                stack_node = grown(stack_node, 2 * depth)
                stack_lo = grown(stack_lo, 2 * depth)
                stack_hi = grown(stack_hi, 2 * depth)
                stack_len = grown(stack_len, 2 * depth)
            stack_node[depth], stack_lo[depth] = child, child_lo
            stack_hi[depth], stack_len[depth] = child_hi, at + length
            depth += 1
        length = stack_len[depth - 1]
        data = grown(data, end + length)
        data[end : end + length] = path[:length]
        end += length
        offsets[i + 1] = end
    return data[:end].copy(), offsets


@njit(Int(i64_ro, Int), cache=True, nogil=True)
def rank_order(ranks, n_leaves):
    """-1 when a rank is outside [0, n_leaves), else 1 when the ranks ascend, 0 when not (one
    pass instead of three array operations, which cost more than a small query's walk)."""
    ascending = 1
    previous = -1
    for i in range(ranks.shape[0]):
        rank = ranks[i]
        if rank < 0 or rank >= n_leaves:
            return -1
        if rank < previous:
            ascending = 0
        previous = rank
    return ascending
