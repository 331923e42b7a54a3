"""Many ground lookups in one kernel call (PersistentKB.query_many).

A batch of encoded patterns (the bulk reader's one buffer and offsets) is visited in byte
order (of 8 bytes after the prefix all patterns share), so neighbouring lookups walk the
same part of the trie and, on a cold memmap, the same pages. Each pattern without variables
is walked down the trie once. Its lookup is decided when no stored variable stands at any
token boundary along the walk (no stored atom with a variable can unify with it): then the
stored path equal to it is its only candidate, or it has none.

Numbers: a snapshot keeps an integer and a float in their own encodings, while `3` and `3.0`
unify (snapshot_probes). A pattern holding up to MAX_DUAL whole numbers is also looked up
with each of them in its other form (every combination, as probe_patterns does); each form's
rank is reported. A pattern with more, or with a NaN, is left open.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec.tags import TAG_BIG_VAR_REF, TAG_FLOAT, TAG_INT, TAG_NEW_VAR, TAG_VAR_REF
from metta_numba.jit import njit
from metta_numba.trie.layout import StructureType, i64_arr, i64_ro, u8_ro
from metta_numba.trie.scan import token_payload
from metta_numba.trie.walk import (
    edge_child,
    edge_rank,
    find_edge,
    lower_bound_edge,
    node_edges,
    node_label,
    trie_bounds,
)

MAX_DUAL = 3
"""Whole numbers a pattern may hold and still be decided here (2**3 forms, snapshot_probes'
MAX_VARIANTS)."""
FORMS = 1 << MAX_DUAL
OPEN = 0
DECIDED = 1
MISS = -1
STORED_VARIABLE = -2

_SIGN = np.uint64(1 << 63)
_I64_MAX_AS_FLOAT = 9.223372036854775808e18  # 2**63, the first float beyond int64

i8_arr = types.Array(types.int8, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")
u8_arr = types.Array(types.uint8, 1, "C")


@njit(types.int64(StructureType, u8_ro), cache=True, nogil=True)
def ground_walk(trie, path):
    """The rank of the ground `path` when it is stored and no stored variable stands at a token
    boundary along it; MISS when no stored path can unify with it; STORED_VARIABLE when one
    with a variable may."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    node = 0
    offset, length = node_label(label_off, label_len, n_nodes, n_labels, 0)
    used = 0
    rank = 0
    pos = 0
    size = path.shape[0]
    while pos < size:
        payload = token_payload(np.int64(path[pos]))
        if payload < 0 or pos + 1 + payload > size:
            raise ValueError("the pattern is not one well-formed encoded atom")
        if used < length:
            tag = labels[offset + used]
            if (TAG_VAR_REF <= tag <= TAG_NEW_VAR) or tag == TAG_BIG_VAR_REF:
                return STORED_VARIABLE
        else:
            first, end = node_edges(child_start, n_nodes, n_edges, node)
            edge = lower_bound_edge(first_byte, first, end, TAG_VAR_REF)
            # (A long reference, TAG_BIG_VAR_REF, needs a new variable before it on the same
            # path: that one was met at an earlier boundary.)
            if edge < end and first_byte[edge] <= TAG_NEW_VAR:
                return STORED_VARIABLE
        for k in range(pos, pos + 1 + payload):
            byte = path[k]
            if used < length:
                if labels[offset + used] != byte:
                    return MISS
                used += 1
            else:
                first, end = node_edges(child_start, n_nodes, n_edges, node)
                edge = find_edge(first_byte, first, end, byte)
                if edge < 0:
                    return MISS
                node = edge_child(children, n_nodes, node, edge)
                rank += edge_rank(rank_offset, edge)
                offset, length = node_label(label_off, label_len, n_nodes, n_labels, node)
                used = 1
        pos += 1 + payload
    first, end = node_edges(child_start, n_nodes, n_edges, node)
    if used != length or first != end:
        return MISS
    return rank


@njit(types.uint64(u8_ro, types.int64), cache=True, nogil=True)
def _word(data, at):
    """The 8 bytes at data[at:at+8] as one big-endian word."""
    word = np.uint64(0)
    for k in range(8):
        word = (word << np.uint64(8)) | np.uint64(data[at + k])
    return word


@njit(types.void(u8_arr, types.int64, types.uint64), cache=True, nogil=True)
def _put_word(out, at, word):
    for k in range(8):
        out[at + k] = np.uint8((word >> np.uint64(8 * (7 - k))) & np.uint64(0xFF))


@njit(types.Tuple((types.int64, types.uint64))(types.int64, types.uint64), cache=True, nogil=True)
def other_number(tag, key):
    """(tag, key) of the same number in its other encoding; tag 0 when it has none, -1 for a
    NaN (which unifies with nothing equal to it: left to the caller)."""
    if tag == TAG_INT:
        value = np.int64(key ^ _SIGN)
        as_float = np.float64(value)
        if as_float >= _I64_MAX_AS_FLOAT or np.int64(as_float) != value:
            return 0, np.uint64(0)
        bits = np.array([as_float]).view(np.uint64)[0]
        return TAG_FLOAT, (~bits if bits & _SIGN else bits | _SIGN)
    bits = key ^ _SIGN if key & _SIGN else ~key
    value = np.array([bits]).view(np.float64)[0]
    if value != value:
        return -1, np.uint64(0)
    if np.isinf(value) or value != np.floor(value) or value < -_I64_MAX_AS_FLOAT or value >= _I64_MAX_AS_FLOAT:
        return 0, np.uint64(0)
    return TAG_INT, np.uint64(np.int64(value)) ^ _SIGN


@njit(types.int64(u8_ro, types.int64[:], types.int64[:]), cache=True, nogil=True)
def _dual_numbers(path, where, keys):
    """Find the whole numbers of `path` that have another form: the position of the j-th in
    where[j], its other form's tag and key in keys[2j] and keys[2j+1]. Returns how many (up to
    MAX_DUAL + 1: more than MAX_DUAL), or -1 when the path holds a NaN."""
    count = 0
    pos = 0
    while pos < path.shape[0]:
        tag = np.int64(path[pos])
        if tag == TAG_INT or tag == TAG_FLOAT:
            other, key = other_number(tag, _word(path, pos + 1))
            if other < 0:
                return -1
            if other > 0:
                if count == MAX_DUAL:
                    return count + 1
                where[count] = pos
                keys[2 * count] = other
                keys[2 * count + 1] = np.int64(key)
                count += 1
        pos += 1 + max(token_payload(tag), 0)
    return count


@njit(i64_arr(u8_ro, i64_ro), cache=True, nogil=True)
def byte_order(data, offsets):
    """The patterns' indices sorted by the 8 bytes that follow the prefix they all share: the
    top of the trie each walk shares with its neighbours (an exact order costs more than the
    locality it adds)."""
    n = offsets.shape[0] - 1
    shared = 0
    if n > 0:
        shared = offsets[1] - offsets[0]
        for i in range(1, n):
            limit = min(shared, offsets[i + 1] - offsets[i])
            k = 0
            while k < limit and data[offsets[i] + k] == data[offsets[0] + k]:
                k += 1
            shared = k
    keys = np.zeros(n, np.uint64)
    for i in range(n):
        word = np.uint64(0)
        for k in range(8):
            at = offsets[i] + shared + k
            word = (word << np.uint64(8)) | (np.uint64(data[at]) if at < offsets[i + 1] else np.uint64(0))
        keys[i] = word
    return np.argsort(keys)


@njit(types.Tuple((i8_arr, i64_arr, i64_arr, i64_2d))(StructureType, u8_ro, i64_ro, i64_ro), cache=True, nogil=True)
def ground_lookups(trie, data, offsets, names):
    """(status, ranks, rows, other_ranks) of the patterns data[offsets[i]:offsets[i+1]].

    status[i] is DECIDED when every form of pattern i (itself, then with its whole numbers in
    their other forms) was looked up without meeting a stored variable; ranks[i] is then the
    rank of its own stored path, or -1. A pattern with whole numbers has a row rows[i] >= 0 of
    other_ranks, whose column f (1 <= f < 2**numbers) is the rank of form f (bit j of f: the
    j-th number in its other form), or -1. Patterns with variables (names[i] >= 0), a NaN,
    more than MAX_DUAL whole numbers or a stored variable on the way stay OPEN."""
    n = offsets.shape[0] - 1
    for i in range(n):
        if offsets[i] < 0 or offsets[i + 1] < offsets[i] or offsets[i + 1] > data.shape[0]:
            raise ValueError("pattern offsets out of order or out of range")
    where = np.zeros(MAX_DUAL, np.int64)
    keys = np.zeros(2 * MAX_DUAL, np.int64)
    # Rows of the other forms only for the patterns that have some (few, as a rule).
    rows = np.full(n, -1, np.int64)
    used = 0
    for i in range(n):
        if names[i] < 0:
            duals = _dual_numbers(data[offsets[i] : offsets[i + 1]], where, keys)
            if 0 < duals <= MAX_DUAL:
                rows[i] = used
                used += 1
    status = np.zeros(n, np.int8)
    ranks = np.full(n, -1, np.int64)
    other_ranks = np.full((used, FORMS), -1, np.int64)
    scratch = np.zeros(0, np.uint8)
    for i in byte_order(data, offsets):
        if names[i] >= 0:
            continue
        path = data[offsets[i] : offsets[i + 1]]
        duals = _dual_numbers(path, where, keys)
        if duals < 0 or duals > MAX_DUAL:
            continue
        decided = True
        for form in range(1 << duals):
            if form == 0:
                rank = ground_walk(trie, path)
            else:
                if scratch.shape[0] < path.shape[0]:
                    scratch = np.zeros(2 * path.shape[0], np.uint8)
                variant = scratch[: path.shape[0]]
                variant[:] = path
                for j in range(duals):
                    if form >> j & 1:
                        variant[where[j]] = np.uint8(keys[2 * j])
                        _put_word(variant, where[j] + 1, np.uint64(keys[2 * j + 1]))
                rank = ground_walk(trie, variant)
            if rank == STORED_VARIABLE:
                decided = False
                break
            if form == 0:
                ranks[i] = rank
            else:
                other_ranks[rows[i], form] = rank
        if decided:
            status[i] = DECIDED
        else:
            ranks[i] = -1
            if rows[i] >= 0:
                other_ranks[rows[i], :] = -1
    return status, ranks, rows, other_ranks
