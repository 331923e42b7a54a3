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


SMALL_RUN = 24
"""Runs up to this long are sorted by insertion; longer ones by np.argsort."""


@njit(types.boolean(i64_2d_ro, i64_ro, Int, i64_arr, Int, Int), cache=True, nogil=True)
def write_runs_view(cells, counts, known, arena, offset, directory):
    """write_view for a view whose levels are columns (0, 1) or (0,) of rows that come in runs
    of equal column 0 (a relation read from a trie, in byte order: each first argument's rows
    are together): each run is sorted by column 1 where it is and copied to its place, with
    no pass over all rows by either column. False, with nothing written to the levels, when
    the rows do not come in such runs."""
    n = cells.shape[0]
    width = cells.shape[1]
    arena[directory : directory + known + 1] = 0
    runs = 0
    for row in range(n):
        arena[directory + cells[row, 0] + 1] += 1
        if row == 0 or cells[row, 0] != cells[row - 1, 0]:
            runs += 1
    distinct = 0
    for value in range(known):
        if arena[directory + value + 1] > 0:
            distinct += 1
        arena[directory + value + 1] += arena[directory + value]
    if runs != distinct:
        return False
    keys = np.empty(0, np.int64)
    start = 0
    while start < n:
        end = start + 1
        while end < n and cells[end, 0] == cells[start, 0]:
            end += 1
        at = arena[directory + cells[start, 0]]
        size = end - start
        if width == 1 or size <= SMALL_RUN:
            # Insertion sort of the run's rows by column 1, straight into their place.
            for k in range(size):
                row = start + k
                value = cells[row, width - 1]
                j = k
                while j > 0 and width > 1 and arena[offset + n + at + j - 1] > value:
                    arena[offset + n + at + j] = arena[offset + n + at + j - 1]
                    arena[offset + width * n + at + j] = arena[offset + width * n + at + j - 1]
                    j -= 1
                arena[offset + width * n + at + j] = counts[row]
                if width > 1:
                    arena[offset + n + at + j] = value
        else:
            keys = cells[start:end, 1].copy()
            order = np.argsort(keys, kind="mergesort")
            for k in range(size):
                arena[offset + n + at + k] = keys[order[k]]
                arena[offset + width * n + at + k] = counts[start + order[k]]
        for k in range(size):
            arena[offset + at + k] = cells[start, 0]
        start = end
    return True


@njit(types.boolean(i64_2d_ro, i64_ro, Int, i64_arr, Int, Int), cache=True, nogil=True)
def write_runs_view_swapped(cells, counts, known, arena, offset, directory):
    """write_view for the view (1, 0) of rows of two columns that come in runs of equal column
    0 (see write_runs_view): the runs are taken in the order of their column 0 values, and
    each row goes to its place by column 1, in one pass that keeps the runs' order. False,
    with nothing written to the levels, when the rows do not come in such runs."""
    n = cells.shape[0]
    run_of = np.full(known, -1, np.int64)  # where the run of each column 0 value starts
    arena[directory : directory + known + 1] = 0
    for row in range(n):
        arena[directory + cells[row, 1] + 1] += 1
        first = cells[row, 0]
        if row == 0 or first != cells[row - 1, 0]:
            if run_of[first] >= 0:
                return False
            run_of[first] = row
    for value in range(known):
        arena[directory + value + 1] += arena[directory + value]
    place = arena[directory : directory + known].copy()
    for first in range(known):
        row = run_of[first]
        while 0 <= row < n and cells[row, 0] == first:
            value = cells[row, 1]
            at = place[value]
            place[value] = at + 1
            arena[offset + at] = value
            arena[offset + n + at] = first
            arena[offset + 2 * n + at] = counts[row]
            row += 1
    return True
