"""Conjunctions `(, p1 p2 ...)` in `match`: a planner orders the patterns, and a join binds
their variables from one step to the next.

The order is chosen step by step. First, each pattern's estimated number of matches (the
space's own counts: the trie's prefix ranges and the argument index of a snapshot, the posting
lists of an in-memory space) picks the most selective pattern. After each step, every pattern
left is estimated again with the variables bound so far, substituted from a few sample rows
of the partial result: a pattern that shares a bound variable becomes a lookup by that value,
one that shares none keeps its full count. The cheapest one runs next, once per row.

Results do not depend on the order chosen: they are the same multiset whatever it is. The
rows come in the order the steps produced them; run in the written order (`order`), that is
the order of a left-to-right nested loop, which a space that keeps hyperon's answer order
(the in-memory one) uses for `match` instead of planning.

A space with a join of its own (a snapshot's `join`: store.join, a worst-case-optimal join in
kernels) answers `query_pattern(..., grouped=True)` with it: the same multiset, with the rows
grouped by the variables' values. The interpreter's `match` keeps the planner's order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol

from metta_numba.atoms import Atom, Expression, Symbol
from metta_numba.unify import Bindings, substitute

__all__ = ["COMMA", "conjuncts", "estimate", "joined_but_last", "match_conjunction", "query_pattern"]

COMMA = Symbol(",")
ESTIMATE_LIMIT = 100_000
"""A space without its own estimate is counted by its candidates, up to this many."""
SAMPLE_ROWS = 3


class Source(Protocol):
    """What the planner needs of a space: `query` (bindings of one pattern) and `candidates`;
    optionally `estimate(pattern)`, an upper bound of the matches from the space's counts."""

    def query(self, pattern: Atom) -> list[Bindings]: ...

    def candidates(self, pattern: Atom): ...


def conjuncts(pattern: Atom) -> list[Atom] | None:
    """The patterns of `(, p1 p2 ...)`, or None when `pattern` is no conjunction."""
    if type(pattern) is Expression and pattern.children and pattern.children[0] == COMMA:
        return list(pattern.children[1:])
    return None


def estimate(space: Source, pattern: Atom) -> int:
    """An upper bound of the matches of `pattern` in `space`, from its indexes when it has an
    estimate of its own, else by counting candidates (up to ESTIMATE_LIMIT)."""
    own = getattr(space, "estimate", None)
    if own is not None:
        return int(own(pattern))
    return sum(1 for _ in islice(space.candidates(pattern), ESTIMATE_LIMIT))


def query_pattern(space: Source, pattern: Atom, grouped: bool = False) -> list[Bindings]:
    """Bindings of a `match` pattern: a conjunction is planned and joined, any other pattern is
    one query. With `grouped`, a conjunction goes through the space's own join when it has one
    (see the module docstring)."""
    parts = conjuncts(pattern)
    if parts is None:
        return space.query(pattern)
    join = getattr(space, "join", None) if grouped else None
    found = join(parts) if join is not None else None
    return match_conjunction(space, parts) if found is None else found


def _sample(rows: list) -> list:
    """A few rows spread over the partial result, to estimate the next steps with."""
    if len(rows) <= SAMPLE_ROWS:
        return rows
    step = (len(rows) - 1) / (SAMPLE_ROWS - 1)
    return [rows[round(i * step)] for i in range(SAMPLE_ROWS)]


def _next_step(space: Source, patterns: Sequence[Atom], remaining: list[int], rows: list) -> int:
    """The remaining pattern with the fewest expected matches over all rows (ties: the one
    written first)."""
    if len(remaining) == 1:
        return remaining[0]
    sample = _sample(rows)
    best = remaining[0]
    best_cost = None
    for index in remaining:
        pattern = patterns[index]
        cost = sum(estimate(space, substitute(pattern, bindings) if bindings else pattern) for bindings in sample)
        if best_cost is None or cost < best_cost:
            best, best_cost = index, cost
    return best


def match_conjunction(
    space: Source,
    patterns: Sequence[Atom],
    order: Sequence[int] | None = None,
    trace: list[int] | None = None,
    rows: list[Bindings] | None = None,
) -> list[Bindings]:
    """Bindings of every way to match all `patterns` at once. `order` forces the order of the
    steps (a permutation of the pattern indices); by default the planner chooses it. The
    order taken is appended to `trace` when given. `rows`, when given, are bindings found
    already (by a join of other patterns), which the steps extend."""
    rows, last = joined_but_last(space, patterns, order, trace, rows)
    if last is None or not rows:
        return rows
    return join_step(space.query, patterns[last], rows)


def joined_but_last(
    space: Source,
    patterns: Sequence[Atom],
    order: Sequence[int] | None = None,
    trace: list[int] | None = None,
    rows: list[Bindings] | None = None,
) -> tuple[list[Bindings], int | None]:
    """Every step of `match_conjunction` but the last: (the rows joined so far, the index of
    the pattern left for the last step, None when there is none). A caller that streams or
    counts the last step itself (`metta-numba query`) never builds the full result."""
    patterns = list(patterns)
    if order is not None and sorted(order) != list(range(len(patterns))):
        raise ValueError("order must be a permutation of the pattern indices")
    rows = [{}] if rows is None else rows
    remaining = list(range(len(patterns)))
    while remaining and rows:
        index = order[len(patterns) - len(remaining)] if order is not None else None
        if index is None:
            index = _next_step(space, patterns, remaining, rows)
        remaining.remove(index)
        if trace is not None:
            trace.append(index)
        if not remaining:
            return rows, index
        rows = join_step(space.query, patterns[index], rows)
    return rows, None


def join_step(query, pattern: Atom, rows: list[dict]) -> list[dict]:
    """Extend each row of bindings by every answer of `query(pattern)` with the row applied:
    one step of a left-to-right join."""
    return list(extended_rows(query, pattern, rows))


def extended_rows(query, pattern: Atom, rows: Iterable[dict]) -> Iterator[dict]:
    """`join_step`'s rows one at a time, for a caller that may stop early."""
    for bindings in rows:
        for found in query(substitute(pattern, bindings) if bindings else pattern):
            if bindings:
                merged = dict(bindings)
                merged.update(found)
                yield merged
            else:
                yield found

