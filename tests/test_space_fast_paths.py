"""The in-memory space's shortcuts for flat atoms against simple reference models: the quick
match test, the posting lists, the answer-order trie and the flat sort key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from strategies import atoms, generalize, leaves

from metta_numba.atoms import Atom, Expression, G, S, V, Variable
from metta_numba.space import GroundingSpace
from metta_numba.space.base import _VAR, _child_key, may_match
from metta_numba.space.grounding import _inner_key
from metta_numba.space.order import TrieOrder, _prefix_tokens, tokens_of


def reference_may_match(stored: Atom, pattern: Atom) -> bool:
    """May the two unify, ignoring which variable is which (recursive definition)."""
    if type(stored) is Variable or type(pattern) is Variable:
        return True
    if type(stored) is Expression:
        if type(pattern) is not Expression or len(stored.children) != len(pattern.children):
            return False
        return all(reference_may_match(s, p) for s, p in zip(stored.children, pattern.children))
    return stored == pattern


# Few distinct leaves, so that stored atoms share prefixes and answer each other's patterns.
_FEW_LEAVES = st.sampled_from([S("a"), S("b"), V("x"), V("y"), G("s"), G(1), G(1.0), G(True)])


def flat_atoms():
    return st.lists(leaves(finite_floats=True), max_size=5).map(Expression)


@given(st.one_of(atoms(finite_floats=True), flat_atoms()), st.lists(st.integers(0, 3), max_size=30))
def test_quick_match_test_agrees_with_the_recursive_definition(stored, choices):
    pattern = generalize(stored, choices)
    assert may_match(stored, pattern) == reference_may_match(stored, pattern)


@given(st.one_of(atoms(finite_floats=True), flat_atoms()), st.one_of(atoms(finite_floats=True), flat_atoms()))
def test_quick_match_test_on_unrelated_atoms(stored, pattern):
    assert may_match(stored, pattern) == reference_may_match(stored, pattern)


def reference_postings(stored: list[Atom]) -> dict:
    """(arity, position, key) -> ids, as the space's docstring describes them."""
    postings: dict = {}
    for atom_id, atom in enumerate(stored):
        if type(atom) is not Expression:
            continue
        arity = len(atom.children)
        for position, child in enumerate(atom.children):
            keys = [(arity, position, _child_key(child))]
            if type(child) is Variable:
                keys.append((arity, position, _VAR))
            elif type(child) is Expression and position:
                size = len(child.children)
                keys += [(arity, position, size, i, _inner_key(c)) for i, c in enumerate(child.children)]
            for key in keys:
                postings.setdefault(key, []).append(atom_id)
    return postings


def reference_trie(stored: list[Atom]) -> tuple[dict, dict]:
    """Prefix path -> count of atoms through it, and path -> creation rank of its node."""
    counts: dict = {}
    ranks: dict = {}
    for atom in stored:
        path: tuple = ()
        for token in _prefix_tokens(atom):
            path = path + (token,)
            ranks.setdefault(path, len(ranks) + 1)
            counts[path] = counts.get(path, 0) + 1
    return counts, ranks


@given(st.lists(st.one_of(flat_atoms(), atoms(finite_floats=True)), max_size=12))
def test_index_and_trie_of_added_atoms_match_the_reference_models(stored):
    space = GroundingSpace()
    for atom in stored:
        space.add(atom)
    assert space._postings == reference_postings(stored)
    order: TrieOrder = space._order
    counts, ranks = reference_trie(stored)
    for path, rank in ranks.items():
        node = order._nodes(list(path))[-1]
        assert node == rank
        assert order._counts[node] == counts[path]
    assert len(order._counts) == len(ranks) + 1


@given(
    st.lists(st.lists(_FEW_LEAVES, max_size=3).map(Expression), min_size=1, max_size=10),
    st.lists(st.integers(0, 2), max_size=4),
    st.integers(0, 9),
)
def test_flat_sort_key_equals_the_general_one(stored, choices, which):
    order = TrieOrder()
    for atom in stored:
        order.add(atom)
    # A pattern made from one stored atom: some elements become variables, the same or fresh.
    model = stored[which % len(stored)]
    kids = list(model.children)
    for k, choice in enumerate(choices[: len(kids)]):
        if choice:
            kids[k] = Variable("p0" if choice == 2 else f"p{k + 1}")
    pattern = Expression(kids)
    key = order.answer_order(pattern)
    pattern_tokens, pattern_ends = tokens_of(pattern)
    for atom in stored:
        if not may_match(atom, pattern):
            continue  # keys are asked only of atoms that answer the pattern
        assert key(atom) == order._answer_key(atom, pattern_tokens, pattern_ends)
