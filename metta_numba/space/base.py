"""The Space interface the interpreter talks to: queries, rule lookup and type lookup.

A space is a multiset of atoms. `query(pattern)` unifies the pattern with every stored atom
that can match it, both ways: stored atoms' variables are renamed apart first, so that rule
variables never clash with query variables, and a stored variable matches any subterm.

Every implementation supplies `candidates(pattern)`: stored atoms, in insertion order, that
may unify with the pattern (a superset is fine; exact unification is common code here). An
implementation only has to provide `candidates`, `add`, `remove`, `atoms` and `count` to reuse
the rest: rule lookup (`rules_candidates`) and type lookup (`declared_types`) are built on top
with caches that are dropped whenever the space changes. A call with a ground argument to a
function of many rules looks its rules up by that argument, through the same indexes as
`match`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable, is_ground, variables_of
from metta_numba.unify import Bindings, match_ground, rename_apart, unify_into

EQUALS = Symbol("=")
HAS_TYPE = Symbol(":")
SUBTYPE = Symbol(":<")

# Marker key for a child that can match anything at its position (a variable, or an
# expression whose head is not an atomic constant).
_WILD = ("*",)
# Marker key of a child that is a variable (it matches anything below it, too).
_VAR = ("$",)

NARROW_RULES_AFTER = 8
"""A function with more rules than this is looked up by the call's ground arguments."""
_NARROW_CACHE_SIZE = 4096

_space_ids = itertools.count(1)


class Rule:
    """A stored `(= lhs rhs)`, prepared for fast calls.

    `rhs_only` are the variables of the right side that the left side does not bind: they get
    fresh names on every call, as hyperon's renamed `$x#N`.
    """

    __slots__ = ("lhs", "rhs", "lhs_ground", "rhs_only", "has_vars", "atom")

    def __init__(self, atom: Expression) -> None:
        self.atom = atom
        self.lhs = atom.children[1]
        self.rhs = atom.children[2]
        lhs_vars = variables_of(self.lhs)
        rhs_vars = variables_of(self.rhs)
        self.lhs_ground = not lhs_vars
        self.has_vars = bool(lhs_vars or rhs_vars)
        lhs_set = set(lhs_vars)
        self.rhs_only = [v for v in rhs_vars if v not in lhs_set]


def _child_key(child: Atom):
    t = type(child)
    if t is Variable:
        return _WILD
    if t is Expression:
        kids = child.children
        if not kids:
            return ("()",)
        head = kids[0]
        th = type(head)
        if th is Symbol or th is Grounded:
            return ("(", head, len(kids))
        return _WILD
    if t is Symbol or t is Grounded:
        return child
    # A state equals whatever has its current value: no key can stand for it.
    return _WILD if getattr(child, "by_value", False) else child


def _rule_key(lhs: Atom):
    """Index key of a rule's left side (or of a call): None means 'could match any call'."""
    t = type(lhs)
    if t is Expression:
        kids = lhs.children
        if not kids:
            return ("()",)
        head = kids[0]
        th = type(head)
        if th is Variable:
            return None
        if th is Expression:
            return ("(", len(kids))
        return (head, len(kids))
    if t is Variable:
        return None
    return ("atom", lhs)


ANY_HEAD = "*"
"""The `head_versions` key of rules and declarations that may concern any head."""


def changed_head(atom: Atom) -> str:
    """The function name a rule or type declaration is about (`head_versions` key).

    `(= (f ...) body)`, `(= f body)`, `(: f T)` and `(: (f ...) T)` concern `f`; a stored
    variable, a variable or expression in head position, and `(:< A B)` concern every head."""
    if type(atom) is not Expression or len(atom.children) != 3 or atom.children[0] == SUBTYPE:
        return ANY_HEAD
    subject = atom.children[1]
    if type(subject) is Expression and subject.children:
        subject = subject.children[0]
    if type(subject) is Symbol:
        return subject.name
    return ANY_HEAD


def replace_symbols(atom: Atom, table: dict) -> Atom:
    """`atom` with the symbols that are keys of `table` replaced by their values (the same
    object when none occurs)."""
    t = type(atom)
    if t is Symbol:
        return table.get(atom, atom)
    if t is not Expression:
        return atom
    kids = atom.children
    new = [replace_symbols(c, table) for c in kids]
    return atom if all(a is b for a, b in zip(new, kids)) else Expression(new)


def may_match(stored: Atom, pattern: Atom) -> bool:
    """A quick test that ignores variable identity: False means the atoms cannot unify.

    It allocates nothing, so it weeds out most candidates of an unselective pattern before
    the stored atom is renamed apart and unified for real."""
    if type(stored) is Expression and type(pattern) is Expression:
        # A flat pair (the common case) is compared element by element, without the stack.
        kids = stored.children
        if len(kids) != len(pattern.children):
            return False
        for s, p in zip(kids, pattern.children):
            ts = type(s)
            tp = type(p)
            if ts is Variable or tp is Variable:
                continue
            if ts is Expression or tp is Expression:
                break  # nested: the general walk below decides
            if s != p:
                return False
        else:
            return True
    stack = [(stored, pattern)]
    while stack:
        s, p = stack.pop()
        ts = type(s)
        tp = type(p)
        if ts is Variable or tp is Variable:
            continue
        if ts is Expression:
            if tp is not Expression or len(s.children) != len(p.children):
                return False
            if s._ground and p._ground:
                if s != p:
                    return False
            else:
                stack.extend(zip(s.children, p.children))
        elif s != p:
            return False
    return True


def match_stored(stored: Atom, pattern: Atom) -> Bindings | None:
    """Unify a stored atom (renamed apart) with a query pattern.

    The stored side goes on the left so that a stored variable meeting a query variable is
    bound to it: results then show the query's own variable names, as hyperon does.
    """
    if is_ground(stored):
        return match_ground(pattern, stored)
    bindings: Bindings = {}
    return bindings if unify_into(rename_apart(stored), pattern, bindings) else None


class Space:
    """Common code of every space: queries, rule lookup and type lookup over `candidates`."""

    def __init__(self) -> None:
        self.version = 0
        self.rules_version = 0
        self.types_version = 0
        # Whether a `(: <expression> T)` may be stored: only then does typing an expression
        # look its own declarations up (a snapshot cannot tell, so it says yes).
        self.types_expressions = False
        self.space_id = next(_space_ids)
        self._rule_cache: dict = {}
        self._rule_cache_version = -1
        self._type_cache: dict = {}
        self._type_cache_version = -1
        self._narrowed: dict = {}
        # Per-head change counts of rules and type declarations (`changed_head` keys): code
        # compiled from one function's rules stays valid while its heads' counts stay put,
        # whatever else is added (facts, other functions' rules, memoised results).
        self.head_versions: dict[str, int] = {}
        # Module spaces imported into this one (`import!`): seen by queries through
        # `module_view`, not listed among this space's own atoms.
        self.dependencies: list[Space] = []

    # -- to be provided by an implementation --------------------------------------------------
    def add(self, atom: Atom) -> None:
        raise NotImplementedError

    def remove(self, atom: Atom) -> bool:
        raise NotImplementedError

    def atoms(self) -> Iterator[Atom]:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def candidates(self, pattern: Atom) -> Iterable[Atom]:
        """Stored atoms that may unify with `pattern`, in insertion order (a superset is fine)."""
        raise NotImplementedError

    def estimate(self, pattern: Atom) -> int:
        """An upper bound of the atoms `pattern` may unify with (planning joins and rule
        lookups); implementations answer from their indexes' counts."""
        return sum(1 for _ in itertools.islice(self.candidates(pattern), 100_000))

    # -- shared ---------------------------------------------------------------------------------
    def _changed(self, atom: Atom) -> None:
        self.version += 1
        if type(atom) is Expression and atom.children:
            head = atom.children[0]
            # Only the symbols `=`, `:` and `:<` mark rules and types: most atoms are facts,
            # told apart by their head's name without equality calls.
            name = head.name if type(head) is Symbol else None
            if name == "=":
                self.rules_version += 1
            elif name == ":" or name == ":<":
                self.types_version += 1
                kids = atom.children
                if name == ":" and len(kids) == 3 and type(kids[1]) is not Symbol:
                    self.types_expressions = True
            else:
                return
        elif type(atom) is Variable:
            # A stored variable matches rules and type declarations alike.
            self.rules_version += 1
            self.types_version += 1
        else:
            return
        key = changed_head(atom)
        self.head_versions[key] = self.head_versions.get(key, 0) + 1

    # An implementation that knows hyperon's answer order sets this and defines answer_order.
    orders_answers = False

    def answer_order(self, pattern: Atom):
        """A sort key function for the stored atoms answering `pattern` (see space_order)."""
        raise NotImplementedError

    def query(self, pattern: Atom) -> list[Bindings]:
        """Bindings of every unification of `pattern` with a stored atom, in answer order."""
        found = []
        for stored in self.candidates(pattern):
            if may_match(stored, pattern):
                bindings = match_stored(stored, pattern)
                if bindings is not None:
                    found.append((stored, bindings))
        if len(found) > 1 and self.orders_answers:
            key = self.answer_order(pattern)
            found.sort(key=lambda pair: key(pair[0]))
        return [bindings for _, bindings in found]

    def bindings_table(self, pattern: Atom, wanted: set[Variable] | None = None):
        """`query` as a table of values (see SnapshotSpace); None where only `query` answers."""
        return None

    def listing(self) -> list[Atom]:
        """Every atom, in the order `get-atoms` shows them."""
        return list(self.atoms())

    def __len__(self) -> int:
        return self.count()

    def rules_candidates(self, call: Atom) -> list[Rule]:
        """Rules whose left side may match `call`, in insertion order (cached per call shape)."""
        if self._rule_cache_version != self.rules_version:
            self._rule_cache.clear()
            self._narrowed.clear()
            self._rule_cache_version = self.rules_version
        key = _rule_key(call)
        if key is None:
            key = ("any",)
        if key[0] != "(" and key != ("any",) and _has_ground_argument(call):
            size = self._rule_cache.get(("%size", key))
            if size is None:
                size = self._rule_cache[("%size", key)] = self.estimate(_rules_pattern(_shape_of(call, key)))
            if size > NARROW_RULES_AFTER:
                return self._narrowed_rules(call)
        rules = self._rule_cache.get(key)
        if rules is None:
            rules = self._collect_rules(_shape_of(call, key))
            self._rule_cache[key] = rules
        return rules

    def _narrowed_rules(self, call: Expression) -> list[Rule]:
        """The rules of a many-rule function that the indexes find for this very call."""
        rules = self._narrowed.get(call)
        if rules is None:
            if len(self._narrowed) >= _NARROW_CACHE_SIZE:
                self._narrowed.clear()
            rules = self._narrowed[call] = self._collect_rules(call)
        return rules

    def _collect_rules(self, shape: Atom) -> list[Rule]:
        rules = []
        for stored in self.candidates(_rules_pattern(shape)):
            if type(stored) is Expression and len(stored.children) == 3 and stored.children[0] == EQUALS:
                rules.append(Rule(stored))
        return rules

    def declared_types(self, atom: Atom) -> list[Atom]:
        """Types given by `(: atom T)` atoms, in insertion order (cached until a `:` changes)."""
        return self._declarations(HAS_TYPE, atom)

    def supertypes(self, type_atom: Atom) -> list[Atom]:
        """Direct supertypes declared with `(:< type_atom Super)`."""
        return self._declarations(SUBTYPE, type_atom)

    def _declarations(self, relation: Symbol, subject: Atom) -> list[Atom]:
        """The third elements of the stored `(relation subject X)` atoms, cached per subject."""
        if self._type_cache_version != self.types_version:
            self._type_cache.clear()
            self._type_cache_version = self.types_version
        key = (relation.name, subject)
        found = self._type_cache.get(key)
        if found is None:
            found = []
            for stored in self.candidates(Expression([relation, subject, Variable("%object")])):
                if (
                    type(stored) is Expression
                    and len(stored.children) == 3
                    and stored.children[0] == relation
                    and stored.children[1] == subject
                ):
                    found.append(stored.children[2])
            self._type_cache[key] = found
        return found


def module_view(space: Space) -> list[Space]:
    """The space followed by the spaces it imported, depth first, each once."""
    seen: set[int] = set()
    out: list[Space] = []
    pending = [space]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        out.append(current)
        pending.extend(reversed(current.dependencies))
    return out


def query_view(space: Space, pattern: Atom) -> list[Bindings]:
    """Query a space and what it imported: its own answers first, then each import's."""
    if not space.dependencies:
        return space.query(pattern)
    out = []
    for member in module_view(space):
        out.extend(member.query(pattern))
    return out


def _has_ground_argument(call: Atom) -> bool:
    return type(call) is Expression and any(type(c) is not Variable for c in call.children[1:])


def _rules_pattern(lhs: Atom) -> Expression:
    return Expression([EQUALS, lhs, Variable("%result")])


def _shape_of(call: Atom, key) -> Atom:
    """A pattern that selects, through the indexes, the rules whose left side can match call."""
    if key == ("any",) or key[0] == "(":
        return Variable("%call")
    if type(call) is Expression and call.children:
        return Expression([call.children[0]] + [Variable(f"%a{i}") for i in range(len(call.children) - 1)])
    return call
