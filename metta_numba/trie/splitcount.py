"""Counting a join whose variables split apart once a few of them are bound.

Take the 4-cycle `(edge a b) (edge b c) (edge c d) (edge d a)`. Once `a` (the *prefix*) and
`c` (the *meeting* variable) are bound, `b` and `d` no longer share a pattern: the answers for
that (a, c) are every b times every d. So instead of visiting each 3-step path a-b-c and
intersecting for d, the count is, per binding of the prefix, the sum over c of the product of
each independent part's count for that c. Each part (a *group*: its variables, then the
meeting variable last) is enumerated on its own by the leapfrog steps of trie.leapfrog, adding
its multiplicities into a dense accumulator indexed by c's value id; the first group's
accumulator also lists the values it touched, so that the sum and the reset cost only those.

The kernel reads the arguments of leapfrog_join, with the variables replaced by *slots*: the
prefix variables first (slots 0..n_prefix-1), then per group its variables and a slot of its
own for the meeting variable, last (group g owns slots group_ends[g-1]..group_ends[g]-1, the
first group starting at n_prefix). Each pattern belongs to one group (`pattern_group`), or to
none (-1) when it mentions only prefix variables; its view's levels follow its slots.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.leapfrog import BEYOND, FIELDS, narrow_constants, narrow_to, next_agreed, pattern_count

Int = types.int64
i64_arr = types.Array(types.int64, 1, "C")


Pair = types.UniTuple(Int, 2)


@njit(
    Pair(i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr,
         i64_arr, Int, Int, Int, Int, Int, Int),
    cache=True, nogil=True, _nrt=False,
)
def accumulate_group(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group, cursor,
                     run_end, lo, hi, acc, touched, n_touched, g, start, end, counted, n_values):
    """Add the answers of group g (slots start..end-1, the meeting variable last) into
    acc[g * n_values + value of the meeting variable], from the ranges in row `start` of lo
    and hi. Group 0 adds everywhere and lists each value it is first to touch in `touched`
    (after its n_touched first entries); the others add only where group 0 has answers
    (elsewhere the product is 0 anyway). Returns (answers added, entries of touched)."""
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
                    value = arena[level_at + row]
                    if g == 0:
                        if acc[value] == 0:
                            touched[n_touched] = value
                            n_touched += 1
                    elif acc[value] == 0:
                        continue
                    m = fixed * (arena[level_at + n + row] if counted else 1)  # counts follow the last level
                    acc[base_acc + value] += m
                    added += m
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
    return added, n_touched


@njit(
    Int(i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr,
        i64_arr, i64_arr, Int, Int, Int),
    cache=True, nogil=True, _nrt=False,
)
def groups_count(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group, group_ends,
                 cursor, run_end, lo, hi, acc, touched, n_prefix, counted, n_values):
    """The answers for the prefix binding whose ranges are row n_prefix of lo and hi: the
    prefix-only patterns' copies times the sum over the meeting variable's values of the
    product of the groups' counts. Leaves acc all zero."""
    n_patterns = patterns.shape[0] // FIELDS
    row = n_prefix * n_patterns
    factor = 1
    for p in range(n_patterns):
        if pattern_group[p] < 0:
            factor *= pattern_count(arena, patterns, p, lo[row + p], hi[row + p], counted)
    if factor <= 0:
        return 0
    n_groups = group_ends.shape[0]
    n_touched = 0
    start = n_prefix
    for g in range(n_groups):
        if g > 0:
            start = group_ends[g - 1]
            for p in range(n_patterns):  # each group starts from the prefix's ranges
                lo[start * n_patterns + p] = lo[row + p]
                hi[start * n_patterns + p] = hi[row + p]
        added, n_touched = accumulate_group(arena, patterns, var_parts, part_pattern, part_level, part_primary,
                                            pattern_group, cursor, run_end, lo, hi, acc, touched, n_touched, g, start,
                                            group_ends[g], counted, n_values)
        if added == 0:
            break  # no answer for this prefix binding (the values touched are still reset below)
    total = 0
    for i in range(n_touched):
        value = touched[i]
        product = 1
        for g in range(n_groups):
            product *= acc[g * n_values + value]
            acc[g * n_values + value] = 0
        total += product
    return factor * total


@njit(
    Int(i64_arr, i64_arr, i64_arr, Int, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int, Int,
        Int),
    cache=True, nogil=True,
)
def split_count(arena, patterns, constants, max_width, var_parts, part_pattern, part_level, part_primary,
                pattern_group, group_ends, n_prefix, counted, n_values, first_from, first_to):
    """How many answers the join has (see the module docstring), counting only the prefix
    bindings whose first variable's value lies in [first_from, first_to) (parts of one count
    for several threads; with no prefix, all of them). `n_values` is above every value id."""
    n_patterns = patterns.shape[0] // FIELDS
    n_slots = var_parts.shape[0] - 1
    lo = np.zeros((n_slots + 1) * n_patterns, np.int64)
    hi = np.zeros((n_slots + 1) * n_patterns, np.int64)
    if not narrow_constants(arena, patterns, constants, max_width, lo, hi):
        return 0
    cursor = np.zeros(part_pattern.shape[0], np.int64)
    run_end = np.zeros(part_pattern.shape[0], np.int64)
    acc = np.zeros(group_ends.shape[0] * n_values, np.int64)
    touched = np.empty(n_values, np.int64)
    if n_prefix == 0:
        return groups_count(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group,
                            group_ends, cursor, run_end, lo, hi, acc, touched, 0, counted, n_values)
    total = 0
    d = 0
    for k in range(var_parts[0], var_parts[1]):
        cursor[k] = lo[part_pattern[k]]
    while d >= 0:
        first, last = var_parts[d], var_parts[d + 1]
        row_d = d * n_patterns
        x = next_agreed(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, hi,
                        row_d, first_from if d == 0 else 0, first_to if d == 0 else BEYOND)
        if x < 0:
            d -= 1
            continue
        if not narrow_to(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, lo, hi,
                         row_d, n_patterns, x):
            continue
        if d < n_prefix - 1:
            d += 1
            for k in range(var_parts[d], var_parts[d + 1]):
                cursor[k] = lo[(d * n_patterns) + part_pattern[k]]
            continue
        total += groups_count(arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group,
                              group_ends, cursor, run_end, lo, hi, acc, touched, n_prefix, counted, n_values)
    return total
