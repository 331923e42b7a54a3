"""Atoms the interpreter gives meaning to: reserved symbols, errors, and grounded objects
(spaces, states, bindings, characters) with the printed forms hyperon uses."""

from __future__ import annotations

from typing import Any

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable
from metta_numba.unify import fresh_suffix

# Reserved symbols. Atoms compare structurally, so these are just convenient constants.
EMPTY = Symbol("Empty")
NOT_REDUCIBLE = Symbol("NotReducible")
ERROR = Symbol("Error")
UNDEFINED = Symbol("%Undefined%")
ATOM = Symbol("Atom")
SYMBOL = Symbol("Symbol")
VARIABLE = Symbol("Variable")
EXPRESSION = Symbol("Expression")
GROUNDED = Symbol("Grounded")
ARROW = Symbol("->")
TYPE = Symbol("Type")
NUMBER = Symbol("Number")
STRING = Symbol("String")
BOOL = Symbol("Bool")
SPACE_TYPE = Symbol("SpaceType")
ERROR_TYPE = Symbol("ErrorType")
STATE_MONAD = Symbol("StateMonad")
CHAR = Symbol("Char")
BAD_TYPE = Symbol("BadType")
BAD_ARG_TYPE = Symbol("BadArgType")
INCORRECT_ARITY = Symbol("IncorrectNumberOfArguments")
STACK_OVERFLOW = Symbol("StackOverflow")
NO_RETURN = Symbol("NoReturn")
RETURN = Symbol("return")
FUNCTION = Symbol("function")
UNIT = Expression(())
UNIT_TYPE = Expression([ARROW])
TRUE = Grounded(True)
FALSE = Grounded(False)

META_TYPES = frozenset(["Atom", "Symbol", "Variable", "Expression", "Grounded"])

# One shared instance per reserved name, so that hot paths can compare by identity first.
CANONICAL: dict[str, Symbol] = {
    s.name: s
    for s in (
        EMPTY, NOT_REDUCIBLE, ERROR, UNDEFINED, ATOM, SYMBOL, VARIABLE, EXPRESSION, GROUNDED, ARROW,
        TYPE, NUMBER, STRING, BOOL, SPACE_TYPE, ERROR_TYPE, STATE_MONAD, CHAR, BAD_TYPE, BAD_ARG_TYPE,
        INCORRECT_ARITY, STACK_OVERFLOW, NO_RETURN, RETURN, FUNCTION,
    )
}


def canonical(atom: Atom) -> Atom:
    """The atom with reserved symbols replaced by their shared instances (equal atoms)."""
    t = type(atom)
    if t is Symbol:
        return CANONICAL.get(atom.name, atom)
    if t is Expression:
        kids = [canonical(c) for c in atom.children]
        if all(a is b for a, b in zip(kids, atom.children)):
            return atom
        return Expression(kids)
    return atom


def is_symbol(atom: Atom, name: str) -> bool:
    return type(atom) is Symbol and atom.name == name


def is_error(atom: Atom) -> bool:
    """True when the atom itself is `(Error ...)` (an Error deeper inside does not count)."""
    if type(atom) is not Expression:
        return False
    kids = atom.children
    return bool(kids) and type(kids[0]) is Symbol and kids[0].name == "Error"


def is_empty(atom: Atom) -> bool:
    return type(atom) is Symbol and atom.name == "Empty"


def is_not_reducible(atom: Atom) -> bool:
    return type(atom) is Symbol and atom.name == "NotReducible"


def error(culprit: Atom, reason: Atom) -> Expression:
    return Expression([ERROR, culprit, reason])


def error_text(culprit: Atom, text: str) -> Expression:
    """An error whose reason is bare text, printed without quotes (hyperon does this)."""
    return Expression([ERROR, culprit, Symbol(text)])


def is_function_type(atom: Atom) -> bool:
    if type(atom) is not Expression:
        return False
    kids = atom.children
    return bool(kids) and type(kids[0]) is Symbol and kids[0].name == "->"


def metatype(atom: Atom, ops: dict | None = None) -> Symbol:
    t = type(atom)
    if t is Expression:
        return EXPRESSION
    if t is Variable:
        return VARIABLE
    if t is Symbol:
        # A symbol naming a grounded operation stands for that operation (hyperon's tokens).
        if ops is not None and atom.name in ops:
            return GROUNDED
        return SYMBOL
    return GROUNDED


def merge(first: dict | None, second: dict | None) -> dict | None:
    """Bindings of two evaluation steps done one after the other (None means none)."""
    if first is None:
        return second
    if second is None:
        return first
    merged = dict(first)
    merged.update(second)
    return merged


def fresh_variable(name: str) -> Variable:
    return Variable(f"{name}#{fresh_suffix()}")


def text_of(atom: Atom) -> str:
    """A string's raw text, anything else in its printed form (println!, format-args)."""
    if type(atom) is Grounded and type(atom.value) is str:
        return atom.value
    return repr(atom)


class Char:
    """A character value, made by `stringToChars`; prints as `'a'`."""

    __slots__ = ("char",)

    def __init__(self, char: str) -> None:
        self.char = char

    def __eq__(self, other: object) -> bool:
        return type(other) is Char and other.char == self.char

    def __hash__(self) -> int:
        return hash(("Char", self.char))

    def __repr__(self) -> str:
        # Escaped as in strings, so that a printed result stays on one line.
        return "'" + self.char.translate(_CHAR_ESCAPES) + "'"


_CHAR_ESCAPES = str.maketrans({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0", "\\": "\\\\", "'": "\\'"})
_CHAR_UNESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def char_literal(name: str) -> Char | None:
    """The Char written as a token `'c'` (or `'\\n'` and the like), else None."""
    if len(name) == 3 and name[0] == "'" and name[2] == "'":
        return Char(name[1])
    if len(name) == 4 and name[0] == "'" and name[1] == "\\" and name[3] == "'" and name[2] in _CHAR_UNESCAPES:
        return Char(_CHAR_UNESCAPES[name[2]])
    return None


class SpaceAtom(GroundedObject):
    """A space as an atom. The program's own space prints as hyperon's `&self` does."""

    __slots__ = ()

    def display(self) -> str:
        space = self.obj
        name = getattr(space, "name", None)
        if name is not None and (name == "top" or name.startswith("top:")):
            return f"ModuleSpace(GroundingSpace-{name})"
        return f"GroundingSpace-0x{id(space):012x}"


class BareSpaceAtom(SpaceAtom):
    """A module's space without its dependencies (`module-space-no-deps`)."""

    __slots__ = ()

    def display(self) -> str:
        name = getattr(self.obj, "name", None)
        return f"GroundingSpace-{name}" if name else f"GroundingSpace-0x{id(self.obj):012x}"


_STATE_HASH = hash("State")


class StateCell:
    """The mutable box behind a `(State v)` atom."""

    __slots__ = ("value", "value_type")

    def __init__(self, value: Atom, value_type: Atom) -> None:
        self.value = value
        self.value_type = value_type


class StateAtom(GroundedObject):
    """A state; prints its current value, so results printed after a run show the last one.

    Two states are equal when their current values are (hyperon compares them so, in `==`,
    matching, unification and asserts). The value changes, so the hash cannot follow it: every
    state hashes alike, and spaces index a stored state as a wildcard (`by_value`)."""

    __slots__ = ()

    by_value = True

    def __eq__(self, other: object) -> bool:
        return type(other) is StateAtom and (other.obj is self.obj or other.obj.value == self.obj.value)

    def __hash__(self) -> int:
        return _STATE_HASH

    def display(self) -> str:
        return f"(State {self.obj.value!r})"


class BindingsAtom(GroundedObject):
    """Variable bindings as an atom (from `collapse-bind`), printed `{ $x <- 2 }`."""

    __slots__ = ()

    def display(self) -> str:
        items = self.obj or {}
        if not items:
            return "{  }"
        # Variables bound to each other form one group, printed `$x = $y`, with its value.
        group_of: dict = {}
        for var, value in items.items():
            if type(value) is Variable:
                first = group_of.setdefault(var, {var})
                second = group_of.setdefault(value, {value})
                if first is not second:
                    first |= second
                    for member in second:
                        group_of[member] = first
        groups: list = []
        for var in sorted(items, key=lambda v: v.name):
            group = group_of.get(var, {var})
            if any(group is g for g, _ in groups):
                continue
            value = None
            for member in group:
                bound = items.get(member)
                if bound is not None and type(bound) is not Variable:
                    value = bound
            groups.append((group, value))
        parts = []
        for group, value in groups:
            names = " = ".join(f"${v.name}" for v in sorted(group, key=lambda v: v.name))
            parts.append(names if value is None else f"{names} <- {value!r}")
        return "{ " + ", ".join(parts) + " }"


def value_atom(value: Any) -> Atom:
    """Wrap a Python result of an operation as an atom."""
    if isinstance(value, Atom):
        return value
    return Grounded(value)
