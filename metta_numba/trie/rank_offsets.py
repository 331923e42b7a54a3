"""The rank offsets of a trie's edges in 16 bits each, with the few larger ones escaped.

An edge's rank offset counts the leaves under the earlier edges of its node. Near the root
that is up to the number of paths, but almost every edge sits deep in the trie, where a node
has a handful of leaves below it: on the benchmark KBs 99.99% of the offsets are below 65,535.
So the array stores each offset as one uint16, and an offset of ESCAPE (0xFFFF) or more as
ESCAPE, with its true value in a sorted table after the edges:

    words[0:E]              the offsets, ESCAPE for an escaped one
    words[E:E + 4X]         X escaped edges, ascending: edge id and offset, each as two
                            16-bit halves (low half first)
    words[E + 4X:E + 4X+2]  X, as two 16-bit halves

A walk reads one uint16 per edge as before (half the bytes of the int32 it replaces, same
cost); an escaped edge costs a binary search over X entries, which only the top levels of a
large trie have (fewer than 100 on a 4M-path KB). `escaped_rank` checks every index it reads,
so damaged words raise CorruptTrieError; `check_rank_offsets` ties the length to X at open.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import u16_ro

ESCAPE = 0xFFFF
ENTRY_WORDS = 4
TRAILER_WORDS = 2
Int = types.int64


def encode_rank_offsets(offsets: np.ndarray) -> np.ndarray:
    """Rank offsets (non-negative integers, one per edge) in the escaped uint16 layout."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.size and int(offsets.min()) < 0:
        raise ValueError("negative rank offset")
    escaped = np.flatnonzero(offsets >= ESCAPE)
    values = offsets[escaped]
    if values.size and int(values.max()) >= 2**32:
        raise ValueError("a rank offset of 2**32 or more")
    n_edges, n_escaped = len(offsets), len(escaped)
    words = np.empty(n_edges + ENTRY_WORDS * n_escaped + TRAILER_WORDS, np.uint16)
    words[:n_edges] = np.minimum(offsets, ESCAPE)
    table = words[n_edges : n_edges + ENTRY_WORDS * n_escaped].reshape(-1, ENTRY_WORDS)
    table[:, 0], table[:, 1] = escaped & 0xFFFF, escaped >> 16
    table[:, 2], table[:, 3] = values & 0xFFFF, values >> 16
    words[-2], words[-1] = n_escaped & 0xFFFF, n_escaped >> 16
    return words


def decode_rank_offsets(words: np.ndarray, n_edges: int) -> np.ndarray:
    """The offsets of `n_edges` edges as int64 (for tests and tools; kernels use edge_rank)."""
    out = np.asarray(words[:n_edges], dtype=np.int64)
    for edge in np.flatnonzero(out == ESCAPE).tolist():
        out[edge] = escaped_rank(words, edge)
    return out


@njit(Int(u16_ro), cache=True, nogil=True, inline="always")
def escape_count(words):
    """X, as the trailer records it (0 for an array too short to hold one)."""
    n = words.shape[0]
    if n < TRAILER_WORDS:
        return 0
    return np.int64(words[n - 2]) | (np.int64(words[n - 1]) << 16)


@njit(Int(u16_ro, Int), cache=True, nogil=True)
def escaped_rank(words, edge):
    """The offset of an edge whose word is ESCAPE: a binary search of the escape table."""
    n_escaped = escape_count(words)
    base = words.shape[0] - TRAILER_WORDS - ENTRY_WORDS * n_escaped
    if base < 0:
        raise CorruptTrieError("rank offsets: escape table longer than the array")
    lo = 0
    hi = n_escaped
    while lo < hi:
        mid = (lo + hi) >> 1
        at = base + ENTRY_WORDS * mid
        key = np.int64(words[at]) | (np.int64(words[at + 1]) << 16)
        if key < edge:
            lo = mid + 1
        else:
            hi = mid
    at = base + ENTRY_WORDS * lo
    if lo >= n_escaped or (np.int64(words[at]) | (np.int64(words[at + 1]) << 16)) != edge:
        raise CorruptTrieError("rank offsets: an escaped edge without its entry")
    value = np.int64(words[at + 2]) | (np.int64(words[at + 3]) << 16)
    if value < ESCAPE:
        raise CorruptTrieError("rank offsets: an escaped offset below the escape")
    return value


def check_rank_offsets(words: np.ndarray, n_edges: int) -> None:
    """The O(1) check at open: the length is the edges, X entries and the trailer."""
    n_escaped = int(escape_count(words)) if len(words) >= TRAILER_WORDS else -1
    if n_escaped < 0 or len(words) != n_edges + ENTRY_WORDS * n_escaped + TRAILER_WORDS:
        raise CorruptTrieError("rank offsets: length disagrees with the edges and the escape table")


@njit(types.void(u16_ro, Int), cache=True, nogil=True)
def verify_escapes(words, n_edges):
    """The full check: X escaped words among the edges, each with one entry, entries ascending."""
    n_escaped = escape_count(words)
    base = n_edges
    if words.shape[0] != base + ENTRY_WORDS * n_escaped + TRAILER_WORDS:
        raise CorruptTrieError("rank offsets: length disagrees with the edges and the escape table")
    seen = 0
    previous = -1
    for k in range(n_escaped):
        at = base + ENTRY_WORDS * k
        edge = np.int64(words[at]) | (np.int64(words[at + 1]) << 16)
        if edge <= previous or edge >= n_edges or words[edge] != ESCAPE:
            raise CorruptTrieError("rank offsets: escape table out of order or pointing at a plain edge")
        previous = edge
    for edge in range(n_edges):
        if words[edge] == ESCAPE:
            seen += 1
    if seen != n_escaped:
        raise CorruptTrieError("rank offsets: escaped edges disagree with the escape table")
