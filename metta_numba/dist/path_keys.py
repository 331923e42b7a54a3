"""Partition keys straight from encoded paths (codec.atom_codec bytes), for the sharded build.

Decoding every atom to find its key would cost a Python object per atom. Instead a kernel finds,
for each path, where its key ends (the head and the first argument; for a rule or type
declaration, the function symbol of the left side), and atoms whose paths begin with the same
key bytes share a shard, so only each distinct prefix is decoded (`path_key`).
"""

from __future__ import annotations

import numpy as np

from metta_numba.jit import njit
from metta_numba.atoms import Expression, Symbol
from metta_numba.codec import CodecError, decode, decode_at
from metta_numba.codec.kernels import subterm_end
from metta_numba.codec.tags import TAG_BIG_ARITY
from metta_numba.dist.partition import partition_key

_SHORT_SYMBOL_1 = 0xC1  # a symbol of a one-byte name


@njit(cache=True, nogil=True)
def _atom_end(data, pos, limit):
    """The offset after the atom starting at `pos` (`limit` when the bytes run out or are no
    atom: the caller then decodes the whole path)."""
    end = subterm_end(data, pos, limit)
    return limit if end < 0 else end


@njit(cache=True, nogil=True)
def _key_end(data, start, limit):
    tag = data[start]
    if tag == 0 or (tag >= 0x40 and tag != 0x44):
        return limit  # not an expression, or (): the whole atom is its key
    arity = tag
    pos = start + 1
    if tag == 0x44:
        if start + 5 > limit:
            return limit
        arity = (data[start + 1] << 24) | (data[start + 2] << 16) | (data[start + 3] << 8) | data[start + 4]
        pos = start + 5
    head = pos
    pos = _atom_end(data, pos, limit)
    if arity < 2 or pos >= limit:
        return pos
    is_rule = head + 1 < limit and data[head] == _SHORT_SYMBOL_1 and (data[head + 1] == 61 or data[head + 1] == 58)
    subject = data[pos]
    if is_rule and 0 < subject < 0x40:
        return _atom_end(data, pos + 1, limit)
    if is_rule and subject == 0x44:
        return _atom_end(data, pos + 5, limit)
    return _atom_end(data, pos, limit)


@njit(cache=True, nogil=True)
def _key_prefix_ends(data, offsets):
    n = offsets.size - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        start, limit = offsets[i], offsets[i + 1]
        out[i] = limit if start >= limit else _key_end(data, start, limit)
    return out


def key_prefix_ends(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each path data[offsets[i]:offsets[i+1]], where the bytes its partition key is read
    from end (the path's end when the whole atom is its key)."""
    return _key_prefix_ends(np.ascontiguousarray(data, np.uint8), np.ascontiguousarray(offsets, np.int64))


def _header_end(path: bytes, pos: int) -> tuple[int, int] | None:
    """(arity, offset of the first child) when an expression starts at `pos`, else None."""
    tag = path[pos]
    if tag < 0x40:
        return tag, pos + 1
    if tag == TAG_BIG_ARITY:
        return int.from_bytes(path[pos + 1 : pos + 5], "big"), pos + 5
    return None


def path_key(path: bytes, terms) -> tuple | None:
    """partition.partition_key of the atom a stored path spells, decoding only the atoms the key
    is made of (the head and the first argument, or a rule's function symbol): the path may
    stop where `key_prefix_ends` says its key ends."""
    try:
        header = _header_end(path, 0)
        if header is None or header[0] == 0:
            return partition_key(decode(path, terms))
        arity, pos = header
        head, pos = decode_at(path, pos, terms)
        parts = [head]
        if arity >= 2:
            if type(head) is Symbol and head.name in ("=", ":"):
                inner = _header_end(path, pos)
                if inner is not None and inner[0] > 0:
                    parts.append(Expression([decode_at(path, inner[1], terms)[0]]))
                else:
                    parts.append(decode_at(path, pos, terms)[0])
            else:
                parts.append(decode_at(path, pos, terms)[0])
    except CodecError:
        return None  # a reference to an earlier variable: the key holds a variable
    return partition_key(Expression(parts))
