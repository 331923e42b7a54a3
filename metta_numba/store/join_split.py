"""The kernel arguments of a join: its patterns' views and the slots their variables fill, for
the plain leapfrog (trie.leapfrog) and for the split join (trie.splitcount, trie.splitrows).

A *split* of a conjunction is a set of prefix variables and a meeting variable such that,
once they are bound, the other variables fall into two or more groups that share no pattern,
each group reaching the meeting variable through its patterns: the 4-cycle
`(edge $a $b) (edge $b $c) (edge $c $d) (edge $d $a)` splits with prefix `a` and meeting `c`
into {b} and {d}. Its count is then a sum over the meeting variable's values of a product
of the groups' counts, and its rows per meeting value the cross product of the groups' rows
(see trie.splitrows), instead of one walk over every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from metta_numba.atoms import Variable
from metta_numba.store.join_views import JoinViews
from metta_numba.trie.leapfrog import FIELDS

SlotsOf = Callable[[int, Variable], int]
"""The slot a pattern's variable fills: (pattern index, variable) -> slot."""


def describe(views: JoinViews, planned: Sequence, slot_of: SlotsOf, n_slots: int) -> tuple:
    """(patterns, constants, max_width, var_parts, part_pattern, part_level, part_primary,
    counted) for the kernels: each pattern read through its relation's view sorted by its
    constant columns, then its variable columns in the order of their slots."""
    max_width = max(s.relation.cells.shape[1] for s in planned)
    described = np.zeros(FIELDS * len(planned), np.int64)
    constants = np.zeros(len(planned) * max_width, np.int64)
    parts: list[list[tuple[int, int, int]]] = [[] for _ in range(n_slots)]
    for p, step in enumerate(planned):
        fixed = sorted(step.constants)
        free = sorted(step.variables, key=lambda c, p=p, step=step: (slot_of(p, step.variables[c]), c))
        columns = tuple(fixed + free)
        offset, n, directory, known = views.view(step.relation, columns)
        described[FIELDS * p : FIELDS * (p + 1)] = (offset, n, len(columns), len(fixed), directory, known)
        for level, column in enumerate(fixed):
            constants[p * max_width + level] = step.constants[column]
        seen = set()
        for level, column in enumerate(columns[len(fixed):], start=len(fixed)):
            v = step.variables[column]
            parts[slot_of(p, v)].append((p, level, int(v not in seen)))
            seen.add(v)
    flat = [part for slot_parts in parts for part in slot_parts]
    starts = np.zeros(n_slots + 1, np.int64)
    np.cumsum([len(slot_parts) for slot_parts in parts], out=starts[1:])
    part_array = np.array(flat, np.int64).reshape(-1, 3)
    counted = int(any(step.relation.repeats for step in planned))
    return (described, constants, max_width, starts, np.ascontiguousarray(part_array[:, 0]),
            np.ascontiguousarray(part_array[:, 1]), np.ascontiguousarray(part_array[:, 2]), counted)


class Split:
    """A split of a conjunction: `prefix` variables, the `meeting` variable, each group's
    variables in the order they are bound, and each pattern's group (-1: prefix only)."""

    __slots__ = ("prefix", "meeting", "groups", "pattern_group")

    def __init__(self, prefix: list[Variable], meeting: Variable, groups: list[list[Variable]],
                 pattern_group: list[int]) -> None:
        self.prefix = prefix
        self.meeting = meeting
        self.groups = groups
        self.pattern_group = pattern_group


def find_split(planned: Sequence, var_order: list[Variable]) -> Split | None:
    """The split with the fewest prefix variables (none or one), then the most groups; among
    equals the one whose variables come first in `var_order`. None when no choice splits
    into groups that each start from a prefix variable or a constant (see _anchored)."""
    holders = [set(step.variables.values()) for step in planned]
    constant = [bool(step.constants) for step in planned]
    best: Split | None = None
    for prefix in [[]] + [[v] for v in var_order]:
        for meeting in var_order:
            if meeting in prefix:
                continue
            found = _split_at(holders, var_order, prefix, meeting)
            if found is not None and not _anchored(found, holders, constant):
                found = None
            if found is not None and (best is None or len(found.groups) > len(best.groups)):
                best = found
        if best is not None:
            break
    if best is None:
        return None
    best.groups = [_group_order(planned, best, g) for g in range(len(best.groups))]
    return best


def _anchored(split: Split, holders: list[set], constant: list[bool]) -> bool:
    """Whether each group starts from what is bound before it: a pattern of the group holds a
    prefix variable or a constant. A group that does not would be enumerated whole, for every
    prefix binding, where the plain join only follows what the anchors reach (the tail d-e of
    a path from a constant n-b-c-d-e split at c). When the query has constants, each prefix
    variable must share a pattern with one, for the same reason. Without prefix and constants
    nothing is anchored and both enumerate everything: the split is then no worse."""
    if not split.prefix and not any(constant):
        return True
    prefix = set(split.prefix)
    if any(constant) and not all(any(c and v in held for c, held in zip(constant, holders)) for v in prefix):
        return False  # a prefix variable far from the constants would run through every value
    return all(
        any(group == g and (constant[i] or holders[i] & prefix) for i, group in enumerate(split.pattern_group))
        for g in range(len(split.groups))
    )


def _split_at(holders: list[set], var_order: list[Variable], prefix: list[Variable], meeting: Variable):
    """The split with these prefix and meeting variables, None when fewer than two groups
    remain or a group's patterns never reach the meeting variable."""
    bound = set(prefix) | {meeting}
    rest = [v for v in var_order if v not in bound]
    group_of: dict[Variable, int] = {}
    groups: list[list[Variable]] = []
    for v in rest:  # connected parts of the rest, through the patterns' shared variables
        if v in group_of:
            continue
        group_of[v] = len(groups)
        members, frontier = [v], [v]
        while frontier:
            u = frontier.pop()
            for held in holders:
                if u in held:
                    for w in held - bound:
                        if w not in group_of:
                            group_of[w] = len(groups)
                            members.append(w)
                            frontier.append(w)
        groups.append(members)
    if len(groups) < 2:
        return None
    pattern_group = []
    reaches = [False] * len(groups)
    for held in holders:
        free = held - bound
        if free:
            g = group_of[next(iter(free))]
        else:
            g = 0 if meeting in held else -1  # a pattern on the meeting variable filters group 0
        pattern_group.append(g)
        if g >= 0 and meeting in held:
            reaches[g] = True
    if not all(reaches):
        return None
    return Split(list(prefix), meeting, groups, pattern_group)


def _group_order(planned: Sequence, split: Split, g: int) -> list[Variable]:
    """Group g's variables in binding order: each time, one sharing a pattern with those bound
    (the prefix's and the group's), the one in the smallest pattern, then in most patterns."""
    mine = [s for s, group in zip(planned, split.pattern_group) if group == g]
    bound = set(split.prefix)
    order: list[Variable] = []
    left = list(split.groups[g])
    while left:
        def key(v: Variable) -> tuple:
            held = [s for s in mine if v in s.variables.values()]
            linked = any(u in bound for s in held for u in s.variables.values())
            return (not linked, min(s.size for s in held), -len(held))

        chosen = min(left, key=key)
        left.remove(chosen)
        order.append(chosen)
        bound.add(chosen)
    return order


def split_args(views: JoinViews, planned: Sequence, split: Split, columns: Sequence[Variable]) -> tuple:
    """The arguments of trie.splitrows.split_join for `split` (up to n_values): the kernel's
    slots are the prefix, then each group and its meeting slot; `columns` orders the rows'
    columns (every variable of the split, each once)."""
    slots: dict[tuple[int, Variable], int] = {}
    column_of = {v: j for j, v in enumerate(columns)}
    slot_column = []
    for i, v in enumerate(split.prefix):
        for g in range(len(split.groups)):
            slots[g, v] = i
        slot_column.append(column_of[v])
    group_ends = []
    at = len(split.prefix)
    for g, members in enumerate(split.groups):
        for v in members + [split.meeting]:
            slots[g, v] = at
            slot_column.append(column_of[v])
            at += 1
        group_ends.append(at)

    def slot_of(p: int, v: Variable) -> int:
        return slots[max(split.pattern_group[p], 0), v]

    (described, constants, max_width, starts, part_pattern, part_level, part_primary,
     counted) = describe(views, planned, slot_of, at)
    return (described, constants, max_width, starts, part_pattern, part_level, part_primary,
            np.array(split.pattern_group, np.int64), np.array(group_ends, np.int64),
            np.array(slot_column, np.int64), len(split.prefix), counted)
