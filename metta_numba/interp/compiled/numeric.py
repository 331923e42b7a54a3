"""Tier 2: hot integer functions compiled with `numba.njit`.

A tier-1 function qualifies when it has a single rule whose head binds distinct variables, and
whose body uses only those variables, integer and Bool literals, `if`, `+ - *`, the comparisons, `==`,
`and`, `or`, `not` and calls to itself, so that with integer arguments every value is an i64 or
a Bool. Numba's i64 arithmetic wraps around as the plain evaluator's does. `/` and `%` stay in
tier 1 (their zero and overflow cases are Errors and special values).

The native function takes the recursion depth, its limit and an error cell: past the limit it
sets the cell and unwinds, and the call is redone in tier 1 (whose own limit hands it to the
plain evaluator when that is deeper still). Numba
caches compiled code only for functions defined in real files, so the generated source is
written to a per-user cache folder (named by a hash of the source) and imported from there;
with no writable folder it is compiled uncached.

Promotion costs about half a second the first time (importing numba and compiling) and tens of
milliseconds once cached, so a function is promoted only after `PROMOTE_AFTER` tier-1 calls,
about as long as importing numba takes: a short program never pays more than it saves.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import warnings

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.kernel_cache import private_folder

PROMOTE_AFTER = 1_000_000
"""Tier-1 calls of a function before it is compiled natively."""

NATIVE_DEPTH_LIMIT = 10_000
"""Deepest native recursion (frames live on the C stack, which has no guard)."""

_ARITH = {"+": "+", "-": "-", "*": "*"}
_COMPARE = {"<": "<", ">": ">", "<=": "<=", ">=": ">="}
INT, BOOL = "int64", "boolean"


def promotion_threshold(promote_after: int) -> int:
    """Calls before promotion: a tenth when numba is already imported (the import is most of
    the cost of promoting; compiling a function takes tens of milliseconds)."""
    if "numba" in sys.modules and promote_after >= PROMOTE_AFTER:
        return max(1, promote_after // 10)
    return max(1, promote_after)


class NotNumeric(Exception):
    pass


class _Typer:
    """Types of a body's expressions, given the function's assumed return type."""

    def __init__(self, name: str, params: list[Variable], ret: str) -> None:
        self.name = name
        self.params = set(params)
        self.ret = ret

    def type_of(self, atom: Atom) -> str:
        t = type(atom)
        if t is Variable:
            if atom not in self.params:
                raise NotNumeric
            return INT
        if t is Grounded:
            if type(atom.value) is int:
                return INT
            if type(atom.value) is bool:
                return BOOL
            raise NotNumeric
        if t is not Expression or not atom.children or type(atom.children[0]) is not Symbol:
            raise NotNumeric
        op = atom.children[0].name
        args = [self.type_of(a) for a in atom.children[1:]]
        if op == "if" and len(args) == 3 and args[0] == BOOL and args[1] == args[2]:
            return args[1]
        if (op in _ARITH or op in _COMPARE) and args == [INT, INT]:
            return INT if op in _ARITH else BOOL
        if op == "==" and len(args) == 2 and args[0] == args[1]:
            return BOOL
        if op in ("and", "or") and args == [BOOL, BOOL]:
            return BOOL
        if op == "not" and args == [BOOL]:
            return BOOL
        if op == self.name and all(a == INT for a in args) and len(args) == len(self.params):
            return self.ret
        raise NotNumeric


def return_type(name: str, rules: list) -> str | None:
    """The native return type of a qualifying function (see the module docstring), else None."""
    if len(rules) != 1:
        return None
    params = rules[0].lhs.children[1:]
    if not all(type(p) is Variable for p in params) or len(set(params)) != len(params):
        return None
    for ret in (INT, BOOL):
        try:
            if _Typer(name, list(params), ret).type_of(rules[0].rhs) == ret:
                return ret
        except NotNumeric:
            continue
    return None


def native_source(name: str, rule, ret: str, function: str) -> str:
    """Numba source of the function `function(a0.., d, limit, err)`."""
    params = list(rule.lhs.children[1:])
    names = {p: f"a{i}" for i, p in enumerate(params)}

    def expr(atom: Atom) -> str:
        if type(atom) is Variable:
            return names[atom]
        if type(atom) is Grounded:
            return repr(atom.value)
        op = atom.children[0].name
        args = [expr(a) for a in atom.children[1:]]
        if op == "if":
            return f"({args[1]} if {args[0]} else {args[2]})"
        if op in _ARITH or op in _COMPARE:
            return f"({args[0]} {op} {args[1]})"
        if op == "==":
            return f"({args[0]} == {args[1]})"
        if op == "and":
            return f"({args[0]} & {args[1]})"
        if op == "or":
            return f"({args[0]} | {args[1]})"
        if op == "not":
            return f"(not {args[0]})"
        return f"{function}({', '.join(args + ['d + 1', 'limit', 'err'])})"

    arg_list = ", ".join(names.values())
    signature = f"{ret}({', '.join(['int64'] * len(params) + ['int64', 'int64', 'int64[::1]'])})"
    zero = "0" if ret == INT else "False"
    return "\n".join(
        [
            f"# MeTTa function {name}/{len(params)}, generated by metta-numba's compiled tier.",
            "from numba import boolean, int64, njit",
            "",
            "",
            f"@njit({signature}, cache=CACHE)",
            f"def {function}({arg_list}{', ' if arg_list else ''}d, limit, err):",
            "    if err[0] != 0:",
            f"        return {zero}",
            "    if d > limit:",
            "        err[0] = 1",
            f"        return {zero}",
            f"    return {expr(rule.rhs)}",
            "",
        ]
    )


def load_native(name: str, rule, ret: str):
    """The njit-compiled function, from the per-user cache when possible; None if numba fails."""
    function = "native"
    body = native_source(name, rule, ret, function)
    digest = hashlib.sha256(body.encode()).hexdigest()[:24]
    folder = private_folder("tier2")
    try:
        if folder is not None:
            path = os.path.join(folder, f"m_{digest}.py")
            if not os.path.exists(path):
                tmp = f"{path}.{os.getpid()}.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write("CACHE = True\n" + body)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(f"metta_numba_tier2_{digest}", path)
            module = importlib.util.module_from_spec(spec)
            # Numba links a recursive call through its module, which must be importable.
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return getattr(module, function)
        namespace: dict = {}
        exec(compile("CACHE = False\n" + body, f"<tier2 {name}>", "exec"), namespace)
        return namespace[function]
    except Exception as err:  # numba missing, or a compile error: tier 1 keeps the function
        warnings.warn(f"metta-numba: {name} stays in tier 1 ({type(err).__name__}: {err})", stacklevel=2)
        return None


def dispatcher_source(pyname: str, arity: int) -> str:
    """Python source of the function that replaces tier-1 `pyname` once it is promoted."""
    params = [f"a{i}" for i in range(arity)]
    args = ", ".join(params)
    guard = " and ".join(f"type({p}) is int" for p in params) or "True"
    return "\n".join(
        [
            f"def {pyname}({args}{', ' if args else ''}d):",
            f"    if {guard}:",
            f"        err = ERR_{pyname}",
            "        err[0] = 0",
            f"        value = NATIVE_{pyname}({args}{', ' if args else ''}d, min(LIMIT, {NATIVE_DEPTH_LIMIT}), err)",
            "        if err[0] == 0:",
            "            return value",
            "    # Too deep for native frames (or not integers): tier 1 goes on from here.",
            f"    return TIER1_{pyname}({args}{', ' if args else ''}d)",
            "",
        ]
    )

