"""The patterns a snapshot is probed with, for atoms whose equality its encoding cannot see.

Integers and floats of one value are one number: `3` unifies with `3.0` (as in hyperon). In
memory that follows from atom equality. A snapshot, though, stores each number in its own
encoding (an i64 and an f64 give different bytes), so its trie and argument index find only the
representation that a pattern spells. A pattern holding a whole number is therefore also
probed with that number in its other representation; when it holds too many of them, they are
all widened to variables for the probe instead (a superset of candidates, which exact
unification then filters).

A grounded object (a state, a space) cannot be encoded at all, so a snapshot never holds one:
in a probe it is widened to a variable (only a stored variable can match it), and an atom
holding one is kept in memory beside the snapshot.
"""

from __future__ import annotations

import itertools

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable

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


def _counts(atom: Atom) -> tuple[int, int]:
    """(numbers with a second representation, grounded objects) in `atom`."""
    numbers = objects = 0
    stack = [atom]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is Expression:
            stack.extend(item.children)
        elif kind is Grounded:
            # On every warm lookup: only an int or a float can have a second spelling.
            value_kind = type(item.value)
            if (value_kind is int or value_kind is float) and other_form(item.value) is not None:
                numbers += 1
        elif kind is not Symbol and kind is not Variable and isinstance(item, GroundedObject):
            objects += 1
    return numbers, objects


def holds_object(atom: Atom) -> bool:
    """Whether `atom` holds a grounded object (it cannot be encoded into a snapshot)."""
    return _counts(atom)[1] > 0


def _spell(atom: Atom, choices, objects) -> Atom:
    """`atom` with each dual number taken from `choices` (an iterator over replacements) and
    each grounded object from `objects`."""
    if type(atom) is Expression:
        return Expression([_spell(child, choices, objects) for child in atom.children])
    if _dual(atom):
        return next(choices)(atom)
    if isinstance(atom, GroundedObject):
        return Variable(f"%object{next(objects)}")
    return atom


def probe_patterns(pattern: Atom) -> list[Atom]:
    """Patterns whose candidates, together, hold every stored atom that `pattern` may unify
    with when numbers compare by value. `[pattern]` itself (the same object) when it needs no
    other probe: the snapshot's own lookup of it misses nothing."""
    count, objects = _counts(pattern)
    if count == 0:
        return [pattern] if objects == 0 else [_spell(pattern, iter(()), itertools.count())]
    if 2**count > MAX_VARIANTS:
        widened = itertools.count()
        return [_spell(pattern, itertools.repeat(lambda _atom: Variable(f"%number{next(widened)}")), itertools.count())]

    def same(atom: Atom) -> Atom:
        return atom

    def other(atom: Atom) -> Atom:
        return Grounded(other_form(atom.value))

    return [_spell(pattern, iter(picks), itertools.count()) for picks in itertools.product((same, other), repeat=count)]
