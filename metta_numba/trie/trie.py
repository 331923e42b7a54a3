"""The `Trie` class: owns the arrays (layout.py) and wraps the kernels with Python objects,
checks and errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from metta_numba.atoms import Atom
from metta_numba.codec import CodecError, TermStore, UnknownTerm, decode, encode
from metta_numba.codec.kernels import first_bad_path
from metta_numba.trie import match, walk
from metta_numba.trie.column_pack import compact_nodes
from metta_numba.trie.columns import check_columns, plain_nodes

# build, sort, stream, merge, merkle and validate are imported where they are used: their
# kernels take a noticeable time to load, and a process that only opens and queries a
# snapshot needs none of them.
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import (
    ARRAY_NAMES,
    COLUMN_NAMES,
    EARLIER_DTYPES,
    LEAF_DTYPES,
    MAX_DISTINCT_PATHS,
    PLAIN_DTYPES,
    STRUCTURE_NAMES,
    allowed_dtypes,
    is_constant_column,
    narrowest,
)
from metta_numba.trie.spill import PIECE, in_pieces
from metta_numba.unify import match_atom

ABSENT_TERM_ID = 2**64 - 1
"""Stands in a query for a string the term store lacks: no stored path holds it, but a stored
variable may still match it, so the query is not empty."""

Key = Atom | bytes | bytearray | memoryview | np.ndarray


class _QueryTerms:
    """Term lookup for encoding a pattern: a text the store lacks gets ABSENT_TERM_ID."""

    def __init__(self, terms) -> None:
        self.terms = terms

    def find(self, text: str) -> int:
        if self.terms is None:
            raise ValueError(f"the atom holds the string or long symbol {text!r}: pass the TermStore")
        term_id = self.terms.find(text)
        return ABSENT_TERM_ID if term_id is None else term_id


class _RequireTerms:
    def find(self, text: str) -> int:
        raise ValueError(f"the atom holds the string or long symbol {text!r}: pass the TermStore")


def _as_path(key: Key) -> np.ndarray:
    if isinstance(key, np.ndarray):
        return np.ascontiguousarray(key, dtype=np.uint8)
    return np.frombuffer(bytes(key), dtype=np.uint8)



def raise_if_malformed(bad_path: int, bad_byte: int) -> None:
    """Raise CodecError for what `codec.kernels.first_bad_path` found (a path of -1: nothing)."""
    if bad_path >= 0:
        where = "its offsets are out of order or out of range" if bad_byte < 0 else f"byte {bad_byte}"
        raise CodecError(f"path {bad_path} is not one well-formed encoded atom ({where})")


class Trie:
    """An immutable multiset of encoded atoms, stored as flat arrays (see layout.py).

    Build one with `Trie.build` (a batch of paths), `Trie.from_arrays` (arrays from a snapshot,
    memmaps welcome) or `Trie.empty()`. A path's rank (its index in byte order) is its leaf id."""

    __slots__ = ("_arrays", "_structure", "_total", "merkleized")

    def __init__(self, arrays: Mapping[str, np.ndarray], merkleized: bool = False) -> None:
        self._arrays = {name: arrays[name] for name in ARRAY_NAMES}
        self._structure = tuple(self._arrays[name] for name in STRUCTURE_NAMES)
        self._total: int | None = None
        self.merkleized = merkleized

    # --- construction ------------------------------------------------------------------

    @classmethod
    def empty(cls) -> Trie:
        arrays = {name: np.zeros(0, allowed_dtypes(name)[0]) for name in ARRAY_NAMES}
        arrays.update({name: np.zeros(0, dtype) for name, dtype in PLAIN_DTYPES.items()})
        arrays["label_off"] = np.zeros(1, np.uint32)
        arrays["label_len"] = np.zeros(1, np.uint8)
        arrays["child_start"] = np.zeros(2, np.int32)
        return cls(_compacted(arrays))

    @classmethod
    def build(
        cls,
        data: np.ndarray,
        offsets: np.ndarray,
        counts: np.ndarray | None = None,
        names: np.ndarray | None = None,
        order: np.ndarray | None = None,
        checked: bool = False,
        merkleize: bool = False,
    ) -> Trie:
        """Sort, fold duplicates (counts add up; the first occurrence's name stays) and lay out
        the paths `data[offsets[i]:offsets[i+1]]`. Each path must be one well-formed encoded
        atom (CodecError otherwise). `counts` defaults to 1 each, `names` to -1; `order` is
        the paths' sort.sort_paths permutation when the caller has it already. With `checked`
        the caller answers for the paths being well formed (it checks them with
        codec.kernels.first_bad_path itself, e.g. in another thread meanwhile). With
        `merkleize` the trie comes back merkleized (as `.merkleize()` gives, without packing
        and unpacking the tree between)."""
        data = np.ascontiguousarray(data, dtype=np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        n = len(offsets) - 1
        if offsets.ndim != 1 or n < 0:
            raise ValueError("offsets must be a 1-D array of n + 1 positions")
        counts = _optional_column(counts, n, "counts")
        names = _optional_column(names, n, "names")
        if counts.size and counts.min() < 1:
            raise ValueError("counts must be >= 1")
        if n == 0:
            empty = cls.empty()
            empty.merkleized = merkleize
            return empty
        if int(np.diff(offsets).max()) >= 2**31:
            raise ValueError("a path of 2 GB or more")
        if not checked:
            raise_if_malformed(*first_bad_path(data, offsets))
        from metta_numba.trie import sort

        if order is None:
            order = sort.sort_paths(data, offsets)
        first, common, length, total, picked = sort.fold_duplicates(data, offsets, order, counts, names)
        del order
        if len(first) > MAX_DISTINCT_PATHS:
            raise ValueError(f"{len(first)} distinct paths: more than a trie holds ({MAX_DISTINCT_PATHS})")
        stream = [sort.suffix_labels(data, offsets, first, common, length), common, length]
        del first, common, length
        return cls._from_stream(stream, total, picked, merkleize)

    @classmethod
    def _from_stream(cls, stream: list[np.ndarray], counts, names, merkleize: bool = False) -> Trie:
        """Lay out a sorted stream of distinct paths, [labels, common, length] (trie.build),
        which the caller hands over: the list is emptied, so that each column is let go of as
        soon as the layout has read it. Merkleized on request straight from the stream
        (trie.dag_build), without laying out the tree."""
        if merkleize:
            from metta_numba.trie.dag_build import layout_dag

            labels, nodes = layout_dag(stream)
        else:
            from metta_numba.trie.build import layout_trie

            labels = stream[0]
            nodes = layout_trie(stream)
            stream.clear()
        return cls._from_nodes(labels, nodes, counts, names, merkleize)

    @classmethod
    def _from_nodes(cls, labels, nodes, counts, names, merkleized: bool, folder: Path | None = None) -> Trie:
        """The trie of a builder's plain layout (layout.NodeArraysType), packed (into files of
        `folder`, when given: trie.column_pack)."""
        return cls(_named(labels, nodes, counts, names, folder), merkleized=merkleized)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], validate: bool = True, merkleized: bool = False) -> Trie:
        """Take the arrays back (np.memmap views are used in place, not copied).

        Names, dtypes and the lengths that must agree are always checked (O(1)). The column
        arrays may also come in the plain layout of store formats 1-3 (layout.PLAIN_DTYPES):
        they are then packed into columns, in O(n) (`snapshot upgrade`). With
        `validate=True` one O(n) kernel pass also checks every index and offset, the order of
        the edges, the rank offsets and that no cycle is reachable from the root. Without it,
        opening stays O(1) and the query kernels still check each index they read, so bad
        arrays raise CorruptTrieError rather than crash; only then may a corrupt DAG cost a
        query time beyond its result size."""
        for name in ARRAY_NAMES:
            array = arrays.get(name)
            if not isinstance(array, np.ndarray):
                raise CorruptTrieError(f"trie array {name!r} is missing")
            allowed = allowed_dtypes(name) + ((PLAIN_DTYPES[name],) if name in PLAIN_DTYPES else ())
            # dtype equality includes the byte order, so a swapped array is refused too.
            contiguous = array.flags.c_contiguous or (name in LEAF_DTYPES and is_constant_column(array))
            if array.dtype not in allowed or array.ndim != 1 or not contiguous:
                expected = " or ".join(str(dtype) for dtype in allowed)
                earlier = ""
                if array.dtype == EARLIER_DTYPES.get(name):
                    earlier = " (an earlier trie layout: rebuild the snapshot)"
                raise CorruptTrieError(
                    f"trie array {name!r} is {array.dtype} {array.ndim}-D; expected contiguous 1-D {expected}{earlier}"
                )
        arrays = _compacted(arrays)
        lengths = dict(zip(COLUMN_NAMES, check_columns(*(arrays[name] for name in COLUMN_NAMES))))
        n_nodes = len(arrays["label_len"])
        n_edges = lengths["children"]
        if (
            n_nodes < 1
            or lengths["label_off"] != n_nodes
            or lengths["child_start"] != n_nodes + 1
            or len(arrays["child_first_byte"]) != n_edges
            or lengths["child_rank_offset"] != n_edges
            or len(arrays["leaf_name"]) != len(arrays["leaf_count"])
        ):
            raise CorruptTrieError("trie arrays disagree in length")
        trie = cls(arrays, merkleized=merkleized)
        if validate:
            trie.validate()
        return trie

    def validate(self) -> None:
        """The full O(n) check (see `from_arrays`); raises CorruptTrieError."""
        from metta_numba.trie import validate

        validate.validate_trie(self._structure, self._arrays["leaf_count"], self._arrays["leaf_name"])

    # --- arrays and sizes ----------------------------------------------------------------

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """The nine arrays by name (layout.py), as stored; every one is a snapshot section. The
        leaf arrays have the narrowest dtype that holds their values (layout.LEAF_DTYPES)."""
        return dict(self._arrays)

    def plain_arrays(self) -> dict[str, np.ndarray]:
        """The nine arrays with the four columns unpacked into the builders' plain layout
        (layout.PLAIN_DTYPES; `children` holds node ids): O(n), for tools and tests."""
        arrays = self.arrays
        columns = [arrays[name] for name in COLUMN_NAMES]
        arrays.update(zip(COLUMN_NAMES, plain_nodes(*columns, arrays["label_len"])))
        return arrays

    @property
    def n_nodes(self) -> int:
        return len(self._arrays["label_len"])

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self._arrays.values())

    def __len__(self) -> int:
        """Distinct paths."""
        return len(self._arrays["leaf_count"])

    @property
    def total_count(self) -> int:
        """Stored atoms with multiplicity (computed on first use: O(distinct paths))."""
        if self._total is None:
            counts = self._arrays["leaf_count"]
            self._total = sum(int(part.sum(dtype=np.uint64)) for _, part in in_pieces(counts, PIECE))
        return self._total

    def __repr__(self) -> str:
        kind = "DAG" if self.merkleized else "tree"
        return f"<Trie {len(self)} paths, {self.n_nodes} nodes ({kind}), {self.nbytes} bytes>"

    # --- lookups -------------------------------------------------------------------------

    def rank(self, key: Key, terms: TermStore | None = None) -> int | None:
        """The rank of an atom (or encoded path) when stored, else None."""
        if isinstance(key, Atom):
            try:
                key = encode(key, terms if terms is not None else _RequireTerms(), intern=False)[0]
            except UnknownTerm:
                return None
        rank = walk.lookup_rank(self._structure, _as_path(key))
        if rank < 0:
            return None
        self._check_rank(rank)
        return rank

    def count(self, key: Key, terms: TermStore | None = None) -> int:
        """Multiplicity of an atom (or encoded path); 0 when absent. Atoms equal up to variable
        names are the same key."""
        rank = self.rank(key, terms)
        return 0 if rank is None else int(self._arrays["leaf_count"][rank])

    def __contains__(self, key: Key) -> bool:
        return self.rank(key) is not None

    def match(self, pattern: Key, terms: TermStore | None = None) -> np.ndarray:
        """Ranks (sorted, int64) of every stored path that may unify with `pattern`: a superset of
        the true matches, exact where no stored variable repeats and no repeated pattern variable
        first meets a stored variable. Check candidates with unify (see `match_atoms`)."""
        if isinstance(pattern, Atom):
            pattern = encode(pattern, _QueryTerms(terms), intern=False)[0]
        try:
            ranks = match.match_ranks(self._structure, _as_path(pattern), len(self))
        except CorruptTrieError:
            raise
        except ValueError as error:
            raise CodecError(str(error)) from None
        ranks.sort()
        return ranks

    def match_paths(self, pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`match` of an encoded pattern with the candidates' paths, read during the walk:
        (ranks, data, offsets), as `paths(match(pattern))` gives them."""
        try:
            return match.match_paths(self._structure, _as_path(pattern), len(self))
        except CorruptTrieError:
            raise
        except ValueError as error:
            raise CodecError(str(error)) from None

    def match_atoms(self, pattern: Atom | bytes, terms: TermStore, exact: bool = True) -> list[tuple[Atom, int]]:
        """(atom, multiplicity) of the stored atoms that unify with `pattern`, in byte order of
        their paths, with their stored variable names. `exact=False` returns every candidate."""
        pattern_atom = pattern if isinstance(pattern, Atom) else decode(bytes(pattern), terms)
        ranks = self.match(pattern, terms)
        found = []
        for rank, atom in zip(ranks.tolist(), self.atoms_of(ranks, terms)):
            if not exact or match_atom(pattern_atom, atom) is not None:
                found.append((atom, int(self._arrays["leaf_count"][rank])))
        return found

    def prefix_range(self, prefix: Key) -> tuple[int, int]:
        """[lo, hi) of the ranks of the paths that start with the bytes `prefix`."""
        lo, hi = walk.prefix_rank_range(self._structure, _as_path(prefix))
        if hi > len(self):
            raise CorruptTrieError("rank offsets disagree with the leaves")
        return int(lo), int(hi)

    # --- decoding ------------------------------------------------------------------------

    def path(self, rank: int) -> bytes:
        self._check_rank(rank, arg=True)
        data, offsets = walk.paths_of_ranks(self._structure, np.array([rank], np.int64))
        return data.tobytes()

    def paths(self, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The paths of the given ranks as a batch (data, offsets)."""
        ranks = np.ascontiguousarray(ranks, dtype=np.int64)
        order = walk.rank_order(ranks, len(self))
        if order < 0:
            raise IndexError("rank out of range")
        if order == 1 and ranks.size > 1:
            # Candidates come sorted: shared prefixes are then walked once.
            return walk.paths_of_sorted_ranks(self._structure, ranks)
        return walk.paths_of_ranks(self._structure, ranks)

    def batch(self, lo: int = 0, hi: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ranks lo..hi-1 as a batch (data, offsets, counts, names), walking the leaves in order."""
        hi = len(self) if hi is None else min(hi, len(self))
        lo = max(0, min(lo, hi))
        from metta_numba.trie import stream

        data, offsets = stream.expand(*self.leaf_stream(lo, hi))
        counts = self._arrays["leaf_count"][lo:hi].astype(np.uint64)
        return data, offsets, counts, self._arrays["leaf_name"][lo:hi].astype(np.int64)

    def leaf_stream(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ranks lo..hi-1 (clipped to the trie) front-coded: (suffixes, common, length), see
        trie.stream; `counts(lo, hi)` gives their multiplicities."""
        from metta_numba.trie import stream

        return stream.leaf_stream(self._structure, lo, hi, len(self))

    def counts(self, lo: int, hi: int) -> np.ndarray:
        """The multiplicity of each of ranks lo..hi-1, as int64."""
        return self._arrays["leaf_count"][lo:hi].astype(np.int64)

    def iter_paths(self, prefix: Key = b"", chunk: int = 65536) -> Iterator[tuple[bytes, int]]:
        """(path, multiplicity) of each distinct path in byte order; only those starting with
        `prefix` when given."""
        lo, hi = self.prefix_range(prefix) if len(prefix) else (0, len(self))
        for start in range(lo, hi, chunk):
            data, offsets, counts, _ = self.batch(start, min(start + chunk, hi))
            for i in range(len(offsets) - 1):
                yield data[offsets[i] : offsets[i + 1]].tobytes(), int(counts[i])

    def var_names(self, rank: int, terms: TermStore) -> list[str] | None:
        name_id = int(self._arrays["leaf_name"][rank])
        return None if name_id < 0 else terms.text(name_id).split(" ")

    def atom(self, rank: int, terms: TermStore) -> Atom:
        """The atom of rank `rank`, with its stored variable names."""
        return decode(self.path(rank), terms, self.var_names(rank, terms))

    def atoms_of(self, ranks: np.ndarray, terms: TermStore) -> list[Atom]:
        data, offsets = self.paths(ranks)
        return [
            decode(data[offsets[i] : offsets[i + 1]].tobytes(), terms, self.var_names(int(rank), terms))
            for i, rank in enumerate(np.asarray(ranks).tolist())
        ]

    def iter_atoms(self, terms: TermStore, chunk: int = 65536) -> Iterator[tuple[Atom, int]]:
        """(atom, multiplicity) of every distinct stored atom, in byte order of the paths."""
        for start in range(0, len(self), chunk):
            data, offsets, counts, names = self.batch(start, start + chunk)
            for i in range(len(offsets) - 1):
                name_id = int(names[i])
                var_names = None if name_id < 0 else terms.text(name_id).split(" ")
                yield decode(data[offsets[i] : offsets[i + 1]].tobytes(), terms, var_names), int(counts[i])

    # --- whole-trie operations -----------------------------------------------------------

    def merge(self, other: Trie) -> Trie:
        """Multiset union: counts add; a path on both sides keeps this side's name."""
        from metta_numba.trie import merge

        return self._merged(other, merge.UNION)

    def subtract(self, other: Trie) -> Trie:
        """Multiset difference: counts subtract and paths that reach 0 go."""
        from metta_numba.trie import merge

        return self._merged(other, merge.DIFFERENCE)

    def _merged(self, other: Trie, how: int) -> Trie:
        # The merge kernel reads the widest leaf dtypes, contiguous (a constant column is a view
        # of stride 0); widening is O(n), as the merge is.
        from metta_numba.trie import merge

        labels, common, length, counts, names = merge.merge_tries(
            self._structure,
            np.ascontiguousarray(self._arrays["leaf_count"], dtype=np.uint64),
            np.ascontiguousarray(self._arrays["leaf_name"], dtype=np.int64),
            other._structure,
            np.ascontiguousarray(other._arrays["leaf_count"], dtype=np.uint64),
            np.ascontiguousarray(other._arrays["leaf_name"], dtype=np.int64),
            how,
        )
        stream = [labels, common, length]
        del labels, common, length
        return Trie._from_stream(stream, counts, names)

    def merkleize(self) -> Trie:
        """The same multiset with identical subtries stored once (a DAG)."""
        from metta_numba.trie import merkle, validate

        # On the plain arrays (see trie.merkle), every index checked first: the kernels there
        # index them directly.
        plain = self.plain_arrays()
        structure = tuple(plain[name] for name in STRUCTURE_NAMES)
        validate.check_node_fields(structure)
        labels, nodes = merkle.merkleize_structure(structure)
        return Trie(_named(labels, nodes, self._arrays["leaf_count"], self._arrays["leaf_name"]), merkleized=True)

    def _check_rank(self, rank: int, arg: bool = False) -> None:
        if not 0 <= rank < len(self):
            if arg:
                raise IndexError(f"rank {rank} out of range for {len(self)} paths")
            raise CorruptTrieError("rank offsets disagree with the leaves")


def _named(labels, nodes, counts, names, folder: Path | None = None) -> dict[str, np.ndarray]:
    """The arrays of a trie from a builder's plain layout (layout.NodeArraysType)."""
    named = dict(zip(ARRAY_NAMES, (labels, *nodes, narrowest(counts, "leaf_count"), narrowest(names, "leaf_name"))))
    return _compacted(named, folder)


def _compacted(arrays: Mapping[str, np.ndarray], folder: Path | None = None) -> dict[str, np.ndarray]:
    """`arrays` with the column arrays packed (trie.column_pack; into files of `folder` when
    given) when they come in the plain layout."""
    arrays = dict(arrays)
    if all(arrays[name].dtype == np.uint64 for name in COLUMN_NAMES):
        return arrays
    if any(arrays[name].dtype != PLAIN_DTYPES[name] for name in COLUMN_NAMES):
        raise CorruptTrieError("trie arrays mix the plain and the compact layout")
    plain = [arrays[name] for name in COLUMN_NAMES]
    if len(plain[1]) != len(arrays["label_len"]) + 1 or len(plain[1]) < 1 or int(plain[1][-1]) != len(plain[2]):
        raise CorruptTrieError("trie arrays disagree in length")
    try:
        arrays.update(zip(COLUMN_NAMES, compact_nodes(*plain, arrays["label_len"], folder)))
    except ValueError as error:
        raise CorruptTrieError(str(error)) from None
    return arrays


def _optional_column(values, n: int, what: str) -> np.ndarray:
    if values is None:
        return np.zeros(0, np.int64)
    values = np.ascontiguousarray(values, dtype=np.int64)
    if values.shape != (n,):
        raise ValueError(f"{what} must have one entry per path ({n})")
    return values
