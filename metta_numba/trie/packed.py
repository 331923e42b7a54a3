"""Bit-packed arrays of non-negative integers: each value in the fewest bits its array needs.

A snapshot's rank and offset arrays hold values below a bound known when the KB is built (the
number of paths, of postings), far below what a fixed int32 or int64 holds: 400K paths need 19
bits a rank, not 32. A packed array stores every value in `width` bits, chosen per array at
build time, and reads any one of them in O(1) with two word loads and a shift, so binary
searches over it keep their speed and nothing is decoded at open.

Layout: a uint64 array (stored as is as a snapshot section, little-endian like every section)

    words[0]   width in bits (0..63; 0 when every value is 0)
    words[1]   n, the number of values
    words[2:]  the values, value i at bits [i * width, (i + 1) * width) of this bit stream
               (bit b is bit b % 64 of word 2 + b // 64; at least one word), then one spare
               zero word, so that every read takes two words without a length test.

`packed_get` checks the index against n and the word it reads against the array's length, so
damaged words (a wrong width or count) raise CorruptTrieError and never read out of bounds;
`check_packed` is the O(1) check at open that the header and the length agree.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import i64_arr, i64_ro, u64_arr, u64_ro

HEADER_WORDS = 2
MAX_WIDTH = 63
Int = types.int64


def words_for(n: int, width: int) -> int:
    """Length in words of a packed array of n values of `width` bits."""
    return HEADER_WORDS + max((n * width + 63) // 64, 1) + 1


def width_for(top: int) -> int:
    """Bits that hold every value from 0 to `top`."""
    if top < 0:
        raise ValueError("packed arrays hold non-negative values only")
    return int(top).bit_length()


@njit(Int(u64_ro, Int, types.uint64, types.uint64), cache=True, nogil=True, inline="always")
def get_bits(words, at, shift, width):
    """The `width` bits from bit `shift` of words[at] on, running into words[at + 1] (the
    caller checks that both exist). The bit reads of packed arrays and of trie.columns."""
    low = words[at] >> shift
    # The next word's bits go above the 64 - shift read from this one; shifting in two steps
    # keeps a shift of 0 from becoming a shift by 64 (undefined).
    high = (words[at + 1] << (np.uint64(63) - shift)) << np.uint64(1)
    return np.int64((low | high) & ((np.uint64(1) << width) - np.uint64(1)))


@njit(types.void(u64_arr, Int, types.uint64, types.uint64), cache=True, nogil=True, inline="always")
def put_bits(words, at, shift, value):
    """OR `value` in at bit `shift` of words[at] on, running into words[at + 1]: the bit
    writes of packed arrays and of trie.columns (zeroed words; the caller sizes them)."""
    words[at] |= value << shift
    if shift != 0:
        words[at + 1] |= value >> (np.uint64(64) - shift)


@njit(Int(u64_ro), cache=True, nogil=True, inline="always")
def packed_len(words):
    """The number of values (as recorded; `check_packed` ties it to the length at open)."""
    if words.shape[0] < HEADER_WORDS + 1:
        return 0
    return np.int64(words[1] & np.uint64(0x7FFFFFFFFFFFFFFF))


@njit(Int(u64_ro, Int), cache=True, nogil=True, inline="always")
def packed_get(words, i):
    """Value i of a packed array."""
    # All in uint64: Numba turns mixed int64/uint64 arithmetic into float64, which made this
    # read some 50 ns instead of a few.
    if i < 0 or i >= packed_len(words):
        raise CorruptTrieError("packed array: index out of range")
    width = words[0] & np.uint64(MAX_WIDTH)
    bit = np.uint64(i) * width
    at = np.int64(bit >> np.uint64(6)) + HEADER_WORDS
    if at + 1 >= words.shape[0]:
        raise CorruptTrieError("packed array: shorter than its count")
    return get_bits(words, at, bit & np.uint64(63), width)


@njit(u64_arr(i64_ro, Int), cache=True, nogil=True)
def pack_values(values, width):
    """`values` (each in [0, 2**width)) as a packed array."""
    n = values.shape[0]
    words = np.zeros(HEADER_WORDS + max((n * width + 63) // 64, 1) + 1, np.uint64)
    words[0] = width
    words[1] = n
    if width == 0:
        return words
    for i in range(n):
        bit = i * width
        put_bits(words, HEADER_WORDS + (bit >> 6), np.uint64(bit & 63), np.uint64(values[i]))
    return words


@njit(i64_arr(u64_ro, Int, Int), cache=True, nogil=True)
def unpack_range(words, lo, hi):
    """Values lo..hi-1 as int64 (checked like packed_get)."""
    out = np.empty(max(hi - lo, 0), np.int64)
    for i in range(lo, hi):
        out[i - lo] = packed_get(words, i)
    return out


def pack(values: np.ndarray, width: int | None = None) -> np.ndarray:
    """A packed array of `values` in `width` bits (default: the fewest that hold them all)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    if values.size and int(values.min()) < 0:
        raise ValueError("packed arrays hold non-negative values only")
    top = int(values.max()) if values.size else 0
    if width is None:
        width = width_for(top)
    elif width_for(top) > width or not 0 <= width <= MAX_WIDTH:
        raise ValueError(f"values up to {top} do not fit {width} bits")
    return pack_values(values, width)


def unpack(words: np.ndarray) -> np.ndarray:
    """Every value of a packed array, as int64."""
    return unpack_range(words, 0, packed_len(words))


def packed_width(words: np.ndarray) -> int:
    return int(words[0]) & MAX_WIDTH if len(words) else 0


def check_packed(words: np.ndarray, what: str) -> int:
    """The O(1) check at open: a uint64 array whose header agrees with its length. Returns n."""
    if words.dtype != np.uint64 or words.ndim != 1 or len(words) < HEADER_WORDS + 1:
        raise CorruptTrieError(f"{what} is not a packed array")
    width, n = int(words[0]), int(words[1])
    if width > MAX_WIDTH or n >= 2**62 or len(words) != words_for(n, width):
        raise CorruptTrieError(f"{what}: packed header (width {width}, {n} values) disagrees with its length")
    return n
