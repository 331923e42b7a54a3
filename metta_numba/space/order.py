"""The order in which hyperon's space answers a query, reproduced for the in-memory space.

Hyperon keeps a space as a trie over the atoms' tokens in prefix order: an expression is an
opening token, its elements, a closing token (whatever its size). A node lists its children in
the order they were first added, in two groups: tokens matched by unification (variables) and
tokens matched by equality (symbols, numbers, strings, Bools, the expression markers). A child
whose atoms are all removed is dropped, and comes back last if added again. A query walks the trie:

- where the pattern has an equality token, the child with that token comes first, then the
  unification group (a stored variable takes the whole pattern subterm);
- where the pattern has a variable, every stored subterm there is enumerated
  depth first, the unification group before the equality group at each node.

So answers that share a leading part come together, at the place of the first of them, and
copies of one atom come one after the other. `TrieOrder` keeps just enough of that trie (one
node per distinct prefix, with a count of the atoms through it; a node's id is its creation
rank) to give each answer a sort key. (Observed with hyperon 0.2.6 and 0.2.10; see docs/compatibility.md.)
"""

from __future__ import annotations

from array import array

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable

_SHIFT = 32
_PATH_CACHE_SIZE = 4096
OPEN = ("(",)
CLOSE = (")",)


def _unifiable(token) -> bool:
    """Tokens of the unification group: variables. (Hyperon 0.2.6 put strings there too;
    0.2.10, the reference, keys them by value like symbols.)"""
    return type(token) is Variable


def _prefix_tokens(atom: Atom) -> list:
    if type(atom) is not Expression:
        return [("state", id(atom.obj))] if isinstance(atom, GroundedObject) and atom.by_value else [atom]
    tokens: list = []
    stack = [atom]
    while stack:
        item = stack.pop()
        if item is CLOSE:
            tokens.append(CLOSE)
        elif type(item) is Expression:
            tokens.append(OPEN)
            stack.append(CLOSE)
            stack.extend(reversed(item.children))
        elif isinstance(item, GroundedObject) and item.by_value:
            # A state's equality follows its changing value: its token is the object itself.
            tokens.append(("state", id(item.obj)))
        else:
            tokens.append(item)
    return tokens


def _flat_tokens(atom: Atom) -> tuple | None:
    """_prefix_tokens of a flat expression of symbols, values and variables (most stored
    atoms), built without the stack walk; None for any other atom."""
    if type(atom) is not Expression:
        return None
    for child in atom.children:
        t = type(child)
        if t is not Symbol and t is not Grounded and t is not Variable:
            return None
    return (OPEN, *atom.children, CLOSE)


def tokens_of(atom: Atom) -> tuple[list, list[int]]:
    """The atom's tokens, and for each token the index just past the subterm it starts."""
    tokens = _prefix_tokens(atom)
    ends = [0] * len(tokens)
    opened: list[int] = []
    for k, token in enumerate(tokens):
        if token is OPEN:
            opened.append(k)
        elif token is CLOSE:
            ends[opened.pop()] = k + 1
            ends[k] = k + 1
        else:
            ends[k] = k + 1
    return tokens, ends


class TrieOrder:
    """Counts of stored atoms per trie prefix, to sort answers the way hyperon gives them."""

    def __init__(self) -> None:
        self._token_ids: dict = {}
        self._children: dict[int, int] = {}  # (node << 32 | token id) -> child node
        self._counts = array("q", [0])  # atoms passing through each node; node 0 is the root
        # id(stored atom) -> (atom, tokens, ends, trie node of each token). A stored atom's
        # nodes stay as they are while it is stored, so this is dropped only on removals.
        self._path_cache: dict[int, tuple] = {}
        # A bulk-loaded segment's trie (space/segment.py) below this one: its nodes keep their
        # numbers, and the nodes created here are numbered after them.
        self._base = None
        self._first = 0
        # id(stored atom) -> (atom, index in the segment) of segment atoms: their nodes are
        # in the segment's arrays.
        self._known: dict[int, tuple] = {}
        # Atoms added here through each segment node (by code), and the segment nodes that
        # removals emptied: those are gone, and an atom added later through the same tokens
        # makes a new node, as hyperon's trie does.
        self._base_counts: dict[int, int] = {}
        self._gone: set[int] = set()

    def attach_base(self, segment) -> None:
        """Continue the trie of `segment`, whose atoms were added before any atom here."""
        self._base = segment
        # Nodes created here are numbered above every segment node code (segment_order), so
        # that the segment's trie need not exist before an atom is added here.
        self._first = 1 << 62

    def know_segment_atom(self, atom: Atom, index: int) -> None:
        self._known[id(atom)] = (atom, index)

    def _base_walk(self, tokens: list, create: bool) -> list[int]:
        """The node of each token, through the segment's nodes as far as they go; a token with
        no node (when not `create`) gets 0."""
        nodes = self._base.prefix_nodes(tokens)
        if self._gone:
            for k, node in enumerate(nodes):
                if node in self._gone:
                    del nodes[k:]
                    break
        node = nodes[-1] if nodes else 0
        children = self._children
        for token in tokens[len(nodes) :]:
            key = (node << _SHIFT) | self._token_id(token)
            child = children.get(key)
            if child is None:
                if not create:
                    child = 0
                else:
                    child = children[key] = len(self._counts) + self._first
                    self._counts.append(0)
            nodes.append(child)
            node = child
        return nodes

    def _token_id(self, token) -> int:
        found = self._token_ids.get(token)
        if found is None:
            found = self._token_ids[token] = len(self._token_ids)
        return found

    def add(self, atom: Atom) -> None:
        if self._base is not None:
            first = self._first
            base_counts = self._base_counts
            for node in self._base_walk(_prefix_tokens(atom), True):
                if node >= first:
                    self._counts[node - first] += 1
                else:
                    base_counts[node] = base_counts.get(node, 0) + 1
            return
        node = 0
        counts = self._counts
        children = self._children
        token_ids = self._token_ids
        for token in _flat_tokens(atom) or _prefix_tokens(atom):
            token_id = token_ids.get(token)
            if token_id is None:
                token_id = token_ids[token] = len(token_ids)
            key = (node << _SHIFT) | token_id
            child = children.get(key)
            if child is None:
                child = children[key] = len(counts)
                counts.append(0)
            counts[child] += 1
            node = child

    def remove(self, atom: Atom) -> None:
        self._path_cache.clear()
        if self._base is not None:
            # Segment nodes never drop here: the space removes no segment atom in place.
            tokens = _prefix_tokens(atom)
            parent = 0
            first = self._first
            for token, node in zip(tokens, self._base_walk(tokens, False)):
                if node >= first:
                    self._counts[node - first] -= 1
                    if self._counts[node - first] == 0:
                        del self._children[(parent << _SHIFT) | self._token_ids[token]]
                elif node:
                    self._base_counts[node] -= 1
                parent = node
            return
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

    def remove_segment_atom(self, index: int, live: list[int]) -> None:
        """Segment atom `index` was removed; `live` counts, per token, the segment atoms still
        through its node: a node that neither they nor atoms added here pass through is gone."""
        self._path_cache.clear()
        for node, count in zip(self._base.nodes_of(index), live):
            if count + self._base_counts.get(node, 0) == 0:
                self._gone.add(node)

    def _nodes(self, tokens: list) -> list[int]:
        """The node of each token of a stored atom's tokens (0 where there is none)."""
        if self._base is not None:
            return self._base_walk(tokens, False)
        nodes = []
        node = 0
        token_ids = self._token_ids
        children = self._children
        for token in tokens:
            token_id = token_ids.get(token)
            node = 0 if token_id is None else children.get((node << _SHIFT) | token_id, 0)
            nodes.append(node)
        return nodes

    def answer_order(self, pattern: Atom):
        """A sort key function for the stored atoms that answer `pattern`."""
        pattern_tokens, pattern_ends = tokens_of(pattern)
        if type(pattern) is Expression and all(type(c) is not Expression for c in pattern.children):
            # Per position, whether the pattern takes the whole stored element there.
            takes_all = [_unifiable(c) for c in pattern.children]
            return lambda stored: self._flat_key(stored, takes_all, pattern_tokens, pattern_ends)
        return lambda stored: self._answer_key(stored, pattern_tokens, pattern_ends)

    def _stored_path(self, stored: Atom) -> tuple:
        """(tokens, ends, node of each token) of a stored atom, remembered for recent answers."""
        known = self._known.get(id(stored))
        if known is not None and known[0] is stored:
            tokens, ends = tokens_of(stored)
            return tokens, ends, self._base.nodes_of(known[1])
        cache = self._path_cache
        found = cache.get(id(stored))
        if found is not None and found[0] is stored:
            return found[1:]
        if len(cache) >= _PATH_CACHE_SIZE:
            cache.clear()
        tokens, ends = tokens_of(stored)
        nodes = self._nodes(tokens)
        cache[id(stored)] = (stored, tokens, ends, nodes)
        return tokens, ends, nodes

    def _answer_key(self, stored: Atom, pattern_tokens: list, pattern_ends: list) -> list:
        stored_tokens, stored_ends, nodes = self._stored_path(stored)
        key = []
        i = j = 0
        count = len(stored_tokens)
        while i < count and j < len(pattern_tokens):
            wanted = pattern_tokens[j]
            if _unifiable(wanted):
                # The pattern takes the whole stored subterm here, enumerated depth first.
                end = stored_ends[i]
                while i < end:
                    key.append((0 if _unifiable(stored_tokens[i]) else 1, nodes[i]))
                    i += 1
                j += 1
                continue
            if _unifiable(stored_tokens[i]):
                key.append((1, nodes[i]))
                j = pattern_ends[j]
            else:
                key.append((0, 0))
                j += 1
            i += 1
        return key

    def _flat_key(self, stored: Atom, takes_all: list[bool], pattern_tokens: list, pattern_ends: list) -> list:
        """`_answer_key` of a flat stored atom for a flat pattern (the common case): the same
        entries, without building the token lists."""
        if (
            self._base is not None
            or type(stored) is not Expression
            or Expression in map(type, stored.children)
        ):
            return self._answer_key(stored, pattern_tokens, pattern_ends)
        children = self._children
        token_ids = self._token_ids
        node = children.get(token_ids.get(OPEN, -1), 0)
        key = [(0, 0)]
        for part, whole in zip(stored.children, takes_all):
            token_id = token_ids.get(part)
            node = 0 if token_id is None else children.get((node << _SHIFT) | token_id, 0)
            if type(part) is Variable:  # _unifiable(part)
                key.append((0 if whole else 1, node))
            elif whole:
                key.append((1, node))
            else:
                key.append((0, 0))
        key.append((0, 0))
        return key

    def listing_key(self, stored: Atom) -> list:
        """Sort key of a stored atom in a full listing of the space (`get-atoms`)."""
        tokens = _prefix_tokens(stored)
        known = self._known.get(id(stored))
        if known is not None and known[0] is stored:
            nodes = self._base.nodes_of(known[1])
        else:
            nodes = self._nodes(tokens)
        return [(0 if _unifiable(token) else 1, node) for token, node in zip(tokens, nodes)]
