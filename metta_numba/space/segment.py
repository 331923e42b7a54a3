"""A run of plain atoms read by the bulk reader, kept as arrays inside an in-memory space.

`BulkSegment` holds the encoded paths of a program's leading run of atoms (syntax.bulk), a
trie over them for pattern lookup (atoms equal up to variable names share one path; each copy
keeps its insertion index and its own variable names), and the nodes of hyperon's answer-order
trie over the same paths (space/segment_order.py), so that a GroundingSpace holding a segment
answers in exactly the order it would had each atom been added one by one. Atoms are decoded only when a
query reaches them.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from metta_numba.atoms import Atom, Expression, Grounded, Variable
from metta_numba.codec import CodecError, decode
from metta_numba.codec.kernels import first_bad_path
from metta_numba.space import segment_kernels as kernels
from metta_numba.trie import Trie
from metta_numba.trie.trie import raise_if_malformed

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


_RESERVED = []


def _reserved_names() -> re.Pattern:
    """Matches the encoded bytes of any reserved name (core.CANONICAL) in a path: only then
    does a decoded atom need the shared instances (a conservative test, cheaper than a walk)."""
    if not _RESERVED:
        from metta_numba.interp.core import CANONICAL

        encoded = [bytes([0xC0 | len(name.encode())]) + name.encode() for name in CANONICAL]
        _RESERVED.append(re.compile(b"|".join(re.escape(e) for e in encoded)))
    return _RESERVED[0]


class SegmentUnsupported(ValueError):
    """The batch holds something the segment cannot order exactly (a float)."""


def _searchable(pattern: Atom) -> Atom:
    """The pattern with what the path trie cannot look up exactly replaced by variables (a
    number may equal a stored number of the other kind; an object has no path): the trie then
    returns a superset of the candidates, and unification decides."""
    t = type(pattern)
    if t is Expression:
        kids = [_searchable(c) for c in pattern.children]
        return pattern if all(a is b for a, b in zip(kids, pattern.children)) else Expression(kids)
    if t is Grounded:
        value = pattern.value
        if type(value) is float or (type(value) is int and not _INT64_MIN <= value <= _INT64_MAX):
            return Variable("%segment-any")
        return pattern
    if t is Variable or t.__name__ == "Symbol":
        return pattern
    return Variable("%segment-any")


class BulkSegment:
    """Atoms 0..n-1 of a space, as encoded paths (see module docstring)."""

    def __init__(self, batch) -> None:
        self.terms = batch.terms
        self.data = np.ascontiguousarray(batch.data, dtype=np.uint8)
        self.offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
        self.names = np.asarray(batch.names, dtype=np.int64)
        n = len(self.offsets) - 1
        self._names_cache: dict[int, list[str]] = {}
        if n and int(np.diff(self.offsets).max()) >= kernels.MAX_PATH_BYTES:
            raise SegmentUnsupported("an atom too long for a node code")
        self._order = None
        order = _sorted_order(self.data, self.offsets)
        # The check of the paths (Trie.build's own, done here instead), the float test and the
        # copies of each path run in a second thread, beside the trie's build (every kernel
        # here releases the GIL).
        side: dict = {}

        def group() -> None:
            side["bad"] = first_bad_path(self.data, self.offsets)
            side["float"] = kernels.token_count(self.data, self.offsets)[1]
            side["copies"] = kernels.copy_groups(self.data, self.offsets, order)

        if n >= PARALLEL_MIN_ATOMS:
            thread = _started(group)
            try:
                self.trie = Trie.build(self.data, self.offsets, order=order, checked=True)
            finally:
                thread.join()
            _refuse(side)
        else:
            group()
            _refuse(side)
            self.trie = Trie.build(self.data, self.offsets, order=order, checked=True)
        # Copies of each distinct path, by insertion index: copies[copy_start[r]:copy_start[r+1]].
        self.copies, self.copy_start = side["copies"]
        self.length = n
        self._decoded: dict[int, Atom] = {}
        # Atoms removed from the space: marked, not taken out of the arrays (a tombstone).
        self.dead = np.zeros(n, np.bool_)
        self.n_dead = 0

    @property
    def order(self):
        """The answer-order nodes of the atoms (space/segment_order.py), made on first need."""
        if self._order is None:
            from metta_numba.space.segment_order import SegmentOrder

            self._order = SegmentOrder(self)
        return self._order

    def __len__(self) -> int:
        return self.length

    # -- atoms -------------------------------------------------------------------------------
    def atom(self, index: int) -> Atom:
        """Atom `index`, with its own variable names (decoded once, then kept)."""
        found = self._decoded.get(index)
        if found is None:
            from metta_numba.interp.core import canonical

            name_id = int(self.names[index])
            names = None
            if name_id >= 0:
                names = self._names_cache.get(name_id)
                if names is None:
                    names = self._names_cache[name_id] = self.terms.text(name_id).split(" ")
            path = self.data[self.offsets[index] : self.offsets[index + 1]].tobytes()
            found = decode(path, self.terms, names)
            if _reserved_names().search(path) is not None:
                found = canonical(found)
            self._decoded[index] = found
        return found

    def nodes_of(self, index: int) -> list[int]:
        """The answer-order node code of each token of atom `index`."""
        return self.order.nodes_of(index)

    def prefix_nodes(self, tokens: list) -> list[int]:
        """The answer-order node codes of the leading TrieOrder tokens some atom here holds."""
        return self.order.prefix_nodes(tokens)

    def candidate_ids(self, pattern: Atom) -> np.ndarray:
        """Insertion indexes (sorted) of the atoms that may unify with `pattern`."""
        try:
            ranks = self.trie.match(_searchable(pattern), self.terms)
        except (CodecError, ValueError):
            return np.arange(self.length, dtype=np.int64)
        if ranks.size == 0:
            return ranks.astype(np.int64)
        starts = self.copy_start[ranks]
        sizes = self.copy_start[ranks + 1] - starts
        shifts = np.repeat(starts - np.cumsum(sizes) + sizes, sizes)
        ids = self.copies[np.arange(int(sizes.sum())) + shifts]
        ids.sort()
        return ids[~self.dead[ids]] if self.n_dead else ids

    def live_ids(self) -> list[int]:
        """Insertion indexes of the atoms not removed."""
        return np.flatnonzero(~self.dead).tolist() if self.n_dead else list(range(self.length))

    def live_paths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(data, offsets, names) of the atoms not removed, in insertion order."""
        if not self.n_dead:
            return self.data, self.offsets, self.names
        live = np.flatnonzero(~self.dead)
        starts = self.offsets[live]
        sizes = self.offsets[live + 1] - starts
        offsets = np.zeros(live.size + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        data = self.data[np.repeat(starts - offsets[:-1], sizes) + np.arange(int(offsets[-1]))]
        return data, offsets, self.names[live]

    def kill(self, index: int) -> list[int]:
        """Mark atom `index` removed. Returns, for each of its tokens, how many atoms still
        pass through its answer-order node."""
        self.dead[index] = True
        self.n_dead += 1
        self._decoded.pop(index, None)
        self.order.forget(index)
        return self.order.live_through(index, self.dead)


def _refuse(side: dict) -> None:
    """Raise for what the side pass found: a malformed path (as Trie.build would), a float."""
    raise_if_malformed(*side["bad"])
    if side["float"]:
        raise SegmentUnsupported("a float token (it may equal a whole number)")


def trim_free_memory() -> None:
    """Give the memory freed in other threads' malloc arenas back to the system: glibc keeps
    a freed block once its mmap threshold has risen past the block's size, so the bulk
    loader's temporary arrays (scan buffers, sort keys) would stay in the process while the
    next step runs, some 20 MB for 400K rules. Elsewhere than glibc this does nothing."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(ctypes.c_size_t(0))
    except (OSError, AttributeError):
        pass


PARALLEL_MIN_ATOMS = 1 << 14
"""Segments of fewer atoms are built by one thread (a second would not pay for itself)."""


def _started(work) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _sorted_order(data: np.ndarray, offsets: np.ndarray, force_halves: bool = False) -> np.ndarray:
    """sort.sort_paths of the paths; a long batch is sorted in two halves at once, which are
    then merged."""
    from metta_numba.trie import sort

    n = len(offsets) - 1
    if n < PARALLEL_MIN_ATOMS and not force_halves:
        return sort.sort_paths(data, offsets)
    half = n // 2
    second: list = []
    thread = _started(lambda: second.append(sort.sort_paths(data, offsets[half:])))
    try:
        first = sort.sort_paths(data, offsets[: half + 1])
    finally:
        thread.join()
    merged = kernels.merge_orders(data, offsets, first, second[0] + half)
    del first
    second.clear()
    trim_free_memory()
    return merged


def joined_paths(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, offsets, names) of several such triples, one after the other (the arrays of
    the only part holding atoms as they are: no copy)."""
    holding = [p for p in parts if len(p[1]) > 1]
    parts = holding if holding else parts[:1]
    if len(parts) == 1:
        data, offsets, names = parts[0]
        return np.asarray(data, np.uint8), np.asarray(offsets, np.int64), np.asarray(names, np.int64)
    data = np.concatenate([np.asarray(p[0], np.uint8) for p in parts])
    sizes = np.concatenate([np.diff(p[1]) for p in parts])
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    names = np.concatenate([np.asarray(p[2], np.int64) for p in parts])
    return data, offsets, names


def space_paths(space, terms, own_only: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(data, offsets, names, skipped) of every atom of a GroundingSpace, in insertion order:
    its segment's arrays as they are (`terms` must then be the segment's term store; left out
    with `own_only`), then the atoms added one by one, encoded into `terms` (skipped: those
    that hold an object). Raises CodecError for an atom that cannot be encoded at all."""
    from metta_numba.codec import encode_atoms

    parts = []
    segment = space._segment
    if segment is not None and not own_only:
        parts.append(segment.live_paths())
    data, offsets, names, skipped = encode_atoms(list(space._atoms.values()), terms)
    parts.append((data, offsets, names))
    return (*joined_paths(parts), skipped)


_LOADED: list[bool] = []
_LOADER: list[threading.Thread] = []  # the thread loading them, once started


def load_kernels_in_background() -> None:
    """Start `load_kernels` in a thread of its own: the loads spend much of their time in
    LLVM, without the GIL, so they overlap the interpreter's set-up. Until `load_kernels`
    returns (it waits for that thread), no other thread may call a segment kernel: one that
    found a kernel being loaded would run its slow stand-in (cold_start)."""
    if not _LOADED and not _LOADER:
        thread = threading.Thread(target=load_kernels, daemon=True)
        _LOADER.append(thread)
        thread.start()


def load_kernels() -> None:
    """Load the machine code of the kernels that building a segment and its first query run,
    by running them on a segment of two atoms. The bulk loader calls this while its reader
    scans the text in other threads (the kernels release the GIL), so that these loads, which
    hold the GIL, overlap the scan instead of following it. The arrays are of the kinds a real
    segment holds (writable, contiguous), so that each kernel is loaded for those types."""
    if _LOADER and _LOADER[0] is not threading.current_thread():
        _LOADER[0].join()
    if _LOADED:
        return
    _LOADED.append(True)
    from types import SimpleNamespace

    from metta_numba.atoms import Symbol
    from metta_numba.codec import TermStore, encode_atoms

    x = Variable("x")
    atoms = [
        Expression([Symbol("="), Expression([Symbol("f"), x]), x]),
        Expression([Symbol("="), Expression([Symbol("f"), Symbol("a")]), Symbol("a")]),
    ]
    terms = TermStore()
    data, offsets, names, _ = encode_atoms(atoms, terms)
    batch = SimpleNamespace(data=np.array(data, np.uint8), offsets=np.array(offsets, np.int64),
                            names=np.array(names, np.int64), terms=terms)  # fmt: skip
    segment = BulkSegment(batch)
    _sorted_order(segment.data, segment.offsets, force_halves=True)
    segment.candidate_ids(Expression([Symbol("="), Expression([Symbol("f"), Symbol("a")]), Variable("r")]))
    segment.nodes_of(1)
