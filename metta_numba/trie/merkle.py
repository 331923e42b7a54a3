"""Merkleizing: store identical subtries once, turning the trie into a DAG.

It works on the tree's plain arrays (layout.PlainStructureType: `Trie.merkleize` unpacks the
columns and checks every index first, validate.check_node_fields), so the kernels here index
them directly: on the packed columns it took three times as long.

Nodes are visited children first. Each node's shape is its label bytes plus the classes of its
children in order; a hash of that shape finds earlier nodes that may be the same, and a full
comparison (labels and child classes) decides, so a hash collision never merges two different
subtries. Each class becomes one node of the result. Rank offsets depend only on the shapes
below an edge, so they carry over as they are, and so do the per-rank counts and names.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import NodeArraysType, PlainStructureType, i32_arr, i32_ro, u8_arr, u8_ro, u32_arr, u64_arr

Int = types.int64
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


@njit(types.uint64(types.uint64), cache=True, nogil=True)
def finish_hash(h):
    """The splitmix64 finalizer: spreads the bits before the hash picks a table slot."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


@njit(types.uint64(u8_ro, Int, Int), cache=True, nogil=True)
def label_hash(labels, offset, length):
    """The first part of a shape's hash: its label bytes and length (`mix_hash` adds the
    children's classes)."""
    h = FNV_OFFSET
    for i in range(length):
        h = (h ^ np.uint64(labels[offset + i])) * FNV_PRIME
    return (h ^ np.uint64(length)) * FNV_PRIME


@njit(types.uint64(types.uint64, i32_ro, Int, Int), cache=True, nogil=True)
def mix_hash(h, classes, first, end):
    """`label_hash` h with the child classes classes[first:end], finished."""
    for i in range(first, end):
        h = (h ^ np.uint64(classes[i])) * FNV_PRIME
    return finish_hash(h)


@njit(types.uint64(u8_ro, Int, Int, i32_ro, i32_ro, Int, Int), cache=True, nogil=True)
def shape_hash(labels, offset, length, children, class_of, first, end):
    """Hash of a node's shape: its label bytes, then its children's classes."""
    h = label_hash(labels, offset, length)
    for edge in range(first, end):
        h = (h ^ np.uint64(class_of[children[edge]])) * FNV_PRIME
    return finish_hash(h)


@njit([types.boolean(t, Int, t, Int, Int) for t in (u8_ro, i32_ro)], cache=True, nogil=True)
def same_run(a, a_start, b, b_start, count):
    """a[a_start:a_start + count] equals b[b_start:b_start + count] (without making slices)."""
    for i in range(count):
        if a[a_start + i] != b[b_start + i]:
            return False
    return True


@njit(types.boolean(i32_ro, i32_ro, Int, Int, Int), cache=True, nogil=True)
def same_children(children, class_of, a_first, b_first, count):
    """Equal child classes edge by edge (rank offsets then agree too: they follow from the
    classes of the earlier children)."""
    for i in range(count):
        if class_of[children[a_first + i]] != class_of[children[b_first + i]]:
            return False
    return True


@njit(i32_arr(PlainStructureType), cache=True, nogil=True)
def children_first_order(trie):
    """The nodes reachable from the root, each after all of its children (an iterative
    depth-first walk; visited nodes of a DAG are not walked again)."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes = label_off.shape[0]
    seen = np.zeros(n_nodes, np.bool_)
    order = np.empty(n_nodes, np.int32)
    n_done = 0
    stack_node = np.empty(n_nodes, np.int32)
    stack_edge = np.empty(n_nodes, np.int64)
    stack_node[0] = 0
    stack_edge[0] = child_start[0]
    depth = 1
    seen[0] = True
    while depth > 0:
        node = stack_node[depth - 1]
        edge = stack_edge[depth - 1]
        if edge < child_start[node + 1]:
            stack_edge[depth - 1] = edge + 1
            child = children[edge]  # ids grow downwards: no cycle
            if not seen[child]:
                seen[child] = True
                stack_node[depth] = child
                stack_edge[depth] = child_start[child]
                depth += 1
            continue
        order[n_done] = node
        n_done += 1
        depth -= 1
    return order[:n_done].copy()


@njit([i32_arr(hashes, Int, Int) for hashes in (u64_arr, u32_arr)], cache=True, nogil=True)
def class_table(class_hash, n_classes, slots):
    """An open-addressing table of `slots` slots (a power of two) holding classes 0..n-1 at
    their hashes' slots."""
    table = np.full(slots, -1, np.int32)
    mask = np.uint64(slots - 1)
    for c in range(n_classes):
        slot = np.uint64(class_hash[c]) & mask
        while table[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = c
    return table


@njit(types.Tuple((i32_arr, i32_arr))(PlainStructureType), cache=True, nogil=True)
def shape_classes(trie):
    """(class of each node, representative node of each class); class ids follow the
    children-first order, so the root's class is the last one.

    The table grows with the classes (kept at most half full), not with the nodes: a tree has
    several times more nodes than distinct shapes, and a table for every node was the largest
    array of a large build's merkleizing."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes = label_off.shape[0]
    order = children_first_order(trie)
    class_of = np.full(n_nodes, -1, np.int32)
    representative = np.empty(order.shape[0], np.int32)
    class_hash = np.empty(order.shape[0], np.uint64)
    slots = 1 << 10
    table = np.full(slots, -1, np.int32)
    mask = np.uint64(slots - 1)
    n_classes = 0
    for node in order:
        offset, length = np.int64(label_off[node]), np.int64(label_len[node])
        first, end = child_start[node], child_start[node + 1]
        h = shape_hash(labels, offset, length, children, class_of, first, end)
        slot = h & mask
        while table[slot] >= 0:
            candidate = table[slot]
            rep = representative[candidate]
            if class_hash[candidate] == h:
                rep_offset, rep_length = np.int64(label_off[rep]), np.int64(label_len[rep])
                rep_first, rep_end = child_start[rep], child_start[rep + 1]
                if (
                    rep_length == length
                    and rep_end - rep_first == end - first
                    and same_run(labels, rep_offset, labels, offset, length)
                    and same_children(children, class_of, rep_first, first, end - first)
                ):
                    class_of[node] = candidate
                    break
            slot = (slot + np.uint64(1)) & mask
        if class_of[node] < 0:
            class_of[node] = n_classes
            representative[n_classes] = node
            class_hash[n_classes] = h
            table[slot] = n_classes
            n_classes += 1
            if 2 * n_classes > slots:
                slots *= 2
                table = class_table(class_hash, n_classes, slots)
                mask = np.uint64(slots - 1)
    return class_of, representative[:n_classes].copy()


def merkleize_structure(trie: tuple) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(labels, node arrays) of the DAG in which each distinct subtrie is stored once.

    The root's class is numbered 0 and the others follow in reverse children-first order, so
    every edge leads to a higher id, as the format requires."""
    class_of, representative = shape_classes(trie)
    return gathered_nodes(trie, np.ascontiguousarray(representative[::-1]), class_of)


@njit(types.Tuple((u8_arr, NodeArraysType))(PlainStructureType, i32_ro, i32_ro), cache=True, nogil=True)
def gathered_nodes(trie, order, class_of):
    """(labels, node arrays) of the nodes order[0], order[1], ... of `trie`, numbered 0, 1,
    ...: an edge into node x leads to n - 1 - class_of[x] (n = len(order)), so with classes
    numbered children first and `order` their representatives from the last class down, the
    root comes first and every edge leads to a higher id."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n = order.shape[0]
    label_bytes = 0
    n_edges = 0
    for node in order:
        label_bytes += np.int64(label_len[node])
        n_edges += child_start[node + 1] - child_start[node]
    new_labels = np.empty(label_bytes, np.uint8)
    new_label_off = np.empty(n, np.uint32)
    new_label_len = np.empty(n, np.uint8)
    new_child_start = np.empty(n + 1, np.int32)
    new_children = np.empty(n_edges, np.int32)
    new_first_byte = np.empty(n_edges, np.uint8)
    new_rank_offset = np.empty(n_edges, np.int32)
    at = 0
    slot = 0
    for new in range(n):
        node = order[new]
        offset, length = np.int64(label_off[node]), np.int64(label_len[node])
        new_labels[at : at + length] = labels[offset : offset + length]
        new_label_off[new] = at
        new_label_len[new] = length
        at += length
        new_child_start[new] = slot
        for edge in range(child_start[node], child_start[node + 1]):
            new_children[slot] = n - 1 - class_of[children[edge]]
            new_first_byte[slot] = first_byte[edge]
            new_rank_offset[slot] = rank_offset[edge]
            slot += 1
    new_child_start[n] = slot
    return new_labels, (new_label_off, new_label_len, new_child_start, new_children, new_first_byte, new_rank_offset)
