"""The array layout of a trie, and the Numba types the kernels are declared with.

A trie is nine flat arrays. Nodes are numbered from 0 (the root); a node's label is the edge
that leads into it, so the root's label is empty. Four of them are compact integer columns
(trie.columns: a uint64 array of bit-packed values, read in O(1)); the builders lay a trie out
with plain int32/uint32 arrays (`PLAIN_DTYPES`, `NodeArraysType`) and `columns.compact_nodes`
packs them.

| array | stored as | length | meaning |
|---|---|---|---|
| labels | uint8 | L | label bytes of all nodes |
| label_off | tiled column | N | start of node v's label in `labels` (a block column if labels do not tile) |
| label_len | uint8 | N | length of node v's label (1..255 except at the root, whose is 0) |
| child_start | block column | N+1 | node v's edges are `child_start[v]:child_start[v+1]` |
| children | escaped column | E | each edge's child minus its parent (a step >= 1) |
| child_first_byte | uint8 | E | first label byte of that child; strictly increasing per node |
| child_rank_offset | escaped column | E | leaves under the node's earlier edges (see below) |
| leaf_count | uint8..uint64 | R | multiplicity of the k-th path in sorted order (>= 1) |
| leaf_name | int8..int64 | R | term id of the k-th path's variable names, -1 for none |

Every stored path is one complete encoded atom, so no path is a prefix of another: a path ends
exactly at a node without children (a leaf), and the leaves in depth-first order are the R
distinct paths in byte order. A path's *rank* (its index in that order) is its leaf id. The
rank is the sum of `child_rank_offset` over the edges from the root to the leaf. That holds in
a tree and equally in a merkleized DAG, where a node has many parents and so no parent pointer
or per-node rank can exist; multiplicities and names are therefore kept per rank, not per node,
and two subtrees with the same shape share one copy whatever their counts.

Every edge leads from a lower node id to a higher one (the builder numbers nodes in preorder,
merkleize parents before children). That rules out cycles, and the kernels check it per step,
so even arrays opened without validation cannot make a walk loop.

The two per-rank arrays take the narrowest dtype that holds their values (`LEAF_DTYPES`,
`narrowest`): most paths are stored once and most name ids are small, and these arrays have one
entry per path, so their width is a large share of a snapshot. Readers take one element at a
time (`int(leaf_count[k])`); only the O(n) merge widens a whole array, and validation has a
kernel per dtype. A leaf array whose values are all equal (every path stored once, no path
with variable names) is stored in a snapshot as that value alone and opened as a view of
stride 0 (`constant_column`), which NumPy indexes like any other array.

Node ids fit int32 (up to 2**31 - 1 nodes, about a billion distinct paths) and label offsets
uint32: the label bytes of one trie stay under 4 GiB (MAX_LABEL_BYTES; about a third of the
source text, so some 12 GB of KB text), and a larger build raises ValueError.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.trie.spill import PIECE, in_pieces

ARRAY_DTYPES: dict[str, np.dtype] = {
    "labels": np.dtype(np.uint8),
    "label_off": np.dtype(np.uint64),
    "label_len": np.dtype(np.uint8),
    "child_start": np.dtype(np.uint64),
    "children": np.dtype(np.uint64),
    "child_first_byte": np.dtype(np.uint8),
    "child_rank_offset": np.dtype(np.uint64),
    "leaf_count": np.dtype(np.uint64),
    "leaf_name": np.dtype(np.int64),
}
ARRAY_NAMES: tuple[str, ...] = tuple(ARRAY_DTYPES)
"""`ARRAY_DTYPES` gives the widest dtype of the two leaf arrays; `LEAF_DTYPES` every one allowed."""
LEAF_DTYPES: dict[str, tuple[np.dtype, ...]] = {
    "leaf_count": tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64)),
    "leaf_name": tuple(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)),
}
STRUCTURE_NAMES: tuple[str, ...] = ARRAY_NAMES[:7]
"""The arrays the walk kernels take, as one tuple, in this order."""

COLUMN_NAMES: tuple[str, ...] = ("label_off", "child_start", "children", "child_rank_offset")
"""The arrays stored as compact columns (trie.columns)."""
PLAIN_DTYPES: dict[str, np.dtype] = {
    "label_off": np.dtype(np.uint32),
    "child_start": np.dtype(np.int32),
    "children": np.dtype(np.int32),
    "child_rank_offset": np.dtype(np.int32),
}
"""The column arrays as the builders lay them out and store formats 1-3 stored them (children
then held the child's id, not its step from the parent)."""
EARLIER_DTYPES: dict[str, np.dtype] = {"label_off": np.dtype(np.int64), "label_len": np.dtype(np.int32)}
"""Node arrays as an earlier layout stored them: a snapshot holding these must be rebuilt."""

MAX_NODES = 2**31 - 1
MAX_DISTINCT_PATHS = (MAX_NODES - 1) // 2
MAX_LABEL_LEN = 255
"""A longer edge is a chain of nodes with one child each (one extra node per 255 bytes: rare,
as labels are mostly a symbol or two), so that label_len takes one byte per node."""
MAX_LABEL_BYTES = 2**32
"""Every label offset (< the label bytes) then fits uint32."""
"""A trie of R paths has at most 2R nodes (R leaves, R - 1 branch points, the root)."""


def allowed_dtypes(name: str) -> tuple[np.dtype, ...]:
    """The dtypes array `name` may have (native byte order only)."""
    return LEAF_DTYPES.get(name, (ARRAY_DTYPES[name],))


def narrowest_dtype(values: np.ndarray, name: str) -> np.dtype:
    """The narrowest dtype allowed for leaf array `name` that holds all of `values` (read a
    piece at a time: spill.in_pieces)."""
    ranges = [(int(part.min()), int(part.max())) for _, part in in_pieces(values, PIECE)] or [(0, 0)]
    low, top = min(low for low, _ in ranges), max(top for _, top in ranges)
    return np.dtype(next(d for d in LEAF_DTYPES[name] if np.iinfo(d).min <= low and top <= np.iinfo(d).max))


def narrowest(values: np.ndarray, name: str) -> np.ndarray:
    """`values` of leaf array `name` in the narrowest allowed dtype that holds all of them."""
    dtype = narrowest_dtype(values, name)
    return values if values.dtype == dtype else values.astype(dtype)


def constant_column(name: str, value: int, n: int) -> np.ndarray:
    """Leaf array `name` of n values all equal to `value`, holding the one value: a read-only
    view of stride 0 (indexing, slicing, sums work as on any array; nothing is allocated)."""
    one = narrowest(np.array([value], np.int64), name)
    return np.broadcast_to(one.reshape(()), (n,))


def is_constant_column(array: np.ndarray) -> bool:
    """A leaf array made by `constant_column` (one stored value, stride 0)."""
    return array.ndim == 1 and len(array) > 1 and array.strides == (0,)


def constant_value(array: np.ndarray) -> int | None:
    """The value of a leaf array whose values are all the same (None when they differ or it is
    empty): a snapshot stores such an array as that one value."""
    if len(array) == 0:
        return None
    if is_constant_column(array):
        return int(array[0])
    first = array[0]
    if any(not bool((part == first).all()) for _, part in in_pieces(array, PIECE)):
        return None
    return int(first)


def readonly_array(dtype) -> types.Array:
    """A read-only C array type: it accepts writable arrays and read-only memmaps alike."""
    return types.Array(dtype, 1, "C", readonly=True)


u8_ro = readonly_array(types.uint8)
i32_ro = readonly_array(types.int32)
u32_ro = readonly_array(types.uint32)
i64_ro = readonly_array(types.int64)
u64_ro = readonly_array(types.uint64)
u8_arr = types.Array(types.uint8, 1, "C")
i32_arr = types.Array(types.int32, 1, "C")
u32_arr = types.Array(types.uint32, 1, "C")
i64_arr = types.Array(types.int64, 1, "C")
u64_arr = types.Array(types.uint64, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")

StructureType = types.Tuple((u8_ro, u64_ro, u8_ro, u64_ro, u64_ro, u8_ro, u64_ro))
"""(labels, label_off, label_len, child_start, children, child_first_byte, child_rank_offset),
the four integer arrays as compact columns."""
PlainStructureType = types.Tuple((u8_ro, u32_ro, u8_ro, i32_ro, i32_ro, u8_ro, i32_ro))
"""The same with plain arrays (what `columns.plain_nodes` gives back; validation reads them)."""

NodeArraysType = types.Tuple((u32_arr, u8_arr, i32_arr, i32_arr, u8_arr, i32_arr))
"""What the builders return besides labels: label_off ... child_rank_offset."""
