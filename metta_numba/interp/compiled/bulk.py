"""Answers in bulk: a top-level `!(match space pattern template)` over a snapshot, answered from
the KB's table of values instead of one evaluation frame per answer.

The same holds under a top-level `collapse`, which takes the answers whole. (`size-atom` takes
its argument unevaluated, as hyperon does: `(size-atom (collapse M))` is 2 whatever M finds.)

The plain evaluator runs `match`, then evaluates every instantiated template, each in its own
frame. When every instantiated template is final (a symbol, a grounded value, a variable, or a
ground expression built only from heads that no rule, type or operation can reduce, decided once
per head), that evaluation gives each one back unchanged, in the same order, so the answers are
the table's values put into the template. A template that may reduce, an `Empty` or an `Error`
among the values, a conjunction, or a space that must unify in Python goes the plain way.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.collector import collector_paused
from metta_numba.interp.core import SpaceAtom
from metta_numba.space.conjunction import conjuncts
from metta_numba.unify import substitute

if TYPE_CHECKING:
    from collections.abc import Callable

MATCH = "match"
COLLAPSE = "collapse"
_NOT_FINAL = frozenset(["Empty", "NotReducible"])
_name = attrgetter("name")


def match_call_parts(atom: Expression) -> tuple | None:
    """(space, pattern, template) of `(match <space atom> pattern template)`, else None."""
    kids = atom.children
    if len(kids) != 4 or type(kids[0]) is not Symbol or kids[0].name != MATCH:
        return None
    if not isinstance(kids[1], SpaceAtom):
        return None
    return kids[1].obj, kids[2], kids[3]


def instantiate_all(template: Atom, variables: list[Variable], columns: list[list]) -> list[Atom]:
    """The template with each answer's values put in, in answer order (None leaves a variable)."""
    count = len(columns[0]) if columns else None
    if type(template) is Variable and template in variables:
        column = columns[variables.index(template)]
        return [template if value is None else value for value in column]
    if type(template) is not Expression or template.is_ground:
        if count is None:
            raise ValueError("a table without variables has no answer count")
        return [template] * count
    out = []
    for row in zip(*columns):
        bindings = {v: a for v, a in zip(variables, row) if a is not None}
        out.append(substitute(template, bindings))
    return out


def all_final(results: list[Atom], is_data: Callable[[Expression], bool]) -> bool:
    """Would the evaluator give every result back unchanged? Each distinct value is checked once
    (a large answer set repeats the same value objects: they are told apart by identity first,
    which costs no hashing)."""
    if len(results) > 1000 and set(map(type, results)) == {Symbol}:
        # A large answer set of symbols only, checked without a Python loop.
        return _NOT_FINAL.isdisjoint(map(_name, results))
    checked: set = set()
    for result in {id(r): r for r in results}.values() if len(results) > 1000 else results:
        t = type(result)
        if t is Symbol:
            if result.name in _NOT_FINAL:
                return False
            continue
        if t is Grounded or t is Variable:
            continue
        if t is not Expression or not result.is_ground:
            return False
        if result in checked:
            continue
        if not is_data(result):
            return False
        checked.add(result)
    return True


def bulk_match(atom: Expression, is_data: Callable[[Expression], bool]) -> list[Atom] | None:
    """The results of a top-level match answered from a bindings table, or None."""
    parts = match_call_parts(atom)
    if parts is None:
        return None
    space, pattern, template = parts
    if conjuncts(pattern) is not None:
        return None
    # The answers may be a million new atoms (see collector_paused).
    with collector_paused():
        wanted = {template} if type(template) is Variable else set(variables_of(template))
        table = space.bindings_table(pattern, wanted)
        if table is None:
            return None
        variables, columns = table
        if not variables:
            return None  # a ground pattern: the plain path counts its copies
        results = instantiate_all(template, variables, columns)
        if not all_final(results, is_data):
            return None
    return results

