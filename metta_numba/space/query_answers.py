"""The answers of `metta-numba query`: one pattern or a conjunction `(, p1 p2 ...)` over a KB
(a PersistentKB or a ShardedKB), streamed by `answers` or counted by `count_answers`.

One pattern is read from the KB a chunk of candidates at a time (PersistentKB.iter_bindings),
so a reader that stops after N answers pays for about N, and it is counted from the kernels'
decisions without decoding values (PersistentKB.count_matches).

A conjunction goes through `conjunction_answers` and `conjunction_count`: over a PersistentKB
they are the KB's worst-case-optimal join (store.join: a binding table, decoded at the end,
counted without decoding, stopped early for a limit; its answers are grouped by the variables'
values, not in the planner's nested order). A ShardedKB has no join: there the step-by-step
planner of space.conjunction runs every step but the last, and the last step is streamed row by
row (a --limit stops it early) or counted without decoding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice

from metta_numba.atoms import Atom
from metta_numba.space.conjunction import conjuncts, extended_rows, joined_but_last
from metta_numba.space.snapshot import SnapshotSpace
from metta_numba.unify import Bindings, substitute

__all__ = ["answers", "conjunction_answers", "conjunction_count", "count_answers"]


def answers(kb, pattern: Atom, limit: int | None = None) -> Iterator[Bindings]:
    """The bindings of every answer of `pattern` (a conjunction or one pattern), produced as
    they are read; at most `limit` of them when given."""
    parts = conjuncts(pattern)
    found = kb.iter_bindings(pattern) if parts is None else conjunction_answers(kb, parts, limit)
    return found if limit is None else islice(found, limit)


def count_answers(kb, pattern: Atom) -> int:
    """How many answers `answers(kb, pattern)` gives, without decoding what it can avoid."""
    parts = conjuncts(pattern)
    if parts is None:
        return kb.count_matches(pattern)
    return conjunction_count(kb, parts)


def conjunction_answers(kb, patterns: Sequence[Atom], limit: int | None = None) -> Iterator[Bindings]:
    """Answers of a conjunction (see the module docstring); the join stops after `limit`."""
    if hasattr(kb, "join"):
        yield from kb.join(patterns, limit=limit).bindings()
        return
    rows, last = joined_but_last(SnapshotSpace(kb), patterns)
    if last is None:
        yield from rows
        return
    yield from extended_rows(kb.iter_bindings, patterns[last], rows)


def conjunction_count(kb, patterns: Sequence[Atom]) -> int:
    """Number of answers of a conjunction, counted without decoding (see the module docstring)."""
    if hasattr(kb, "join_count"):
        return kb.join_count(patterns)
    rows, last = joined_but_last(SnapshotSpace(kb), patterns)
    if last is None:
        return len(rows)
    pattern = patterns[last]
    return sum(kb.count_matches(substitute(pattern, row) if row else pattern) for row in rows)
