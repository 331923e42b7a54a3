"""Which argument positions the trie itself serves, so that the argument index need not key
them: the first argument, and the head of the first argument, when the KB has few heads.

A stored path starts with the top-level expression's arity and head, then its first
argument (c0 = 1), whose own head (1, 0) comes right after that. A pattern with a ground head
finds atoms by a ground first argument through its prefix range, the index adding nothing. A
pattern with a variable head (`($r n_5 $y)`) goes to the trie's match kernel, which follows
every (arity, head) branch and then the first argument's bytes in each: with a few heads
that is a few binary searches, about as quick as the index's key search, so keying those
positions would only cost their postings (on a KB of `(edge n_i n_j)` facts, a fifth of the
snapshot). With many heads (a KB of one relation per symbol) the positions stay keyed.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import StructureType
from metta_numba.trie.scan import token_payload
from metta_numba.trie.walk import edge_child, grown, node_edges, node_label, trie_bounds

HEAD_FANOUT_LIMIT = 16
"""Up to this many distinct (arity, head) prefixes, the trie serves positions 1 and 1.0."""
HEAD_TOKENS = 2
"""An atom's first two tokens: the arity of its expression and its head."""


@njit(types.int64(StructureType, types.int64), cache=True, nogil=True)
def leading_prefixes(trie, limit):
    """The number of distinct prefixes of HEAD_TOKENS tokens among the stored paths (a path of
    fewer tokens counts as its own), counting no further than limit + 1."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    n_nodes, n_edges, n_labels = trie_bounds(trie)
    if n_nodes == 0:
        return 0
    # A node to visit, the tokens read before its label, and the payload bytes still owed by
    # the token its label starts inside (-1: the label starts at a tag).
    nodes = np.empty(16, np.int64)
    tokens = np.empty(16, np.int64)
    owed = np.empty(16, np.int64)
    nodes[0], tokens[0], owed[0] = 0, 0, -1
    top = 1
    count = 0
    while top > 0 and count <= limit:
        top -= 1
        node, read, left = nodes[top], tokens[top], owed[top]
        offset, length = node_label(label_off, label_len, n_nodes, n_labels, node)
        for i in range(length):
            if left < 0:
                left = token_payload(np.int64(labels[offset + i]))
                if left < 0:
                    raise CorruptTrieError("a label holds an invalid tag")
            else:
                left -= 1
            if left == 0:
                read += 1
                left = -1
                if read == HEAD_TOKENS:
                    break
        if read >= HEAD_TOKENS:
            count += 1
            continue
        first, end = node_edges(child_start, n_nodes, n_edges, node)
        if first == end:
            count += 1 if node > 0 else 0
            continue
        needed = top + end - first
        nodes = grown(nodes, needed)
        tokens = grown(tokens, needed)
        owed = grown(owed, needed)
        for edge in range(first, end):
            nodes[top] = edge_child(children, n_nodes, node, edge)
            tokens[top] = read
            owed[top] = left
            top += 1
    return count


def positions_served_by_trie(trie) -> frozenset[tuple[int, ...]]:
    """The positions (see argindex) whose postings the trie makes unnecessary: (1,) and (1, 0)
    when the trie holds at most HEAD_FANOUT_LIMIT (arity, head) prefixes, else none."""
    if len(trie) == 0 or leading_prefixes(trie._structure, HEAD_FANOUT_LIMIT) > HEAD_FANOUT_LIMIT:
        return frozenset()
    return frozenset({(1,), (1, 0)})
