"""The order in which hyperon's space answers a query, reproduced for the in-memory space.

Hyperon keeps a space as a trie over the atoms' tokens (an expression start with its size,
then its elements, in prefix order). A node lists its children in the order they were first
added, stored variables apart from the other tokens; a child whose atoms are all removed is
dropped, and comes back last if added again. A query walks the trie:

- where the pattern has a constant (or an expression start), the child with that token comes
  first, then the stored variables (each matches the whole pattern subterm);
- where the pattern has a variable, every stored subterm there is enumerated depth first,
  variables before the other tokens at each node.

So answers that share a leading part come together, at the place of the first of them, and
copies of one atom come one after the other. `TrieOrder` keeps just enough of that trie (one
node per distinct prefix, with a count of the atoms through it; a node's id is its creation
rank) to give each answer a sort key.
"""

from __future__ import annotations

from array import array

from metta_numba.atoms import Atom, Expression, Variable

_SHIFT = 32


def tokens_of(atom: Atom) -> tuple[list, list[int]]:
    """The atom's tokens in prefix order, and for each token the index just past its subterm.

    An expression contributes `("(", size)` and then its elements."""
    tokens: list = []
    stack = [atom]
    while stack:
        item = stack.pop()
        if type(item) is Expression:
            tokens.append(("(", len(item.children)))
            stack.extend(reversed(item.children))
        else:
            tokens.append(item)
    # Backwards, the subterms that start after position k are on `pending`, nearest on top.
    ends = [0] * len(tokens)
    pending: list[int] = []
    for k in range(len(tokens) - 1, -1, -1):
        token = tokens[k]
        end = k + 1
        if type(token) is tuple:
            for _ in range(token[1]):
                end = pending.pop()
        ends[k] = end
        pending.append(end)
    return tokens, ends


def _prefix_tokens(atom: Atom) -> list:
    if type(atom) is not Expression:
        return [atom]
    tokens: list = []
    stack = [atom]
    while stack:
        item = stack.pop()
        if type(item) is Expression:
            tokens.append(("(", len(item.children)))
            stack.extend(reversed(item.children))
        else:
            tokens.append(item)
    return tokens


class TrieOrder:
    """Counts of stored atoms per trie prefix, to sort answers the way hyperon gives them."""

    def __init__(self) -> None:
        self._token_ids: dict = {}
        self._children: dict[int, int] = {}  # (node << 32 | token id) -> child node
        self._counts = array("q", [0])  # atoms passing through each node; node 0 is the root

    def _token_id(self, token) -> int:
        found = self._token_ids.get(token)
        if found is None:
            found = self._token_ids[token] = len(self._token_ids)
        return found

    def add(self, atom: Atom) -> None:
        node = 0
        counts = self._counts
        children = self._children
        for token in _prefix_tokens(atom):
            key = (node << _SHIFT) | self._token_id(token)
            child = children.get(key)
            if child is None:
                child = children[key] = len(counts)
                counts.append(0)
            counts[child] += 1
            node = child

    def remove(self, atom: Atom) -> None:
        node = 0
        counts = self._counts
        children = self._children
        for token in _prefix_tokens(atom):
            key = (node << _SHIFT) | self._token_ids[token]
            child = children[key]
            counts[child] -= 1
            if counts[child] == 0:
                del children[key]
            node = child

    def _child(self, node: int, token) -> int:
        token_id = self._token_ids.get(token)
        if token_id is None:
            return 0
        return self._children.get((node << _SHIFT) | token_id, 0)

    def answer_order(self, pattern: Atom):
        """A sort key function for the stored atoms that answer `pattern`."""
        pattern_tokens, pattern_ends = tokens_of(pattern)
        return lambda stored: self._answer_key(stored, pattern_tokens, pattern_ends)

    def _answer_key(self, stored: Atom, pattern_tokens: list, pattern_ends: list) -> list:
        stored_tokens, stored_ends = tokens_of(stored)
        key = []
        node = 0
        i = j = 0
        count = len(stored_tokens)
        while i < count and j < len(pattern_tokens):
            wanted = pattern_tokens[j]
            if type(wanted) is Variable:
                # The pattern variable takes the whole stored subterm, enumerated depth first.
                end = stored_ends[i]
                while i < end:
                    token = stored_tokens[i]
                    node = self._child(node, token)
                    key.append((0 if type(token) is Variable else 1, node))
                    i += 1
                j += 1
                continue
            token = stored_tokens[i]
            node = self._child(node, token)
            if type(token) is Variable:
                key.append((1, node))
                j = pattern_ends[j]
            else:
                key.append((0, 0))
                j += 1
            i += 1
        return key

    def listing_key(self, stored: Atom) -> list:
        """Sort key of a stored atom in a full listing of the space (`get-atoms`)."""
        key = []
        node = 0
        for token in _prefix_tokens(stored):
            node = self._child(node, token)
            key.append((0 if type(token) is Variable else 1, node))
        return key
