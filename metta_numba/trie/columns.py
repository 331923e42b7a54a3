"""Compact integer columns: the trie's node and edge offsets in a few bits each, read in O(1).

The trie's four integer arrays (label offsets, edge starts, children, rank offsets) took 4
bytes per node or edge each, more than the label bytes they describe. Their values are far
smaller than 32 bits where it matters: label offsets and edge starts grow by a label length
or a child count per node, a child is usually a few nodes after its parent (preorder), and a
rank offset is usually the few leaves under a node's earlier siblings. Three encodings exploit
this, each one uint64 array (one snapshot section, one Numba type whatever the widths):

* a **block column** (edge starts): the values in blocks of BLOCK values; each block stores
  its smallest value (the base) and then each value's distance from it. Value i = base +
  delta: two reads, in the same block's bits.
* a **tiled column** (label offsets, when each label starts where the one before ends, as
  every builder lays them out): only every TILE-th value is stored; value i is that stored
  value plus the label lengths between, at most TILE - 1 of them. About 1.5 bits a node
  instead of a block column's 10 or so. Label offsets that do not tile take a block column.
* an **escaped column** (child steps, rank offsets): each value in `width` bits, where the
  all-ones value means "kept aside". Each block of BLOCK values starts with how many values
  were kept aside before it; the values kept aside are listed as (position, value) records
  sorted by position, so finding one bisects the records of its block, which its count and
  the next block's give. The width is chosen to make the whole column smallest
  (`choose_width`).

Each block holds its base or its count next to its values, and each record its position next
to its value, so a read of a value kept aside touches two places of the column, not four: a
cold first query on the large KB faulted in 60 pages of the trie with the counts, positions
and values in streams of their own, 55 so, and 44 with the plain arrays of store format 3.

Layout (every word little-endian uint64):

    words[0]    kind (BLOCK_KIND, TILED_KIND or ESCAPED_KIND)
    words[1]    n, the number of values
    words[2]    bit widths, one byte each: block: base, delta; tiled: stored value; escaped:
                value, count, record position, record value (each <= 63)
    words[3]    count: blocks (block), stored values (tiled) or values kept aside (escaped)
    words[4:8]  the word where each stream starts (0 for a stream the kind lacks)
    words[8:]   the streams, back to back: block: the blocks (base, then BLOCK deltas); tiled:
                every TILE-th value; escaped: the blocks (count kept aside before, then BLOCK
                values; one more count after the last block), then the records; then two
                spare zero words, so that a read of two words never needs a length test beyond
                the bound check, even at a width of 0.

Every read checks the word it reads against the array's length, so a damaged column raises
CorruptTrieError and never reads out of bounds; `check_column` is the O(1) check at open that
the header agrees with the length.

Reading fast: the bit reads (`read_bits`, `bits_at`, `stream_at`, `block_value`,
`escaped_raw`: small, without branches) are inlined by Numba into the code that makes them,
and the trie's walk helpers (trie.walk: node_label, node_edges, edge_child, edge_rank) make
their column reads with them. Measured on medium's 575K nodes, a random
read then costs 3-4 ns against a plain array's 3, and a node's label 8 ns against 6. Reads
through another function cost more: a separately compiled (cached) reader is a call LLVM
cannot inline (14 ns); Numba's `inline="always"` on a reader that calls the bit reads was no
faster; a `register_jitable` reader is inlined by LLVM only while it is tiny (`block_get`,
`escaped_get`, 3-4 ns), not with a loop in it (`tiled_get`: 29 ns a label). Hence
`escaped_get` returns -1 for a value kept aside, and the caller calls `kept_aside`.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import register_jitable

from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import i64_ro, u8_ro, u64_ro
from metta_numba.trie.packed import get_bits

BLOCK_KIND = 1
ESCAPED_KIND = 2
TILED_KIND = 3
HEADER_WORDS = 8
MAX_STREAMS = 4
BLOCK_SHIFT = 6
BLOCK = 1 << BLOCK_SHIFT
TILE_SHIFT = 4
TILE = 1 << TILE_SHIFT
MAX_WIDTH = 63
Int = types.int64


@njit(Int(u64_ro, Int, Int, Int), cache=True, nogil=True, inline="always")
def read_bits(words, start, bit, width):
    """The `width`-bit value at bit `bit` of the bit stream that starts at word `start`."""
    # All in uint64: mixed int64/uint64 arithmetic would go through float64 in Numba.
    at = np.int64(np.uint64(bit) >> np.uint64(6)) + start
    if at < HEADER_WORDS or at + 1 >= words.shape[0]:
        raise CorruptTrieError("compact column: read past its end")
    return get_bits(words, at, np.uint64(bit) & np.uint64(63), np.uint64(width))


@njit(Int(u64_ro, Int, Int, Int), cache=True, nogil=True, inline="always")
def bits_at(words, start, i, width):
    """Value i of the bit stream of `width`-bit values that starts at word `start`."""
    return read_bits(words, start, np.int64(np.uint64(i) * np.uint64(width)), width)


@njit(Int(u64_ro), cache=True, nogil=True, inline="always")
def column_len(words):
    """The number of values (0 for an array too short to be a column)."""
    if words.shape[0] <= HEADER_WORDS:
        return 0
    return np.int64(words[1] & np.uint64(0x3FFFFFFFFFFFFFFF))


@njit(Int(u64_ro, Int), cache=True, nogil=True, inline="always")
def stream_width(words, stream):
    """The bit width of the column's stream number `stream` (0..3)."""
    return np.int64((words[2] >> np.uint64(8 * stream)) & np.uint64(MAX_WIDTH))


@njit(Int(u64_ro, Int, Int), cache=True, nogil=True, inline="always")
def stream_at(words, stream, i):
    """Value i of the column's stream number `stream` (0..3)."""
    return bits_at(words, np.int64(words[4 + stream]), i, stream_width(words, stream))


@njit(Int(u64_ro, Int), cache=True, nogil=True, inline="always")
def block_value(words, i):
    """Value i of a block column: its block's base plus its delta, both in the block's bits."""
    base_width = stream_width(words, 0)
    delta_width = stream_width(words, 1)
    block_bit = (i >> BLOCK_SHIFT) * (base_width + BLOCK * delta_width)
    delta_bit = block_bit + base_width + (i & (BLOCK - 1)) * delta_width
    base = read_bits(words, HEADER_WORDS, block_bit, base_width)
    return base + read_bits(words, HEADER_WORDS, delta_bit, delta_width)


@register_jitable
def block_get(words, i):
    """Value i of a block column."""
    if i < 0 or i >= column_len(words):
        raise CorruptTrieError("compact column: index out of range")
    return block_value(words, i)


@register_jitable
def tiled_get(words, lengths, i):
    """Value i of a tiled column over `lengths` (the label lengths)."""
    if i < 0 or i >= column_len(words) or i >= lengths.shape[0]:
        raise CorruptTrieError("compact column: index out of range")
    value = stream_at(words, 0, i >> TILE_SHIFT)
    for k in range(i & ~(TILE - 1), i):
        value += np.int64(lengths[k])
    return value


@njit(Int(u64_ro, Int), cache=True, nogil=True, inline="always")
def escaped_raw(words, i):
    """The stored bits of value i of an escaped column: the value, or all ones (1 << width) - 1
    when it is kept aside (`kept_aside`). No branch, so that it inlines well."""
    width = stream_width(words, 0)
    before_width = stream_width(words, 1)
    bit = (i >> BLOCK_SHIFT) * (before_width + BLOCK * width) + before_width + (i & (BLOCK - 1)) * width
    return read_bits(words, HEADER_WORDS, bit, width)


@register_jitable
def escaped_get(words, i):
    """Value i of an escaped column, or -1 when it is kept aside: then `kept_aside(words, i)`
    gives it. The caller makes that call: made here, it keeps LLVM from inlining this read
    (15 ns a read instead of 2-4)."""
    if i < 0 or i >= column_len(words):
        raise CorruptTrieError("compact column: index out of range")
    value = escaped_raw(words, i)
    return value if value != (1 << stream_width(words, 0)) - 1 else -1


@njit(Int(u64_ro, Int), cache=True, nogil=True, inline="always")
def kept_aside(words, i):
    """Value i of an escaped column, kept aside: a bisection of the records of its block, whose
    range the headers of this block and the next give."""
    width = stream_width(words, 0)
    before_width = stream_width(words, 1)
    position_width = stream_width(words, 2)
    record_bits = position_width + stream_width(words, 3)
    block_bits = before_width + BLOCK * width
    block = i >> BLOCK_SHIFT
    lo = read_bits(words, HEADER_WORDS, block * block_bits, before_width)
    end = read_bits(words, HEADER_WORDS, (block + 1) * block_bits, before_width)
    records = np.int64(words[5])
    if end - lo == BLOCK:  # the whole block is kept aside (a wide node's edges): no search
        lo += i & (BLOCK - 1)
        end = lo + 1
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if read_bits(words, records, mid * record_bits, position_width) < i:
            lo = mid + 1
        else:
            hi = mid
    if lo >= end or read_bits(words, records, lo * record_bits, position_width) != i:
        raise CorruptTrieError("compact column: a value kept aside is missing")
    return read_bits(words, records, lo * record_bits + position_width, stream_width(words, 3))


# --- sizes (the packer, trie.column_pack, writes what these say) --------------------


I64_ARRAY = types.Array(types.int64, 1, "C")


def words_for(n: int, width: int) -> int:
    """Words of a stream of n values of `width` bits."""
    return (n * width + 63) // 64


def escaped_stream_bits(n: int, count: int, widths: list[int]) -> list[int]:
    """Bits of the two streams of an escaped column: the blocks (each block's count of values
    kept aside before it, then its BLOCK values; one more count after the last block) and the
    records kept aside (position, value)."""
    width, before_width, position_width, value_width = widths
    n_blocks = -(-n // BLOCK)
    return [(n_blocks + 1) * before_width + n_blocks * BLOCK * width, count * (position_width + value_width)]


def decode(words: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Every value of a column, as int64 (checked like a kernel's read); a tiled column needs
    the label lengths."""
    kind = check_column(words, "column")
    if kind == TILED_KIND and lengths is None:
        raise ValueError("a tiled column decodes with its label lengths")
    return _decode(words, kind, np.zeros(0, np.uint8) if lengths is None else lengths)


@njit(I64_ARRAY(u64_ro, Int, u8_ro), cache=True, nogil=True)
def _decode(words, kind, lengths):
    n = column_len(words)
    out = np.empty(n, np.int64)
    if kind == TILED_KIND:
        if lengths.shape[0] < n:
            raise CorruptTrieError("compact column: fewer label lengths than offsets")
        for i in range(n):  # in order: each offset from the one before, no tile sums
            out[i] = stream_at(words, 0, i >> TILE_SHIFT) if i & (TILE - 1) == 0 else out[i - 1] + lengths[i - 1]
        return out
    for i in range(n):
        if kind == BLOCK_KIND:
            out[i] = block_get(words, i)
        else:
            value = escaped_get(words, i)
            out[i] = value if value >= 0 else kept_aside(words, i)
    return out


def _stream_bits(kind: int, n: int, count: int, widths: list[int]) -> list[int]:
    """How many bits each stream of a column of this kind holds."""
    if kind == BLOCK_KIND:
        return [-(-n // BLOCK) * (widths[0] + BLOCK * widths[1])]
    if kind == TILED_KIND:
        return [-(-n // TILE) * widths[0]]
    return escaped_stream_bits(n, count, widths)


def check_column(words: np.ndarray, what: str, kind: int | None = None) -> int:
    """The O(1) check at open: a uint64 column whose header agrees with its length. Returns its
    kind."""
    if words.dtype != np.uint64 or words.ndim != 1 or len(words) <= HEADER_WORDS:
        raise CorruptTrieError(f"{what} is not a compact column")
    found, n, widths, count = (int(word) for word in words[:4])
    if found not in (BLOCK_KIND, ESCAPED_KIND, TILED_KIND) or (kind is not None and found != kind):
        raise CorruptTrieError(f"{what}: not a compact column of the expected kind")
    if n >= 2**40 or count >= 2**40 or widths >= 2 ** (8 * MAX_STREAMS):
        raise CorruptTrieError(f"{what}: compact column header out of range")
    expected = {BLOCK_KIND: BLOCK, TILED_KIND: TILE}.get(found)
    if expected is not None and count != -(-n // expected):
        raise CorruptTrieError(f"{what}: compact column header disagrees with itself")
    stream_widths = [(widths >> (8 * stream)) & 0xFF for stream in range(MAX_STREAMS)]
    if max(stream_widths) > MAX_WIDTH:
        raise CorruptTrieError(f"{what}: compact column header out of range")
    lengths = _stream_bits(found, n, count, stream_widths)
    used_widths = {BLOCK_KIND: 2, TILED_KIND: 1}.get(found, MAX_STREAMS)
    if any(stream_widths[used_widths:]):
        raise CorruptTrieError(f"{what}: compact column header disagrees with itself")
    at = HEADER_WORDS
    for stream in range(MAX_STREAMS):
        start = int(words[4 + stream])
        if stream >= len(lengths):
            if start:
                raise CorruptTrieError(f"{what}: compact column header disagrees with itself")
            continue
        if start != at:
            raise CorruptTrieError(f"{what}: compact column header disagrees with its length")
        at += words_for(lengths[stream], 1)
    if len(words) != at + 2:
        raise CorruptTrieError(f"{what}: compact column header disagrees with its length")
    return found


# --- the trie's node arrays --------------------------------------------------------------


@njit(types.Array(types.int32, 1, "C")(i64_ro, i64_ro), cache=True, nogil=True)
def child_ids(child_start, steps):
    """The inverse of `child_steps` (for decoded columns; values unchecked beyond int32)."""
    children = np.empty(steps.shape[0], np.int32)
    for node in range(child_start.shape[0] - 1):
        for edge in range(max(child_start[node], 0), min(child_start[node + 1], steps.shape[0])):
            children[edge] = np.int32(min(node + steps[edge], 2**31 - 1))
    return children


def check_columns(label_off, child_start, children, rank_offset) -> tuple[int, int, int, int]:
    """`check_column` of the four column arrays of a trie, each of the kind it must have.
    Returns how many values each holds."""
    if check_column(label_off, "label_off") not in (BLOCK_KIND, TILED_KIND):
        raise CorruptTrieError("label_off: not a compact column of the expected kind")
    check_column(child_start, "child_start", BLOCK_KIND)
    check_column(children, "children", ESCAPED_KIND)
    check_column(rank_offset, "child_rank_offset", ESCAPED_KIND)
    return tuple(int(words[1]) for words in (label_off, child_start, children, rank_offset))


def plain_nodes(label_off, child_start, children, rank_offset, label_len: np.ndarray):
    """The inverse of `compact_nodes`: plain arrays (layout.PLAIN_DTYPES). Values that do not
    fit those dtypes (only a damaged column holds them) raise CorruptTrieError."""
    decoded = [decode(label_off, label_len)] + [decode(words) for words in (child_start, children, rank_offset)]
    limits = (2**32 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1)
    for values, limit in zip(decoded, limits):
        if len(values) and int(values.max()) > limit:
            raise CorruptTrieError("a compact column holds a value beyond the trie's limits")
    offsets, starts, steps, ranks = decoded
    return offsets.astype(np.uint32), starts.astype(np.int32), child_ids(starts, steps), ranks.astype(np.int32)
