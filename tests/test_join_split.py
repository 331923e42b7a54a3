"""The split join (store.join_split, trie.splitcount, trie.splitrows) against brute force, its
count and its rows (as multisets): cycles of length 4 and 5, a bowtie and a chorded 4-cycle
over random small graphs with copies, their variables renamed onto each other (repeated
variables) or replaced by constants, for every choice of split the variable orders lead to,
with and without a limit, and on several threads."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Atom, E, Expression, Symbol, Variable, variables_of
from metta_numba.store.join_split import find_split, split_args
from metta_numba.store.kb import PersistentKB
from metta_numba.store.snapshot import save_atoms
from metta_numba.syntax import parse_atom
from metta_numba.trie.leapfrog import BEYOND
from metta_numba.trie.splitrows import split_join

NODES = ["n0", "n1", "n2", "n3"]
SHAPES = {
    "4-cycle": "(, (edge $a $b) (edge $b $c) (edge $c $d) (edge $d $a))",
    "5-cycle": "(, (edge $a $b) (edge $b $c) (edge $c $d) (edge $d $e) (edge $e $a))",
    "bowtie": "(, (edge $a $b) (edge $b $c) (edge $c $a) (edge $c $d) (edge $d $e) (edge $e $c))",
    "chorded 4-cycle": "(, (edge $a $b) (edge $b $c) (edge $c $d) (edge $d $a) (p $a $c))",
    "4-cycle and a loop": "(, (edge $a $b) (edge $b $c) (edge $c $d) (edge $d $a) (p $a $a))",
}


def brute_rows(stored: list[Atom], parts: list[Atom]) -> Counter:
    """Every assignment of the nodes to the variables (a tuple in the order of variables_of),
    with the product of the copies of the facts it needs as its multiplicity."""
    copies = Counter(stored)
    names = [v.name for v in variables_of(Expression(parts))]
    rows: Counter = Counter()
    for values in itertools.product(NODES, repeat=len(names)):
        binding = dict(zip(names, values))
        weight = 1
        for part in parts:
            args = [binding[a.name] if type(a) is Variable else a.name for a in part.children[1:]]
            weight *= copies[E(part.children[0].name, *args)]
            if not weight:
                break
        if weight:
            rows[values] += weight
    return rows


def brute_count(stored: list[Atom], parts: list[Atom]) -> int:
    return sum(brute_rows(stored, parts).values())


node_names = st.sampled_from(NODES)
edges = st.tuples(st.sampled_from(["edge", "edge", "p"]), node_names, node_names).map(lambda t: E(*t))


@st.composite
def shaped_patterns(draw) -> list[Atom]:
    """A shape with some variables renamed onto others or replaced by a node, and some
    patterns reversed."""
    parts = parse_atom(draw(st.sampled_from(sorted(SHAPES.values())))).children[1:]
    names = sorted({v.name for v in variables_of(Expression(parts))})
    renamed = {}
    for name in names:
        choice = draw(st.sampled_from(["keep"] * 6 + ["other", "node"]))
        if choice == "other":
            renamed[name] = Variable(draw(st.sampled_from(names)))
        elif choice == "node":
            renamed[name] = Symbol(draw(node_names))
        else:
            renamed[name] = Variable(name)
    out = []
    for part in parts:
        head, x, y = part.children
        x, y = renamed[x.name], renamed[y.name]
        out.append(E(head, y, x) if draw(st.booleans()) and head.name == "edge" else E(head, x, y))
    return out


@pytest.fixture(scope="module")
def kb_root(tmp_path_factory):
    return tmp_path_factory.mktemp("split_kbs")


def fresh(kb_root, stored) -> PersistentKB:
    path = kb_root / f"kb{len(list(kb_root.iterdir()))}"
    save_atoms(stored, path)
    return PersistentKB.open(path, sync="never")


def every_split(kb: PersistentKB, parts: list[Atom]):
    """(the kernel's arguments and its columns) for each split the variable orders lead to."""
    planned, rest = kb._join_plan(parts)
    assert planned and not rest
    views = kb._join_views()
    columns = variables_of(Expression(parts))
    found = {}
    for order in itertools.permutations(columns):
        split = find_split(planned, list(order))
        if split is not None:
            key = (tuple(split.prefix), split.meeting, tuple(map(tuple, split.groups)))
            found[key] = split_args(views, planned, split, columns)
    return [(args, len(columns)) for args in found.values()]


def run_split(kb: PersistentKB, args: tuple, n_columns: int, want_rows: int, limit: int = 0):
    views = kb._join_views()
    return split_join(views.arena, *args, len(views.values), n_columns, want_rows, limit, 0, BEYOND)


def counts_of_every_split(kb: PersistentKB, parts: list[Atom]) -> set[int]:
    """The split kernel's count for the split each variable order leads to."""
    return {int(run_split(kb, args, n_columns, 0)[0]) for args, n_columns in every_split(kb, parts)}


def decoded(kb: PersistentKB, columns: list[np.ndarray]) -> Counter:
    """The rows of id columns as a multiset of tuples of node names."""
    decode = kb._join_decoder()
    names = [[atom.name for atom in decode(column.tolist())] for column in columns]
    return Counter(zip(*names))


def rows_of_every_split(kb: PersistentKB, parts: list[Atom], limit: int = 0) -> list[Counter]:
    """The split kernel's rows for the split each variable order leads to."""
    found = []
    for args, n_columns in every_split(kb, parts):
        total, out, n = run_split(kb, args, n_columns, 1, limit)
        assert total >= n and out.shape[0] == n_columns
        found.append(decoded(kb, [out[j, :n] for j in range(n_columns)]))
    return found


def table_rows(table) -> Counter:
    variables, columns = table.columns()
    return Counter(zip(*([atom.name for atom in column] for column in columns)))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(edges, min_size=1, max_size=24), shaped_patterns())
def test_split_counts_agree_with_brute_force(kb_root, stored, parts):
    expected = brute_count(stored, parts)
    with fresh(kb_root, stored) as kb:
        if kb._join_plan(parts)[0] is None:  # a constant no fact holds
            assert expected == 0 and kb.join_count(parts) == 0
            return
        assert kb.join_count(parts) == expected
        assert counts_of_every_split(kb, parts) <= {expected}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(edges, min_size=1, max_size=24), shaped_patterns(), st.integers(1, 12))
def test_split_rows_agree_with_brute_force(kb_root, stored, parts, limit):
    expected = brute_rows(stored, parts)
    total = sum(expected.values())
    with fresh(kb_root, stored) as kb:
        if kb._join_plan(parts)[0] is None:  # a constant no fact holds
            assert total == 0 and len(kb.join(parts)) == 0
            return
        table = kb.join(parts)
        assert table.variables == variables_of(Expression(parts))
        assert table_rows(table) == expected
        for rows in rows_of_every_split(kb, parts):
            assert rows == expected
        for rows in rows_of_every_split(kb, parts, limit):
            assert sum(rows.values()) == min(limit, total) and not rows - expected
        limited = kb.join(parts, limit=limit)
        assert len(limited) == min(limit, total) and not table_rows(limited) - expected
        assert kb.join_count(parts, limit=limit) == min(limit, total)


def test_split_rows_are_the_cross_product_of_the_groups(tmp_path):
    """From n0, two ways to n2 (by n1 and by n3) and two ways back, one of them stored twice:
    the 4-cycles through n0 and n2 are the 2 x 2 combinations, one with its copies."""
    stored = [E("edge", "n0", "n1"), E("edge", "n1", "n2"), E("edge", "n0", "n3"), E("edge", "n3", "n2"),
              E("edge", "n2", "n1"), E("edge", "n1", "n0"), E("edge", "n2", "n3"), E("edge", "n3", "n0"),
              E("edge", "n3", "n0")]
    parts = parse_atom(SHAPES["4-cycle"]).children[1:]
    expected = brute_rows(stored, parts)
    through = Counter({row: m for row, m in expected.items() if row[0] == "n0" and row[2] == "n2"})
    assert through == Counter({("n0", "n1", "n2", "n1"): 1, ("n0", "n1", "n2", "n3"): 2,
                               ("n0", "n3", "n2", "n1"): 1, ("n0", "n3", "n2", "n3"): 2})
    with fresh(tmp_path, stored) as kb:
        assert kb._join_split_prepared(parts) is not None
        splits = rows_of_every_split(kb, parts)
        assert len(splits) >= 2
        assert all(rows == expected for rows in splits)
        assert table_rows(kb.join(parts)) == expected


def test_a_limit_stops_the_split_after_the_prefix_binding_that_reaches_it(tmp_path):
    rng = np.random.default_rng(11)
    stored = [E("edge", f"n{i}", f"n{j}") for i, j in rng.integers(0, 10, size=(70, 2)).tolist()]
    parts = parse_atom(SHAPES["4-cycle"]).children[1:]
    with fresh(tmp_path, stored) as kb:
        args, n_columns = kb._join_split_prepared(parts)[:2]
        assert args[10] == 1  # a prefix of one variable: a limit can stop after any of its values
        whole = len(kb.join(parts, order=["a", "b", "c", "d"]))  # the plain leapfrog (test_join)
        assert int(run_split(kb, args, n_columns, 0)[0]) == whole > 20
        for want_rows in (0, 1):
            total, _, n = run_split(kb, args, n_columns, want_rows, 2)
            assert 2 <= total < whole and n == (2 if want_rows else 0)
        assert kb.join_count(parts, limit=2) == len(kb.join(parts, limit=2)) == 2


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_splits_and_counts_as_brute_force(tmp_path, shape):
    rng = np.random.default_rng(len(shape))
    stored = [E(rng.choice(["edge", "edge", "p"]), *rng.choice(NODES, size=2)) for _ in range(40)]
    parts = parse_atom(SHAPES[shape]).children[1:]
    expected = brute_count(stored, parts)
    assert expected > 0  # dense enough that the count means something
    with fresh(tmp_path, stored) as kb:
        assert kb._join_split_prepared(parts) is not None
        assert kb.join_count(parts) == expected == len(kb.join(parts))
        assert counts_of_every_split(kb, parts) == {expected}


def test_the_split_shape_is_as_described():
    class Step:
        def __init__(self, text):
            atom = parse_atom(text)
            self.variables = {i: a for i, a in enumerate(atom.children[1:]) if type(a) is Variable}
            self.constants = {}
            self.size = 1

    cycle = [Step(t) for t in ("(e $a $b)", "(e $b $c)", "(e $c $d)", "(e $d $a)")]
    a, b, c, d = (Variable(n) for n in "abcd")
    split = find_split(cycle, [a, b, c, d])
    assert split.prefix == [a] and split.meeting == c and split.groups == [[b], [d]]
    assert split.pattern_group == [0, 0, 1, 1]
    triangle = [Step(t) for t in ("(e $a $b)", "(e $b $c)", "(e $c $a)")]
    assert find_split(triangle, [a, b, c]) is None  # one group at most: nothing to multiply
    clique = [Step(f"(e ${x} ${y})") for x, y in itertools.combinations("abcd", 2)]
    assert find_split(clique, [a, b, c, d]) is None
    path = [Step(t) for t in ("(e $a $b)", "(e $b $c)", "(e $c $d)", "(e $d $e)")]
    e = Variable("e")
    split = find_split(path, [a, b, c, d, e])  # nothing anchored: an inner node meets both sides
    assert split.prefix == [] and split.meeting == b and split.groups == [[a], [c, d, e]]
    from_node = [Step("(e n1 $b)")] + path[1:]
    from_node[0].constants = {0: 1}
    for step in path[1:]:
        step.constants = {}
    # Split at c, the tail d-e reaches neither a prefix variable nor the constant; with prefix e
    # (every value of e, far from the constant) both groups would be walked for each: no split.
    assert find_split(from_node, [b, c, d, e]) is None
    anchored_cycle = [Step("(e n1 $b)"), cycle[1], cycle[2], Step("(e $d n1)")]
    anchored_cycle[0].constants = anchored_cycle[3].constants = {0: 1}
    split = find_split(anchored_cycle, [b, c, d])
    assert split.prefix == [] and split.meeting == c and split.groups == [[b], [d]]


def test_threads_split_a_split_count_without_changing_it(tmp_path, monkeypatch):
    import metta_numba.store.join as join_module

    rng = np.random.default_rng(7)
    stored = [E("edge", f"n{i}", f"n{j}") for i, j in rng.integers(0, 14, size=(90, 2)).tolist()]
    stored += stored[:6]  # copies
    monkeypatch.setattr(join_module, "PARALLEL_FROM", 0)
    with fresh(tmp_path, stored) as kb:
        for text in (SHAPES["4-cycle"], SHAPES["5-cycle"]):
            pattern = parse_atom(text)
            assert kb._join_split_prepared(pattern.children[1:])[2]  # the split may take threads
            one = kb.join_count(pattern)
            assert one == len(kb.join(pattern)) > 0
            assert kb.join_count(pattern, threads=3) == one
            rows, threaded = kb.join(pattern), kb.join(pattern, threads=3)
            assert all(np.array_equal(rows.ids[name], threaded.ids[name]) for name in rows.ids)  # same order
            plain = kb.join(pattern, order=sorted(rows.ids))  # the plain leapfrog (test_join)
            assert table_rows(threaded) == table_rows(plain) == table_rows(rows)


def test_a_prefix_binding_with_more_records_than_the_first_buffer_holds(tmp_path):
    """From hub: 40 x 40 two-step paths (the records start with room for fewer), each closed
    into a 4-cycle through back; the walk runs again with the room it found it needs."""
    stored = [E("edge", "hub", f"m{i}") for i in range(40)]
    stored += [E("edge", f"m{i}", f"k{j}") for i in range(40) for j in range(40)]
    stored += [E("edge", f"k{j}", "back") for j in range(40)] + [E("edge", "back", "hub")] * 2
    pattern = parse_atom(SHAPES["4-cycle"])
    with fresh(tmp_path, stored) as kb:
        split = kb._join_split_prepared(pattern.children[1:])
        assert split is not None and split[3]  # split after a prefix
        rows = kb.join(pattern)
        plain = kb.join(pattern, order=["a", "b", "c", "d"])  # the plain leapfrog (test_join)
        # 1,600 cycles, back -> hub twice, each cycle from any of its 4 nodes
        assert len(rows) == 4 * 2 * 40 * 40 and table_rows(rows) == table_rows(plain)
