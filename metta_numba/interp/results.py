"""How a finished evaluation hands its results to the caller (rules that any evaluation tier
must apply alike, so that results print as hyperon's do).

- `caller_view`: the bindings a result carries back name only the caller's own variables,
  and a callee's variable unified with one of them is renamed to it (issue class J).
- `evaluated_copy`: an expression that evaluated to itself is marked, and is not evaluated
  again even once its variables are bound (class D); the mark goes on a copy.
"""

from __future__ import annotations

from metta_numba.atoms import Atom, Expression, Variable
from metta_numba.unify import substitute


def caller_view(result: Atom, delta: dict, names: list) -> tuple:
    """(result, bindings) of a finished evaluation as its caller sees them: bindings of the
    caller's own variables only, and no variable of the callee left in sight.

    A caller's variable bound to a callee's variable (the two were unified) is not a binding
    for the caller: the callee's variable is renamed to the caller's one instead, as hyperon
    represents such a group by the caller's variable. Several caller variables in one group
    are bound to the first of them."""
    kept = {}
    renames = None
    for v in names:
        if v in delta:
            value = substitute(v, delta)
            if type(value) is Variable and value not in names:
                if renames is None:
                    renames = {}
                first = renames.get(value)
                if first is None:
                    renames[value] = v
                    continue
                value = first
            kept[v] = value
    if renames is not None:
        result = substitute(result, renames)
        kept = {v: substitute(value, renames) for v, value in kept.items()}
    return result, kept or None


def evaluated_copy(atom: Atom) -> Atom:
    """The atom marked as evaluated to itself; a copy, since the atom may be shared (a rule's
    body, a stored atom) and must be evaluated afresh elsewhere."""
    if type(atom) is not Expression:
        return atom
    marked = Expression(atom.children)
    marked.evaluated = True
    return marked
