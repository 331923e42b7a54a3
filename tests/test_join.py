"""PersistentKB.join against brute force: every choice of one stored atom per pattern that
unifies with all of them at once (test_conjunction.reference), as multisets, in every
variable order, with and without unsaved changes, over stored atoms that the kernel joins
(ground facts) and ones it leaves to the planner (variables, nested patterns, whole floats)."""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conjunction import canonical, reference

from metta_numba.atoms import Atom, E, Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.store.kb import PersistentKB
from metta_numba.store.snapshot import save_atoms
from metta_numba.syntax import parse_atom
from metta_numba.unify import substitute

names = st.sampled_from(["a", "b", "c", "d"]).map(Symbol)
numbers = st.sampled_from([1, 2, 2.0, 2.5, float("nan")]).map(Grounded)
ground_terms = st.one_of(names, names, names, st.tuples(st.just("f"), names).map(lambda t: E(*t)))
stored_terms = st.one_of(ground_terms, st.sampled_from(["x", "y"]).map(Variable), numbers)
pattern_vars = st.sampled_from(["u", "v", "w"]).map(Variable)
pattern_terms = st.one_of(
    pattern_vars, pattern_vars, names, st.tuples(st.just("f"), pattern_vars).map(lambda t: E(*t)), numbers
)


def facts(terms):
    return st.tuples(st.sampled_from(["edge", "p"]), terms, terms).map(lambda t: E(*t))


ground_facts = facts(ground_terms)
any_facts = facts(stored_terms)
plain_patterns = st.tuples(st.sampled_from(["edge", "p"]), st.one_of(pattern_vars, names),
                           st.one_of(pattern_vars, names)).map(lambda t: E(*t))
patterns = st.one_of(
    plain_patterns,
    plain_patterns,
    st.tuples(st.sampled_from(["edge", "p"]), pattern_terms, pattern_terms).map(lambda t: E(*t)),
    st.tuples(pattern_vars, names, pattern_vars).map(lambda t: E(*t)),  # a variable head
)


def answers(kb: PersistentKB, parts: list[Atom], **options) -> Counter:
    whole = Expression(parts)
    return Counter(canonical(substitute(whole, b)) for b in kb.join(parts, **options).bindings())


@pytest.fixture(scope="module")
def kb_root(tmp_path_factory):
    return tmp_path_factory.mktemp("join_kbs")


def fresh(kb_root, stored) -> PersistentKB:
    path = kb_root / f"kb{len(list(kb_root.iterdir()))}"
    save_atoms(stored, path)
    return PersistentKB.open(path, sync="never")


def whole_numbers_as_one(found: Counter) -> Counter:
    """The answers with each whole float written as its integer. 2 and 2.0 match each other, so
    a variable that meets both takes the form of whichever pattern binds it first, and that
    depends on the order of the steps (the planner's, the kernel's or the reference's)."""
    merged: Counter = Counter()
    for text, count in found.items():
        merged[re.sub(r"(?<![\w.])(-?\d+)\.0(?![\w.])", r"\1", text)] += count
    return merged


def check_every_order(kb: PersistentKB, parts: list[Atom], expected: Counter) -> None:
    expected = whole_numbers_as_one(expected)
    assert whole_numbers_as_one(answers(kb, parts)) == expected
    assert kb.join_count(parts) == sum(expected.values())
    names_ = [v.name for v in variables_of(Expression(parts))]
    for order in itertools.permutations(names_):
        assert whole_numbers_as_one(answers(kb, parts, order=order)) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ground_facts, max_size=12), st.lists(plain_patterns, min_size=1, max_size=3))
def test_ground_facts_join_in_the_kernel(kb_root, stored, parts):
    with fresh(kb_root, stored) as kb:
        planned, rest = kb._join_plan(parts)
        assert rest == []  # every pattern is the kernel's: this test checks the kernel itself
        check_every_order(kb, parts, reference(stored, parts))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(any_facts, max_size=10),
    st.lists(any_facts, max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
    st.lists(patterns, min_size=1, max_size=3),
)
def test_any_conjunction_gives_the_reference_answers(kb_root, stored, added, removed, parts):
    remaining = list(stored)
    with fresh(kb_root, stored) as kb:
        for atom in added:
            kb.add(atom)  # unsaved: the working set
        for index in removed:
            if index < len(stored) and stored[index] in remaining:
                assert kb.remove(stored[index])
                remaining.remove(stored[index])
        check_every_order(kb, parts, reference(remaining + added, parts))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ground_facts, min_size=1, max_size=12), st.lists(plain_patterns, min_size=1, max_size=3),
       st.integers(1, 5))
def test_a_limit_stops_at_that_many_answers_of_the_reference(kb_root, stored, parts, limit):
    expected = reference(stored, parts)
    with fresh(kb_root, stored) as kb:
        got = answers(kb, parts, limit=limit)
        assert sum(got.values()) == min(limit, sum(expected.values()))
        assert not got - expected  # each answer is one of the reference's (copies included)
        assert kb.join_count(parts, limit=limit) == min(limit, sum(expected.values()))


def test_copies_multiply_and_columns_decode(tmp_path):
    stored = [E("edge", "a", "b"), E("edge", "a", "b"), E("edge", "b", "c"), E("edge", "b", "d"), E("edge", "c", "a")]
    with fresh(tmp_path, stored) as kb:
        table = kb.join(parse_atom("(, (edge $x $y) (edge $y $z))"))
        assert len(table) == 7  # (a b c), (a b d) and (c a b) twice each, (b c a) once
        assert set(table.ids) == {"x", "y", "z"}
        assert all(column.dtype == np.int64 and len(column) == 7 for column in table.ids.values())
        variables, columns = table.columns()
        assert [v.name for v in variables] == ["x", "y", "z"]
        rows = Counter(tuple(a.name for a in row) for row in zip(*columns))
        assert rows == Counter({("a", "b", "c"): 2, ("a", "b", "d"): 2, ("c", "a", "b"): 2, ("b", "c", "a"): 1})
        assert kb.join_count(parse_atom("(, (edge $x $y) (edge $y $z))")) == 7
        # A constant no stored atom holds: nothing, whatever the other patterns.
        assert len(kb.join(parse_atom("(, (edge zz $y) (edge $y $z))"))) == 0
        # A pattern without variables counts its copies.
        assert kb.join_count(parse_atom("(, (edge a b) (edge b $z))")) == 4
        assert kb.join_count(parse_atom("(, (edge a b))")) == 2
        # The empty conjunction has one answer, as in the planner.
        assert len(kb.join(parse_atom("(,)"))) == kb.join_count(parse_atom("(,)")) == 1


def test_the_planner_takes_over_what_the_kernel_cannot_join(tmp_path):
    stored = [E("edge", "a", "b"), E("edge", "b", "c"), E("edge", "b", ("f", "c")), E("q", "$x", "c")]
    with fresh(tmp_path, stored) as kb:
        planned, rest = kb._join_plan([parse_atom("(edge $x $y)"), parse_atom("(q $y $z)")])
        assert len(planned) == 1 and rest == [parse_atom("(q $y $z)")]  # q holds a stored variable
        found = answers(kb, [parse_atom("(edge $x $y)"), parse_atom("(edge $y (f $z))")])
        assert found == reference(stored, [parse_atom("(edge $x $y)"), parse_atom("(edge $y (f $z))")])
        assert sum(found.values()) == 1
        kb.add(E("edge", "c", "d"))  # an unsaved edge: edge goes to the planner until saved
        assert kb._join_plan([parse_atom("(edge $x $y)")])[1] == [parse_atom("(edge $x $y)")]
        assert kb.join_count(parse_atom("(, (edge $x $y) (edge $y $z))")) == 3
        kb.checkpoint()
        assert kb._join_plan([parse_atom("(edge $x $y)")])[1] == []
        assert kb.join_count(parse_atom("(, (edge $x $y) (edge $y $z))")) == 3


def test_a_snapshot_space_joins_when_asked_and_match_keeps_the_planner_order(tmp_path):
    from metta_numba.interp.runner import MeTTa
    from metta_numba.space import SnapshotSpace
    from metta_numba.space.conjunction import query_pattern
    from metta_numba.syntax.printer import format_atom

    rng = np.random.default_rng(3)
    stored = [E("edge", f"n{i}", f"n{j}") for i, j in rng.integers(0, 8, size=(40, 2)).tolist()]
    pattern = parse_atom("(, (edge $a $b) (edge $b $c) (edge $c $a))")
    expected = reference(stored, pattern.children[1:])
    with fresh(tmp_path, stored) as kb:
        space = SnapshotSpace(kb)
        planned = query_pattern(space, pattern)
        grouped = query_pattern(space, pattern, grouped=True)
        for rows in (planned, grouped):
            assert Counter(canonical(substitute(Expression(pattern.children[1:]), b)) for b in rows) == expected
        assert sum(expected.values()) > 3  # the graph has triangles: the orders can differ
        template = parse_atom("($a $b $c)")
        shown = MeTTa(space=space).run("!(match &self (, (edge $a $b) (edge $b $c) (edge $c $a)) ($a $b $c))")
        assert [format_atom(a) for a in shown[0]] == [format_atom(substitute(template, b)) for b in planned]


def test_threads_split_a_join_without_changing_its_answers_or_their_order(tmp_path, monkeypatch):
    import metta_numba.store.join as join_module

    rng = np.random.default_rng(5)
    stored = [E("edge", f"n{i}", f"n{j}") for i, j in rng.integers(0, 12, size=(80, 2)).tolist()]
    stored += stored[:5]  # copies
    monkeypatch.setattr(join_module, "PARALLEL_FROM", 0)
    with fresh(tmp_path, stored) as kb:
        for text in ("(, (edge $a $b) (edge $b $c) (edge $c $a))", "(, (edge $a $b) (edge $b $c))"):
            pattern = parse_atom(text)
            one = kb.join(pattern)
            split = kb.join(pattern, threads=3)
            assert all(np.array_equal(one.ids[name], split.ids[name]) for name in one.ids)
            expected = sum(reference(stored, pattern.children[1:]).values())
            assert kb.join_count(pattern, threads=3) == len(one) == expected
