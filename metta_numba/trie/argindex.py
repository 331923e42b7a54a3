"""Secondary indexes on argument positions: a lookup by any ground argument in O(log n + k).

The trie answers a pattern quickly when its leading tokens are ground: `(edge n_5 $y)` walks
to the few paths under that prefix. `(edge $x n_5)` has only `(edge` as its prefix, so the
trie alone would visit every edge. The argument index answers it from sorted arrays built
with the snapshot, with nothing built at query time.

For each position (a child of the top-level expression, or a child of such a child; see
argindex_entries for the codes) the index keeps:
- the *postings*: ranks of the atoms whose subterm there is ground, grouped by the 32-bit key
  of that subterm's bytes (argindex_entries), ranks ascending within a key; the distinct keys ascend, with a
  sparse *fence* (every 512th key) so that a lookup touches a page or two;
- the ranks of the atoms with a variable there, and with an expression holding a variable:
  those may unify with anything at that position, so they are always candidates (kept only
  where a lookup reads them: at a keyed position, and at the parent of a keyed depth-2 one);
- the ranks of the atoms that are a bare variable (one list for all positions).

A lookup takes the pattern's prefix ranges (the trie ranks that start with its ground prefix,
plus the subtrees that leave that prefix at a stored variable), and for each ground position
of the pattern counts, by binary searches, the postings and wildcard ranks inside those ranges.
The smallest count wins; when the prefix ranges are smaller, they are the candidates (or the
trie's match kernel runs, when later ground tokens narrow the walk). Candidates are a superset:
hash collisions and arities aside, the exact unification afterwards decides.

Everything is four arrays (`table`, `hashes`, `key_start`, `ranks`), stored as snapshot
sections. `ranks` and `key_start` are bit-packed (trie.packed): a rank in the bits the trie's
path count needs, a key's start in the bits the postings' count needs, read in O(1) by
`packed_get`. Index version 3 has 32-bit keys; 2 had 64-bit keys; 1 stored the postings and
key starts as uint32 and int64. Positions 1 and 1.0 are not keyed when the trie serves them
(head_fanout). Opening checks the table in O(positions); `verify()` checks all of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from metta_numba.trie import argindex_entries as entries
from metta_numba.trie import argindex_kernels as kernels
from metta_numba.trie import packed
from metta_numba.trie.argindex_plan import (
    CODE_COLUMN,
    INDEX_VERSION,
    RANK_COLUMN,
    SELECTIVE_PREFIX,
    UNPACKED_RANK_BYTES,
    UNPACKED_START_BYTES,
    joined_columns,
    layout_index,
)
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.head_fanout import positions_served_by_trie
from metta_numba.trie.trie import Trie

__all__ = ["ArgIndex", "IndexOptions", "LiveArgIndex", "DEFAULT_MAX_CHILD", "parse_position"]

DEFAULT_MAX_CHILD = 16
"""Child indices from 0 to 15 are indexed at both depths."""
DEFAULT_MAX_RATIO = 1.0
"""By default the index may take as many bytes as the trie's arrays, no more..."""
MIN_RATIO_CAP = 1 << 20
"""...or 1 MiB, whichever is more: a small KB keeps all its positions."""

ARRAY_DTYPES: dict[str, np.dtype] = {
    "table": np.dtype(np.int64),
    "hashes": np.dtype(np.uint32),
    "key_start": np.dtype(np.uint64),
    "ranks": np.dtype(np.uint64),
}
"""`key_start` and `ranks` are packed arrays (trie.packed) held in uint64 words."""
PACKED = ("key_start", "ranks")

Position = tuple[int, ...]


def position_code(position: Position) -> int:
    """The kernels' code of a position: (c0,) or (c0, c1)."""
    if len(position) == 1:
        return (position[0] + 1) << 32
    if len(position) == 2:
        return ((position[0] + 1) << 32) | (position[1] + 1)
    raise ValueError(f"positions have depth 1 or 2, not {len(position)}")


def code_position(code: int) -> Position:
    c0 = (code >> 32) - 1
    c1 = (code & entries.DEPTH2_MASK) - 1
    return (c0,) if c1 < 0 else (c0, c1)


def parse_position(text: str) -> Position:
    """'2' -> (2,), '1.2' -> (1, 2): child indices counted from the head, which is 0."""
    try:
        position = tuple(int(part) for part in text.split("."))
    except ValueError:
        raise ValueError(f"not a position: {text!r} (use 2 or 1.2)") from None
    if not 1 <= len(position) <= 2 or min(position) < 0 or position[0] == 0:
        raise ValueError(f"not an indexable position: {text!r} (depth 1 or 2, first index >= 1)")
    return position


class IndexOptions:
    """What to index: `positions` (None: every position of depth 1 and 2 with child indices
    below `max_child`), `heads` (None: every atom; else only expressions with these head
    symbols), and a size cap (`max_bytes`, or `max_ratio` times the trie's bytes), which drops
    the least selective positions' postings first. The cap counts the index unpacked
    (`ArgIndex.unpacked_nbytes`), so the positions kept do not depend on the bit widths of
    its packed arrays."""

    def __init__(
        self,
        positions: Iterable[Position] | None = None,
        heads: Iterable[str] | None = None,
        max_bytes: int | None = None,
        max_ratio: float | None = DEFAULT_MAX_RATIO,
        max_child: int = DEFAULT_MAX_CHILD,
    ) -> None:
        self.positions = None if positions is None else sorted({tuple(p) for p in positions})
        self.heads = None if heads is None else sorted(set(heads))
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.max_child = int(max_child)
        if self.positions is not None:
            for position in self.positions:
                parse_position(".".join(map(str, position)))
                if max(position) >= self.max_child:
                    self.max_child = max(position) + 1

    def to_json(self) -> dict:
        return {
            "positions": None if self.positions is None else [list(p) for p in self.positions],
            "heads": self.heads,
            "max_bytes": self.max_bytes,
            "max_ratio": self.max_ratio,
            "max_child": self.max_child,
        }

    @classmethod
    def from_json(cls, data: Mapping | None) -> IndexOptions:
        if not data:
            return cls()
        positions = data.get("positions")
        return cls(
            positions=None if positions is None else [tuple(p) for p in positions],
            heads=data.get("heads"),
            max_bytes=data.get("max_bytes"),
            max_ratio=data.get("max_ratio", DEFAULT_MAX_RATIO),
            max_child=data.get("max_child", DEFAULT_MAX_CHILD),
        )


class ArgIndex:
    """The argument index of one trie (see the module docstring). Build with `ArgIndex.build`,
    reopen with `ArgIndex.from_arrays`."""

    __slots__ = ("_arrays", "_table", "_hashes", "_key_start", "_ranks", "n_leaves")

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._arrays = {name: arrays[name] for name in ARRAY_DTYPES}
        self._table = self._arrays["table"]
        self._hashes = self._arrays["hashes"]
        self._key_start = self._arrays["key_start"]
        self._ranks = self._arrays["ranks"]
        table = self._table
        self.n_leaves = int(table[kernels.H_LEAVES]) if len(table) > kernels.H_LEAVES else -1

    # --- construction ------------------------------------------------------------------

    @classmethod
    def build(cls, trie: Trie, options: IndexOptions | None = None, chunk: int = 1 << 16) -> ArgIndex:
        """Index `trie` in bulk: its paths are read in chunks of ranks, and every step after
        that is a kernel or a NumPy sort over all entries (no Python object per atom)."""
        options = options or IndexOptions()
        n_leaves = len(trie)
        cover = _cover_ranges(trie, options.heads)
        parts = []
        for lo in range(0, n_leaves, chunk):
            hi = min(lo + chunk, n_leaves)
            data, offsets, _, _ = trie.batch(lo, hi)
            parts.append(entries.batch_entries(data, offsets, lo, options.max_child))
        columns = joined_columns(parts)
        del parts
        keep = _in_ranges(columns[RANK_COLUMN], cover)
        if options.positions is not None:
            wanted = [position_code(p) for p in options.positions]
            # A depth-2 position needs its parent's variables; bare variables always count.
            parents = [code & ~entries.DEPTH2_MASK for code in wanted]
            keep &= np.isin(columns[CODE_COLUMN], wanted + parents + [entries.TOP_VARIABLE_CODE])
            keyed_codes = set(wanted)
        else:
            keyed_codes = None
        served = served_codes(trie, options)
        if not keep.all():
            columns = [column[keep] for column in columns]
        del keep
        cap = options.max_bytes
        if cap is None and options.max_ratio is not None:
            cap = max(int(options.max_ratio * trie.nbytes), MIN_RATIO_CAP)
        # layout_index takes the columns over: it frees each as soon as it has used it.
        return cls(layout_index(columns, n_leaves, cover, options.max_child, keyed_codes, cap, served))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], n_leaves: int) -> ArgIndex:
        """Take stored arrays back (memmaps are used in place) after the O(positions) check.
        Raises CorruptTrieError when they are mis-shaped or belong to another trie."""
        for name, dtype in ARRAY_DTYPES.items():
            array = arrays.get(name)
            if not isinstance(array, np.ndarray):
                raise CorruptTrieError(f"argument index array {name!r} is missing")
            if array.dtype != dtype or array.ndim != 1 or not array.flags.c_contiguous:
                raise CorruptTrieError(f"argument index array {name!r} is {array.dtype} {array.ndim}-D")
        table = arrays["table"]
        if len(table) >= kernels.ROW and int(table[kernels.H_VERSION]) != INDEX_VERSION:
            version = int(table[kernels.H_VERSION])
            raise CorruptTrieError(f"argument index version {version}; this library reads version {INDEX_VERSION}")
        for name in PACKED:
            packed.check_packed(arrays[name], f"argument index array {name!r}")
        index = cls(arrays)
        index._check_table(n_leaves)
        return index

    def _check_table(self, n_leaves: int) -> None:
        sizes = len(self._hashes), packed.packed_len(self._key_start), packed.packed_len(self._ranks)
        kernels.check_table(self._table, *sizes, n_leaves)

    def verify(self) -> None:
        """The full check of every array (O(size)); raises CorruptTrieError."""
        self._check_table(self.n_leaves)
        kernels.verify_index(self._table, self._hashes, self._key_start, self._ranks)

    # --- sizes and description -----------------------------------------------------------

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self._arrays.values())

    @property
    def unpacked_nbytes(self) -> int:
        """The size with postings and key starts unpacked: what the size cap counts."""
        return (
            self._table.nbytes
            + self._hashes.nbytes
            + UNPACKED_START_BYTES * packed.packed_len(self._key_start)
            + UNPACKED_RANK_BYTES * packed.packed_len(self._ranks)
        )

    def positions(self) -> list[dict]:
        """One record per indexed position: its path, ground atoms, distinct keys, whether its
        postings are kept, and its wildcard counts."""
        table = self._table
        out = []
        for row in range(1, int(table[kernels.H_ROWS]) + 1):
            base = row * kernels.ROW
            field = lambda k, base=base: int(table[base + k])  # noqa: E731
            out.append(
                {
                    "position": code_position(field(kernels.CODE)),
                    "ground": field(kernels.N_GROUND),
                    "keys": field(kernels.N_KEYS),
                    "keyed": bool(field(kernels.KEYED)),
                    "variables": field(kernels.VAR_HI) - field(kernels.VAR_LO),
                    "open": field(kernels.OPEN_HI) - field(kernels.OPEN_LO),
                }
            )
        return out

    def __repr__(self) -> str:
        keyed = sum(1 for p in self.positions() if p["keyed"])
        return f"<ArgIndex {keyed} positions keyed over {self.n_leaves} paths, {self.nbytes} bytes>"

    # --- lookups -------------------------------------------------------------------------

    @property
    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(table, hashes, key starts, postings): what the lookup kernels take (see
        unifypaths.matched_rows)."""
        return self._table, self._hashes, self._key_start, self._ranks

    def lookup(self, trie: Trie, pattern: np.ndarray, gather: bool = True) -> tuple[int, int, np.ndarray]:
        """(choice, estimate, ranks) for an encoded pattern; see argindex_kernels.lookup."""
        try:
            return kernels.lookup(
                trie._structure, pattern, self._table, self._hashes, self._key_start, self._ranks, gather
            )
        except CorruptTrieError:
            raise
        except ValueError as error:
            from metta_numba.codec import CodecError

            raise CodecError(str(error)) from None

    def candidates(self, trie: Trie, pattern: bytes | np.ndarray, selective: int = SELECTIVE_PREFIX) -> np.ndarray:
        """Sorted ranks of the stored paths that may unify with the encoded pattern. A pattern
        whose ground prefix leaves at most `selective` paths is answered by the trie alone:
        the index would add a page or more of each of its arrays to a cold lookup, to narrow
        candidates that are already few (a negative `selective` always asks the index)."""
        path = _as_path(pattern)
        ranks = self.plan(trie, path, selective)
        return trie.match(path) if ranks is BY_MATCH else ranks

    def plan(self, trie: Trie, path: np.ndarray, selective: int = SELECTIVE_PREFIX) -> np.ndarray | object:
        """`candidates`, or BY_MATCH where they are the trie match kernel's to find."""
        if selective >= 0:
            ranks = _prefix_plan(trie, path, selective)
            if ranks is not None:
                return ranks
        choice, _, ranks = self.lookup(trie, path)
        return BY_MATCH if choice == kernels.USE_TRIE else ranks

    def estimate(self, trie: Trie, pattern: bytes | np.ndarray) -> int:
        """An upper bound of the matches of the encoded pattern, from counts alone."""
        return int(self.lookup(trie, _as_path(pattern), gather=False)[1])


BY_MATCH = object()
"""What a candidate plan says when the trie's match kernel is to find the candidates."""


def prefix_candidates(trie: Trie, path: np.ndarray, limit: int | None = None) -> np.ndarray | None:
    """The candidate ranks of an encoded pattern from the trie alone: its prefix ranges when no
    ground token follows its ground prefix, else the trie's match kernel. None when `limit` is
    given and the prefix ranges hold more paths than that."""
    ranks = _prefix_plan(trie, path, limit)
    return trie.match(path) if ranks is BY_MATCH else ranks


def _prefix_plan(trie: Trie, path: np.ndarray, limit: int | None) -> np.ndarray | object | None:
    """`prefix_candidates`, with BY_MATCH in place of the match kernel's candidates."""
    try:
        ranges, later = kernels.prefix_ranges(trie._structure, path)
    except CorruptTrieError:
        raise
    except ValueError as error:
        from metta_numba.codec import CodecError

        raise CodecError(str(error)) from None
    if limit is not None and kernels.range_total(ranges) > limit:
        return None
    if later == 0:
        return kernels.ranks_of_ranges(ranges)
    return BY_MATCH


def ground_candidates(trie: Trie, path: np.ndarray) -> tuple[int, int]:
    """For an encoded pattern without variables: (how many stored paths may unify with it, the
    rank of the path equal to it or -1). One candidate that is the pattern's own path means no
    stored path with a variable can match it, so its answer needs no unification."""
    return kernels.ground_lookup(trie._structure, path)


def trie_candidates(trie: Trie, index: ArgIndex | None, pattern: bytes | np.ndarray) -> np.ndarray:
    """Candidate ranks through the index when there is one, else through the trie."""
    path = _as_path(pattern)
    ranks = _candidate_plan(trie, index, path)
    return trie.match(path) if ranks is BY_MATCH else ranks


def candidate_paths(
    trie: Trie, index: ArgIndex | None, pattern: bytes | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`trie_candidates` with their paths as one batch: (ranks, data, offsets). Where the trie's
    match kernel finds the candidates, it reads their paths as it passes them, which saves a
    second walk down to every one."""
    path = _as_path(pattern)
    ranks = _candidate_plan(trie, index, path)
    if ranks is BY_MATCH:
        return trie.match_paths(path)
    return (ranks, *trie.paths(ranks))


def _candidate_plan(trie: Trie, index: ArgIndex | None, path: np.ndarray) -> np.ndarray | object:
    if index is not None:
        return index.plan(trie, path)
    return _prefix_plan(trie, path, None)


def trie_estimate(trie: Trie, index: ArgIndex | None, pattern: bytes | np.ndarray) -> int:
    path = _as_path(pattern)
    if index is not None:
        return index.estimate(trie, path)
    ranges, _ = kernels.prefix_ranges(trie._structure, path)
    return int(kernels.range_total(ranges))


def _as_path(pattern: bytes | np.ndarray) -> np.ndarray:
    if isinstance(pattern, np.ndarray):
        return np.ascontiguousarray(pattern, dtype=np.uint8)
    return np.frombuffer(bytes(pattern), dtype=np.uint8)


# --- building ------------------------------------------------------------------------------


def _cover_ranges(trie: Trie, heads: list[str] | None) -> np.ndarray:
    """Sorted disjoint rank ranges of the atoms to index: all, or those with the given heads
    (one prefix range per head and arity)."""
    n = len(trie)
    if heads is None:
        return np.array([0, n] if n else [], dtype=np.int64)
    from metta_numba.atoms import Symbol
    from metta_numba.codec import TermStore, encode

    pairs = []
    for head in heads:
        try:
            head_bytes = encode(Symbol(head), TermStore(), intern=False)[0]
        except LookupError:
            continue  # a long symbol the term store lacks: no atom has that head
        for arity in range(1, 64):
            lo, hi = trie.prefix_range(bytes([arity]) + head_bytes)
            if hi > lo:
                pairs.append((lo, hi))
    pairs.sort()
    return np.array([x for pair in pairs for x in pair], dtype=np.int64)


def _in_ranges(ranks: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Mask of the ranks inside the sorted disjoint flattened ranges."""
    if len(ranges) == 2 and ranges[0] == 0:
        return ranks < ranges[1]
    where = np.searchsorted(ranges, ranks, side="right")
    return (where % 2) == 1


def served_codes(trie: Trie, options: IndexOptions) -> set[int]:
    """Codes of the positions the trie serves by itself (head_fanout), left unkeyed unless
    the options name the positions."""
    if options.positions is not None:
        return set()
    return {position_code(p) for p in positions_served_by_trie(trie)}


# --- the same index over a changing set of paths ---------------------------------------------


class LiveArgIndex:
    """The argument index of a small, changing set of paths (a KB's working set), in dicts.

    Keys, positions and wildcard rules are those of `ArgIndex`, so a pattern finds the same
    candidates here as in a snapshot. Paths are kept in insertion-ordered dicts, so the order
    of candidates does not depend on string hashing."""

    def __init__(self, max_child: int = DEFAULT_MAX_CHILD) -> None:
        self.max_child = max_child
        self._ground: dict[tuple[int, int], dict[bytes, None]] = {}
        self._variables: dict[int, dict[bytes, None]] = {}
        self._open: dict[int, dict[bytes, None]] = {}

    def _entries(self, path: bytes) -> list[tuple[int, int, int]]:
        data = np.frombuffer(path, dtype=np.uint8)
        offsets = np.array([0, len(path)], np.int64)
        codes, kinds, keys, _ = entries.batch_entries(data, offsets, 0, self.max_child)
        return list(zip(codes.tolist(), kinds.tolist(), keys.tolist(), strict=True))

    def _bucket(self, code: int, kind: int, key: int, create: bool) -> dict[bytes, None] | None:
        if kind == entries.GROUND:
            table, name = self._ground, (code, key)
        else:
            table, name = (self._variables if kind == entries.VARIABLE else self._open), code
        bucket = table.get(name)
        if bucket is None and create:
            bucket = table[name] = {}
        return bucket

    def add(self, path: bytes) -> None:
        for code, kind, key in self._entries(path):
            self._bucket(code, kind, key, True)[path] = None

    def discard(self, path: bytes) -> None:
        for code, kind, key in self._entries(path):
            bucket = self._bucket(code, kind, key, False)
            if bucket is not None:
                bucket.pop(path, None)

    def candidates(self, pattern: bytes) -> list[bytes] | None:
        """Paths that may unify with the encoded pattern, chosen by its most selective ground
        position; None when it has no ground position (the caller's prefix index decides)."""
        best = None
        best_size = -1
        empty: dict[bytes, None] = {}
        top = self._variables.get(entries.TOP_VARIABLE_CODE, empty)
        for code, kind, key in self._entries(pattern):
            if kind != entries.GROUND:
                continue
            lists = [
                self._ground.get((code, key), empty),
                self._variables.get(code, empty),
                self._open.get(code, empty),
                top,
            ]
            if code & entries.DEPTH2_MASK:
                lists.append(self._variables.get(code & ~entries.DEPTH2_MASK, empty))
            size = sum(len(bucket) for bucket in lists)
            if best is None or size < best_size:
                best, best_size = lists, size
        if best is None:
            return None
        return [path for bucket in best for path in bucket]

    def add_many(self, paths: Iterable[bytes]) -> None:
        """Add many paths with one kernel call (a working set indexed on first need)."""
        paths = list(paths)
        if not paths:
            return
        offsets = np.zeros(len(paths) + 1, np.int64)
        np.cumsum([len(p) for p in paths], out=offsets[1:])
        data = np.frombuffer(b"".join(paths), dtype=np.uint8)
        codes, kinds, keys, owners = entries.batch_entries(data, offsets, 0, self.max_child)
        for code, kind, key, owner in zip(codes.tolist(), kinds.tolist(), keys.tolist(), owners.tolist(), strict=True):
            self._bucket(code, kind, key, True)[paths[owner]] = None
