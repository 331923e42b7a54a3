"""How a finished evaluation hands its results to the caller (rules that any evaluation tier
must apply alike, so that results print as hyperon's do).

- `caller_view`: the bindings a result carries back name only the caller's own variables,
  and a callee's variable unified with one of them is renamed to it (issue class J).
- `evaluated_copy`: an expression that evaluated to itself is marked, and is not evaluated
  again (class D); the mark goes on a copy. Substitution makes new, unmarked atoms (hyperon's
  `let` and `unify` hand back their template with the bindings applied, so `(+ $x 1)` is
  evaluated again once `$x` is bound), except for `match`, which hands its template back
  as it is, the bindings beside it: `match_result` keeps the marks there, so
  `(let $p (stash (w $a)) (match &self $p $p))` gives `(stash (w (one)))` unevaluated.
"""

from __future__ import annotations

from metta_numba.atoms import Atom, Expression, Variable
from metta_numba.unify import resolve, substitute


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


def _has_marks(atom: Atom) -> bool:
    stack = [atom]
    while stack:
        item = stack.pop()
        if type(item) is Expression and not item._ground:
            if item.evaluated:
                return True
            stack.extend(item.children)
    return False


def _substitute_marked(atom: Atom, bindings: dict) -> Atom:
    t = type(atom)
    if t is Variable:
        value = resolve(atom, bindings)
        return value if value is atom else _substitute_marked(value, bindings)
    if t is not Expression or atom._ground:
        return atom
    kids = [_substitute_marked(child, bindings) for child in atom.children]
    if all(new is old for new, old in zip(kids, atom.children)):
        return atom
    rebuilt = Expression(kids)
    rebuilt.evaluated = atom.evaluated
    return rebuilt


def match_result(template: Atom, bindings: dict) -> Atom:
    """`match`'s template with a query's bindings applied, its marked expressions still
    marked (only a template holding one needs the slower, recursive rebuild)."""
    if not bindings or not _has_marks(template):
        return substitute(template, bindings)
    return _substitute_marked(template, bindings)
