"""Two-sided unification of an encoded pattern with stored paths that hold variables.

`pathmatch.match_one` decides a stored path without variables byte by byte; a stored rule such
as `(= (add5 $x zero) $x)` used to go to Python (decode, rename apart, unify) for every answer.
This kernel unifies such paths in place: pattern and path are copied into one buffer, every
variable gets an id (the pattern's first, then the path's), and bindings point at terms in the
buffer or alias another variable. It decides YES only when each pattern variable ends up

- bound to a ground term (its bytes are the value, from the path or from the pattern), or
- unbound, in a class with no other pattern variable (its value is then the variable itself,
  as unify.py leaves it: stored variables are bound to pattern variables, not the reverse).

Anything else (a variable bound to a term that holds variables, two pattern variables joined,
an integer meeting a float, a pattern value that refers to the term store) is MAYBE, and the
caller unifies in Python as before. Binding only to ground terms also makes an occurs check
unnecessary.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit
from metta_numba.trie.argindex import ArgIndex, candidate_paths
from metta_numba.trie.argindex_entries import scan_term
from metta_numba.trie.argindex_kernels import (
    H_LEAVES,
    USE_TRIE,
    planned_candidates,
    prefix_ranges,
    range_total,
    ranks_of_ranges,
)
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import StructureType, i64_ro, u8_ro, u32_ro, u64_ro
from metta_numba.trie.pathmatch import MAYBE, NO, YES, is_number_tag, match_one
from metta_numba.trie.scan import (
    TAG_BIG_ARITY,
    TAG_BIG_VAR_REF,
    TAG_NEW_VAR,
    VAR_REF_FIRST,
    count_new_variables,
    is_reference_tag,
    read_u32,
    token_payload,
)
from metta_numba.trie.trie import Trie
from metta_numba.trie.walk import paths_of_sorted_ranks

Int = types.int64
i8_arr = types.Array(types.int8, 1, "C")
i8_2d = types.Array(types.int8, 2, "C")
i64_arr = types.Array(types.int64, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")
u8_arr = types.Array(types.uint8, 1, "C")

UNBOUND = 0
TERM = 1
ALIAS = 2

SIDE_UNBOUND = -1
SIDE_PATTERN = 0
SIDE_PATH = 1


@njit(Int(u8_arr, Int, Int, i64_arr, Int), cache=True, nogil=True)
def number_variables(buf, start, end, var_at, first_id):
    """Fill var_at[start:end] with the id of the variable whose token starts there (-1 for no
    variable); ids count from first_id in order of first occurrence. Returns the count."""
    fresh = 0
    pos = start
    while pos < end:
        tag = np.int64(buf[pos])
        var_at[pos] = -1
        if tag == TAG_NEW_VAR:
            var_at[pos] = first_id + fresh
            fresh += 1
        elif is_reference_tag(tag):
            ref = read_u32(buf, pos + 1, end) if tag == TAG_BIG_VAR_REF else tag - VAR_REF_FIRST
            var_at[pos] = first_id + ref
        payload = token_payload(tag)
        if payload < 0:
            return -1
        pos += 1 + payload
    return fresh


@njit(types.UniTuple(Int, 2)(u8_arr, i64_arr, i64_arr, i64_arr, Int), cache=True, nogil=True)
def resolve(buf, var_at, kind, value, pos):
    """(variable id, -1) of the unbound variable a term at `pos` stands for, or (-1, term
    position) of the term it is (following bindings and aliases)."""
    while True:
        var = var_at[pos]
        if var < 0:
            return -1, pos
        while kind[var] == ALIAS:
            var = value[var]
        if kind[var] == UNBOUND:
            return var, -1
        pos = value[var]


@njit(Int(u8_arr, Int, Int, Int, i64_arr, i64_arr, i64_arr, i64_arr), cache=True, nogil=True)
def unify_buffer(buf, size, left, right, var_at, kind, value, stack):
    """Unify the terms at `left` (path side) and `right` (pattern side) of buf[:size]."""
    stack[0] = left
    stack[1] = right
    top = 2
    while top > 0:
        top -= 2
        var_a, term_a = resolve(buf, var_at, kind, value, stack[top])
        var_b, term_b = resolve(buf, var_at, kind, value, stack[top + 1])
        if var_a >= 0 and var_b >= 0:
            if var_a != var_b:
                kind[var_a] = ALIAS
                value[var_a] = var_b
            continue
        if var_a >= 0 or var_b >= 0:
            var = var_a if var_a >= 0 else var_b
            term = term_b if var_a >= 0 else term_a
            end, ground = scan_term(buf, term, size)
            if end < 0 or ground == 0:
                return MAYBE
            kind[var] = TERM
            value[var] = term
            continue
        tag_a = np.int64(buf[term_a])
        tag_b = np.int64(buf[term_b])
        expr_a = tag_a < 0x40 or tag_a == TAG_BIG_ARITY
        expr_b = tag_b < 0x40 or tag_b == TAG_BIG_ARITY
        if expr_a != expr_b:
            return NO
        if expr_a:
            arity_a = read_u32(buf, term_a + 1, size) if tag_a == TAG_BIG_ARITY else tag_a
            arity_b = read_u32(buf, term_b + 1, size) if tag_b == TAG_BIG_ARITY else tag_b
            if arity_a != arity_b:
                return NO
            if top + 2 * arity_a > stack.shape[0]:
                return MAYBE
            child_a = term_a + 1 + token_payload(tag_a)
            child_b = term_b + 1 + token_payload(tag_b)
            for _ in range(arity_a):
                stack[top] = child_a
                stack[top + 1] = child_b
                top += 2
                child_a, _ground = scan_term(buf, child_a, size)
                child_b, _ground = scan_term(buf, child_b, size)
                if child_a < 0 or child_b < 0:
                    return NO
            continue
        if tag_a != tag_b:
            return MAYBE if (is_number_tag(tag_a) and is_number_tag(tag_b)) else NO
        width = 1 + token_payload(tag_a)
        for k in range(width):
            if buf[term_a + k] != buf[term_b + k]:
                return NO
    return YES


@njit(cache=True, nogil=True)
def _refers_to_terms(buf, start, end):
    """A pattern term holding a string, a long symbol or a handle: its ids are the query's."""
    pos = start
    while pos < end:
        tag = np.int64(buf[pos])
        if tag == tags.TAG_STRING or tag == tags.TAG_LONG_SYMBOL or tag == tags.TAG_HANDLE:
            return True
        pos += 1 + token_payload(tag)
    return False


@njit(cache=True, nogil=True)
def unify_row(plen, first_at, data, start, end, buf, var_at, kind, value, stack, roots, spans, sides):
    """Unify the pattern, already in buf[:plen] and numbered in var_at[:plen] (its variables'
    first positions in `first_at`), with data[start:end] (see the module docstring); on YES
    spans/sides say where each pattern variable's value is (sides -1: it stays unbound)."""
    p_vars = first_at.shape[0]
    n = end - start
    buf[plen : plen + n] = data[start:end]
    total = plen + n
    s_vars = number_variables(buf, plen, total, var_at, p_vars)
    if s_vars < 0:
        return NO
    for v in range(p_vars + s_vars):
        kind[v] = UNBOUND
    status = unify_buffer(buf, total, plen, 0, var_at, kind, value, stack)
    if status != YES:
        return status
    # Each pattern variable's unbound root (-1 when bound to a term), resolved once.
    for v in range(p_vars):
        roots[v] = resolve(buf, var_at, kind, value, first_at[v])[0]
    for v in range(p_vars):
        if roots[v] >= 0:
            for other in range(p_vars):
                if other != v and roots[other] == roots[v]:
                    return MAYBE
            sides[v] = SIDE_UNBOUND
            continue
        term = resolve(buf, var_at, kind, value, first_at[v])[1]
        term_end, ground = scan_term(buf, term, total)
        if term < plen:
            if _refers_to_terms(buf, term, term_end):
                return MAYBE
            sides[v] = SIDE_PATTERN
            spans[2 * v] = term
            spans[2 * v + 1] = term_end
        else:
            sides[v] = SIDE_PATH
            spans[2 * v] = term - plen + start
            spans[2 * v + 1] = term_end - plen + start
    return YES


@njit(types.Tuple((i8_arr, i64_2d, i8_2d))(u8_ro, u8_ro, i64_ro), cache=True, nogil=True)
def unify_paths(pattern, data, offsets):
    """(status, spans, sides) for the batch of paths data[offsets[i]:offsets[i+1]]: paths
    without variables matched one-sided (`match_one`), the others unified two-sided here.
    spans hold 2 columns per pattern variable, sides 1 per variable (see unify_row)."""
    n = offsets.shape[0] - 1
    plen = pattern.shape[0]
    p_vars = count_new_variables(pattern, 0, plen)
    status = np.zeros(max(n, 0), np.int8)
    spans = np.zeros((max(n, 0), 2 * p_vars), np.int64)
    sides = np.ones((max(n, 0), p_vars), np.int8)
    longest = 0
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    room = plen + longest
    buf = np.zeros(room, np.uint8)
    var_at = np.full(room, -1, np.int64)  # -1 also inside payloads: only token starts name a variable
    kind = np.zeros(room + p_vars, np.int64)
    value = np.zeros(room + p_vars, np.int64)
    stack = np.zeros(2 * room + 2, np.int64)
    roots = np.zeros(p_vars, np.int64)
    # The pattern's part of the buffer is the same for every row: written and numbered once.
    buf[:plen] = pattern
    number_variables(buf, 0, plen, var_at, 0)
    first_at = np.full(p_vars, -1, np.int64)
    for pos in range(plen - 1, -1, -1):
        if var_at[pos] >= 0:
            first_at[var_at[pos]] = pos
    for i in range(n):
        start = offsets[i]
        end = offsets[i + 1]
        if start < 0 or end < start or end > data.shape[0]:
            raise ValueError("path offsets out of order or out of range")
        state = match_one(pattern, data, start, end, spans[i])
        if state == MAYBE:
            scratch = (buf, var_at, kind, value, stack, roots)
            state = unify_row(plen, first_at, data, start, end, *scratch, spans[i], sides[i])
        status[i] = state
    return status, spans, sides


ROW_RANK = 0
ROW_STATUS = 1
ROW_COPIES = 2
ROW_PATH = 3
ROW_FIRST_VALUE = 5
"""Columns of a `matched_rows` row: the candidate's rank, its status, its copies, the
[start, end) of its path in the returned data, then the [start, end) of each pattern
variable's value."""

NOT_SERVED = -1
"""`matched_rows` verdicts: the pattern is not one it serves (the caller takes the general
way); a copy count above the total (a damaged snapshot); every row is a match once (the
caller may take each column at once); rows of any kind."""
COUNT_DAMAGED = -2
ALL_SINGLE_MATCHES = 1
SOME_OTHER_ROWS = 0
NO_INDEX = (np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint64), np.zeros(0, np.uint64))
"""The index arrays `matched_rows` takes for a trie without an argument index."""


@njit(
    types.Tuple((i64_2d, u8_arr, Int))(
        StructureType, u8_ro, Int, Int, i64_ro, u32_ro, u64_ro, u64_ro, u8_ro, Int, Int
    ),
    cache=True,
    nogil=True,
)  # fmt: skip
def matched_rows(trie, pattern, limit, most, table, hashes, key_start, index_ranks, count_bytes, count_width, total):
    """`snapshot_matches` in one call for a pattern with few candidates, picked by its ground
    prefix (no ground token follows its first variable, and the prefix leaves at most `limit`
    paths) or else by the argument index (its arrays; empty: none), as ArgIndex.plan picks
    them, when they are at most `most`. Returns (rows, data, verdict): data holds the
    candidates' paths, then the pattern; one row per candidate that may match (status YES or
    MAYBE), in rank order, with its rank, status, copies (from the little-endian leaf counts
    of `count_width` bytes each, at most `total`; a negative width -w: every path's count is
    the one w-byte value there, a constant column), the span of its path in data, then for
    each pattern variable the span of its value in data (a value lies in the path or in the
    pattern; an empty span: the variable stays unbound). The verdict is one of the constants
    above.

    A small query pays mostly for calls and intermediate arrays, not for the walk: this makes
    one call where the general way makes six, and decodes nothing."""
    ranges, later = prefix_ranges(trie, pattern)
    if range_total(ranges) <= limit:
        if later != 0:  # the trie's match kernel narrows these (ArgIndex.plan)
            return np.empty((0, 0), np.int64), np.empty(0, np.uint8), NOT_SERVED
        ranks = ranks_of_ranges(ranges)
    else:
        if table.shape[0] == 0:
            return np.empty((0, 0), np.int64), np.empty(0, np.uint8), NOT_SERVED
        choice, estimate, ranks = planned_candidates(
            pattern, table, hashes, key_start, index_ranks, ranges, later, most
        )
        if choice == USE_TRIE or estimate > most:
            return np.empty((0, 0), np.int64), np.empty(0, np.uint8), NOT_SERVED
        if ranks.shape[0] and ranks[ranks.shape[0] - 1] >= table[H_LEAVES]:
            raise CorruptTrieError("argument index: a posting beyond the paths")
    paths, offsets = paths_of_sorted_ranks(trie, ranks)
    status, spans, sides = unify_paths(pattern, paths, offsets)
    size = paths.shape[0]
    data = np.empty(size + pattern.shape[0], np.uint8)
    data[:size] = paths
    data[size:] = pattern
    p_vars = sides.shape[1]
    kept = 0
    for i in range(status.shape[0]):
        if status[i] != NO:
            kept += 1
    rows = np.zeros((kept, ROW_FIRST_VALUE + 2 * p_vars), np.int64)
    verdict = ALL_SINGLE_MATCHES
    r = 0
    for i in range(status.shape[0]):
        if status[i] == NO:
            continue
        copies = 0
        width = abs(count_width)
        at = ranks[i] * count_width if count_width > 0 else 0
        if at < 0 or at + width > count_bytes.shape[0]:
            raise IndexError("rank out of range of the leaf counts")
        for k in range(width):
            copies |= np.int64(count_bytes[at + k]) << (8 * k)
        if copies > total or copies < 0:
            return rows, data, COUNT_DAMAGED
        if copies != 1 or status[i] != YES:
            verdict = SOME_OTHER_ROWS
        rows[r, ROW_RANK] = ranks[i]
        rows[r, ROW_STATUS] = status[i]
        rows[r, ROW_COPIES] = copies
        rows[r, ROW_PATH] = offsets[i]
        rows[r, ROW_PATH + 1] = offsets[i + 1]
        if status[i] == YES:
            for v in range(p_vars):
                if sides[i, v] != SIDE_UNBOUND:
                    shift = size if sides[i, v] == SIDE_PATTERN else 0
                    rows[r, ROW_FIRST_VALUE + 2 * v] = spans[i, 2 * v] + shift
                    rows[r, ROW_FIRST_VALUE + 2 * v + 1] = spans[i, 2 * v + 1] + shift
        r += 1
    return rows, data, verdict


def snapshot_matches(trie: Trie, index: ArgIndex | None, pattern: bytes) -> tuple[np.ndarray, ...]:
    """The candidates of an encoded pattern in a trie (through its argument index when there is
    one), unified: (ranks, data, offsets, status, spans, sides), paths as one batch."""
    path = np.frombuffer(pattern, dtype=np.uint8)
    ranks, data, offsets = candidate_paths(trie, index, path)
    status, spans, sides = unify_paths(path, data, offsets)
    return ranks, data, offsets, status, spans, sides
