"""Which shard an atom lives in, and which shards a query must consult (DESIGN.md section 8).

The partition key of an atom:
  - `(= LHS RHS)` and `(: SUBJECT TYPE)`: the function symbol of the left side (the head of LHS
    when it is an expression, else LHS itself), so that all rules and type declarations of a
    function share a shard and a rule call reads one shard;
  - any other expression: its head and first argument;
  - a symbol or a grounded value on its own: itself.
Numbers are normalised first (3 and 3.0 give one key), since the engines unify them.

A stored atom whose key positions hold a variable cannot be routed: it goes to the unrouted
shard (shard 0), which every query consults. A query whose key is ground reads its own shard
and shard 0; any other query reads every shard. The property that makes this sound: when a
query unifies with a stored atom, either both have the same ground key or one of them has no
ground key (tests/test_partition.py checks it on random atoms).

Everything here is a pure function of the atom and the shard count; the hash is blake2b of a
canonical text, so the placement is the same in every process and on every machine.
"""

from __future__ import annotations

import hashlib
import math

from metta_numba.atoms import Atom, Expression, Grounded, Symbol

PARTITION_FUNCTION = "blake2b64-key-v1"
"""The name recorded in shards.json; a KB built with another function is refused."""

UNROUTED_SHARD = 0
"""The shard of atoms with variables in their key positions; every query reads it."""

_RULE_HEADS = ("=", ":")


def canonical(atom: Atom) -> tuple | None:
    """A hashable, process-independent form of a ground atom (None when it holds a variable
    or a value that has no stored form). Integral floats become ints: 3.0 and 3 coincide."""
    if type(atom) is Symbol:
        return ("s", atom.name)
    if type(atom) is Grounded:
        value = atom.value
        kind = type(value)
        if kind is bool:
            return ("b", value)
        if kind is int:
            return ("n", value)
        if kind is float:
            if math.isfinite(value) and value == int(value):
                return ("n", int(value))
            return ("f", repr(value))
        if kind is str:
            return ("t", value)
        return None
    if type(atom) is Expression:
        parts = []
        for child in atom.children:
            part = canonical(child)
            if part is None:
                return None
            parts.append(part)
        return ("e", tuple(parts))
    return None  # a variable, or a grounded object


def partition_key(atom: Atom) -> tuple | None:
    """The key that places `atom` (stored) or routes it (a query); None when it has no ground key."""
    if type(atom) is Expression:
        children = atom.children
        if not children:
            return ("atom", ("e", ()))
        head = children[0]
        if type(head) is Symbol and head.name in _RULE_HEADS and len(children) >= 2:
            subject = children[1]
            if type(subject) is Expression and subject.children:
                subject = subject.children[0]
            function = canonical(subject)
            return None if function is None else ("fn", function)
        head_key = canonical(head)
        if head_key is None:
            return None
        if len(children) == 1:
            return ("call", head_key)
        first = canonical(children[1])
        return None if first is None else ("call", head_key, first)
    value = canonical(atom)
    return None if value is None else ("atom", value)


def key_shard(key: tuple | None, shards: int) -> int:
    """The shard of a key: a hash of its canonical text modulo the shard count."""
    if key is None or shards <= 1:
        return UNROUTED_SHARD
    digest = hashlib.blake2b(repr(key).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_of(atom: Atom, shards: int) -> int:
    """The shard a stored atom belongs to."""
    return key_shard(partition_key(atom), shards)


def shards_for(pattern: Atom, shards: int) -> list[int]:
    """The shards a query for `pattern` must read, ascending: its own shard and the unrouted
    one when its key is ground, else all of them."""
    key = partition_key(pattern)
    if key is None:
        return list(range(shards))
    return sorted({UNROUTED_SHARD, key_shard(key, shards)})


def home_shard(pattern: Atom, shards: int) -> int | None:
    """The keyed shard a ground-key query reads besides the unrouted one; None for a fan-out."""
    key = partition_key(pattern)
    return None if key is None else key_shard(key, shards)
