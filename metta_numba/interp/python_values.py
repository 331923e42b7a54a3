"""Python values and Python functions as grounded atoms.

Numbers, strings and Bools stay the engine's own `Grounded` values, so a Python function that
returns 3 gives the same atom as the MeTTa literal `3`. NumPy scalars are turned into those
Python scalars on the way in (`np.int64(3)` becomes the Int 3, `np.float32(0.5)` the Float
0.5), so they unify with literals; note that, as for any Int and Float, `3` and `3.0` are two
different atoms in this engine (hyperon's Number makes them equal, see docs/compatibility.md).

Any other Python object becomes a `PyValueAtom`. Atoms are index keys, so each needs an
equality and a hash that agree and never change: a value is compared through `value_key`,
which is the value itself when it is hashable, a structural key for lists, tuples, dicts and
sets, and `(dtype, shape, bytes)` for a NumPy array. An array is copied and made read-only
when it is wrapped, so that changing the caller's array cannot change an atom already stored.
An object that is neither hashable nor one of those containers compares by identity.

A Python function becomes a `PyOperationAtom`, whose `Operation` the evaluator calls like any
grounded operation; `python_operation` does what hyperon's OperationObject does: unwrap the
arguments to Python values (or pass atoms when `unwrap=False`), call, wrap the result, and turn
an exception into `(Error <call> "Exception caught: ...")`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol
from metta_numba.interp.core import ARROW, ERROR, UNDEFINED, UNIT
from metta_numba.interp.grounded import ExecError, NoReduce, Operation

__all__ = [
    "MettaError",
    "NoReduceError",
    "IncorrectArgumentError",
    "PyValueAtom",
    "PyOperationAtom",
    "value_key",
    "to_atom",
    "from_atom",
    "python_operation",
]


class NoReduceError(Exception):
    """Raised by a Python operation that does not apply to its arguments: the call stays."""


class IncorrectArgumentError(Exception):
    """Raised by a Python operation whose arguments have the wrong kind: the call stays, as
    when no rule matches."""


class MettaError(Exception):
    """Raised by a Python operation to return `(Error <args>...)` without a Python traceback."""


_PRIMITIVES = (bool, int, float, str)
_NUMPY_SCALARS = ((np.bool_, bool), (np.integer, int), (np.floating, float), (np.str_, str))


def value_key(value: Any) -> Any:
    """A hashable key with the same equality as the value (see the module docstring)."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return ("ndarray", "O", value.shape, tuple(value_key(x) for x in value.ravel().tolist()))
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(value_key(x) for x in value))
    if isinstance(value, dict):
        return ("dict", frozenset((value_key(k), value_key(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(value_key(x) for x in value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def _frozen(value: Any) -> Any:
    """A read-only copy of an array (other values are kept as they are)."""
    if isinstance(value, np.ndarray):
        if value.flags.writeable or value.base is not None:
            value = value.copy()
        value.flags.writeable = False
    return value


class PyValueAtom(GroundedObject):
    """A Python object as a grounded value, with the MeTTa type it was given.

    `holder` is the API object the value came in (a user's GroundedObject subclass), kept so
    that `get_object()` can hand it back; such an atom compares by the holder's identity."""

    __slots__ = ("metta_type", "holder", "_key", "_hash")
    python_object = True  # no on-disk form: saving it into a snapshot is an error

    def __init__(self, value: Any, metta_type: Atom = UNDEFINED, holder: Any = None) -> None:
        value = _frozen(value)
        super().__init__(value)
        self.metta_type = metta_type
        self.holder = holder
        self._key = ("id", id(holder)) if holder is not None else (type(value).__name__, value_key(value))
        self._hash = hash(self._key)

    @property
    def value(self) -> Any:
        return self.obj

    def __eq__(self, other: object) -> bool:
        if type(other) is not PyValueAtom or other._hash != self._hash:
            return False
        return other._key == self._key

    def __hash__(self) -> int:
        return self._hash

    def display(self) -> str:
        if self.holder is not None:
            return repr(self.holder)
        return repr(self.obj)


class PyOperationAtom(GroundedObject):
    """A Python function as a grounded operation (hyperon's OperationAtom).

    Two operation atoms are equal when their names are, as hyperon's OperationObject are."""

    __slots__ = ("metta_type", "fn", "unwrap")
    python_object = True

    def __init__(self, name: str, fn: Callable, type_atom: Atom | None = None, unwrap: bool = True) -> None:
        super().__init__(python_operation(name, fn, type_atom, unwrap))
        self.metta_type = type_atom if type_atom is not None else UNDEFINED
        self.fn = fn
        self.unwrap = unwrap

    @property
    def name(self) -> str:
        return self.obj.name

    def __eq__(self, other: object) -> bool:
        return type(other) is PyOperationAtom and other.obj.name == self.obj.name

    def __hash__(self) -> int:
        return hash(("PyOperation", self.obj.name))

    def display(self) -> str:
        return self.obj.name


def to_atom(value: Any, metta_type: Atom = UNDEFINED) -> Atom:
    """A Python value as an atom (hyperon's ValueAtom): an atom stays itself, a number, string
    or Bool (or a NumPy scalar of one) becomes a `Grounded` value, anything else a PyValueAtom."""
    if isinstance(value, Atom):
        return value
    if type(value) in _PRIMITIVES:
        return Grounded(value)
    # A NumPy scalar becomes the Python scalar of its kind (float() also covers longdouble,
    # whose item() stays a NumPy value). Subclasses of int or str (an IntEnum) stay objects.
    for numpy_kind, python_kind in _NUMPY_SCALARS:
        if isinstance(value, numpy_kind):
            return Grounded(python_kind(value))
    return PyValueAtom(value, metta_type)


def from_atom(atom: Atom) -> Any:
    """The Python value an unwrapping operation receives for an argument atom.

    Raises NoReduce for a symbol, variable or expression (hyperon leaves such a call as it is)."""
    t = type(atom)
    if t is Grounded:
        return atom.value
    if t is PyValueAtom:
        return atom.obj
    if t is PyOperationAtom:
        return atom.fn
    if isinstance(atom, GroundedObject):
        return atom.obj
    raise NoReduce()


def _result_type(type_atom: Atom | None) -> Atom:
    if type(type_atom) is Expression and type_atom.children and type_atom.children[0] == ARROW:
        return type_atom.children[-1]
    return UNDEFINED


def _unwrap_args(args: tuple) -> tuple[list, dict]:
    """Python arguments for an unwrapping call; `(Kwargs (name value) ...)` gives keywords."""
    positional: list = []
    keywords: dict = {}
    for a in args:
        if type(a) is Expression and a.children and a.children[0] == Symbol("Kwargs"):
            for pair in a.children[1:]:
                if type(pair) is not Expression or len(pair.children) != 2:
                    raise ExecError(f"Incorrect kwarg format {pair!r}")
                key, value = pair.children
                name = key.name if type(key) is Symbol else from_atom(key)
                keywords[str(name)] = from_atom(value)
            continue
        positional.append(from_atom(a))
    return positional, keywords


def _error_part(value: Any) -> Atom:
    """An argument of MettaError as an atom (an API atom gives its engine atom)."""
    engine_atom = getattr(value, "catom", None)
    return engine_atom if isinstance(engine_atom, Atom) else to_atom(value)


def exception_text(err: BaseException) -> str:
    return f"Exception caught:\n{type(err).__name__}: {err}"


def python_operation(name: str, fn: Callable, type_atom: Atom | None, unwrap: bool) -> Operation:
    """An engine Operation that calls a Python function the way hyperon's OperationObject does."""
    result_type = _result_type(type_atom)

    def execute(ev, args: tuple, call: Expression) -> list:
        if unwrap:
            positional, keywords = _unwrap_args(args)
            try:
                result = fn(*positional, **keywords)
            except MettaError as err:
                return [Expression([ERROR, *(_error_part(a) for a in err.args)])]
            except (NoReduceError, IncorrectArgumentError):
                raise NoReduce() from None
            except RecursionError:
                raise
            except Exception as err:
                raise ExecError(exception_text(err)) from None
            if result is None:
                return [UNIT]
            if callable(result) and not isinstance(result, Atom):
                return [PyOperationAtom(repr(result), result, None, True)]
            return [to_atom(result, result_type)]
        from metta_numba.hyperon.atoms import from_api, to_api  # the API atom wrappers (lazy: optional layer)

        try:
            returned = fn(*(to_api(a) for a in args))
        except (NoReduceError, IncorrectArgumentError):
            raise NoReduce() from None
        except MettaError as err:
            return [Expression([ERROR, *(from_api(a) for a in err.args)])]
        except RecursionError:
            raise
        except Exception as err:
            raise ExecError(exception_text(err)) from None
        if isinstance(returned, (str, bytes)) or not hasattr(returned, "__iter__"):
            raise ExecError(f"Grounded operation `{name}` should return list")
        results = [from_api(r) for r in returned]
        return results

    return Operation(name, type_atom, execute, doc=getattr(fn, "__doc__", "") or "")
