"""The compiled tier as the evaluator sees it: one entry point, per-function caching and
invalidation, and the hand-back to the plain evaluator.

`CompiledTier.evaluate(call)` is asked first whenever the evaluator fully evaluates an
expression. It answers when the call's head is a compiled function (compiling it on first use)
and the arguments are ground values; otherwise it returns None and the plain evaluator goes on
as if the tier did not exist. When compiled code hands back (runtime.Fallback), the same call is
evaluated by the plain evaluator with the tier suspended, so that any answer, Error or
StackOverflow is the plain evaluator's own.

Compiled code stays valid while the rules and type declarations of the heads it was built from
are unchanged: spaces count changes per head (`Space.head_versions`), so adding facts, memoised
results or another function's rules never recompiles anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Expression, Grounded, Symbol
from metta_numba.interp import minimal
from metta_numba.interp.compiled import multi_runtime, numeric, runtime
from metta_numba.interp.compiled.bulk import COLLAPSE, MATCH, all_final, bulk_match, match_call_parts
from metta_numba.interp.compiled.codegen import (
    IF,
    LET,
    NUMERIC,
    PLAIN,
    SPECIAL_VALUES,
    Compiler,
    Refused,
    call_shape,
    exact_key,
    is_reserved,
    is_rule_for,
    pyname_of,
)
from metta_numba.interp.compiled.multi import DET, MULTI, MultiCompiler, multi_pyname
from metta_numba.interp.compiled.runtime import Fallback
from metta_numba.interp.core import ARROW, NUMBER, UNDEFINED
from metta_numba.space import ANY_HEAD, Space, module_view

if TYPE_CHECKING:
    from metta_numba.interp.evaluator import Evaluator

_MISSING = object()
COLLAPSE_SYMBOL = Symbol(COLLAPSE)


class World:
    """What the compiler may assume about the program, read from the evaluator's spaces."""

    def __init__(self, ev: Evaluator, library_ops: dict) -> None:
        self.ev = ev
        self.program = ev.space
        self.others = [s for s in module_view(ev.space)[1:] if s is not ev.stdlib]
        if ev.stdlib is not ev.space:
            self.others.append(ev.stdlib)
        self.library_ops = library_ops

    def _rules(self, space: Space, name: str, arity: int) -> list:
        shape = call_shape(name, arity)
        return [r for r in space.rules_candidates(shape) if is_rule_for(r.atom, shape)]

    def _declared(self, name: str) -> list:
        return self.ev.types.declared(Symbol(name))

    def program_rules(self, name: str, arity: int) -> list:
        """The rules of `name/arity`, all from the program space; Refused if others apply too."""
        if any(self._rules(space, name, arity) for space in self.others):
            raise Refused(f"{name} has rules outside the program space")
        return self._rules(self.program, name, arity)

    def function_kind(self, name: str, arity: int) -> str | None:
        """PLAIN for an untyped function, NUMERIC for one declared `(-> Number ... Number)` with
        this arity and no other type; None for anything else (other types, operations, words)."""
        if is_reserved(name) or name in self.ev.ops:
            return None
        declared = self._declared(name)
        if not declared:
            return PLAIN
        if len(declared) == 1 and declared[0] == _numeric_signature(arity):
            return NUMERIC
        return None

    def is_library_empty(self) -> bool:
        """`(empty)` is the library's rule giving Empty, untouched by the program."""
        if "empty" in self.ev.ops or self._declared("empty") or self._rules(self.program, "empty", 0):
            return False
        found = [r for space in self.spaces() for r in self._rules(space, "empty", 0)]
        return len(found) == 1 and found[0].rhs == Symbol("Empty") and found[0].lhs == call_shape("empty", 0)

    def is_inert_tuple(self, head: Grounded, arity: int) -> bool:
        """No rule can reduce a tuple headed by this plain value (a number, a Bool)."""
        shape = Expression([head, *call_shape("", arity).children[1:]])
        return not any(
            is_rule_for(r.atom, shape) for space in self.spaces() for r in space.rules_candidates(shape)
        )

    def is_constructor(self, name: str, arity: int) -> bool:
        """No rule, type or operation can reduce `(name ...)`: it is data."""
        if self.function_kind(name, arity) != PLAIN:
            return False
        return not any(self._rules(space, name, arity) for space in [self.program, *self.others])

    def library_op(self, name: str) -> bool:
        """Is `name` the library's grounded operation, with no type declared by the program?"""
        op = self.ev.ops.get(name)
        return op is not None and op is self.library_ops.get(name) and not self._declared(name)

    def is_pure_operation(self, name: str, arity: int) -> bool:
        return self.library_op(name) and len(self.ev.ops[name].type_atom.children) - 2 == arity

    def is_library_word(self, name: str, arity: int) -> bool:
        """`if` and `let` as the library defines them, not redefined by the program."""
        if self._rules(self.program, name, arity):
            return False
        if name == IF:
            return self.library_op(IF)
        if name == LET:
            return len(self._declared(LET)) == 1 and not self.program.declared_types(Symbol(LET))
        return False

    def spaces(self) -> list[Space]:
        return [self.program, *self.others]


class _Unit:
    """Functions compiled together, with the head versions they were built from."""

    __slots__ = ("keys", "heads", "stamp", "constants_name")

    def __init__(self, keys: list, heads: tuple, stamp: tuple, constants_name: str) -> None:
        self.keys = keys
        self.heads = heads
        self.stamp = stamp
        self.constants_name = constants_name


def _numeric_signature(arity: int) -> Expression:
    return Expression([ARROW] + [NUMBER] * (arity + 1))


def _stamp(spaces: list[Space], heads: tuple) -> tuple:
    return tuple(tuple(s.head_versions.get(h, 0) for h in heads) for s in spaces)


class _Context:
    """Compiled functions for one program space."""

    def __init__(self, ev: Evaluator, library_ops: dict, promote_after: int | None) -> None:
        self.ev = ev
        self.space = ev.space
        self.library_ops = library_ops
        self.promote_after = promote_after
        self.namespace: dict = runtime.namespace()
        self.namespace.update(multi_runtime.namespace())
        self.namespace["LIMIT"] = 0
        self.namespace["PROMOTE"] = self.promote
        self.promotable: dict[str, tuple] = {}
        self.numeric: set = set()  # keys of functions declared (-> Number ... Number)
        self.promoted: list[str] = []
        self.entries: dict = {}
        self.kinds: dict = {}  # DET or MULTI for every compiled key
        self.queries: dict = {}  # top-level query atom -> compiled function (None: refused)
        self.units: list[_Unit] = []
        self.levels_per_call = 1
        self.epoch = None
        self.quick_stamp = None
        self.words: dict[str, bool] = {}  # library operations not redefined (CompiledTier._library_word)
        self.compiled_count = 0

    def current_epoch(self) -> tuple:
        ev = self.ev
        spaces = module_view(self.space) if self.space.dependencies else [self.space]
        if ev.stdlib is not self.space:
            spaces = [*spaces, ev.stdlib]
        return (tuple((s.space_id, s.rules_version, s.types_version) for s in spaces), len(ev.ops))

    def revalidate(self) -> None:
        epoch = self.current_epoch()
        if epoch == self.epoch:
            return
        self.epoch = epoch
        self.words.clear()
        spaces = World(self.ev, self.library_ops).spaces()
        kept = []
        for unit in self.units:
            if _stamp(spaces, unit.heads) == unit.stamp:
                kept.append(unit)
                continue
            for key in unit.keys:
                if key[0] is _QUERY:
                    self.queries.pop(key[1], None)
                    continue
                self.entries.pop(key, None)
                kind = self.kinds.pop(key, DET)
                self.namespace[pyname_of(*key) if kind == DET else multi_pyname(*key)] = _stale
                self.promotable.pop(pyname_of(*key), None)
                self.numeric.discard(key)
            # A program that redefines its functions again and again keeps no old constants.
            self.namespace.pop(unit.constants_name, None)
        self.units = kept
        # Refusals are cheap to redo and any change may have lifted one.
        for key in [k for k, fn in self.entries.items() if fn is None]:
            del self.entries[key]
        for atom in [a for a, fn in self.queries.items() if fn is None]:
            del self.queries[atom]

    def compile(self, key: tuple[str, int]):
        world = World(self.ev, self.library_ops)
        constants_name = f"K{self.compiled_count}"
        compiler = Compiler(world, constants_name)
        known = {k: self.kinds[k] for k, fn in self.entries.items() if fn is not None}
        multi = None
        try:
            plans = compiler.plan(key[0], key[1], {k for k, kind in known.items() if kind == DET})
        except Refused:
            compiler = Compiler(world, constants_name)
            multi = MultiCompiler(world, compiler)
            try:
                multi.plan(key, known)
            except Refused:
                self.entries[key] = None
                return None
            plans = multi.det_plans
        return self._load(world, compiler, multi, plans, known, key)

    def compile_query(self, atom: Expression):
        """A top-level query as one compiled function of no arguments, or None."""
        world = World(self.ev, self.library_ops)
        constants_name = f"K{self.compiled_count}"
        compiler = Compiler(world, constants_name)
        multi = MultiCompiler(world, compiler)
        known = {k: self.kinds[k] for k, fn in self.entries.items() if fn is not None}
        if len(self.queries) >= _MAX_QUERIES:
            self._forget_queries()
        try:
            multi.plan(None, known, query=atom, query_name=f"QUERY{self.compiled_count}")
        except Refused:
            self.queries[exact_key(atom)] = None
            return None
        return self._load(world, compiler, multi, multi.det_plans, known, (_QUERY, exact_key(atom)))

    def _forget_queries(self) -> None:
        """Drop the compiled top-level queries (a program of many distinct `!`s keeps only the
        latest), keeping the functions compiled with them."""
        self.queries.clear()
        kept = []
        for unit in self.units:
            keys = [k for k in unit.keys if k[0] is not _QUERY]
            if keys:
                unit.keys = keys
                kept.append(unit)
            else:
                self.namespace.pop(unit.constants_name, None)
        self.units = kept

    def _load(self, world: World, compiler: Compiler, multi, plans: dict, known: dict, key):
        """Write, run and register the source of one unit; the function for `key`."""
        names = {k: pyname_of(*k) if kind == DET else multi_pyname(*k) for k, kind in known.items()}
        names.update({k: plan.pyname for k, plan in plans.items()})
        kinds = dict(known)
        kinds.update({k: DET for k in plans})
        if multi is not None:
            names.update({k: plan.pyname for k, plan in multi.plans.items() if k is not None})
            kinds.update({k: MULTI for k in multi.plans if k is not None})
        if self.promote_after is not None:
            for k, plan in plans.items():
                ret = numeric.return_type(plan.name, plan.rules)
                if ret is not None and not (plan.numeric and ret != numeric.INT):
                    compiler.counted.add(plan.pyname)
                    self.promotable[plan.pyname] = (k, plan.rules[0], ret)
                    self.namespace[f"C_{plan.pyname}"] = [numeric.promotion_threshold(self.promote_after)]
        namespace = self.namespace
        if multi is None:
            source = compiler.source(plans, names)
        else:
            source = multi.source(names, kinds)
            for name, (head, atoms) in multi.orders.items():
                namespace[name] = multi_runtime.RuleOrder(world.program, head, atoms)
            for name, space in multi.spaces.items():
                if name not in namespace:
                    namespace[name] = multi_runtime.SpaceQueries(space, namespace["DATA"])
        constants_name = compiler.constants_name
        namespace[constants_name] = compiler.constants
        # Functions call each other through this namespace, so a recompiled function replaces
        # the old one for every caller at once.
        title = "query" if key[0] is _QUERY else key[0]
        exec(compile(source, f"<metta {title}>", "exec"), namespace)
        functions = {plan.pyname: namespace[plan.pyname] for plan in plans.values()}
        self.compiled_count += 1
        heads = tuple(sorted(compiler.heads_used | {ANY_HEAD}))
        keys = list(plans) + ([] if multi is None else [k if k is not None else key for k in multi.plans])
        self.units.append(_Unit(keys, heads, _stamp(world.spaces(), heads), constants_name))
        # A call nested n expressions deep in a body runs n evaluation levels below its caller in
        # the plain evaluator (`let` bodies count two more); one more keeps a margin.
        self.levels_per_call = max(self.levels_per_call, compiler.max_nesting + 1)
        for k, plan in plans.items():
            self.entries[k] = functions[plan.pyname]
            self.kinds[k] = DET
            if plan.numeric:
                self.numeric.add(k)
        if multi is not None:
            for k, plan in multi.plans.items():
                if k is not None:
                    self.entries[k] = namespace[plan.pyname]
                    self.kinds[k] = MULTI
            query = multi.plans.get(None)
            if query is not None:
                # Only the query cache holds a query's function.
                found = self.queries[key[1]] = namespace.pop(query.pyname)
                return found
        return self.entries[key]


    def promote(self, pyname: str) -> None:
        """Replace a hot tier-1 function by a dispatcher to its native code (tier 2)."""
        found = self.promotable.pop(pyname, None)
        if found is None:
            return
        key, rule, ret = found
        native = numeric.load_native(key[0], rule, ret)
        if native is None:
            return
        import numpy as np

        namespace = self.namespace
        namespace[f"NATIVE_{pyname}"] = native
        namespace[f"ERR_{pyname}"] = np.zeros(1, dtype=np.int64)
        namespace[f"TIER1_{pyname}"] = namespace[pyname]
        exec(compile(numeric.dispatcher_source(pyname, key[1]), f"<metta {key[0]} tier 2>", "exec"), namespace)
        self.entries[key] = namespace[pyname]
        self.promoted.append(key[0])


_PLAIN_VALUES = (int, float, bool)
_QUERY_WORDS = frozenset(["let", "if", "superpose", "collapse", "case", "match"])
"""Heads of the top-level queries worth compiling as a whole (a call is compiled by itself)."""
_MAX_QUERIES = 512
_QUERY = object()
"""The first element of a unit key that stands for a top-level query (second: its atom)."""


def _stale(*args):
    raise Fallback


def _argument(atom: Atom, ctx: _Context, world_cache: dict):
    """The compiled value of a call's argument, or _MISSING when the tier cannot take it."""
    t = type(atom)
    if t is Grounded:
        return runtime.unbox(atom)
    if t is Symbol:
        return _MISSING if atom.name in SPECIAL_VALUES else atom
    if t is Expression and atom._ground and _is_data(atom, ctx, world_cache):
        return atom
    return _MISSING


def _is_data(atom: Expression, ctx: _Context, cache: dict) -> bool:
    """Would the plain evaluator give this ground expression back unchanged?"""
    stack = [atom]
    world = None
    while stack:
        a = stack.pop()
        if type(a) is not Expression:
            if type(a) is Symbol:
                if a.name in SPECIAL_VALUES:
                    return False
            elif type(a) is not Grounded:
                return False
            continue
        kids = a.children
        if not kids:
            continue
        head = kids[0]
        th = type(head)
        if th is Symbol:
            key = (head.name, len(kids) - 1)
        elif th is Grounded and type(head.value) in _PLAIN_VALUES:
            key = (head, len(kids) - 1)
        else:
            return False
        verdict = cache.get(key)
        if verdict is None:
            if world is None:
                world = World(ctx.ev, ctx.library_ops)
            verdict = cache[key] = world.is_constructor(*key) if th is Symbol else world.is_inert_tuple(*key)
        if not verdict:
            return False
        stack.extend(kids[1:])
    return True


class CompiledTier:
    """The evaluator's door to compiled code (see the module docstring)."""

    def __init__(self, ev: Evaluator, library_ops: dict, promote_after: int | None = numeric.PROMOTE_AFTER) -> None:
        """`promote_after`: tier-1 calls before a numeric function goes native (None: never)."""
        self.ev = ev
        self.library_ops = library_ops
        self.promote_after = promote_after
        self.suspended = 0
        self._contexts: dict[int, _Context] = {}
        self._data_heads: dict = {}
        self._data_epoch = None
        self._current: _Context | None = None
        self.fallbacks = 0
        self.bulk_answers = 0

    def _context(self) -> _Context:
        ev = self.ev
        space = ev.space
        ctx = self._current
        if ctx is None or ctx.space is not space:
            ctx = self._contexts.get(space.space_id)
            if ctx is None or ctx.space is not space:
                ctx = self._contexts[space.space_id] = _Context(ev, self.library_ops, self.promote_after)
                ctx.namespace["DATA"] = lambda expr, ctx=ctx: _is_data(expr, ctx, self._data_heads)
            self._current = ctx
        stdlib = ev.stdlib
        quick = (space.rules_version, space.types_version, stdlib.rules_version, stdlib.types_version, len(ev.ops))
        if quick != ctx.quick_stamp or space.dependencies:
            ctx.revalidate()
            ctx.quick_stamp = quick
        if self._data_epoch != (space.space_id, ctx.epoch):
            self._data_heads.clear()
            self._data_epoch = (space.space_id, ctx.epoch)
        return ctx

    def evaluate(self, atom: Expression) -> list | None:
        """The results of fully evaluating `atom`, or None to let the plain evaluator do it."""
        if self.suspended:
            return None
        kids = atom.children
        head = kids[0]
        if type(head) is not Symbol or head.name in self.ev.ops or head.name in minimal.INSTRUCTIONS:
            return None
        ctx = self._context()
        key = (head.name, len(kids) - 1)
        fn = ctx.entries.get(key, _MISSING)
        if fn is _MISSING:
            fn = ctx.compile(key)
        if fn is None:
            return None
        args = []
        numeric_only = key in ctx.numeric
        for kid in kids[1:]:
            value = _argument(kid, ctx, self._data_heads)
            if value is _MISSING:
                return None
            if numeric_only and type(value) is not int and type(value) is not float:
                return None
            args.append(value)
        ev = self.ev
        ctx.namespace["LIMIT"] = (ev.max_depth - ev.depth) // ctx.levels_per_call
        try:
            value = fn(*args, 0)
        except (Fallback, RecursionError):
            return self._plain(atom)
        if ctx.kinds.get(key) == MULTI:
            box = runtime.box
            return [(box(v), None) for v in value]
        return [(runtime.box(value), None)]

    def evaluate_top(self, atom: Expression) -> list[Atom] | None:
        """The results of a top-level `!` the tier answers in bulk (a match over a snapshot whose
        answers are all final, see compiled.bulk), or None."""
        if self.suspended:
            return None
        # `(collapse M)` takes the answers of M as a whole.
        collapsed = len(atom.children) == 2 and atom.children[0] == COLLAPSE_SYMBOL
        inner = atom.children[1] if collapsed else atom
        if type(inner) is not Expression or match_call_parts(inner) is None:
            return self._query(atom)
        ctx = self._context()
        if not self._library_word(ctx, MATCH) or (collapsed and not self._library_word(ctx, COLLAPSE)):
            return None
        found = bulk_match(inner, ctx.namespace["DATA"])
        if found is None:
            return self._query(atom)
        self.bulk_answers += len(found)
        return [Expression(found)] if collapsed else found

    def _query(self, atom: Expression) -> list[Atom] | None:
        """The results of a top-level query made of the words compiled code orders itself
        (`let`, `superpose`, `match` ...), run as one compiled function; None otherwise."""
        head = atom.children[0] if atom.children else None
        if type(head) is not Symbol or head.name not in _QUERY_WORDS:
            return None
        ctx = self._context()
        fn = ctx.queries.get(exact_key(atom), _MISSING)
        if fn is _MISSING:
            fn = ctx.compile_query(atom)
        if fn is None:
            return None
        ev = self.ev
        ctx.namespace["LIMIT"] = ev.max_depth // ctx.levels_per_call
        try:
            values = fn(0)
        except (Fallback, RecursionError):
            self.fallbacks += 1
            return None
        box = runtime.box
        return [box(v) for v in values]

    def final_match_answers(self):
        """For a top-level match answered outside the evaluator (`batch` answers many at once
        through PersistentKB.query_many): a test that the evaluator would give every
        instantiated template back unchanged (compiled.bulk.all_final), or None when `match`
        is not the library's in this session."""
        ctx = self._context()
        if not self._library_word(ctx, MATCH):
            return None
        is_data = ctx.namespace["DATA"]
        return lambda results: all_final(results, is_data)

    def _library_word(self, ctx: _Context, name: str) -> bool:
        """World.library_op, decided once per context epoch (operations and declarations count
        in it)."""
        verdict = ctx.words.get(name)
        if verdict is None:
            verdict = ctx.words[name] = World(self.ev, self.library_ops).library_op(name)
        return verdict

    def _plain(self, atom: Expression) -> list:
        self.fallbacks += 1
        self.suspended += 1
        try:
            return self.ev.metta(atom, UNDEFINED)
        finally:
            self.suspended -= 1
