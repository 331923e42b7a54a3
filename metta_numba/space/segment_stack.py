"""Several bulk-loaded segments one after the other, seen as one (space/segment.py).

A program that reads a big run and then more runs between its `!`s adds each later run as a
segment of its own (with the atoms added one by one since the last segment in front of it),
instead of parsing it atom by atom or rebuilding everything into one segment. Segments are
merged in a log-structured way (a segment is merged into the one before it once that one is
at most twice its size), so a long program costs O(n log n) in building and queries consult
O(log n) segments.

Answer order needs no extra state: a node code of the answer-order trie (segment_order.py)
is (the first atom holding the prefix << NODE_SHIFT) | (the prefix's length), which follows
from the atoms alone. With each segment's atom numbers shifted by its first atom's global
number, codes are global, and the code of a prefix is the least code any segment gives it.
A removal merges every segment into one first (after a removal no segment is added, see
interp.bulk_load), so tombstones keep the single segment's logic.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from metta_numba.atoms import Atom
from metta_numba.space.segment import BulkSegment, joined_paths
from metta_numba.space.segment_kernels import NODE_SHIFT


class SegmentStack:
    """Segments holding atoms base_k .. base_k + len(part_k) - 1, in order (see module doc)."""

    def __init__(self, parts: list[BulkSegment]) -> None:
        self.parts = parts
        self.terms = parts[0].terms
        self._decoded: dict[int, Atom] = {}
        self._rebase()

    def _rebase(self) -> None:
        self.bases = np.cumsum([0] + [len(p) for p in self.parts[:-1]]).tolist()
        self.length = sum(len(p) for p in self.parts)

    @classmethod
    def appended(cls, current, part: BulkSegment) -> SegmentStack:
        """`current` (a segment or a stack, with no atom removed) followed by `part`."""
        parts = list(current.parts) if isinstance(current, SegmentStack) else [current]
        stack = cls(parts + [part])
        if isinstance(current, SegmentStack):
            stack._decoded = current._decoded
        while len(stack.parts) >= 2 and len(stack.parts[-2]) <= 2 * len(stack.parts[-1]):
            stack._merge_last_two()
        return stack

    def _merge_last_two(self) -> None:
        first, second = self.parts[-2], self.parts[-1]
        data, offsets, names = joined_paths([first.live_paths(), second.live_paths()])
        merged = BulkSegment(SimpleNamespace(data=data, offsets=offsets, names=names, terms=self.terms))
        merged._decoded.update(first._decoded)
        merged._decoded.update({index + len(first): atom for index, atom in second._decoded.items()})
        self.parts[-2:] = [merged]
        self._rebase()

    def __len__(self) -> int:
        return self.length

    @property
    def n_dead(self) -> int:
        return sum(p.n_dead for p in self.parts)

    def _part_of(self, index: int) -> tuple[int, int]:
        """(part number, index within it) of atom `index`."""
        k = int(np.searchsorted(self.bases, index, side="right")) - 1
        return k, index - self.bases[k]

    # -- atoms ---------------------------------------------------------------------------------
    def atom(self, index: int) -> Atom:
        found = self._decoded.get(index)
        if found is None:
            k, local = self._part_of(index)
            found = self._decoded[index] = self.parts[k].atom(local)
        return found

    def candidate_ids(self, pattern: Atom) -> np.ndarray:
        found = [p.candidate_ids(pattern) + base for p, base in zip(self.parts, self.bases)]
        return np.concatenate(found)

    def live_ids(self) -> list[int]:
        return [i + base for p, base in zip(self.parts, self.bases) for i in p.live_ids()]

    def live_paths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return joined_paths([p.live_paths() for p in self.parts])

    # -- answer order --------------------------------------------------------------------------
    def prefix_nodes(self, tokens: list) -> list[int]:
        """The global node codes of the leading tokens that some atom here holds."""
        out: list[int] = []
        for part, base in zip(self.parts, self.bases):
            _merge_least(out, part.prefix_nodes(tokens), base << NODE_SHIFT)
        return out

    def nodes_of(self, index: int) -> list[int]:
        """The global node code of each token of atom `index`: its own segment's codes, or an
        earlier segment's where that holds the prefix too (earlier atoms, smaller codes)."""
        k, local = self._part_of(index)
        out: list[int] = []
        if k:
            from metta_numba.space.order import _prefix_tokens

            tokens = _prefix_tokens(self.atom(index))
            for part, base in zip(self.parts[:k], self.bases[:k]):
                _merge_least(out, part.prefix_nodes(tokens), base << NODE_SHIFT)
        _merge_least(out, self.parts[k].nodes_of(local), self.bases[k] << NODE_SHIFT)
        return out

    def kill(self, index: int) -> list[int]:
        """Mark atom `index` removed (every segment is merged into one first)."""
        if len(self.parts) > 1:
            while len(self.parts) > 1:
                self._merge_last_two()
            self.parts[0]._decoded.update(self._decoded)
        self._decoded.pop(index, None)
        return self.parts[0].kill(index)


def _merge_least(out: list[int], codes: list[int], shift: int) -> None:
    """out[i] = the least of out[i] and codes[i] + shift, over the longer of the two lists."""
    for i, code in enumerate(codes):
        code += shift
        if i < len(out):
            if code < out[i]:
                out[i] = code
        else:
            out.append(code)
