"""A join whose variables split apart (see trie.splitcount), counted or made into rows.

Per binding of the prefix, every group is walked once (walk_groups); counting, the answers
are the sum over the meeting variable's values of the product of the groups' counts. Making
rows, the groups have also recorded their answers, and the rows of a meeting value are the
cross product of the groups' records for it: each record of the first group, with each
combination of one record of the others' chains for its value, is an answer whose
multiplicity is the product of the records' (times the copies of the patterns on the prefix
alone), written that many times. So the work is that of the groups'
walks plus one write per answer, where the plain leapfrog walks every combination of the
groups' variables before it meets the last one (every 3-path of a 4-cycle).

Rows come out as one int64 array per column (`slot_column` gives each slot's column; the
meeting variable's is that of its slot in group 0), grouped by the prefix's values in id order,
then in the order of the first group's walk.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.leapfrog import FIELDS, narrow_constants, narrow_to, next_agreed
from metta_numba.trie.splitcount import clear_touched, walk_groups

Int = types.int64
i64_arr = types.Array(types.int64, 1, "C")
i64_2d = types.Array(types.int64, 2, "C")


@njit(
    Int(i64_arr, Int, i64_arr, i64_arr, i64_arr, i64_arr, Int, i64_arr, i64_arr, i64_arr, Int, Int, Int, i64_2d, Int,
        Int, i64_arr),
    cache=True, nogil=True, _nrt=False,
)
def emit_rows(records, first_used, head, live, acc, touched, n_touched, value, group_ends, slot_column, n_prefix,
              n_values, factor, out, n_rows, limit, chosen):
    """Write the rows of the records into out[:, n_rows:] (which has room for all of them, or
    for the `limit` > 0 of them) and clear what the walks left (clear_touched). Returns the
    rows written so far. `chosen` holds one record offset per group."""
    n_groups = group_ends.shape[0]
    meeting_column = slot_column[group_ends[0] - 1]
    stride = group_ends[0] - n_prefix + 1
    for r in range(0, first_used, stride):
        if limit > 0 and n_rows >= limit:
            break
        x = records[r]
        if not (live[x >> 6] >> (x & 63)) & 1:
            continue  # no other group met x
        chosen[0] = r
        complete = True
        for g in range(1, n_groups):
            chosen[g] = head[g * n_values + x] - 1
            complete = complete and chosen[g] >= 0
        while complete and (limit <= 0 or n_rows < limit):
            m = factor
            for g in range(n_groups):
                m *= records[chosen[g] + 1]
            if limit > 0:
                m = min(m, limit - n_rows)
            for _ in range(m):
                for s in range(n_prefix):
                    out[slot_column[s], n_rows] = value[s]
                out[meeting_column, n_rows] = x
                start = n_prefix
                for g in range(n_groups):
                    at = chosen[g] + 2
                    for s in range(start, group_ends[g] - 1):
                        out[slot_column[s], n_rows] = records[at + s - start]
                    start = group_ends[g]
                n_rows += 1
            # The next combination: the last group's chain moves first, as an odometer.
            g = n_groups - 1
            while g > 0:
                chosen[g] = records[chosen[g]] - 1
                if chosen[g] >= 0:
                    break
                chosen[g] = head[g * n_values + x] - 1
                g -= 1
            complete = g > 0
    clear_touched(acc, head, live, touched, n_touched, n_groups, n_values)
    return n_rows


@njit(
    types.Tuple((Int, i64_2d, Int))(
        i64_arr, i64_arr, i64_arr, Int, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, i64_arr, Int, Int, Int,
        Int, Int, Int, Int, Int,
    ),
    cache=True, nogil=True,
)
def split_join(arena, patterns, constants, max_width, var_parts, part_pattern, part_level, part_primary, pattern_group,
               group_ends, slot_column, n_prefix, counted, n_values, n_columns, want_rows, limit, first_from, first_to):
    """(answers counted with their multiplicities, rows: out[c, :n] is column c, n). With
    `want_rows` 0 only the count is made; `limit` > 0 stops after the prefix binding that
    reaches that many answers, and makes at most that many rows; only the prefix bindings
    whose first variable's value lies in [first_from, first_to) are joined (parts of one join
    for several threads; with no prefix, all of them). `n_values` is above every value id."""
    n_patterns = patterns.shape[0] // FIELDS
    n_slots = var_parts.shape[0] - 1
    n_groups = group_ends.shape[0]
    lo = np.zeros((n_slots + 1) * n_patterns, np.int64)
    hi = np.zeros((n_slots + 1) * n_patterns, np.int64)
    out = np.empty((n_columns, 64 if want_rows else 0), np.int64)
    if not narrow_constants(arena, patterns, constants, max_width, lo, hi):
        return 0, out, 0
    cursor = np.zeros(part_pattern.shape[0], np.int64)
    run_end = np.zeros(part_pattern.shape[0], np.int64)
    value = np.zeros(n_slots, np.int64)
    acc = np.zeros(n_groups * n_values, np.int64)
    head = np.zeros(n_groups * n_values if want_rows else 0, np.int64)
    live = np.zeros((n_values >> 6) + 1 if want_rows else 0, np.int64)
    records = np.empty(4096 if want_rows else 0, np.int64)
    touched = np.empty(n_values, np.int64)
    chosen = np.empty(n_groups, np.int64)
    total = 0
    n_rows = 0
    d = 0
    for k in range(var_parts[0], var_parts[1]):
        cursor[k] = lo[part_pattern[k]]
    while d >= 0:
        if n_prefix > 0:  # bind the prefix's variables as the plain leapfrog does
            first, last = var_parts[d], var_parts[d + 1]
            row_d = d * n_patterns
            x = next_agreed(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end, hi,
                            row_d, first_from if d == 0 else 0, first_to if d == 0 else 2**62)
            if x < 0:
                d -= 1
                continue
            if not narrow_to(arena, patterns, first, last, part_pattern, part_level, part_primary, cursor, run_end,
                             lo, hi, row_d, n_patterns, x):
                continue
            value[d] = x
            if d < n_prefix - 1:
                d += 1
                for k in range(var_parts[d], var_parts[d + 1]):
                    cursor[k] = lo[(d * n_patterns) + part_pattern[k]]
                continue
        while True:  # the groups' walks, once again with the room they need when the records lacked it
            found, factor, n_touched, first_used = walk_groups(
                arena, patterns, var_parts, part_pattern, part_level, part_primary, pattern_group, group_ends, cursor,
                run_end, lo, hi, value, acc, head, live, records, touched, n_prefix, counted, n_values, want_rows)
            if found >= 0:
                break
            clear_touched(acc, head, live, touched, n_touched, n_groups, n_values)
            records = np.empty(max(-found, 2 * records.shape[0]), np.int64)
        if want_rows:
            room = found if limit <= 0 else min(found, limit - n_rows)
            if n_rows + room > out.shape[1]:
                grown = np.empty((n_columns, max(2 * out.shape[1], n_rows + room)), np.int64)
                grown[:, :n_rows] = out[:, :n_rows]
                out = grown
            n_rows = emit_rows(records, first_used, head, live, acc, touched, n_touched, value, group_ends, slot_column,
                               n_prefix, n_values, factor, out, n_rows, limit, chosen)
        total += found
        if n_prefix == 0 or (limit > 0 and total >= limit):
            break
    return total, out, n_rows
