"""Full validation of trie arrays, in one O(nodes + edges + leaves) pass.

`Trie.from_arrays(..., validate=True)` runs it, on the compact columns decoded back to plain
arrays (trie.columns.plain_nodes). It proves what the query kernels otherwise
check step by step: every offset and index in bounds; every edge leading to a higher node id (so
no cycle); non-root labels non-empty; each edge's first byte equal to its child's first label
byte and strictly increasing per node; no root-to-leaf path longer than `labels`; rank offsets equal to the
leaves under the earlier edges, with the root holding exactly one leaf per count; counts >= 1
and names >= -1.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.columns import check_columns, plain_nodes
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import PlainStructureType, is_constant_column, readonly_array


@njit(types.void(PlainStructureType), cache=True, nogil=True)
def check_node_fields(trie):
    """Bounds of every node's label and edge range, and of every edge."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes = label_off.shape[0]
    if n_nodes < 1 or label_len.shape[0] != n_nodes or child_start.shape[0] != n_nodes + 1:
        raise CorruptTrieError("node arrays disagree in length")
    if child_start[0] != 0 or child_start[n_nodes] != children.shape[0]:
        raise CorruptTrieError("child_start does not span the edges")
    if first_byte.shape[0] != children.shape[0] or rank_offset.shape[0] != children.shape[0]:
        raise CorruptTrieError("edge arrays disagree in length")
    if label_len[0] != 0:
        raise CorruptTrieError("the root has a label")
    n_labels = labels.shape[0]
    n_edges = children.shape[0]
    for node in range(n_nodes):  # all labels and edge ranges first: edges read them below
        if np.int64(label_off[node]) + label_len[node] > n_labels:
            raise CorruptTrieError("label out of range")
        if label_len[node] == 0 and node > 0:
            raise CorruptTrieError("empty label below the root")
        if child_start[node] < 0 or child_start[node + 1] < child_start[node] or child_start[node + 1] > n_edges:
            raise CorruptTrieError("child_start out of range")
    for node in range(n_nodes):
        first, end = child_start[node], child_start[node + 1]
        for edge in range(first, end):
            child = children[edge]
            if child <= node or child >= n_nodes:
                raise CorruptTrieError("an edge leads to a lower node id, or out of range")
            if rank_offset[edge] < 0:
                raise CorruptTrieError("negative rank offset")
            if first_byte[edge] != labels[label_off[child]]:
                raise CorruptTrieError("child_first_byte disagrees with the child's label")
            if edge > first and first_byte[edge] <= first_byte[edge - 1]:
                raise CorruptTrieError("children are not in strictly increasing byte order")


@njit(types.void(PlainStructureType, types.int64), cache=True, nogil=True)
def check_shape(trie, n_leaves):
    """Paths no longer than `labels`, rank offsets consistent with the leaves. Edges lead to
    higher ids (checked first), so going down the ids sees every child before its parents."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes = label_off.shape[0]
    leaves = np.zeros(n_nodes, np.int64)
    longest = np.zeros(n_nodes, np.int64)  # longest path from the start of a node's label
    for node in range(n_nodes - 1, -1, -1):
        first, end = child_start[node], child_start[node + 1]  # checked by check_node_fields
        below = 0
        deepest = 0
        for edge in range(first, end):
            child = children[edge]
            if rank_offset[edge] != below:
                raise CorruptTrieError("rank offsets disagree with the leaves")
            below += leaves[child]
            if below > n_leaves:  # also keeps a corrupt DAG's counts from overflowing
                raise CorruptTrieError("the number of leaves disagrees with leaf_count")
            deepest = max(deepest, longest[child])
        leaves[node] = below if first < end else 1
        longest[node] = label_len[node] + deepest
    root_leaves = leaves[0] if child_start[1] > child_start[0] else 0
    if root_leaves != n_leaves:
        raise CorruptTrieError("the number of leaves disagrees with leaf_count")
    if longest[0] > labels.shape[0]:
        raise CorruptTrieError("a path is longer than all labels")
    if n_leaves >= 2**31:
        raise CorruptTrieError("too many leaves for int32 rank offsets")


LEAF_COUNT_TYPES = [readonly_array(t) for t in (types.uint8, types.uint16, types.uint32, types.uint64)]
LEAF_NAME_TYPES = [readonly_array(t) for t in (types.int8, types.int16, types.int32, types.int64)]


@njit([types.void(t) for t in LEAF_COUNT_TYPES], cache=True, nogil=True)
def check_leaf_counts(leaf_count):
    for rank in range(leaf_count.shape[0]):
        if leaf_count[rank] == 0:
            raise CorruptTrieError("a stored path has count 0")


@njit([types.void(t) for t in LEAF_NAME_TYPES], cache=True, nogil=True)
def check_leaf_names(leaf_name):
    for rank in range(leaf_name.shape[0]):
        if leaf_name[rank] < -1:
            raise CorruptTrieError("a name id below -1")


def validate_trie(trie, leaf_count, leaf_name) -> None:
    """Every check above; the leaf arrays may have any of the dtypes layout.LEAF_DTYPES allows."""
    if leaf_name.shape[0] != leaf_count.shape[0]:
        raise CorruptTrieError("leaf_count and leaf_name disagree in length")
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    columns = (label_off, child_start, children, rank_offset)
    check_columns(*columns)
    label_off, child_start, children, rank_offset = plain_nodes(*columns, label_len)
    trie = (labels, label_off, label_len, child_start, children, first_byte, rank_offset)
    check_node_fields(trie)
    # A constant column (layout.constant_column) holds one value: check that one.
    check_leaf_counts(leaf_count[:1] if is_constant_column(leaf_count) else leaf_count)
    check_leaf_names(leaf_name[:1] if is_constant_column(leaf_name) else leaf_name)
    check_shape(trie, leaf_count.shape[0])
