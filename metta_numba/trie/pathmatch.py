"""Exact matching of one encoded pattern against a batch of stored paths, in one kernel.

A query's candidates (from the trie or the argument index) are a superset of its matches. For
a stored path without variables, matching is one-sided and byte-exact: ground tokens compare
equal, a new pattern variable takes the whole stored term there, and a repeated one must meet
the same bytes again. The kernel decides that for every candidate at once and returns where
each pattern variable's value lies in the path, so a caller builds bindings by decoding those
few bytes (and caching them) instead of decoding and unifying whole atoms.

A stored path that meets the pattern with a variable is not decided here (status MAYBE):
trie.unifypaths unifies it two-sided, and what even that cannot decide goes to unify.py.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec.kernels import path_error
from metta_numba.codec.tags import TAG_FLOAT, TAG_INT
from metta_numba.jit import njit
from metta_numba.trie.argindex_entries import scan_term
from metta_numba.trie.layout import i64_ro, u8_ro
from metta_numba.trie.scan import (
    TAG_BIG_VAR_REF,
    TAG_NEW_VAR,
    VAR_REF_FIRST,
    count_new_variables,
    is_reference_tag,
    is_variable_tag,
    read_u32,
    token_payload,
)

NO = 0
YES = 1
MAYBE = 2  # the stored path holds a variable that the pattern meets: unify decides

Int = types.int64
i8_arr = types.Array(types.int8, 1, "C")
i64_row = types.Array(types.int64, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")


@njit(types.boolean(Int), cache=True, nogil=True)
def is_number_tag(tag):
    return tag == TAG_INT or tag == TAG_FLOAT


@njit(types.boolean(u8_ro, Int, Int), cache=True, nogil=True)
def holds_number(data, start, end):
    """Does the well-formed term data[start:end] hold an integer or a float token?"""
    pos = start
    while pos < end:
        tag = np.int64(data[pos])
        if is_number_tag(tag):
            return True
        pos += 1 + max(token_payload(tag), 0)
    return False


@njit(Int(u8_ro, u8_ro, Int, Int, i64_row), cache=True, nogil=True)
def match_one(pattern, data, start, end, spans):
    """Match the well-formed `pattern` with data[start:end]; on YES, spans[2v:2v+2] is the
    [start, end) of pattern variable v's value in `data`."""
    size = pattern.shape[0]
    pp = 0
    dp = start
    fresh = 0
    while pp < size:
        if dp >= end:
            return NO
        tag = np.int64(pattern[pp])
        if tag == TAG_NEW_VAR or is_reference_tag(tag):
            term_end, ground = scan_term(data, dp, end)
            if term_end < 0:
                return NO
            if ground == 0:
                return MAYBE
            if tag == TAG_NEW_VAR:
                spans[2 * fresh] = dp
                spans[2 * fresh + 1] = term_end
                fresh += 1
            else:
                var = read_u32(pattern, pp + 1, size) if tag == TAG_BIG_VAR_REF else tag - VAR_REF_FIRST
                first = spans[2 * var]
                length = spans[2 * var + 1] - first
                same = term_end - dp == length
                for k in range(length if same else 0):
                    if data[dp + k] != data[first + k]:
                        same = False
                        break
                if not same:
                    # `1` and `1.0` are one number: unequal bytes with numbers in them are
                    # unify.py's to decide.
                    if holds_number(data, dp, term_end) or holds_number(data, first, first + length):
                        return MAYBE
                    return NO
            dp = term_end
            pp += 1 + token_payload(tag)
            continue
        if is_variable_tag(np.int64(data[dp])):
            return MAYBE
        width = 1 + token_payload(tag)
        if dp + width > end:
            return NO
        if is_number_tag(tag) and is_number_tag(np.int64(data[dp])) and tag != data[dp]:
            return MAYBE
        for k in range(width):
            if pattern[pp + k] != data[dp + k]:
                return NO
        pp += width
        dp += width
    return YES if dp == end else NO


@njit(types.Tuple((i8_arr, i64_2d))(u8_ro, u8_ro, i64_ro), cache=True, nogil=True)
def match_paths(pattern, data, offsets):
    """(status per path, spans per path: 2 columns per pattern variable) for the batch of paths
    data[offsets[i]:offsets[i+1]]. Raises ValueError on a malformed pattern or offsets."""
    if path_error(pattern, 0, pattern.shape[0]) >= 0:
        raise ValueError("the pattern is not one well-formed encoded atom")
    n = offsets.shape[0] - 1
    n_vars = count_new_variables(pattern, 0, pattern.shape[0])
    status = np.zeros(max(n, 0), np.int8)
    spans = np.zeros((max(n, 0), 2 * n_vars), np.int64)
    for i in range(n):
        start = offsets[i]
        end = offsets[i + 1]
        if start < 0 or end < start or end > data.shape[0]:
            raise ValueError("path offsets out of order or out of range")
        status[i] = match_one(pattern, data, start, end, spans[i])
    return status, spans
