"""The decorators of `hyperon.ext`: `register_atoms`, `register_tokens` and `grounded`.

A function decorated with `register_atoms` returns `{token: atom}`, one with `register_tokens`
returns `{regex: constructor}`; a Python module imported with `import!` registers what its
decorated functions return (see pymodules)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps

from metta_numba.hyperon.atoms import OperationAtom

__all__ = ["RegisterType", "register_atoms", "register_tokens", "grounded"]


class RegisterType(enum.Enum):
    ATOM = 1
    TOKEN = 2


def _mark(kind: RegisterType, args: tuple, kwargs: dict):
    def decorate(func: Callable, pass_metta: bool):
        @wraps(func)
        def wrapper(*a, **kw):
            return func(*a, **kw)

        wrapper.metta_type = kind
        wrapper.metta_pass_metta = pass_metta
        return wrapper

    if len(args) == 1 and not kwargs and callable(args[0]):
        return decorate(args[0], False)
    pass_metta = bool(kwargs.get("pass_metta", False))
    return lambda func: decorate(func, pass_metta)


def register_atoms(*args, **kwargs):
    """Mark a function returning `{token: atom}`; `pass_metta=True` gives it the runner."""
    return _mark(RegisterType.ATOM, args, kwargs)


def register_tokens(*args, **kwargs):
    """Mark a function returning `{regex: constructor}`; `pass_metta=True` gives it the runner."""
    return _mark(RegisterType.TOKEN, args, kwargs)


def grounded(arg):
    """`@grounded` (in a module) or `@grounded(metta)` (in a script): the function becomes an
    operation named after it."""

    def register(metta, func):
        atom = OperationAtom(func.__name__, func, unwrap=True)
        if metta is not None:
            metta.register_atom(func.__name__, atom)
            return func
        return _mark(RegisterType.ATOM, (lambda: {func.__name__: atom},), {})

    if callable(arg):
        return register(None, arg)
    return lambda func: register(arg, func)
