"""Tier 1: the equations of deterministic functions translated into Python source.

A function `f` of arity n is compiled when the plain evaluator would give exactly one answer for
any call of it with ground arguments, and that answer can be computed without its machinery:

- `f` has no type declaration, is no grounded operation, and all its rules live in the program
  space (none in the library or an imported module, none with a variable head);
- the rules' heads cannot overlap (distinct literals at some position), so at most one fires;
- the bodies use only the rule's variables, literals, `if`, `let` with a variable pattern, the
  pure grounded operations of `runtime.OPERATIONS`, calls to other such functions, and data
  expressions whose head no rule, type or operation can reduce (constructors).

Each rule becomes a test of the call's arguments (matching compiled into comparisons and index
lookups) followed by a `return` of its body; a call no rule matches is returned unreduced, as
the plain evaluator returns it. Every compiled function takes the recursion depth as its last
argument and hands evaluation back (runtime.Fallback) past a limit, which keeps it inside the
nesting the plain evaluator allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.interp import minimal
from metta_numba.interp.compiled.runtime import OPERATIONS
from metta_numba.space import EQUALS, may_match

PLAIN = "plain"
NUMERIC = "numeric"
IF = "if"
LET = "let"
_SPECIAL = frozenset([IF, LET])
SPECIAL_VALUES = frozenset(["Empty", "NotReducible"])
"""Symbols the evaluator gives meaning to as results: never compiled values."""
_RESERVED_HEADS = frozenset(["Error", "Empty", "NotReducible", "return", "function", ":", "=", ":<", "->"])


class Refused(Exception):
    """The function cannot be compiled (the reason is kept for `--explain`-style debugging)."""


@dataclass
class FunctionPlan:
    """One function to compile: its key, its rules (in the space's order) and its Python name."""

    name: str
    arity: int
    rules: list
    pyname: str
    callees: set = field(default_factory=set)
    numeric: bool = False
    """Declared `(-> Number ... Number)`: arguments and results are checked to be numbers."""


def pyname_of(name: str, arity: int) -> str:
    safe = "".join(c if c.isalnum() else f"_{ord(c):x}_" for c in name)
    return f"F_{safe}_{arity}"


def call_shape(name: str, arity: int) -> Expression:
    return Expression([Symbol(name)] + [Variable(f"%arg{i}") for i in range(arity)])


class Compiler:
    """Plans and writes the source of the functions reachable from one call.

    `world` answers questions about the program: which rules a head has in which spaces,
    whether a head is typed, an operation, or a constructor (see tier.World)."""

    def __init__(self, world, constants_name: str = "K") -> None:
        self.world = world
        self.constants_name = constants_name
        self.constants: list[Atom] = []
        self._constant_ids: dict = {}
        self.heads_used: set[str] = set()
        self.max_nesting = 1
        # Python names of functions that count their calls toward promotion to tier 2.
        self.counted: set[str] = set()

    # -- planning -------------------------------------------------------------------------------
    def plan(self, name: str, arity: int, known: dict) -> dict[tuple[str, int], FunctionPlan]:
        """Plans of `name/arity` and every function its bodies call, or Refused."""
        plans: dict[tuple[str, int], FunctionPlan] = {}
        todo = [(name, arity)]
        while todo:
            key = todo.pop()
            if key in plans or key in known:
                continue
            plan = self._plan_one(*key)
            plans[key] = plan
            for callee in plan.callees:
                if callee not in plans and callee not in known:
                    todo.append(callee)
        return plans

    def _plan_one(self, name: str, arity: int) -> FunctionPlan:
        world = self.world
        self.heads_used.add(name)
        kind = world.function_kind(name, arity)
        if kind is None:
            raise Refused(f"{name} is typed, an operation or a reserved word")
        rules = world.program_rules(name, arity)
        if not rules:
            raise Refused(f"{name}/{arity} has no rules")
        for rule in rules:
            lhs = rule.lhs
            if type(lhs) is not Expression or len(lhs.children) != arity + 1 or lhs.children[0] != Symbol(name):
                raise Refused(f"a rule of {name} may match calls of other shapes")
        for i, first in enumerate(rules):
            for second in rules[i + 1 :]:
                if _may_overlap(first.lhs, second.lhs):
                    raise Refused(f"two rules of {name} may both match one call")
        plan = FunctionPlan(name, arity, rules, pyname_of(name, arity), numeric=kind == NUMERIC)
        for rule in rules:
            for arg in rule.lhs.children[1:]:
                _check_pattern(arg)
            self._rule_atom = rule.atom
            self._scan_body(rule.rhs, set(variables_of(rule.lhs)), plan.callees, 1)
        return plan

    def _scan_body(self, atom: Atom, bound: set, callees: set, nesting: int) -> None:
        """Check that a body can be compiled, collecting the functions it calls."""
        t = type(atom)
        if t is not Expression:
            check_leaf(atom, bound, SPECIAL_VALUES)
            return
        self.max_nesting = max(self.max_nesting, nesting)
        kids = atom.children
        if not kids:
            return
        head = kids[0]
        if type(head) is not Symbol:
            raise Refused("a body expression whose head is not a symbol")
        name = head.name
        self.heads_used.add(name)
        args = kids[1:]
        world = self.world
        if name == IF and world.is_library_word(IF, 3) and len(args) == 3:
            for arg in args:
                self._scan_body(arg, bound, callees, nesting + 1)
            return
        if name == LET and world.is_library_word(LET, 3) and len(args) == 3 and type(args[0]) is Variable:
            var = args[0]
            # A let's variable is a logic variable of the whole rule: compiled as a local only
            # when nothing outside this let's body can see it (no reuse, no nested rebinding).
            if var in bound or _occurrences(self._rule_atom, var) != 1 + _occurrences(args[2], var):
                raise Refused(f"{var} is shared beyond its let")
            if _binds_again(args[2], var):
                raise Refused(f"{var} is bound again inside its let")
            self._scan_body(args[1], bound, callees, nesting + 1)
            # `let` is a library rule: its body is evaluated two levels further down.
            self._scan_body(args[2], bound | {args[0]}, callees, nesting + 3)
            return
        if name in OPERATIONS and world.is_pure_operation(name, len(args)):
            for arg in args:
                self._scan_body(arg, bound, callees, nesting + 1)
            return
        if world.is_constructor(name, len(args)):
            for arg in args:
                self._scan_body(arg, bound, callees, nesting + 1)
            return
        if world.function_kind(name, len(args)) is not None and world.program_rules(name, len(args)):
            callees.add((name, len(args)))
            for arg in args:
                self._scan_body(arg, bound, callees, nesting + 1)
            return
        raise Refused(f"the body calls {name}, which is not compiled")

    # -- writing --------------------------------------------------------------------------------
    def constant(self, atom: Atom) -> str:
        key = exact_key(atom)
        index = self._constant_ids.get(key)
        if index is None:
            index = self._constant_ids[key] = len(self.constants)
            self.constants.append(atom)
        return f"{self.constants_name}[{index}]"

    def literal(self, atom: Atom) -> str:
        """Python source of a literal's compiled value."""
        if type(atom) is Grounded:
            value = atom.value
            tv = type(value)
            if tv is bool:
                return "True" if value else "False"
            if tv is int:
                return repr(value)
            if tv is float and value == value and value not in (float("inf"), float("-inf")):
                return repr(value)
            if tv is float:
                return f"unbox({self.constant(atom)})"
        return self.constant(atom)

    def source(self, plans: dict, names: dict[tuple[str, int], str]) -> str:
        lines: list[str] = []
        for plan in plans.values():
            lines.extend(self._function(plan, names))
            lines.append("")
        return "\n".join(lines)

    def _function(self, plan: FunctionPlan, names: dict) -> list[str]:
        params = [f"a{i}" for i in range(plan.arity)]
        lines = [f"def {plan.pyname}({', '.join(params + ['d'])}):"]
        lines.append("    if d > LIMIT:")
        lines.append("        fallback()")
        if plan.numeric:
            # The plain evaluator checks a typed call's arguments and results (BadArgType, BadType).
            for param in params:
                lines.append(f"    if not (type({param}) is int or type({param}) is float):")
                lines.append("        fallback()")
        if plan.pyname in self.counted:
            counter = f"C_{plan.pyname}"
            lines.append(f"    {counter}[0] -= 1")
            lines.append(f"    if {counter}[0] == 0:")
            lines.append(f"        PROMOTE({plan.pyname!r})")
        for rule in plan.rules:
            conditions: list[str] = []
            env: dict = {}
            for i, pattern in enumerate(rule.lhs.children[1:]):
                self._match(pattern, f"a{i}", conditions, env, top=True)
            body = self._expr(rule.rhs, env, names)
            if plan.numeric:
                body = f"number({body})"
            if conditions:
                lines.append(f"    if {' and '.join(conditions)}:")
                indent = "        "
            else:
                indent = "    "
            for var, source in env.items():
                if source != var_name(var):
                    lines.append(f"{indent}{var_name(var)} = {source}")
            lines.append(f"{indent}return {body}")
            if not conditions:
                return lines
        head = self.constant(Symbol(plan.name))
        lines.append(f"    return expression([{', '.join([head] + params)}])")
        return lines

    def _match(self, pattern: Atom, value: str, conditions: list, env: dict, top: bool) -> None:
        """Conditions under which the compiled value `value` matches `pattern`, and bindings."""
        if not top and type(pattern) is not Expression:
            value = f"unbox({value})"
        t = type(pattern)
        if t is Variable:
            if pattern in env:
                conditions.append(f"same({env[pattern]}, {value})")
            else:
                env[pattern] = value
            return
        if t is Expression:
            kids = pattern.children
            conditions.append(f"type({value}) is Expression")
            conditions.append(f"len({value}.children) == {len(kids)}")
            for i, kid in enumerate(kids):
                self._match(kid, f"{value}.children[{i}]", conditions, env, top=False)
            return
        conditions.append(f"is_literal({value}, {self.literal(pattern)})")

    def _expr(self, atom: Atom, env: dict, names: dict) -> str:
        t = type(atom)
        if t is Variable:
            return var_name(atom)
        if t is not Expression:
            return self.literal(atom)
        kids = atom.children
        if not kids:
            return self.constant(atom)
        name = kids[0].name
        args = kids[1:]
        if name == IF and len(args) == 3:
            cond, then, other = (self._expr(a, env, names) for a in args)
            return f"({then} if truth({cond}) else {other})"
        if name == LET and len(args) == 3 and type(args[0]) is Variable:
            value = self._expr(args[1], env, names)
            body = self._expr(args[2], env, names)
            return f"(lambda {var_name(args[0])}: {body})({value})"
        sources = [self._expr(a, env, names) for a in args]
        key = (name, len(args))
        if key in names:
            return f"{names[key]}({', '.join(sources + ['d + 1'])})"
        if name in OPERATIONS:
            return f"{OPERATIONS[name]}({', '.join(sources)})"
        return f"expression([{', '.join([self.constant(kids[0])] + sources)}])"


def check_leaf(atom: Atom, bound: set, refused_symbols: frozenset) -> None:
    """A variable or value in a body: the variable must be bound, the value a plain one."""
    t = type(atom)
    if t is Variable:
        if atom not in bound:
            raise Refused(f"{atom} is not bound")
    elif t is not Symbol and t is not Grounded:
        raise Refused(f"cannot compile the value {atom!r}")
    elif t is Symbol and atom.name in refused_symbols:
        raise Refused(f"{atom.name} is not a plain value")


def exact_key(atom: Atom) -> tuple:
    """A key that tells apart atoms that compare equal but print differently (`2` and `2.0`
    are one number to `==`, two constants to compiled code)."""
    leaves = []
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Expression:
            stack.extend(a.children)
        else:
            leaves.append(type(a.value) if type(a) is Grounded else type(a))
    return (type(atom), atom, tuple(leaves))


def var_name(var: Variable) -> str:
    safe = "".join(c if c.isalnum() else f"_{ord(c):x}_" for c in var.name)
    return f"v_{safe}"


def _check_pattern(pattern: Atom) -> None:
    t = type(pattern)
    if t is Expression:
        for kid in pattern.children:
            _check_pattern(kid)
    elif t is not Variable and t is not Symbol and t is not Grounded:
        raise Refused(f"cannot compile the pattern {pattern!r}")


def _occurrences(atom: Atom, var: Variable) -> int:
    count = 0
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Variable:
            count += a == var
        elif type(a) is Expression:
            stack.extend(a.children)
    return count


def _binds_again(atom: Atom, var: Variable) -> bool:
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Expression:
            kids = a.children
            if len(kids) == 4 and type(kids[0]) is Symbol and kids[0].name == LET and kids[1] == var:
                return True
            stack.extend(kids)
    return False


def _numeric(atom: Atom) -> bool:
    return type(atom) is Grounded and type(atom.value) in (int, float)


def _may_overlap(first: Atom, second: Atom) -> bool:
    """Could one ground call match both heads? Numbers compare by value (3 may meet 3.0), and
    repeated variables are ignored, so the answer errs on the side of 'yes'."""
    stack = [(first, second)]
    while stack:
        a, b = stack.pop()
        if type(a) is Variable or type(b) is Variable:
            continue
        if type(a) is Expression and type(b) is Expression:
            if len(a.children) != len(b.children):
                return False
            stack.extend(zip(a.children, b.children))
            continue
        if _numeric(a) and _numeric(b):
            if a.value != b.value:
                return False
            continue
        if not may_match(a, b):
            return False
    return True


def is_rule_for(stored: Atom, shape: Expression) -> bool:
    """Is `stored` an `=` rule whose left side may match calls of `shape`?"""
    return (
        type(stored) is Expression
        and len(stored.children) == 3
        and stored.children[0] == EQUALS
        and may_match(stored.children[1], shape)
    )


def is_reserved(name: str) -> bool:
    return name in _RESERVED_HEADS or name in minimal.INSTRUCTIONS or name in _SPECIAL
