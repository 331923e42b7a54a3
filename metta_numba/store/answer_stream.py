"""Answers of one pattern read a chunk of candidates at a time: streamed bindings, and counts
that decode nothing.

`AnswerStreams` is the part of PersistentKB (store.kb) behind `metta-numba query`. Where
`bindings` (store.answers) unifies every candidate of a pattern before it returns,
`iter_bindings` takes the candidates in chunks of growing size (Generation.candidate_chunks:
16 first, then doubling), unifies each chunk in the kernels and decodes only its answers, so
a reader that stops after N answers pays for about N. `count_matches` adds up the copies of
the candidates the kernels decided, without decoding any value; only candidates the kernels
leave open (a stored variable met twice, say) are decoded and unified in Python.

The answers, their multiplicities and their order are those of `bindings`. A stream reads the
generation it started on: a checkpoint or refresh in between ends it with a SnapshotError
(the KB's own lock is taken per chunk, never held while the caller has the answer).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from metta_numba.atoms import Atom, Expression, Variable
from metta_numba.codec import CodecError, HandleTable, encode
from metta_numba.snapshot_probes import probe_patterns
from metta_numba.store.errors import SnapshotError
from metta_numba.store.overlay import QueryTerms
from metta_numba.trie.pathmatch import MAYBE, NO, YES
from metta_numba.unify import unified_counted

Bindings = dict[Variable, Atom]


class AnswerStreams:
    """Streamed and counted answers of one pattern (see the module docstring)."""

    def _stream_start(self, pattern: Atom):
        """(encoded pattern, its variables, the generation) for a streamed read, or None when
        the pattern needs probes or cannot be encoded (then the whole answer set is built)."""
        self._check_open()
        if probe_patterns(pattern)[0] is not pattern:
            return None
        try:
            key, names = encode(pattern, QueryTerms(self._terms), intern=False, handles=HandleTable())
        except CodecError:
            return None
        return key, [Variable(name) for name in names], self._generation

    def _same_generation(self, generation) -> None:
        self._check_open()
        if self._generation is not generation:
            raise SnapshotError("the KB moved to another generation while its answers were read", self.directory)

    def _working_matches(self, pattern: Atom, key: bytes) -> list[Bindings]:
        """Bindings of the working set's added atoms that unify with the pattern."""
        working = self._working
        if not working.delta:
            return []
        found = ((self._decode(p, working.names.get(p, ())), working.delta[p]) for p in working.candidates(key))
        return unified_counted(pattern, found)

    def iter_bindings(self, pattern: Atom) -> Iterator[Bindings]:
        """The answers of `bindings(pattern)`, in its order, computed a chunk at a time as they
        are read."""
        with self._lock:
            start = self._stream_start(pattern)
            if start is None:
                whole = self.bindings(pattern)
        if start is None:
            yield from whole
            return
        key, variables, generation = start
        chunks = generation.candidate_chunks(key)
        while True:
            with self._lock:
                self._same_generation(generation)
                ranks = next(chunks, None)
                if ranks is None:
                    break
                rows = self._snapshot_rows(pattern, key, len(variables), *generation.matched_ranks(key, ranks))
            for answer, copies in rows:
                if type(answer) is tuple:
                    answer = {v: a for v, a in zip(variables, answer) if a is not None}
                yield answer
                for _ in range(copies - 1):
                    yield dict(answer)
        with self._lock:
            self._same_generation(generation)
            found = self._working_matches(pattern, key)
        yield from found

    def count_matches(self, pattern: Atom) -> int:
        """How many answers `bindings(pattern)` has, copies included, from the kernels'
        decisions: no value of a decided candidate is decoded."""
        with self._lock:
            start = self._stream_start(pattern)
            if start is None:
                return len(self.bindings(pattern))
            key, variables, generation = start
            delta = self._working.delta
            if not delta and _each_variable_once(pattern):
                whole = generation.prefix_copies(key)
                if whole is not None:
                    return whole
            total = 0
            for ranks in generation.candidate_chunks(key, first=1 << 16):
                counts, name_ids, data, offsets, status, spans, sides = generation.matched_ranks(key, ranks)
                yes = status == YES
                if delta:
                    total += _copies_after_removals(counts, data, offsets, np.flatnonzero(yes), delta)
                else:
                    total += int(counts[yes].sum())
                if (status == MAYBE).any():
                    # Only the open candidates go to Python: the rows of the others are masked out.
                    open_only = np.where(status == MAYBE, MAYBE, NO).astype(status.dtype)
                    rows = self._snapshot_rows(
                        pattern, key, len(variables), counts, name_ids, data, offsets, open_only, spans, sides
                    )
                    total += sum(copies for _, copies in rows)
            return total + len(self._working_matches(pattern, key))


def _copies_after_removals(counts: np.ndarray, data: np.ndarray, offsets: np.ndarray, kept: np.ndarray, delta) -> int:
    """Copies of the kept candidates once the working set's removals are taken off."""
    raw = data.tobytes()
    total = 0
    for i in kept.tolist():
        removed = min(0, delta.get(raw[offsets[i] : offsets[i + 1]], 0))
        total += max(0, int(counts[i]) + removed)
    return total


def _each_variable_once(pattern: Atom) -> bool:
    """Whether no variable occurs twice in the pattern."""
    seen: set = set()
    stack = [pattern]
    while stack:
        atom = stack.pop()
        if type(atom) is Variable:
            if atom in seen:
                return False
            seen.add(atom)
        elif type(atom) is Expression:
            stack.extend(atom.children)
    return True
