"""Rank offsets in 16 bits with the larger ones escaped (trie.rank_offsets): the encoding
against plain integers, a trie large enough to escape some offsets against a sorted list of
its paths, and damaged escape tables raising CorruptTrieError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metta_numba.atoms import E
from metta_numba.codec import TermStore, encode_atoms
from metta_numba.trie import CorruptTrieError, Trie
from metta_numba.trie.rank_offsets import (
    ESCAPE,
    check_rank_offsets,
    decode_rank_offsets,
    encode_rank_offsets,
    escape_count,
    verify_escapes,
)

offsets = st.lists(st.one_of(st.integers(0, 300), st.integers(ESCAPE - 2, ESCAPE + 2), st.integers(0, 2**32 - 1)))


@given(offsets)
def test_encoding_round_trips_and_escapes_only_large_offsets(values):
    words = encode_rank_offsets(np.array(values, np.int64))
    assert words.dtype == np.uint16
    assert decode_rank_offsets(words, len(values)).tolist() == values
    assert escape_count(words) == sum(1 for v in values if v >= ESCAPE)
    check_rank_offsets(words, len(values))
    verify_escapes(words, len(values))
    with pytest.raises(CorruptTrieError):
        check_rank_offsets(words, len(values) + 1)


def test_out_of_range_offsets_are_refused():
    with pytest.raises(ValueError):
        encode_rank_offsets(np.array([-1]))
    with pytest.raises(ValueError):
        encode_rank_offsets(np.array([2**32]))


@pytest.fixture(scope="module")
def big():
    """A trie of 70,010 paths: the edge to head `b` has 70,000 leaves before it."""
    terms = TermStore()
    atoms = [E("a", str(i)) for i in range(70_000)] + [E("b", str(i)) for i in range(10)]
    data, offsets, names, _ = encode_atoms(atoms, terms)
    paths = [data[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(atoms))]
    return Trie.build(data, offsets, names=names), sorted(paths)


@pytest.mark.parametrize("merkleize", [False, True])
def test_a_trie_with_escaped_offsets_ranks_like_the_sorted_paths(big, merkleize):
    trie, paths = big
    if merkleize:
        trie = trie.merkleize()
    words = trie.arrays["child_rank_offset"]
    assert escape_count(words) > 0
    trie.validate()
    for rank in [0, 1, 65_534, 65_535, 65_536, 69_999, 70_000, 70_005, 70_009]:
        assert trie.path(rank) == paths[rank]
        assert trie.rank(paths[rank]) == rank
    head_b = paths[70_000][:3]  # arity, then the symbol b (tag and byte)
    assert trie.prefix_range(head_b) == (70_000, 70_010)
    assert trie.match(paths[70_003]).tolist() == [70_003]
    data, offsets, _, _ = trie.batch(65_530, 70_010)
    assert [data[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)] == paths[65_530:]


def damaged(trie: Trie, change) -> Trie:
    arrays = {name: np.array(array) for name, array in trie.arrays.items()}
    arrays["child_rank_offset"] = change(arrays["child_rank_offset"], len(arrays["children"]))
    return Trie.from_arrays(arrays, validate=False)


def drop_entries(words, n_edges):
    out = np.concatenate([words[:n_edges], np.zeros(2, np.uint16)])
    return out


def point_at_plain_edge(words, n_edges):
    words = words.copy()
    plain = int(np.flatnonzero(words[:n_edges] != ESCAPE)[0])
    words[n_edges], words[n_edges + 1] = plain & 0xFFFF, plain >> 16
    return words


def shrink_value(words, n_edges):
    words = words.copy()
    words[n_edges + 2], words[n_edges + 3] = 5, 0
    return words


@pytest.mark.parametrize("change", [drop_entries, point_at_plain_edge, shrink_value])
def test_a_damaged_escape_table_raises_corrupt_trie_error(big, change):
    trie, paths = big
    bad = damaged(trie, change)
    with pytest.raises(CorruptTrieError):
        bad.validate()
    with pytest.raises(CorruptTrieError):
        for path in paths[70_000:]:
            assert bad.rank(path) is not None
        bad.path(70_004)
        bad.prefix_range(paths[70_000][:3])
    with pytest.raises(CorruptTrieError):
        damaged(trie, lambda words, n: words[:-3])  # the trailer disagrees with the length
