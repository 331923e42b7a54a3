"""Conjunctions against a reference model: every combination of stored atoms, unified in turn
with the patterns by brute force. Whatever order the steps run in (each permutation forced,
or the planner's own), the answers are the reference's as multisets; run in the written
order, they come in the order of a left-to-right nested loop."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Atom, E, Expression, Symbol, Variable
from metta_numba.space import GroundingSpace, SnapshotSpace
from metta_numba.space.conjunction import conjuncts, estimate, match_conjunction, query_pattern
from metta_numba.store.kb import PersistentKB
from metta_numba.store.snapshot import save_atoms
from metta_numba.syntax import parse_atom
from metta_numba.syntax.printer import format_atom
from metta_numba.unify import rename_apart, substitute, unify_into

names = st.sampled_from(["a", "b", "c"]).map(Symbol)
variables = st.sampled_from(["x", "y", "z"]).map(Variable)
terms = st.one_of(names, names, variables, st.tuples(st.just("f"), names).map(lambda t: E(*t)))
facts = st.tuples(st.sampled_from(["edge", "p"]), terms, terms).map(lambda t: E(*t))
pattern_terms = st.one_of(names, st.sampled_from(["u", "v", "w"]).map(Variable))
patterns = st.tuples(st.sampled_from(["edge", "p"]), pattern_terms, pattern_terms).map(lambda t: E(*t))


def canonical(atom: Atom) -> str:
    """The atom's text with its variables renamed by first occurrence: equal up to renaming."""
    mapping: dict = {}
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Variable:
            mapping.setdefault(a, Variable(f"v{len(mapping)}"))
        elif type(a) is Expression:
            stack.extend(reversed(a.children))
    return format_atom(substitute(atom, mapping))


def reference(stored: list[Atom], parts: list[Atom]) -> Counter:
    """Every choice of one stored atom per pattern that unifies all at once."""
    found: Counter = Counter()
    whole = Expression(parts)
    for choice in itertools.product(stored, repeat=len(parts)):
        bindings: dict = {}
        if all(unify_into(rename_apart(atom), part, bindings) for atom, part in zip(choice, parts)):
            found[canonical(substitute(whole, bindings))] += 1
    return found


def nested_loop(space, parts: list[Atom]) -> list[str]:
    """The left-to-right join, written out plainly: the order hyperon reports."""
    rows = [{}]
    for part in parts:
        rows = [{**row, **found} for row in rows for found in space.query(substitute(part, row))]
    return [canonical(substitute(Expression(parts), row)) for row in rows]


def results(space, parts, order=None) -> list[str]:
    whole = Expression(parts)
    return [canonical(substitute(whole, b)) for b in match_conjunction(space, parts, order)]


@given(st.lists(facts, max_size=10), st.lists(patterns, min_size=1, max_size=3))
def test_every_order_gives_the_reference_answers(stored, parts):
    space = GroundingSpace(stored)
    expected = reference(stored, parts)
    in_order = nested_loop(space, parts)
    assert Counter(in_order) == expected
    assert results(space, parts, range(len(parts))) == in_order
    assert Counter(results(space, parts)) == expected
    for order in itertools.permutations(range(len(parts))):
        assert Counter(results(space, parts, order)) == expected


@pytest.fixture(scope="module")
def kb_root(tmp_path_factory):
    return tmp_path_factory.mktemp("kbs")


@settings(max_examples=25)
@given(
    st.lists(facts, max_size=10),
    st.lists(facts, max_size=4),
    st.lists(st.integers(0, 9), max_size=3),
    st.lists(patterns, min_size=1, max_size=3),
)
def test_snapshot_space_gives_the_reference_answers(kb_root, stored, added, removed, parts):
    path = kb_root / f"kb{len(list(kb_root.iterdir()))}"
    save_atoms(stored, path)
    remaining = list(stored)
    with PersistentKB.open(path, sync="never") as kb:
        for atom in added:
            kb.add(atom)  # the working set, between checkpoints
        for index in removed:
            if index < len(stored) and stored[index] in remaining:
                assert kb.remove(stored[index])
                remaining.remove(stored[index])
        space = SnapshotSpace(kb)
        for part in parts:  # one pattern: the KB's kernel path against unification
            assert Counter(canonical(substitute(Expression([part]), b)) for b in space.query(part)) == reference(
                remaining + added, [part]
            )
        expected = reference(remaining + added, parts)
        assert Counter(results(space, parts)) == expected
        for order in itertools.permutations(range(len(parts))):
            assert Counter(results(space, parts, order)) == expected


def test_the_planner_starts_with_the_most_selective_pattern():
    stored = [E("edge", f"n{i}", f"n{(i * 7) % 50}") for i in range(200)] + [E("color", "n3", "red")]
    space = GroundingSpace(stored)
    parts = [E("edge", "$x", "$y"), E("color", "$x", "red")]
    trace: list[int] = []
    found = match_conjunction(space, parts, trace=trace)
    assert trace == [1, 0]
    assert [substitute(Variable("y"), b) for b in found] == [Symbol("n21")]
    assert estimate(space, parts[1]) < estimate(space, parts[0])


def test_query_pattern_and_conjuncts():
    space = GroundingSpace([E("p", "a"), E("q", "a"), E("q", "b")])
    assert conjuncts(parse_atom("(p $x)")) is None
    assert conjuncts(parse_atom("(, (p $x) (q $x))")) == [parse_atom("(p $x)"), parse_atom("(q $x)")]
    assert [b[Variable("x")] for b in query_pattern(space, parse_atom("(q $x)"))] == [Symbol("a"), Symbol("b")]
    rows = query_pattern(space, parse_atom("(, (p $x) (q $x))"))
    assert [substitute(Variable("x"), b) for b in rows] == [Symbol("a")]
    assert query_pattern(space, parse_atom("(,)")) == [{}]
    with pytest.raises(ValueError):
        match_conjunction(space, [E("p", "$x")], order=[1])


# --- rule lookup by a ground argument --------------------------------------------------------


def many_rules(n: int) -> list[Atom]:
    rules = [E("=", ("f", i), f"v{i}") for i in range(n)]
    rules += [E("=", ("g", "$x", i), f"w{i}") for i in range(n)]
    rules += [E("=", ("f", "$any"), "default"), E("=", ("g", "$x", "$y"), "fallback")]
    return rules


def test_a_call_with_a_ground_argument_looks_up_only_its_rules():
    space = GroundingSpace(many_rules(2000))
    for call, expected in (
        (parse_atom("(f 1234)"), ["(= (f 1234) v1234)", "(= (f $any) default)"]),
        (parse_atom("(g q 77)"), ["(= (g $x 77) w77)", "(= (g $x $y) fallback)"]),
        (parse_atom("(f nothing)"), ["(= (f $any) default)"]),
    ):
        got = [format_atom(rule.atom) for rule in space.rules_candidates(call)]
        assert got == expected
    # A call without a ground argument still sees every rule, in the order they were added.
    assert len(space.rules_candidates(parse_atom("(f $q)"))) == 2001


def test_rule_lookup_follows_changes_to_the_space():
    space = GroundingSpace(many_rules(100))
    call = parse_atom("(f 7)")
    assert len(space.rules_candidates(call)) == 2
    space.add(E("=", ("f", 7), "again"))
    assert [format_atom(r.atom) for r in space.rules_candidates(call)] == [
        "(= (f 7) v7)",
        "(= (f $any) default)",
        "(= (f 7) again)",
    ]
    space.remove(E("=", ("f", 7), "v7"))
    assert len(space.rules_candidates(call)) == 2


def test_the_interpreter_answers_calls_through_the_narrowed_lookup():
    from metta_numba import MeTTa

    program = "\n".join(format_atom(rule) for rule in many_rules(500))
    program += "\n!(f 321)\n!(g a 5)\n!(f zzz)\n"
    assert [[format_atom(a) for a in r] for r in MeTTa().run(program)] == [
        ["v321", "default"],
        ["w5", "fallback"],
        ["default"],
    ]


def test_nested_ground_arguments_narrow_the_in_memory_candidates():
    rules = [E("=", ("h", ("k", i)), i) for i in range(300)] + [E("=", ("h", ("k", "$n")), "any")]
    space = GroundingSpace(rules)
    found = list(space.candidates(parse_atom("(= (h (k 42)) $r)")))
    assert [format_atom(a) for a in found] == ["(= (h (k 42)) 42)", "(= (h (k $n)) any)"]
