"""The MeTTa evaluator: hyperon's `metta` semantics, computed directly.

Results are lists of alternatives `(atom, delta)`, where `delta` holds the bindings the
evaluation gave to the variables of its input (None when there are none), and the atom is
already substituted with them.

The order of alternatives follows hyperon's interpreter, which works them off a stack: every
place that produces several alternatives at once (rules matching one call, an operation with
several results, a space `unify`) hands them over last-first, and every `metta` level over an
expression collects what its inner evaluation finished and hands it on reversed. Both rules are
applied literally here, so that printed results come out in hyperon's order.

Evaluation recurses in Python. The nesting of `metta` levels is counted, and a program that
goes deeper than `max_depth` gets `(Error <atom> StackOverflow)` instead of a crash.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable, variables_of
from metta_numba.interp import minimal
from metta_numba.interp.core import (
    ATOM,
    BAD_ARG_TYPE,
    BAD_TYPE,
    EMPTY,
    EXPRESSION,
    GROUNDED,
    INCORRECT_ARITY,
    NOT_REDUCIBLE,
    STACK_OVERFLOW,
    SYMBOL,
    UNDEFINED,
    VARIABLE,
    SpaceAtom,
    error,
    is_error,
    merge,
    metatype,
)
from metta_numba.interp.grounded import ExecError, NoReduce, Operation
from metta_numba.interp.results import caller_view, evaluated_copy
from metta_numba.interp.types import (
    AS_IS,
    AS_IS_CHECKED,
    AS_IS_IF_META,
    Signature,
    Types,
    fresh_type,
    match_types,
)
from metta_numba.space import EQUALS, Space, module_view
from metta_numba.unify import fresh_suffix, match_ground, rename_apart, substitute, unify_into

if TYPE_CHECKING:
    from metta_numba.interp.runner import MeTTa

DEFAULT_MAX_DEPTH = 100_000
"""Deepest nesting of evaluation levels before a StackOverflow error (hyperon has no limit by
default; we need one because evaluation recurses in Python)."""

_FRAMES_PER_LEVEL = 12
_LAZY_META = (SYMBOL, VARIABLE, GROUNDED)


def instantiate(template: Atom, bindings: dict) -> Atom:
    """Substitute ground values for variables (a rule body after matching a ground call)."""
    t = type(template)
    if t is Variable:
        return bindings.get(template, template)
    if t is Expression and not template._ground:
        return Expression([instantiate(c, bindings) for c in template.children])
    return template


def _branch(kids, i: int, prefix: list, value: Atom, delta: dict | None) -> tuple:
    """(remaining elements, evaluated prefix) for one alternative of element i: the
    alternative's bindings apply to the elements on both sides of it."""
    if delta is None:
        return kids, prefix + [value]
    rest = list(kids[: i + 1]) + [substitute(k, delta) for k in kids[i + 1 :]]
    return rest, [substitute(p, delta) for p in prefix] + [value]


def _unchanged(values: list, kids, offset: int) -> bool:
    """True when evaluation left every element as it was (the call atom can be reused)."""
    for i, value in enumerate(values, offset):
        if value is not kids[i]:
            return False
    return True


def _is_function(atom: Atom) -> bool:
    if type(atom) is not Expression:
        return False
    kids = atom.children
    return len(kids) > 0 and type(kids[0]) is Symbol and kids[0].name == "function"


class Evaluator:
    """Evaluates atoms against a space (the context) plus the standard library space."""

    def __init__(self, space: Space, stdlib: Space, ops: dict[str, Operation], runner: MeTTa | None = None):
        self.space = space
        self.stdlib = stdlib
        self.ops = ops
        self.runner = runner
        self.types = Types(self)
        self.depth = 0
        self.max_depth = DEFAULT_MAX_DEPTH
        self.bare_minimal = False
        self.stdout = None
        self.stderr = None
        # The compiled tier (interp.compiled), plugged in by the runner; None runs everything here.
        self.tier = None

    # -- output -------------------------------------------------------------------------------
    def write_out(self, text: str) -> None:
        (self.stdout or sys.stdout).write(text + "\n")

    def write_err(self, text: str) -> None:
        (self.stderr or sys.stderr).write(text + "\n")

    # -- entry points ---------------------------------------------------------------------------
    def evaluate(self, atom: Atom, typ: Atom = UNDEFINED) -> list[Atom]:
        """Fully evaluate one atom (a top-level `!`), returning its results in hyperon's order.

        It may run inside another evaluation (a file run by `include`): the depth count of the
        outer one is put back afterwards."""
        if self.tier is not None and typ is UNDEFINED and type(atom) is Expression and not self.bare_minimal:
            found = self.tier.evaluate_top(atom)
            if found is not None:
                return found
        outer_depth = self.depth
        self.depth = 0
        needed = self.max_depth * _FRAMES_PER_LEVEL + 1000
        if sys.getrecursionlimit() < needed:
            sys.setrecursionlimit(needed)
        try:
            if self.bare_minimal:
                results = minimal.run_instruction(self, atom)
            else:
                results = self.metta(atom, typ)
        except RecursionError:
            results = [(error(atom, STACK_OVERFLOW), None)]
        self.depth = outer_depth
        return [a for a, _ in results]

    def space_atom(self, space: Space) -> SpaceAtom:
        return SpaceAtom(space)

    def in_space(self, space: Space, fn, *args):
        """Run `fn(*args)` with `space` as the context space."""
        saved = self.space
        self.space = space
        try:
            return fn(*args)
        finally:
            self.space = saved

    # -- metta: full evaluation -----------------------------------------------------------------
    def metta(self, atom: Atom, typ: Atom) -> list:
        t = type(atom)
        if t is Expression:
            if typ is not UNDEFINED and (typ == ATOM or typ == EXPRESSION):
                return [(atom, None)]
            if not atom.children:
                return self.type_cast(atom, typ)
            if atom.evaluated:
                return [(atom, None)]
            tier = self.tier
            if tier is not None and typ is UNDEFINED:
                done = tier.evaluate(atom)
                if done is not None:
                    return done
            depth = self.depth + 1
            if depth > self.max_depth:
                return [(error(atom, STACK_OVERFLOW), None)]
            self.depth = depth
            inner = self.interpret_expression(atom, typ)
            self.depth = depth - 1
            return self._level(atom, inner)
        if t is Symbol and atom.name == "Empty":
            # `Empty` evaluates to no result, also when it is the atom being evaluated.
            return []
        if t is Variable or typ == UNDEFINED or typ == ATOM:
            return [(atom, None)]
        return self.type_cast(atom, typ)

    def _level(self, atom: Expression, inner: list) -> list:
        """What a `metta` level hands on: no Empty, Errors only when nothing else, reversed."""
        good = []
        bad = []
        for item in inner:
            a = item[0]
            ta = type(a)
            if ta is Symbol:
                if a.name == "Empty":
                    continue
            elif ta is Expression:
                kids = a.children
                if kids and type(kids[0]) is Symbol and kids[0].name == "Error":
                    bad.append(item)
                    continue
            good.append(item)
        chosen = good or bad
        chosen.reverse()
        if atom._ground:
            # A ground atom has no variables of its own, so no binding needs to travel out.
            for i, (a, d) in enumerate(chosen):
                if d is not None:
                    chosen[i] = (a, None)
            return chosen
        names = None
        for i, (a, d) in enumerate(chosen):
            if d:
                if names is None:
                    names = variables_of(atom)
                chosen[i] = caller_view(a, d, names)
        return chosen

    def type_cast(self, atom: Atom, typ: Atom) -> list:
        if typ == UNDEFINED or typ == ATOM or typ == metatype(atom, self.ops):
            return [(atom, None)]
        types = self.types.types_of(atom)
        for actual in types:
            if match_types(typ, fresh_type(actual), {}) is not None:
                return [(atom, None)]
        actual = types[0] if types else UNDEFINED
        return [(error(atom, Expression([BAD_TYPE, typ, actual])), None)]

    def interpret_expression(self, atom: Expression, typ: Atom) -> list:
        kids = atom.children
        signatures, has_tuple = self.types.head_info(kids[0])
        if signatures:
            nargs = len(kids) - 1
            if len(signatures) == 1 and signatures[0].arity == nargs:
                return self.call_function(atom, signatures[0], typ)
            fitting = [sig for sig in signatures if sig.arity == nargs]
            if fitting:
                if len(fitting) > 1:
                    # Like hyperon: the call is made once, with the first function type whose
                    # parameters accept the arguments as written (before they are evaluated).
                    for sig in fitting:
                        if self.types.applicable(kids, sig):
                            return self.call_function(atom, sig, typ)
                # No type accepts the arguments as written: each is tried, as alternatives
                # (so wrong ones leave Errors that good results push aside).
                out = []
                for sig in reversed(fitting):
                    out.extend(self.call_function(atom, sig, typ))
                return out
            errors = [(error(atom, INCORRECT_ARITY), None) for _ in signatures]
            if not has_tuple:
                return errors
            return errors + self.call_tuple(atom, typ)
        return self.call_tuple(atom, typ)

    # -- typed calls ----------------------------------------------------------------------------
    def call_function(self, atom: Expression, sig: Signature, expected: Atom) -> list:
        params, ret = sig.fresh()
        type_bindings: dict = {}
        if not (expected is UNDEFINED or expected == UNDEFINED or expected == ATOM):
            found = match_types(expected, ret, type_bindings)
            if found is None:
                return [(error(atom, Expression([BAD_TYPE, expected, ret])), None)]
            type_bindings = found
        kids = atom.children
        head = kids[0]
        if type(head) is Expression:
            return self._call_curried(atom, sig, expected, type_bindings)
        stop = sig.stop
        check = sig.check_ret
        out = []
        for args, delta, tb in self._args_from(atom, kids, params, sig.kinds, 1, type_bindings, []):
            if type(args) is not list:
                out.append((args, delta))
                continue
            call = atom if _unchanged(args, kids, 1) else Expression([head] + args)
            results = self.metta_call(call, expected, stop)
            if check:
                results = self._check_results(results, substitute(ret, tb) if tb else ret)
            for r, d in results:
                out.append((r, d if delta is None else merge(delta, d)))
        return out

    def _call_curried(self, atom: Expression, sig: Signature, expected: Atom, type_bindings: dict) -> list:
        """A typed call whose operator is an expression, `((pick f) x)`: like hyperon, the
        operator is evaluated first (its expected type is the function type), then the call is
        made with its value in place, as a call of the same function type."""
        kids = atom.children
        out = []
        for op, op_delta in self.metta(kids[0], sig.ftype):
            if is_error(op) or (type(op) is Symbol and op.name == "Empty"):
                out.append((op, op_delta))
                continue
            for args, delta, tb in self._args_from(atom, kids, sig.params, sig.kinds, 1, type_bindings, []):
                if type(args) is not list:
                    out.append((args, delta))
                    continue
                results = self.metta_call(Expression([op] + args), expected, sig.stop)
                if sig.check_ret:
                    results = self._check_results(results, substitute(sig.ret, tb) if tb else sig.ret)
                if op_delta is not None:
                    delta = op_delta if delta is None else merge(op_delta, delta)
                for r, d in results:
                    out.append((r, d if delta is None else merge(delta, d)))
        return out

    def _check_results(self, results: list, rtype: Atom) -> list:
        """A typed function's results must have its return type: else `(Error r (BadType R T))`."""
        if type(rtype) is Variable:
            return results
        checked = []
        for r, d in results:
            if not is_error(r) and not (type(r) is Symbol and r.name == "Empty"):
                if self.types.fits(r, rtype, {}) is None:
                    r = error(r, Expression([BAD_TYPE, rtype, self.types.actual_type(r)]))
            checked.append((r, d))
        return checked

    def _arg_error(self, atom: Expression, i: int, param: Atom, value: Atom, arg: Atom, tb: dict, declared: Atom):
        """The Error for argument i, whose value does not have the parameter's type.

        hyperon checks the arguments as written first (BadArgType for the call); an argument
        expression that passes is then evaluated with the parameter type as its expected
        type, so a value of another type is reported on its own: `(Error 3 (BadType Bool
        Number))` for `(if (pick) ...)` where `(pick)` gives 3."""
        if (
            value is not arg
            and type(arg) is Expression
            and type(value) is not Expression
            and self.types.fits(arg, param, tb) is not None
        ):
            return error(value, Expression([BAD_TYPE, param, self.types.actual_type(value)]))
        return self._bad_arg(atom, i, param, value, declared)

    def _bad_arg(self, atom: Expression, i: int, param: Atom, value: Atom, declared: Atom) -> Expression:
        """`(Error call (BadArgType i T actual))`. As in hyperon, T is the parameter type with
        the type bindings made so far when it is a bare type variable, and otherwise as
        declared, its variables renamed apart: `(List $a#N)`, not `(List Number)`."""
        if type(declared) is Expression and not declared._ground:
            param = rename_apart(declared)
        return error(atom, Expression([BAD_ARG_TYPE, Grounded(i), param, self.types.actual_type(value)]))

    def _args_from(self, atom: Expression, kids, params, kinds, i: int, tb: dict, prefix: list) -> list:
        """Evaluate the arguments i.. of a typed call after the evaluated `prefix`.

        Alternatives are (argument list | Error | Empty, delta, type bindings). A deterministic
        argument just extends the prefix; several alternatives branch, each finishing the rest.
        """
        n = len(kids)
        fits = self.types.fits
        while i < n:
            arg = kids[i]
            kind = kinds[i - 1]
            param = params[i - 1]
            if tb and type(param) is not Symbol:
                param = substitute(param, tb)
            check = kind != AS_IS
            if kind == AS_IS or kind == AS_IS_CHECKED or type(arg) is not Expression:
                heads = None
            elif kind == AS_IS_IF_META and metatype(arg, self.ops) == param:
                heads = None
                check = False
            else:
                heads = self.metta(arg, UNDEFINED)
            if heads is None or (len(heads) == 1 and heads[0][1] is None):
                value = arg if heads is None else heads[0][0]
                if value is not arg and value != arg:
                    if type(value) is Symbol and value.name == "Empty":
                        return [(EMPTY, None, tb)]
                    if is_error(value):
                        return [(value, None, tb)]
                if check:
                    found = fits(value, param, tb)
                    if found is None:
                        return [(self._arg_error(atom, i, param, value, arg, tb, params[i - 1]), None, tb)]
                    tb = found
                prefix.append(value)
                i += 1
                continue
            out = []
            for value, delta in heads:
                if value is not arg and value != arg:
                    if type(value) is Symbol and value.name == "Empty":
                        out.append((EMPTY, delta, tb))
                        continue
                    if is_error(value):
                        out.append((value, delta, tb))
                        continue
                found = tb
                if check:
                    found = fits(value, param, tb)
                    if found is None:
                        out.append((self._arg_error(atom, i, param, value, arg, tb, params[i - 1]), delta, tb))
                        continue
                rest, branch = _branch(kids, i, prefix, value, delta)
                for tail, delta2, tb3 in self._args_from(atom, rest, params, kinds, i + 1, found, branch):
                    out.append((tail, merge(delta, delta2), tb3))
            return out
        return [(prefix, None, tb)]

    # -- untyped calls --------------------------------------------------------------------------
    def call_tuple(self, atom: Expression, typ: Atom) -> list:
        kids = atom.children
        out = []
        for reduced, delta in self._tuple_from(kids, 0, []):
            if type(reduced) is not list:
                out.append((reduced, delta))
                continue
            call = atom if _unchanged(reduced, kids, 0) else Expression(reduced)
            for r, d in self.metta_call(call, typ, False):
                out.append((r, d if delta is None else merge(delta, d)))
        return out

    def _tuple_from(self, kids, i: int, prefix: list) -> list:
        """Evaluate the elements i.. of an untyped call after the evaluated `prefix`."""
        n = len(kids)
        while i < n:
            child = kids[i]
            if type(child) is not Expression:
                if type(child) is Symbol and child.name == "Empty":
                    return [(EMPTY, None)]
                prefix.append(child)
                i += 1
                continue
            heads = self.metta(child, UNDEFINED)
            if len(heads) == 1 and heads[0][1] is None:
                value = heads[0][0]
                if type(value) is Symbol and value.name == "Empty":
                    return [(EMPTY, None)]
                if is_error(value):
                    return [(value, None)]
                prefix.append(value)
                i += 1
                continue
            out = []
            for value, delta in heads:
                if type(value) is Symbol and value.name == "Empty":
                    out.append((EMPTY, delta))
                    continue
                if is_error(value):
                    out.append((value, delta))
                    continue
                rest, branch = _branch(kids, i, prefix, value, delta)
                for tail, delta2 in self._tuple_from(rest, i + 1, branch):
                    out.append((tail, merge(delta, delta2)))
            return out
        return [(prefix, None)]

    # -- one call -------------------------------------------------------------------------------
    def metta_call(self, call: Atom, typ: Atom, stop: bool) -> list:
        """Reduce a call one step, then fully evaluate each result (unless `stop`)."""
        kids = call.children if type(call) is Expression else None
        if kids and type(kids[0]) is Symbol and kids[0].name == "Error":
            return [(call, None)]
        out = []
        for r, d in self.eval_step(call):
            tr = type(r)
            if tr is Symbol:
                name = r.name
                if name == "NotReducible":
                    out.append((evaluated_copy(call if d is None else substitute(call, d)), d))
                    continue
                if name == "Empty":
                    out.append((r, d))
                    continue
            elif tr is Expression and is_error(r):
                out.append((r, d))
                continue
            if stop:
                out.append((r, d))
                continue
            for r2, d2 in self.metta(r, typ):
                out.append((r2, d if d2 is None else merge(d, d2)))
        return out

    def eval_step(self, call: Atom) -> list:
        """One evaluation step (minimal MeTTa's `eval`): a grounded call or one layer of rules."""
        if type(call) is Expression:
            kids = call.children
            if kids:
                head = kids[0]
                th = type(head)
                if th is Symbol:
                    op = self.ops.get(head.name)
                    if op is not None:
                        return self.call_op(op, call)
                    if head.name in minimal.INSTRUCTIONS:
                        return minimal.run_instruction(self, call)
                elif th is Variable:
                    return [(NOT_REDUCIBLE, None)]
                elif th is Expression:
                    inner = head
                    while type(inner) is Expression and inner.children:
                        inner = inner.children[0]
                    if type(inner) is Variable:
                        return [(NOT_REDUCIBLE, None)]
                elif isinstance(head, GroundedObject) and isinstance(head.obj, Operation):
                    return self.call_op(head.obj, call)
        elif type(call) is Variable:
            return [(NOT_REDUCIBLE, None)]
        return self.query_rules(call)

    def call_op(self, op: Operation, call: Expression) -> list:
        try:
            results = op.execute(self, call.children[1:], call)
        except ExecError as err:
            return [(err.error_atom(call), None)]
        except NoReduce:
            return [(NOT_REDUCIBLE, None)]
        except IndexError:
            # Only a call made by `eval` reaches an operation with too few arguments (typed
            # calls are checked before); one that does not check them itself gets an Error.
            if op.arity is not None and op.arity != len(call.children) - 1:
                return [(error(call, INCORRECT_ARITY), None)]
            raise
        if not results:
            return [(EMPTY, None)]
        out = []
        for r in reversed(results):
            d = None
            if type(r) is tuple:
                r, d = r
            if _is_function(r):
                out.extend(minimal.run_function(self, r, call, d))
            else:
                out.append((r, d))
        return out

    def _apply_rules(self, space: Space, call: Atom) -> list:
        """(rule body, delta) for each rule of `space` matching `call`, in the space's answer order."""
        rules = space.rules_candidates(call)
        if not rules:
            return []
        matches = []
        if type(call) is not Expression or call._ground:
            for rule in rules:
                if rule.lhs_ground:
                    if rule.lhs != call:
                        continue
                    bindings = None
                else:
                    bindings = match_ground(rule.lhs, call)
                    if bindings is None:
                        continue
                if rule.rhs_only:
                    suffix = fresh_suffix()
                    bindings = dict(bindings) if bindings else {}
                    for var in rule.rhs_only:
                        bindings[var] = Variable(f"{var.name.split('#', 1)[0]}#{suffix}")
                matches.append((instantiate(rule.rhs, bindings) if bindings else rule.rhs, None, rule))
        else:
            call_vars = variables_of(call)
            for rule in rules:
                if rule.has_vars:
                    renamed = rename_apart(rule.atom)
                    lhs = renamed.children[1]
                    rhs = renamed.children[2]
                else:
                    lhs = rule.lhs
                    rhs = rule.rhs
                bindings = {}
                if not unify_into(lhs, call, bindings):
                    continue
                delta = {v: substitute(v, bindings) for v in call_vars if v in bindings}
                matches.append((substitute(rhs, bindings), delta or None, rule))
        if len(matches) > 1 and space.orders_answers:
            key = space.answer_order(Expression([EQUALS, call, Variable("%result")]))
            matches.sort(key=lambda match: key(match[2].atom))
        return [(rhs, delta) for rhs, delta, _ in matches]

    def query_rules(self, call: Atom) -> list:
        """Apply the rules of the context space (and its imports), then the library's, to `call`."""
        space = self.space
        matches = self._apply_rules(space, call)
        if space.dependencies:
            for member in module_view(space)[1:]:
                if member is not self.stdlib:
                    matches.extend(self._apply_rules(member, call))
        if self.stdlib is not space:
            matches.extend(self._apply_rules(self.stdlib, call))
        if not matches:
            return [(NOT_REDUCIBLE, None)]
        out = []
        for rhs, delta in reversed(matches):
            if _is_function(rhs):
                out.extend(minimal.run_function(self, rhs, call, delta))
            else:
                out.append((rhs, delta))
        return out
