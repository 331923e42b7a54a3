"""The atom model: Symbol, Variable, Expression and Grounded values.

Atoms are immutable and hashable. Equality is structural and exact: two variables are equal
only when their names are, and grounded values compare by type as well as by value, so the
Int 1, the Float 1.0 and the Bool True are three different atoms (hyperon treats them so in
matching; numeric `==` is the interpreter's business, not the atom model's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "Atom",
    "Symbol",
    "Variable",
    "Expression",
    "Grounded",
    "GroundedObject",
    "E",
    "S",
    "V",
    "G",
    "EMPTY_EXPR",
    "alpha_equal",
    "variables_of",
    "is_ground",
]


class Atom:
    """Base class of every atom."""

    __slots__ = ()

    def __repr__(self) -> str:
        from metta_numba.syntax.printer import format_atom

        return format_atom(self)

    __str__ = __repr__


class Symbol(Atom):
    __slots__ = ("name", "_hash")

    def __init__(self, name: str) -> None:
        self.name = name
        self._hash = hash(("S", name))

    def __eq__(self, other: object) -> bool:
        return type(other) is Symbol and other.name == self.name

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Symbol, (self.name,))


class Variable(Atom):
    __slots__ = ("name", "_hash")

    def __init__(self, name: str) -> None:
        self.name = name
        self._hash = hash(("V", name))

    def __eq__(self, other: object) -> bool:
        return type(other) is Variable and other.name == self.name

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Variable, (self.name,))


class Expression(Atom):
    """An ordered tuple of child atoms. `()` is the empty expression (unit)."""

    __slots__ = ("children", "_hash", "_ground", "evaluated")

    def __init__(self, children) -> None:
        kids: tuple[Atom, ...] = tuple(children)
        self.children = kids
        # Set by the evaluator on an expression that evaluated to itself, which hyperon does
        # not evaluate again (see interp/results.py). A rebuilt atom is unmarked. Equality and
        # hashing ignore it.
        self.evaluated = False
        # Hash and groundness are computed eagerly, bottom-up, so that a deeply nested atom
        # never needs a deep recursion to answer them later.
        self._hash = hash(kids)
        ground = True
        for c in kids:
            t = type(c)
            if t is Variable or (t is Expression and not c._ground):
                ground = False
                break
        self._ground = ground

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(other) is not Expression or other._hash != self._hash:
            return False
        try:
            return other.children == self.children  # fast: the tuples compare in C
        except RecursionError:
            # Only deeply nested atoms get here; equality has no side effects, so compare again
            # without recursion.
            return _equal_iteratively(self.children, other.children)

    def __hash__(self) -> int:
        return self._hash

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[Atom]:
        return iter(self.children)

    def __getitem__(self, i):
        return self.children[i]

    def __reduce__(self):
        return (Expression, (self.children,))

    @property
    def head(self) -> Atom | None:
        return self.children[0] if self.children else None

    @property
    def is_ground(self) -> bool:
        return self._ground


def _equal_iteratively(mine: tuple, theirs: tuple) -> bool:
    pending = [(mine, theirs)]
    while pending:
        mine, theirs = pending.pop()
        if len(mine) != len(theirs):
            return False
        for x, y in zip(mine, theirs):
            if x is y:
                continue
            if type(x) is Expression:
                if type(y) is not Expression or x._hash != y._hash:
                    return False
                pending.append((x.children, y.children))
            elif x != y:
                return False
    return True


# The grounded value types that the codec can store and the printer knows.
_STORABLE = (bool, int, float, str)


class Grounded(Atom):
    """A grounded value: int (i64), float (f64), str, bool, or a Python object.

    Numbers, strings and Bools are values: equal when their type and value are equal, except
    that an integer and a float are one number (`3` equals `3.0`, as in hyperon, where they
    unify and match each other). Other objects (spaces, states, grounded operations) are
    wrapped by `GroundedObject`.
    """

    __slots__ = ("value", "_hash")

    def __init__(self, value: Any) -> None:
        self.value = value
        # NaN equals NaN as an atom, so every NaN must hash alike (hash(nan) is per object).
        # An int hashes as the equal float does (hash(3) == hash(3.0)), under one tag for both.
        tv = type(value)
        if tv is float and value != value:
            self._hash = hash(("G", float, "NaN"))
        else:
            self._hash = hash(("G", float if tv is int else tv, value))

    def __eq__(self, other: object) -> bool:
        if type(other) is not Grounded:
            return False
        ov = other.value
        sv = self.value
        to = type(ov)
        ts = type(sv)
        if to is not ts:
            if (to is int and ts is float) or (to is float and ts is int):
                return ov == sv
            return False
        if sv != sv and ov != ov:  # NaN is equal to itself as an atom
            return True
        return ov == sv

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        return (Grounded, (self.value,))

    @property
    def type_name(self) -> str:
        v = self.value
        if type(v) is bool:
            return "Bool"
        if type(v) is int or type(v) is float:
            return "Number"
        if type(v) is str:
            return "String"
        return "%Undefined%"


class GroundedObject(Atom):
    """A grounded atom that wraps a Python object (a space, a state, an operation).

    Identity semantics: two wrappers are equal when they wrap the same object. Subclasses in
    the interpreter define how the object prints and which type it has.
    """

    __slots__ = ("obj",)

    by_value = False
    """True for an object compared by its current, changing value (a state): indexes must not
    key on it, since its equality changes while it is stored."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroundedObject) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    @property
    def type_name(self) -> str:
        return getattr(self.obj, "metta_type", "%Undefined%")

    def display(self) -> str:
        disp = getattr(self.obj, "metta_repr", None)
        return disp() if disp is not None else repr(self.obj)


EMPTY_EXPR = Expression(())


def S(name: str) -> Symbol:
    return Symbol(name)


def V(name: str) -> Variable:
    return Variable(name)


def G(value: Any) -> Grounded:
    return Grounded(value)


def E(*children: Atom | str | int | float | bool) -> Expression:
    """Build an expression; bare Python str become symbols, numbers and bools grounded values."""
    return Expression(_coerce(c) for c in children)


def _coerce(c: Any) -> Atom:
    if isinstance(c, Atom):
        return c
    if isinstance(c, str):
        return Variable(c[1:]) if c.startswith("$") else Symbol(c)
    if isinstance(c, _STORABLE):
        return Grounded(c)
    if isinstance(c, (tuple, list)):
        return Expression(_coerce(x) for x in c)
    raise TypeError(f"cannot make an atom from {type(c).__name__}")


def is_ground(atom: Atom) -> bool:
    """True when the atom holds no variable."""
    t = type(atom)
    if t is Variable:
        return False
    if t is Expression:
        return atom.is_ground
    return True


def variables_of(atom: Atom, out: list[Variable] | None = None) -> list[Variable]:
    """The distinct variables of an atom, in order of first occurrence."""
    if out is None:
        out = []
    stack = [atom]
    seen = set(out)
    while stack:
        a = stack.pop()
        t = type(a)
        if t is Variable:
            if a not in seen:
                seen.add(a)
                out.append(a)
        elif t is Expression and not a.is_ground:
            stack.extend(reversed(a.children))
    return out


def alpha_equal(a: Atom, b: Atom) -> bool:
    """True when a and b are equal up to a consistent one-to-one renaming of variables."""
    forward: dict[Variable, Variable] = {}
    backward: dict[Variable, Variable] = {}
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        tx = type(x)
        if tx is Variable:
            if type(y) is not Variable:
                return False
            fx = forward.get(x)
            by = backward.get(y)
            if fx is None and by is None:
                forward[x] = y
                backward[y] = x
            elif fx != y or by != x:
                return False
        elif tx is Expression:
            if type(y) is not Expression or len(x.children) != len(y.children):
                return False
            stack.extend(zip(x.children, y.children))
        elif x != y:
            return False
    return True
