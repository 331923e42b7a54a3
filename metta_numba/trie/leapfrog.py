"""A worst-case-optimal join (Generic Join, in the leapfrog style) over sorted tables.

Each pattern of a conjunction reads one *view*: its relation's rows sorted lexicographically
by its columns in the order the join binds them (the columns holding constants first, then
its variables in the join's variable order). Levels of a view are its columns; the rows that
agree on levels 0..l-1 form one contiguous range, inside which level l is sorted. A view lives
in one int64 *arena*: column l of a view at `offset` with `n` rows is arena[offset + l*n :
offset + (l+1)*n], and its rows' multiplicities follow its last column.

The join binds the variables one at a time. For variable d, every pattern that mentions it
offers the values of its next level inside its current range; the values common to all of
them are found by leapfrogging (each cursor gallops to the largest value seen so far), and
for each one every such pattern's range narrows to the rows holding it. A variable a pattern
mentions twice narrows that pattern again at its second level. When all variables are bound
each pattern's range is one row, and the answer's multiplicity is the product of their counts.

The description of a query (all int64 arrays):
- `patterns`: FIELDS per pattern: view offset, rows, width (levels), leading constant levels,
  and the offset and length of the view's *directory* (-1, 0 for none): entry x is the first
  row whose level-0 value is >= x, so that level 0, the longest, is searched in one read;
- `constants`: `max_width` per pattern: the value of each constant level;
- `var_parts`: where each variable's participants start (n_vars + 1 entries), then per
  participant (`part_pattern`, `part_level`, `part_primary`): the pattern, its level, and
  1 for the first level of the variable in that pattern (leapfrogged), 0 for a repeat.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.walk import grown, grown_rows

Int = types.int64
i64_arr = types.Array(types.int64, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")
# The arena is the views' own array (store.join_views), writable: declaring it so spares every
# call the dispatcher's search for a conversion.
# Helpers that allocate nothing are compiled without the runtime's reference counts
# (`_nrt=False`) and called, not inlined: inlined, every array argument is counted up and
# down on each call (atomic operations), which took most of a triangle count's time.

FIELDS = 6
BEYOND = 2**62
"""Above every value id."""


@njit(Int(i64_arr, Int, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def _seek(arena, base, lo, hi, x):
    """The first index in [lo, hi) whose value arena[base + index] is >= x (hi when none),
    galloping from lo: a near value costs a few steps whatever the range's size."""
    if lo >= hi or arena[base + lo] >= x:
        return lo
    step = 1
    below = lo  # arena[base + below] < x
    while below + step < hi and arena[base + below + step] < x:
        below += step
        step *= 2
    top = min(below + step, hi)
    while top - below > 1:
        mid = (below + top) >> 1
        if arena[base + mid] < x:
            below = mid
        else:
            top = mid
    return top


@njit(Int(i64_arr, i64_arr, Int, Int, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def _seek_level(arena, patterns, p, level, lo, hi, x):
    """_seek in level `level` of pattern p's view, through its directory at level 0."""
    at = FIELDS * p
    n = patterns[at + 1]
    if level == 0 and patterns[at + 4] >= 0:
        length = patterns[at + 5]
        row = n if x >= length else (0 if x < 0 else arena[patterns[at + 4] + x])
        return min(max(row, lo), hi)
    return _seek(arena, patterns[at] + level * n, lo, hi, x)


@njit(Int(i64_arr, Int, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def _range_count(arena, base, lo, hi, counted):
    """The copies of the rows lo..hi-1 (their number when every row is held once)."""
    if not counted:
        return hi - lo
    total = 0
    for row in range(lo, hi):
        total += arena[base + row]
    return total


@njit(Int(i64_arr, Int, Int, Int, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def _common_count(arena, base0, i, end0, base1, j, end1):
    """How many values the sorted runs arena[base0+i:base0+end0] and arena[base1+j:base1+end1]
    (each without repeats) share: a merge without branches, whose steps cost the same
    whichever run advances."""
    found = 0
    while i < end0 and j < end1:
        a = arena[base0 + i]
        b = arena[base1 + j]
        found += a == b
        i += a <= b
        j += b <= a
    return found


u8_arr = types.Array(types.uint8, 1, "C")


@njit(types.void(i64_arr, u8_arr, Int, Int, Int, types.uint8), cache=True, nogil=True, _nrt=False)
def _set_marks(arena, marks, base, lo, hi, flag):
    """marks[v] = flag for each value v of arena[base+lo:base+hi]."""
    for row in range(lo, hi):
        marks[arena[base + row]] = flag


@njit(Int(i64_arr, u8_arr, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def _marked_count(arena, marks, base, lo, hi):
    """How many values of arena[base+lo:base+hi] are marked (values past the marks are not)."""
    found = 0
    size = marks.shape[0]
    for row in range(lo, hi):
        v = arena[base + row]
        if v < size:
            found += marks[v]
    return found


@njit(types.Tuple((i64_2d, i64_arr))(i64_2d, i64_arr, Int, i64_arr, Int), cache=True, nogil=True, inline="always")
def _append(rows, mult, n_rows, value, m):
    """rows and mult (grown when full) with the answer `value` of multiplicity m at n_rows."""
    rows = grown_rows(rows, n_rows + 1)
    mult = grown(mult, n_rows + 1)
    for j in range(value.shape[0]):
        rows[n_rows, j] = value[j]
    mult[n_rows] = m
    return rows, mult


@njit(types.boolean(i64_arr, i64_arr, i64_arr, Int, i64_arr, i64_arr), cache=True, nogil=True, _nrt=False)
def narrow_constants(arena, patterns, constants, max_width, lo, hi):
    """Row 0 of lo and hi: each pattern's range once its constant levels are read; False when
    one of them holds no row."""
    for p in range(patterns.shape[0] // FIELDS):
        offset, n, n_const = patterns[FIELDS * p], patterns[FIELDS * p + 1], patterns[FIELDS * p + 3]
        a, b = 0, n
        for level in range(n_const):
            x = constants[p * max_width + level]
            a = _seek_level(arena, patterns, p, level, a, b, x)
            if a >= b or arena[offset + level * n + a] != x:
                return False
            b = _seek_level(arena, patterns, p, level, a, b, x + 1)
        lo[p], hi[p] = a, b
    return True


@njit(Int(i64_arr, i64_arr, Int, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def pattern_count(arena, patterns, p, lo, hi, counted):
    """The copies of pattern p's rows lo..hi-1."""
    offset, n, width = patterns[FIELDS * p], patterns[FIELDS * p + 1], patterns[FIELDS * p + 2]
    return _range_count(arena, offset + width * n, lo, hi, counted)


@njit(
    Int(i64_arr, i64_arr, Int, Int, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int),
    cache=True, nogil=True, _nrt=False,
)
def next_agreed(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, hi, row_d,
                x_from, x_to):
    """The next value in [x_from, x_to) that every primary participant first..last-1 holds from
    its cursor on (the cursors left at it), -1 when there is none.

    Every primary cursor gallops to the largest value seen, until all agree. A pattern searched
    through its directory is only asked whether it holds x (two reads of the directory, none of
    its rows); when it does not, x moves on by one and the others gallop past it, so a long
    level costs nothing per value the others skip."""
    x = np.int64(0)  # ids are never negative
    directed = 0
    primaries = 0
    for k in range(first, last):
        if part_primary[k]:
            primaries += 1
            p = part_pattern[k]
            if cursor[k] >= hi[row_d + p]:
                return -1
            if part_level[k] == 0 and patterns[FIELDS * p + 4] >= 0:
                directed += 1
                continue
            v = arena[patterns[FIELDS * p] + part_level[k] * patterns[FIELDS * p + 1] + cursor[k]]
            if v > x:
                x = v
    if directed == primaries:  # only directories: start at the first row
        p = part_pattern[first]
        x = arena[patterns[FIELDS * p] + cursor[first]]
    if x < x_from:
        x = x_from
    while x < x_to:
        agreed = True
        for k in range(first, last):
            if part_primary[k]:
                p = part_pattern[k]
                level = part_level[k]
                at = _seek_level(arena, patterns, p, level, cursor[k], hi[row_d + p], x)
                if at >= hi[row_d + p]:
                    return -1
                if level == 0 and patterns[FIELDS * p + 4] >= 0:
                    end = _seek_level(arena, patterns, p, 0, at, hi[row_d + p], x + 1)
                    if end == at:
                        x += 1
                        agreed = False
                        break
                    cursor[k] = at
                    run_end[k] = end
                    continue
                cursor[k] = at
                v = arena[patterns[FIELDS * p] + level * patterns[FIELDS * p + 1] + at]
                if v > x:
                    x = v
                    agreed = False
        if agreed:
            return x
    return -1


@njit(
    types.boolean(i64_arr, i64_arr, Int, Int, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int,
                  Int, Int),
    cache=True, nogil=True, _nrt=False,
)
def narrow_to(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, lo, hi, row_d,
              n_patterns, x):
    """The ranges of row_d narrowed to the value x of the variable whose participants are
    first..last-1, into the next row; the cursors move past x. False when a repeat of the
    variable in some pattern does not hold x."""
    row_next = row_d + n_patterns
    for p in range(n_patterns):
        lo[row_next + p] = lo[row_d + p]
        hi[row_next + p] = hi[row_d + p]
    for k in range(first, last):
        if part_primary[k]:
            p = part_pattern[k]
            if part_level[k] != 0 or patterns[FIELDS * p + 4] < 0:
                run_end[k] = _seek_level(arena, patterns, p, part_level[k], cursor[k], hi[row_d + p], x + 1)
            lo[row_next + p] = cursor[k]
            hi[row_next + p] = run_end[k]
    ok = True
    for k in range(first, last):
        if not part_primary[k]:
            p = part_pattern[k]
            level = part_level[k]
            a = _seek_level(arena, patterns, p, level, lo[row_next + p], hi[row_next + p], x)
            if a >= hi[row_next + p] or arena[patterns[FIELDS * p] + level * patterns[FIELDS * p + 1] + a] != x:
                ok = False
                break
            lo[row_next + p] = a
            hi[row_next + p] = _seek_level(arena, patterns, p, level, a, hi[row_next + p], x + 1)
    for k in range(first, last):
        if part_primary[k]:
            cursor[k] = run_end[k]  # next time at this depth: past x
    return ok


@njit(
    types.Tuple((Int, i64_2d, i64_arr))(
        i64_arr, i64_arr, i64_arr, Int, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int, Int, Int
    ),
    cache=True,
    nogil=True,
)
def leapfrog_join(arena, patterns, constants, max_width, var_parts, part_pattern, part_level, part_primary,
                  limit, want_rows, counted, first_from, first_to):
    """(answers counted with their multiplicities, rows of variable values, multiplicity of
    each row). With `want_rows` 0 only the count is made; `limit` > 0 stops once that many
    answers are found; `counted` 0 says that every row is held once (no count is read); only
    the answers whose first variable's value lies in [first_from, first_to) are made (parts of
    one join for several threads). See the module docstring for the other arguments."""
    n_patterns = patterns.shape[0] // FIELDS
    n_vars = var_parts.shape[0] - 1
    lo = np.zeros((n_vars + 1) * n_patterns, np.int64)
    hi = np.zeros((n_vars + 1) * n_patterns, np.int64)
    rows = np.empty((16 if want_rows else 0, max(n_vars, 1)), np.int64)
    mult = np.empty(16 if want_rows else 0, np.int64)
    n_rows = 0
    total = 0
    if not narrow_constants(arena, patterns, constants, max_width, lo, hi):
        return 0, rows[:0], mult[:0]
    if n_vars == 0:
        m = 1
        for p in range(n_patterns):
            offset, n, width = patterns[FIELDS * p], patterns[FIELDS * p + 1], patterns[FIELDS * p + 2]
            m *= _range_count(arena, offset + width * n, lo[p], hi[p], counted)
        if m > 0 and want_rows:
            mult[0] = m
            return m, rows[:1], mult[:1]
        return m, rows[:0], mult[:0]
    cursor = np.zeros(part_pattern.shape[0], np.int64)
    run_end = np.zeros(part_pattern.shape[0], np.int64)
    value = np.zeros(n_vars, np.int64)
    for k in range(var_parts[0], var_parts[1]):
        cursor[k] = lo[part_pattern[k]]
    # A last variable that one pattern alone holds, at its last level (distinct values within
    # a range), takes the whole range at once: counted without a loop when no row repeats.
    first_last = var_parts[n_vars - 1]
    p_last = part_pattern[first_last]
    take_last = var_parts[n_vars] - first_last == 1 and part_level[first_last] == patterns[FIELDS * p_last + 2] - 1
    # Two patterns at their last levels, only counted: their common values by a merge.
    p_other = part_pattern[var_parts[n_vars] - 1]
    merge_last = (
        var_parts[n_vars] - first_last == 2 and not want_rows and not counted and limit <= 0
        and part_primary[first_last + 1] == 1
        and part_level[first_last] == patterns[FIELDS * p_last + 2] - 1
        and part_level[first_last + 1] == patterns[FIELDS * p_other + 2] - 1
    )
    # When one of the two does not mention the variable bound before the last, its range stays
    # the same while that variable runs through its values (in(a) of a triangle a-b-c, while b
    # runs through out(a)): its values are marked once in a dense array, and each range of the
    # other costs one look-up per row instead of a merge with it.
    base_last = patterns[FIELDS * p_last] + part_level[first_last] * patterns[FIELDS * p_last + 1]
    base_other = patterns[FIELDS * p_other] + part_level[first_last + 1] * patterns[FIELDS * p_other + 1]
    marked_p = -1
    if merge_last:
        marked_p = p_other
        for k in range(var_parts[max(n_vars - 2, 0)], var_parts[n_vars - 1]):
            if part_pattern[k] == p_other:
                marked_p = -1
        if patterns[FIELDS * p_other + 4] < 0:
            marked_p = -1
    marks = np.zeros(patterns[FIELDS * p_other + 5] if marked_p >= 0 else 0, np.uint8)
    mark_lo, mark_hi = 0, 0
    stop = False
    d = 0
    while d >= 0 and not stop:
        first, last = var_parts[d], var_parts[d + 1]
        row_d = d * n_patterns
        if d == n_vars - 1 and merge_last:
            if marked_p >= 0:
                if lo[row_d + p_other] != mark_lo or hi[row_d + p_other] != mark_hi:
                    _set_marks(arena, marks, base_other, mark_lo, mark_hi, 0)
                    mark_lo, mark_hi = lo[row_d + p_other], hi[row_d + p_other]
                    _set_marks(arena, marks, base_other, mark_lo, mark_hi, 1)
                total += _marked_count(arena, marks, base_last, lo[row_d + p_last], hi[row_d + p_last])
            else:
                total += _common_count(arena, base_last, lo[row_d + p_last], hi[row_d + p_last], base_other,
                                       lo[row_d + p_other], hi[row_d + p_other])
            d -= 1
            continue
        if d == n_vars - 1 and take_last:
            fixed = 1
            for p in range(n_patterns):
                if p != p_last:
                    offset, n, width = patterns[FIELDS * p], patterns[FIELDS * p + 1], patterns[FIELDS * p + 2]
                    fixed *= _range_count(arena, offset + width * n, lo[row_d + p], hi[row_d + p], counted)
            n = patterns[FIELDS * p_last + 1]
            base = patterns[FIELDS * p_last] + part_level[first_last] * n
            a, b = lo[row_d + p_last], hi[row_d + p_last]
            if fixed > 0 and not want_rows and (limit <= 0 or not counted):
                found = fixed * _range_count(arena, base + n, a, b, counted)
                if limit > 0 and total + found >= limit:
                    found = limit - total
                    stop = True
                total += found
            elif fixed > 0:
                for row in range(a, b):
                    m = fixed * (arena[base + n + row] if counted else 1)  # counts follow the last level
                    if m <= 0:
                        continue
                    total += m
                    if want_rows:
                        value[d] = arena[base + row]
                        rows, mult = _append(rows, mult, n_rows, value, m)
                        n_rows += 1
                    if limit > 0 and total >= limit:
                        stop = True
                        break
            d -= 1
            continue
        # Leapfrog, as next_agreed and narrow_to: written out here, where every step counts
        # (called, they pass a dozen arrays per step: triangles and 4-cliques 12-15% slower,
        # measured after the helpers lost their reference counting; inlined, each array is
        # reference-counted).
        found = False
        x = np.int64(0)  # ids are never negative
        exhausted = False
        directed = 0
        primaries = 0
        for k in range(first, last):
            if part_primary[k]:
                primaries += 1
                p = part_pattern[k]
                if cursor[k] >= hi[row_d + p]:
                    exhausted = True
                    break
                if part_level[k] == 0 and patterns[FIELDS * p + 4] >= 0:
                    directed += 1
                    continue
                v = arena[patterns[FIELDS * p] + part_level[k] * patterns[FIELDS * p + 1] + cursor[k]]
                if v > x:
                    x = v
        if directed == primaries and not exhausted:  # only directories: start at the first row
            p = part_pattern[first]
            x = arena[patterns[FIELDS * p] + cursor[first]]
        if d == 0 and x < first_from:
            x = first_from
        while not exhausted:
            if d == 0 and x >= first_to:
                break
            agreed = True
            for k in range(first, last):
                if part_primary[k]:
                    p = part_pattern[k]
                    level = part_level[k]
                    at = _seek_level(arena, patterns, p, level, cursor[k], hi[row_d + p], x)
                    if at >= hi[row_d + p]:
                        exhausted = True
                        break
                    if level == 0 and patterns[FIELDS * p + 4] >= 0:
                        end = _seek_level(arena, patterns, p, 0, at, hi[row_d + p], x + 1)
                        if end == at:
                            x += 1
                            agreed = False
                            break
                        cursor[k] = at
                        run_end[k] = end
                        continue
                    cursor[k] = at
                    v = arena[patterns[FIELDS * p] + level * patterns[FIELDS * p + 1] + at]
                    if v > x:
                        x = v
                        agreed = False
            if not exhausted and agreed:
                found = True
                break
        if not found:
            d -= 1
            continue
        row_next = row_d + n_patterns
        for p in range(n_patterns):
            lo[row_next + p] = lo[row_d + p]
            hi[row_next + p] = hi[row_d + p]
        for k in range(first, last):
            if part_primary[k]:
                p = part_pattern[k]
                if part_level[k] != 0 or patterns[FIELDS * p + 4] < 0:
                    run_end[k] = _seek_level(arena, patterns, p, part_level[k], cursor[k], hi[row_d + p], x + 1)
                lo[row_next + p] = cursor[k]
                hi[row_next + p] = run_end[k]
        ok = True
        for k in range(first, last):
            if not part_primary[k]:
                p = part_pattern[k]
                level = part_level[k]
                a = _seek_level(arena, patterns, p, level, lo[row_next + p], hi[row_next + p], x)
                if a >= hi[row_next + p] or arena[patterns[FIELDS * p] + level * patterns[FIELDS * p + 1] + a] != x:
                    ok = False
                    break
                lo[row_next + p] = a
                hi[row_next + p] = _seek_level(arena, patterns, p, level, a, hi[row_next + p], x + 1)
        for k in range(first, last):
            if part_primary[k]:
                cursor[k] = run_end[k]  # next time at this depth: past x
        if not ok:
            continue
        value[d] = x
        if d < n_vars - 1:
            d += 1
            for k in range(var_parts[d], var_parts[d + 1]):
                cursor[k] = lo[row_next + part_pattern[k]]
            continue
        m = 1
        for p in range(n_patterns):
            offset, n, width = patterns[FIELDS * p], patterns[FIELDS * p + 1], patterns[FIELDS * p + 2]
            m *= _range_count(arena, offset + width * n, lo[row_next + p], hi[row_next + p], counted)
        if m <= 0:
            continue
        total += m
        if want_rows:
            rows, mult = _append(rows, mult, n_rows, value, m)
            n_rows += 1
        if limit > 0 and total >= limit:
            break
    return total, rows[:n_rows], mult[:n_rows]
