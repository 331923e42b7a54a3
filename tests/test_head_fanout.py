"""Positions 1 and 1.0 are left to the trie when it holds few (arity, head) prefixes
(trie.head_fanout): the prefix count against a reference computed from the encoded paths, which
positions the index keys on each side of the limit, and exact answers either way."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_argindex import build, key, reference, stored_atoms, through_index

from metta_numba.atoms import E
from metta_numba.codec import TermStore, encode_atoms
from metta_numba.syntax import parse_atom
from metta_numba.trie.argindex import ArgIndex, IndexOptions
from metta_numba.trie.head_fanout import HEAD_FANOUT_LIMIT, leading_prefixes
from metta_numba.trie.scan import token_payload


def first_tokens(path: bytes, count: int = 2) -> bytes:
    """The bytes of a path's first `count` tokens (all of it when it has fewer)."""
    at = 0
    for _ in range(count):
        if at >= len(path):
            break
        at += 1 + token_payload(path[at])
    return path[:at]


@settings(max_examples=60, deadline=None)
@given(st.lists(stored_atoms, max_size=24), st.integers(0, 6), st.booleans())
def test_leading_prefixes_counts_distinct_heads(stored, limit, merkleize):
    terms = TermStore()
    trie = build(stored, terms)
    if merkleize:
        trie = trie.merkleize()
    data, offsets, _, _ = encode_atoms(stored, terms)
    paths = {data[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)}
    expected = len({first_tokens(path) for path in paths})
    assert leading_prefixes(trie._structure, 1000) == expected
    assert leading_prefixes(trie._structure, limit) == min(expected, limit + 1)


def keyed(index: ArgIndex) -> dict:
    return {p["position"]: p["keyed"] for p in index.positions()}


def test_few_heads_leave_positions_1_and_1_0_to_the_trie():
    terms = TermStore()
    stored = [E("edge", f"n{i}", f"n{(7 * i) % 50}") for i in range(200)] + [
        E("rule", E(f"f{i % 5}", "a"), f"r{i}") for i in range(40)
    ]
    trie = build(stored, terms)
    index = ArgIndex.build(trie, IndexOptions(max_ratio=None))
    flags = keyed(index)
    assert flags[(1,)] is False and flags[(1, 0)] is False and flags[(2,)] is True
    # Asked for by name, position 1 is keyed all the same.
    assert keyed(ArgIndex.build(trie, IndexOptions(positions=[(1,), (2,)])))[(1,)] is True
    counts = [1] * len(stored)
    for text in ("($r n7 $y)", "($r $x n14)", "(edge n7 $y)", "($h (f3 $a) $b)", "($h $x r9)"):
        atom = parse_atom(text)
        assert through_index(trie, index, atom, terms) == reference(stored, counts, atom, terms), text


def test_many_heads_keep_position_1_keyed():
    terms = TermStore()
    heads = HEAD_FANOUT_LIMIT + 1
    stored = [E(f"rel{i % heads}", f"n{i % 30}", f"m{i}") for i in range(10 * heads)]
    trie = build(stored, terms)
    index = ArgIndex.build(trie, IndexOptions(max_ratio=None))
    assert keyed(index)[(1,)] is True
    atom = parse_atom("($r n4 $y)")
    expected = reference(stored, [1] * len(stored), atom, terms)
    assert through_index(trie, index, atom, terms) == expected
    # The postings narrow the variable-head lookup to the atoms with n4 first.
    assert index.estimate(trie, key(atom, terms)) == sum(expected.values())


def test_unkeyed_positions_store_no_variable_list():
    terms = TermStore()
    # Position 2: a variable in every atom, so it has no keys (and a lookup never reads its
    # variables); position 3: a value per atom. With (g $w) at position 2, its head g is keyed
    # at 2.0, whose lookups take in the variables at 2 as well: those stay.
    stored = [parse_atom(f"(p x $w k{i})") for i in range(60)]
    nested = [parse_atom(f"(p x {'(g $w)' if i % 2 else '$w'} k{i})") for i in range(60)]
    nested_index = ArgIndex.build(build(nested, TermStore()), IndexOptions(max_ratio=None))
    assert {p["position"]: p["variables"] for p in nested_index.positions()}[(2,)] == 30
    trie = build(stored, terms)
    index = ArgIndex.build(trie, IndexOptions(max_ratio=None))
    positions = {p["position"]: p for p in index.positions()}
    assert not positions[(2,)]["keyed"] and positions[(3,)]["keyed"]
    assert positions[(2,)]["variables"] == 0
    for text in ("(p x $a k5)", "(p x (g 1) $b)", "(p $h $v k3)", "(p x $a k6)"):
        atom = parse_atom(text)
        assert through_index(trie, index, atom, terms) == reference(stored, [1] * 60, atom, terms), text
    assert index.arrays["hashes"].dtype == np.uint32
