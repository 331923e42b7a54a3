"""What a join reads from a snapshot: value ids, relations and their sorted views.

A *relation* is the set of stored atoms of one head and arity, `(edge a b)` for instance, as
a table: one row per distinct stored path, one column per argument, each cell the id of the
argument's value. A value id numbers the distinct byte strings of arguments across the whole
generation (ids are given in the order values are first met, and never change while the
generation is open), so equal ids mean equal values in every relation, and a variable shared
by two patterns joins by comparing ints.

Byte equality is value equality for the rows kept: a relation is *joinable* only when no
stored atom with a variable can match its patterns (none among its rows, no atom with a
variable head or a bare variable of that arity), and when no row holds a whole float or NaN
(which equal, or fail to equal, other encodings: see relation_cells). A relation that is not
joinable is answered by the planner instead.

A *view* is a relation's rows sorted by a permutation of its columns (what leapfrog.py reads);
each is built once, on first use, into one int64 arena shared by all views. Everything here is
in memory, built lazily per opened generation: the first join over a relation of a million
rows pays for reading it and sorting, the next ones do not. That first time is kept short by
kernels: the ids come from one pass over the relation's leaf stream (trie.relation_ids, hash
lookups in trie.value_table, no bytes object per value), the views from counting sorts over
the ids (trie.view_rows). Measured on a million `(edge a b)` rows: reading 0.13 s, the views
(0, 1) and (1, 0) 0.04 s and 0.06 s.
"""

from __future__ import annotations

import numpy as np

from metta_numba.codec import tags
from metta_numba.trie.relation_cells import ROW_OK
from metta_numba.trie.relation_ids import relation_ids
from metta_numba.trie.trie import Trie
from metta_numba.trie.value_table import ValueTable
from metta_numba.trie.view_rows import counting_order, write_runs_view, write_runs_view_swapped, write_view

SORT_BY_COUNTING = 4
"""A view sorts by counting when its relation has more than 1/4 row per known value."""

NO_VALUE = -1
"""The id of a value no stored row holds."""


class Relation:
    """The rows of one joinable head and arity: `cells` (rows x columns of value ids) and the
    stored multiplicity of each row (`repeats`: whether any is above 1)."""

    __slots__ = ("prefix", "cells", "counts", "repeats")

    def __init__(self, prefix: bytes, cells: np.ndarray, counts: np.ndarray) -> None:
        self.prefix = prefix
        self.cells = cells
        self.counts = counts
        self.repeats = bool(len(counts)) and int(counts.max()) > 1

    def __len__(self) -> int:
        return len(self.counts)


class JoinViews:
    """Value ids, relations and sorted views of one opened generation's trie."""

    def __init__(self, trie: Trie) -> None:
        self.trie = trie
        self.values = ValueTable()  # values[i]: the bytes of value id i
        self._relations: dict[bytes, Relation | None] = {}
        self._views: dict[tuple[bytes, tuple[int, ...]], tuple[int, int, int, int]] = {}
        self._arena = np.empty(1 << 10, np.int64)
        self._used = 0
        self.plans: dict = {}  # the join's prepared conjunctions (store.join)

    @property
    def arena(self) -> np.ndarray:
        return self._arena[: self._used]

    def value_id(self, raw: bytes) -> int:
        """The id of a value's bytes, NO_VALUE when no relation read so far holds it."""
        return self.values.find(raw)

    def intern(self, raw: bytes) -> int:
        """The id of a value's bytes, numbering it when it is new (a value a fallback found)."""
        return self.values.add(raw)

    def relation(self, head: bytes, arity: int) -> Relation | None:
        """The relation of expressions of `arity` children (head included) whose head encodes
        as `head`; None when it is not joinable (see the module docstring)."""
        prefix = bytes([arity]) + head
        if prefix not in self._relations:
            self._relations[prefix] = self._read(prefix, arity)
        return self._relations[prefix]

    def _read(self, prefix: bytes, arity: int) -> Relation | None:
        if not 2 <= arity <= tags.ARITY_SHORT_MAX:
            return None
        trie = self.trie
        lo, hi = trie.prefix_range(prefix)
        # A stored atom with a variable head and this arity, or a bare variable, matches too.
        for lead in (bytes([arity, tags.TAG_NEW_VAR]), bytes([tags.TAG_NEW_VAR])):
            first, last = trie.prefix_range(lead)
            if last > first:
                return None
        suffixes, common, length = trie.leaf_stream(lo, hi)
        ids, status = self.values.add_by(relation_ids, suffixes, common, length, arity)
        if status != ROW_OK:
            return None
        return Relation(prefix, ids.reshape(len(common), arity - 1), trie.counts(lo, lo + len(common)))

    def view(self, relation: Relation, columns: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(arena offset, rows, directory offset, directory length) of the relation sorted by
        `columns` (a permutation of its column indices): column columns[l] is level l, the
        counts follow the last level. The directory's entry x is the first row whose level-0
        value is >= x, for every id numbered when the view was made (one more entry: rows)."""
        key = (relation.prefix, columns)
        found = self._views.get(key)
        if found is None:
            n = len(relation)
            known = len(self.values)
            size = (len(columns) + 1) * n + known + 1
            # Room for a view per leading column at once: growing copies the arena.
            offset = self._reserve(size, room=len(columns) * size)
            directory = offset + size - known - 1
            cells = relation.cells
            # Rows read from a trie come in runs of their first column: the views of one or two
            # columns are built from the runs (when the rows are not in runs, these decline).
            by_runs = {(0,): write_runs_view, (0, 1): write_runs_view, (1, 0): write_runs_view_swapped}.get(columns)
            if by_runs is None or not by_runs(cells, relation.counts, known, self._arena, offset, directory):
                rest = np.asarray(columns[1:], np.int64)
                if n * SORT_BY_COUNTING > known:
                    order = counting_order(cells, rest, known)
                else:  # few rows among many values: comparing beats passes over every id
                    order = np.lexsort([cells[:, c] for c in reversed(rest)]) if len(rest) else np.arange(n)
                write_view(cells, relation.counts, np.asarray(columns, np.int64), np.asarray(order, np.int64),
                           known, self._arena, offset, directory)
            found = self._views[key] = (offset, n, directory, known + 1)
        return found

    def _reserve(self, size: int, room: int) -> int:
        """The offset of `size` more entries of the arena; when it must grow, it grows by
        `room` entries at least (np.empty: pages untouched cost no memory)."""
        offset = self._used
        if offset + size > len(self._arena):
            bigger = np.empty(max(offset + max(size, room), 2 * len(self._arena)), np.int64)
            bigger[:offset] = self._arena[:offset]
            self._arena = bigger
        self._used = offset + size
        return offset
