"""What compiled functions call at run time: values, grounded operations, and the way out.

Compiled code works on plain Python values where it can: `int` (i64), `float` and `bool` stand
for the grounded Number and Bool atoms, and every other value is the (ground) atom itself. The
operations below give exactly the plain evaluator's answers on those values. Anything else, such
as an argument that is not a number, a division by zero (an Error atom) or a recursion deeper than
the plain evaluator would go, raises `Fallback`: the whole call is then evaluated again by the
plain evaluator, which is safe because compiled functions have no side effects.
"""

from __future__ import annotations

from metta_numba.atoms import Atom, Expression, Grounded
from metta_numba.interp.core import FALSE, TRUE
from metta_numba.interp.grounded import ExecError, NoReduce
from metta_numba.interp.stdlib_math import _arith, wrap_i64

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1


class Fallback(Exception):
    """Compiled code met a case that only the plain evaluator decides."""


def fallback():
    raise Fallback


def box(value) -> Atom:
    """The atom for a compiled value."""
    t = type(value)
    if t is bool:
        return TRUE if value else FALSE
    if t is int or t is float:
        return Grounded(value)
    return value


def unbox(atom: Atom):
    """The compiled value of a ground atom."""
    if type(atom) is Grounded:
        value = atom.value
        t = type(value)
        if t is int or t is float or t is bool:
            return value
    return atom


def expression(children: list) -> Expression:
    """A data expression built by compiled code (its elements are compiled values). The plain
    evaluator hands such an expression on marked as evaluated to itself (it is not evaluated
    again), so this one is marked too."""
    built = Expression([box(c) for c in children])
    built.evaluated = True
    return built


def same(a, b) -> bool:
    """Atom equality of two compiled values (a repeated variable in a rule's head): an integer
    and a float of one value are one number."""
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        if a != a:
            return b != b
        return a == b
    if ta is not tb:
        return False
    return a == b


def is_literal(value, literal) -> bool:
    """Does the value match a number, Bool or atom written in a rule's head?

    A number of the other kind (`3.0` against `3`) is left to the plain evaluator, whose
    matching decides between them."""
    tv = type(value)
    tl = type(literal)
    if tv is tl:
        if tv is float and value != value:
            return literal != literal
        return value == literal
    if (tv is int or tv is float) and (tl is int or tl is float):
        raise Fallback
    return False


def _slow_arith(op: str, a, b):
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        try:
            return _arith(op, a, b)
        except (ExecError, NoReduce):
            raise Fallback from None
    raise Fallback


def add(a, b):
    if type(a) is int and type(b) is int:
        r = a + b
        return r if INT_MIN <= r <= INT_MAX else wrap_i64(r)
    return _slow_arith("+", a, b)


def sub(a, b):
    if type(a) is int and type(b) is int:
        r = a - b
        return r if INT_MIN <= r <= INT_MAX else wrap_i64(r)
    return _slow_arith("-", a, b)


def mul(a, b):
    if type(a) is int and type(b) is int:
        r = a * b
        return r if INT_MIN <= r <= INT_MAX else wrap_i64(r)
    return _slow_arith("*", a, b)


def div(a, b):
    return _slow_arith("/", a, b)


def mod(a, b):
    return _slow_arith("%", a, b)


def _numbers(a, b) -> None:
    ta = type(a)
    tb = type(b)
    if not ((ta is int or ta is float) and (tb is int or tb is float)):
        raise Fallback


def lt(a, b) -> bool:
    _numbers(a, b)
    return a < b


def gt(a, b) -> bool:
    _numbers(a, b)
    return a > b


def le(a, b) -> bool:
    _numbers(a, b)
    return a <= b


def ge(a, b) -> bool:
    _numbers(a, b)
    return a >= b


def eq(a, b) -> bool:
    """`==` on two numbers or two Bools; other values need the type checks of the plain path."""
    ta = type(a)
    tb = type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    if ta is bool and tb is bool:
        return a is b
    raise Fallback


def _bools(a, b) -> None:
    if type(a) is not bool or type(b) is not bool:
        raise Fallback


def and_(a, b) -> bool:
    _bools(a, b)
    return a and b


def or_(a, b) -> bool:
    _bools(a, b)
    return a or b


def not_(a) -> bool:
    if type(a) is not bool:
        raise Fallback
    return not a


def number(value):
    """The result of a function declared to return a Number: anything else is the plain
    evaluator's BadType Error to make."""
    t = type(value)
    if t is int or t is float:
        return value
    raise Fallback


def truth(c) -> bool:
    """The condition of an `if`: a Bool, or the plain evaluator decides."""
    if c is True:
        return True
    if c is False:
        return False
    raise Fallback


OPERATIONS = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "div",
    "%": "mod",
    "<": "lt",
    ">": "gt",
    "<=": "le",
    ">=": "ge",
    "==": "eq",
    "and": "and_",
    "or": "or_",
    "not": "not_",
}
"""Grounded operations compiled code calls directly: MeTTa name -> function in this module.
Each is deterministic, has no side effects, and takes its arguments evaluated."""


def namespace() -> dict:
    """The globals compiled code starts with: these helpers under their own names."""
    names = ["fallback", "box", "unbox", "expression", "same", "is_literal", "truth", "number", *OPERATIONS.values()]
    found = {name: globals()[name] for name in names}
    found["Expression"] = Expression
    return found
