"""Tier 1 for nondeterministic functions and top-level queries: Python functions that return
the list of their results in the plain evaluator's order.

A function is compiled here when the deterministic compiler (codegen.py) refuses it but its
rules, all in the program space, are made of what this module knows how to order: rules whose
heads overlap, `superpose`, `collapse`, `match` over a space given as a literal, `case`, `let`
with a variable pattern, `if`, `(empty)`, the pure operations, constructors, and calls to other
compiled functions (deterministic ones are called as they are).

The order follows from two rules of the plain evaluator (see evaluator.py): a place that
produces several alternatives hands them over last-first, and every evaluation level reverses
what it collected. Written out per construct, with V(e) the results of e:

- a call of a function with rules: V = reversed(concat of V(body) over the matching rules taken
  last-first), the rules in the space's answer order; with nondeterministic arguments, the
  calls are made for every combination (first argument outermost) taken last-first;
- a grounded operation or a constructor: one result per combination, last-first;
- `(if c t e)`: reversed(V(branch)); `(superpose (x ...))`: concat of reversed(V(x));
- `(let $v x body)`: concat of V(body) over reversed(V(x));
- `(match s p t)`: concat over the answers of reversed(V(t)); `(case x cases)`: concat over
  V(x) of reversed(V(chosen template)); `(collapse x)`: the one tuple of V(x).

An argument with no alternatives ends the call without evaluating the arguments after it, and
an `if` evaluates only its chosen branch, as the plain evaluator does. Errors, `Empty` where a
value is needed, non-ground answers and values that would evaluate further hand the whole call
back to the plain evaluator (runtime.Fallback).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metta_numba.atoms import Atom, Expression, Symbol, Variable, variables_of
from metta_numba.interp.compiled.codegen import (
    IF,
    LET,
    Compiler,
    Refused,
    _check_pattern,
    _occurrences,
    check_leaf,
    var_name,
)
from metta_numba.interp.compiled.runtime import OPERATIONS
from metta_numba.interp.core import SpaceAtom

SUPERPOSE = "superpose"
COLLAPSE = "collapse"
MATCH = "match"
CASE = "case"
EMPTY_CALL = "empty"
DET = "det"
MULTI = "multi"
_REFUSED_SYMBOLS = frozenset(["NotReducible", "Error"])
_LEVELS_BELOW = 3
"""Evaluation levels between a construct and the body it evaluates (a `let` body runs two
levels under the let; one more keeps a margin)."""


@dataclass
class MultiPlan:
    """A nondeterministic function (or a top-level query, `arity` 0 and no rules) to write."""

    name: str
    arity: int
    rules: list
    pyname: str
    body: Atom | None = None
    callees: set = field(default_factory=set)


def multi_pyname(name: str, arity: int) -> str:
    safe = "".join(c if c.isalnum() else f"_{ord(c):x}_" for c in name)
    return f"M_{safe}_{arity}"


class MultiCompiler:
    """Plans and writes the nondeterministic functions reachable from one call or query.

    Functions it reaches that the deterministic compiler takes are planned by it (`det`,
    which also holds the constants of the whole unit)."""

    def __init__(self, world, det: Compiler) -> None:
        self.world = world
        self.det = det
        self.det_plans: dict = {}
        self.plans: dict = {}
        self._scope: Atom | None = None
        self._fresh = 0
        self._names: dict = {}
        self._kinds: dict = {}
        # Run-time objects the source refers to by name: rule orders and space queries.
        self.orders: dict = {}
        self.spaces: dict = {}

    # -- planning -------------------------------------------------------------------------------
    def plan(
        self, key: tuple[str, int] | None, known: dict, query: Atom | None = None, query_name: str = "QUERY"
    ) -> None:
        """Plan `key` (or the top-level `query`) and everything it calls; `known` maps the
        functions compiled before to DET or MULTI. Raises Refused."""
        todo = []
        if query is not None:
            plan = MultiPlan("query", 0, [], query_name, body=query)
            self._scan_rule(query, query, set(), plan.callees)
            self.plans[None] = plan
            todo.extend(plan.callees)
        else:
            todo.append(key)
        # Deterministic code calls only deterministic functions (one value per call).
        det_known = {k for k, kind in known.items() if kind == DET}
        while todo:
            k = todo.pop()
            if k in known or k in self.plans or k in self.det_plans:
                continue
            try:
                self.det_plans.update(self.det.plan(k[0], k[1], det_known | set(self.det_plans)))
                continue
            except Refused:
                pass
            plan = self._plan_function(*k)
            self.plans[k] = plan
            todo.extend(plan.callees)

    def kind_of(self, key, known: dict) -> str:
        if key in self.det_plans:
            return DET
        if key in self.plans:
            return MULTI
        return known[key]

    def _plan_function(self, name: str, arity: int) -> MultiPlan:
        world = self.world
        self.det.heads_used.add(name)
        if world.function_kind(name, arity) is None or world.function_kind(name, arity) != "plain":
            raise Refused(f"{name} is typed, an operation or a reserved word")
        rules = world.program_rules(name, arity)
        if not rules:
            raise Refused(f"{name}/{arity} has no rules")
        if len(rules) > 1 and not world.program.orders_answers:
            raise Refused("the space does not give hyperon's order of rules")
        plan = MultiPlan(name, arity, rules, multi_pyname(name, arity))
        for rule in rules:
            lhs = rule.lhs
            if type(lhs) is not Expression or len(lhs.children) != arity + 1 or lhs.children[0] != Symbol(name):
                raise Refused(f"a rule of {name} may match calls of other shapes")
            for arg in lhs.children[1:]:
                _check_pattern(arg)
            self._scan_rule(rule.atom, rule.rhs, set(variables_of(lhs)), plan.callees)
        return plan

    def _scan_rule(self, scope: Atom, body: Atom, bound: set, callees: set) -> None:
        self._scope = scope
        self._scan(body, bound, callees, 1)

    def _local(self, var: Atom, inside: list, bound: set) -> None:
        """A variable a construct binds must be unseen before and used nowhere else."""
        if type(var) is not Variable or var in bound:
            raise Refused(f"{var} is not a fresh variable")
        if _occurrences(self._scope, var) != sum(_occurrences(a, var) for a in inside):
            raise Refused(f"{var} is used outside the construct that binds it")

    def _scan(self, atom: Atom, bound: set, callees: set, nesting: int) -> None:
        if type(atom) is not Expression:
            # Empty is a value here: it stands for no results.
            check_leaf(atom, bound, _REFUSED_SYMBOLS)
            return
        det = self.det
        det.max_nesting = max(det.max_nesting, nesting)
        kids = atom.children
        if not kids:
            return
        head = kids[0]
        args = kids[1:]
        deeper = nesting + _LEVELS_BELOW
        if type(head) is Variable:
            self._scan(head, bound, callees, nesting + 1)
            for arg in args:
                self._scan(arg, bound, callees, nesting + 1)
            return
        if type(head) is not Symbol:
            raise Refused("a body expression whose head is not a symbol")
        name = head.name
        det.heads_used.add(name)
        world = self.world
        arity = len(args)
        if name == IF and arity == 3 and world.is_library_word(IF, 3):
            for arg in args:
                self._scan(arg, bound, callees, deeper)
            return
        if name == LET and arity == 3 and world.is_library_word(LET, 3) and type(args[0]) is Variable:
            self._local(args[0], [args[0], args[2]], bound)
            self._scan(args[1], bound, callees, deeper)
            self._scan(args[2], bound | {args[0]}, callees, deeper)
            return
        if name == SUPERPOSE and arity == 1 and world.library_op(SUPERPOSE):
            items = args[0]
            if type(items) is Variable:
                self._scan(items, bound, callees, nesting)
                return
            if type(items) is not Expression:
                raise Refused("superpose of a non-tuple")
            for item in items.children:
                self._scan(item, bound, callees, deeper)
            return
        if name == COLLAPSE and arity == 1 and world.library_op(COLLAPSE):
            self._scan(args[0], bound, callees, deeper)
            return
        if name == MATCH and arity == 3 and world.library_op(MATCH) and isinstance(args[0], SpaceAtom):
            pattern, template = args[1], args[2]
            new = [v for v in dict.fromkeys(variables_of(pattern)) if v not in bound]
            for var in new:
                self._local(var, [pattern, template], bound)
            self._scan(template, bound | set(new), callees, deeper)
            return
        if name == CASE and arity == 2 and world.library_op(CASE):
            self._scan(args[0], bound, callees, deeper)
            cases = args[1]
            if type(cases) is not Expression:
                raise Refused("case without a tuple of cases")
            for pair in cases.children:
                if type(pair) is not Expression or len(pair.children) != 2:
                    raise Refused("a case that is not a (pattern template) pair")
                pattern, template = pair.children
                _check_pattern(pattern)
                new = [v for v in dict.fromkeys(variables_of(pattern)) if v not in bound]
                for var in new:
                    self._local(var, [pattern, template], bound)
                self._scan(template, bound | set(new), callees, deeper)
            return
        if name == EMPTY_CALL and arity == 0 and world.is_library_empty():
            return
        if name in OPERATIONS and world.is_pure_operation(name, arity):
            pass
        elif world.is_constructor(name, arity):
            pass
        elif world.function_kind(name, arity) == "plain" and world.program_rules(name, arity):
            callees.add((name, arity))
        else:
            raise Refused(f"the body calls {name}, which is not compiled")
        for arg in args:
            self._scan(arg, bound, callees, nesting + 1)

    # -- writing --------------------------------------------------------------------------------
    def source(self, names: dict, kinds: dict) -> str:
        """The unit's source: deterministic functions first, then the nondeterministic ones."""
        self._names = names
        self._kinds = kinds
        lines = [self.det.source(self.det_plans, names)] if self.det_plans else []
        for plan in self.plans.values():
            lines.extend(self._function(plan) if plan.body is None else self._query(plan))
            lines.append("")
        return "\n".join(lines)

    def _temp(self, stem: str) -> str:
        self._fresh += 1
        return f"{stem}{self._fresh}"

    def _query(self, plan: MultiPlan) -> list[str]:
        out = [f"def {plan.pyname}(d):"]
        kind, src = self._gen(plan.body, {}, out, 1)
        out.append(f"    return {_as_list(kind, src)}")
        return out

    def _function(self, plan: MultiPlan) -> list[str]:
        det = self.det
        params = [f"a{i}" for i in range(plan.arity)]
        out = [f"def {plan.pyname}({', '.join(params + ['d'])}):"]
        out.append("    if d > LIMIT:")
        out.append("        fallback()")
        out.append("    matched = []")
        rule_envs = []
        for index, rule in enumerate(plan.rules):
            conditions: list[str] = []
            env: dict = {}
            for i, pattern in enumerate(rule.lhs.children[1:]):
                det._match(pattern, f"a{i}", conditions, env, top=True)
            rule_envs.append(env)
            test = " and ".join(conditions) if conditions else "True"
            out.append(f"    if {test}:")
            out.append(f"        matched.append({index})")
        head = det.constant(Symbol(plan.name))
        out.append("    if not matched:")
        out.append(f"        return [expression([{', '.join([head] + params)}])]")
        order = self._order_constant(plan)
        out.append("    found = []")
        out.append(f"    for rule in reversed({order}(({''.join(p + ', ' for p in params)}), matched)):")
        for index, rule in enumerate(plan.rules):
            out.append(f"        {'if' if index == 0 else 'elif'} rule == {index}:")
            env = {}
            for var, source in rule_envs[index].items():
                local = self._temp(var_name(var) + "_")
                out.append(f"            {local} = {source}")
                env[var] = local
            kind, src = self._gen(rule.rhs, env, out, 3)
            out.append(f"            {_extend('found', kind, src, reverse=False)}")
        out.append("    found.reverse()")
        out.append("    return found")
        return out

    def _order_constant(self, plan: MultiPlan) -> str:
        name = f"ORDER_{plan.pyname}"
        self.orders[name] = (Symbol(plan.name), [rule.atom for rule in plan.rules])
        return name

    def _gen(self, atom: Atom, env: dict, out: list, level: int) -> tuple[str, str]:
        """Emit the statements computing V(atom) at indentation `level`; returns ("one",
        expression of its single value) or ("many", expression of the list of its values)."""
        pad = "    " * level
        det = self.det
        t = type(atom)
        if t is Variable:
            return "one", env[atom]
        if t is Symbol and atom.name == "Empty":
            return "many", "[]"
        if t is not Expression:
            return "one", det.literal(atom)
        kids = atom.children
        if not kids:
            return "one", det.constant(atom)
        head = kids[0]
        args = kids[1:]
        if type(head) is Symbol:
            name = head.name
            word = _SPECIAL_WORDS.get((name, len(args)))
            if word is not None and (name, len(args)) not in self._names:
                return getattr(self, f"_gen_{word}")(args, env, out, level)
        # A call: the arguments' alternatives, then one call per combination.
        values = []
        result = None
        inner = level
        checks = _ARGUMENT_CHECKS.get(head.name, ()) if type(head) is Symbol else ()
        for arg in ([head] if type(head) is Variable else []) + list(args):
            kind, src = self._gen(arg, env, out, inner)
            if checks and (type(head) is Symbol and (head.name, len(args)) not in self._names):
                # A typed operation checks each argument before the next one is evaluated.
                temp = self._temp("x")
                out.append(f"{'    ' * inner}{temp} = {src}")
                out.append(f"{'    ' * inner}{checks}({temp}{'' if kind == 'one' else ', True'})")
                src = temp
            if kind == "many":
                if result is None:
                    result = self._temp("r")
                    out.append(f"{pad}{result} = []")
                temp = self._temp("x")
                out.append(f"{'    ' * inner}{temp} = {src}")
                out.append(f"{'    ' * inner}if {temp}:")
                inner += 1
                values.append(("many", temp))
            else:
                values.append(("one", src))
        call = self._call_source(atom, len(values) - len(args))
        if result is None:
            one_args = [src for _, src in values]
            return self._call_kind(atom), call(one_args)
        ipad = "    " * inner
        lists = ", ".join(src if kind == "many" else f"[{src}]" for kind, src in values)
        combo = self._temp("t")
        out.append(f"{ipad}for {combo} in rev_product([{lists}]):")
        made = call([f"{combo}[{i}]" for i in range(len(values))])
        out.append(f"{ipad}    {_extend(result, self._call_kind(atom), made, reverse=False)}")
        return "many", result

    def _call_kind(self, atom: Expression) -> str:
        head = atom.children[0]
        if type(head) is Symbol:
            key = (head.name, len(atom.children) - 1)
            if key in self._names and self._kinds[key] == MULTI:
                return "many"
        return "one"

    def _call_source(self, atom: Expression, has_head: int):
        """A function from the Python sources of the values (head first when it is a variable)
        to the source of one call."""
        kids = atom.children
        head = kids[0]
        if has_head:
            return lambda srcs: f"tuple_value([{', '.join(srcs)}], DATA)"
        name = head.name
        key = (name, len(kids) - 1)
        if key in self._names:
            pyname = self._names[key]
            return lambda srcs: f"{pyname}({', '.join(srcs + ['d + 1'])})"
        if name in OPERATIONS and self.world.is_pure_operation(name, len(kids) - 1):
            return lambda srcs: f"{OPERATIONS[name]}({', '.join(srcs)})"
        constant = self.det.constant(head)
        return lambda srcs: f"expression([{', '.join([constant] + srcs)}])"

    # -- the words with an order of their own ---------------------------------------------------
    def _branch(self, atom: Atom, env: dict, level: int) -> tuple[list, str, str]:
        lines: list[str] = []
        kind, src = self._gen(atom, env, lines, level)
        return lines, kind, src

    def _gen_if(self, args, env, out, level):
        pad = "    " * level
        ckind, cond = self._gen(args[0], env, out, level)
        result = self._temp("r")
        if ckind == "one":
            then = self._branch(args[1], env, level + 1)
            other = self._branch(args[2], env, level + 1)
            both_one = then[1] == "one" and other[1] == "one"
            out.append(f"{pad}if truth({cond}):")
            for index, (lines, kind, src) in enumerate((then, other)):
                if index == 1:
                    out.append(f"{pad}else:")
                out.extend(lines)
                value = src if both_one else (f"[{src}]" if kind == "one" else f"{src}[::-1]")
                out.append(f"{pad}    {result} = {value}")
            return ("one" if both_one else "many"), result
        conds = self._temp("c")
        out.append(f"{pad}{result} = []")
        out.append(f"{pad}for {conds} in {cond}:")
        then = self._branch(args[1], env, level + 2)
        other = self._branch(args[2], env, level + 2)
        out.append(f"{pad}    if truth({conds}):")
        out.extend(then[0])
        out.append(f"{pad}        {_extend(result, then[1], then[2], reverse=False)}")
        out.append(f"{pad}    else:")
        out.extend(other[0])
        out.append(f"{pad}        {_extend(result, other[1], other[2], reverse=False)}")
        out.append(f"{pad}{result}.reverse()")
        return "many", result

    def _gen_let(self, args, env, out, level):
        pad = "    " * level
        kind, src = self._gen(args[1], env, out, level)
        local = self._temp(var_name(args[0]) + "_")
        inner = {**env, args[0]: local}
        if kind == "one":
            out.append(f"{pad}{local} = {src}")
            return self._gen(args[2], inner, out, level)
        result = self._temp("r")
        out.append(f"{pad}{result} = []")
        out.append(f"{pad}for {local} in reversed({src}):")
        bkind, body = self._gen(args[2], inner, out, level + 1)
        out.append(f"{pad}    {_extend(result, bkind, body, reverse=False)}")
        return "many", result

    def _gen_superpose(self, args, env, out, level):
        pad = "    " * level
        items = args[0]
        if type(items) is Variable:
            return "many", f"items_of({env[items]}, DATA)"
        result = self._temp("r")
        out.append(f"{pad}{result} = []")
        for item in items.children:
            kind, src = self._gen(item, env, out, level)
            out.append(f"{pad}{_extend(result, kind, src, reverse=True)}")
        return "many", result

    def _gen_collapse(self, args, env, out, level):
        kind, src = self._gen(args[0], env, out, level)
        return "one", f"tuple_value({_as_list(kind, src)}, DATA)"

    def _gen_match(self, args, env, out, level):
        pad = "    " * level
        space, pattern, template = args
        queries = self._space_queries(space)
        new = [v for v in dict.fromkeys(variables_of(pattern)) if v not in env]
        result = self._temp("r")
        answer = self._temp("b")
        out.append(f"{pad}{result} = []")
        site = self._flat_site(pattern, env)
        if site is None:
            new_vars = ", ".join(self.det.constant(var) for var in new)
            out.append(f"{pad}for {answer} in {queries}.query({self._pattern(pattern, env)}, [{new_vars}]):")
        else:
            values = "".join(f"{env[c]}, " for c in pattern.children[1:] if c in env)
            out.append(f"{pad}for {answer} in {queries}.rows({site}, ({values})):")
        sources = {var: f"{answer}[{i}]" for i, var in enumerate(new)}
        inner = self._bind(sources, env, out, pad + "    ")
        kind, src = self._gen(template, inner, out, level + 1)
        out.append(f"{pad}    {_extend(result, kind, src, reverse=True)}")
        return "many", result

    def _bind(self, sources: dict, env: dict, out: list, pad: str) -> dict:
        """Assign the variables a construct binds (those not in `env`) to fresh locals."""
        inner = dict(env)
        for var, source in sources.items():
            if var not in env:
                local = self._temp(var_name(var) + "_")
                out.append(f"{pad}{local} = {source}")
                inner[var] = local
        return inner

    def _space_queries(self, space: SpaceAtom) -> str:
        name = f"SPACE_{id(space.obj)}"
        self.spaces[name] = space.obj
        return name

    def _flat_site(self, pattern: Atom, env: dict) -> str | None:
        """The site constant of a flat pattern (SpaceQueries.rows): a symbol head, then bound
        variables (their values given at run time) and distinct new variables; None for others."""
        kids = pattern.children if type(pattern) is Expression else ()
        if not kids or type(kids[0]) is not Symbol or kids[0].name == ",":
            return None
        given, new = [], []
        for position, child in enumerate(kids[1:], 1):
            if type(child) is not Variable or any(child == var for _, var in new):
                return None
            if child in env:
                given.append(position)
            else:
                new.append((position, child))
        det = self.det
        det.constants.append((kids[0], len(kids) - 1, tuple(given), tuple(new)))
        return f"{det.constants_name}[{len(det.constants) - 1}]"

    def _pattern(self, pattern: Atom, env: dict) -> str:
        """Source building the query pattern with the values of bound variables in place."""
        t = type(pattern)
        if t is Variable:
            return f"box({env[pattern]})" if pattern in env else self.det.constant(pattern)
        if t is Expression and not pattern._ground:
            return f"Expression([{', '.join(self._pattern(c, env) for c in pattern.children)}])"
        return self.det.constant(pattern)

    def _gen_case(self, args, env, out, level):
        pad = "    " * level
        kind, src = self._gen(args[0], env, out, level)
        values = self._temp("xs")
        out.append(f"{pad}{values} = {_as_list(kind, src)}")
        # With no value, the plain evaluator matches the cases against Empty itself.
        out.append(f"{pad}if not {values}:")
        out.append(f"{pad}    fallback()")
        result = self._temp("r")
        value = self._temp("v")
        out.append(f"{pad}{result} = []")
        out.append(f"{pad}for {value} in {values}:")
        if not args[1].children:
            out.append(f"{pad}    pass")  # no case matches anything
        for index, pair in enumerate(args[1].children):
            pattern, template = pair.children
            conditions: list[str] = []
            bindings: dict = dict(env)
            self.det._match(pattern, value, conditions, bindings, top=True)
            test = " and ".join(conditions) if conditions else "True"
            out.append(f"{pad}    {'if' if index == 0 else 'elif'} {test}:")
            inner = self._bind(bindings, env, out, pad + "        ")
            tkind, tsrc = self._gen(template, inner, out, level + 2)
            out.append(f"{pad}        {_extend(result, tkind, tsrc, reverse=True)}")
        return "many", result

    def _gen_empty(self, args, env, out, level):
        return "many", "[]"  # `(empty)`


_SPECIAL_WORDS = {
    (IF, 3): "if",
    (LET, 3): "let",
    (SUPERPOSE, 1): "superpose",
    (COLLAPSE, 1): "collapse",
    (MATCH, 3): "match",
    (CASE, 2): "case",
    (EMPTY_CALL, 0): "empty",
}
"""Words whose results this module orders itself (when the program leaves them as defined)."""


_ARGUMENT_CHECKS = {
    **{name: "numbers" for name in ("+", "-", "*", "/", "%", "<", ">", "<=", ">=")},
    **{name: "bools" for name in ("and", "or", "not")},
}
"""The check of each argument of the typed operations compiled code calls (`==` takes any
two values of one type: its own code decides)."""


def _as_list(kind: str, src: str) -> str:
    return f"[{src}]" if kind == "one" else src


def _extend(target: str, kind: str, src: str, reverse: bool) -> str:
    if kind == "one":
        return f"{target}.append({src})"
    return f"{target}.extend({src}[::-1])" if reverse else f"{target}.extend({src})"
