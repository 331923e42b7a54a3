"""Types: declared and inferred types of atoms, and the checks the evaluator applies.

`(: name T)` declares a type (several declarations give several types), `(:< Sub Super)` a
subtype, `(-> A B R)` a function type. An undeclared symbol has type `%Undefined%`, which
matches any type, as `Atom` does. The type of an application is the return type of each
function type of its head whose parameters accept the arguments' types; if the head has
function types but none fits, the application is ill-typed (no type at all).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable
from metta_numba.interp.core import (
    ATOM,
    BAD_ARG_TYPE,
    BOOL,
    CHAR,
    ERROR,
    EXPRESSION,
    GROUNDED,
    INCORRECT_ARITY,
    NUMBER,
    SPACE_TYPE,
    STATE_MONAD,
    STRING,
    SYMBOL,
    UNDEFINED,
    VARIABLE,
    Char,
    SpaceAtom,
    StateAtom,
    is_function_type,
    metatype,
)
from metta_numba.space import module_view
from metta_numba.unify import rename_apart, substitute, unify_into

if TYPE_CHECKING:
    from metta_numba.interp.evaluator import Evaluator

_META_TYPES = (ATOM, SYMBOL, VARIABLE, EXPRESSION, GROUNDED)
_MAX_TUPLE_TYPES = 64


# How a parameter's argument is passed.
EVALUATE = 0  # evaluated, then its type checked
AS_IS = 1  # `Atom`: passed unevaluated, never checked
AS_IS_CHECKED = 2  # `Expression`: passed unevaluated, type checked
AS_IS_IF_META = 3  # `Symbol`/`Variable`/`Grounded`: unevaluated when the argument already is one


class Signature:
    """A function type prepared for calls: parameter kinds are computed once."""

    __slots__ = ("ftype", "params", "ret", "kinds", "arity", "has_vars", "stop", "check_ret")

    def __init__(self, ftype: Expression) -> None:
        self.ftype = ftype
        kids = ftype.children
        self.params = kids[1:-1]
        self.ret = kids[-1]
        self.arity = len(self.params)
        self.has_vars = not ftype.is_ground
        self.kinds = tuple(_param_kind(p) for p in self.params)
        self.stop = self.ret == ATOM
        # Results are checked against the return type unless it accepts anything.
        self.check_ret = not self.stop and type(self.ret) is not Variable and self.ret != UNDEFINED

    def fresh(self) -> tuple:
        """(params, ret) for one call.

        Type variables need no renaming here: a call binds them in its own dict, and the
        argument types they meet are renamed apart (`fits`)."""
        return self.params, self.ret


def _param_kind(param: Atom) -> int:
    if param == ATOM:
        return AS_IS
    if param == EXPRESSION:
        return AS_IS_CHECKED
    if param == SYMBOL or param == VARIABLE or param == GROUNDED:
        return AS_IS_IF_META
    return EVALUATE


def fresh_type(type_atom: Atom) -> Atom:
    """A function type with its type variables renamed apart (one fresh copy per use)."""
    if type(type_atom) is Expression and not type_atom.is_ground:
        return rename_apart(type_atom)
    return type_atom


def value_type(atom: Atom) -> Atom:
    """The type of a grounded value or object."""
    if type(atom) is Grounded:
        v = atom.value
        tv = type(v)
        if tv is bool:
            return BOOL
        if tv is int or tv is float:
            return NUMBER
        if tv is str:
            return STRING
        if tv is Char:
            return CHAR
        return UNDEFINED
    if isinstance(atom, SpaceAtom):
        return SPACE_TYPE
    if isinstance(atom, StateAtom):
        return Expression([STATE_MONAD, atom.obj.value_type])
    return getattr(atom, "metta_type", UNDEFINED)


def match_types(expected: Atom, actual: Atom, bindings: dict) -> dict | None:
    """Unify two types under type-variable bindings; `%Undefined%` and `Atom` match anything."""
    if expected == actual:
        return bindings
    if expected == UNDEFINED or actual == UNDEFINED or expected == ATOM or actual == ATOM:
        return bindings
    trial = dict(bindings)
    return trial if unify_into(expected, actual, trial) else None


class Types:
    """Type queries against the evaluator's current space and the standard library."""

    def __init__(self, ev: Evaluator) -> None:
        self.ev = ev
        self._head_cache: dict = {}
        self._head_cache_key = None

    def _cache_valid(self) -> None:
        ev = self.ev
        key = self._head_cache_key
        space = ev.space
        if (
            key is None
            or key[0] is not space
            or key[1] != space.types_version
            or key[2] != ev.stdlib.types_version
            or key[3] != len(ev.ops)
        ):
            self._head_cache.clear()
            self._head_cache_key = (space, space.types_version, ev.stdlib.types_version, len(ev.ops))

    def declared(self, atom: Atom) -> list[Atom]:
        """Declared types of an atom, with their declared supertypes, own space first."""
        ev = self.ev
        spaces = module_view(ev.space) if ev.space.dependencies else [ev.space]
        if ev.stdlib is not ev.space:
            spaces.append(ev.stdlib)
        found = [t for space in spaces for t in space.declared_types(atom)]
        if not found:
            return found
        out: list[Atom] = []
        pending = list(found)
        while pending:
            t = pending.pop(0)
            if t in out:
                continue
            out.append(t)
            for space in spaces:
                pending.extend(space.supertypes(t))
        return out

    def types_of(self, atom: Atom) -> list[Atom]:
        """All types of an atom (hyperon's get_atom_types); [] for an ill-typed expression."""
        t = type(atom)
        if t is Symbol:
            op = self.ev.ops.get(atom.name)
            if op is not None and op.type_atom is not None:
                # A grounded operation has its built-in type only: hyperon replaces the name by
                # the grounded atom, whose type no `(: name T)` declaration changes.
                return [op.type_atom]
            return self.declared(atom) or [UNDEFINED]
        if t is Variable:
            return [UNDEFINED]
        if t is Expression:
            return self._expression_types(atom)
        if t is Grounded or isinstance(atom, GroundedObject):
            return [value_type(atom)]
        return [UNDEFINED]

    def _expression_types(self, atom: Expression) -> list[Atom]:
        kids = atom.children
        if not kids:
            return [UNDEFINED]
        own = self._declared_on_expression(atom)
        if own:
            # `(: (lo hi) Range)`: hyperon lists tuple types, then the expression's own types,
            # then the types of an application.
            computed = [t for t in self._computed_types(atom, kids) if t != UNDEFINED and t not in own]
            if any(is_function_type(t) for t in self.types_of(kids[0])):
                return own + computed
            return computed + own
        return self._computed_types(atom, kids)

    def _declared_on_expression(self, atom: Expression) -> list[Atom]:
        ev = self.ev
        if not (ev.space.types_expressions or ev.stdlib.types_expressions or ev.space.dependencies):
            return []
        return self.declared(atom)

    def _computed_types(self, atom: Expression, kids) -> list[Atom]:
        head_types = self.types_of(kids[0])
        fn_types = [ft for ft in head_types if is_function_type(ft)]
        if fn_types:
            out = []
            for ft in fn_types:
                ft = fresh_type(ft)
                params = ft.children[1:-1]
                if len(params) != len(kids) - 1:
                    continue
                bindings: dict = {}
                for arg, param in zip(kids[1:], params):
                    bindings = self.fits(arg, param, bindings)
                    if bindings is None:
                        break
                if bindings is not None:
                    out.append(substitute(ft.children[-1], bindings))
            return out
        child_types = []
        for child in kids:
            types = self.types_of(child)
            if not types:
                return []
            if types == [UNDEFINED]:
                return [UNDEFINED]
            child_types.append(types)
        combos = itertools.islice(itertools.product(*child_types), _MAX_TUPLE_TYPES)
        return [Expression(combo) for combo in combos]

    def fits(self, value: Atom, expected: Atom, bindings: dict) -> dict | None:
        """Bindings extended so that `value` has type `expected`, or None."""
        if type(value) is Grounded and value_type(value) is expected:
            return bindings
        if expected == ATOM or expected == UNDEFINED:
            return bindings
        if expected in _META_TYPES and metatype(value, self.ev.ops) == expected:
            return bindings
        for actual in self.types_of(value):
            found = match_types(expected, fresh_type(actual), bindings)
            if found is not None:
                return found
        return None

    def applicable(self, kids, sig: Signature) -> bool:
        """Whether the arguments of a call, as written, have the parameter types of `sig`
        (hyperon's check before it picks a function type; arguments are not evaluated)."""
        bindings: dict | None = {}
        for arg, param, kind in zip(kids[1:], sig.params, sig.kinds):
            if kind == AS_IS:
                continue
            bindings = self.fits(arg, param, bindings)
            if bindings is None:
                return False
        return True

    def stored_error(self, atom: Atom) -> Atom | None:
        """The type error of an atom about to be stored under `(pragma! type-check auto)`.

        Calls of typed heads are checked, arguments first (an inner error is reported as
        evaluation would report it); a call under an untyped head is not looked into.
        """
        if type(atom) is not Expression or not atom.children:
            return None
        signatures, _ = self.head_info(atom.children[0])
        if not signatures:
            return None
        args = atom.children[1:]
        fitting = [sig for sig in signatures if sig.arity == len(args)]
        if not fitting:
            return Expression([ERROR, atom, INCORRECT_ARITY])
        sig = fitting[0]
        bindings: dict | None = {}
        for i, (arg, param, kind) in enumerate(zip(args, sig.params, sig.kinds), start=1):
            if kind == AS_IS or param == UNDEFINED or param in _META_TYPES:
                # hyperon accepts such an argument as it is, without looking into its own type.
                continue
            inner = self.stored_error(arg)
            if inner is not None:
                return inner
            found = self.fits(arg, param, bindings)
            if found is None:
                reason = Expression([BAD_ARG_TYPE, Grounded(i), param, self.actual_type(arg)])
                return Expression([ERROR, atom, reason])
            bindings = found
        return None

    def actual_type(self, value: Atom) -> Atom:
        """The type named in a BadArgType/BadType report: the first one, else the metatype."""
        types = self.types_of(value)
        return types[0] if types else metatype(value, self.ev.ops)

    def head_info(self, head: Atom):
        """(signatures of its function types, whether it also acts as a plain tuple) for a head."""
        if type(head) is Symbol:
            self._cache_valid()
            info = self._head_cache.get(head)
            if info is None:
                info = self._head_info(head)
                self._head_cache[head] = info
            return info
        return self._head_info(head)

    def _head_info(self, head: Atom):
        if type(head) is Variable:
            return (), True
        types = self.types_of(head)
        signatures = tuple(Signature(t) for t in types if is_function_type(t))
        has_tuple = not types or any(not is_function_type(t) for t in types)
        return signatures, has_tuple
