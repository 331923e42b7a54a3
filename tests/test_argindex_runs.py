"""The argument index built by an external sort (trie.argindex_runs) against the in-memory
build (ArgIndex.build, the reference): with runs of a few entries each, forcing many runs
and merges over them, the four arrays are the same byte for byte, and they pass the index's
full check. Also the pieces: writing into packed arrays, and arrays in mapped files that
let go of their pages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_argindex import build, index_options, stored_atoms

from metta_numba.codec import TermStore
from metta_numba.trie import argindex_entries, packed
from metta_numba.trie.argindex import ArgIndex, IndexOptions
from metta_numba.trie.argindex_runs import build_index_from_runs, put_packed, run_entries_for, spill_entry_runs
from metta_numba.trie.spill import (
    RUN_WRITE_BYTES,
    append_to_run_file,
    drop_pages,
    file_array,
    is_file_mapped,
    zeroed_file_array,
)


def _same_arrays(a: ArgIndex, b: ArgIndex) -> None:
    for name, array in a.arrays.items():
        other = b.arrays[name]
        assert array.dtype == other.dtype, name
        assert np.array_equal(array, other), name


@settings(max_examples=60, deadline=None)
@given(
    stored=st.lists(stored_atoms, max_size=40),
    counts=st.data(),
    options=index_options,
    run_entries=st.integers(1, 40),
    fan_in=st.sampled_from([2, 3, 1 << 62]),
)
def test_the_index_from_runs_is_the_in_memory_index(tmp_path_factory, stored, counts, options, run_entries, fan_in):
    terms = TermStore()
    copies = counts.draw(st.lists(st.integers(1, 3), min_size=len(stored), max_size=len(stored)))
    trie = build(stored, terms, copies)
    folder = tmp_path_factory.mktemp("runs")
    # A small fan-in merges the runs in groups, over several passes, before the two merges.
    index = build_index_from_runs(trie, options, folder, run_entries, fan_in=fan_in)
    index.verify()
    _same_arrays(index, ArgIndex.build(trie, options))


def test_a_tiny_run_size_spills_many_runs_and_the_same_index(tmp_path):
    from metta_numba.atoms import E, S

    stored = [E(S("edge"), S(f"n{i % 37}"), E(S("w"), S(f"n{(i * 7) % 11}"))) for i in range(300)]
    trie = build(stored, TermStore())
    options = IndexOptions(max_ratio=None)
    runs = spill_entry_runs(trie, options, np.array([0, len(trie)]), tmp_path, 20)
    runs.close()
    assert len(runs.run_start) - 1 > 50, "runs of about 20 entries each"
    assert runs.run_start[-1] == sum(int(c) for c in runs.group_counts)
    (tmp_path / "again").mkdir()
    _same_arrays(build_index_from_runs(trie, options, tmp_path / "again", 20), ArgIndex.build(trie, options))
    # Merged 4 at a time first: passes until at most 4 runs are left, each pass's files
    # deleted once the next is written.
    (tmp_path / "grouped").mkdir()
    grouped = build_index_from_runs(trie, options, tmp_path / "grouped", 20, fan_in=4)
    _same_arrays(grouped, ArgIndex.build(trie, options))
    n_runs, passes = len(runs.run_start) - 1, 0
    while n_runs > 4:
        n_runs, passes = -(-n_runs // 4), passes + 1
    left = sorted(entry.name for entry in (tmp_path / "grouped").iterdir() if entry.name.startswith("entries"))
    assert passes >= 2 and left == [f"entries{passes}.rank", f"entries{passes}.sort_key"]


@settings(deadline=None)
@given(
    entries=st.lists(
        st.tuples(st.integers(0, (1 << 31) - 1), st.integers(0, (1 << 32) - 1)),
        max_size=200,
    ),
    narrow=st.booleans(),
)
def test_sort_pairs_is_a_stable_sort_by_group_then_key(entries, narrow):
    """The reference: Python's stable sort of (group, key), ranks given ascending."""
    if narrow:  # few distinct digits, so that passes are skipped
        entries = [(group % 3, key % 5) for group, key in entries]
    groups = np.array([group for group, _ in entries], np.int64)
    keys = np.array([key for _, key in entries], np.uint64)
    ranks = np.arange(len(entries), dtype=np.int64)
    sorted_groups, sorted_keys, sorted_ranks = argindex_entries.sort_entries(groups, keys, ranks)
    expected = sorted(range(len(entries)), key=lambda i: entries[i])
    assert sorted_ranks.tolist() == expected
    assert list(zip(sorted_groups.tolist(), sorted_keys.tolist())) == [entries[i] for i in expected]


def test_sort_pairs_reuses_longer_scratch_and_refuses_short_scratch():
    sort_keys = np.array([5, 3, 1 << 40, 3], np.uint64)
    ranks = np.arange(4, dtype=np.int32)
    argindex_entries.sort_pairs(sort_keys, ranks, np.zeros(10, np.uint64), np.zeros(10, np.int32))
    assert sort_keys.tolist() == [3, 3, 5, 1 << 40] and ranks.tolist() == [1, 3, 0, 2]
    with pytest.raises(ValueError):
        argindex_entries.sort_pairs(sort_keys, ranks, np.zeros(3, np.uint64), np.zeros(3, np.int32))


def test_entries_out_of_the_sort_keys_range_are_refused():
    with pytest.raises(ValueError):
        argindex_entries.entry_sort_keys(np.array([1 << 31]), np.array([0], np.uint64))
    with pytest.raises(ValueError):
        argindex_entries.entry_sort_keys(np.array([0]), np.array([1 << 32], np.uint64))


def test_run_size_grows_with_the_budget():
    assert run_entries_for(1) >= 1
    assert run_entries_for(1 << 30) > run_entries_for(256 << 20) > run_entries_for(1 << 20)


@given(values=st.lists(st.integers(0, (1 << 63) - 1), max_size=80), extra=st.integers(0, 5))
def test_put_packed_writes_what_pack_packs(values, extra):
    top = max(values, default=0)
    width = min(packed.width_for(top) + extra, packed.MAX_WIDTH) if top or extra else 0
    words = np.zeros(packed.words_for(len(values), width), np.uint64)
    words[0], words[1] = width, len(values)
    # In any order: each value's bits are its own.
    for i in reversed(range(len(values))):
        put_packed(words, i, values[i])
    assert np.array_equal(words, packed.pack(np.array(values, np.int64), width))


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([np.uint8, np.int32, np.uint64]),
    st.lists(st.integers(0, 3 * RUN_WRITE_BYTES // 8 + 9), min_size=1, max_size=4),
)
def test_run_files_hold_the_bytes_of_the_arrays_appended(tmp_path_factory, dtype, sizes):
    path = tmp_path_factory.mktemp("runs") / "run.bin"
    arrays = [(np.arange(n) * 7919 % 251).astype(dtype) for n in sizes]
    with open(path, "wb") as f:
        for array in arrays:
            append_to_run_file(f, array[::1])
    assert path.read_bytes() == b"".join(array.tobytes() for array in arrays)


def test_a_mapped_file_keeps_what_was_written_when_its_pages_are_let_go(tmp_path):
    array = zeroed_file_array(tmp_path / "a.bin", np.int64, 1 << 16)
    array[:] = np.arange(1 << 16)
    drop_pages(array)
    assert int(array[12345]) == 12345 and int(array.sum()) == (1 << 16) * ((1 << 16) - 1) // 2
    drop_pages(array[10:20])  # a view finds the mapping under it
    reread = file_array(tmp_path / "a.bin", np.int64)
    assert np.array_equal(reread, np.arange(1 << 16))
    drop_pages(reread)
    drop_pages(np.arange(4))  # an array in memory: nothing to let go of
    assert is_file_mapped(array[10:20]) and is_file_mapped(reread) and not is_file_mapped(np.arange(4))
    assert len(zeroed_file_array(tmp_path / "empty.bin", np.uint8, 0)) == 0
