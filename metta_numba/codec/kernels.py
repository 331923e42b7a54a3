"""Numba kernels over path arrays: skip a subterm, validate a batch, check UTF-8.

Every kernel is bounds-checked against the array it is given, so a corrupted path or offsets
array (a damaged file, a truncated memmap) gives -1 or an index, never an out-of-bounds read.
The tags are those of `codec.tags` (DESIGN.md section 3).
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit

_DATA_T = types.Array(types.uint8, 1, "C", readonly=True)
_OFFSETS_T = types.Array(types.int64, 1, "C", readonly=True)
_INT = types.int64

# Payload size of each extension tag (0x40..0x47), as a tuple Numba can index.
_EXT_PAYLOAD = tags.EXT_PAYLOAD


# Well-formed UTF-8 (Unicode table 3-7): for each lead byte range, the sequence length and
# the range allowed for the second byte (later bytes are always 80..BF).
_UTF8_LEADS = (
    (0xC2, 0xDF, 2, 0x80, 0xBF),
    (0xE0, 0xE0, 3, 0xA0, 0xBF),
    (0xE1, 0xEC, 3, 0x80, 0xBF),
    (0xED, 0xED, 3, 0x80, 0x9F),
    (0xEE, 0xEF, 3, 0x80, 0xBF),
    (0xF0, 0xF0, 4, 0x90, 0xBF),
    (0xF1, 0xF3, 4, 0x80, 0xBF),
    (0xF4, 0xF4, 4, 0x80, 0x8F),
)


def _utf8_table() -> np.ndarray:
    """Per lead byte: [sequence length (0 = never a lead), lowest and highest second byte]."""
    table = np.zeros((256, 3), np.int64)
    table[:0x80, 0] = 1
    for first, last, size, low, high in _UTF8_LEADS:
        table[first : last + 1] = (size, low, high)
    return table


_UTF8 = _utf8_table()


@njit(_INT(_DATA_T, _INT, _INT), cache=True, nogil=True)
def first_invalid_utf8(data, start, end):
    """Offset of the first invalid UTF-8 sequence in data[start:end] (where Python's decoder
    reports it: the sequence's first byte), or -1 when the range is valid UTF-8."""
    end = min(end, data.size)
    pos = max(start, 0)
    while pos < end:
        lead = data[pos]
        if lead < 0x80:
            pos += 1
            continue
        size = _UTF8[lead, 0]
        if size == 0 or pos + size > end:
            return pos
        second = data[pos + 1]
        if second < _UTF8[lead, 1] or second > _UTF8[lead, 2]:
            return pos
        for k in range(2, size):
            follow = data[pos + k]
            if follow < 0x80 or follow > 0xBF:
                return pos
        pos += size
    return -1


@njit(_INT(_DATA_T, _INT), cache=True, nogil=True)
def _read_u32(data, pos):
    """The big-endian u32 at data[pos:pos+4] (the caller checks the bounds)."""
    value = 0
    for k in range(4):
        value = (value << 8) | np.int64(data[pos + k])
    return value


@njit(_INT(_DATA_T, _INT, _INT), cache=True, nogil=True)
def subterm_end(data, pos, limit):
    """Offset just past the complete subterm that starts at `pos`, or -1 when it is malformed
    (unknown tag, bad Bool payload) or does not end by `limit`. Reads nothing at or past
    `limit` (clamped to the array). Variable references are not checked against their
    definitions here: a subterm may refer to variables introduced before it."""
    limit = min(limit, data.size)
    if pos < 0:
        return -1
    remaining = 1  # subterms still to read
    while remaining > 0:
        if pos >= limit:
            return -1
        tag = data[pos]
        pos += 1
        remaining -= 1
        if tag < 0x40:
            remaining += tag
        elif tag >= 0xC0:
            pos += tag & 0x3F
        elif tag >= 0x80:
            pass
        elif tag <= tags.EXT_LAST:
            size = _EXT_PAYLOAD[tag - tags.EXT_FIRST]
            if pos + size > limit:
                return -1
            if tag == tags.TAG_BIG_ARITY:
                remaining += _read_u32(data, pos)
            elif tag == tags.TAG_BOOL and data[pos] > 1:
                return -1
            pos += size
        else:
            return -1
    if pos > limit:
        return -1
    return pos


@njit(_INT(_DATA_T, _INT, _INT), cache=True, nogil=True)
def path_error(data, start, end):
    """-1 when data[start:end] is exactly one atom the encoder could have written, else the
    offset of the first offending byte (`end` when the atom is cut off there).

    The checks: known tags, complete payloads, variables referenced after their introduction,
    canonical short forms, UTF-8 symbol names, Bool 0 or 1, no in-process handles (never valid
    in a stored path or a query key). Reads nothing outside data[start:end]."""
    if start < 0 or end > data.size or start >= end:
        return max(start, 0)
    pos = start
    remaining = 1
    fresh = 0  # variables introduced so far
    while remaining > 0:
        if pos >= end:
            return end
        at = pos
        tag = data[pos]
        pos += 1
        remaining -= 1
        if tag < 0x40:
            remaining += tag
        elif tag == tags.TAG_NEW_VAR:
            fresh += 1
        elif tag >= 0xC0:
            size = tag & 0x3F
            if pos + size > end:
                return at
            bad_utf8 = first_invalid_utf8(data, pos, pos + size)
            if bad_utf8 >= 0:
                return bad_utf8
            pos += size
        elif tag >= 0x80:
            if (tag & 0x3F) >= fresh:
                return at
        elif tag <= tags.EXT_LAST and tag != tags.TAG_HANDLE:
            size = _EXT_PAYLOAD[tag - tags.EXT_FIRST]
            if pos + size > end:
                return at
            if tag == tags.TAG_BIG_ARITY:
                arity = _read_u32(data, pos)
                if arity <= tags.ARITY_SHORT_MAX:
                    return at
                remaining += arity
            elif tag == tags.TAG_BIG_VAR_REF:
                index = _read_u32(data, pos)
                if index <= tags.VAR_REF_SHORT_MAX or index >= fresh:
                    return at
            elif tag == tags.TAG_BOOL and data[pos] > 1:
                return at
            pos += size
        else:
            return at  # unknown tag, or an in-process handle
    return -1 if pos == end else pos


@njit(types.UniTuple(_INT, 2)(_DATA_T, _OFFSETS_T), cache=True, nogil=True)
def first_bad_path(data, offsets):
    """(index, byte offset) of the first malformed path of a batch, or (-1, -1) when all are
    well-formed. Path i is data[offsets[i]:offsets[i+1]]; it is malformed when its offsets are
    out of order or out of the array (byte offset -1 then) or `path_error` finds a byte. An
    empty offsets array, which cannot even say that the batch is empty, is malformed at 0."""
    count = offsets.size - 1
    if count < 0:
        return 0, -1
    for index in range(count):
        start = offsets[index]
        end = offsets[index + 1]
        if start < 0 or end < start or end > data.size:
            return index, -1
        bad = path_error(data, start, end)
        if bad >= 0:
            return index, bad
    return -1, -1


@njit(_INT(_DATA_T, _OFFSETS_T), cache=True, nogil=True)
def validate_paths(data, offsets):
    """Index of the first malformed path of a batch (see `first_bad_path`), or -1."""
    return first_bad_path(data, offsets)[0]
