"""The merkleized layout made straight from the path stream (trie.dag_build) against its model:
the tree laid out by build.layout_trie, then merkleized by merkle.merkleize_structure. Both
must give the very same arrays, whatever the paths (shared prefixes, splits inside labels,
suffixes longer than one label), and refuse a corrupt stream alike. With a bounded table of
classes (trie.dag_table) the DAG may be less shared, but holds the very same paths; the
table's sweep is checked against a model of what it keeps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.codec import TermStore, encode_atoms
from metta_numba.trie import ARRAY_NAMES, CorruptTrieError, Trie, merkle, sort
from metta_numba.trie.build import layout_trie
from metta_numba.trie.dag_build import DagBuilder, layout_dag
from metta_numba.trie.dag_table import FOUND_AGAIN, entry_class, new_entry, new_table, slots_within, sweep
from metta_numba.trie.layout import MAX_LABEL_LEN
from metta_numba.trie.spill import drop_pages, is_file_mapped

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Few distinct bytes, so that paths share prefixes and subtries repeat; now and then a path
# longer than a label holds, so that chains of one-child nodes are made and split.
_short = st.binary(min_size=1, max_size=6).map(lambda b: bytes(x % 3 for x in b))
_long = st.integers(MAX_LABEL_LEN - 2, 2 * MAX_LABEL_LEN + 3).map(lambda n: bytes(i % 2 for i in range(n)))
_paths = st.lists(st.one_of(_short, _short, _short, _long, st.tuples(_short, _long).map(b"".join)), max_size=40)


def _stream(paths: list[bytes]) -> list[np.ndarray]:
    """[labels, common, length] of the distinct paths, each made prefix-free by an end byte."""
    ended = [path + b"\xff" for path in paths]
    data = np.frombuffer(b"".join(ended), np.uint8).copy()
    offsets = np.zeros(len(ended) + 1, np.int64)
    offsets[1:] = np.cumsum([len(path) for path in ended])
    order = sort.sort_paths(data, offsets)
    no_column = np.zeros(0, np.int64)
    first, common, length, _, _ = sort.fold_duplicates(data, offsets, order, no_column, no_column)
    return [sort.suffix_labels(data, offsets, first, common, length), common, length]


def _tree_then_merkleized(stream: list[np.ndarray]):
    labels = stream[0]
    return merkle.merkleize_structure((labels, *layout_trie(stream)))


@FAST
@given(_paths)
def test_the_dag_from_the_stream_is_the_merkleized_tree(paths):
    stream = _stream(paths)
    handed = [column.copy() for column in stream]
    labels, nodes = layout_dag(handed)
    assert handed == []  # the stream is let go of
    want_labels, want_nodes = _tree_then_merkleized(stream)
    assert labels.dtype == want_labels.dtype and np.array_equal(labels, want_labels)
    for got, want in zip(nodes, want_nodes):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_repeated_subtries_are_stored_once():
    # Four paths ending in the same two-leaf subtrie under different first bytes.
    paths = [bytes([head]) + tail for head in b"abcd" for tail in (b"xy1", b"xy2")]
    labels, nodes = layout_dag(_stream(paths))
    label_off, label_len, child_start, children, first_byte, rank_offset = nodes
    # The root, four heads ("axy" ... "dxy") and the two leaves ("1\xff", "2\xff") they share.
    heads = [int(c) for c in children[child_start[0] : child_start[1]]]
    assert len(label_len) == 1 + 4 + 2 and len(set(heads)) == 4
    assert len({tuple(children[child_start[head] : child_start[head + 1]]) for head in heads}) == 1
    assert list(rank_offset[child_start[0] : child_start[1]]) == [0, 2, 4, 6]


@FAST
@given(st.lists(st.sampled_from(["(a b)", "(a c)", "(f (g x) y)", "(f (g x) z)", "foo", "(a b)"]), max_size=12))
def test_a_merkleized_build_answers_as_the_tree_merkleized_afterwards(texts):
    from metta_numba.syntax.parser import parse_atom

    atoms = [parse_atom(text) for text in texts]
    data, offsets, _, _ = encode_atoms(atoms, TermStore())
    built = Trie.build(data, offsets, merkleize=True)
    afterwards = Trie.build(data, offsets).merkleize()
    for name in ARRAY_NAMES:
        assert np.array_equal(built._arrays[name], afterwards._arrays[name]), name
    assert built.merkleized and len(built) == len(afterwards)


def test_a_corrupt_stream_is_refused_as_the_tree_layout_refuses_it():
    prefix = [np.frombuffer(b"abc", np.uint8).copy(), np.array([0, 1], np.int32), np.array([1, 3], np.int32)]
    overrun = [np.frombuffer(b"ab", np.uint8).copy(), np.array([0, 1], np.int32), np.array([2, 4], np.int32)]
    not_first = [np.frombuffer(b"ab", np.uint8).copy(), np.array([1], np.int32), np.array([2], np.int32)]
    for stream in (prefix, overrun, not_first):
        with pytest.raises(CorruptTrieError):
            layout_trie([column.copy() for column in stream])
        with pytest.raises(CorruptTrieError):
            layout_dag([column.copy() for column in stream])


@FAST
@given(_paths, st.lists(st.integers(0, 40), max_size=5))
def test_a_stream_fed_in_chunks_gives_the_dag_of_the_whole(paths, cuts):
    stream = _stream(paths)
    labels, common, length = stream
    want_labels, want_nodes = layout_dag([column.copy() for column in stream])
    builder = DagBuilder(len(common) + 3, len(labels) + 5, int(length.max(initial=0)) + 2)  # room to spare
    bounds = sorted({0, len(common), *(min(cut, len(common)) for cut in cuts)})
    byte_at = np.concatenate([[0], np.cumsum(length - common)])
    for lo, hi in zip(bounds, bounds[1:]):
        builder.add(labels[byte_at[lo] : byte_at[hi]].copy(), common[lo:hi].copy(), length[lo:hi].copy())
    got_labels, got_nodes = builder.finish()
    assert np.array_equal(got_labels, want_labels)
    for got, want in zip(got_nodes, want_nodes):
        assert got.dtype == want.dtype and np.array_equal(got, want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_paths, st.lists(st.integers(0, 40), max_size=3))
def test_a_builder_in_a_folder_keeps_its_classes_in_files_and_gives_the_same_dag(tmp_path_factory, paths, cuts):
    folder = tmp_path_factory.mktemp("dag")
    stream = _stream(paths)
    labels, common, length = stream
    want_labels, want_nodes = layout_dag([column.copy() for column in stream])
    builder = DagBuilder(len(common), len(labels), int(length.max(initial=0)), folder)
    bounds = sorted({0, len(common), *(min(cut, len(common)) for cut in cuts)})
    byte_at = np.concatenate([[0], np.cumsum(length - common)])
    for lo, hi in zip(bounds, bounds[1:]):
        builder.add(labels[byte_at[lo] : byte_at[hi]], common[lo:hi], length[lo:hi])
    got_labels, got_nodes = builder.finish()
    assert np.array_equal(got_labels, want_labels)
    for got, want in zip(got_nodes, want_nodes):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    # Every array the DAG is made of is a view of a file of the folder, whose pages the build
    # can let go of (spill.drop_pages), and the values survive letting go of them.
    arrays = [got_labels, *got_nodes]
    for array in arrays:
        if len(array):
            assert is_file_mapped(array)
            drop_pages(array)
    assert np.array_equal(got_labels, want_labels)
    assert all(np.array_equal(got, want) for got, want in zip(got_nodes, want_nodes))
    assert {entry.name for entry in folder.iterdir()} >= {"dag.label_off", "dag.children", "dag.class_leaves"}


def test_a_builder_refuses_more_than_it_was_sized_for():
    labels, common, length = _stream([b"ab", b"ac", b"b"])
    with pytest.raises(ValueError, match="more paths"):
        DagBuilder(2, 100, 10).add(labels, common, length)
    with pytest.raises(ValueError, match="longer"):
        DagBuilder(3, 100, 2).add(labels, common, length)
    with pytest.raises(ValueError, match="label bytes"):
        DagBuilder(3, 3, 10).add(labels, common, length)


def _fed(builder: DagBuilder, stream: list[np.ndarray], cuts: list[int]):
    labels, common, length = stream
    bounds = sorted({0, len(common), *(min(cut, len(common)) for cut in cuts)})
    byte_at = np.concatenate([[0], np.cumsum(length - common)])
    for lo, hi in zip(bounds, bounds[1:]):
        builder.add(labels[byte_at[lo] : byte_at[hi]].copy(), common[lo:hi].copy(), length[lo:hi].copy())
    return builder.finish()


def _trie(labels: np.ndarray, nodes: tuple, n_paths: int) -> Trie:
    ones, no_names = np.ones(n_paths, np.uint8), np.zeros(n_paths, np.int8)
    return Trie._from_nodes(labels, nodes, ones, no_names, merkleized=True)


# Many short paths over few bytes: far more classes than the smallest tables hold.
_many_paths = st.lists(st.binary(min_size=1, max_size=7).map(lambda b: bytes(x % 4 for x in b)), max_size=150)


@FAST
@given(_many_paths, st.sampled_from([8, 16, 64]), st.lists(st.integers(0, 150), max_size=4))
def test_a_bounded_table_gives_a_less_shared_dag_of_the_same_paths(paths, max_slots, cuts):
    stream = _stream(paths)
    n_paths = len(stream[1])
    shared_labels, shared_nodes = layout_dag([column.copy() for column in stream])
    builder = DagBuilder(n_paths, len(stream[0]), int(stream[2].max(initial=0)), max_slots=max_slots)
    labels, nodes = _fed(builder, stream, cuts)
    bounded, shared = _trie(labels, nodes, n_paths), _trie(shared_labels, shared_nodes, n_paths)
    bounded.validate()
    assert list(bounded.iter_paths()) == list(shared.iter_paths())
    assert bounded.n_nodes >= shared.n_nodes
    if builder.sweeps == 0:  # the table never filled: every class was found, as without a bound
        assert bounded.n_nodes == shared.n_nodes


def test_a_table_that_fills_is_swept_and_keeps_the_classes_found_again():
    # 26 * 26 two-byte heads over the same three endings. Fully shared: the 3 endings, the
    # 26 second bytes over them, the 26 first bytes over those, and the root.
    paths = [bytes([a, b]) + end for a in range(26) for b in range(26) for end in (b"x", b"y", b"z")]
    stream = _stream(paths)
    n_paths = len(stream[1])
    shared = _trie(*layout_dag([column.copy() for column in stream]), n_paths)
    assert shared.n_nodes == 3 + 26 + 26 + 1
    roomy = DagBuilder(n_paths, len(stream[0]), int(stream[2].max()), max_slots=128)
    assert _trie(*_fed(roomy, stream, []), n_paths).n_nodes == shared.n_nodes and roomy.sweeps == 0
    # A table of 16 slots cannot hold the 26 second bytes until the next first byte meets
    # them again, so each first byte makes its own; but the endings are found again at every
    # second byte, so every sweep keeps them and they stay three.
    small = DagBuilder(n_paths, len(stream[0]), int(stream[2].max()), max_slots=16)
    labels, nodes = _fed(small, stream, [])
    bounded = _trie(labels, nodes, n_paths)
    assert small.sweeps > 10
    assert list(bounded.iter_paths()) == list(shared.iter_paths())
    child_start = nodes[2]
    assert int(np.sum(np.diff(child_start) == 0)) == 3  # nodes without children: the endings
    assert bounded.n_nodes == 3 + 26 * 26 + 26 + 1


_entries = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.booleans()), max_size=60)


@FAST
@given(_entries, st.integers(1, 40))
def test_a_sweep_keeps_the_classes_found_again_then_the_newest(entries, keep):
    # The model: classes 0..n-1 made in that order; those found again since the last sweep
    # are kept first (the newest of them when they are more than `keep`), then the newest others.
    table = np.zeros(128, np.uint64)
    table_of_model = {}
    for found, (hash_value, again) in enumerate(entries):
        entry = new_entry(np.uint64(hash_value), found) | (FOUND_AGAIN if again else np.uint64(0))
        slot = hash_value & 127
        while table[slot]:
            slot = (slot + 1) & 127
        table[slot] = entry
        table_of_model[found] = (hash_value, again)
    again = sorted((c for c, (_, a) in table_of_model.items() if a), reverse=True)
    others = sorted((c for c, (_, a) in table_of_model.items() if not a), reverse=True)
    want = set((again + others)[:keep])
    n_kept = sweep(table, keep)
    kept = {entry_class(entry): entry for entry in table if entry}
    assert n_kept == len(kept) == len(want) and set(kept) == want
    for found, entry in kept.items():
        assert not entry & FOUND_AGAIN  # marks are cleared
        assert entry == new_entry(np.uint64(table_of_model[found][0]), found)
        # Each is found where a probe from its hash looks.
        slot = int(entry >> np.uint64(32)) & 127
        while table[slot] != entry:
            assert table[slot] != 0
            slot = (slot + 1) & 127


def test_table_bounds_are_powers_of_two_within_their_bytes():
    assert slots_within(0) == 8 and slots_within(10**6) == 2**16
    for n_bytes in (10**5, 2**20, 10**9):
        slots = slots_within(n_bytes)
        assert slots & (slots - 1) == 0 and 12 * slots <= n_bytes < 24 * slots
    with pytest.raises(ValueError, match="power of two"):
        new_table(12)
    with pytest.raises(ValueError, match="power of two"):
        new_table(4)
