"""The answer-order nodes of a bulk-loaded segment (space/segment_order.py), found by passes
over the paths or by the built trie, against `TrieOrder` fed the same atoms one by one: a
node's code must order nodes exactly as TrieOrder's creation ranks do."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.codec import TermStore, encode_atoms
from metta_numba.space import segment_order
from metta_numba.space.order import TrieOrder, _prefix_tokens
from metta_numba.space.segment import BulkSegment
from tests.strategies import atoms


def _no_float(atom: Atom) -> bool:
    if type(atom) is Expression:
        return all(_no_float(c) for c in atom.children)
    return not (type(atom) is Grounded and type(atom.value) is float)


_atoms = atoms(finite_floats=True, max_leaves=8).filter(_no_float)
# Few distinct leaves, so that atoms share prefixes and copies turn up.
_small = st.recursive(
    st.sampled_from([Variable("x"), Variable("y"), Grounded(1), Grounded("s")])
    | st.sampled_from([Symbol("a"), Symbol("b"), Symbol("=")]),
    lambda kids: st.lists(kids, min_size=0, max_size=3).map(Expression),
    max_leaves=6,
)
_programs = st.lists(st.one_of(_small, _atoms), min_size=1, max_size=25)


def _segment(items: list[Atom]) -> BulkSegment:
    from types import SimpleNamespace

    terms = TermStore()
    data, offsets, names, skipped = encode_atoms(items, terms)
    assert skipped == 0
    return BulkSegment(SimpleNamespace(data=data, offsets=offsets, names=names, terms=terms))


def _same_order(pairs: list[tuple[int, int]]) -> None:
    """(reference rank, code) pairs: equal ranks have equal codes and ranks order as codes."""
    by_rank: dict[int, int] = {}
    for rank, code in pairs:
        assert by_rank.setdefault(rank, code) == code
    ranks = sorted(by_rank)
    codes = [by_rank[r] for r in ranks]
    assert codes == sorted(codes) and len(set(codes)) == len(codes)


def _check(items: list[Atom], probes: list[Atom], monkeypatch, budget: int) -> None:
    monkeypatch.setattr(segment_order, "SCAN_BUDGET", budget)
    segment = _segment(items)
    reference = TrieOrder()
    for atom in items:
        reference.add(atom)
    pairs = []
    for index, atom in enumerate(items):
        tokens = _prefix_tokens(atom)
        ranks = reference._nodes(tokens)
        codes = segment.nodes_of(index)
        assert len(codes) == len(ranks)
        pairs += zip(ranks, codes)
    for atom in probes:
        tokens = _prefix_tokens(atom)
        ranks = reference._nodes(tokens)
        held = 0
        while held < len(ranks) and ranks[held] != 0:
            held += 1
        codes = segment.prefix_nodes(tokens)
        assert len(codes) == held
        pairs += zip(ranks, codes)
    _same_order(pairs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=_programs, probes=st.lists(st.one_of(_small, _atoms), max_size=6), budget=st.sampled_from([0, 1000]))
def test_segment_nodes_order_as_trie_order_ranks(items, probes, budget, monkeypatch) -> None:
    """Budget 0 builds the trie at once; 1000 answers every question by passes."""
    _check(items, probes + items[:3], monkeypatch, budget)


@given(st.lists(st.integers(-1, 40), max_size=60) | st.lists(st.integers(-1, 10**6), max_size=8))
def test_distinct_ids_are_those_of_np_unique(ids):
    import numpy as np

    array = np.array(ids, np.int64)
    distinct, inverse = segment_order._distinct_ids(array)
    expected, expected_inverse = np.unique(array, return_inverse=True)
    assert distinct.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.ravel().tolist()
