"""The answers of `metta-numba query`: one pattern or a conjunction `(, p1 p2 ...)` over a KB
(a PersistentKB or a ShardedKB), streamed by `answers` or counted by `count_answers`.

One pattern is read from the KB a chunk of candidates at a time (PersistentKB.iter_bindings),
so a reader that stops after N answers pays for about N, and it is counted from the kernels'
decisions without decoding values (PersistentKB.count_matches).

A conjunction goes through `conjunction_answers` and `conjunction_count`, the seam for the
worst-case-optimal join: only these two functions know how a conjunction is answered. Today
they run the step-by-step planner of space.conjunction (over a SnapshotSpace, as `match` in a
program does) for every step but the last, then stream the last step row by row (a --limit
stops it early) or count it without decoding. Once the KB has a join that returns a binding
table, `conjunction_answers` decodes that table a row at a time and `conjunction_count` is its
number of rows; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from metta_numba.atoms import Atom
from metta_numba.space.conjunction import conjuncts, joined_but_last
from metta_numba.space.snapshot import SnapshotSpace
from metta_numba.unify import Bindings, substitute

__all__ = ["answers", "conjunction_answers", "conjunction_count", "count_answers"]


def answers(kb, pattern: Atom) -> Iterator[Bindings]:
    """The bindings of every answer of `pattern` (a conjunction or one pattern), produced as
    they are read."""
    parts = conjuncts(pattern)
    if parts is None:
        return kb.iter_bindings(pattern)
    return conjunction_answers(kb, parts)


def count_answers(kb, pattern: Atom) -> int:
    """How many answers `answers(kb, pattern)` gives, without decoding what it can avoid."""
    parts = conjuncts(pattern)
    if parts is None:
        return kb.count_matches(pattern)
    return conjunction_count(kb, parts)


def conjunction_answers(kb, patterns: Sequence[Atom]) -> Iterator[Bindings]:
    """Answers of a conjunction: the planner's steps but the last, then the last one streamed
    for each row (the join seam: see the module docstring)."""
    rows, last = joined_but_last(SnapshotSpace(kb), patterns)
    if last is None:
        yield from rows
        return
    pattern = patterns[last]
    for row in rows:
        for found in kb.iter_bindings(substitute(pattern, row) if row else pattern):
            if row:
                merged = dict(row)
                merged.update(found)
                yield merged
            else:
                yield found


def conjunction_count(kb, patterns: Sequence[Atom]) -> int:
    """Number of answers of a conjunction; the last step is counted, not decoded (the join
    seam: see the module docstring)."""
    rows, last = joined_but_last(SnapshotSpace(kb), patterns)
    if last is None:
        return len(rows)
    pattern = patterns[last]
    return sum(kb.count_matches(substitute(pattern, row) if row else pattern) for row in rows)
