"""Compact columns (trie.columns) against a plain array as the reference model: every value
reads back, through the kernels' getters and the bulk decoder; headers that disagree with the
array are refused; and a trie's node arrays survive the trip to columns and back. Packing a
piece at a time, into a file (trie.column_pack), gives the column packed at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import E
from metta_numba.codec import TermStore, encode
from metta_numba.trie import CorruptTrieError, Trie, column_pack
from metta_numba.trie.column_pack import block_column, compact_nodes, escaped_column, label_column
from metta_numba.trie.columns import (
    BLOCK,
    BLOCK_KIND,
    ESCAPED_KIND,
    HEADER_WORDS,
    TILE,
    TILED_KIND,
    block_get,
    check_column,
    column_len,
    decode,
    escaped_get,
    kept_aside,
    plain_nodes,
    tiled_get,
)
from metta_numba.trie.layout import COLUMN_NAMES
from metta_numba.trie.spill import is_file_mapped

# Mostly small values with a few large ones, as the trie's offsets are.
values_lists = st.lists(
    st.one_of(st.integers(0, 40), st.integers(0, 2**20), st.integers(0, 2**62)),
    max_size=3 * BLOCK,
)


def escaped_value(words, i: int) -> int:
    """A read as the kernels make it: `escaped_get`, and `kept_aside` when it says -1."""
    value = escaped_get(words, i)
    return value if value >= 0 else kept_aside(words, i)


@settings(max_examples=150)
@given(values_lists)
def test_block_and_escaped_columns_read_back_every_value(values):
    reference = np.array(values, np.int64)
    encodings = ((block_column, block_get, BLOCK_KIND), (escaped_column, escaped_value, ESCAPED_KIND))
    for encode_column, get, kind in encodings:
        words = encode_column(reference)
        assert check_column(words, "test", kind) == kind
        assert column_len(words) == len(reference)
        assert [get(words, i) for i in range(len(reference))] == values
        assert np.array_equal(decode(words), reference)
        for outside in (-1, len(reference)):
            with pytest.raises(CorruptTrieError):
                get(words, outside)


@settings(max_examples=150)
@given(st.lists(st.integers(1, 255), min_size=1, max_size=3 * TILE), st.integers(0, 2**33), st.booleans())
def test_label_offsets_that_tile_are_stored_every_tile(lengths, start, broken):
    lengths = np.array([0] + lengths, np.uint8)
    offsets = start + np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)])
    if broken and len(offsets) > 2:
        offsets[len(offsets) // 2 | 1] += 1  # inside a tile: no longer the sum of the lengths
    words = label_column(offsets, lengths)
    tiles = not (broken and len(offsets) > 2)
    assert check_column(words, "label_off") == (TILED_KIND if tiles else BLOCK_KIND)
    assert np.array_equal(decode(words, lengths), offsets)
    if tiles:
        assert [tiled_get(words, lengths, i) for i in range(len(offsets))] == offsets.tolist()
        # One value per tile, in the bits the largest of them needs, and nothing else.
        tiles, width = len(offsets[::TILE]), int(offsets[::TILE].max()).bit_length()
        assert len(words) == HEADER_WORDS + (tiles * width + 63) // 64 + 2  # and two spare words


def test_escaped_columns_keep_only_the_outliers_aside():
    values = np.zeros(1000, np.int64) + 2
    values[::100] = 10**9
    words = escaped_column(values)
    assert int(words[2]) & 0xFF == 2 and int(words[3]) == 10  # 2 bits each; 10 kept aside
    assert np.array_equal(decode(words), values)


# For each header word, a change that the array's length cannot absorb: an unknown kind, 10,000
# more values, 5 more bits a value, 50 more values kept aside, a stream 3 words later.
HEADER_DAMAGE = [(0, 5), (1, 10**4), (2, 5), (3, 50), (4, 3), (5, 3), (6, 3), (7, 3)]


@pytest.mark.parametrize(("word", "change"), HEADER_DAMAGE)
def test_a_header_that_disagrees_with_the_array_is_refused(word, change):
    words = escaped_column(np.arange(100, dtype=np.int64) * 1000)
    damaged = words.copy()
    damaged[word] += np.uint64(change)
    with pytest.raises(CorruptTrieError):
        check_column(damaged, "column")
    with pytest.raises(CorruptTrieError):
        check_column(words[:-1], "column")
    with pytest.raises(CorruptTrieError):
        check_column(words.astype(np.int64), "column")


def test_reads_past_a_damaged_column_raise_instead_of_reading_out_of_bounds():
    words = block_column(np.arange(500, dtype=np.int64) * 7)
    for word, value in ((1, 10**6), (2, 63 | 63 << 8), (5, 10**9)):
        damaged = words.copy()
        damaged[word] = value
        with pytest.raises(CorruptTrieError):
            for i in range(0, 10**6, 997):
                block_get(damaged, i)


def test_negative_values_are_refused():
    for encode_column in (block_column, escaped_column):
        with pytest.raises(ValueError, match="non-negative"):
            encode_column(np.array([1, -1]))


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(["f", "g", "edge"]), st.integers(0, 300)), min_size=1, max_size=60))
def test_node_arrays_go_to_columns_and_back(items):
    terms = TermStore()
    paths = [encode(E(head, number, (head, number % 7)), terms)[0] for head, number in items]
    offsets = np.cumsum([0] + [len(p) for p in paths])
    trie = Trie.build(np.frombuffer(b"".join(paths), np.uint8), offsets)
    arrays = trie.arrays
    columns = [arrays[name] for name in COLUMN_NAMES]
    plain = plain_nodes(*columns, arrays["label_len"])
    assert [a.dtype for a in plain] == [np.uint32, np.int32, np.int32, np.int32]
    again = compact_nodes(*plain, arrays["label_len"])
    assert all(np.array_equal(a, b) for a, b in zip(again, columns))
    # The plain layout (store formats 1-3) opens as the same trie.
    older = dict(arrays, **dict(zip(COLUMN_NAMES, plain)))
    reopened = Trie.from_arrays(older)
    assert list(reopened.iter_paths()) == list(trie.iter_paths())
    assert all(np.array_equal(reopened.arrays[name], arrays[name]) for name in COLUMN_NAMES)
    assert reopened.merkleize().n_nodes == trie.merkleize().n_nodes


# Longer lists than one small piece holds, values kept aside here and there.
long_values = st.lists(st.one_of(st.integers(0, 5), st.integers(0, 5), st.integers(0, 2**40)), max_size=9 * BLOCK)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(long_values, st.sampled_from([BLOCK, 2 * BLOCK, 3 * BLOCK]), st.lists(st.integers(0, 60), max_size=9 * BLOCK))
def test_a_column_packed_piece_by_piece_into_a_file_is_the_one_packed_at_once(
    tmp_path, monkeypatch, values, piece, lengths
):
    values = np.array(values, np.int64)
    # Label offsets that tile, over lengths of their own (a length per offset).
    lengths = np.resize(np.array(lengths or [1], np.uint8), len(values))
    offsets = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)])[: len(values)]
    whole = [block_column(values), escaped_column(values), label_column(offsets, lengths)]
    monkeypatch.setattr(column_pack, "PIECE", piece)
    files = [tmp_path / f"{name}.{piece}" for name in ("block", "escaped", "label")]
    pieces = [
        block_column(values, files[0]),
        escaped_column(values, files[1]),
        label_column(offsets, lengths, files[2]),
    ]
    for at_once, by_piece, file in zip(whole, pieces, files):
        assert by_piece.dtype == at_once.dtype and np.array_equal(by_piece, at_once)
        if len(values):
            assert is_file_mapped(by_piece) and file.stat().st_size == by_piece.nbytes


def test_child_steps_are_found_piece_by_piece_and_a_backward_edge_is_refused(monkeypatch):
    monkeypatch.setattr(column_pack, "PIECE", 2)
    # A chain 0 -> 1 -> ... -> 9, each node also pointing 3 ahead where it can.
    child_start, children = [0], []
    for node in range(10):
        children += [node + 1] + ([node + 3] if node + 3 < 10 else [])
        child_start.append(len(children))
    child_start, children = np.array(child_start, np.int32), np.array(children[:-1], np.int32)
    child_start[-1] = len(children)  # the last node has no child
    steps = column_pack.child_steps(child_start, children, np.zeros(len(children), np.int32))
    parents = np.repeat(np.arange(10), np.diff(child_start))
    assert np.array_equal(steps, children - parents)
    children[5] = 0
    with pytest.raises(ValueError, match="lower node id"):
        column_pack.child_steps(child_start, children, np.zeros(len(children), np.int32))
