"""Cutting MeTTa sources into byte ranges at top-level atom boundaries, in a Numba kernel.

A distributed build hands each worker a byte range of a source; a range must start and end
between top-level atoms, which takes knowing the parenthesis depth, string literals and
comments up to that point. The scan reuses the bulk reader's whitespace, comment and token
rules (syntax.bulk_lexer), so it agrees with the reader on where each atom starts and ends.
"""

from __future__ import annotations

import numpy as np

from metta_numba.jit import njit
from metta_numba.syntax.bulk_lexer import BYTE_CLASS, CLOSE, OPEN, skip_space, token_end

_QUOTE = 34
_BACKSLASH = 92
_DOLLAR = 36
_BANG = 33


@njit(cache=True, nogil=True)
def _string_end(src, pos):
    """The offset after the string literal opening at `pos` (the end of input when unclosed)."""
    n = src.size
    pos += 1
    while pos < n:
        byte = src[pos]
        if byte == _QUOTE:
            return pos + 1
        pos += 2 if byte == _BACKSLASH else 1
    return n


@njit(cache=True, nogil=True)
def atom_spans(src):
    """(starts, ends) of the top-level items of `src`: atoms, and `!` queries with the atom they
    mark. Unbalanced input gives spans too; the reader reports it."""
    n = src.size
    starts = np.empty(16, np.int64)
    ends = np.empty(16, np.int64)
    count = 0
    depth = 0
    start = 0
    marked = False  # a top-level `!` was read: the next atom belongs to it
    pos = skip_space(src, 0)
    while pos < n:
        if depth == 0 and not marked:
            start = pos
        kind = BYTE_CLASS[src[pos]]
        if kind == OPEN:
            depth += 1
            pos += 1
        elif kind == CLOSE:
            depth = max(depth - 1, 0)
            pos += 1
        elif src[pos] == _QUOTE:
            pos = _string_end(src, pos)
        elif src[pos] == _DOLLAR:
            pos = token_end(src, pos + 1, False)
        else:
            pos = max(token_end(src, pos, True), pos + 1)
        if depth == 0 and not marked and pos - start == 1 and src[start] == _BANG:
            marked = True
        elif depth == 0:
            marked = False
            if count == starts.size:
                starts = np.concatenate((starts, np.empty(count, np.int64)))
                ends = np.concatenate((ends, np.empty(count, np.int64)))
            starts[count] = start
            ends[count] = pos
            count += 1
        pos = skip_space(src, pos)
    return starts[:count].copy(), ends[:count].copy()


@njit(cache=True, nogil=True)
def cut_points(src, targets):
    """For each ascending target offset, the end of the first top-level atom ending at or after
    it (len(src) when none does): places where a range may be cut."""
    starts, ends = atom_spans(src)
    out = np.empty(targets.size, np.int64)
    j = 0
    for i in range(targets.size):
        while j < ends.size and ends[j] < targets[i]:
            j += 1
        out[i] = ends[j] if j < ends.size else src.size
    return out


def byte_ranges(data: bytes | np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Cut a source into at most `parts` contiguous ranges of nearly equal size, each holding
    whole top-level atoms; empty ranges are dropped."""
    src = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    size = int(src.size)
    if parts <= 1 or size == 0:
        return [(0, size)] if size else []
    targets = np.array([size * k // parts for k in range(1, parts)], np.int64)
    cuts = [0, *sorted(set(cut_points(src, targets).tolist())), size]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
