"""Laying out the trie nodes from a stream of sorted distinct paths.

The input is what `sort.fold_duplicates` (for a batch) or `merge` (for two tries) produces:
for each distinct path in byte order, its length and its common prefix length with the path
before it, and all the paths' bytes past that common prefix, back to back (`labels`). Those
bytes are exactly the trie's label bytes, so the layout never copies a byte: each node's label
is a slice of `labels`.

One pass with a stack holding the rightmost root-to-leaf path does it. A path that shares
`common` bytes with the previous one pops every node deeper than `common`; when `common` falls
inside the edge into the last popped node, that edge is split by a new branch node. Nodes are
numbered as they are created. A node's children, in creation order, are in byte order too: a
split node replaces the newest child of its parent and takes the next id, and every later child
comes after it. So the CSR arrays can be filled by one pass over the nodes in id order. A last
pass renumbers the nodes in preorder (see `preorder`). A suffix longer than MAX_LABEL_LEN
becomes a chain of one-child nodes, so every label length fits label_len's one byte.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import (
    MAX_LABEL_BYTES,
    MAX_LABEL_LEN,
    MAX_NODES,
    NodeArraysType,
    i32_arr,
    i32_ro,
    u8_ro,
    u32_ro,
)


@njit(
    NodeArraysType(u8_ro, i32_ro, u32_ro, u8_ro, i32_ro, types.int64),
    cache=True,
    nogil=True,
)
def fill_edges(labels, parent, label_off, label_len, first_leaf, n_nodes):
    """CSR edges from the parent pointers of nodes 0..n_nodes-1. Ids increase in byte order
    among siblings, so filling each parent's slots in id order sorts children by first byte."""
    child_start = np.zeros(n_nodes + 1, np.int32)
    for node in range(1, n_nodes):
        child_start[parent[node] + 1] += 1
    for node in range(n_nodes):
        child_start[node + 1] += child_start[node]
    n_edges = child_start[n_nodes]
    children = np.empty(n_edges, np.int32)
    child_first_byte = np.empty(n_edges, np.uint8)
    child_rank_offset = np.empty(n_edges, np.int32)
    next_slot = child_start[:n_nodes].copy()
    for node in range(1, n_nodes):
        up = parent[node]
        slot = next_slot[up]
        next_slot[up] += 1
        children[slot] = node
        child_first_byte[slot] = labels[label_off[node]]
        # Leaves under earlier siblings: ranks are consecutive, so this is a difference.
        child_rank_offset[slot] = first_leaf[node] - first_leaf[up]
    label_off = label_off[:n_nodes].copy()
    label_len = label_len[:n_nodes].copy()  # at most MAX_LABEL_LEN: see layout_trie
    return label_off, label_len, child_start, children, child_first_byte, child_rank_offset


@njit(types.UniTuple(i32_arr, 2)(i32_ro, i32_ro), cache=True, nogil=True)
def preorder_ids(child_start, children):
    """(new id of each node, old id of each new id) for numbering the nodes in depth-first
    preorder."""
    n_nodes = child_start.shape[0] - 1
    new_id = np.empty(n_nodes, np.int32)
    old_of = np.empty(n_nodes, np.int32)
    pending = np.empty(n_nodes, np.int32)
    pending[0] = 0
    n_pending = 1
    n_numbered = 0
    while n_pending > 0:
        n_pending -= 1
        node = pending[n_pending]
        new_id[node] = n_numbered
        old_of[n_numbered] = node
        n_numbered += 1
        # Last child first onto the stack, so the first child is numbered next.
        for edge in range(child_start[node + 1] - 1, child_start[node] - 1, -1):
            pending[n_pending] = children[edge]
            n_pending += 1
    return new_id, old_of


@njit(types.UniTuple(i32_arr, 2)(i32_ro, i32_ro), cache=True, nogil=True)
def preorder_edges(child_start, old_of):
    """(edge starts of the renumbered nodes, old edge of each new edge): a node's edges move
    with it and keep their order."""
    n_nodes = old_of.shape[0]
    new_child_start = np.empty(n_nodes + 1, np.int32)
    edge_of = np.empty(child_start[n_nodes], np.int32)
    slot = 0
    for node in range(n_nodes):
        old = old_of[node]
        new_child_start[node] = slot
        for edge in range(child_start[old], child_start[old + 1]):
            edge_of[slot] = edge
            slot += 1
    new_child_start[n_nodes] = slot
    return new_child_start, edge_of


@njit(i32_arr(i32_ro, i32_ro, i32_ro), cache=True, nogil=True)
def renumbered_children(children, edge_of, new_id):
    """The children of the renumbered edges, in new ids."""
    out = np.empty(edge_of.shape[0], np.int32)
    for slot in range(edge_of.shape[0]):
        out[slot] = new_id[children[edge_of[slot]]]
    return out


def preorder(nodes: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Renumber the node arrays in `nodes` (a list, emptied) in depth-first preorder. Then every
    edge leads to a higher id, which the query kernels check in O(1) per step: arrays opened
    without validation cannot make a walk loop. Preorder also keeps each subtrie in one id
    range, near its leaves' ranks. One array at a time: each old array is let go of once its
    renumbered copy is made, so the peak holds the old arrays, the numbering and one new array,
    not every old and new array at once (the layout's peak in a large build: about 48 bytes a
    node down to 34)."""
    label_off, label_len, child_start, children, child_first_byte, child_rank_offset = nodes
    nodes.clear()
    new_id, old_of = preorder_ids(child_start, children)
    child_start, edge_of = preorder_edges(child_start, old_of)
    label_off = label_off[old_of]
    label_len = label_len[old_of]
    del old_of
    children = renumbered_children(children, edge_of, new_id)
    del new_id
    child_first_byte = child_first_byte[edge_of]
    child_rank_offset = child_rank_offset[edge_of]
    return label_off, label_len, child_start, children, child_first_byte, child_rank_offset


def layout_trie(stream: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Nodes of the trie over the path stream [labels, common, length] (see the module
    docstring): (label_off, label_len, child_start, children, child_first_byte,
    child_rank_offset). `stream` keeps only the labels (the trie's own): the common and length
    columns are let go of once laid out, before the renumbering (8 bytes a path less at its
    peak). Raises as `layout_nodes` does."""
    labels, common, length = stream
    del stream[1:]
    nodes = list(layout_nodes(labels, common, length))
    del common, length
    return preorder(nodes)


@njit(NodeArraysType(u8_ro, i32_ro, i32_ro), cache=True, nogil=True)
def layout_nodes(labels, common, length):
    """The nodes of the trie numbered in the order they are made (`preorder` renumbers them).

    Raises ValueError when the labels need offsets past uint32 (layout.MAX_LABEL_BYTES), and
    CorruptTrieError when a path is a prefix of its neighbour or the lengths overrun
    `labels` (only corrupt input tries can cause either)."""
    n_paths = common.shape[0]
    if labels.shape[0] > MAX_LABEL_BYTES:
        raise ValueError("4 GiB of label bytes or more: beyond the uint32 label offsets")
    chain_links = 0  # nodes that split suffixes longer than MAX_LABEL_LEN
    for k in range(n_paths):
        chain_links += max(length[k] - common[k] - 1, 0) // MAX_LABEL_LEN
    capacity = 2 * n_paths + 1 + chain_links
    if capacity > MAX_NODES:
        raise ValueError("more nodes than int32 node ids allow")
    # In the stored dtypes from the start: these take most of a large build's memory.
    depth = np.empty(capacity, np.int32)  # path length at the end of the node's label
    parent = np.empty(capacity, np.int32)
    label_off = np.empty(capacity, np.uint32)  # labels are below MAX_LABEL_BYTES (checked above)
    label_len = np.empty(capacity, np.uint8)  # at most MAX_LABEL_LEN
    first_leaf = np.empty(capacity, np.int32)
    longest = 0
    for k in range(n_paths):
        longest = max(longest, length[k])
    rightmost = np.empty(longest + 2, np.int32)

    depth[0] = 0
    parent[0] = -1
    label_off[0] = 0
    label_len[0] = 0
    first_leaf[0] = 0
    rightmost[0] = 0
    stack_size = 1
    n_nodes = 1
    suffix_at = 0
    for k in range(n_paths):
        shared = common[k]
        if shared >= length[k] or (k > 0 and shared >= length[k - 1]) or (k == 0 and shared != 0):
            raise CorruptTrieError("paths are not prefix-free: one stored path is a prefix of the next")
        last_popped = -1
        while depth[rightmost[stack_size - 1]] > shared:
            stack_size -= 1
            last_popped = rightmost[stack_size]
        top = rightmost[stack_size - 1]
        if depth[top] < shared:
            # The new path leaves the previous one inside the edge into last_popped.
            cut = shared - depth[top]
            split = n_nodes
            n_nodes += 1
            depth[split] = shared
            parent[split] = top
            label_off[split] = label_off[last_popped]
            label_len[split] = cut
            first_leaf[split] = first_leaf[last_popped]
            parent[last_popped] = split
            label_off[last_popped] = label_off[last_popped] + np.uint32(cut)
            label_len[last_popped] = label_len[last_popped] - np.uint8(cut)
            rightmost[stack_size] = split
            stack_size += 1
            top = split
        if suffix_at + length[k] - shared > labels.shape[0]:
            raise CorruptTrieError("path lengths overrun the label bytes")
        at_depth = shared
        while length[k] - at_depth > MAX_LABEL_LEN:
            # A suffix longer than one label holds: a chain of one-child nodes, each on the
            # rightmost path, so the next path may branch inside any of them.
            link = n_nodes
            n_nodes += 1
            at_depth += MAX_LABEL_LEN
            depth[link] = at_depth
            parent[link] = top
            label_off[link] = suffix_at
            label_len[link] = MAX_LABEL_LEN
            first_leaf[link] = k
            suffix_at += MAX_LABEL_LEN
            rightmost[stack_size] = link
            stack_size += 1
            top = link
        leaf = n_nodes
        n_nodes += 1
        depth[leaf] = length[k]
        parent[leaf] = top
        label_off[leaf] = suffix_at
        label_len[leaf] = length[k] - at_depth
        first_leaf[leaf] = k
        suffix_at += length[k] - at_depth
        rightmost[stack_size] = leaf
        stack_size += 1
    return fill_edges(labels, parent, label_off, label_len, first_leaf, n_nodes)


