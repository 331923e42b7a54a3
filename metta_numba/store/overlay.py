"""The term store of an open KB: the generation's terms, plus the terms added since.

New strings and long symbols get ids after the generation's last one. Those ids are written
into log records (path bytes hold ids), so the log carries the texts too, and the next
checkpoint writes them into the next generation's term store, in id order.
"""

from __future__ import annotations

from metta_numba.store.errors import WalCorruptError
from metta_numba.store.termfile import GenerationTerms

# Ids handed to texts that a query mentions but no stored atom can hold: from the top of the
# u64 range down, never given to a stored term. A stored variable still matches them.
_PLACEHOLDER_TOP = (1 << 64) - 1


class KBTerms:
    """Generation terms (ids below `base`) plus an in-memory overlay (ids from `base` on)."""

    def __init__(self, generation_terms: GenerationTerms) -> None:
        self.generation_terms = generation_terms
        self.base = len(generation_terms)
        self.added: list[str] = []
        self._added_ids: dict[str, int] = {}

    def text(self, term_id: int) -> str:
        if term_id < self.base:
            return self.generation_terms.text(term_id)
        index = term_id - self.base
        if index >= len(self.added):
            raise KeyError(term_id)
        return self.added[index]

    def find(self, text: str) -> int | None:
        term_id = self._added_ids.get(text)
        if term_id is None:
            term_id = self.generation_terms.find(text)
        return term_id

    def __len__(self) -> int:
        return self.base + len(self.added)

    def add(self, text: str) -> int:
        term_id = self.base + len(self.added)
        self.added.append(text)
        self._added_ids[text] = term_id
        return term_id

    def register(self, term_id: int, text: str, path: str) -> None:
        """Take a (term id, text) pair from a log record, checking it against what is known."""
        known = len(self)
        if term_id < known:
            try:
                same = self.text(term_id) == text
            except KeyError:
                same = False
            if not same:
                raise WalCorruptError(f"log names term {term_id} as {text!r}, which disagrees", path)
        elif term_id == known:
            self.add(text)
        else:
            raise WalCorruptError(f"log skips term ids (got {term_id}, expected {known})", path)


class PendingTerms:
    """Interning for one change: new texts get provisional ids and are committed to the
    overlay only once the change is in the log, so a failed encode leaves no gap in the ids.
    Records every overlay term the path refers to, which the log record must carry."""

    def __init__(self, terms: KBTerms) -> None:
        self.terms = terms
        self.new: list[str] = []
        self._new_ids: dict[str, int] = {}
        self.referenced: dict[int, str] = {}

    def intern(self, text: str) -> int:
        term_id = self.terms.find(text)
        if term_id is None:
            term_id = self._new_ids.get(text)
            if term_id is None:
                term_id = len(self.terms) + len(self.new)
                self.new.append(text)
                self._new_ids[text] = term_id
        if term_id >= self.terms.base:
            self.referenced[term_id] = text
        return term_id

    def find(self, text: str) -> int | None:
        term_id = self.terms.find(text)
        if term_id is not None and term_id >= self.terms.base:
            self.referenced[term_id] = text
        return term_id

    def text(self, term_id: int) -> str:
        return self.terms.text(term_id)

    def commit(self) -> None:
        for text in self.new:
            self.terms.add(text)

    def record_terms(self) -> tuple[tuple[int, str], ...]:
        return tuple(sorted(self.referenced.items()))


class QueryTerms:
    """Read-only lookup for encoding a query pattern: an unknown text gets a placeholder id,
    which no stored ground term has, so the trie still finds stored variables that match it."""

    def __init__(self, terms: KBTerms) -> None:
        self.terms = terms
        self._placeholders: dict[str, int] = {}

    def find(self, text: str) -> int:
        term_id = self.terms.find(text)
        if term_id is None:
            term_id = self._placeholders.get(text)
            if term_id is None:
                term_id = self._placeholders[text] = _PLACEHOLDER_TOP - len(self._placeholders)
        return term_id

    def intern(self, text: str) -> int:
        return self.find(text)

    def text(self, term_id: int) -> str:
        return self.terms.text(term_id)
