"""A relation's rows laid out as a sorted view (what trie.leapfrog reads), by counting sort.

The cells of a relation are value ids below `known` (the number of values numbered so far),
so rows sort by a permutation of their columns with one stable counting pass per column, the
last column of the permutation first (least significant digit first): O(columns * (rows +
known)) and no comparisons, where np.lexsort over a million rows compares its way through
every key. The last pass, by the leading column, writes the view itself: its counts are the
view's directory.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import i64_arr

Int = types.int64
i64_2d_ro = types.Array(types.int64, 2, "C", readonly=True)
i64_ro = types.Array(types.int64, 1, "C", readonly=True)


@njit(i64_arr(i64_2d_ro, i64_ro, Int), cache=True, nogil=True)
def counting_order(cells, columns, known):
    """The row order that sorts `cells` (rows x columns of ids in 0..known-1) by
    cells[:, columns[0]], then columns[1], ...; rows with equal keys keep their order."""
    n = cells.shape[0]
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    place = np.empty(known + 1, np.int64)
    for level in range(columns.shape[0] - 1, -1, -1):
        column = columns[level]
        place[:] = 0
        for row in range(n):
            place[cells[row, column] + 1] += 1
        for value in range(known):
            place[value + 1] += place[value]
        for j in range(n):
            row = order[j]
            value = cells[row, column]
            spare[place[value]] = row
            place[value] += 1
        order, spare = spare, order
    return order


@njit(types.void(i64_2d_ro, i64_ro, i64_ro, i64_ro, Int, i64_arr, Int, Int), cache=True, nogil=True)
def write_view(cells, counts, columns, order, known, arena, offset, directory):
    """Lays out the rows at arena[offset:] sorted by `columns`, given `order`, the rows sorted
    by columns[1:] (a stable pass by columns[0] finishes the sort): column columns[l] of every
    row as level l, then the counts. At arena[directory:directory + known + 1] goes, for each
    id x, the first row whose level-0 value is >= x (the last entry: the number of rows)."""
    n = order.shape[0]
    width = columns.shape[0]
    lead = columns[0]
    arena[directory : directory + known + 1] = 0
    for row in range(n):
        arena[directory + cells[row, lead] + 1] += 1
    for value in range(known):
        arena[directory + value + 1] += arena[directory + value]
    place = arena[directory : directory + known].copy()
    for j in range(n):
        row = order[j]
        at = place[cells[row, lead]]
        place[cells[row, lead]] = at + 1
        for level in range(width):
            arena[offset + level * n + at] = cells[row, columns[level]]
        arena[offset + width * n + at] = counts[row]
