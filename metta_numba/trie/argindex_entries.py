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
from metta_numba.trie.layout import i32_arr, i64_arr, i64_ro, u8_ro
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


DIGIT_BITS = 16
N_DIGITS = 4  # of a 64-bit sort key: the key's two low digits, the group's two high ones
KEY_MASK = (1 << 32) - 1


def entry_sort_keys(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """`group << 32 | key` of each entry (uint64): one number that sorts as (group, key).
    Raises ValueError for a group outside 0..2**31-1 or a key of 2**32 or more."""
    if len(groups) and (int(groups.min()) < 0 or int(groups.max()) >= 1 << 31 or int(keys.max()) > KEY_MASK):
        raise ValueError("an index entry out of range")
    return (groups.astype(np.uint64) << np.uint64(32)) | keys.astype(np.uint64, copy=False)


@njit(types.void(u64_arr, i32_arr, u64_arr, i32_arr), cache=True, nogil=True)
def sort_pairs(sort_keys, ranks, spare_keys, spare_ranks):
    """Sort `sort_keys` in place, stably, moving `ranks` along (entries given in rank order
    stay so within a key). An LSD radix sort in 16-bit digits that reads each pass in order
    and skips a digit all keys share (the high digits of small group numbers: most sorts take
    two or three passes). The spare arrays are scratch at least as long, reusable between
    calls."""
    n = sort_keys.shape[0]
    if spare_keys.shape[0] < n or spare_ranks.shape[0] < n or ranks.shape[0] != n:
        raise ValueError("sort_pairs: arrays of the wrong length")
    if n == 0:
        return
    counts = np.zeros((N_DIGITS, 1 << DIGIT_BITS), np.int64)
    mask = np.uint64((1 << DIGIT_BITS) - 1)
    for i in range(n):
        value = sort_keys[i]
        for digit in range(N_DIGITS):
            counts[digit, np.int64((value >> np.uint64(DIGIT_BITS * digit)) & mask)] += 1
    source_keys, source_ranks = sort_keys, ranks
    target_keys, target_ranks = spare_keys[:n], spare_ranks[:n]
    passes = 0
    for digit in range(N_DIGITS):
        shift = np.uint64(DIGIT_BITS * digit)
        if counts[digit, np.int64((sort_keys[0] >> shift) & mask)] == n:
            continue
        total = 0
        for bucket in range(1 << DIGIT_BITS):
            count = counts[digit, bucket]
            counts[digit, bucket] = total
            total += count
        for i in range(n):
            bucket = np.int64((source_keys[i] >> shift) & mask)
            at = counts[digit, bucket]
            target_keys[at] = source_keys[i]
            target_ranks[at] = source_ranks[i]
            counts[digit, bucket] = at + 1
        source_keys, target_keys = target_keys, source_keys
        source_ranks, target_ranks = target_ranks, source_ranks
        passes += 1
    if passes % 2 == 1:
        sort_keys[:] = source_keys
        ranks[:] = source_ranks


def sort_entries(groups: np.ndarray, keys: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries sorted by (group, key), stably: (groups, keys, ranks) as int64, uint64
    and int32 arrays."""
    sort_keys = entry_sort_keys(groups, keys)
    if len(ranks) and (int(ranks.min()) < 0 or int(ranks.max()) >= 1 << 31):
        raise ValueError("an index entry out of range")
    ranks = ranks.astype(np.int32)
    sort_pairs(sort_keys, ranks, np.empty_like(sort_keys), np.empty_like(ranks))
    return (sort_keys >> np.uint64(32)).astype(np.int64), sort_keys & np.uint64(KEY_MASK), ranks
