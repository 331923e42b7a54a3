"""A space over a snapshot KB (store.kb)."""

from __future__ import annotations

from collections.abc import Iterator

from metta_numba.atoms import Atom, Symbol, Variable
from metta_numba.snapshot_probes import holds_object
from metta_numba.space.base import Space, replace_symbols
from metta_numba.space.grounding import GroundingSpace
from metta_numba.unify import Bindings


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
        self._token_names: dict[str, Atom] = {}
        self._token_hook = None

    def bind_tokens(self, tokens: dict[str, Atom]) -> None:
        """The atoms a program's tokens stand for (`&self`: this space as an atom). Stored atoms
        were parsed without them, so the atoms and values this space hands out get them in place
        of those symbols, as if the KB's text had been read by the program."""
        table = self._tokens = {Symbol(name): atom for name, atom in tokens.items()}
        # Made once per binding: the KB keeps replaced values while the same ones come back.
        self._token_names = dict(tokens)
        self._token_hook = lambda value: replace_symbols(value, table)
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

    def bindings_table(self, pattern: Atom, wanted: set[Variable] | None = None):
        """The answers of `query` as (variables, a column of values per variable; None where one
        stays unbound), straight from the KB, or None when this space must unify in Python
        (hidden or local atoms). With `wanted`, the columns of the other variables may be left
        None throughout (see PersistentKB.bindings_table)."""
        if self._hidden or (self.local is not None and self.local.count()):
            return None
        if not self._tokens:
            return self.kb.bindings_table(pattern, wanted=wanted)
        return self.kb.bindings_table(pattern, self._token_hook, self._token_names, wanted)

    def join(self, patterns: list[Atom]) -> list[Bindings] | None:
        """Bindings of the conjunction of `patterns` through the KB's worst-case-optimal join
        (store.join): the planner's multiset, grouped by the variables' values instead of in
        the planner's nested order (which `match` in the interpreter keeps). None when this
        space must unify in Python (hidden or local atoms)."""
        if self._hidden or (self.local is not None and self.local.count()):
            return None
        tokens = self._tokens
        hook = (lambda value: replace_symbols(value, tokens)) if tokens else None
        return self.kb.join(patterns).bindings(hook)

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
