"""Integers and floats of one value are one number: `3` unifies with `3.0` (as in hyperon).

In memory that follows from atom equality. A snapshot, though, stores each number in its own
encoding (an i64 and an f64 give different bytes), so its trie and argument index find only the
representation that a pattern spells. A pattern holding a whole number is therefore also
probed with that number in its other representation; when it holds too many of them, they are
all widened to variables for the probe instead (a superset of candidates, which exact
unification then filters).
"""

from __future__ import annotations

import itertools

from metta_numba.atoms import Atom, Expression, Grounded, Variable

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

MAX_VARIANTS = 8
"""The most patterns a probe is split into (2**k for k whole numbers) before widening."""


def other_form(value: object) -> int | float | None:
    """The same number in the other representation, or None when it has none (a float that is
    not whole, an integer a float cannot hold exactly, a Bool, anything else)."""
    t = type(value)
    if t is int:
        as_float = float(value)
        return as_float if int(as_float) == value else None
    if t is float and value.is_integer() and I64_MIN <= value <= I64_MAX:
        return int(value)
    return None


def _dual(atom: Atom) -> bool:
    return type(atom) is Grounded and other_form(atom.value) is not None


def dual_count(pattern: Atom) -> int:
    """How many numbers of `pattern` have a second representation."""
    count = 0
    stack = [pattern]
    while stack:
        atom = stack.pop()
        if type(atom) is Expression:
            stack.extend(atom.children)
        elif _dual(atom):
            count += 1
    return count


def _spell(atom: Atom, choices) -> Atom:
    """`atom` with each dual number taken from `choices` (an iterator over replacements)."""
    if type(atom) is Expression:
        return Expression([_spell(child, choices) for child in atom.children])
    if _dual(atom):
        return next(choices)(atom)
    return atom


def probe_patterns(pattern: Atom) -> list[Atom]:
    """Patterns whose candidates, together, hold every stored atom that `pattern` may unify
    with when numbers compare by value. Just `[pattern]` when it has no whole number."""
    count = dual_count(pattern)
    if count == 0:
        return [pattern]
    if 2**count > MAX_VARIANTS:
        widened = itertools.count()
        return [_spell(pattern, itertools.repeat(lambda _atom: Variable(f"%number{next(widened)}")))]

    def same(atom: Atom) -> Atom:
        return atom

    def other(atom: Atom) -> Atom:
        return Grounded(other_form(atom.value))

    return [_spell(pattern, iter(picks)) for picks in itertools.product((same, other), repeat=count)]
