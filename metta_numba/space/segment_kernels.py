"""Kernels of the bulk-loaded segment (space/segment.py): hyperon's answer-order trie, built
straight from encoded paths.

Hyperon keeps a space as a trie over the atoms' tokens (an opening token, the elements, a
closing token; see space/order.py). These kernels walk each encoded path as that token
sequence, in insertion order, and give every distinct token prefix a node numbered by creation
rank: the same numbers `TrieOrder` would give had the atoms been added one by one. Tokens are
the encoded bytes of a symbol, number or string (a string by its term id), or a variable by
its name (the caller maps each atom's variables to name tokens, since paths keep no names).
"""

from __future__ import annotations

import numpy as np

from metta_numba.jit import njit
from metta_numba.trie.sort import compare_paths

OPEN = 0
CLOSE = 1
FIRST_VAR_TOKEN = 2
BYTES = -1
NO_TOKEN = -2
NODE_SHIFT = 25
"""A node's code is (the first atom through it << NODE_SHIFT) | (its token position + 1): the
creation order of the nodes, known without the trie (an atom has fewer than 2**24 tokens)."""
MAX_PATH_BYTES = 1 << 23
TAG_FLOAT = 0x41
TAG_BIG_ARITY = 0x44
TAG_BIG_VAR_REF = 0x46
_EXT_PAYLOAD = np.array([8, 8, 8, 8, 4, 1, 4, 8], np.int64)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True)
def _u32(data, pos):
    return (
        (np.int64(data[pos]) << 24)
        | (np.int64(data[pos + 1]) << 16)
        | (np.int64(data[pos + 2]) << 8)
        | np.int64(data[pos + 3])
    )


@njit(cache=True, nogil=True)
def _bytes_hash(data, start, end):
    h = _FNV_OFFSET
    for k in range(start, end):
        h = (h ^ np.uint64(data[k])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def leaf_end(data, pos):
    """End of the leaf token at `pos` (a symbol or an extension value)."""
    tag = data[pos]
    if tag >= 0xC0:
        return pos + 1 + (tag & 0x3F)
    return pos + 1 + _EXT_PAYLOAD[tag - 0x40]


@njit(cache=True, nogil=True)
def find_bytes_token(data, slots, tok_pos, tok_len, tok_hash, query, start, end):
    """Index of the byte token query[start:end] in the token table, or -1."""
    h = _bytes_hash(query, start, end)
    mask = slots.size - 1
    slot = np.int64(h & np.uint64(mask))
    size = end - start
    while True:
        found = slots[slot]
        if found < 0:
            return -1
        if tok_hash[found] == h and tok_len[found] == size:
            same = True
            at = tok_pos[found]
            for k in range(size):
                if data[at + k] != query[start + k]:
                    same = False
                    break
            if same:
                return found
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _mix(key):
    """A well-spread slot number for a child key (the splitmix64 finaliser)."""
    x = np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x >> np.uint64(1))


@njit(cache=True, nogil=True)
def find_child(keys, values, node, token):
    """The child of `node` through `token`, or -1."""
    key = (np.int64(node) << 32) | np.int64(token)
    mask = keys.size - 1
    slot = _mix(key) & mask
    while True:
        found = keys[slot]
        if found < 0:
            return -1
        if found == key:
            return values[slot]
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True)
def _put_child(keys, values, key, value):
    mask = keys.size - 1
    slot = _mix(key) & mask
    while keys[slot] >= 0:
        slot = (slot + 1) & mask
    keys[slot] = key
    values[slot] = value


@njit(cache=True, nogil=True)
def _grow_children(keys, values):
    new_keys = np.full(keys.size * 2, -1, np.int64)
    new_values = np.empty(keys.size * 2, np.int32)
    for slot in range(keys.size):
        if keys[slot] >= 0:
            _put_child(new_keys, new_values, keys[slot], values[slot])
    return new_keys, new_values


@njit(cache=True, nogil=True)
def _grow_tokens(slots, hashes, count):
    bigger = np.full(slots.size * 2, -1, np.int64)
    mask = bigger.size - 1
    for found in range(count):
        slot = np.int64(hashes[found] & np.uint64(mask))
        while bigger[slot] >= 0:
            slot = (slot + 1) & mask
        bigger[slot] = found
    return bigger


@njit(cache=True, nogil=True)
def token_count(data, offsets):
    """Tokens of all paths (an expression counts its closing token too), and whether a float
    occurs."""
    total = 0
    has_float = False
    for i in range(offsets.size - 1):
        pos = offsets[i]
        end = offsets[i + 1]
        while pos < end:
            tag = data[pos]
            if tag < 0x40:
                total += 2
                pos += 1
            elif tag == TAG_BIG_ARITY:
                total += 2
                pos += 5
            elif tag >= 0x80 and tag < 0xC0:
                total += 1
                pos += 1
            elif tag == 0xC0:
                total += 1
                pos += 1
            elif tag == TAG_BIG_VAR_REF:
                total += 1
                pos += 5
            else:
                has_float = has_float or tag == TAG_FLOAT
                total += 1
                pos = leaf_end(data, pos)
    return total, has_float


@njit(cache=True, nogil=True)
def _read_item(data, pos, list_tokens, names_at, new_vars):
    """The path item at `pos`: (arity, or -1 for a token; variable token, or -1; end of the
    item; variables met so far). An item that is neither is the byte token data[pos:end]."""
    tag = data[pos]
    if tag < 0x40:
        return np.int64(tag), np.int64(-1), pos + 1, new_vars
    if tag == TAG_BIG_ARITY:
        return _u32(data, pos + 1), np.int64(-1), pos + 5, new_vars
    if tag == 0xC0:
        return np.int64(-1), list_tokens[names_at + new_vars], pos + 1, new_vars + 1
    if tag >= 0x80 and tag < 0xC0:
        return np.int64(-1), list_tokens[names_at + (tag & 0x3F)], pos + 1, new_vars
    if tag == TAG_BIG_VAR_REF:
        return np.int64(-1), list_tokens[names_at + _u32(data, pos + 1)], pos + 5, new_vars
    return np.int64(-1), np.int64(-1), leaf_end(data, pos), new_vars


@njit(cache=True, nogil=True)
def _close_after(stack, depth, arity):
    """After an item: push an expression's arity, or count the closing tokens that a token (or
    an empty expression) completes. Returns (depth, closing tokens). The stack holds a slot
    per byte of the longest path (see _depth_stack): returning a grown stack instead makes
    the callers' loops several times slower."""
    if arity > 0:
        stack[depth] = arity
        return depth + 1, 0
    closes = 1 if arity == 0 else 0
    while depth > 0:
        stack[depth - 1] -= 1
        if stack[depth - 1] > 0:
            break
        depth -= 1
        closes += 1
    return depth, closes


@njit(cache=True, nogil=True)
def _depth_stack(offsets):
    """A stack deep enough for any of the paths (an expression takes at least one byte)."""
    longest = 1
    for i in range(offsets.size - 1):
        longest = max(longest, offsets[i + 1] - offsets[i])
    return np.empty(longest + 1, np.int64)


@njit(cache=True, nogil=True)
def atom_tokens(data, offsets, index, atom_list, list_start, list_tokens):
    """The token sequence of atom `index` as `prefix_scan` takes a target: per token its kind
    (OPEN, CLOSE, a variable token, or BYTES for data[start:end]) and its byte range."""
    pos = offsets[index]
    end = offsets[index + 1]
    size = 2 * (end - pos)
    kinds = np.empty(size, np.int64)
    starts = np.zeros(size, np.int64)
    ends = np.zeros(size, np.int64)
    names_at = list_start[atom_list[index]] if atom_list[index] >= 0 else 0
    stack = np.empty(end - pos + 1, np.int64)
    depth = 0
    new_vars = 0
    k = 0
    while pos < end:
        arity, var, stop, new_vars = _read_item(data, pos, list_tokens, names_at, new_vars)
        kinds[k] = OPEN if arity >= 0 else (var if var >= 0 else BYTES)
        starts[k] = pos
        ends[k] = stop
        k += 1
        depth, closes = _close_after(stack, depth, arity)
        for _ in range(closes):
            kinds[k] = CLOSE
            k += 1
        pos = stop
    return kinds[:k].copy(), starts[:k].copy(), ends[:k].copy()


@njit(cache=True, nogil=True)
def prefix_scan(
    data, offsets, atom_list, list_start, list_tokens, limit, kinds, starts, ends, target, first, dead, held
):
    """One pass over the atoms below `limit` against a target token sequence (kinds/starts/ends
    as from `atom_tokens`, bytes in `target`; a kind of NO_TOKEN matches nothing).

    With `held` empty: first[k] = the first atom whose tokens begin with the target's first
    k+1; returns how many prefixes were found. A node of the answer-order trie is a token
    prefix, created by the first atom that has it: this finds the nodes of one atom without
    the trie, leaving most atoms after a few tokens. Otherwise (held of size len(kinds) + 1):
    held[m] counts the atoms not marked in `dead` that share exactly m leading tokens with the
    target (the atoms through each of its nodes follow by suffix sums); returns 0."""
    counting = held.size > 0
    size = kinds.size
    reached = 0
    stack = _depth_stack(offsets[: limit + 1])
    for j in range(limit):
        pos = offsets[j]
        end = offsets[j + 1]
        names_at = list_start[atom_list[j]] if atom_list[j] >= 0 else 0
        depth = 0
        new_vars = 0
        k = 0
        while pos < end and k < size:
            # _read_item and _close_after written out: as calls they make this loop, which
            # sees every atom, four times slower.
            tag = data[pos]
            arity = np.int64(-1)
            var = np.int64(-1)
            stop = pos + 1
            if tag < 0x40:
                arity = np.int64(tag)
            elif tag == 0xC0:
                var = list_tokens[names_at + new_vars]
                new_vars += 1
            elif tag >= 0x80 and tag < 0xC0:
                var = list_tokens[names_at + np.int64(tag) - 0x80]
            elif tag == TAG_BIG_ARITY:
                arity = _u32(data, pos + 1)
                stop = pos + 5
            elif tag == TAG_BIG_VAR_REF:
                var = list_tokens[names_at + _u32(data, pos + 1)]
                stop = pos + 5
            else:
                stop = leaf_end(data, pos)
            wanted = kinds[k]
            if arity >= 0:
                same = wanted == OPEN
            elif var >= 0:
                same = wanted == var
            else:
                same = wanted == BYTES and ends[k] - starts[k] == stop - pos
                if same:
                    at = starts[k]
                    for b in range(stop - pos):
                        if target[at + b] != data[pos + b]:
                            same = False
                            break
            if not same:
                break
            k += 1
            closes = 0
            if arity > 0:
                stack[depth] = arity
                depth += 1
            else:
                closes = 1 if arity == 0 else 0
                while depth > 0:
                    stack[depth - 1] -= 1
                    if stack[depth - 1] > 0:
                        break
                    depth -= 1
                    closes += 1
            while closes > 0 and k < size and kinds[k] == CLOSE:
                k += 1
                closes -= 1
            if closes > 0:
                break
            pos = stop
        if counting:
            if not dead[j]:
                held[k] += 1
        elif k > reached:
            first[reached:k] = j
            reached = k
            if reached == size:
                break
    return reached


@njit(cache=True, nogil=True)
def build_order_trie(data, offsets, atom_list, list_start, list_tokens, first_bytes_token):
    """The answer-order trie of paths data[offsets[i]:offsets[i+1]], added in index order.

    Atom i's k-th variable is token list_tokens[list_start[atom_list[i]] + k]. Returns the
    node of every token of every atom (node_start is per atom; nodes numbered by creation),
    the node count, each node's code (NODE_SHIFT), the child table and the byte-token table.
    (A float equals a whole number in the interpreter, which byte tokens cannot tell: the
    caller refuses paths with a float, see token_count.)"""
    n = offsets.size - 1
    total = token_count(data, offsets)[0]
    node_start = np.empty(n + 1, np.int64)
    nodes = np.empty(total, np.int32)
    codes = np.empty(total + 1, np.int64)
    codes[0] = 0
    capacity = 1024
    while capacity < 2 * n:
        capacity *= 2
    keys = np.full(capacity, -1, np.int64)
    values = np.empty(capacity, np.int32)
    tok_slots = np.full(1024, -1, np.int64)
    tok_pos = np.empty(total + 1, np.int64)
    tok_len = np.empty(total + 1, np.int64)
    tok_hash = np.empty(total + 1, np.uint64)
    n_bytes_tokens = 0
    n_nodes = 1
    stack = _depth_stack(offsets)
    out = 0
    for i in range(n):
        node_start[i] = out
        pos = offsets[i]
        end = offsets[i + 1]
        depth = 0
        new_vars = 0
        names_at = list_start[atom_list[i]] if atom_list[i] >= 0 else 0
        node = 0
        while pos < end:
            # _read_item and _close_after written out, as in prefix_scan.
            tag = data[pos]
            arity = np.int64(-1)
            token = np.int64(-1)
            stop = pos + 1
            if tag < 0x40:
                arity = np.int64(tag)
            elif tag == 0xC0:
                token = list_tokens[names_at + new_vars]
                new_vars += 1
            elif tag >= 0x80 and tag < 0xC0:
                token = list_tokens[names_at + np.int64(tag) - 0x80]
            elif tag == TAG_BIG_ARITY:
                arity = _u32(data, pos + 1)
                stop = pos + 5
            elif tag == TAG_BIG_VAR_REF:
                token = list_tokens[names_at + _u32(data, pos + 1)]
                stop = pos + 5
            else:
                stop = leaf_end(data, pos)
            if arity < 0 and token < 0:
                if 2 * (n_bytes_tokens + 1) > tok_slots.size:
                    tok_slots = _grow_tokens(tok_slots, tok_hash, n_bytes_tokens)
                h = _bytes_hash(data, pos, stop)
                mask = tok_slots.size - 1
                slot = np.int64(h & np.uint64(mask))
                while True:
                    found = tok_slots[slot]
                    if found < 0:
                        found = n_bytes_tokens
                        n_bytes_tokens += 1
                        tok_slots[slot] = found
                        tok_pos[found] = pos
                        tok_len[found] = stop - pos
                        tok_hash[found] = h
                        break
                    if tok_hash[found] == h and tok_len[found] == stop - pos:
                        same = True
                        for k in range(stop - pos):
                            if data[tok_pos[found] + k] != data[pos + k]:
                                same = False
                                break
                        if same:
                            break
                    slot = (slot + 1) & mask
                token = first_bytes_token + found
            pos = stop
            # One token or an opening token, then the closing tokens it completes.
            emit = OPEN if arity >= 0 else token
            closes = 0
            if arity > 0:
                stack[depth] = arity
                depth += 1
            else:
                closes = 1 if arity == 0 else 0
                while depth > 0:
                    stack[depth - 1] -= 1
                    if stack[depth - 1] > 0:
                        break
                    depth -= 1
                    closes += 1
            for step in range(closes + 1):
                tok = emit if step == 0 else CLOSE
                child = find_child(keys, values, node, tok)
                if child < 0:
                    if 2 * (n_nodes + 1) > keys.size:
                        keys, values = _grow_children(keys, values)
                    child = n_nodes
                    codes[child] = (np.int64(i) << NODE_SHIFT) | (out - node_start[i] + 1)
                    n_nodes += 1
                    _put_child(keys, values, (np.int64(node) << 32) | np.int64(tok), child)
                nodes[out] = child
                out += 1
                node = child
    node_start[n] = out
    return (
        node_start,
        nodes,
        codes[:n_nodes].copy(),
        keys,
        values,
        tok_slots,
        tok_pos[:n_bytes_tokens].copy(),
        tok_len[:n_bytes_tokens].copy(),
        tok_hash[:n_bytes_tokens].copy(),
    )


@njit(cache=True, nogil=True)
def merge_orders(data, offsets, left, right):
    """Two sort orders of disjoint sets of paths (each as sort.sort_paths gives it) merged
    into one: what sorting the union gives, up to the order of equal paths."""
    merged = np.empty(left.size + right.size, np.int64)
    i = 0
    j = 0
    k = 0
    while i < left.size and j < right.size:
        if compare_paths(data, offsets, right[j], left[i], 0) < 0:
            merged[k] = right[j]
            j += 1
        else:
            merged[k] = left[i]
            i += 1
        k += 1
    while i < left.size:
        merged[k] = left[i]
        i += 1
        k += 1
    while j < right.size:
        merged[k] = right[j]
        j += 1
        k += 1
    return merged


@njit(cache=True, nogil=True)
def copy_groups(data, offsets, order):
    """For paths sorted by `order` (equal paths adjacent): the copies of each distinct path,
    by insertion index, in path-rank order (the rank Trie.build gives the path), and where
    each path's copies start (one more entry than there are distinct paths)."""
    n = order.size
    copies = np.empty(n, np.int64)
    copy_start = np.empty(n + 1, np.int64)
    n_groups = 0
    k = 0
    while k < n:
        head = order[k]
        j = k + 1
        while j < n and compare_paths(data, offsets, order[j], head, 0) == 0:
            j += 1
        copies[k:j] = order[k:j]
        if j - k > 1:
            copies[k:j].sort()
        copy_start[n_groups] = k
        n_groups += 1
        k = j
    copy_start[n_groups] = n
    return copies, copy_start[: n_groups + 1].copy()
