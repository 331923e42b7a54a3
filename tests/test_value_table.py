"""trie.value_table.ValueTable against numbering byte strings in a Python dict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.trie.value_table import KEY_BYTES, ValueTable

# Short values collide in their first bytes often; long ones cross KEY_BYTES and differ late.
short_values = st.binary(min_size=0, max_size=KEY_BYTES + 2)
long_values = st.tuples(st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES), st.binary(max_size=3),
                        st.integers(0, 300)).map(lambda t: t[0] + t[1] + b"\x07" * t[2])
values = st.one_of(short_values, short_values, long_values)


def spans_of(items: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items laid end to end in one buffer, with their (starts, ends)."""
    ends = np.cumsum([len(v) for v in items], dtype=np.int64)
    starts = ends - np.array([len(v) for v in items], np.int64)
    return np.frombuffer(b"".join(items) + b"\x00", np.uint8), starts, ends


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(values, max_size=40), min_size=1, max_size=4))
def test_spans_are_numbered_as_a_dict_numbers_them(batches):
    table = ValueTable()
    numbering: dict[bytes, int] = {}
    for batch in batches:
        buf, starts, ends = spans_of(batch)
        ids = table.add_spans(buf, starts, ends)
        expected = [numbering.setdefault(v, len(numbering)) for v in batch]
        assert ids.tolist() == expected
        assert len(table) == len(numbering)
    for raw, number in numbering.items():
        assert table[number] == raw
        assert table.find(raw) == number
        assert table.add(raw) == number


@settings(max_examples=60, deadline=None)
@given(st.lists(values, max_size=30), st.lists(values, max_size=30))
def test_find_and_add_one_at_a_time(added, asked):
    table = ValueTable()
    numbering: dict[bytes, int] = {}
    for raw in added:
        assert table.add(raw) == numbering.setdefault(raw, len(numbering))
    for raw in asked:
        assert table.find(raw) == numbering.get(raw, -1)
    buf, starts, ends = spans_of(asked)
    assert table.add_spans(buf, starts, ends).tolist() == [numbering.setdefault(v, len(numbering)) for v in asked]


def test_growing_keeps_every_id():
    """Many more values than the first table holds: it doubles several times."""
    rng = np.random.default_rng(7)
    items = [rng.bytes(int(n)) for n in rng.integers(1, 40, 20_000)]
    items += items[::3]
    buf, starts, ends = spans_of(items)
    table = ValueTable()
    ids = table.add_spans(buf, starts, ends)
    numbering: dict[bytes, int] = {}
    assert ids.tolist() == [numbering.setdefault(v, len(numbering)) for v in items]
    assert all(table[i] == v for v, i in numbering.items())


def test_values_sharing_key_and_length_modulo_256_stay_apart():
    first = b"k" * KEY_BYTES + b"a" * 5
    second = b"k" * KEY_BYTES + b"a" * (5 + 256)
    table = ValueTable()
    assert table.add(first) == 0 and table.add(second) == 1
    assert table.find(first) == 0 and table.find(second) == 1
    assert table.find(b"k" * KEY_BYTES + b"a" * 4) == -1


def test_an_id_out_of_range_is_an_index_error():
    table = ValueTable()
    table.add(b"x")
    with pytest.raises(IndexError):
        table[1]
    with pytest.raises(IndexError):
        table[-1]
