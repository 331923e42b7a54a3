"""Atoms in hyperon's Python API: `S`, `V`, `E`, `G`, `ValueAtom`, `OperationAtom` and the
classes they return, over the engine's own atoms.

Each API atom holds an engine atom in `catom` (the attribute hyperon uses for its native
atom); equality, hashing and printing are the engine atom's. Engine atoms coming out of a run
are wrapped on the way out (`to_api`) and unwrapped on the way in (`from_api`), so the
interpreter never sees these classes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from metta_numba.atoms import Atom as EngineAtom
from metta_numba.atoms import Expression, Grounded, Symbol, Variable, alpha_equal
from metta_numba.atoms import GroundedObject as EngineGroundedObject
from metta_numba.interp.core import ARROW, SpaceAtom, canonical
from metta_numba.interp.python_values import (
    IncorrectArgumentError,
    MettaError,
    NoReduceError,
    PyOperationAtom,
    PyValueAtom,
    to_atom,
)
from metta_numba.interp.types import value_type

__all__ = [
    "AtomKind", "Atom", "SymbolAtom", "VariableAtom", "ExpressionAtom", "GroundedAtom",
    "S", "V", "E", "G", "ValueAtom", "OperationAtom", "PrimitiveAtom", "AtomType", "Atoms",
    "GroundedObject", "ValueObject", "OperationObject", "atoms_are_equivalent", "get_string_value",
    "MettaError", "NoReduceError", "IncorrectArgumentError", "to_api", "from_api",
]  # fmt: skip


class AtomKind(enum.Enum):
    """The metatype of an atom (hyperon's AtomKind)."""

    SYMBOL = 0
    VARIABLE = 1
    EXPR = 2
    GROUNDED = 3


class Atom:
    """Any atom of the API; `catom` is the engine atom."""

    __slots__ = ("catom",)

    def __init__(self, catom: EngineAtom) -> None:
        self.catom = catom

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Atom) and self.catom == other.catom

    def __hash__(self) -> int:
        return hash(self.catom)

    def __repr__(self) -> str:
        return repr(self.catom)

    def get_metatype(self) -> AtomKind:
        t = type(self.catom)
        if t is Symbol:
            return AtomKind.SYMBOL
        if t is Variable:
            return AtomKind.VARIABLE
        if t is Expression:
            return AtomKind.EXPR
        return AtomKind.GROUNDED

    def iterate(self) -> list[Atom]:
        """This atom and every atom inside it, depth first."""
        out = []
        stack = [self.catom]
        while stack:
            a = stack.pop()
            out.append(to_api(a))
            if type(a) is Expression:
                stack.extend(reversed(a.children))
        return out

    def match_atom(self, other: Atom):
        """The bindings that unify this atom with `other` (empty when they do not unify)."""
        from metta_numba.hyperon.bindings import Bindings, BindingsSet
        from metta_numba.unify import unify

        found = unify(self.catom, from_api(other))
        return BindingsSet.empty() if found is None else BindingsSet(Bindings(found))

    @staticmethod
    def _from_catom(catom: EngineAtom) -> Atom:
        return to_api(catom)


class SymbolAtom(Atom):
    __slots__ = ()

    def get_name(self) -> str:
        return self.catom.name


class VariableAtom(Atom):
    __slots__ = ()

    def get_name(self) -> str:
        return self.catom.name

    @staticmethod
    def parse_name(name: str) -> VariableAtom:
        return VariableAtom(Variable(name))


class ExpressionAtom(Atom):
    __slots__ = ()

    def get_children(self) -> list[Atom]:
        return [to_api(c) for c in self.catom.children]


class GroundedAtom(Atom):
    __slots__ = ()

    def get_object(self) -> Any:
        """The Python object: a ValueObject for a value, an OperationObject for an operation,
        a GroundingSpaceRef for a space, or the GroundedObject the atom was made from."""
        a = self.catom
        t = type(a)
        if t is Grounded:
            return ValueObject(a.value)
        if t is PyValueAtom:
            return a.holder if a.holder is not None else ValueObject(a.obj)
        if t is PyOperationAtom:
            return OperationObject(a.name, a.fn, a.unwrap)
        if isinstance(a, SpaceAtom):
            from metta_numba.hyperon.base import GroundingSpaceRef

            return GroundingSpaceRef(a.obj)
        raise TypeError(f"Cannot get Python object of unsupported non-C atom {a!r}")

    def get_grounded_type(self) -> Atom:
        return to_api(value_type(self.catom))


def to_api(catom: EngineAtom) -> Atom:
    """The API atom for an engine atom."""
    t = type(catom)
    if t is Symbol:
        return SymbolAtom(catom)
    if t is Variable:
        return VariableAtom(catom)
    if t is Expression:
        return ExpressionAtom(catom)
    if t is Grounded or isinstance(catom, EngineGroundedObject):
        return GroundedAtom(catom)
    raise TypeError(f"not an atom: {catom!r}")


def from_api(atom: Any) -> EngineAtom:
    """The engine atom of an API atom (an engine atom passes through)."""
    if isinstance(atom, Atom):
        return atom.catom
    if isinstance(atom, EngineAtom):
        return atom
    raise TypeError(f"an atom is expected, got {type(atom).__name__}: {atom!r}")


def S(name: str) -> SymbolAtom:
    return SymbolAtom(canonical(Symbol(name)))


def V(name: str) -> VariableAtom:
    return VariableAtom(Variable(name))


def E(*args: Atom) -> ExpressionAtom:
    return ExpressionAtom(Expression([from_api(a) for a in args]))


class AtomType:
    """The types hyperon names as constants."""

    UNDEFINED = S("%Undefined%")
    TYPE = S("Type")
    ATOM = S("Atom")
    SYMBOL = S("Symbol")
    VARIABLE = S("Variable")
    EXPRESSION = S("Expression")
    GROUNDED = S("Grounded")
    GROUNDED_SPACE = S("SpaceType")
    UNIT = E(S("->"))
    NUMBER = S("Number")
    BOOL = S("Bool")
    STRING = S("String")


class Atoms:
    EMPTY = S("Empty")
    UNIT = E()
    METTA = S("metta")


class GroundedObject:
    """Content held by a grounded atom, with an optional id (hyperon's GroundedObject)."""

    def __init__(self, content: Any, id: str | None = None) -> None:
        self.content = content
        self.id = id

    def __repr__(self) -> str:
        if isinstance(self.content, str):
            return '"' + repr(self.content)[1:-1].replace('"', '\\"') + '"'
        return repr(self.content) if self.id is None else self.id

    def copy(self) -> GroundedObject:
        return self


class ValueObject(GroundedObject):
    """A value: equal to another ValueObject with equal content."""

    @property
    def value(self) -> Any:
        return self.content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValueObject) and self.content == other.content

    __hash__ = None


class OperationObject(GroundedObject):
    """A Python function as an operation; equal to another with the same name."""

    def __init__(self, name: str, op: Callable, unwrap: bool = True) -> None:
        super().__init__(op, name)
        self.unwrap = unwrap

    @property
    def op(self) -> Callable:
        return self.content

    @property
    def name(self) -> str:
        return self.id

    def execute(self, *atoms: Atom, res_typ: Atom | None = None) -> list[Atom]:
        """Call the operation on API atoms as the interpreter would, without an interpreter."""
        from metta_numba.interp.grounded import ExecError, NoReduce

        op = PyOperationAtom(self.name, self.op, None, self.unwrap).obj
        call = Expression([Symbol(self.name)] + [from_api(a) for a in atoms])
        try:
            results = op.execute(None, call.children[1:], call)
        except NoReduce:
            raise NoReduceError() from None
        except ExecError as err:
            raise RuntimeError(str(err)) from None
        return [to_api(r) for r in results]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OperationObject) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)


def _type_atom(type_names: Any) -> EngineAtom | None:
    """hyperon's type sugar: a list is a function type, `$x` a type variable, a str a symbol."""
    if type_names is None:
        return None
    if isinstance(type_names, list):
        return Expression([ARROW] + [_type_atom(n) or canonical(Symbol("%Undefined%")) for n in type_names])
    if isinstance(type_names, str):
        return Variable(type_names[1:]) if type_names.startswith("$") else canonical(Symbol(type_names))
    return canonical(from_api(type_names))


def _undefined_if_none(type_atom: EngineAtom | None) -> EngineAtom:
    return type_atom if type_atom is not None else AtomType.UNDEFINED.catom


def G(obj: Any, type: Any = AtomType.UNDEFINED) -> GroundedAtom:
    """A grounded atom holding a Python object (a space, an operation, a value or any object)."""
    type_atom = _undefined_if_none(_type_atom(type))
    if isinstance(obj, OperationObject):
        typed = None if type_atom == AtomType.UNDEFINED.catom else type_atom
        return GroundedAtom(PyOperationAtom(obj.name, obj.op, typed, obj.unwrap))
    if isinstance(obj, ValueObject):
        return GroundedAtom(to_atom(obj.value, type_atom))
    space = getattr(obj, "cspace", None)
    if space is not None:
        return GroundedAtom(SpaceAtom(space))
    return GroundedAtom(PyValueAtom(getattr(obj, "content", obj), type_atom, holder=obj))


def ValueAtom(value: Any, type_name: Any = None, atom_id: str | None = None) -> GroundedAtom:
    """A value as an atom: Python numbers, strings and Bools become MeTTa's own values."""
    return GroundedAtom(to_atom(value, _undefined_if_none(_type_atom(type_name))))


def PrimitiveAtom(value: Any, type_name: Any = None, atom_id: str | None = None) -> GroundedAtom:
    """A Python int, float or bool kept as a Python value rather than a MeTTa Number/Bool."""
    if not isinstance(value, (int, float, bool)):
        raise TypeError(f"Primitive value (int, float, bool) is expected, got {value!r}")
    return GroundedAtom(PyValueAtom(value, _undefined_if_none(_type_atom(type_name))))


def OperationAtom(name: str, op: Callable, type_names: Any = None, unwrap: bool = True) -> GroundedAtom:
    """A Python function as an operation named `name`, with an optional MeTTa type: a list of
    type names (`["Number", "Number", "Number"]`) is the function type `(-> Number Number Number)`."""
    return GroundedAtom(PyOperationAtom(name, op, _type_atom(type_names), unwrap))


def atoms_are_equivalent(first: Atom, second: Atom) -> bool:
    """True when the atoms are equal up to a consistent renaming of variables."""
    return alpha_equal(from_api(first), from_api(second))


def get_string_value(value: Any) -> str:
    """The text of a string atom (its printed form without the quotes), or of any value."""
    if not isinstance(value, str):
        value = repr(value)
    if len(value) > 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value
