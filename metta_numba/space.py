"""The Space interface the interpreter talks to, and the in-memory multiset space.

A space is a multiset of atoms. `query(pattern)` unifies the pattern with every stored atom
that can match it, both ways: stored atoms' variables are renamed apart first, so that rule
variables never clash with query variables, and a stored variable matches any subterm.

Every implementation supplies `candidates(pattern)`: stored atoms, in insertion order, that
may unify with the pattern (a superset is fine; exact unification is common code here). The
in-memory `GroundingSpace` indexes by (arity, position, child key), and one level deeper by
(arity, position, child arity, child position, ground grandchild), so that a pattern with any ground argument
(or ground argument of an argument) looks at a short posting list instead of the whole space. A snapshot-backed
space only has to provide `candidates`, `add`, `remove`, `atoms` and `count` to reuse the rest:
rule lookup (`rules_for`) and type lookup (`declared_types`) are built on top with caches that
are dropped whenever the space changes. A call with a ground argument to a function of many
rules looks its rules up by that argument, through the same indexes as `match`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.snapshot_probes import holds_object
from metta_numba.space_order import TrieOrder
from metta_numba.unify import Bindings, rename_apart, unify_into

__all__ = [
    "Space",
    "GroundingSpace",
    "SnapshotSpace",
    "Rule",
    "EQUALS",
    "HAS_TYPE",
    "SUBTYPE",
    "module_view",
    "query_view",
]

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


def _with_tokens(value: Atom | None, tokens: dict) -> Atom | None:
    t = type(value)
    if t is Symbol:
        return tokens.get(value, value)
    return replace_symbols(value, tokens) if t is Expression else value


def may_match(stored: Atom, pattern: Atom) -> bool:
    """A quick test that ignores variable identity: False means the atoms cannot unify.

    It allocates nothing, so it weeds out most candidates of an unselective pattern before
    the stored atom is renamed apart and unified for real."""
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
    if type(stored) is Expression and stored.is_ground:
        renamed = stored
    elif type(stored) is Variable or type(stored) is Expression:
        renamed = rename_apart(stored)
    else:
        renamed = stored
    bindings: Bindings = {}
    return bindings if unify_into(renamed, pattern, bindings) else None


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
            if head == EQUALS:
                self.rules_version += 1
            elif head == HAS_TYPE or head == SUBTYPE:
                self.types_version += 1
                kids = atom.children
                if head == HAS_TYPE and len(kids) == 3 and type(kids[1]) is not Symbol:
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

    def bindings_table(self, pattern: Atom):
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


def _merge_ids(first: list[int], second: list[int]) -> list[int]:
    """Merge two ascending id lists (ids are insertion order) into one ascending list."""
    if not second:
        return first
    if not first:
        return second
    out = []
    i = j = 0
    n1 = len(first)
    n2 = len(second)
    while i < n1 and j < n2:
        a = first[i]
        b = second[j]
        if a < b:
            out.append(a)
            i += 1
        else:
            out.append(b)
            j += 1
    out.extend(first[i:])
    out.extend(second[j:])
    return out


class GroundingSpace(Space):
    """An in-memory multiset of atoms, indexed for pattern queries.

    Each added atom gets a new id (ids grow, so id order is insertion order). Posting lists map
    (arity, position, child key) to ids; a removed atom leaves its id behind in the posting
    lists until a compaction, and queries skip ids that are no longer alive. Answers come in
    hyperon's order (space_order): grouped by shared leading parts, not by insertion alone.
    """

    orders_answers = True

    def __init__(self, atoms: Iterable[Atom] = (), name: str | None = None) -> None:
        super().__init__()
        self.name = name
        self._atoms: dict[int, Atom] = {}
        self._next_id = 0
        self._postings: dict = {}
        self._by_arity: dict[int, list[int]] = {}
        self._leaves: dict = {}  # non-expression stored atoms by value
        self._wild_top: list[int] = []  # stored atoms that are a bare variable
        self._dead = 0
        self._order = TrieOrder()
        for atom in atoms:
            self.add(atom)

    # -- mutation -------------------------------------------------------------------------------
    def add(self, atom: Atom) -> None:
        atom_id = self._next_id
        self._next_id += 1
        self._atoms[atom_id] = atom
        self._index(atom_id, atom)
        self._order.add(atom)
        self._changed(atom)

    def _index(self, atom_id: int, atom: Atom) -> None:
        t = type(atom)
        if t is Expression:
            kids = atom.children
            arity = len(kids)
            self._by_arity.setdefault(arity, []).append(atom_id)
            postings = self._postings
            for position, child in enumerate(kids):
                keys = [(arity, position, _child_key(child))]
                if type(child) is Variable:
                    keys.append((arity, position, _VAR))
                elif type(child) is Expression and position:
                    size = len(child.children)
                    keys += [(arity, position, size, i, _inner_key(c)) for i, c in enumerate(child.children)]
                for key in keys:
                    lst = postings.get(key)
                    if lst is None:
                        postings[key] = [atom_id]
                    else:
                        lst.append(atom_id)
        elif t is Variable:
            self._wild_top.append(atom_id)
        else:
            self._leaves.setdefault(atom, []).append(atom_id)

    def remove(self, atom: Atom) -> bool:
        """Remove one copy (the earliest) of an atom equal to `atom`; False when there is none."""
        for atom_id in self._ids_for(atom):
            stored = self._atoms.get(atom_id)
            if stored is not None and stored == atom:
                del self._atoms[atom_id]
                self._order.remove(stored)
                self._dead += 1
                self._changed(atom)
                if self._dead > 1024 and self._dead > len(self._atoms):
                    self._compact()
                return True
        return False

    def _compact(self) -> None:
        self._postings = {}
        self._by_arity = {}
        self._leaves = {}
        self._wild_top = []
        for atom_id, atom in self._atoms.items():
            self._index(atom_id, atom)
        self._dead = 0

    # -- reading --------------------------------------------------------------------------------
    def atoms(self) -> Iterator[Atom]:
        return iter(list(self._atoms.values()))

    def count(self) -> int:
        return len(self._atoms)

    def answer_order(self, pattern: Atom):
        return self._order.answer_order(pattern)

    def listing(self) -> list[Atom]:
        return sorted(self._atoms.values(), key=self._order.listing_key)

    def _ids_for(self, pattern: Atom) -> list[int]:
        t = type(pattern)
        if t is Variable:
            return list(self._atoms.keys())
        if t is not Expression:
            return _merge_ids(self._leaves.get(pattern, []), self._wild_top)
        kids = pattern.children
        arity = len(kids)
        postings = self._postings
        best = None
        best_size = -1
        for lists in _posting_choices(postings, arity, kids):
            size = sum(len(ids) for ids in lists)
            if best is None or size < best_size:
                best = lists
                best_size = size
                if size == 0:
                    break
        if best is None:
            ids = self._by_arity.get(arity, [])
        else:
            ids = list(best[0])
            for more in best[1:]:
                ids = _merge_ids(ids, list(more))
        return _merge_ids(ids, self._wild_top)

    def estimate(self, pattern: Atom) -> int:
        return len(self._ids_for(pattern))

    def candidates(self, pattern: Atom) -> Iterator[Atom]:
        stored = self._atoms
        for atom_id in self._ids_for(pattern):
            atom = stored.get(atom_id)
            if atom is not None:
                yield atom

    def __repr__(self) -> str:
        return f"GroundingSpace({self.count()} atoms)"


def _posting_choices(postings: dict, arity: int, kids) -> Iterator[tuple]:
    """For each ground argument (or ground argument of an argument) of a pattern, the posting
    lists whose union holds every atom that may match there."""
    for position, child in enumerate(kids):
        key = _child_key(child)
        if key is not _WILD:
            yield postings.get((arity, position, key), ()), postings.get((arity, position, _WILD), ())
        if type(child) is Expression and position:
            size = len(child.children)
            variables = postings.get((arity, position, _VAR), ())
            for i, grandchild in enumerate(child.children):
                key = _inner_key(grandchild)
                if key is not _WILD:
                    exact = postings.get((arity, position, size, i, key), ())
                    yield exact, postings.get((arity, position, size, i, _WILD), ()), variables


def _inner_key(atom: Atom):
    """Key of an argument's argument: the atom itself when ground, else the wildcard."""
    t = type(atom)
    if t is Variable or (t is Expression and not atom.is_ground):
        return _WILD
    if t is not Symbol and t is not Grounded and getattr(atom, "by_value", False):
        return _WILD
    return atom


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



class SnapshotSpace(Space):
    """A space over a PersistentKB (store.kb): the snapshot's trie kernels and the working
    set's index supply the candidates, and every change goes through the KB's delta log.

    Over a KB opened read-only, changes stay in this process: additions go to an in-memory
    space and removals hide copies of snapshot atoms, so a program can still use `add-atom`
    and `remove-atom` on `&self` without writing to the KB.

    Alternatives come in the snapshot's key order, then the working set's, rather than in the
    order the atoms were first added (that order is not kept on disk)."""

    def __init__(self, kb, name: str | None = None) -> None:
        super().__init__()
        self.types_expressions = True
        self.kb = kb
        self.name = name
        self.local: GroundingSpace | None = GroundingSpace() if kb.readonly else None
        self._hidden: dict[bytes, int] = {}
        self._key_terms = None
        self._tokens: dict[Symbol, Atom] = {}

    def bind_tokens(self, tokens: dict[str, Atom]) -> None:
        """The atoms a program's tokens stand for (`&self`: this space as an atom). Stored atoms
        were parsed without them, so the atoms and values this space hands out get them in place
        of those symbols, as if the KB's text had been read by the program."""
        self._tokens = {Symbol(name): atom for name, atom in tokens.items()}
        self._rule_cache.clear()
        self._narrowed.clear()


    def _key(self, atom: Atom) -> bytes:
        # Atoms equal up to variable names share one key, as they share one stored path.
        from metta_numba.codec import HandleTable, TermStore, encode

        if self._key_terms is None:
            self._key_terms = (TermStore(), HandleTable())
        terms, handles = self._key_terms
        return encode(atom, terms, handles=handles)[0]

    def add(self, atom: Atom) -> None:
        if self.kb.readonly or holds_object(atom):
            # An atom holding a state or a space cannot be encoded: it stays in this process,
            # beside the KB (a saved snapshot skips it, as save_atoms does).
            if self.local is None:
                self.local = GroundingSpace()
            self.local.add(atom)
        else:
            self.kb.add(atom)
        self._changed(atom)

    def remove(self, atom: Atom) -> bool:
        if self.local is not None and self.local.remove(atom):
            removed = True
        elif holds_object(atom):
            removed = False  # never in the KB
        elif not self.kb.readonly:
            removed = self.kb.remove(atom)
        else:
            key = self._key(atom)
            hidden = self._hidden.get(key, 0)
            removed = self.kb.count(atom) > hidden
            if removed:
                self._hidden[key] = hidden + 1
        if removed:
            self._changed(atom)
        return removed

    def _visible(self, pairs) -> Iterator[tuple[Atom, int]]:
        hidden = self._hidden
        for atom, copies in pairs:
            if hidden:
                copies -= hidden.get(self._key(atom), 0)
            if copies > 0:
                yield atom, copies

    def atoms(self) -> Iterator[Atom]:
        for atom, copies in self._visible(self.kb.atom_counts()):
            for _ in range(copies):
                yield atom
        if self.local is not None:
            yield from self.local.atoms()

    def count(self) -> int:
        local = self.local.count() if self.local is not None else 0
        return len(self.kb) - sum(self._hidden.values()) + local

    def estimate(self, pattern: Atom) -> int:
        local = self.local.estimate(pattern) if self.local is not None else 0
        return self.kb.estimate(pattern) + local

    def query(self, pattern: Atom) -> list[Bindings]:
        if self._hidden or (self.local is not None and self.local.count()):
            return super().query(pattern)
        # The KB matches ground atoms in a kernel and decodes only the bound values. (It also
        # finds a whole number stored in its other encoding: see snapshot_probes.)
        found = self.kb.bindings(pattern)
        if self._tokens:
            tokens = self._tokens
            found = [{v: replace_symbols(a, tokens) for v, a in b.items()} for b in found]
        return found

    def bindings_table(self, pattern: Atom):
        """The answers of `query` as (variables, a column of values per variable; None where one
        stays unbound), straight from the KB, or None when this space must unify in Python
        (hidden or local atoms)."""
        if self._hidden or (self.local is not None and self.local.count()):
            return None
        variables, columns = self.kb.bindings_table(pattern)
        if self._tokens:
            tokens = self._tokens
            columns = [[_with_tokens(a, tokens) for a in column] for column in columns]
        return variables, columns

    def candidates(self, pattern: Atom) -> Iterator[Atom]:
        tokens = self._tokens
        for atom, copies in self._visible(self.kb.candidates(pattern)):
            if tokens:
                atom = replace_symbols(atom, tokens)
            for _ in range(copies):
                yield atom
        if self.local is not None:
            yield from self.local.candidates(pattern)

    def __repr__(self) -> str:
        return f"SnapshotSpace({self.kb.directory})"
