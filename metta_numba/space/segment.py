"""A run of plain atoms read by the bulk reader, kept as arrays inside an in-memory space.

`BulkSegment` holds the encoded paths of a program's leading run of atoms (syntax.bulk), a
trie over them for pattern lookup (atoms equal up to variable names share one path; each copy
keeps its insertion index and its own variable names), and hyperon's answer-order trie built
from the same paths (segment_kernels), so that a GroundingSpace holding a segment answers in
exactly the order it would had each atom been added one by one. Atoms are decoded only when a
query reaches them.
"""

from __future__ import annotations

import re

import numpy as np

from metta_numba.atoms import Atom, Expression, Grounded, Variable
from metta_numba.codec import CodecError, UnknownTerm, decode, encode
from metta_numba.space import segment_kernels as kernels
from metta_numba.space.order import CLOSE, OPEN
from metta_numba.trie import Trie

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
        from metta_numba.trie import sort

        self.terms = batch.terms
        self.data = np.ascontiguousarray(batch.data, dtype=np.uint8)
        self.offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
        self.names = np.asarray(batch.names, dtype=np.int64)
        n = len(self.offsets) - 1
        self._var_token: dict[str, int] = {}
        self._names_cache: dict[int, list[str]] = {}
        if kernels.token_count(self.data, self.offsets)[1]:
            raise SegmentUnsupported("a float token (it may equal a whole number)")
        self._built = False
        self.trie = Trie.build(self.data, self.offsets)
        order = sort.sort_paths(self.data, self.offsets)
        rank_of = kernels.group_copies(self.data, self.offsets, order)
        # Copies of each distinct path, by insertion index: copies[copy_start[r]:copy_start[r+1]].
        self.copies = np.lexsort((np.arange(n), rank_of)).astype(np.int64)
        self.copy_start = np.zeros(len(self.trie) + 1, np.int64)
        np.cumsum(np.bincount(rank_of, minlength=len(self.trie)), out=self.copy_start[1:])
        self.length = n
        self._decoded: dict[int, Atom] = {}
        self._token_cache: dict = {}

    def _build_order(self) -> None:
        """Build the answer-order trie: on first need (a sort of several answers, a listing,
        an atom added after the segment), since rule calls need none."""
        atom_list, list_start, list_tokens = self._variable_tokens()
        first_bytes_token = kernels.FIRST_VAR_TOKEN + len(self._var_token)
        built = kernels.build_order_trie(self.data, self.offsets, atom_list, list_start, list_tokens, first_bytes_token)
        (
            self._node_start,
            self._nodes,
            self._n_nodes,
            self._child_keys,
            self._child_values,
            self._tok_slots,
            self._tok_pos,
            self._tok_len,
            self._tok_hash,
        ) = built
        self._first_bytes_token = first_bytes_token
        self._built = True

    @property
    def n_nodes(self) -> int:
        """Nodes of the answer-order trie, the root included."""
        if not self._built:
            self._build_order()
        return self._n_nodes

    def _variable_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per atom, the index of its list of variable-name tokens (lists per distinct names)."""
        distinct, inverse = np.unique(self.names, return_inverse=True)
        list_start = [0]
        tokens: list[int] = []
        for name_id in distinct.tolist():
            if name_id >= 0:
                for name in self.terms.text(name_id).split(" "):
                    tokens.append(self._var_token.setdefault(name, kernels.FIRST_VAR_TOKEN + len(self._var_token)))
            list_start.append(len(tokens))
        atom_list = np.where(self.names >= 0, inverse, -1).astype(np.int64)
        return atom_list, np.array(list_start, np.int64), np.array(tokens or [0], np.int64)

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
        """The answer-order trie node of each token of atom `index`."""
        if not self._built:
            self._build_order()
        return self._nodes[self._node_start[index] : self._node_start[index + 1]].tolist()

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
        return ids

    # -- the answer-order trie, for atoms added after the segment ------------------------------
    def token_id(self, token) -> int:
        """The segment's id of a TrieOrder token, or -1 when no segment atom holds it."""
        if not self._built:
            self._build_order()
        found = self._token_cache.get(token)
        if found is None:
            found = self._token_cache[token] = self._find_token(token)
        return found

    def _find_token(self, token) -> int:
        if token is OPEN:
            return kernels.OPEN
        if token is CLOSE:
            return kernels.CLOSE
        t = type(token)
        if t is Variable:
            return self._var_token.get(token.name, -1)
        if t is tuple:
            return -1  # a state's token
        if t is Grounded and type(token.value) is float:
            # The segment holds no float, but a whole float equals a stored whole number.
            if not token.value.is_integer():
                return -1
            token = Grounded(int(token.value))
        try:
            path = np.frombuffer(encode(token, self.terms, intern=False)[0], np.uint8)
        except (UnknownTerm, CodecError, OverflowError, ValueError):
            return -1
        found = kernels.find_bytes_token(
            self.data, self._tok_slots, self._tok_pos, self._tok_len, self._tok_hash, path, 0, path.size
        )
        return -1 if found < 0 else self._first_bytes_token + found

    def child(self, node: int, token) -> int:
        """The segment's trie node below `node` through `token`, or -1."""
        if node >= self.n_nodes:
            return -1
        token_id = self.token_id(token)
        if token_id < 0:
            return -1
        return int(kernels.find_child(self._child_keys, self._child_values, node, token_id))
