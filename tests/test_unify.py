"""The one-sided match against a ground atom (unify.match_ground) against full unification,
its model: the same bindings, bound in the same order, and the same answers from the counted
matchers whatever mix of ground and non-ground candidates they get."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from metta_numba.atoms import E, Expression, G, S, V, Variable, variables_of
from metta_numba.unify import (
    bindings_for,
    match_counted,
    match_ground,
    rename_apart,
    unified_counted,
    unify,
    unify_into,
)

_names = st.sampled_from(["a", "b", "f"]).map(S)
_numbers = st.sampled_from([0, 1, 2.5, math.nan]).map(G)
_ground_leaves = st.one_of(_names, _numbers)
_leaves = st.one_of(_ground_leaves, st.sampled_from(["x", "y", "z"]).map(V))


def _trees(leaves):
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3).map(Expression), max_leaves=8)


_ground_atoms = _trees(_ground_leaves)
_patterns = _trees(_leaves)


def _by_unification(pattern, ground):
    found = {}
    return found if unify_into(ground, pattern, found) else None


@given(_patterns, _ground_atoms)
def test_a_ground_match_binds_what_unification_binds_in_its_order(pattern, ground):
    expected = _by_unification(pattern, ground)
    found = match_ground(pattern, ground)
    assert (found is None) == (expected is None)
    if found is not None:
        assert list(found.items()) == list(expected.items())


@given(_patterns, _trees(_names))
def test_a_pattern_matches_each_atom_made_from_it(pattern, value):
    values = {v: value for v in variables_of(pattern)}
    if not _has_nan(pattern):  # NaN equals nothing, itself included
        assert match_ground(pattern, _substituted(pattern, values)) == values


def _substituted(atom, values):
    if type(atom) is Expression:
        return Expression([_substituted(child, values) for child in atom.children])
    return values.get(atom, atom)


def _has_nan(atom):
    if type(atom) is Expression:
        return any(_has_nan(child) for child in atom.children)
    value = getattr(atom, "value", None)
    return isinstance(value, float) and math.isnan(value)


def test_repeated_variables_must_bind_equal_parts():
    pattern = E(S("edge"), V("x"), V("x"))
    assert match_ground(pattern, E(S("edge"), S("a"), S("a"))) == {V("x"): S("a")}
    assert match_ground(pattern, E(S("edge"), S("a"), S("b"))) is None
    nested = E(S("edge"), E(S("f"), V("x")), V("x"))
    assert match_ground(nested, E(S("edge"), E(S("f"), S("a")), S("a"))) == {V("x"): S("a")}
    assert match_ground(nested, E(S("edge"), E(S("f"), S("a")), S("b"))) is None
    assert match_ground(nested, E(S("edge"), S("f"), S("a"))) is None
    assert match_ground(V("x"), S("a")) == {V("x"): S("a")}
    assert match_ground(S("a"), S("a")) == {}
    assert match_ground(E(S("a"), V("x")), E(S("a"))) is None


@given(_patterns, st.lists(st.tuples(_patterns, st.integers(1, 3)), max_size=5))
def test_counted_matches_agree_with_unifying_each_renamed_candidate(pattern, candidates):
    pattern_vars = variables_of(pattern)
    expected = []
    for atom, copies in candidates:
        bindings = unify(pattern, rename_apart(atom))
        if bindings is not None:
            values = {v: value for v, value in bindings_for(pattern_vars, bindings).items() if value != v}
            expected += [(atom, values)] * copies
    # Non-ground candidates are renamed apart with a fresh number each time: compare without it.
    got = match_counted(pattern, candidates)
    assert [(atom, _unnumbered(values)) for atom, values in got] == [
        (atom, _unnumbered(values)) for atom, values in expected
    ]


def _unnumbered(values):
    return [(var, _without_numbers(value)) for var, value in values.items()]


def _without_numbers(atom):
    if type(atom) is Expression:
        return Expression([_without_numbers(child) for child in atom.children])
    if type(atom) is Variable:
        return V(atom.name.split("#")[0] + "#")
    return atom


@given(_patterns, st.lists(st.tuples(_ground_atoms, st.integers(1, 3)), max_size=5))
def test_counted_bindings_of_ground_candidates_are_unifications(pattern, candidates):
    expected = []
    for atom, copies in candidates:
        found = _by_unification(pattern, atom)
        if found is not None:
            expected += [found] * copies
    assert [list(b.items()) for b in unified_counted(pattern, candidates)] == [list(b.items()) for b in expected]
