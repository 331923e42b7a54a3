"""Walking the groups of a join whose variables split apart once a few of them are bound.

Take the 4-cycle `(edge a b) (edge b c) (edge c d) (edge d a)`. Once `a` (the *prefix*) and
`c` (the *meeting* variable) are bound, `b` and `d` no longer share a pattern: the answers for
that (a, c) are every b times every d. So instead of visiting each 3-step path a-b-c and
intersecting for d, each independent part (a *group*: its variables, then the meeting variable
last) is enumerated on its own by the leapfrog steps of trie.leapfrog, once per binding of the
prefix. The walk adds its multiplicities into a dense accumulator indexed by c's value id, so
that the count for the prefix binding is the sum over c of the product of the groups' counts;
the first group's walk also lists the values it touched, so that the sum and the reset cost
only those. To make rows rather than a count (trie.splitrows), each group's answers are also
*recorded* (the group's values and multiplicity): the first group's one after the other, the
others' as a chain per meeting value, linked through `head`, so that each record of the first
group finds the records it combines with in one look-up per other group. Most of the first
group's records meet nothing (most 2-paths from a do not close a 4-cycle): a bit per value,
`live`, set where another group recorded, answers for them from a few cache lines where `head`
would cost a miss each.

The kernels read the arguments of leapfrog_join, with the variables replaced by *slots*: the
prefix variables first (slots 0..n_prefix-1), then per group its variables and a slot of its
own for the meeting variable, last (group g owns slots group_ends[g-1]..group_ends[g]-1, the
first group starting at n_prefix). Each pattern belongs to one group (`pattern_group`), or to
none (-1) when it mentions only prefix variables; its view's levels follow its slots.
A record of group g is `group_ends[g] - start + 1` ints: for the first group the meeting
value, for the others the offset of the next record of its chain plus one (0 at the end);
then its multiplicity and the values of the group's variables (its slots but the meeting
one). The first group's records come first. `head` holds offsets plus one too, so that a
fresh, zeroed array is empty: its pages are only mapped once written, where an array of -1
would cost a write per value id of the KB at every call.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.leapfrog import BEYOND, FIELDS, narrow_to, next_agreed, pattern_count

Int = types.int64
i64_arr = types.Array(types.int64, 1, "C")
Triple = types.UniTuple(Int, 3)


@njit(Int(i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int, Int, Int, Int), cache=True, nogil=True,
      inline="always")
def _record(records, head, live, value, used, key, x, start, end, m):
    """A record of a group's values value[start..end-2] with multiplicity m at records[used:],
    for the meeting value x: in the first group (key < 0) the record holds x, in the others it
    is chained under head[key] and x's bit of `live` is set. Returns the offset after it; past
    the end of records, nothing is written (the walk goes on, to learn the room it needs)."""
    at = used
    if at + end - start + 1 > records.shape[0]:
        return at + end - start + 1
    records[at + 1] = m
    for i in range(end - 1 - start):
        records[at + 2 + i] = value[start + i]
    if key < 0:
        records[at] = x
    else:
        records[at] = head[key]
        head[key] = at + 1
        live[x >> 6] |= np.int64(1) << (x & 63)
    return at + end - start + 1


@njit(
    Triple(i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr,
           i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int, Int, Int, Int, Int, Int),
    cache=True, nogil=True, _nrt=False,
)
def walk_group(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group, cursor, run_end, lo,
               hi, value, acc, head, live, records, touched, used, n_touched, g, start, end, counted, n_values,
               record):
    """Add the answers of group g (slots start..end-1, the meeting variable last) into
    acc[g * n_values + value of the meeting variable], from the ranges in row `start` of lo
    and hi; with `record`, also chain a record of each (from records[used:]). Group 0 adds
    everywhere and lists each value it is first to touch in `touched` (after its n_touched
    first entries); the others add only where group 0 has answers (elsewhere the product is 0
    anyway). Returns (answers added, the records' end, past records when they lacked room,
    entries of touched)."""
    n_patterns = patterns.shape[0] // FIELDS
    base_acc = g * n_values
    added = 0
    # The meeting variable held by one pattern alone at its last level takes its whole range.
    first_last = var_parts[end - 1]
    p_last = part_pattern[first_last]
    take_last = var_parts[end] - first_last == 1 and part_level[first_last] == patterns[FIELDS * p_last + 2] - 1
    d = start
    for k in range(var_parts[d], var_parts[d + 1]):
        cursor[k] = lo[d * n_patterns + part_pattern[k]]
    while d >= start:
        first, last = var_parts[d], var_parts[d + 1]
        row_d = d * n_patterns
        if d == end - 1 and take_last:
            fixed = 1
            for p in range(n_patterns):
                if pattern_group[p] == g and p != p_last:
                    fixed *= pattern_count(arena, patterns, p, lo[row_d + p], hi[row_d + p], counted)
            n = patterns[FIELDS * p_last + 1]
            level_at = patterns[FIELDS * p_last] + part_level[first_last] * n
            if fixed > 0:
                for row in range(lo[row_d + p_last], hi[row_d + p_last]):
                    x = arena[level_at + row]
                    if g == 0:
                        if acc[x] == 0:
                            touched[n_touched] = x
                            n_touched += 1
                    elif acc[x] == 0:
                        continue
                    m = fixed * (arena[level_at + n + row] if counted else 1)  # counts follow the last level
                    acc[base_acc + x] += m
                    added += m
                    if record:
                        used = _record(records, head, live, value, used, base_acc + x if g else -1, x, start, end, m)
            d -= 1
            continue
        x = next_agreed(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, hi,
                        row_d, 0, BEYOND)
        if x < 0:
            d -= 1
            continue
        if not narrow_to(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, lo, hi,
                         row_d, n_patterns, x):
            continue
        value[d] = x
        row_next = row_d + n_patterns
        if d < end - 1:
            d += 1
            for k in range(var_parts[d], var_parts[d + 1]):
                cursor[k] = lo[row_next + part_pattern[k]]
            continue
        if g == 0:
            if acc[x] == 0:
                touched[n_touched] = x
                n_touched += 1
        elif acc[x] == 0:
            continue
        m = 1
        for p in range(n_patterns):
            if pattern_group[p] == g:
                m *= pattern_count(arena, patterns, p, lo[row_next + p], hi[row_next + p], counted)
        acc[base_acc + x] += m
        added += m
        if record:
            used = _record(records, head, live, value, used, base_acc + x if g else -1, x, start, end, m)
    return added, used, n_touched


@njit(
    types.UniTuple(Int, 4)(i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr,
                           i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int,
                           Int),
    cache=True, nogil=True, _nrt=False,
)
def walk_groups(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group, group_ends, cursor,
                run_end, lo, hi, value, acc, head, live, records, touched, n_prefix, counted, n_values, record):
    """Every group's walk for the prefix binding whose ranges are row n_prefix of lo and hi:
    (the answers: the prefix-only patterns' copies times the sum over the meeting variable's
    values of the product of the groups' counts, or minus the room the records need when they
    lacked it; that factor;
    the entries of touched; the end of the first group's records). Counting only (`record` 0),
    acc is left all zero; recording, acc and the records stay for the rows to be made from them
    (and cleared, by clear_touched)."""
    n_patterns = patterns.shape[0] // FIELDS
    row = n_prefix * n_patterns
    factor = 1
    for p in range(n_patterns):
        if pattern_group[p] < 0:
            factor *= pattern_count(arena, patterns, p, lo[row + p], hi[row + p], counted)
    if factor <= 0:
        return 0, factor, 0, 0
    n_groups = group_ends.shape[0]
    n_touched = 0
    used = 0
    first_used = 0
    start = n_prefix
    for g in range(n_groups):
        if g > 0:
            start = group_ends[g - 1]
            for p in range(n_patterns):  # each group starts from the prefix's ranges
                lo[start * n_patterns + p] = lo[row + p]
                hi[start * n_patterns + p] = hi[row + p]
        added, used, n_touched = walk_group(arena, patterns, var_parts, part_pattern, part_level, part_primary,
                                            pattern_group, cursor, run_end, lo, hi, value, acc, head, live, records,
                                            touched, used, n_touched, g, start, group_ends[g], counted, n_values,
                                            record)
        if g == 0:
            first_used = used
        if added == 0:
            break  # no answer for this prefix binding (the values touched are still reset)
    if used > records.shape[0]:
        return -used, factor, n_touched, first_used
    total = 0
    for i in range(n_touched):
        x = touched[i]
        product = 1
        for g in range(n_groups):
            product *= acc[g * n_values + x]
            if not record:
                acc[g * n_values + x] = 0
        total += product
    return factor * total, factor, n_touched if record else 0, first_used


@njit(types.void(i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int), cache=True, nogil=True, _nrt=False)
def clear_touched(acc, head, live, touched, n_touched, n_groups, n_values):
    """acc, the chains' heads and `live` back to zero at every value touched (the
    only ones the walks record)."""
    for i in range(n_touched):
        x = touched[i]
        live[x >> 6] = 0
        for g in range(n_groups):
            acc[g * n_values + x] = 0
            head[g * n_values + x] = 0
