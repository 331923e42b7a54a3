"""What the argument index (argindex.py) records of each path: its *entries*, one per
position it has, with the key of the ground subterm there; and the order they are stored in.

A *position* is a path of child indices into a top-level expression: (c0,) for its child c0,
(c0, c1) for child c1 of that child. Its code is `(c0 + 1) << 32 | (c1 + 1)` (c1 part 0 at
depth 1), so codes sort by c0 first. Code 0 marks an atom that is a bare variable.

A path yields one entry per position it has (depth 1 and 2, child indices below `max_child`,
the head c0 = 0 left out: a ground head is the trie's own prefix): the position code, a kind
(ground subterm, variable, or expression holding a variable) and, for a ground subterm, a
32-bit key: the high half of a 64-bit hash of its bytes and of the arities above it. Two
ground subterms unify only when their bytes are equal, so equal bytes give equal keys and a
lookup by key misses nothing; unequal subterms that share a key only add candidates, which
the unification after every lookup drops (32 bits: a collision per some 4 billion pairs, for
half the bytes of a 64-bit key in the snapshot).
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit
from metta_numba.trie.layout import i64_arr, i64_ro, u8_ro, u64_ro
from metta_numba.trie.scan import is_variable_tag, read_u32, token_payload

Int = types.int64
u64_arr = types.Array(types.uint64, 1, "C")
i8_arr = types.Array(types.int8, 1, "C")

GROUND = 0
VARIABLE = 1
OPEN = 2  # an expression that holds a variable
TOP_VARIABLE_CODE = 0
DEPTH2_MASK = (1 << 32) - 1

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(types.uint64(types.uint64), cache=True, nogil=True)
def _finish(h):
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


@njit(types.uint64(u8_ro, Int, Int, Int, Int), cache=True, nogil=True)
def subterm_key(data, start, end, arity, parent_arity):
    """Key of the ground subterm data[start:end] under a top-level expression of `arity`
    (and, at depth 2, a child of `parent_arity`; -1 at depth 1): below 2**32."""
    h = _FNV_OFFSET ^ _finish(np.uint64(arity) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(parent_arity + 1))
    for i in range(start, end):
        h ^= np.uint64(data[i])
        h *= _FNV_PRIME
    return _finish(h) >> np.uint64(32)


@njit(types.UniTuple(Int, 2)(u8_ro, Int, Int), cache=True, nogil=True)
def scan_term(data, start, limit):
    """(end, ground) of the term at `start`: end -1 when it is not complete before `limit`;
    ground 1 when it holds no variable token."""
    limit = min(limit, data.shape[0])
    owed = 1
    pos = start
    ground = 1
    while owed > 0:
        if pos < 0 or pos >= limit:
            return -1, 0
        tag = np.int64(data[pos])
        payload = token_payload(tag)
        if payload < 0 or pos + 1 + payload > limit:
            return -1, 0
        if tag < 0x40:
            owed += tag
        elif tag == tags.TAG_BIG_ARITY:
            owed += read_u32(data, pos + 1, limit)
        elif is_variable_tag(tag):
            ground = 0
        owed -= 1
        pos += 1 + payload
    return pos, ground


@njit(types.UniTuple(Int, 2)(u8_ro, Int, Int), cache=True, nogil=True)
def expression_header(data, pos, limit):
    """(arity, offset of the first child) of an expression token at `pos`; arity -1 when the
    token there is no expression."""
    tag = np.int64(data[pos])
    if tag < 0x40:
        return tag, pos + 1
    if tag == tags.TAG_BIG_ARITY:
        arity = read_u32(data, pos + 1, limit)
        return arity, pos + 5
    return -1, pos


@njit(Int(Int, Int), cache=True, nogil=True)
def position_code(c0, c1):
    return ((c0 + 1) << 32) | (c1 + 1)


@njit(
    Int(u8_ro, Int, Int, Int, Int, i64_arr, i8_arr, u64_arr, i64_arr, Int),
    cache=True,
    nogil=True,
)
def path_entries(data, start, end, max_child, rank, codes, kinds, keys, ranks, n):
    """Append the entries of the path data[start:end] at index n (the arrays have room: at
    most one entry per token, plus one). Returns the new count, or -1 for a malformed path."""
    if start < 0 or end > data.shape[0] or start >= end or n + end - start + 1 > codes.shape[0]:
        return -1
    tag = np.int64(data[start])
    if is_variable_tag(tag):
        codes[n] = TOP_VARIABLE_CODE
        kinds[n] = VARIABLE
        keys[n] = 0
        ranks[n] = rank
        return n + 1
    arity, pos = expression_header(data, start, end)
    if arity < 0:
        return n  # a symbol or a value: it has no positions
    for c0 in range(arity):
        child_end, ground = scan_term(data, pos, end)
        if child_end < 0:
            return -1
        if 1 <= c0 < max_child:
            child_tag = np.int64(data[pos])
            codes[n] = position_code(c0, -1)
            ranks[n] = rank
            if is_variable_tag(child_tag):
                kinds[n] = VARIABLE
                keys[n] = 0
            elif ground == 1:
                kinds[n] = GROUND
                keys[n] = subterm_key(data, pos, child_end, arity, -1)
            else:
                kinds[n] = OPEN
                keys[n] = 0
            n += 1
            child_arity, inner = expression_header(data, pos, child_end)
            for c1 in range(max(child_arity, 0)):
                inner_end, inner_ground = scan_term(data, inner, child_end)
                if inner_end < 0:
                    return -1
                if c1 < max_child:
                    codes[n] = position_code(c0, c1)
                    ranks[n] = rank
                    if is_variable_tag(np.int64(data[inner])):
                        kinds[n] = VARIABLE
                        keys[n] = 0
                    elif inner_ground == 1:
                        kinds[n] = GROUND
                        keys[n] = subterm_key(data, inner, inner_end, arity, child_arity)
                    else:
                        kinds[n] = OPEN
                        keys[n] = 0
                    n += 1
                inner = inner_end
        pos = child_end
    if pos != end:
        return -1
    return n


@njit(
    types.Tuple((i64_arr, i8_arr, u64_arr, i64_arr))(u8_ro, i64_ro, Int, Int),
    cache=True,
    nogil=True,
)
def batch_entries(data, offsets, first_rank, max_child):
    """Entries of a batch of paths (path i has rank first_rank + i): (codes, kinds, keys, ranks).
    Raises ValueError on a malformed path."""
    count = offsets.shape[0] - 1
    capacity = count + max(0, offsets[count] - offsets[0]) if count > 0 else 0
    codes = np.empty(capacity, np.int64)
    kinds = np.empty(capacity, np.int8)
    keys = np.empty(capacity, np.uint64)
    ranks = np.empty(capacity, np.int64)
    n = 0
    for i in range(count):
        start = offsets[i]
        n = path_entries(data, start, offsets[i + 1], max_child, first_rank + i, codes, kinds, keys, ranks, n)
        if n < 0:
            raise ValueError("a path is not one well-formed encoded atom")
    return codes[:n].copy(), kinds[:n].copy(), keys[:n].copy(), ranks[:n].copy()


@njit(i64_arr(i64_ro, u64_ro), cache=True, nogil=True)
def group_key_order(groups, keys):
    """The stable order of entries by (group, key): an LSD radix sort, four 16-bit passes over
    the keys then one over the groups (each below 2**16), O(n) where a comparison sort of two
    million 64-bit keys takes a good part of a second."""
    n = groups.shape[0]
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    counts = np.empty(1 << 16, np.int64)
    for digit in range(5):
        counts[:] = 0
        shift = np.uint64(16 * digit)
        for i in range(n):
            if digit < 4:
                bucket = np.int64((keys[i] >> shift) & np.uint64(0xFFFF))
            else:
                bucket = groups[i]
                if bucket < 0 or bucket >= 1 << 16:
                    raise ValueError("group out of range")
            counts[bucket] += 1
        total = 0
        for b in range(1 << 16):
            c = counts[b]
            counts[b] = total
            total += c
        for j in range(n):
            i = order[j]
            if digit < 4:
                bucket = np.int64((keys[i] >> shift) & np.uint64(0xFFFF))
            else:
                bucket = groups[i]
            spare[counts[bucket]] = i
            counts[bucket] += 1
        order, spare = spare, order
    return order
