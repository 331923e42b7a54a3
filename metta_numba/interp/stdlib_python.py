"""Python from MeTTa: `py-atom`, `py-dot`, `py-list`, `py-tuple`, `py-dict` and `py-chain`,
as hyperon's stdlib has them.

`(py-atom math.sqrt)` is the Python object named by a dotted path (a module attribute, a
builtin such as `len`, or a name of `__main__`): a callable becomes an operation, anything else
a value. Unlike hyperon, the path is never evaluated as Python source. `(py-dot obj path)` is
an attribute of a Python value. The others build a Python list, tuple, dict or `a | b | ...`
from an expression.

All of them reach arbitrary Python code, so they refuse to run when the runner is sandboxed
(`getattr(runner, "sandbox", False)`), as importing a `.py` module does.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import operator
import sys
from typing import Any

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.interp.core import UNDEFINED
from metta_numba.interp.grounded import ExecError, Registry
from metta_numba.interp.python_values import PyOperationAtom, PyValueAtom, exception_text, from_atom, to_atom

registry = Registry()


def refuse_in_sandbox(runner: Any, what: str) -> None:
    """Raise the error a sandboxed runner gives for an operation that reaches Python."""
    if getattr(runner, "sandbox", False):
        raise ExecError(f"{what} is not allowed in a sandboxed runner: it runs arbitrary Python code")


def _text(atom: Atom) -> str:
    if type(atom) is Grounded and type(atom.value) is str:
        return atom.value
    if type(atom) is Symbol:
        return atom.name
    return repr(atom)


def find_python_object(path: str, start: Any = None) -> Any:
    """The object at a dotted path: from `start`, else the longest importable module prefix,
    else a builtin or a name defined in `__main__`."""
    parts = path.split(".")
    obj = start
    if obj is None:
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            parts = parts[cut:]
            break
        else:
            first = parts.pop(0)
            main = sys.modules.get("__main__")
            if hasattr(builtins, first):
                obj = getattr(builtins, first)
            elif main is not None and hasattr(main, first):
                obj = getattr(main, first)
            else:
                raise ExecError(f'Failed to find "{path}"')
    for part in parts:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ExecError(f'Failed to find "{path}"') from None
    return obj


def _python_atom(name: str, obj: Any, args: tuple) -> Atom:
    """An operation for a callable, a value otherwise; `args` are the optional (type, unwrap)
    arguments of py-atom and py-dot (a Bool in the type place means unwrap)."""
    metta_type: Atom = UNDEFINED
    unwrap = True
    if args:
        first = args[0]
        if type(first) is Grounded and type(first.value) is bool:
            unwrap = first.value
        else:
            metta_type = first
        if len(args) > 1 and type(args[1]) is Grounded and type(args[1].value) is bool:
            unwrap = args[1].value
    if callable(obj):
        return PyOperationAtom(name, obj, None if metta_type == UNDEFINED else metta_type, unwrap)
    return to_atom(obj, metta_type)


@registry.add("py-atom", None, "The Python object at a dotted path, as an operation or a value")
def _py_atom(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-atom")
    if not 1 <= len(args) <= 3:
        raise ExecError("py-atom expects a path, then optionally a type and an unwrap flag")
    name = _text(args[0])
    return [_python_atom(name, find_python_object(name), args[1:])]


@registry.add("py-dot", None, "An attribute (dotted path) of a Python value")
def _py_dot(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-dot")
    if not 2 <= len(args) <= 4:
        raise ExecError("py-dot expects an object and a path, then optionally a type and an unwrap flag")
    start = from_atom(args[0])
    name = _text(args[1])
    return [_python_atom(name, find_python_object(name, start), args[2:])]


def _python_items(expr: Atom, container) -> Any:
    if type(expr) is not Expression:
        raise ExecError(f"an expression is expected, got {expr!r}")
    out = []
    for child in expr.children:
        if type(child) is Expression:
            out.append(_python_items(child, container))
        else:
            out.append(_unwrapped(child))
    return container(out)


def _unwrapped(atom: Atom, symbol_as_text: bool = False) -> Any:
    """A grounded atom's Python value; other atoms stay atoms (a symbol may become its name)."""
    t = type(atom)
    if t is Symbol:
        return atom.name if symbol_as_text else atom
    if t is Expression or t is Variable:
        return atom
    return from_atom(atom)


def _one_arg(what: str, args: tuple) -> Atom:
    if len(args) != 1:
        raise ExecError(f"{what} expects one expression")
    return args[0]


@registry.add("py-list", None, "A Python list of an expression's elements (nested ones as lists)")
def _py_list(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-list")
    return [PyValueAtom(_python_items(_one_arg("py-list", args), list))]


@registry.add("py-tuple", None, "A Python tuple of an expression's elements (nested ones as tuples)")
def _py_tuple(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-tuple")
    return [PyValueAtom(_python_items(_one_arg("py-tuple", args), tuple))]


@registry.add("py-dict", None, "A Python dict of ((key value) ...) pairs")
def _py_dict(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-dict")
    pairs = _one_arg("py-dict", args)
    if type(pairs) is not Expression:
        raise ExecError(f"an expression of (key value) pairs is expected, got {pairs!r}")
    out = {}
    for pair in pairs.children:
        if type(pair) is not Expression or len(pair.children) != 2:
            raise ExecError(f"a (key value) pair is expected, got {pair!r}")
        key, value = pair.children
        out[_unwrapped(key, symbol_as_text=True)] = _unwrapped(value)
    return [PyValueAtom(out)]


@registry.add("py-chain", None, "Python values joined with `|` (a | b | ...)")
def _py_chain(ev, args, call):
    refuse_in_sandbox(ev.runner, "py-chain")
    items = _one_arg("py-chain", args)
    if type(items) is not Expression or not items.children:
        raise ExecError(f"a non-empty expression is expected, got {items!r}")
    values = [_unwrapped(a) for a in items.children]
    try:
        result = functools.reduce(operator.or_, values)
    except Exception as err:
        raise ExecError(exception_text(err)) from None
    return [to_atom(result)]
