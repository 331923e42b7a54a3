"""Atoms -> text, printed the way hyperon prints them (METTA_REFERENCE.md section 1)."""

from __future__ import annotations

import math
import unicodedata

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable

_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
# Characters that do not show on their own: controls, format characters, separators other
# than the plain space, combining marks, private-use, surrogates and unassigned code points.
_HIDDEN_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs", "Mn", "Me"))


def format_float(x: float) -> str:
    """Shortest round-trip digits, always with a `.` or an exponent, exponent form outside
    [1e-4, 1e16): `3.0`, `1e16`, `1e-5`, `-0.0`, `inf`, `NaN`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)  # Python's repr already picks the shortest round-trip digits
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent[0] == "-" else ""
        return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def _escape_char(c: str) -> str:
    escaped = _STRING_ESCAPES.get(c)
    if escaped is not None:
        return escaped
    if c == " " or (c.isascii() and c.isprintable()):
        return c
    if unicodedata.category(c) in _HIDDEN_CATEGORIES:
        return f"\\u{{{ord(c):x}}}"
    return c


def format_string(s: str) -> str:
    """A string in double quotes, escaped as hyperon prints it (Rust's debug escaping):
    \\" \\\\ \\n \\t \\r \\0, and \\u{..} for characters that would not show."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return '"' + "".join(_escape_char(c) for c in s) + '"'


def format_grounded_value(value: object) -> str:
    t = type(value)
    if t is bool:
        return "True" if value else "False"
    if t is int:
        return str(value)
    if t is float:
        return format_float(value)
    if t is str:
        return format_string(value)
    return repr(value)


def _format_leaf(atom: Atom) -> str:
    t = type(atom)
    if t is Symbol:
        return atom.name
    if t is Variable:
        return "$" + atom.name
    if t is Grounded:
        return format_grounded_value(atom.value)
    if isinstance(atom, GroundedObject):
        return atom.display()
    return repr(atom)


def format_atom(atom: Atom) -> str:
    """Print one atom. Iterative, so that deeply nested atoms print without recursion."""
    if type(atom) is not Expression:
        return _format_leaf(atom)
    out: list[str] = []
    # Work items: an atom to print, or a literal string (a separator or a closing paren).
    stack: list[Atom | str] = [atom]
    while stack:
        item = stack.pop()
        if type(item) is str:
            out.append(item)
        elif type(item) is Expression:
            out.append("(")
            stack.append(")")
            children = item.children
            for i in range(len(children) - 1, -1, -1):
                stack.append(children[i])
                if i:
                    stack.append(" ")
        else:
            out.append(_format_leaf(item))
    return "".join(out)


def format_results(results: list[Atom]) -> str:
    """One `!` line: `[r1, r2]`, `[]` for none."""
    return "[" + ", ".join(format_atom(a) for a in results) + "]"
