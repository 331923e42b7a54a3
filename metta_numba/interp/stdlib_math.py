"""Numbers and Booleans: arithmetic with Rust's i64/f64 semantics, comparisons, `==`, the
`*-math` functions and the logical operators.

Integers stay i64: results wrap around on overflow, `/` truncates toward zero and `%` keeps
the dividend's sign. A float operand makes the result a float; float division by zero gives
`inf`/`-inf`/`NaN`, integer division by zero an Error. An argument that is not a number (an
untyped symbol passes the type check) leaves the call unreduced.
"""

from __future__ import annotations

import math

from metta_numba.atoms import Atom, Expression, Grounded
from metta_numba.interp.core import FALSE, TRUE
from metta_numba.interp.grounded import ExecError, NoReduce, Registry

registry = Registry()

_MASK = (1 << 64) - 1
_SIGN = 1 << 63


def wrap_i64(value: int) -> int:
    value &= _MASK
    return value - (1 << 64) if value & _SIGN else value


def _number(atom: Atom):
    if type(atom) is Grounded:
        v = atom.value
        tv = type(v)
        if tv is int or tv is float:
            return v
    raise NoReduce()


def _numbers(args) -> tuple:
    if len(args) != 2:
        raise NoReduce()
    return _number(args[0]), _number(args[1])


def _float_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _int_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _arith(op: str, a, b):
    both_int = type(a) is int and type(b) is int
    if op == "+":
        return wrap_i64(a + b) if both_int else float(a) + float(b)
    if op == "-":
        return wrap_i64(a - b) if both_int else float(a) - float(b)
    if op == "*":
        return wrap_i64(a * b) if both_int else float(a) * float(b)
    if op == "/":
        if both_int:
            if b == 0:
                raise ExecError("DivisionByZero")
            return wrap_i64(_int_div(a, b))
        return _float_div(float(a), float(b))
    # "%": remainder with the sign of the dividend
    if both_int:
        if b == 0:
            raise ExecError("DivisionByZero")
        return wrap_i64(a - b * _int_div(a, b))
    if b == 0:
        return math.nan
    return math.fmod(float(a), float(b))


def _make_arith(op: str):
    def run(ev, args, call):
        a, b = _numbers(args)
        return [Grounded(_arith(op, a, b))]

    def divide(ev, args, call):
        # Unlike the other four (whose call then stays as it is), hyperon's `/` reports
        # an argument that is not a number.
        try:
            a, b = _numbers(args)
        except NoReduce:
            raise ExecError("Divide expects two numbers: dividend and divisor") from None
        return [Grounded(_arith(op, a, b))]

    return divide if op == "/" else run


for _op in ("+", "-", "*", "/", "%"):
    registry.add(_op, "(-> Number Number Number)")(_make_arith(_op))


def _make_compare(op: str):
    def run(ev, args, call):
        a, b = _numbers(args)
        if op == "<":
            r = a < b
        elif op == ">":
            r = a > b
        elif op == "<=":
            r = a <= b
        else:
            r = a >= b
        return [TRUE if r else FALSE]

    return run


for _op in ("<", ">", "<=", ">="):
    registry.add(_op, "(-> Number Number Bool)")(_make_compare(_op))


def atoms_equal(a: Atom, b: Atom) -> bool:
    """Structural equality where numbers compare by value (`(== 2 2.0)` is True)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is Grounded and type(y) is Grounded:
            vx, vy = x.value, y.value
            nx = type(vx) in (int, float)
            ny = type(vy) in (int, float)
            if nx and ny:
                if vx != vy:
                    return False
                continue
            if x != y:
                return False
        elif type(x) is Expression and type(y) is Expression:
            if len(x.children) != len(y.children):
                return False
            stack.extend(zip(x.children, y.children))
        elif x != y:
            return False
    return True


@registry.add("==", "(-> $t $t Bool)")
def _equals(ev, args, call):
    if len(args) != 2:
        raise NoReduce()
    return [TRUE if atoms_equal(args[0], args[1]) else FALSE]


def _bool(atom: Atom) -> bool:
    if type(atom) is Grounded and type(atom.value) is bool:
        return atom.value
    raise NoReduce()


@registry.add("and", "(-> Bool Bool Bool)")
def _and(ev, args, call):
    return [TRUE if (_bool(args[0]) and _bool(args[1])) else FALSE]


@registry.add("or", "(-> Bool Bool Bool)")
def _or(ev, args, call):
    a = _bool(args[0])
    b = _bool(args[1])
    return [TRUE if (a or b) else FALSE]


@registry.add("xor", "(-> Bool Bool Bool)")
def _xor(ev, args, call):
    return [TRUE if (_bool(args[0]) != _bool(args[1])) else FALSE]


@registry.add("not", "(-> Bool Bool)")
def _not(ev, args, call):
    return [FALSE if _bool(args[0]) else TRUE]


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _guarded(fn):
    """Rust's f64 functions give NaN (or an infinity) where Python's raise."""

    def run(x: float) -> float:
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return math.nan

    return run


def _ln(v: float) -> float:
    if v != v or v < 0:
        return math.nan
    if v == 0:
        return -math.inf
    if v == math.inf:
        return math.inf
    return math.log(v)


def _log(base, x) -> float:
    """Rust's `x.log(base)`: ln(x) / ln(base), with IEEE infinities and NaN."""
    return _float_div(_ln(float(x)), _ln(float(base)))


def _pow(base, exponent) -> float:
    try:
        return math.pow(float(base), float(exponent))
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def _math_argument(atom: Atom, message: str) -> int | float:
    """A math function's number argument; anything else is hyperon's Error with `message`."""
    if type(atom) is Grounded and type(atom.value) in (int, float):
        return atom.value
    raise ExecError(message)


def _only_argument(args, message: str) -> int | float:
    if len(args) != 1:
        raise ExecError(message)
    return _math_argument(args[0], message)


@registry.add("pow-math", "(-> Number Number Number)")
def _pow_math(ev, args, call):
    message = "pow-math expects two arguments: number (base) and number (power)"
    if len(args) != 2:
        raise ExecError(message)
    return [Grounded(_pow(_math_argument(args[0], message), _math_argument(args[1], message)))]


@registry.add("log-math", "(-> Number Number Number)")
def _log_math(ev, args, call):
    message = "log-math expects two arguments: base (number) and input value (number)"
    if len(args) != 2:
        raise ExecError(message)
    return [Grounded(_log(_math_argument(args[0], message), _math_argument(args[1], message)))]


_FLOAT_FUNCTIONS = {
    "sqrt-math": _guarded(lambda x: math.sqrt(x) if x >= 0 else math.nan),
    "sin-math": _guarded(math.sin),
    "cos-math": _guarded(math.cos),
    "tan-math": _guarded(math.tan),
    "asin-math": _guarded(math.asin),
    "acos-math": _guarded(math.acos),
    "atan-math": _guarded(math.atan),
}

# These keep an integer input an integer.
_INT_PRESERVING = {
    "abs-math": (lambda i: wrap_i64(abs(i)), abs),
    "trunc-math": (lambda i: i, lambda x: float(math.trunc(x)) if math.isfinite(x) else x),
    "ceil-math": (lambda i: i, lambda x: float(math.ceil(x)) if math.isfinite(x) else x),
    "floor-math": (lambda i: i, lambda x: float(math.floor(x)) if math.isfinite(x) else x),
    "round-math": (lambda i: i, lambda x: _round_half_away(x) if math.isfinite(x) else x),
}


def _one_number_message(name: str) -> str:
    # hyperon's wording differs between the functions.
    what = "number" if name in ("abs-math", "sqrt-math") else "input number"
    return f"{name} expects one argument: {what}"


def _make_float_fn(name: str, fn):
    message = _one_number_message(name)

    def run(ev, args, call):
        return [Grounded(fn(float(_only_argument(args, message))))]

    return run


def _make_int_preserving(name: str, int_fn, float_fn):
    message = _one_number_message(name)

    def run(ev, args, call):
        x = _only_argument(args, message)
        return [Grounded(int_fn(x) if type(x) is int else float_fn(x))]

    return run


for _name, _fn in _FLOAT_FUNCTIONS.items():
    registry.add(_name, "(-> Number Number)")(_make_float_fn(_name, _fn))
for _name, (_int_fn, _float_fn) in _INT_PRESERVING.items():
    registry.add(_name, "(-> Number Number)")(_make_int_preserving(_name, _int_fn, _float_fn))


@registry.add("isnan-math", "(-> Number Bool)")
def _isnan(ev, args, call):
    x = _only_argument(args, _one_number_message("isnan-math"))
    return [TRUE if (type(x) is float and math.isnan(x)) else FALSE]


@registry.add("isinf-math", "(-> Number Bool)")
def _isinf(ev, args, call):
    x = _only_argument(args, _one_number_message("isinf-math"))
    return [TRUE if (type(x) is float and math.isinf(x)) else FALSE]
