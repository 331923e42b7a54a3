"""What compiled nondeterministic code calls at run time (see multi.py).

A compiled nondeterministic function returns the list of its results in the plain evaluator's
order. The helpers here keep that order where it is not decided by the generated code itself:
the order of several matching rules (the space's answer order, which depends on the shape of
the call), the answers of a `match` (the space's own query), and the alternatives of several
nondeterministic arguments (every combination, the first argument outermost, then reversed by
the evaluation level that makes the call). Anything outside what the compiled code can vouch for
raises runtime.Fallback.
"""

from __future__ import annotations

from itertools import product
from operator import itemgetter

from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.interp.compiled.runtime import Fallback, box
from metta_numba.interp.stdlib_space import query_conjunction
from metta_numba.space import EQUALS
from metta_numba.space.base import may_match
from metta_numba.space.grounding import GroundingSpace

_SPECIAL = frozenset(["Empty", "NotReducible", "Error"])
_RESULT = Variable("%result")


def rev_product(lists: list) -> list:
    """Every combination of the arguments' alternatives, last combination first (the order in
    which the evaluation level of a call hands their results on)."""
    found = list(product(*lists))
    found.reverse()
    return found


def _call_shape(value):
    """What of an argument the space's answer order of rules depends on: an expression's
    structure, whether a plain value is a string (strings match like variables), nothing else."""
    t = type(value)
    if t is Expression:
        return value
    if t is Grounded and type(value.value) is str:
        return "s"
    return "g"


class RuleOrder:
    """The order in which the plain evaluator tries the matching rules of one function: the
    space's answer order for `(= call $result)`, computed once per call shape and set of
    matching rules (the trie nodes of a function's rules stay put while its rules do)."""

    __slots__ = ("space", "head", "atoms", "cache")

    def __init__(self, space, head: Symbol, atoms: list) -> None:
        self.space = space
        self.head = head
        self.atoms = atoms
        self.cache: dict = {}

    def __call__(self, args: tuple, matched: list) -> list:
        if len(matched) < 2:
            return matched
        signature = (tuple(matched), tuple(map(_call_shape, args)))
        found = self.cache.get(signature)
        if found is None:
            call = Expression([self.head] + [box(a) for a in args])
            key = self.space.answer_order(Expression([EQUALS, call, _RESULT]))
            atoms = self.atoms
            found = self.cache[signature] = sorted(matched, key=lambda i: key(atoms[i]))
        return found


class SpaceQueries:
    """`match` answers over one space for compiled code, as rows of the values of the pattern's
    new variables.

    A flat pattern `(head v1 ... vn)` whose elements are values or new variables is answered
    from an index built by one query of `(head $1 ... $n)`, grouped by the values at the given
    positions, when every fact it finds is flat and plain (symbols and integers): those
    answers sorted in the space's order for the general pattern are, group by group, in its
    order for the narrower one (the trie keys of the given positions only repeat the shared
    prefix). The index is built once the space has stayed unchanged for a second call of a
    site; anything else is the op's own query."""

    __slots__ = ("space", "is_data", "indexes", "facts", "indexable")

    def __init__(self, space, is_data) -> None:
        self.space = space
        self.is_data = is_data
        self.indexes: dict = {}  # site -> [space version, index | None | _UNINDEXABLE, calls]
        self.facts: dict = {}  # (head, arity) -> (space version, sorted facts | _UNINDEXABLE)
        self.indexable = type(space) is GroundingSpace and space._segment is None and space.orders_answers

    def rows(self, site: tuple, values: tuple) -> list:
        """Answers of the pattern made from `site` (head, arity, given positions, new
        variables by position) with `values` at the given positions."""
        space = self.space
        indexable = self.indexable and not space.dependencies
        for value in values:
            if type(value) is not Symbol and type(value) is not int:
                indexable = False
                break
        if indexable:
            entry = self.indexes.get(site)
            if entry is None or entry[0] != space.version:
                entry = self.indexes[site] = [space.version, None, 0]
            index = entry[1]
            if index is None:
                entry[2] += 1
                if entry[2] >= 2:
                    index = entry[1] = self._build(site)
            if index is not None and index is not _UNINDEXABLE:
                return index.get(values, ())
        head, arity, given, new = site
        children = [head] + [None] * arity
        for position, value in zip(given, values):
            children[position] = box(value)
        for position, var in new:
            children[position] = var
        return self.query(Expression(children), [var for _, var in new])

    def query(self, pattern: Expression, new: list) -> list:
        """The op's own query: a row of the values of the variables `new` per answer."""
        is_data = self.is_data
        return [tuple(bound(b, var, is_data) for var in new) for b in query_conjunction(self.space, pattern)]

    def _build(self, site: tuple):
        head, arity, given, new = site
        found = self._facts(head, arity)
        if found is _UNINDEXABLE:
            return found
        index: dict = {}
        key_of = _picker([p - 1 for p in given])
        row_of = _picker([p - 1 for p, _ in new])
        for values in found:
            key = key_of(values)
            rows = index.get(key)
            if rows is None:
                index[key] = [row_of(values)]
            else:
                rows.append(row_of(values))
        return index

    def _facts(self, head: Symbol, arity: int):
        """The facts answering `(head $1 ... $n)` in the space's order (shared by the sites of
        one head while the space is unchanged), or _UNINDEXABLE."""
        space = self.space
        key = (head, arity)
        cached = self.facts.get(key)
        if cached is not None and cached[0] == space.version:
            return cached[1]
        pattern = Expression([head] + [Variable(f"%i{k}") for k in range(arity)])
        found = []
        for stored in space.candidates(pattern):
            if not may_match(stored, pattern):
                continue
            if type(stored) is not Expression or len(stored.children) != arity + 1 or stored.children[0] != head:
                found = _UNINDEXABLE
                break
            for child in stored.children[1:]:
                tc = type(child)
                if not ((tc is Symbol and child.name not in _SPECIAL) or (tc is Grounded and type(child.value) is int)):
                    found = _UNINDEXABLE
                    break
            if found is _UNINDEXABLE:
                break
            found.append(stored)
        if found is not _UNINDEXABLE:
            if len(found) > 1:
                found.sort(key=space.answer_order(pattern))
            # The plain values of each fact's elements, in the space's order.
            found = [tuple([_plain(c) for c in stored.children[1:]]) for stored in found]
        self.facts[key] = (space.version, found)
        return found


_UNINDEXABLE = {}


def _picker(positions: list):
    """A function from a tuple to the tuple of its elements at `positions`."""
    if not positions:
        return lambda values: ()
    if len(positions) == 1:
        position = positions[0]
        return lambda values: (values[position],)
    return itemgetter(*positions)


def _plain(atom):
    return atom.value if type(atom) is Grounded else atom


def value_of(atom, is_data):
    """The compiled value of an atom that reaches compiled code from outside it (a `match`
    answer, an element of a tuple handed to `superpose`): it must be a value the plain
    evaluator gives back unchanged, else Fallback."""
    t = type(atom)
    if t is Grounded:
        value = atom.value
        tv = type(value)
        if tv is int or tv is float or tv is bool:
            return value
        return atom
    if t is Symbol:
        if atom.name in _SPECIAL:
            raise Fallback
        return atom
    if t is Expression and atom._ground and is_data(atom):
        return atom
    raise Fallback


def bound(bindings: dict, var: Variable, is_data):
    """The value a `match` answer gives a pattern variable."""
    atom = bindings.get(var)
    if atom is None:
        raise Fallback
    return value_of(atom, is_data)


def tuple_value(children: list, is_data) -> Expression:
    """A tuple built from compiled values whose head is not known when compiling (a variable
    head, a `collapse`): the plain evaluator would evaluate it again, so it must be data."""
    built = Expression([box(c) for c in children])
    if not is_data(built):
        raise Fallback
    return built


def items_of(value, is_data) -> list:
    """The elements of a tuple given to `superpose` through a variable."""
    if type(value) is not Expression:
        raise Fallback
    return [value_of(child, is_data) for child in value.children]


def numbers(value, many: bool = False) -> None:
    """An argument of an arithmetic operation: a number (each alternative of it, when `many`)."""
    for v in value if many else (value,):
        t = type(v)
        if t is not int and t is not float:
            raise Fallback


def bools(value, many: bool = False) -> None:
    for v in value if many else (value,):
        if type(v) is not bool:
            raise Fallback


def namespace() -> dict:
    return {
        "rev_product": rev_product,
        "bound": bound,
        "tuple_value": tuple_value,
        "items_of": items_of,
        "numbers": numbers,
        "bools": bools,
    }
