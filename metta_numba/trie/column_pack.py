"""Packing the trie's plain integer arrays into compact columns (trie.columns has the format),
a piece at a time.

A build's plain arrays are files of its folder, mapped (trie.dag_build), and with a folder
the columns are files there too. Every pass reads PIECE values and then lets go of their
pages and of the column pages it wrote (spill.drop_pages), so that packing never holds the
plain arrays or the columns whole, whatever the trie's size; a column's page is read again
from the page cache when it is needed. Arrays in memory are packed the same way (letting go
is then a no-op). A column is the same, word for word, whatever the pieces.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie import spill
from metta_numba.trie.columns import (
    BLOCK,
    BLOCK_KIND,
    BLOCK_SHIFT,
    ESCAPED_KIND,
    HEADER_WORDS,
    I64_ARRAY,
    MAX_WIDTH,
    TILE,
    TILED_KIND,
    escaped_stream_bits,
    words_for,
)
from metta_numba.trie.layout import i32_arr, i32_ro, i64_ro, u8_ro, u32_ro, u64_arr
from metta_numba.trie.packed import put_bits
from metta_numba.trie.spill import in_pieces, zeroed_file_array

Int = types.int64
VALUE_TYPES = (i32_ro, u32_ro, i64_ro)
"""The dtypes the builders' plain arrays come in."""
NO_CAP = 2**63 - 1
NO_BASES = np.zeros(0, np.int64)
PIECE = spill.PIECE
"""Values a pass reads before it lets go of their pages: a multiple of BLOCK and TILE."""


def _pieces(values: np.ndarray, *written: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """spill.in_pieces of PIECE values."""
    return in_pieces(values, PIECE, *written)


@njit(
    [types.void(u64_arr, Int, t, Int, Int, i64_ro, types.UniTuple(Int, 3)) for t in VALUE_TYPES],
    cache=True,
    nogil=True,
)
def _put_bits(words, start, values, width, cap, bases, spacing):
    """values[i] (less bases[i // BLOCK] when `bases` is not empty; `cap` where larger) in
    `width` bits into the bit stream that starts at word `start`: value i at bit first +
    (i // group) * group_bits + (i % group) * width, where (first, group, group_bits) is
    `spacing`; (0, 1, width) packs them back to back."""
    if width == 0:
        return
    first, group, group_bits = spacing
    for i in range(values.shape[0]):
        bit = first + (i // group) * group_bits + (i % group) * width
        value = np.int64(values[i])
        if bases.shape[0] > 0:
            value -= bases[i >> BLOCK_SHIFT]
        put_bits(words, start + (bit >> 6), np.uint64(bit & 63), np.uint64(min(value, cap)))


@njit([types.Tuple((I64_ARRAY, Int))(t) for t in VALUE_TYPES], cache=True, nogil=True)
def _block_minima(values):
    """(smallest value of each block, largest distance of a value from its block's smallest)."""
    n = values.shape[0]
    bases = np.empty((n + BLOCK - 1) >> BLOCK_SHIFT, np.int64)
    widest = 0
    for block in range(bases.shape[0]):
        lo = block << BLOCK_SHIFT
        hi = min(lo + BLOCK, n)
        smallest = np.int64(values[lo])
        largest = smallest
        for i in range(lo + 1, hi):
            smallest = min(smallest, np.int64(values[i]))
            largest = max(largest, np.int64(values[i]))
        bases[block] = smallest
        widest = max(widest, largest - smallest)
    return bases, widest


@njit([I64_ARRAY(t) for t in VALUE_TYPES], cache=True, nogil=True)
def _values_at_least(values):
    """at_least[w]: how many values are >= 2**w - 1, the escape of a w-bit column (w < 64)."""
    by_length = np.zeros(65, np.int64)  # values of each bit length
    all_ones = np.zeros(65, np.int64)  # values 2**k - 1, by k
    for i in range(values.shape[0]):
        value = np.int64(values[i])
        length = 0
        rest = value
        while rest > 0:
            length += 1
            rest >>= 1
        by_length[length] += 1
        if value > 0 and (value & (value + 1)) == 0:
            all_ones[length] += 1
    at_least = np.zeros(64, np.int64)
    longer = 0
    for width in range(63, -1, -1):
        at_least[width] = longer + all_ones[width]  # longer than width bits, or exactly the escape
        longer += by_length[width]
    return at_least


def _width_for(top: int) -> int:
    return int(top).bit_length()


def _new_column(
    kind: int, n: int, count: int, streams: list[tuple[int, int]], file: Path | None
) -> tuple[np.ndarray, list[int]]:
    """An empty column with room for bit streams of (values, width), in memory or in a new
    `file`; and where each stream starts."""
    starts = []
    at = HEADER_WORDS
    for values, width in streams:
        starts.append(at)
        at += words_for(values, width)
    size = at + 2  # two spare words: see trie.columns
    words = np.zeros(size, np.uint64) if file is None else zeroed_file_array(file, np.uint64, size)
    words[0] = kind
    words[1] = n
    words[2] = sum(width << (8 * k) for k, (_, width) in enumerate(streams))
    words[3] = count
    words[4 : 4 + len(starts)] = starts
    return words, starts


def _checked_values(values: np.ndarray) -> np.ndarray:
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.int32, np.uint32, np.int64):
        values = values.astype(np.int64)
    if any(int(part.min()) < 0 for _, part in _pieces(values)):
        raise ValueError("compact columns hold non-negative values only")
    return values


def block_column(values: np.ndarray, file: Path | None = None) -> np.ndarray:
    """A block column of non-negative `values` (in memory, or in a new `file`)."""
    values = _checked_values(values)
    n = len(values)
    minima = [_block_minima(part) for _, part in _pieces(values)]
    bases = np.concatenate([part for part, _ in minima]) if minima else np.zeros(0, np.int64)
    base_width = _width_for(int(bases.max())) if n else 0
    delta_width = _width_for(max((widest for _, widest in minima), default=0))
    block_bits = base_width + BLOCK * delta_width
    words, starts = _new_column(BLOCK_KIND, n, len(bases), [(len(bases) * block_bits, 1)], file)
    words[2] = base_width | delta_width << 8
    _put_bits(words, starts[0], bases, base_width, NO_CAP, NO_BASES, (0, 1, block_bits))
    for start, part in _pieces(values, words):
        first_block = start >> BLOCK_SHIFT
        spacing = (first_block * block_bits + base_width, BLOCK, block_bits)
        _put_bits(words, starts[0], part, delta_width, NO_CAP, bases[first_block:], spacing)
    return words


@njit([types.boolean(t, u8_ro) for t in VALUE_TYPES], cache=True, nogil=True)
def _is_tiled(values, lengths):
    """Each value within a tile is the one before it plus that one's length (the values start
    at a tile)."""
    if values.shape[0] != lengths.shape[0]:
        return False
    for i in range(1, values.shape[0]):
        if i & (TILE - 1) and np.int64(values[i]) != np.int64(values[i - 1]) + lengths[i - 1]:
            return False
    return True


def label_column(values: np.ndarray, lengths: np.ndarray, file: Path | None = None) -> np.ndarray:
    """Label offsets as a tiled column over the label lengths when they tile (see trie.columns),
    else as a block column."""
    values = _checked_values(values)
    lengths = np.ascontiguousarray(lengths, dtype=np.uint8)
    if len(values) != len(lengths) or not all(
        _is_tiled(part, lengths[start : start + len(part)]) for start, part in _pieces(values, lengths)
    ):
        return block_column(values, file)
    n_stored = -(-len(values) // TILE)
    top = max((int(part[::TILE].max()) for _, part in _pieces(values)), default=0)
    width = _width_for(top)
    words, starts = _new_column(TILED_KIND, len(values), n_stored, [(n_stored, width)], file)
    for start, part in _pieces(values, words):
        stored = np.ascontiguousarray(part[::TILE])
        _put_bits(words, starts[0], stored, width, NO_CAP, NO_BASES, ((start // TILE) * width, 1, width))
    return words


def choose_width(n: int, at_least: np.ndarray, top: int, position_width: int) -> int:
    """The value width that makes an escaped column smallest: n * width bits, plus, for each
    value at or above the escape (2**width - 1), its position and its value (the counts per
    block cost the same whatever the width)."""
    value_width = _width_for(top)
    best_width, best_bits = 1, None
    for width in range(1, min(value_width + 1, MAX_WIDTH) + 1):
        exceptions = int(at_least[width]) if width <= value_width else 0
        bits = n * width + exceptions * (position_width + value_width)
        if best_bits is None or bits < best_bits:
            best_width, best_bits = width, bits
    return best_width


def escaped_column(values: np.ndarray, file: Path | None = None) -> np.ndarray:
    """An escaped column of non-negative `values` (width chosen by `choose_width`), in memory or
    in a new `file`. Three passes: the widths, then what is kept aside, then the bits."""
    values = _checked_values(values)
    n = len(values)
    top, at_least = 0, np.zeros(64, np.int64)
    for _, part in _pieces(values):
        top = max(top, int(part.max()))
        at_least += _values_at_least(part)
    position_width = _width_for(max(n - 1, 0))
    width = choose_width(n, at_least, top, position_width)
    escape = (1 << width) - 1
    count, value_top = 0, 0
    for _, part in _pieces(values):
        aside = part[part >= escape]
        count += len(aside)
        value_top = max(value_top, int(aside.max(initial=0)))
    value_width = _width_for(value_top)
    before_width = _width_for(count)
    block_bits = before_width + BLOCK * width
    record_bits = position_width + value_width
    widths = [width, before_width, position_width, value_width]
    streams = [(bits, 1) for bits in escaped_stream_bits(n, count, widths)]
    words, starts = _new_column(ESCAPED_KIND, n, count, streams, file)
    words[2] = sum(width << (8 * k) for k, width in enumerate(widths))
    aside_before = 0  # values kept aside before the piece
    for start, part in _pieces(values, words):
        positions = np.flatnonzero(part >= escape)
        first_bit = (start >> BLOCK_SHIFT) * block_bits
        # Each block's count of values kept aside before it, then its values.
        before_block = aside_before + np.searchsorted(positions, np.arange(0, len(part), BLOCK))
        _put_bits(words, starts[0], before_block, before_width, NO_CAP, NO_BASES, (first_bit, 1, block_bits))
        _put_bits(words, starts[0], part, width, escape, NO_BASES, (first_bit + before_width, BLOCK, block_bits))
        # The values kept aside: (position, value) records.
        record = aside_before * record_bits
        _put_bits(words, starts[1], positions + start, position_width, NO_CAP, NO_BASES, (record, 1, record_bits))
        aside = part[positions].astype(np.int64)
        _put_bits(words, starts[1], aside, value_width, NO_CAP, NO_BASES, (record + position_width, 1, record_bits))
        aside_before += len(positions)
    after_last = (-(-n // BLOCK) * block_bits, 1, block_bits)
    _put_bits(words, starts[0], np.array([aside_before], np.int64), before_width, NO_CAP, NO_BASES, after_last)
    return words


# --- the trie's node arrays --------------------------------------------------------------


@njit(types.void(i32_ro, i32_ro, i32_arr, Int, Int), cache=True, nogil=True)
def _child_steps(child_start, children, steps, lo, hi):
    """steps[edge] = the edge's child minus its parent, for the edges of nodes lo..hi-1. Raises
    ValueError when an edge does not lead to a higher id (the builders never lay out such a
    trie)."""
    for node in range(lo, hi):
        if child_start[node] < 0 or child_start[node + 1] > children.shape[0]:
            raise ValueError("child_start out of range")
        for edge in range(child_start[node], child_start[node + 1]):
            step = children[edge] - node
            if step <= 0:
                raise ValueError("an edge leads to a lower node id")
            steps[edge] = step


def child_steps(child_start: np.ndarray, children: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Each edge's child minus its parent (what the children column stores) into `steps`, a
    piece of nodes at a time."""
    for start, _ in _pieces(child_start[:-1], children, steps):
        _child_steps(child_start, children, steps, start, min(start + PIECE, len(child_start) - 1))
    return steps


def compact_nodes(label_off, child_start, children, rank_offset, label_len: np.ndarray, folder: Path | None = None):
    """The column arrays of a plain layout (layout.PLAIN_DTYPES) as compact columns, in the
    same order; with a `folder`, each is a new file `column.<name>` there, and so are the
    child steps while they are packed."""

    def file(name: str) -> Path | None:
        return None if folder is None else folder / f"column.{name}"

    child_start = np.ascontiguousarray(child_start, np.int32)
    children = np.ascontiguousarray(children, np.int32)
    n_edges = len(children)
    steps = np.zeros(n_edges, np.int32) if folder is None else zeroed_file_array(file("steps"), np.int32, n_edges)
    child_steps(child_start, children, steps)
    label_offsets = label_column(label_off, label_len, file("label_off"))
    child_starts = block_column(child_start, file("child_start"))
    child_steps_column = escaped_column(steps, file("children"))
    del steps
    rank_offsets = escaped_column(rank_offset, file("child_rank_offset"))
    return label_offsets, child_starts, child_steps_column, rank_offsets
