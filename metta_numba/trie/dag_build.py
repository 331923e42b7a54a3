"""Laying out a merkleized trie straight from the sorted path stream, without the tree.

`build.layout_trie` makes every node of the tree, and `merkle.merkleize_structure` then finds
the nodes with the same subtrie and keeps one of each: the tree's arrays, its renumbering and
the merkleizing's own arrays are all held at once, the largest memory of a build. Here the
stream is read once, as `build.layout_nodes` reads it (a stack holds the rightmost
root-to-leaf path), but a node is classed the moment the stream leaves its subtrie, that is
when it is popped: its label and its children's classes are then final. A node equal to an
earlier one (same label bytes, same child classes in order) takes that one's class; a new
shape becomes a new class, with its label and edges copied out. So memory holds the DAG (and
the stream, or the chunk of it being read), never the tree: on the large baseline KB, 110 MiB
at the peak of this step against 178 MiB for the tree's layout and merkleizing.

The stream may come in chunks (`DagBuilder.add`), so that a build never holds all of it: the
open nodes' labels are read from the latest path, which the builder keeps, not from the
chunk that brought them. Given a folder, the builder keeps the DAG itself in files there too,
mapped, and lets go of their pages after each chunk (trie.spill): then only the table that
finds an equal class (trie.dag_table) stays in memory, and a duplicate's check reads its
earlier twin back from the page cache. A bound on that table bounds the builder's memory
whatever the KB's size; past it, the DAG is less shared (see dag_table).

The one wrinkle is the split: a path that leaves the previous one inside the label of the last
node popped cuts that label in two. The cut is known when that node is popped (the new path's
common prefix), so the node is classed with its lower part and its upper part stays on the
stack as a new node, which the new path branches from.

Nodes are popped children first, in the order `merkle.children_first_order` visits the tree,
and classes are numbered by first appearance in that order, so the result is the very arrays
`merkle.merkleize_structure(layout_trie(...))` gives (the tests compare them), laid out by the
same `merkle.gathered_nodes`: the root is node 0 and the other classes follow in reverse,
every edge leading to a higher id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.dag_table import (
    FOUND_AGAIN,
    UNBOUNDED,
    entry_class,
    grown,
    new_entry,
    new_table,
    same_hash,
    sweep,
)
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import (
    MAX_LABEL_BYTES,
    MAX_LABEL_LEN,
    MAX_NODES,
    NodeArraysType,
    i32_arr,
    i32_ro,
    i64_arr,
    u8_arr,
    u8_ro,
    u64_arr,
)
from metta_numba.trie.merkle import label_hash, mix_hash, same_run
from metta_numba.trie.spill import PIECE, drop_pages, in_pieces, zeroed_file_array

Int = types.int64
PlainArraysType = types.Tuple((u8_arr, *NodeArraysType.types))
"""The trie's plain layout (layout.PlainStructureType), writable: the classes as they are made."""
# Slots of the builder's scalar state.
N_OPEN, N_PENDING, N_CLASSES, LABEL_AT, LAST_LENGTH, N_SEEN, N_FED_BYTES, N_TABLED, MAX_SLOTS, N_SWEEPS = range(10)
N_STATE = 10


class DagBuilder:
    """Classes the subtries of a sorted stream of distinct paths fed in chunks (`add`), then
    lays the DAG out (`finish`). `n_paths` and `n_bytes` bound the paths and suffix bytes to
    come, and `longest` their length: the arrays are sized for them, but only the pages the
    DAG fills are ever touched. With a `folder`, the DAG's arrays and the leaf counts by class
    are files `dag.*` there, whose pages are let go of after each `add`. `max_slots` bounds
    the table of classes (trie.dag_table; unbounded by default: the fully shared DAG).

    The classes fill their arrays from the end down, each before the one made earlier: class c
    is in slot capacity - 1 - c, and its label bytes and edges go just before those of class
    c - 1. The n classes made then take the last n slots in the order of their node ids
    (node n - 1 - c, the root first), so `finish` lays them out in place, without a copy."""

    def __init__(
        self, n_paths: int, n_bytes: int, longest: int, folder: Path | None = None, max_slots: int = UNBOUNDED
    ) -> None:
        if n_bytes > MAX_LABEL_BYTES:
            raise ValueError("4 GiB of label bytes or more: beyond the uint32 label offsets")
        capacity = 2 * n_paths + 1 + n_bytes // MAX_LABEL_LEN  # the tree's nodes at most
        if capacity > MAX_NODES:
            raise ValueError("more nodes than int32 node ids allow")
        # One node per class, in the trie's plain layout: (labels, label_off, label_len,
        # child_start, children, first_byte, rank_offset), children given as classes.
        self.classes = tuple(
            np.empty(size, dtype) if folder is None else zeroed_file_array(folder / f"dag.{name}", dtype, size)
            for name, dtype, size in (
                ("labels", np.uint8, n_bytes),
                ("label_off", np.uint32, capacity),
                ("label_len", np.uint8, capacity),
                ("child_start", np.int32, capacity + 1),
                ("children", np.int32, capacity),
                ("first_byte", np.uint8, capacity),
                ("rank_offset", np.int32, capacity),
            )
        )
        self.classes[3][capacity] = capacity  # the end of the edges: class 0's end just there
        # By class (leaves < 2**31 paths). Read only for a new class's children, mostly classes
        # made just before: a file in `folder`, whose pages are let go of with the classes'.
        self.class_leaves = (
            np.empty(capacity, np.int32)
            if folder is None
            else zeroed_file_array(folder / "dag.class_leaves", np.int32, capacity)
        )
        self.table = new_table(max_slots)
        self.path = np.zeros(max(longest, 1), np.uint8)  # the latest path
        # The open nodes (the latest path's): depth at the end of each one's label, and where
        # its finished children start on the pending stack.
        self.open_depth = np.zeros(longest + 2, np.int64)
        self.open_base = np.zeros(longest + 2, np.int64)
        self.pending = np.empty(capacity, np.int32)  # classes of the open nodes' finished children
        self.state = np.zeros(N_STATE, np.int64)
        self.state[N_OPEN] = 1  # the root
        self.state[LABEL_AT] = n_bytes  # class labels fill the label bytes from the end down
        self.state[MAX_SLOTS] = max_slots
        self.n_paths = n_paths

    def add(self, labels: np.ndarray, common: np.ndarray, length: np.ndarray) -> None:
        """Class the subtries the next paths of the stream close (their suffix bytes, common
        prefixes and lengths; stream order continues across calls)."""
        if self.state[N_SEEN] + len(common) > self.n_paths:
            raise ValueError("more paths than the builder was sized for")
        self.table = add_paths(labels, common, length, False, *self._arrays())
        for array in (*self.classes, self.class_leaves):  # a no-op for arrays in memory
            drop_pages(array)

    @property
    def sweeps(self) -> int:
        """How often the table of classes was full and forgot some (dag_table.sweep)."""
        return int(self.state[N_SWEEPS])

    def finish(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """(labels, node arrays) of the DAG, in the layout of `merkle.merkleize_structure`."""
        none = np.zeros(0, np.int32)
        self.table = add_paths(np.zeros(0, np.uint8), none, none, True, *self._arrays())
        classes = self.classes
        del self.classes, self.class_leaves, self.table, self.pending
        n_classes, label_at = int(self.state[N_CLASSES]), int(self.state[LABEL_AT])
        first = len(classes[2]) - n_classes
        edge_at = laid_out(classes, n_classes, label_at)
        for array in classes:
            drop_pages(array)
        # Sliced here, not in a kernel: an array a kernel returns no longer knows the file
        # mapping under it, and the build lets go of the mapping's pages (spill.drop_pages).
        labels, label_off, label_len, child_start, children, first_byte, rank_offset = classes
        by_node = (label_off[first:], label_len[first:], child_start[first:])
        return labels[label_at:], (*by_node, children[edge_at:], first_byte[edge_at:], rank_offset[edge_at:])

    def _arrays(self) -> tuple:
        return (
            self.classes, self.class_leaves, self.table, self.path,
            self.open_depth, self.open_base, self.pending, self.state,
        )  # fmt: skip


def layout_dag(stream: list[np.ndarray]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(labels, node arrays) of the merkleized trie over the path stream [labels, common,
    length] (see build), in the layout of `merkle.merkleize_structure`. The list is emptied,
    so that the stream is let go of once its classes are made. Raises as `build.layout_nodes`
    does."""
    labels, common, length = stream
    stream.clear()
    builder = DagBuilder(len(common), len(labels), int(length.max()) if len(length) else 0)
    builder.add(labels, common, length)
    del labels, common, length
    return builder.finish()


@njit(
    u64_arr(
        u8_ro, i32_ro, i32_ro, types.boolean, PlainArraysType, i32_arr,
        u64_arr, u8_arr, i64_arr, i64_arr, i32_arr, i64_arr,
    ),
    cache=True,
    nogil=True,
)  # fmt: skip
def add_paths(
    labels, common, length, last, classes, class_leaves, table, path, open_depth, open_base, pending, state
):
    """Class the nodes the paths close (all the open ones, the root last, when `last`), and
    open the paths' own; returns the class table (grown when it had to). See DagBuilder."""
    class_labels, class_label_off, class_label_len, class_edge_start, edge_class, edge_byte, edge_rank = classes
    n_open, n_pending = state[N_OPEN], state[N_PENDING]
    n_classes, label_at = state[N_CLASSES], state[LABEL_AT]
    last_slot = class_label_len.shape[0] - 1  # class c is in slot last_slot - c
    suffix_at = 0
    for k in range(common.shape[0] + 1):
        if k == common.shape[0] and not last:
            break
        shared = 0 if k == common.shape[0] else common[k]
        if k < common.shape[0]:
            first = state[N_SEEN] == 0 and k == 0
            if shared >= length[k] or (not first and shared >= state[LAST_LENGTH]) or (first and shared != 0):
                raise CorruptTrieError("paths are not prefix-free: one stored path is a prefix of the next")
            if length[k] > path.shape[0]:
                raise ValueError("a path longer than the builder was sized for")
            if suffix_at + length[k] - shared > labels.shape[0]:
                raise CorruptTrieError("path lengths overrun the label bytes")
            if state[N_FED_BYTES] + length[k] - shared > class_labels.shape[0]:
                raise ValueError("more label bytes than the builder was sized for")
        # Class every open node deeper than the common prefix, deepest first.
        while n_open > 0:
            node = n_open - 1
            split = False
            start = 0
            label_len = 0
            if node > 0:
                if open_depth[node] <= shared:
                    break
                parent_depth = open_depth[node - 1]
                split = parent_depth < shared
                start = shared if split else parent_depth
                label_len = open_depth[node] - start
            elif k < common.shape[0]:
                break
            base = open_base[node]
            n_children = n_pending - base
            h = mix_hash(label_hash(path, start, label_len), pending, base, n_pending)
            mask = np.uint64(table.shape[0] - 1)
            slot = h & mask
            found = -1
            while table[slot] != 0:
                c = entry_class(table[slot])
                at = last_slot - c
                if (
                    same_hash(table[slot], h)
                    and class_label_len[at] == label_len
                    and class_edge_start[at + 1] - class_edge_start[at] == n_children
                    and same_run(class_labels, class_label_off[at], path, start, label_len)
                    and same_run(edge_class, class_edge_start[at], pending, base, n_children)
                ):
                    found = c
                    table[slot] |= FOUND_AGAIN
                    break
                slot = (slot + np.uint64(1)) & mask
            if found < 0:  # a new shape: its label and edges are copied out, before the last's
                found = n_classes
                n_classes += 1
                table[slot] = new_entry(h, found)
                state[N_TABLED] += 1
                at = last_slot - found
                label_at -= label_len
                class_label_off[at] = label_at
                class_label_len[at] = label_len
                class_labels[label_at : label_at + label_len] = path[start : start + label_len]
                edge = class_edge_start[at + 1] - n_children
                class_edge_start[at] = edge
                leaves = 0
                for i in range(base, n_pending):
                    child = pending[i]
                    edge_class[edge] = child
                    edge_rank[edge] = leaves
                    edge_byte[edge] = class_labels[class_label_off[last_slot - child]]
                    leaves += class_leaves[child]
                    edge += 1
                class_leaves[found] = leaves if n_children else 1
                if 2 * state[N_TABLED] > table.shape[0]:
                    if table.shape[0] < state[MAX_SLOTS]:
                        table = grown(table, 2 * table.shape[0])
                    else:
                        state[N_TABLED] = sweep(table, table.shape[0] // 4)
                        state[N_SWEEPS] += 1
            n_pending = base
            pending[n_pending] = found
            n_pending += 1
            if split:
                # The upper part of the label stays open, as the new path's branch point.
                open_depth[node] = shared
                open_base[node] = base
            else:
                n_open -= 1
        if k == common.shape[0]:
            break
        # The new path: its suffix into the latest path, then its nodes, links of a chain
        # while longer than one label holds, then its leaf.
        suffix = length[k] - shared
        path[shared : length[k]] = labels[suffix_at : suffix_at + suffix]
        suffix_at += suffix
        state[N_FED_BYTES] += suffix
        at_depth = shared
        while at_depth < length[k]:
            at_depth += min(length[k] - at_depth, MAX_LABEL_LEN)
            open_depth[n_open] = at_depth
            open_base[n_open] = n_pending
            n_open += 1
        state[LAST_LENGTH] = length[k]
    state[N_SEEN] += common.shape[0]
    state[N_OPEN], state[N_PENDING] = n_open, n_pending
    state[N_CLASSES], state[LABEL_AT] = n_classes, label_at
    return table


def laid_out(classes: tuple[np.ndarray, ...], n_classes: int, label_at: int) -> int:
    """Make the last `n_classes` slots of the builder's arrays the DAG's node arrays, in place:
    offsets made relative to the first label byte and edge used, children numbered as nodes.
    Returns that first edge (the node arrays start at the first of those slots). A piece at a
    time, letting go of the pages of arrays mapped from files."""
    class_labels, label_off, label_len, edge_start, edge_class, first_byte, rank_offset = classes
    first = len(label_len) - n_classes
    edge_at = int(edge_start[first])
    for _, part in in_pieces(label_off[first:], PIECE):
        part -= np.uint32(label_at)
    for _, part in in_pieces(edge_start[first:], PIECE):
        part -= np.int32(edge_at)
    for _, part in in_pieces(edge_class[edge_at:], PIECE):
        np.subtract(np.int32(n_classes - 1), part, out=part)
    return edge_at
