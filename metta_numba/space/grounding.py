"""The in-memory multiset space.

`GroundingSpace` indexes by (arity, position, child key), and one level deeper by (arity,
position, child arity, child position, ground grandchild), so that a pattern with any ground
argument (or ground argument of an argument) looks at a short posting list instead of the
whole space. Answers come in hyperon's order (space.order).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.space.base import _VAR, _WILD, ANY_HEAD, Space, _child_key
from metta_numba.space.order import TrieOrder


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
        # Atoms 0..n-1 read in bulk (space/segment.py), decoded only when a query reaches them.
        self._segment = None
        # Whether an atom was ever removed (a rebuild into a segment would then lose the
        # answer order that the removals left).
        self.ever_removed = False
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
            same_arity = self._by_arity.get(arity)
            if same_arity is None:
                self._by_arity[arity] = [atom_id]
            else:
                same_arity.append(atom_id)
            postings = self._postings
            for position, child in enumerate(kids):
                tc = type(child)
                if tc is Symbol or tc is Grounded:
                    # The common case, one key (the child itself, as _child_key gives it).
                    key = (arity, position, child)
                    lst = postings.get(key)
                    if lst is None:
                        postings[key] = [atom_id]
                    else:
                        lst.append(atom_id)
                    continue
                keys = [(arity, position, _child_key(child))]
                if tc is Variable:
                    keys.append((arity, position, _VAR))
                elif tc is Expression and position:
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

    def replace_with_segment(self, segment) -> None:
        """Hold `segment` in place of every atom: it must list this space's atoms first, in id
        order, then the new ones (nothing may have been removed, so that the answer order
        follows from the atoms alone). Every rule and declaration may have changed."""
        if self.ever_removed:
            raise ValueError("a space that had atoms removed cannot be rebuilt into a segment")
        if len(segment) < self.count():
            raise ValueError("the segment does not hold the space's atoms")
        self._atoms = {}
        self._postings = {}
        self._by_arity = {}
        self._leaves = {}
        self._wild_top = []
        self._dead = 0
        self._order = TrieOrder()
        self._order.attach_base(segment)
        self._segment = segment
        self._next_id = len(segment)
        self.version += 1
        self.rules_version += 1
        self.types_version += 1
        self.types_expressions = True
        self.head_versions[ANY_HEAD] = self.head_versions.get(ANY_HEAD, 0) + 1

    def remove(self, atom: Atom) -> bool:
        """Remove one copy (the earliest) of an atom equal to `atom`; False when there is none.
        A segment atom is marked removed in the segment (a tombstone)."""
        segment_size = 0 if self._segment is None else len(self._segment)
        for atom_id in self._ids_for(atom):
            if atom_id < segment_size:
                stored = self._segment_atom(atom_id)
                if stored == atom:
                    self._order.remove_segment_atom(atom_id, self._segment.kill(atom_id))
                    self.ever_removed = True
                    self._changed(atom)
                    return True
                continue
            stored = self._atoms.get(atom_id)
            if stored is not None and stored == atom:
                del self._atoms[atom_id]
                self._order.remove(stored)
                self._dead += 1
                self.ever_removed = True
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
        segment = self._segment
        head = [] if segment is None else [self._segment_atom(i) for i in segment.live_ids()]
        return iter(head + list(self._atoms.values()))

    def count(self) -> int:
        segment = self._segment
        return len(self._atoms) + (0 if segment is None else len(segment) - segment.n_dead)

    def _segment_atom(self, index: int) -> Atom:
        segment = self._segment
        found = segment._decoded.get(index)
        if found is None:
            found = segment.atom(index)
            self._order.know_segment_atom(found, index)
        return found

    def answer_order(self, pattern: Atom):
        return self._order.answer_order(pattern)

    def listing(self) -> list[Atom]:
        return sorted(self.atoms(), key=self._order.listing_key)

    def _ids_for(self, pattern: Atom) -> list[int]:
        own = self._own_ids_for(pattern)
        if self._segment is None:
            return own
        # Segment ids all come before the ids of atoms added one by one.
        return self._segment.candidate_ids(pattern).tolist() + own

    def _own_ids_for(self, pattern: Atom) -> list[int]:
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
        segment_size = 0 if self._segment is None else len(self._segment)
        for atom_id in self._ids_for(pattern):
            if atom_id < segment_size:
                yield self._segment_atom(atom_id)
                continue
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
