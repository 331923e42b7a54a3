"""Producing generations: the empty one of a new KB, and the next one from a checkpoint.

A checkpoint never goes back to text. The working set's added paths become one small trie and
its removed paths another; the generation's trie is merged with the first and the second is
subtracted (Trie.merge / Trie.subtract walk the sorted arrays). The new term store is the old
one, streamed, followed by the terms added since and the new variable-name lists. A generation
saved with its insertion order passes it on (store.insertion_order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metta_numba.store.errors import SnapshotError
from metta_numba.store.generation import Generation, write_generation
from metta_numba.store.insertion_order import carried_order
from metta_numba.store.overlay import KBTerms
from metta_numba.store.termfile import TermArrays
from metta_numba.store.working import WorkingSet
from metta_numba.trie import Trie


def trie_from_paths(paths: list[bytes], counts: list[int] | None = None, names: list[int] | None = None) -> Trie:
    """A trie of explicit paths (the working set's few; bulk loads build from a batch)."""
    offsets = np.zeros(len(paths) + 1, dtype=np.int64)
    if paths:
        np.cumsum([len(p) for p in paths], out=offsets[1:])
    data = np.frombuffer(b"".join(paths), dtype=np.uint8).copy()
    return Trie.build(
        data,
        offsets,
        counts=None if counts is None else np.asarray(counts, dtype=np.uint64),
        names=None if names is None else np.asarray(names, dtype=np.int64),
    )


def empty_generation(directory: Path, number: int, index_options: dict | None) -> dict:
    return write_generation(directory, number, Trie.empty(), TermArrays.from_texts([]), index_options=index_options)


class _NameLists:
    """Term ids for variable-name lists ("x y"), new ones numbered after every known term.
    The KB's own terms are not touched: if the checkpoint fails, nothing has changed."""

    def __init__(self, terms: KBTerms) -> None:
        self.terms = terms
        self.new_texts: list[str] = []
        self._new_ids: dict[str, int] = {}

    def id_of(self, names: tuple[str, ...]) -> int:
        if not names:
            return -1
        text = " ".join(names)
        term_id = self.terms.find(text)
        if term_id is None:
            term_id = self._new_ids.get(text)
            if term_id is None:
                term_id = self._new_ids[text] = len(self.terms) + len(self.new_texts)
                self.new_texts.append(text)
        return term_id


def next_generation(directory: Path, number: int, generation: Generation, working: WorkingSet, terms: KBTerms) -> dict:
    """Write generation `number` = `generation` + the working set (which is only read)."""
    name_lists = _NameLists(terms)
    added = sorted(working.added())
    removed = sorted(working.removed())
    # The order the working set first changed each path in: the order added copies follow.
    first_changed = {path: i for i, path in enumerate(working.delta)}
    with generation.sequential():
        trie = generation.trie
        names = []
        if added:
            paths = [path for path, _ in added]
            names = [name_lists.id_of(working.names.get(path, ())) for path in paths]
            trie = trie.merge(trie_from_paths(paths, [count for _, count in added], names))
        if removed:
            trie = trie.subtract(trie_from_paths([path for path, _ in removed], [count for _, count in removed]))
        if generation.trie.merkleized and (added or removed):
            trie = trie.merkleize()  # an unchanged trie (an upgrade) is merkleized already
        in_order = sorted(zip(added, names, strict=True), key=lambda item: first_changed[item[0][0]])
        order = carried_order(
            generation.insertion_order(),
            generation.trie,
            trie,
            [(path, count, name) for (path, count), name in in_order],
            removed,
        )
        term_arrays = generation.terms.arrays.extended(terms.added + name_lists.new_texts)
        try:
            source_files = generation.metadata().get("source_files", [])
        except (OSError, ValueError, SnapshotError):  # provenance is informative only
            source_files = []
        return write_generation(
            directory,
            number,
            trie,
            term_arrays,
            source_files=source_files,
            index_options=generation.meta.get("argindex"),
            insertion_order=order,
        )
