"""Two-sided unification over atoms, shared by the store (exact checks of trie candidates) and
the interpreter (rule calls, `match`, `unify`, `let`).

Bindings are a plain dict from Variable to Atom; a variable may be bound to another variable,
and `resolve` follows such chains. Unification is iterative (no recursion on deep atoms) and
does an occurs check, so `$x` never unifies with `(f $x)`.

The two atoms must not share variables by accident: a stored rule is renamed apart with
`rename_apart` before it meets a query, as hyperon does (its `$x#17` names).
"""

from __future__ import annotations

import itertools

from metta_numba.atoms import Atom, Expression, Variable, is_ground, variables_of

Bindings = dict

_fresh_counter = itertools.count(1)


def fresh_suffix() -> int:
    """A process-wide counter for renamed variables (`$x#N`)."""
    return next(_fresh_counter)


def resolve(atom: Atom, bindings: Bindings) -> Atom:
    """Follow variable-to-variable links to the atom a variable currently stands for."""
    while type(atom) is Variable:
        bound = bindings.get(atom)
        if bound is None:
            return atom
        atom = bound
    return atom


def _occurs(var: Variable, atom: Expression, bindings: Bindings) -> bool:
    stack: list[Atom] = [atom]
    while stack:
        a = resolve(stack.pop(), bindings)
        t = type(a)
        if t is Variable:
            if a == var:
                return True
        elif t is Expression and not a._ground:
            stack.extend(a.children)
    return False


def unify_into(left: Atom, right: Atom, bindings: Bindings) -> bool:
    """Unify `left` with `right`, extending `bindings` in place. False when they do not unify
    (the dict may then hold partial bindings: pass a copy when the caller needs the old one)."""
    stack = [(left, right)]
    while stack:
        x, y = stack.pop()
        if type(x) is Variable:
            x = resolve(x, bindings)
        if type(y) is Variable:
            y = resolve(y, bindings)
        if x is y:
            continue
        tx = type(x)
        ty = type(y)
        if tx is Variable:
            if ty is Variable and x == y:
                continue
            if ty is Expression and not y._ground and _occurs(x, y, bindings):
                return False
            bindings[x] = y
        elif ty is Variable:
            if tx is Expression and not x._ground and _occurs(y, x, bindings):
                return False
            bindings[y] = x
        elif tx is Expression:
            if ty is not Expression:
                return False
            xs = x.children
            ys = y.children
            if len(xs) != len(ys):
                return False
            if x._ground and y._ground:
                if x._hash != y._hash or xs != ys:
                    return False
                continue
            stack.extend(zip(xs, ys))
        elif x != y:
            return False
    return True


def match_ground(pattern: Atom, ground: Atom) -> Bindings | None:
    """`unify(ground, pattern)` for an atom `ground` without variables, in one direction and
    without occurs checks (nothing can bind a variable of `ground`): the pattern's variables
    bound to parts of `ground`, in the order unification binds them, or None. Most stored atoms
    are ground, and this is what a query spends its time on per answer."""
    found: Bindings = {}
    if type(pattern) is Expression and type(ground) is Expression:
        # The common flat pattern, `(edge $x n_5)`: its children in a loop, last first as
        # unification takes them; a nested pattern goes through the stack below.
        pattern_children = pattern.children
        ground_children = ground.children
        if len(pattern_children) != len(ground_children):
            return None
        for k in range(len(pattern_children) - 1, -1, -1):
            y = pattern_children[k]
            if type(y) is not Variable:
                if type(y) is Expression and not y._ground:
                    found.clear()
                    break
                x = ground_children[k]
                if x is not y and x != y:
                    return None
            elif (bound := found.get(y)) is None:
                found[y] = ground_children[k]
            elif bound is not ground_children[k] and bound != ground_children[k]:
                return None
        else:
            return found
    stack = [(ground, pattern)]
    while stack:
        x, y = stack.pop()
        ty = type(y)
        if ty is Variable:
            bound = found.get(y)
            if bound is None:
                found[y] = x
            elif bound is not x and bound != x:
                return None
        elif ty is Expression and not y._ground:
            if type(x) is not Expression or len(x.children) != len(y.children):
                return None
            stack.extend(zip(x.children, y.children))
        elif x is not y and x != y:
            return None
    return found


def unify(left: Atom, right: Atom, bindings: Bindings | None = None) -> Bindings | None:
    """Unify two atoms; return the extended bindings (a new dict), or None."""
    result = dict(bindings) if bindings else {}
    return result if unify_into(left, right, result) else None


def substitute(atom: Atom, bindings: Bindings) -> Atom:
    """Replace every bound variable in `atom` by its value, all the way down."""
    if not bindings:
        return atom
    t = type(atom)
    if t is Variable:
        value = resolve(atom, bindings)
        if type(value) is Expression and not value._ground:
            return _substitute_expr(value, bindings)
        return value
    if t is Expression and not atom._ground:
        return _substitute_expr(atom, bindings)
    return atom


def _substitute_expr(atom: Expression, bindings: Bindings) -> Atom:
    # Post-order rebuild with an explicit stack; unification's occurs check rules out cycles.
    out: list[Atom] = []
    stack: list[tuple[Atom, bool]] = [(atom, False)]
    while stack:
        a, children_done = stack.pop()
        if children_done:
            n = len(a.children)
            kids = out[len(out) - n :]
            del out[len(out) - n :]
            out.append(a if all(k is c for k, c in zip(kids, a.children)) else Expression(kids))
            continue
        if type(a) is Variable:
            a = resolve(a, bindings)
        if type(a) is Expression and not a._ground:
            stack.append((a, True))
            stack.extend((c, False) for c in reversed(a.children))
        else:
            out.append(a)
    return out[0]


def rename_apart(atom: Atom, suffix: int | None = None) -> Atom:
    """Give every variable of `atom` a fresh name `name#N`, N one new number for the atom."""
    if type(atom) is Expression and atom._ground:
        return atom
    n = fresh_suffix() if suffix is None else suffix
    mapping: Bindings = {}
    return _rename(atom, mapping, n)


def _rename(atom: Atom, mapping: Bindings, n: int) -> Atom:
    t = type(atom)
    if t is Variable:
        new = mapping.get(atom)
        if new is None:
            base = atom.name.split("#", 1)[0]
            new = mapping[atom] = Variable(f"{base}#{n}")
        return new
    if t is Expression and not atom._ground:
        return Expression([_rename(c, mapping, n) for c in atom.children])
    return atom


def bindings_for(variables, bindings: Bindings) -> dict[Variable, Atom]:
    """The values of the given variables under `bindings`, fully substituted."""
    return {v: substitute(v, bindings) for v in variables}


def match_atom(pattern: Atom, stored: Atom) -> Bindings | None:
    """Unify a query pattern with a stored atom, renaming the stored atom's variables apart."""
    return unify(pattern, rename_apart(stored))


def match_counted(pattern: Atom, candidates) -> list[tuple[Atom, dict[Variable, Atom]]]:
    """(stored atom, values of the pattern's variables) of every candidate that unifies with
    `pattern`, once per copy; `candidates` yields (stored atom, number of copies)."""
    pattern_vars = variables_of(pattern)
    results = []
    for atom, copies in candidates:
        if is_ground(atom):
            found = match_ground(pattern, atom)
            if found is None:
                continue
            values = {v: found[v] for v in pattern_vars}
        else:
            bindings = unify(pattern, rename_apart(atom))
            if bindings is None:
                continue
            values = {v: value for v, value in bindings_for(pattern_vars, bindings).items() if value != v}
        results += [(atom, values)] * copies
    return results


def unified_counted(pattern: Atom, candidates) -> list[Bindings]:
    """The bindings of every candidate that unifies with `pattern` (stored atom on the left),
    once per copy; `candidates` yields (stored atom, number of copies)."""
    out: list[Bindings] = []
    for atom, copies in candidates:
        if is_ground(atom):
            found = match_ground(pattern, atom)
            if found is None:
                continue
        else:
            found = {}
            if not unify_into(rename_apart(atom), pattern, found):
                continue
        out.append(found)
        out.extend(dict(found) for _ in range(copies - 1))
    return out
