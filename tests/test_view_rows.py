"""JoinViews.view (trie.view_rows' counting sort, or lexsort for few rows among many values)
against Python's sorted() of the same rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.store import join_views
from metta_numba.store.join_views import JoinViews, Relation
from metta_numba.trie.view_rows import counting_order, write_runs_view, write_runs_view_swapped

relations = st.integers(1, 3).flatmap(
    lambda width: st.lists(st.tuples(st.tuples(*[st.integers(0, 6)] * width), st.integers(1, 3)), max_size=30)
)


def expected_view(rows, columns, known):
    ordered = sorted(rows, key=lambda row: tuple(row[0][c] for c in columns))  # stable
    levels = [[cells[c] for cells, _ in ordered] for c in columns]
    counts = [count for _, count in ordered]
    directory = [sum(1 for cells, _ in ordered if cells[columns[0]] < x) for x in range(known + 1)]
    return levels, counts, directory


@pytest.mark.parametrize("counting", [True, False])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(relations=st.lists(relations, min_size=1, max_size=3), extra_values=st.integers(0, 5), grouped=st.booleans())
def test_views_are_the_rows_sorted_by_their_columns(relations, extra_values, grouped, counting, monkeypatch):
    # counting=False: the threshold sends every view to np.lexsort instead.
    monkeypatch.setattr(join_views, "SORT_BY_COUNTING", 10**9 if counting else 0)
    if grouped:  # each first column's rows together, as a trie gives them, in no id order
        relations = [sorted(rows, key=lambda row: (row[0][0] * 5) % 7) for rows in relations]
    views = JoinViews(trie=None)
    known = 7 + extra_values
    for value in range(known):
        views.values.add(b"v%d" % value)
    made = []
    for r, rows in enumerate(relations):
        width = len(rows[0][0]) if rows else 1
        cells = np.array([cells for cells, _ in rows], np.int64).reshape(len(rows), width)
        relation = Relation(b"r%d" % r, cells, np.array([count for _, count in rows], np.int64))
        for columns in itertools.permutations(range(width)):
            made.append((rows, columns, views.view(relation, columns)))
            assert views.view(relation, columns) == made[-1][2], "a view is made once"
    arena = views.arena
    for rows, columns, (offset, n, directory, entries) in made:
        levels, counts, expected_directory = expected_view(rows, columns, known)
        assert n == len(rows) and entries == known + 1
        for level, values in enumerate(levels):
            assert arena[offset + level * n : offset + (level + 1) * n].tolist() == values
        assert arena[offset + len(columns) * n : offset + (len(columns) + 1) * n].tolist() == counts
        assert arena[directory : directory + entries].tolist() == expected_directory


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 4).flatmap(lambda w: st.tuples(
    st.lists(st.tuples(*[st.integers(0, 9)] * w), max_size=40), st.permutations(list(range(w))))))
def test_counting_order_is_a_stable_sort(case):
    rows, columns = case
    width = len(columns)
    cells = np.array(rows, np.int64).reshape(len(rows), width)
    order = counting_order(cells, np.array(columns, np.int64), 10)
    assert order.tolist() == sorted(range(len(rows)), key=lambda i: tuple(rows[i][c] for c in columns))


def test_long_runs_and_rows_out_of_runs():
    """Runs longer than SMALL_RUN sort with argsort; rows not in runs of their first column
    are refused by write_runs_view and sorted by counting instead."""
    rng = np.random.default_rng(5)
    rows = [((0, int(b)), int(c)) for b, c in zip(rng.integers(0, 50, 200), rng.integers(1, 4, 200))]
    rows += [((v, int(b)), 1) for v in (3, 1, 2) for b in rng.integers(0, 50, 5 * v)]
    for case in (rows, rows[1:] + rows[:1]):  # the second: value 0 in two runs
        views = JoinViews(trie=None)
        for value in range(50):
            views.values.add(b"v%d" % value)
        cells = np.array([cells for cells, _ in case], np.int64)
        relation = Relation(b"r", cells, np.array([count for _, count in case], np.int64))
        for columns, by_runs in (((0, 1), write_runs_view), ((1, 0), write_runs_view_swapped)):
            ran = by_runs(cells, relation.counts, 50, np.zeros(3 * len(case) + 51, np.int64), 0, 3 * len(case))
            assert ran == (case is rows)
            offset, n, directory, entries = views.view(relation, columns)
            levels, counts, expected_directory = expected_view(case, columns, 50)
            arena = views.arena
            assert arena[offset : offset + n].tolist() == levels[0]
            assert arena[offset + n : offset + 2 * n].tolist() == levels[1]
            assert arena[offset + 2 * n : offset + 3 * n].tolist() == counts
            assert arena[directory : directory + entries].tolist() == expected_directory
