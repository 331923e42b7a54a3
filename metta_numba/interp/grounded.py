"""Grounded operations: Python functions the evaluator calls for `(op arg ...)`.

An operation has a MeTTa function type, which decides which arguments are evaluated first
(all but `Atom` and `Expression` ones) and how results are checked. `execute` receives the
evaluator, the argument atoms and the whole call, and returns a list of result atoms (an
empty list means "no result", like hyperon's Empty). It raises `ExecError` for an error the
user should see as `(Error <call> <reason>)`, or `NoReduce` when the operation does not apply
to these arguments (the call then stays as it is, e.g. `(+ 1 x)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Symbol
from metta_numba.interp.core import error, error_text

if TYPE_CHECKING:
    from metta_numba.interp.evaluator import Evaluator

ARROW = Symbol("->")

ExecuteFn = Callable[["Evaluator", tuple, Expression], list]


class ExecError(Exception):
    """An operation failed: the call becomes `(Error <call> <reason>)`."""

    def __init__(self, reason: Atom | str) -> None:
        super().__init__(str(reason))
        self.reason = reason

    def error_atom(self, call: Atom) -> Expression:
        if isinstance(self.reason, str):
            return error_text(call, self.reason)
        return error(call, self.reason)


class NoReduce(Exception):
    """The operation does not apply: the call is left unreduced."""


class Operation:
    """A named grounded operation with a type (None: untyped, `%Undefined%`)."""

    __slots__ = ("name", "type_atom", "execute", "doc", "arity")

    def __init__(self, name: str, type_atom: Atom | None, execute: ExecuteFn, doc: str = "") -> None:
        self.name = name
        self.type_atom = type_atom
        self.execute = execute
        self.doc = doc
        # The number of arguments its function type takes (None: untyped, any number). A call
        # with another number never reaches `execute` (see Evaluator.call_op).
        kids = type_atom.children if type(type_atom) is Expression else ()
        self.arity = len(kids) - 2 if kids and kids[0] == ARROW else None

    def __repr__(self) -> str:
        return self.name


class Registry:
    """The table of operations by name, filled by the stdlib modules."""

    def __init__(self) -> None:
        self.ops: dict[str, Operation] = {}

    def add(self, name: str, type_text: str | None, doc: str = ""):
        """Decorator: register `fn(ev, args, call) -> list[Atom]` under `name`."""

        def wrap(fn: ExecuteFn) -> ExecuteFn:
            self.ops[name] = Operation(name, _parse_type(type_text), fn, doc)
            return fn

        return wrap

    def update(self, other: Registry) -> None:
        self.ops.update(other.ops)


def _parse_type(text: str | None) -> Atom | None:
    if text is None:
        return None
    from metta_numba.interp.core import canonical
    from metta_numba.syntax.parser import parse_atom

    return canonical(parse_atom(text))
