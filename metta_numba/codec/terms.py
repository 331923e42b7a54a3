"""The term store: strings and long symbol names, interned to u64 ids.

Paths hold ids, not text, for strings and for symbols longer than 63 bytes. The in-memory
`TermStore` here is what a fresh space uses. The store package persists the same table as
HDF5 datasets and gives back an object with the same two methods.
"""

from __future__ import annotations

from typing import Protocol


class TermLookup(Protocol):
    def text(self, term_id: int) -> str: ...


class TermStore:
    """An append-only table of distinct texts; `intern` gives each text one stable id."""

    def __init__(self, texts: list[str] | None = None) -> None:
        self.texts: list[str] = list(texts or [])
        self.ids: dict[str, int] = {t: i for i, t in enumerate(self.texts)}

    def intern(self, text: str) -> int:
        term_id = self.ids.get(text)
        if term_id is None:
            term_id = len(self.texts)
            self.texts.append(text)
            self.ids[text] = term_id
        return term_id

    def find(self, text: str) -> int | None:
        """The id of a text already in the store, or None (used by queries, which never add)."""
        return self.ids.get(text)

    def text(self, term_id: int) -> str:
        return self.texts[term_id]

    def __len__(self) -> int:
        return len(self.texts)
