"""Hyperon's answer-order trie over a bulk-loaded segment's atoms, known without building it.

A node of that trie (space/order.py) is a token prefix, and its creation rank orders it among
its siblings. A node's code here is (the first atom that has the prefix << NODE_SHIFT) |
(the prefix's length): codes order nodes exactly as creation ranks do, and they follow from
the atoms alone. So the few nodes a query needs (the paths of a handful of answers, of an atom
added after the segment) come from one pass over the paths (`prefix_firsts`, a few tokens per
atom) instead of the whole trie, which costs about a second and some 150 MB for 400K rules.
The trie is built only once those passes have cost a few times as much as it would: for a
listing of the space, a sort of many answers, or many atoms added after the segment.
"""

from __future__ import annotations

import numpy as np

from metta_numba.atoms import Grounded, Variable
from metta_numba.codec import CodecError, UnknownTerm, encode
from metta_numba.space import segment_kernels as kernels
from metta_numba.space.order import CLOSE, OPEN

SCAN_BUDGET = 24
"""Full passes over the segment allowed before the trie is built instead."""
_NONE = np.zeros(0, np.int64)
_NO_DEAD = np.zeros(0, np.uint8)


def _distinct_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(ids, return_inverse=True) for term ids (>= -1, below the term store's size),
    by a table over the ids instead of a sort: several times faster for 400K atoms."""
    if ids.size == 0:
        return ids.copy(), np.zeros(0, np.int64)
    shifted = ids + 1  # -1 (no variable names) becomes 0
    present = np.zeros(int(shifted.max()) + 1, np.bool_)
    present[shifted] = True
    distinct = np.flatnonzero(present)
    rank = np.zeros(present.size, np.int64)
    rank[distinct] = np.arange(distinct.size)
    return (distinct - 1).astype(ids.dtype), rank[shifted]


class SegmentOrder:
    """The answer-order nodes of a segment's atoms (see the module docstring)."""

    def __init__(self, segment) -> None:
        self.segment = segment
        self._var_token: dict[str, int] = {}
        self._lists = None  # per atom, its variables' tokens (see _variable_tokens)
        self._scanned = 0
        self._budget = SCAN_BUDGET * (len(segment) + 1024)
        self._trie = None
        self._token_cache: dict = {}

    def _variable_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per atom, the index of its list of variable-name tokens (lists per distinct names)."""
        if self._lists is None:
            segment = self.segment
            distinct, inverse = _distinct_ids(segment.names)
            list_start = [0]
            tokens: list[int] = []
            for name_id in distinct.tolist():
                if name_id >= 0:
                    for name in segment.terms.text(name_id).split(" "):
                        tokens.append(self._var_token.setdefault(name, kernels.FIRST_VAR_TOKEN + len(self._var_token)))
                list_start.append(len(tokens))
            atom_list = np.where(segment.names >= 0, inverse, -1).astype(np.int64)
            self._lists = (atom_list, np.array(list_start, np.int64), np.array(tokens or [0], np.int64))
        return self._lists

    def _scan(self, limit: int, kinds, starts, ends, target) -> list[int]:
        """Codes of the target's prefixes that atoms below `limit` hold (see prefix_scan)."""
        self._scanned += limit
        first = np.empty(len(kinds), np.int64)
        segment = self.segment
        found = kernels.prefix_scan(
            segment.data, segment.offsets, *self._variable_tokens(), limit, kinds, starts, ends, target, first,
            _NO_DEAD, _NONE,
        )  # fmt: skip
        codes = (first[:found] << kernels.NODE_SHIFT) | np.arange(1, found + 1, dtype=np.int64)
        return codes.tolist()

    def _use_trie(self, cost: int) -> bool:
        if self._trie is None and self._scanned + cost > self._budget:
            self._trie = _BuiltTrie(self.segment, *self._variable_tokens(), self._var_token)
        return self._trie is not None

    def forget(self, index: int) -> None:
        """Atom `index` was removed (marked dead in the segment): the built trie's counts
        follow; the passes read the dead marks themselves."""
        if self._trie is not None:
            self._trie.forget(index)

    def nodes_of(self, index: int) -> list[int]:
        """The node code of each token of atom `index`."""
        if self._use_trie(index + 1):
            return self._trie.nodes_of(index)
        segment = self.segment
        kinds, starts, ends = kernels.atom_tokens(segment.data, segment.offsets, index, *self._variable_tokens())
        return self._scan(index + 1, kinds, starts, ends, segment.data)

    def live_through(self, index: int, dead: np.ndarray) -> list[int]:
        """For each token of atom `index`, how many atoms not marked in `dead` pass through
        its node (to tell which nodes a removal empties)."""
        if self._use_trie(len(self.segment)):
            return self._trie.live_through(index, dead)
        segment = self.segment
        kinds, starts, ends = kernels.atom_tokens(segment.data, segment.offsets, index, *self._variable_tokens())
        self._scanned += len(segment)
        held = np.zeros(len(kinds) + 1, np.int64)
        kernels.prefix_scan(
            segment.data, segment.offsets, *self._variable_tokens(), len(segment), kinds, starts, ends,
            segment.data, _NONE, dead.view(np.uint8), held,
        )  # fmt: skip
        return np.cumsum(held[::-1])[::-1][1:].tolist()

    def prefix_nodes(self, tokens: list) -> list[int]:
        """The node codes of the leading TrieOrder tokens that some segment atom holds."""
        if self._use_trie(len(self.segment)):
            return self._trie.prefix_nodes(tokens, self._token_bytes)
        self._variable_tokens()
        kinds = np.empty(len(tokens), np.int64)
        starts = np.zeros(len(tokens), np.int64)
        ends = np.zeros(len(tokens), np.int64)
        target = bytearray()
        for k, token in enumerate(tokens):
            if token is OPEN:
                kinds[k] = kernels.OPEN
            elif token is CLOSE:
                kinds[k] = kernels.CLOSE
            elif type(token) is Variable:
                kinds[k] = self._var_token.get(token.name, kernels.NO_TOKEN)
            else:
                raw = self._token_bytes(token)
                kinds[k] = kernels.NO_TOKEN if raw is None else kernels.BYTES
                starts[k] = len(target)
                target += raw or b""
                ends[k] = len(target)
        return self._scan(len(self.segment), kinds, starts, ends, np.frombuffer(bytes(target) or b"\0", np.uint8))

    def _token_bytes(self, token) -> bytes | None:
        """The encoded bytes of a leaf token as the segment would hold it; None when no segment
        atom can hold it (a state, a number or string the segment never saw)."""
        found = self._token_cache.get(token, False)
        if found is not False:
            return found
        if type(token) is tuple:
            return None  # a state's token
        leaf = token
        if type(token) is Grounded and type(token.value) is float:
            # The segment holds no float, but a whole float equals a stored whole number.
            leaf = Grounded(int(token.value)) if token.value.is_integer() else None
        try:
            found = None if leaf is None else encode(leaf, self.segment.terms, intern=False)[0]
        except (UnknownTerm, CodecError, OverflowError, ValueError):
            found = None
        if len(self._token_cache) < 65536:
            self._token_cache[token] = found
        return found


class _BuiltTrie:
    """The whole answer-order trie of a segment, for when many of its nodes are needed."""

    def __init__(self, segment, atom_list, list_start, list_tokens, var_token: dict[str, int]) -> None:
        self._var_token = var_token
        self._data = segment.data
        self._first_bytes_token = kernels.FIRST_VAR_TOKEN + len(var_token)
        (
            self._node_start,
            self._nodes,
            self._codes,
            self._child_keys,
            self._child_values,
            self._tok_slots,
            self._tok_pos,
            self._tok_len,
            self._tok_hash,
        ) = kernels.build_order_trie(
            segment.data, segment.offsets, atom_list, list_start, list_tokens, self._first_bytes_token
        )
        self._ids: dict = {}
        self._live = None  # live atoms through each node, made on first need

    def nodes_of(self, index: int) -> list[int]:
        return self._codes[self._nodes[self._node_start[index] : self._node_start[index + 1]]].tolist()

    def _live_counts(self, dead: np.ndarray) -> np.ndarray:
        if self._live is None:
            alive = np.repeat(~dead, np.diff(self._node_start))
            self._live = np.bincount(self._nodes[alive], minlength=len(self._codes))
        return self._live

    def forget(self, index: int) -> None:
        if self._live is not None:
            self._live[self._nodes[self._node_start[index] : self._node_start[index + 1]]] -= 1

    def live_through(self, index: int, dead: np.ndarray) -> list[int]:
        return self._live_counts(dead)[self._nodes[self._node_start[index] : self._node_start[index + 1]]].tolist()

    def _token_id(self, token, token_bytes) -> int:
        found = self._ids.get(token)
        if found is None:
            found = self._ids[token] = self._find_token(token, token_bytes)
        return found

    def _find_token(self, token, token_bytes) -> int:
        if token is OPEN:
            return kernels.OPEN
        if token is CLOSE:
            return kernels.CLOSE
        if type(token) is Variable:
            return self._var_token.get(token.name, -1)
        raw = token_bytes(token)
        if raw is None:
            return -1
        path = np.frombuffer(raw, np.uint8)
        found = kernels.find_bytes_token(
            self._data, self._tok_slots, self._tok_pos, self._tok_len, self._tok_hash, path, 0, path.size
        )
        return -1 if found < 0 else self._first_bytes_token + found

    def prefix_nodes(self, tokens: list, token_bytes) -> list[int]:
        out = []
        rank = 0
        for token in tokens:
            token_id = self._token_id(token, token_bytes)
            if token_id < 0:
                break
            rank = int(kernels.find_child(self._child_keys, self._child_values, rank, token_id))
            if rank < 0:
                break
            out.append(int(self._codes[rank]))
        return out
