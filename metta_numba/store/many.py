"""Many patterns answered together: PersistentKB.query_many.

The patterns, given as MeTTa text, are encoded by the bulk reader (syntax.bulk: one kernel
pass, no atom objects) against the KB's term ids, and every pattern without variables is
looked up in one kernel call (trie.ground_batch), which visits them in byte order, a whole
number also in its other form (`3` finds a stored `3.0`, as in `query`). A ground pattern
that no stored variable can match (no stored variable stands at a token boundary along its
walk: the common case) is answered from the counts of the stored paths equal to its forms. The
others (patterns with variables, ground ones a stored variable may match, any pattern while
the KB has unsaved changes) are decoded and answered one by one through `query`, so every
answer is what `query` gives for that pattern.

`ManyAnswers` keeps the ground answers as ranks and counts: the atom of a ground answer (the
stored path) is decoded only when the answers of that pattern are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metta_numba.atoms import Atom, Variable
from metta_numba.codec import CodecError, decode
from metta_numba.store.errors import CorruptSnapshotError
from metta_numba.store.overlay import QueryTerms
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.ground_batch import DECIDED, FORMS, ground_lookups

Bindings = dict[Variable, Atom]
Answer = tuple[Atom, Bindings]


class _PatternTerms(QueryTerms):
    """QueryTerms that can also name its placeholders, to decode a pattern back to an atom."""

    def text(self, term_id: int) -> str:
        for text, placeholder in self._placeholders.items():
            if placeholder == term_id:
                return text
        return self.terms.text(term_id)


class ManyAnswers(Sequence):
    """The answers of many patterns, in input order: `answers[i]` is the list `query` returns
    for pattern i, and `counts()` their numbers, read without decoding a ground answer.
    Read it while the KB is open."""

    def __init__(self, kb, encoded: tuple, counts: np.ndarray, found: tuple) -> None:
        self._kb = kb
        self._raw, self._bounds, self._names, self._texts = encoded
        self._counts = counts
        # What the kernel found (trie.ground_batch.ground_lookups), with the copies of each rank.
        self._generation, self._ranks, self._copies, self._rows, self._other_ranks, self._other_copies = found
        self._solved: dict[int, list] = {}
        self._terms = None

    def _path(self, index: int) -> tuple[bytes, list[str]]:
        """Pattern `index` encoded, and its variables' names."""
        name = int(self._names[index])
        path = self._raw[int(self._bounds[index]) : int(self._bounds[index + 1])]
        return path, self._texts[name].split(" ") if name >= 0 else []

    def __len__(self) -> int:
        return len(self._counts)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("pattern index out of range")
        found = self._solved.get(index)
        if found is not None:
            return found
        # A decided ground pattern: the stored paths of its forms (the pattern itself, or with
        # a whole number in its other form), each once per copy.
        out = []
        if self._ranks[index] >= 0:  # the pattern's own bytes, which its stored path equals
            atom = self._kb._decode(self._path(index)[0], ())
            out.extend([(atom, {})] * int(self._copies[index]))
        row = int(self._rows[index])
        if row >= 0:
            for rank, copies in zip(self._other_ranks[row].tolist(), self._other_copies[row].tolist()):
                if rank >= 0:
                    atom = self._kb._decode(self._generation.trie.path(rank), ())
                    out.extend([(atom, {})] * copies)
        return out

    def counts(self) -> np.ndarray:
        """The number of answers of every pattern (copies included)."""
        return self._counts.copy()

    def pattern(self, index: int) -> Atom:
        """Pattern `index` as an atom (with its variables' names as written)."""
        path, names = self._path(index)
        if self._terms is None:
            self._terms = _PatternTerms(self._kb._terms)
        return decode(path, self._terms, names)


class ManyQueries:
    """`query_many` for PersistentKB (see the module docstring)."""

    def query_many(self, patterns: str | bytes | Sequence[str], filename: str = "<patterns>") -> ManyAnswers:
        """Answer every pattern of `patterns`: MeTTa text holding one atom per pattern (a file's
        contents), or a list of texts of one atom each. Returns their answers in input order
        (ManyAnswers). A syntax error raises ParseError naming `filename`, line and column."""
        # Imported here: the bulk reader's tables cost some 30 ms, which opening a KB need not pay.
        from metta_numba.syntax.bulk import scan_source
        from metta_numba.syntax.bulk_kernels import remap_text_ids

        source, expected = _source_text(patterns)
        scanned = scan_source(source, filename)
        count = len(scanned.offsets) - 1
        if expected is not None and count != expected:
            raise ValueError(f"{expected} patterns given, {count} atoms read: give one atom per pattern")
        with self._lock:
            self._check_open()
            terms = _PatternTerms(self._terms)
            ids = [terms.find(text) for text in scanned.texts]
            if ids:
                remap_text_ids(scanned.out, scanned.text_patch, np.array(ids, np.uint64).view(np.int64))
            data, offsets = scanned.out, scanned.offsets
            data.flags.writeable = False
            names = scanned.names
            generation = self._generation
            if self._working.delta:
                status, ranks, rows = np.zeros(count, np.int8), np.full(count, -1), np.full(count, -1)
                other_ranks = np.full((0, FORMS), -1, np.int64)
            else:
                try:
                    status, ranks, rows, other_ranks = ground_lookups(generation.trie._structure, data, offsets, names)
                except (CorruptTrieError, IndexError, ValueError) as err:
                    raise CorruptSnapshotError(f"trie arrays are damaged: {err}", self.directory) from None
            copies = _copies(generation, ranks)
            other_copies = _copies(generation, other_ranks)
            counts = copies.copy()
            with_others = np.flatnonzero(rows >= 0)
            counts[with_others] += other_copies.sum(axis=1)[rows[with_others]]
            found = (generation, ranks, copies, rows, other_ranks, other_copies)
            encoded = (data.tobytes(), offsets, names, scanned.texts)
            answers = ManyAnswers(self, encoded, counts, found)
            answers._terms = terms
            for i in np.flatnonzero(status != DECIDED).tolist():
                try:
                    pattern = answers.pattern(i)
                except CodecError as err:  # a stored term the pattern names does not decode
                    raise CorruptSnapshotError(f"pattern {i + 1}: {err}", self.directory) from None
                answers._solved[i] = matches = self.query(pattern)
                counts[i] = len(matches)
        return answers


def _copies(generation, ranks: np.ndarray) -> np.ndarray:
    """The copies of the stored path of each rank (0 for -1)."""
    copies = np.zeros(ranks.shape, np.int64)
    hits = ranks >= 0
    copies[hits] = generation._checked_counts(generation._leaf_count[ranks[hits]])
    return copies


def _source_text(patterns: str | bytes | Sequence[str]) -> tuple[bytes, int | None]:
    """(UTF-8 source, how many patterns it must hold or None for free text)."""
    if isinstance(patterns, bytes):
        return patterns, None
    if isinstance(patterns, str):
        return patterns.encode("utf-8"), None
    items = list(patterns)
    try:
        return "\n".join(items).encode("utf-8"), len(items)
    except TypeError:
        raise TypeError("query_many takes MeTTa text or a list of pattern texts") from None
