"""Minimal MeTTa: the instructions `eval`, `evalc`, `chain`, `unify`, `cons-atom`,
`decons-atom`, `function`/`return`, `collapse-bind`, `superpose-bind`, `metta` and
`context-space`.

An instruction's results are final values: `(eval (dbl 4))` is `(* 2 4)`, not 8. Anything
that is not an instruction is already a value. Malformed instructions give hyperon's error
atoms, whose reasons are bare text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Variable
from metta_numba.interp.core import (
    NO_RETURN,
    BindingsAtom,
    SpaceAtom,
    error,
    error_text,
    fresh_variable,
    is_empty,
    merge,
)
from metta_numba.space import query_view
from metta_numba.unify import substitute, unify_into

if TYPE_CHECKING:
    from metta_numba.interp.evaluator import Evaluator

INSTRUCTIONS = frozenset(
    [
        "eval",
        "evalc",
        "chain",
        "unify",
        "cons-atom",
        "decons-atom",
        "function",
        "collapse-bind",
        "superpose-bind",
        "metta",
        "context-space",
    ]
)


def is_instruction(atom: Atom) -> bool:
    if type(atom) is not Expression or not atom.children:
        return False
    head = atom.children[0]
    return type(head) is not Variable and getattr(head, "name", None) in INSTRUCTIONS


def replace_variable(atom: Atom, var: Variable, value: Atom) -> Atom:
    """Put `value` for every occurrence of `var`, in one pass (no re-resolution of `value`)."""
    t = type(atom)
    if t is Variable:
        return value if atom == var else atom
    if t is Expression and not atom.is_ground:
        kids = [replace_variable(c, var, value) for c in atom.children]
        if all(a is b for a, b in zip(kids, atom.children)):
            return atom
        return Expression(kids)
    return atom


def run_instruction(ev: Evaluator, atom: Atom) -> list:
    """Execute one minimal-MeTTa instruction; a non-instruction is returned as it is."""
    if type(atom) is Expression and atom.children:
        head = atom.children[0]
        name = getattr(head, "name", None) if type(head) is not Variable else None
        handler = _HANDLERS.get(name) if name is not None else None
        if handler is not None:
            return handler(ev, atom)
    return [(atom, None)]


def _malformed(atom: Expression, shape: str) -> list:
    return [(error_text(atom, f"expected: {shape}, found: {atom!r}"), None)]


def _eval(ev: Evaluator, atom: Expression) -> list:
    if len(atom.children) != 2:
        return _malformed(atom, "(eval <atom>)")
    return ev.eval_step(atom.children[1])


def _evalc(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 3 or not isinstance(kids[2], SpaceAtom):
        return _malformed(atom, "(evalc <atom> <space>)")
    return ev.in_space(kids[2].obj, ev.eval_step, kids[1])


def _chain(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 4 or type(kids[2]) is not Variable:
        return _malformed(atom, "(chain <nested> (: <var> Variable) <templ>)")
    _, nested, var, template = kids
    out = []
    for value, delta in run_instruction(ev, nested):
        body = replace_variable(template, var, value)
        if delta:
            body = substitute(body, delta)
        for result, delta2 in run_instruction(ev, body):
            out.append((result, merge(delta, delta2)))
    return out


def space_matches(target: SpaceAtom, pattern: Atom) -> list:
    """Bindings for each way a space atom unifies with a (non-variable) pattern: a space
    matches by being queried, as hyperon's spaces do. A pattern that is itself a space is
    matched atom by atom: each of its atoms queried in the target (so `&box` unifies with
    `&box` once per atom it holds)."""
    if isinstance(pattern, SpaceAtom):
        return [b for stored in pattern.obj.listing() for b in query_view(target.obj, stored)]
    return query_view(target.obj, pattern)


def _unify(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 5:
        return _malformed(atom, "(unify <atom> <pattern> <then> <else>)")
    _, target, pattern, then, otherwise = kids
    if isinstance(target, SpaceAtom) and type(pattern) is not Variable:
        pattern_vars = set()
        stack = [pattern]
        while stack:
            a = stack.pop()
            if type(a) is Variable:
                pattern_vars.add(a)
            elif type(a) is Expression and not a.is_ground:
                stack.extend(a.children)
        matches = []
        for bindings in space_matches(target, pattern):
            delta = {v: substitute(v, bindings) for v in pattern_vars if v in bindings}
            matches.append((substitute(then, bindings), delta or None))
        if not matches:
            return [(otherwise, None)]
        matches.reverse()
        return matches
    # The pattern goes first: a pattern variable meeting a variable of the atom is bound to
    # it, so `then` shows the atom's names (`(let $v $w ($v $w))` gives `($w $w)`).
    bindings: dict = {}
    if unify_into(pattern, target, bindings):
        return [(substitute(then, bindings), bindings or None)]
    return [(otherwise, None)]


def _cons_atom(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 3 or type(kids[2]) is not Expression:
        return _malformed(atom, "(cons-atom <head> (: <tail> Expression))")
    return [(Expression((kids[1],) + kids[2].children), None)]


def _decons_atom(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 2 or type(kids[1]) is not Expression or not kids[1].children:
        return _malformed(atom, "(decons-atom (: <expr> Expression))")
    items = kids[1].children
    return [(Expression([items[0], Expression(items[1:])]), None)]


def _function(ev: Evaluator, atom: Expression) -> list:
    return run_function(ev, atom, None, None)


def run_function(ev: Evaluator, atom: Expression, call: Atom | None, delta: dict | None) -> list:
    """Run `(function body)` until the body becomes `(return X)`; yield each such X.

    A body that ends in something else has no return: `(Error <call> NoReturn)` when the
    function is the body of a call, a fresh unbound `$result#N` for a bare instruction.
    """
    kids = atom.children
    if len(kids) != 2 or type(kids[1]) is not Expression:
        return [(error_text(atom, f"expected: (function (: <body> Expression)), found: {atom!r}"), delta)]
    return _function_loop(ev, kids[1], call, delta)


def _function_loop(ev: Evaluator, body: Atom, call: Atom | None, delta: dict | None) -> list:
    out = []
    for result, d in run_instruction(ev, body):
        d = merge(delta, d)
        if _is_return(result):
            out.append((result.children[1], d))
        elif is_instruction(result):
            out.extend(_function_loop(ev, result, call, d))
        elif call is not None:
            out.append((error(call, NO_RETURN), d))
        else:
            out.append((fresh_variable("result"), d))
    return out


def _is_return(atom: Atom) -> bool:
    if type(atom) is not Expression or len(atom.children) != 2:
        return False
    head = atom.children[0]
    return type(head) is not Variable and getattr(head, "name", None) == "return"


def _collapse_bind(ev: Evaluator, atom: Expression) -> list:
    if len(atom.children) != 2:
        return _malformed(atom, "(collapse-bind <atom>)")
    pairs = [
        Expression([result, BindingsAtom(delta or {})])
        for result, delta in run_instruction(ev, atom.children[1])
        if not is_empty(result)
    ]
    return [(Expression(pairs), None)]


def _superpose_bind(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 2 or type(kids[1]) is not Expression:
        return _malformed(atom, "(superpose-bind (: <collapsed> Expression))")
    out = []
    for pair in kids[1].children:
        well_formed = type(pair) is Expression and len(pair.children) == 2
        if not well_formed or not isinstance(pair.children[1], BindingsAtom):
            return [(error_text(atom, f"(Atom Bindings) pair is expected, {pair!r} was received"), None)]
        value, bindings = pair.children
        out.append((value, dict(bindings.obj) or None))
    out.reverse()
    return out


def _metta(ev: Evaluator, atom: Expression) -> list:
    kids = atom.children
    if len(kids) != 4 or not isinstance(kids[3], SpaceAtom):
        return _malformed(atom, "(metta atom type space)")
    return ev.in_space(kids[3].obj, ev.metta, kids[1], kids[2])


def _context_space(ev: Evaluator, atom: Expression) -> list:
    if len(atom.children) != 1:
        return _malformed(atom, "(context-space)")
    return [(ev.space_atom(ev.space), None)]


_HANDLERS = {
    "eval": _eval,
    "evalc": _evalc,
    "chain": _chain,
    "unify": _unify,
    "cons-atom": _cons_atom,
    "decons-atom": _decons_atom,
    "function": _function,
    "collapse-bind": _collapse_bind,
    "superpose-bind": _superpose_bind,
    "metta": _metta,
    "context-space": _context_space,
}
