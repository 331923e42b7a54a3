"""Reading encoded terms a token at a time (the tags of codec/tags.py, in Numba).

A token is a tag byte plus its fixed payload. Walking a term means counting the terms still
owed: every tag completes one and an expression tag owes its arity more. `scan_step` takes one
byte at a time, for a walk whose bytes arrive edge by edge down the trie and may branch between
any two of them. Walks over one contiguous buffer (skip a term, check a whole path) are the
codec's: `codec.kernels.subterm_end` and `codec.kernels.path_error`.
"""

from __future__ import annotations

from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit
from metta_numba.trie.layout import u8_ro

TAG_NEW_VAR = tags.TAG_NEW_VAR
TAG_BIG_ARITY = tags.TAG_BIG_ARITY
TAG_BIG_VAR_REF = tags.TAG_BIG_VAR_REF
TAG_BOOL = tags.TAG_BOOL
EXT_LAST = tags.EXT_LAST
VAR_REF_FIRST = 0x80
VAR_REF_LAST = 0xBF

INVALID = -1
"""`token_payload` of a byte that is no tag."""


@njit(types.int64(types.int64), cache=True, nogil=True)
def token_payload(tag):
    """Bytes that follow `tag` within its token (0 for an expression or a short reference)."""
    if tag < 0x40 or (VAR_REF_FIRST <= tag <= TAG_NEW_VAR):
        return 0
    if tag > TAG_NEW_VAR:
        return tag & 0x3F
    if tag > EXT_LAST:
        return INVALID
    if tag == TAG_BIG_ARITY or tag == TAG_BIG_VAR_REF:
        return 4
    if tag == TAG_BOOL:
        return 1
    return 8


@njit(types.boolean(types.int64), cache=True, nogil=True)
def is_variable_tag(tag):
    """A new variable or a reference to one: a stored variable stands for any term."""
    return (VAR_REF_FIRST <= tag <= TAG_NEW_VAR) or tag == TAG_BIG_VAR_REF


@njit(types.boolean(types.int64), cache=True, nogil=True)
def is_reference_tag(tag):
    return (VAR_REF_FIRST <= tag <= VAR_REF_LAST) or tag == TAG_BIG_VAR_REF


@njit(types.int64(u8_ro, types.int64, types.int64), cache=True, nogil=True)
def read_u32(buf, pos, end):
    """The big-endian u32 at `pos`, or -1 when it does not fit before `end`."""
    if pos < 0 or pos + 4 > end or end > buf.shape[0]:
        return -1
    return (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]


@njit(types.int64(u8_ro, types.int64, types.int64), cache=True, nogil=True)
def count_new_variables(buf, start, end):
    """New-variable tags of the well-formed term `buf[start:end]`."""
    count = 0
    pos = start
    while pos < end:
        tag = buf[pos]
        if tag == TAG_NEW_VAR:
            count += 1
        payload = token_payload(tag)
        if payload < 0:
            return count
        pos += 1 + payload
    return count



@njit(
    types.Tuple((types.int64, types.int64, types.int64, types.boolean, types.boolean))(
        types.int64, types.int64, types.int64, types.int64
    ),
    cache=True,
    nogil=True,
)
def scan_step(byte, owed, payload_left, big_arity):
    """Feed one byte to a walk over `owed` terms. `payload_left` counts the bytes still to come
    in the current token; `big_arity` accumulates a 0x44 arity (-1 when none is being read).

    Returns (owed, payload_left, big_arity, was_variable_tag, ok). The walk is complete when
    owed and payload_left are both 0; ok is False on a byte that is no tag."""
    if payload_left > 0:
        payload_left -= 1
        if big_arity >= 0:
            big_arity = big_arity * 256 + byte
            if payload_left == 0:
                owed += big_arity
                big_arity = -1
        return owed, payload_left, big_arity, False, True
    payload = token_payload(byte)
    if payload < 0:
        return owed, payload_left, big_arity, False, False
    owed -= 1
    if byte < 0x40:
        owed += byte
    elif byte == TAG_BIG_ARITY:
        big_arity = 0
    return owed, payload, big_arity, is_variable_tag(byte), True
