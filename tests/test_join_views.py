"""JoinViews.relation: which stored relations a join reads itself, and their rows."""

from __future__ import annotations

import pytest

from metta_numba.atoms import E, Grounded, Symbol, Variable
from metta_numba.codec import TermStore, encode, encode_atoms
from metta_numba.store.join_views import JoinViews
from metta_numba.trie import Trie


def views_of(atoms) -> tuple[JoinViews, TermStore]:
    terms = TermStore()
    data, offsets, names, _ = encode_atoms(atoms, terms)
    return JoinViews(Trie.build(data, offsets, None, names)), terms


edges = [E(Symbol("edge"), Symbol(a), Symbol(b)) for a, b in ("ab", "bc", "ca", "ba")]


@pytest.mark.parametrize(
    ("extra", "joinable"),
    [
        ([], True),
        ([E(Variable("h"), Symbol("a"), Symbol("b"))], False),  # a variable head of the same arity
        ([E(Variable("h"), Symbol("a"))], True),  # another arity
        ([Variable("x")], False),  # a bare variable matches every pattern
        ([E(Symbol("edge"), Symbol("a"), Variable("y"))], False),  # a row with a variable
        ([E(Symbol("edge"), Symbol("a"), Grounded(2.0))], False),  # a whole float
        ([E(Symbol("other"), Variable("y"), Variable("z"))], True),  # another head
    ],
)
def test_a_relation_is_joinable_unless_a_stored_variable_could_match(extra, joinable):
    views, terms = views_of(edges + extra)
    relation = views.relation(encode(Symbol("edge"), terms)[0], 3)
    assert (relation is not None) == joinable
    if relation is not None:
        rows = {tuple(views.values[i] for i in row) for row in relation.cells.tolist()}
        expected = {tuple(encode(arg, terms)[0] for arg in atom.children[1:]) for atom in edges}
        assert rows == expected and relation.counts.tolist() == [1] * len(edges)
        assert views.relation(encode(Symbol("edge"), terms)[0], 3) is relation, "read once"
