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

from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.interp.compiled.runtime import Fallback, box
from metta_numba.interp.stdlib_space import query_conjunction
from metta_numba.space import EQUALS

_SPECIAL = frozenset(["Empty", "NotReducible", "Error"])
_RESULT = Variable("%result")
_QUERY_CACHE_SIZE = 4096


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
        signature = (tuple(matched), tuple(_call_shape(a) for a in args))
        found = self.cache.get(signature)
        if found is None:
            call = Expression([self.head] + [box(a) for a in args])
            key = self.space.answer_order(Expression([EQUALS, call, _RESULT]))
            atoms = self.atoms
            found = self.cache[signature] = sorted(matched, key=lambda i: key(atoms[i]))
        return found


class SpaceQueries:
    """`match` answers for compiled code: the op's own query, remembered while the space is
    unchanged (a recursive search asks the same pattern from several rules)."""

    __slots__ = ("space", "version", "answers")

    def __init__(self, space) -> None:
        self.space = space
        self.version = -1
        self.answers: dict = {}

    def __call__(self, pattern: Expression) -> list:
        space = self.space
        version = (space.version, tuple(s.version for s in space.dependencies))
        if version != self.version or len(self.answers) >= _QUERY_CACHE_SIZE:
            self.answers.clear()
            self.version = version
        found = self.answers.get(pattern)
        if found is None:
            found = self.answers[pattern] = query_conjunction(space, pattern)
        return found


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
