"""Bit-packed arrays (trie.packed) against a plain list of ints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metta_numba.trie import CorruptTrieError, packed

values_and_width = st.integers(0, 63).flatmap(
    lambda width: st.tuples(
        st.lists(st.integers(0, (1 << width) - 1), max_size=200),
        st.just(width),
    )
)


@given(values_and_width)
def test_every_value_reads_back_at_its_width(case):
    values, width = case
    words = packed.pack(np.array(values, dtype=np.int64), width)
    assert packed.check_packed(words, "test") == len(values)
    assert packed.packed_width(words) == width
    assert packed.packed_len(words) == len(values)
    assert [packed.packed_get(words, i) for i in range(len(values))] == values
    assert packed.unpack(words).tolist() == values
    assert words.nbytes == 8 * packed.words_for(len(values), width)


@given(st.lists(st.integers(0, 2**62), max_size=100))
def test_the_default_width_is_the_fewest_bits_that_hold_the_largest(values):
    words = packed.pack(np.array(values, dtype=np.int64))
    top = max(values, default=0)
    assert packed.packed_width(words) == top.bit_length()
    assert packed.unpack(words).tolist() == values


def test_values_that_do_not_fit_are_refused():
    with pytest.raises(ValueError):
        packed.pack(np.array([8], np.int64), 3)
    with pytest.raises(ValueError):
        packed.pack(np.array([-1], np.int64))


def test_reads_outside_the_values_raise():
    words = packed.pack(np.arange(10, dtype=np.int64))
    for i in (-1, 10, 2**40):
        with pytest.raises(CorruptTrieError):
            packed.packed_get(words, i)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 12))
def test_a_damaged_header_is_refused_at_open_and_never_read_out_of_bounds(width, count, length):
    words = np.zeros(length, np.uint64)
    if length >= 2:
        words[0], words[1] = width, count
    consistent = (
        length >= 3 and width <= packed.MAX_WIDTH and count < 2**62 and length == packed.words_for(count, width)
    )
    if not consistent:
        with pytest.raises(CorruptTrieError):
            packed.check_packed(words, "test")
    # Without the check at open, the kernel still reads only inside the array.
    for i in (0, 1, count % 1000, count - 1 if count else 0):
        try:
            value = packed.packed_get(words, int(min(i, 2**62)))
        except CorruptTrieError:
            continue
        assert value == 0
