"""The working set: changes since the generation, held in memory and indexed by path prefix.

Each distinct path (key) has a signed `delta`: its count in the KB is the generation's count
plus the delta. Removes never take a count below zero, so a negative delta only cancels copies
the generation holds. Keys with a positive delta (atoms added since the generation) are indexed
so that a query need not scan them all:

A path's *ground prefix* is its leading tokens up to its first variable, at most
PREFIX_TOKENS of them (a token is one tag with its payload). Every added key is registered
under the prefix of each length 0..g of its ground prefix (g tokens), and also filed as
"stops at g" when a variable (or the path's end) cut it short. A pattern whose ground prefix
has q tokens can then only unify with keys that

- share its first min(q, PREFIX_TOKENS) tokens (those registered under that prefix), or
- stop at some d < q with a variable where the pattern is still ground, and share its first
  d tokens (those filed as "stops at d" under the pattern's d-token prefix).

A query with a ground head therefore looks at the keys under that head only. A query whose
leading arguments are variables (`(edge $x n_5)`) is served by the same argument index as the
snapshot's (trie.argindex.LiveArgIndex), when that offers fewer candidates.
"""

from __future__ import annotations

from collections.abc import Iterator

from metta_numba.codec import tags
from metta_numba.trie.argindex import LiveArgIndex

PREFIX_TOKENS = 5
ARGUMENT_INDEX_FROM = 8
"""Below this many candidates by prefix, the argument index is not worth asking."""


def ground_prefix_ends(path: bytes, limit: int = PREFIX_TOKENS) -> tuple[list[int], bool]:
    """Byte offsets where each of the first `limit` ground tokens ends, and whether the walk
    stopped early (at a variable, the end of the path, or a byte it does not understand)."""
    ends: list[int] = []
    position = 0
    length = len(path)
    while len(ends) < limit:
        if position >= length:
            return ends, True
        tag = path[position]
        if tag < 0x40:
            size = 1
        elif tag >= 0xC0:
            if tag == tags.TAG_NEW_VAR:
                return ends, True
            size = 1 + (tag & 0x3F)
        elif tag >= 0x80 or tag == tags.TAG_BIG_VAR_REF:
            return ends, True
        elif tag <= tags.EXT_LAST:
            size = 1 + tags.EXT_PAYLOAD[tag - tags.EXT_FIRST]
        else:
            return ends, True
        position += size
        if position > length:
            return ends, True
        ends.append(position)
    return ends, False


class WorkingSet:
    """Signed count changes keyed by path, with the variable names of added keys."""

    def __init__(self) -> None:
        self.delta: dict[bytes, int] = {}
        self.names: dict[bytes, tuple[str, ...]] = {}
        # under[d][prefix]: added keys whose ground prefix covers `prefix` (d tokens).
        self._under: list[dict[bytes, set[bytes]]] = [{} for _ in range(PREFIX_TOKENS + 1)]
        # stops[d][prefix]: added keys whose ground prefix is exactly `prefix` (d < limit tokens).
        self._stops: list[dict[bytes, set[bytes]]] = [{} for _ in range(PREFIX_TOKENS)]
        self._arguments = LiveArgIndex()
        self.changes = 0
        self.net = 0  # sum of the deltas: how many atoms the KB holds beyond the generation

    def __len__(self) -> int:
        return len(self.delta)

    def get(self, key: bytes) -> int:
        return self.delta.get(key, 0)

    def apply(self, key: bytes, change: int, names: tuple[str, ...] = ()) -> None:
        """Add `change` (+1 or -1, or more) to the delta of `key`."""
        old = self.delta.get(key, 0)
        new = old + change
        if new:
            self.delta[key] = new
        else:
            self.delta.pop(key, None)
        if change > 0 and (names or key not in self.names):
            self.names[key] = names
        if old <= 0 < new:
            self._index(key, True)
        elif new <= 0 < old:
            self._index(key, False)
        if new <= 0:
            self.names.pop(key, None)
        self.changes += abs(change)
        self.net += change

    def _index(self, key: bytes, insert: bool) -> None:
        if insert:
            self._arguments.add(key)
        else:
            self._arguments.discard(key)
        ends, stopped = ground_prefix_ends(key)
        for depth in range(len(ends) + 1):
            prefix = key[: ends[depth - 1]] if depth else b""
            self._file(self._under[depth], prefix, key, insert)
        if stopped:
            depth = len(ends)
            self._file(self._stops[depth], key[: ends[depth - 1]] if depth else b"", key, insert)

    @staticmethod
    def _file(table: dict[bytes, set[bytes]], prefix: bytes, key: bytes, insert: bool) -> None:
        if insert:
            table.setdefault(prefix, set()).add(key)
        else:
            bucket = table.get(prefix)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del table[prefix]

    def candidates(self, pattern: bytes) -> Iterator[bytes]:
        """Added keys that may unify with the pattern path (a superset of those that do)."""
        if not self.delta:
            return iter(())
        ends, _ = ground_prefix_ends(pattern)
        depth = len(ends)
        buckets = [
            self._stops[shorter].get(pattern[: ends[shorter - 1]] if shorter else b"", ()) for shorter in range(depth)
        ]
        buckets.append(self._under[depth].get(pattern[: ends[depth - 1]] if depth else b"", ()))
        by_prefix = sum(len(bucket) for bucket in buckets)
        if by_prefix > ARGUMENT_INDEX_FROM:
            by_argument = self._arguments.candidates(pattern)
            if by_argument is not None and len(by_argument) < by_prefix:
                return iter(by_argument)
        return (key for bucket in buckets for key in bucket)

    def added(self) -> Iterator[tuple[bytes, int]]:
        for key, delta in self.delta.items():
            if delta > 0:
                yield key, delta

    def removed(self) -> Iterator[tuple[bytes, int]]:
        for key, delta in self.delta.items():
            if delta < 0:
                yield key, -delta

    def clear(self) -> None:
        self.__init__()
