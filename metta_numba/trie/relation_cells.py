"""The argument cells of stored atoms `(head a1 ... ak)`, read in bulk for a join.

A join treats the atoms of one head and arity as a table with a column per argument. This
kernel walks a batch of such paths and gives, per atom, the byte span of each argument, and
says which atoms cannot be a plain row of values: those holding a variable (they unify both
ways) and those holding a number that compares equal to another encoding of it (a whole
float or NaN: `3.0` unifies with `3`, NaN with nothing), whose bytes are no faithful key of
their value.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit
from metta_numba.trie.layout import i64_ro, u8_ro
from metta_numba.trie.scan import is_variable_tag, read_u32, token_payload

Int = types.int64
i64_arr = types.Array(types.int64, 1, "C")
u8_arr = types.Array(types.uint8, 1, "C")

ROW_OK = 0
ROW_VARIABLE = 1
ROW_NUMBER = 2
ROW_MALFORMED = 3

_EXPONENT_BIAS = 1023


@njit(types.boolean(u8_ro, Int), cache=True, nogil=True)
def _ambiguous_float(data, pos):
    """Whether the order-preserving float key at data[pos:pos+8] is NaN or a whole number
    an int64 may also hold (zero included): a value whose bytes do not decide equality."""
    key = np.uint64(0)
    for k in range(8):
        key = (key << np.uint64(8)) | np.uint64(data[pos + k])
    sign = np.uint64(1) << np.uint64(63)
    bits = key ^ sign if key & sign else ~key
    exponent = np.int64((bits >> np.uint64(52)) & np.uint64(0x7FF))
    mantissa = bits & np.uint64((1 << 52) - 1)
    if exponent == 0x7FF:
        return mantissa != 0  # NaN; infinities are ordinary values
    if exponent == 0:
        return mantissa == 0  # zero equals the integer 0
    power = exponent - _EXPONENT_BIAS
    if power < 0 or power > 63:
        return False
    if power >= 52:
        return True
    return (mantissa & np.uint64((1 << (52 - power)) - 1)) == 0


@njit(types.UniTuple(Int, 2)(u8_ro, Int, Int, Int), cache=True, nogil=True)
def child_end(data, pos, end, state):
    """(where the child starting at data[pos] ends, the row's state with it): `state` is the
    row's state so far, ROW_VARIABLE or ROW_NUMBER once the child holds a variable or an
    ambiguous float (the first reason found stays), ROW_MALFORMED when the child does not
    fit before `end`."""
    owed = 1
    while owed > 0:
        if pos >= end:
            return pos, ROW_MALFORMED
        tag = np.int64(data[pos])
        payload = token_payload(tag)
        if payload < 0 or pos + 1 + payload > end:
            return pos, ROW_MALFORMED
        if tag < 0x40:
            owed += tag
        elif tag == tags.TAG_BIG_ARITY:
            owed += read_u32(data, pos + 1, end)
        elif is_variable_tag(tag):
            if state == ROW_OK:
                state = ROW_VARIABLE
        elif tag == tags.TAG_FLOAT and state == ROW_OK and _ambiguous_float(data, pos + 1):
            state = ROW_NUMBER
        owed -= 1
        pos += 1 + payload
    return pos, state


@njit(types.Tuple((i64_arr, i64_arr, u8_arr))(u8_ro, i64_ro, Int), cache=True, nogil=True)
def relation_cells(data, offsets, arity):
    """For each path data[offsets[i]:offsets[i+1]] of an expression of `arity` children:
    the spans (starts, ends; arity - 1 per path, row-major) of its children after the head,
    and a status per path (ROW_OK, ROW_VARIABLE, ROW_NUMBER, ROW_MALFORMED)."""
    n = offsets.shape[0] - 1
    width = arity - 1
    starts = np.zeros(max(n * width, 0), np.int64)
    ends = np.zeros(max(n * width, 0), np.int64)
    status = np.zeros(max(n, 0), np.uint8)
    size = data.shape[0]
    for i in range(n):
        start, end = offsets[i], min(offsets[i + 1], size)
        if start < 0 or start >= end or np.int64(data[start]) != arity or arity >= 0x40:
            status[i] = ROW_MALFORMED
            continue
        pos = start + 1
        state = ROW_OK
        for child in range(-1, width):  # the head comes first and is no column
            child_start = pos
            pos, state = child_end(data, pos, end, state)
            if state == ROW_MALFORMED:
                break
            if child >= 0:
                starts[i * width + child] = child_start
                ends[i * width + child] = pos
        if state == ROW_OK and pos != end:
            state = ROW_MALFORMED
        status[i] = state
    return starts, ends, status
