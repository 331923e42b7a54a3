"""Distinct byte strings numbered in the order they are first met, kept in flat arrays.

A join numbers every argument value of the relations it reads (store.join_views): a million
rows hold a couple of million cells but perhaps a hundred thousand distinct values. Interning
them one by one in a Python dict costs a `bytes` object and an insert per value; here a kernel
walks the cells and looks each one up in an open-addressing hash table of value ids, the
values' bytes laid end to end in one buffer (`blob`, value i at blob[offsets[i]:offsets[i+1]]).

A slot holds a value id (int32, -1 when free); each value also keeps a *key*, two words
holding its first 15 bytes and its length. A value of at most 15 bytes (a symbol of up to 14
letters, a number: most of a KB's arguments) is equal to a span exactly when the keys are, so
a lookup reads one slot and one key and never the blob; a longer one is compared byte by byte
too. Slots and keys are small (4 + 16 bytes a value at most half full: a hundred thousand
values fit in the L2 cache), which is what a lookup's time goes to. The table keeps at most
half of its slots full and doubles when an insert would pass that.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import i32_arr, i64_2d, i64_arr, u8_arr, u8_ro

Int = types.int64
U64 = types.uint64

KEY_BYTES = 15
"""Values this long or shorter are decided by their key alone."""

_MIX = np.uint64(0x9E3779B97F4A7C15)
"""Fibonacci hashing: the top bits of hash * this pick a slot, so every bit of the hash counts."""
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FIRST_BITS = 10
MAX_VALUES = (1 << 31) - 2
"""Slots hold int32 ids."""


@njit(types.UniTuple(Int, 3)(u8_ro, Int, Int), cache=True, nogil=True)
def span_key(buf, start, end):
    """(word 0, word 1, hash) of buf[start:end]: word 0 its first 8 bytes, word 1 its length
    followed by bytes 8..14 (the length's bits stay above those bytes when it is at most
    KEY_BYTES, so the two words then decide equality), the hash mixing both words and, past
    KEY_BYTES, FNV-1a of the rest."""
    w0 = np.uint64(0)
    for k in range(start, min(end, start + 8)):
        w0 = (w0 << np.uint64(8)) | np.uint64(buf[k])
    w1 = np.uint64(end - start)
    for k in range(start + 8, min(end, start + KEY_BYTES)):
        w1 = (w1 << np.uint64(8)) | np.uint64(buf[k])
    h = (w0 * _MIX) ^ (w1 * _MIX2)
    if end - start > KEY_BYTES:
        tail = _FNV_OFFSET
        for k in range(start + KEY_BYTES, end):
            tail = (tail ^ np.uint64(buf[k])) * _FNV_PRIME
        h ^= tail
    h ^= h >> np.uint64(29)
    return np.int64(w0), np.int64(w1), np.int64(h)


@njit(Int(Int, Int), cache=True, nogil=True)
def _slot_of(h, bits):
    return np.int64((np.uint64(h) * _MIX) >> np.uint64(64 - bits))


@njit(Int(Int), cache=True, nogil=True)
def _bits_of(size):
    """log2 of a power of two."""
    bits = 0
    while (1 << bits) < size:
        bits += 1
    return bits


@njit(types.boolean(u8_ro, Int, Int, u8_arr, Int), cache=True, nogil=True)
def _same_tail(buf, start, end, blob, at):
    """Whether buf[start:end] equals the blob from `at` past the first KEY_BYTES bytes (the
    keys and the lengths are already equal)."""
    for k in range(KEY_BYTES, end - start):
        if buf[start + k] != blob[at + k]:
            return False
    return True


@njit(Int(u8_ro, Int, Int, Int, Int, Int, Int, i32_arr, i64_arr, i64_arr, u8_arr), cache=True, nogil=True)
def _probe(buf, start, end, w0, w1, h, bits, slots, keys, offsets, blob):
    """The slot holding buf[start:end], or -(free slot) - 1 where it would go."""
    mask = slots.shape[0] - 1
    pos = _slot_of(h, bits)
    while True:
        value = np.int64(slots[pos])
        if value < 0:
            return -pos - 1
        if keys[2 * value] == w0 and keys[2 * value + 1] == w1:
            if end - start <= KEY_BYTES:
                return pos
            # A longer value's key holds its length modulo 256 only.
            if offsets[value + 1] - offsets[value] == end - start and _same_tail(buf, start, end, blob, offsets[value]):
                return pos
        pos = (pos + 1) & mask


@njit(i32_arr(Int, i64_arr, u8_arr, Int), cache=True, nogil=True)
def rebuilt_slots(size, offsets, blob, count):
    """`size` slots (a power of two) holding values 0..count-1."""
    slots = np.full(size, -1, np.int32)
    bits = _bits_of(size)
    mask = size - 1
    for value in range(count):
        h = span_key(blob, offsets[value], offsets[value + 1])[2]
        pos = _slot_of(h, bits)
        while slots[pos] >= 0:
            pos = (pos + 1) & mask
        slots[pos] = value
    return slots


TableType = types.Tuple((i32_arr, i64_arr, i64_arr, u8_arr))
"""(slots, keys, offsets, blob): what a kernel that adds values takes and, grown, returns."""


@njit(TableType(i32_arr, i64_arr, i64_arr, u8_arr, Int, Int, Int), cache=True, nogil=True)
def with_room(slots, keys, offsets, blob, count, values, size):
    """The table's arrays, grown (copied, slots rebuilt) when `values` more values of `size`
    bytes in all would not fit in them: at most half the slots full, a key and an offset per
    value, the bytes in the blob. Adding values never reassigns the arrays in its loop, which
    keeps Numba's reference counting out of it; a caller makes room first."""
    if count + values > MAX_VALUES:
        raise OverflowError("more distinct values than a value id holds")
    needed = count + values
    if 2 * needed > keys.shape[0]:
        longer = 2 * keys.shape[0]
        while longer < 2 * needed:
            longer *= 2
        wider_keys = np.empty(longer, np.int64)
        wider_keys[: 2 * count] = keys[: 2 * count]
        keys = wider_keys
        more_offsets = np.empty(longer // 2 + 1, np.int64)
        more_offsets[: count + 1] = offsets[: count + 1]
        offsets = more_offsets
    used = offsets[count]
    if used + size > blob.shape[0]:
        wider = np.empty(max(2 * blob.shape[0], used + size), np.uint8)
        wider[:used] = blob[:used]
        blob = wider
    if 2 * needed > slots.shape[0]:
        more = 2 * slots.shape[0]
        while more < 2 * needed:
            more *= 2
        slots = rebuilt_slots(more, offsets, blob, count)
    return slots, keys, offsets, blob


@njit(types.void(u8_ro, i64_arr, i64_arr, Int, Int, i64_2d), cache=True, nogil=True)
def key_spans(buf, starts, ends, first, last, keyed):
    """keyed[j] = span_key of span first + j, for spans first..last-1."""
    for i in range(first, last):
        w0, w1, h = span_key(buf, starts[i], ends[i])
        keyed[i - first, 0] = w0
        keyed[i - first, 1] = w1
        keyed[i - first, 2] = h


@njit(Int(u8_ro, i64_arr, i64_arr, Int, i64_2d, Int, i64_arr, i32_arr, i64_arr, i64_arr, u8_arr, Int),
      cache=True, nogil=True)
def add_keyed(buf, starts, ends, first, keyed, m, out, slots, keys, offsets, blob, count):
    """out[first + j] = the id of span first + j, buf[starts:ends], whose span_key is keyed[j],
    for j < m; new values are numbered from `count` in that order, in arrays with room for
    them all (see with_room). Returns the count. The keys are worked out beforehand
    (key_spans): a loop of lookups alone keeps several cache misses in flight, where one
    that also walks each value's bytes waits for every miss in turn (3 times slower)."""
    bits = _bits_of(slots.shape[0])
    for j in range(m):
        i = first + j
        start, end = starts[i], ends[i]
        w0, w1, h = keyed[j, 0], keyed[j, 1], keyed[j, 2]
        pos = _probe(buf, start, end, w0, w1, h, bits, slots, keys, offsets, blob)
        if pos >= 0:
            out[i] = slots[pos]
            continue
        used = offsets[count]
        blob[used : used + end - start] = buf[start:end]
        offsets[count + 1] = used + end - start
        keys[2 * count] = w0
        keys[2 * count + 1] = w1
        slots[-pos - 1] = count
        out[i] = count
        count += 1
    return count


CHUNK = 8192
"""Spans (or rows) added between two checks of the table's room."""


@njit(
    types.Tuple((i64_arr, i32_arr, i64_arr, i64_arr, u8_arr, Int))(
        u8_ro, i64_arr, i64_arr, i32_arr, i64_arr, i64_arr, u8_arr, Int
    ),
    cache=True,
    nogil=True,
)
def intern_spans(buf, starts, ends, slots, keys, offsets, blob, count):
    """The id of each span buf[starts[i]:ends[i]], numbering the new ones from `count` in the
    order met; returns (ids, slots, keys, offsets, blob, count), the arrays grown as needed."""
    n = starts.shape[0]
    ids = np.empty(n, np.int64)
    keyed = np.empty((min(n, CHUNK), 3), np.int64)
    for first in range(0, n, CHUNK):
        last = min(n, first + CHUNK)
        size = 0
        for i in range(first, last):
            size += ends[i] - starts[i]
        slots, keys, offsets, blob = with_room(slots, keys, offsets, blob, count, last - first, size)
        key_spans(buf, starts, ends, first, last, keyed)
        count = add_keyed(buf, starts, ends, first, keyed, last - first, ids, slots, keys, offsets, blob, count)
    return ids, slots, keys, offsets, blob, count


@njit(Int(u8_ro, i32_arr, i64_arr, i64_arr, u8_arr), cache=True, nogil=True)
def find_bytes(key, slots, keys, offsets, blob):
    """The id of the value whose bytes are `key`, -1 when the table does not hold it."""
    w0, w1, h = span_key(key, 0, key.shape[0])
    pos = _probe(key, 0, key.shape[0], w0, w1, h, _bits_of(slots.shape[0]), slots, keys, offsets, blob)
    return np.int64(slots[pos]) if pos >= 0 else -1


class ValueTable:
    """Byte strings numbered from 0 in the order they were added; `table[i]` is value i's bytes.
    Lookups by bytes from Python are remembered in a dict (a join's constants and a fallback's
    values), so that the same few values cost one kernel call each."""

    def __init__(self) -> None:
        self._slots = np.full(1 << _FIRST_BITS, -1, np.int32)
        self._keys = np.empty(1 << _FIRST_BITS, np.int64)
        self._offsets = np.zeros((1 << (_FIRST_BITS - 1)) + 1, np.int64)
        self._blob = np.empty(1 << (_FIRST_BITS + 3), np.uint8)
        self._count = 0
        self._asked: dict[bytes, int] = {}

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, value: int) -> bytes:
        if not 0 <= value < self._count:
            raise IndexError(f"value id {value} out of range (table holds {self._count})")
        return self._blob[self._offsets[value] : self._offsets[value + 1]].tobytes()

    def find(self, raw: bytes) -> int:
        """The id of `raw`, -1 when no value added so far has those bytes."""
        found = self._asked.get(raw)
        if found is None:
            found = find_bytes(np.frombuffer(raw, np.uint8), self._slots, self._keys, self._offsets, self._blob)
            if found < 0:
                return -1  # not remembered: a later add may number it
            self._asked[raw] = found
        return found

    def add(self, raw: bytes) -> int:
        """The id of `raw`, numbering it when it is new."""
        found = self.find(raw)
        if found < 0:
            found = int(self.add_spans(np.frombuffer(raw, np.uint8), np.zeros(1, np.int64),
                                       np.full(1, len(raw), np.int64))[0])
            self._asked[raw] = found
        return found

    def add_spans(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The id of each span buf[starts[i]:ends[i]] (see intern_spans), numbering new values."""
        starts = np.ascontiguousarray(starts, np.int64)
        return self.add_by(intern_spans, buf, starts, np.ascontiguousarray(ends, np.int64))[0]

    def add_by(self, kernel, *args) -> list:
        """The results of a kernel that numbers values in this table: `kernel(*args, slots,
        keys, offsets, blob, count)` returns its results followed by the table's arrays and
        count, grown (like intern_spans)."""
        *results, self._slots, self._keys, self._offsets, self._blob, self._count = kernel(
            *args, self._slots, self._keys, self._offsets, self._blob, self._count
        )
        return results
