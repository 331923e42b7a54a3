"""Numba kernels of the argument index (argindex.py) at query time: the ground-prefix rank
ranges of a pattern, the choice of its most selective position, lookups in the sorted posting
arrays, and the checks of stored arrays. The entries and keys are argindex_entries'.

Every kernel checks what it reads: a corrupt array raises CorruptTrieError, never reads out
of bounds.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.argindex_entries import DEPTH2_MASK, GROUND, path_entries
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import StructureType, i64_arr, i64_ro, u8_ro, u32_ro, u64_ro
from metta_numba.trie.packed import packed_get, packed_len
from metta_numba.trie.scan import is_variable_tag, token_payload
from metta_numba.trie.walk import (
    edge_child,
    edge_rank,
    find_edge,
    leaves_below,
    node_edges,
    node_label,
    trie_bounds,
)

Int = types.int64

# Columns of one row of the position table (argindex.py stores the rows flattened).
CODE = 0
KEY_LO = 1  # the position's keys: hashes[KEY_LO:KEY_HI], each with its start in key_start
KEY_HI = 2
POST_LO = 3  # its ground postings: ranks[POST_LO:POST_HI], grouped by key, ranks ascending
POST_HI = 4
VAR_LO = 5  # ranks of atoms with a variable at the position
VAR_HI = 6
OPEN_LO = 7  # ranks of atoms with a non-ground expression at the position
OPEN_HI = 8
FENCE_LO = 9  # every FENCE_STRIDE-th key of the position, for a cache-friendly first search
FENCE_HI = 10
N_GROUND = 11  # atoms with a ground subterm there (postings kept or not)
N_KEYS = 12
KEYED = 13  # 1 when the ground postings are kept (the size cap may drop them)
ROW = 14

# Fields of the header (row 0 of the table).
H_VERSION = 0
H_LEAVES = 1
H_MAX_CHILD = 2
H_STRIDE = 3
H_TOP_LO = 4  # ranks[H_TOP_LO:H_TOP_HI]: atoms that are a bare variable
H_TOP_HI = 5
H_ROWS = 6  # rows after the header
H_COVER_AT = 7  # table[H_COVER_AT : H_COVER_AT + 2 * H_COVER_N]: indexed rank ranges
H_COVER_N = 8

# --- the pattern's ground prefix in the trie ------------------------------------------------


@njit(i64_arr(i64_arr, Int, Int, Int), cache=True, nogil=True)
def _push_range(out, n, lo, hi):
    if 2 * n + 2 > out.shape[0]:
        bigger = np.empty(2 * out.shape[0], np.int64)
        bigger[: out.shape[0]] = out
        out = bigger
    out[2 * n] = lo
    out[2 * n + 1] = hi
    return out


@njit(types.Tuple((i64_arr, Int))(StructureType, u8_ro), cache=True, nogil=True)
def prefix_ranges(trie, pattern):
    """Rank ranges that hold every stored path able to unify with `pattern`, from its ground
    prefix (the tokens before its first variable): the paths that start with that prefix, and
    those that leave it at a token boundary with a stored variable. Returns (ranges as sorted
    disjoint [lo, hi) pairs, flattened; the number of ground tokens of the pattern after its
    prefix). When that number is 0 the ranges are the trie match's candidates themselves."""
    ranges, later, _ = prefix_walk(trie, pattern)
    return ranges, later


@njit(types.Tuple((i64_arr, Int, Int))(StructureType, u8_ro), cache=True, nogil=True)
def prefix_walk(trie, pattern):
    """`prefix_ranges`, and the rank of the stored path equal to the whole pattern (-1 when
    none is): a ground pattern's walk ends at that path's leaf, so no second walk looks it up."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    out = np.empty(8, np.int64)
    n = 0
    node = 0
    offset, length = node_label(label_off, label_len, n_nodes, n_labels, 0)
    used = 0
    rank = 0
    pos = 0
    size = pattern.shape[0]
    reached = True
    while pos < size:
        tag = np.int64(pattern[pos])
        if is_variable_tag(tag):
            break
        payload = token_payload(tag)
        if payload < 0 or pos + 1 + payload > size:
            raise ValueError("the pattern is not one well-formed encoded atom")
        # A stored variable at this boundary takes the whole pattern term.
        if used < length:
            if is_variable_tag(np.int64(labels[offset + used])):
                out = _push_range(out, n, rank, rank + leaves_below(trie, node))
                n += 1
                reached = False
                break
        else:
            first, end = node_edges(child_start, n_nodes, n_edges, node)
            for edge in range(first, end):
                if is_variable_tag(np.int64(first_byte[edge])):
                    lo = rank + edge_rank(rank_offset, edge)
                    if edge + 1 < end:
                        hi = rank + edge_rank(rank_offset, edge + 1)
                    else:
                        hi = rank + leaves_below(trie, node)
                    if hi < lo:
                        raise CorruptTrieError("rank offsets are not increasing")
                    out = _push_range(out, n, lo, hi)
                    n += 1
        for k in range(pos, pos + 1 + payload):
            byte = pattern[k]
            if used < length:
                if labels[offset + used] != byte:
                    reached = False
                    break
                used += 1
            else:
                first, end = node_edges(child_start, n_nodes, n_edges, node)
                edge = find_edge(first_byte, first, end, byte)
                if edge < 0:
                    reached = False
                    break
                child = edge_child(children, n_nodes, node, edge)
                rank += edge_rank(rank_offset, edge)
                offset, length = node_label(label_off, label_len, n_nodes, n_labels, child)
                node = child
                if labels[offset] != byte:
                    raise CorruptTrieError("an edge's first byte disagrees with its label")
                used = 1
        if not reached:
            break
        pos += 1 + payload
    exact = -1
    if reached and node != 0:
        out = _push_range(out, n, rank, rank + leaves_below(trie, node))
        n += 1
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        if pos >= size and used == length and first == end:
            exact = rank
    elif reached:
        out = _push_range(out, n, 0, leaves_below(trie, 0))
        n += 1
    # Ground tokens after the prefix: only they can narrow the candidates further.
    later = 0
    while pos < size:
        tag = np.int64(pattern[pos])
        payload = token_payload(tag)
        if payload < 0:
            break
        if not is_variable_tag(tag):
            later += 1
        pos += 1 + payload
    starts = np.empty(n, np.int64)
    for i in range(n):
        starts[i] = out[2 * i]
    order = np.argsort(starts)
    ranges = np.empty(2 * n, np.int64)
    for i in range(n):
        ranges[2 * i] = out[2 * order[i]]
        ranges[2 * i + 1] = out[2 * order[i] + 1]
    return ranges, later, exact


# --- lookups in the stored arrays ---------------------------------------------------------


@njit(Int(u64_ro, Int, Int, Int), cache=True, nogil=True)
def lower_bound_rank(ranks, lo, hi, rank):
    """First index in ranks[lo:hi] (ascending) whose value is >= rank."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if packed_get(ranks, mid) < rank:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(Int(u32_ro, Int, Int, types.uint64), cache=True, nogil=True)
def lower_bound_key(keys, lo, hi, key):
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(Int(i64_ro, Int), cache=True, nogil=True)
def find_row(table, code):
    """Row of the position table with this code, or -1 (codes ascend; row 0 is the header)."""
    lo = 1
    end = min(table[H_ROWS] + 1, table.shape[0] // ROW)
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if table[mid * ROW + CODE] < code:
            lo = mid + 1
        else:
            hi = mid
    if lo < end and table[lo * ROW + CODE] == code:
        return lo
    return -1


@njit(types.UniTuple(Int, 2)(i64_ro, u32_ro, u64_ro, Int, Int, types.uint64), cache=True, nogil=True)
def key_postings(table, hashes, key_start, row, stride, key):
    """[lo, hi) of the postings of `key` at the position of `row` (lo == hi when absent)."""
    base = row * ROW
    if table[base + KEYED] == 0:
        return -1, -1
    key_lo = table[base + KEY_LO]
    key_hi = table[base + KEY_HI]
    fence_lo = table[base + FENCE_LO]
    fence_hi = table[base + FENCE_HI]
    post_hi = table[base + POST_HI]
    # A fence entry is every stride-th key, so the key lies in one block of `stride` keys.
    block = lower_bound_key(hashes, fence_lo, fence_hi, key + np.uint64(1)) - fence_lo - 1
    lo = key_lo + max(block, 0) * stride
    hi = min(lo + stride, key_hi)
    at = lower_bound_key(hashes, lo, hi, key)
    if at >= hi or hashes[at] != key:
        return 0, 0
    start = packed_get(key_start, at)
    end = packed_get(key_start, at + 1) if at + 1 < key_hi else post_hi
    if start < table[base + POST_LO] or end < start or end > post_hi:
        raise CorruptTrieError("argument index: key offsets out of range")
    return start, end


@njit(Int(u64_ro, Int, Int, i64_ro), cache=True, nogil=True)
def count_in_ranges(ranks, lo, hi, ranges):
    """How many of ranks[lo:hi] (ascending) fall in the sorted disjoint ranges."""
    total = 0
    for i in range(ranges.shape[0] // 2):
        a = lower_bound_rank(ranks, lo, hi, ranges[2 * i])
        b = lower_bound_rank(ranks, a, hi, ranges[2 * i + 1])
        total += b - a
    return total


@njit(Int(u64_ro, Int, Int, i64_ro, i64_arr, Int, Int), cache=True, nogil=True)
def gather_in_ranges(ranks, lo, hi, ranges, out, n, n_leaves):
    """Copy ranks[lo:hi] that fall in the ranges to out[n:] (room checked by the caller's
    count). Returns the new n."""
    for i in range(ranges.shape[0] // 2):
        a = lower_bound_rank(ranks, lo, hi, ranges[2 * i])
        b = lower_bound_rank(ranks, a, hi, ranges[2 * i + 1])
        if n + b - a > out.shape[0]:
            raise CorruptTrieError("argument index: more postings than counted")
        for j in range(a, b):
            rank = packed_get(ranks, j)
            if rank >= n_leaves:
                raise CorruptTrieError("argument index: rank out of range")
            out[n] = rank
            n += 1
    return n


# --- planning one pattern -----------------------------------------------------------------

# What `plan_pattern` chose.
USE_INDEX = 0  # gather the postings of one position
USE_RANGES = 1  # the prefix ranges are the candidates
USE_TRIE = 2  # walk the trie (ground tokens after the prefix narrow the walk)

_MAX_TABLE_ROWS = 1 << 24


@njit(i64_arr(i64_ro, i64_ro, types.boolean), cache=True, nogil=True)
def combine_ranges(a, b, intersect):
    """a ∩ b, or a minus b, for sorted disjoint flattened [lo, hi) pairs."""
    out = np.empty(max(8, a.shape[0] + b.shape[0]), np.int64)
    n = 0
    j = 0
    nb = b.shape[0] // 2
    for i in range(a.shape[0] // 2):
        lo = a[2 * i]
        hi = a[2 * i + 1]
        while j < nb and b[2 * j + 1] <= lo:
            j += 1
        k = j
        cursor = lo
        while k < nb and b[2 * k] < hi:
            b_lo = max(b[2 * k], lo)
            b_hi = min(b[2 * k + 1], hi)
            if intersect:
                out = _push_range(out, n, b_lo, b_hi)
                n += 1
            elif b_lo > cursor:
                out = _push_range(out, n, cursor, b_lo)
                n += 1
            cursor = b_hi
            k += 1
        if not intersect and cursor < hi:
            out = _push_range(out, n, cursor, hi)
            n += 1
    return out[: 2 * n].copy()


@njit(Int(i64_ro), cache=True, nogil=True)
def range_total(ranges):
    total = 0
    for i in range(ranges.shape[0] // 2):
        total += ranges[2 * i + 1] - ranges[2 * i]
    return total


@njit(types.UniTuple(Int, 2)(StructureType, u8_ro), cache=True, nogil=True)
def ground_lookup(trie, pattern):
    """For a pattern without variables: (how many stored paths may unify with it, the rank of
    the path equal to it or -1). One call, as the warm ground lookup makes it once a query."""
    ranges, _, rank = prefix_walk(trie, pattern)
    if ranges.shape[0] != 2:
        return range_total(ranges), -1
    lo = ranges[0]
    hi = ranges[1]
    if hi - lo != 1:
        return hi - lo, -1
    return 1, rank if rank == lo else -1


@njit(types.UniTuple(Int, 2)(i64_ro, Int), cache=True, nogil=True)
def _segment(table, at):
    """A [lo, hi) pair of the table, checked to be ordered (the caller bounds hi)."""
    lo = table[at]
    hi = table[at + 1]
    if lo < 0 or hi < lo:
        raise CorruptTrieError("argument index: segment out of order")
    return lo, hi


@njit(i64_arr(i64_ro, Int, Int), cache=True, nogil=True)
def _wild_segments(table, row, n_ranks):
    """[lo, hi) pairs of the rank lists that hold candidates whatever the key at `row`:
    variables and open expressions there, a variable at the parent position, bare variables."""
    segments = np.empty(8, np.int64)
    base = row * ROW
    segments[0], segments[1] = _segment(table, base + VAR_LO)
    segments[2], segments[3] = _segment(table, base + OPEN_LO)
    segments[4], segments[5] = _segment(table, H_TOP_LO)
    segments[6] = 0
    segments[7] = 0
    if table[base + CODE] & DEPTH2_MASK:
        parent = find_row(table, table[base + CODE] & ~DEPTH2_MASK)
        if parent < 0:
            segments[0] = -1  # inconsistent: the caller skips this position
            return segments
        segments[6], segments[7] = _segment(table, parent * ROW + VAR_LO)
    for i in range(4):
        if segments[2 * i + 1] > n_ranks:
            raise CorruptTrieError("argument index: segment out of range")
    return segments


@njit(Int(i64_ro), cache=True, nogil=True)
def check_header(table):
    """Rows of a table whose header is consistent with its length (else CorruptTrieError)."""
    if table.shape[0] < ROW:
        raise CorruptTrieError("argument index: table too short")
    rows = table[H_ROWS]
    cover_at = table[H_COVER_AT]
    cover_n = table[H_COVER_N]
    if rows < 0 or rows > _MAX_TABLE_ROWS or cover_n < 0 or table[H_STRIDE] < 1:
        raise CorruptTrieError("argument index: bad header")
    if cover_at != (rows + 1) * ROW or cover_at + 2 * cover_n != table.shape[0]:
        raise CorruptTrieError("argument index: table length disagrees with its header")
    return rows


@njit(
    types.Tuple((Int, Int, Int, Int, Int))(u8_ro, i64_ro, u32_ro, u64_ro, u64_ro, i64_ro, Int),
    cache=True,
    nogil=True,
)
def plan_pattern(pattern, table, hashes, key_start, ranks, ranges, later):
    """Choose how to find the candidates of `pattern` within `ranges`, its prefix ranges
    (`later`: its ground tokens after the prefix). Returns (choice, row, postings lo,
    postings hi, candidates): the candidates are exact for USE_INDEX and USE_RANGES, an
    upper bound for USE_TRIE."""
    check_header(table)
    total = range_total(ranges)
    cover = table[table[H_COVER_AT] :]
    covered = combine_ranges(ranges, cover, True)
    uncovered = range_total(ranges) - range_total(covered)
    capacity = pattern.shape[0] + 1
    codes = np.empty(capacity, np.int64)
    kinds = np.empty(capacity, np.int8)
    keys = np.empty(capacity, np.uint64)
    spare = np.empty(capacity, np.int64)
    n = path_entries(pattern, 0, pattern.shape[0], table[H_MAX_CHILD], 0, codes, kinds, keys, spare, 0)
    best_row = -1
    best_lo = 0
    best_hi = 0
    best = total
    n_ranks = packed_len(ranks)
    for i in range(max(n, 0)):
        if kinds[i] != GROUND:
            continue
        row = find_row(table, codes[i])
        if row < 0:
            continue
        lo, hi = key_postings(table, hashes, key_start, row, table[H_STRIDE], keys[i])
        if lo < 0:
            continue
        if hi > n_ranks:
            raise CorruptTrieError("argument index: postings out of range")
        segments = _wild_segments(table, row, n_ranks)
        if segments[0] < 0:
            continue
        count = uncovered + count_in_ranges(ranks, lo, hi, covered)
        for s in range(4):
            count += count_in_ranges(ranks, segments[2 * s], segments[2 * s + 1], covered)
        if count < best:
            best = count
            best_row = row
            best_lo = lo
            best_hi = hi
    if best_row >= 0:
        return USE_INDEX, best_row, best_lo, best_hi, best
    return USE_RANGES if later == 0 else USE_TRIE, -1, 0, 0, total


@njit(
    i64_arr(i64_ro, u64_ro, Int, Int, Int, i64_ro, Int),
    cache=True,
    nogil=True,
)
def gather_candidates(table, ranks, row, lo, hi, ranges, count):
    """The sorted ranks the chosen position gives within `ranges`: its postings slice, its
    wildcard lists, and every rank of `ranges` the index does not cover. `count` is the plan's
    estimate (the exact number, which bounds the output)."""
    n_leaves = table[H_LEAVES]
    cover = table[table[H_COVER_AT] :]
    covered = combine_ranges(ranges, cover, True)
    uncovered = combine_ranges(ranges, cover, False)
    out = np.empty(count, np.int64)
    n = 0
    if hi > packed_len(ranks):
        raise CorruptTrieError("argument index: postings out of range")
    n = gather_in_ranges(ranks, lo, hi, covered, out, n, n_leaves)
    segments = _wild_segments(table, row, packed_len(ranks))
    for s in range(4):
        if n + count_in_ranges(ranks, segments[2 * s], segments[2 * s + 1], covered) > count:
            raise CorruptTrieError("argument index: postings changed under a lookup")
        n = gather_in_ranges(ranks, segments[2 * s], segments[2 * s + 1], covered, out, n, n_leaves)
    for i in range(uncovered.shape[0] // 2):
        for rank in range(uncovered[2 * i], uncovered[2 * i + 1]):
            if n >= count:
                raise CorruptTrieError("argument index: postings changed under a lookup")
            out[n] = rank
            n += 1
    result = out[:n]
    result.sort()
    return result


@njit(i64_arr(i64_ro), cache=True, nogil=True)
def ranks_of_ranges(ranges):
    out = np.empty(range_total(ranges), np.int64)
    n = 0
    for i in range(ranges.shape[0] // 2):
        for rank in range(ranges[2 * i], ranges[2 * i + 1]):
            out[n] = rank
            n += 1
    return out


@njit(
    types.Tuple((Int, Int, i64_arr))(StructureType, u8_ro, i64_ro, u32_ro, u64_ro, u64_ro, types.boolean),
    cache=True,
    nogil=True,
)
def lookup(trie, pattern, table, hashes, key_start, ranks, gather):
    """Plan `pattern` and, with `gather`, collect its candidates: (choice, estimate, ranks).
    For USE_TRIE the ranks are left to the trie's match kernel (empty here)."""
    ranges, later = prefix_ranges(trie, pattern)
    most = np.iinfo(np.int64).max if gather else -1
    return planned_candidates(pattern, table, hashes, key_start, ranks, ranges, later, most)


@njit(
    types.Tuple((Int, Int, i64_arr))(u8_ro, i64_ro, u32_ro, u64_ro, u64_ro, i64_ro, Int, Int),
    cache=True,
    nogil=True,
)
def planned_candidates(pattern, table, hashes, key_start, ranks, ranges, later, most):
    """`lookup` for a pattern whose prefix ranges (and ground tokens after them) are known:
    (choice, estimate, ranks), the ranks gathered only when the estimate is at most `most`
    (empty otherwise, and for USE_TRIE, whose ranks are the trie's match kernel's)."""
    choice, row, lo, hi, estimate = plan_pattern(pattern, table, hashes, key_start, ranks, ranges, later)
    if choice == USE_TRIE or estimate > most:
        return choice, estimate, np.empty(0, np.int64)
    if choice == USE_INDEX:
        return choice, estimate, gather_candidates(table, ranks, row, lo, hi, ranges, estimate)
    return choice, estimate, ranks_of_ranges(ranges)


# --- validation ---------------------------------------------------------------------------


@njit(types.void(i64_ro, Int, Int, Int, Int), cache=True, nogil=True)
def check_table(table, n_hashes, n_key_start, n_ranks, n_leaves):
    """The O(rows) check at open: every segment of every row lies in its array and in order,
    codes ascend, the cover ranges are sorted and within the leaves. Lookups check the rest."""
    rows = check_header(table)
    if table[H_LEAVES] != n_leaves:
        raise CorruptTrieError("argument index: built for another trie")
    if n_key_start != n_hashes:
        raise CorruptTrieError("argument index: key offsets disagree with the keys")
    lo, hi = _segment(table, H_TOP_LO)
    if hi > n_ranks:
        raise CorruptTrieError("argument index: segment out of range")
    previous = 0
    for row in range(1, rows + 1):
        base = row * ROW
        if table[base + CODE] <= previous:
            raise CorruptTrieError("argument index: position codes do not ascend")
        previous = table[base + CODE]
        for field, limit in ((KEY_LO, n_hashes), (POST_LO, n_ranks), (VAR_LO, n_ranks),
                             (OPEN_LO, n_ranks), (FENCE_LO, n_hashes)):
            lo, hi = _segment(table, base + field)
            if hi > limit:
                raise CorruptTrieError("argument index: segment out of range")
        stride = table[H_STRIDE]
        n_keys = table[base + KEY_HI] - table[base + KEY_LO]
        if table[base + FENCE_HI] - table[base + FENCE_LO] != (n_keys + stride - 1) // stride:
            raise CorruptTrieError("argument index: fence disagrees with the keys")
    cover = table[table[H_COVER_AT] :]
    end = 0
    for i in range(cover.shape[0] // 2):
        if cover[2 * i] < end or cover[2 * i + 1] < cover[2 * i] or cover[2 * i + 1] > n_leaves:
            raise CorruptTrieError("argument index: cover ranges out of order")
        end = cover[2 * i + 1]


@njit(types.void(u64_ro, Int, Int, Int), cache=True, nogil=True)
def _check_ascending(ranks, lo, hi, n_leaves):
    previous = -1
    for j in range(lo, hi):
        rank = packed_get(ranks, j)
        if rank >= n_leaves or rank <= previous:
            raise CorruptTrieError("argument index: ranks out of order or out of range")
        previous = rank


@njit(types.void(i64_ro, u32_ro, u64_ro, u64_ro), cache=True, nogil=True)
def verify_index(table, hashes, key_start, ranks):
    """The full O(size) check (after check_table): keys strictly ascending with their fence,
    key offsets ascending within the postings, every rank list ascending and in range."""
    n_leaves = table[H_LEAVES]
    stride = table[H_STRIDE]
    _check_ascending(ranks, table[H_TOP_LO], table[H_TOP_HI], n_leaves)
    for row in range(1, table[H_ROWS] + 1):
        base = row * ROW
        key_lo = table[base + KEY_LO]
        key_hi = table[base + KEY_HI]
        post_lo = table[base + POST_LO]
        post_hi = table[base + POST_HI]
        for at in range(key_lo, key_hi):
            if at > key_lo and hashes[at] <= hashes[at - 1]:
                raise CorruptTrieError("argument index: keys out of order")
            if (at - key_lo) % stride == 0:
                if hashes[table[base + FENCE_LO] + (at - key_lo) // stride] != hashes[at]:
                    raise CorruptTrieError("argument index: fence disagrees with the keys")
            start = packed_get(key_start, at)
            end = packed_get(key_start, at + 1) if at + 1 < key_hi else post_hi
            if (at == key_lo and start != post_lo) or end <= start or end > post_hi:
                raise CorruptTrieError("argument index: key offsets out of order")
            _check_ascending(ranks, start, end, n_leaves)
        if key_lo == key_hi and post_lo != post_hi:
            raise CorruptTrieError("argument index: postings without keys")
        _check_ascending(ranks, table[base + VAR_LO], table[base + VAR_HI], n_leaves)
        _check_ascending(ranks, table[base + OPEN_LO], table[base + OPEN_HI], n_leaves)
