"""Laying out an argument index (see trie.argindex): from the counts of each position's
entries to the table and where each row's parts go (`RowPlan`), and from entries sorted in
memory to the four arrays (`layout_index`). The builder from sorted runs on disk
(trie.argindex_runs) lays out from the same plan."""

from __future__ import annotations

import numpy as np

from metta_numba.trie import argindex_entries as entries
from metta_numba.trie import argindex_kernels as kernels
from metta_numba.trie import packed

FENCE_STRIDE = 512
"""Every 512th distinct key of a position is copied into its fence: a lookup touches a page or two."""
INDEX_VERSION = 3

UNPACKED_RANK_BYTES = 4
UNPACKED_START_BYTES = 8
"""What a posting and a key start take unpacked (store format 1): the unit of the size cap."""

SELECTIVE_PREFIX = 256
"""A ground prefix that leaves at most this many paths needs no index (see ArgIndex.candidates)."""
BROAD_KEY_SHARE = 64
"""By default a position is not keyed when its keys hold on average more than 1/64 of the
paths (and more than SELECTIVE_PREFIX): five values over 200,000 atoms (`zero`, `True`...)
cut a lookup to a fifth of its prefix at best, for postings as large as the atoms."""

ENTRY_DTYPES = (np.int64, np.int8, np.uint64, np.int64)
"""The columns of the index entries: position code, kind, key, rank."""
CODE_COLUMN, RANK_COLUMN = 0, 3


def joined_columns(parts: list[tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """The entry columns of all chunks, each concatenated, dropping the chunks' copy of a
    column as soon as it is joined (the index's peak memory is in these columns)."""
    columns = []
    for k, dtype in enumerate(ENTRY_DTYPES):
        columns.append(np.concatenate([part[k] for part in parts]) if parts else np.zeros(0, dtype))
        for i, part in enumerate(parts):
            parts[i] = (*part[:k], None, *part[k + 1 :])
    return columns


def dense_rows(slots: np.ndarray, max_child: int) -> tuple[np.ndarray, np.ndarray]:
    """(row of each slot, code of each row) for the position slots present: codes are few, so
    they are numbered densely by (c0, c1) without sorting all entries. A slot is
    `c0_part * (max_child + 1) + c1_part` of a code (see `code_slots`)."""
    present = np.flatnonzero(np.bincount(slots, minlength=1)) if len(slots) else np.zeros(0, np.int64)
    row_of_slot = np.zeros(len(present) and int(present[-1]) + 1, np.int64)
    row_of_slot[present] = np.arange(len(present))
    row_codes = ((present // (max_child + 1)) << 32) | (present % (max_child + 1))
    return row_of_slot, row_codes


def code_slots(codes: np.ndarray, max_child: int) -> np.ndarray:
    """The slot of each position code: slots ascend as codes do, and are below 2**16 for any
    max_child up to 254."""
    return (codes >> 32) * (max_child + 1) + (codes & entries.DEPTH2_MASK)


class RowPlan:
    """The table of an index and where each row's parts go, from counts alone: per row its
    code, ground entries, distinct ground keys, open and variable entries. Both builders (all
    entries sorted in memory, or merged from sorted runs on disk) lay out from one plan."""

    def __init__(
        self, row_codes, n_ground, n_keys, n_open, n_var, n_leaves, cover, max_child, keyed_codes, cap,
        served=frozenset(),
    ):  # fmt: skip
        # The cap counts the unpacked size (ArgIndex.unpacked_nbytes), so that which positions
        # are kept does not depend on the bit widths of a KB; the packed index is smaller still.
        rank_bytes, start_bytes = UNPACKED_RANK_BYTES, UNPACKED_START_BYTES
        stats = []
        for code, ground, keys, n_opened in zip(row_codes, n_ground, n_keys, n_open, strict=True):
            if keyed_codes is not None:
                wanted = code in keyed_codes  # asked for by name
            else:
                broad = ground > keys * max(SELECTIVE_PREFIX, n_leaves // BROAD_KEY_SHARE)
                wanted = code not in served and not broad
            keyed = code != entries.TOP_VARIABLE_CODE and wanted and ground > 0
            n_fence = -(-keys // FENCE_STRIDE)
            cost = rank_bytes * (ground + n_opened) + (8 + start_bytes) * (keys + n_fence)
            stats.append([code, ground, keys, keyed, cost])
        if cap is not None:
            # What stays whatever the cap: the table, the variable lists.
            fixed = 8 * kernels.ROW * (len(stats) + 1) + 8 * len(cover) + rank_bytes * sum(n_var)
            total = fixed + sum(s[4] for s in stats if s[3])
            # Drop the least selective positions (most atoms per key) until the rest fits.
            for s in sorted((s for s in stats if s[3]), key=lambda s: (-s[1] / max(s[2], 1), -s[4])):
                if total <= cap:
                    break
                s[3] = False
                total -= s[4]
        self.keyed = [bool(s[3]) for s in stats]
        # A lookup reads a position's variable list only at a keyed position or as the parent
        # of a keyed depth-2 one (and the bare variables' list always): the others stay empty.
        read = {s[0] for s in stats if s[3]} | {s[0] & ~entries.DEPTH2_MASK for s in stats if s[3]}
        read.add(entries.TOP_VARIABLE_CODE)
        self.reads_variables = [s[0] in read for s in stats]
        n_var = [n if reads else 0 for n, reads in zip(n_var, self.reads_variables, strict=True)]
        header = np.zeros(kernels.ROW, np.int64)
        rows = []
        self.key_lo = [0] * len(stats)
        self.fence_lo = [0] * len(stats)
        n_hashes = n_ranks = 0
        for row, (code, ground, keys, keyed, _) in enumerate(stats):
            if code == entries.TOP_VARIABLE_CODE:
                header[kernels.H_TOP_LO], header[kernels.H_TOP_HI] = n_ranks, n_ranks + n_var[row]
                n_ranks += n_var[row]
                continue
            entry = np.zeros(kernels.ROW, np.int64)
            entry[kernels.CODE] = code
            entry[kernels.N_GROUND] = ground
            entry[kernels.N_KEYS] = keys
            entry[kernels.KEYED] = int(keyed)
            entry[kernels.KEY_LO] = entry[kernels.KEY_HI] = n_hashes
            entry[kernels.FENCE_LO] = entry[kernels.FENCE_HI] = n_hashes
            entry[kernels.POST_LO] = entry[kernels.POST_HI] = n_ranks
            if keyed:
                n_fence = -(-keys // FENCE_STRIDE)
                entry[kernels.POST_HI] = n_ranks + ground
                n_ranks += ground
                entry[kernels.KEY_HI] = n_hashes + keys
                entry[kernels.FENCE_LO] = entry[kernels.KEY_HI]
                entry[kernels.FENCE_HI] = entry[kernels.FENCE_LO] + n_fence
                self.key_lo[row], self.fence_lo[row] = n_hashes, n_hashes + keys
                n_hashes += keys + n_fence
            entry[kernels.VAR_LO], entry[kernels.VAR_HI] = n_ranks, n_ranks + n_var[row]
            n_ranks += n_var[row]
            n_opened = n_open[row] if keyed else 0
            entry[kernels.OPEN_LO], entry[kernels.OPEN_HI] = n_ranks, n_ranks + n_opened
            n_ranks += n_opened
            rows.append(entry)
        header[kernels.H_VERSION] = INDEX_VERSION
        header[kernels.H_LEAVES] = n_leaves
        header[kernels.H_MAX_CHILD] = max_child
        header[kernels.H_STRIDE] = FENCE_STRIDE
        header[kernels.H_ROWS] = len(rows)
        header[kernels.H_COVER_AT] = (len(rows) + 1) * kernels.ROW
        header[kernels.H_COVER_N] = len(cover) // 2
        self.table = np.concatenate([header, *rows, np.asarray(cover, np.int64)])
        self.n_hashes = n_hashes
        self.n_ranks = n_ranks
        # Widths from the bounds, not the values: every index of one trie packs alike.
        self.start_width = packed.width_for(n_ranks)
        self.rank_width = packed.width_for(max(n_leaves - 1, 0))


def layout_index(columns, n_leaves, cover, max_child, keyed_codes, cap, served=frozenset()) -> dict[str, np.ndarray]:
    """Sort the entries by (position, kind, key, rank) and lay out the four arrays. `columns`
    (codes, kinds, keys, ranks) is emptied, so that each column is freed once used. Positions
    whose codes are in `served` are not keyed (the trie serves them)."""
    codes, kinds, keys, ranks = columns
    columns.clear()
    slot = code_slots(codes, max_child)
    row_of_slot, row_codes = dense_rows(slot, max_child)
    del codes
    # Entries arrive in rank order, so a stable sort keeps ranks ascending within a key.
    group = row_of_slot[slot] * 3 + kinds
    del slot
    group, keys, ranks = entries.sort_entries(group, keys, ranks)
    bounds = np.searchsorted(group, np.arange(3 * len(row_codes) + 1), side="left")

    def part(row: int, kind: int) -> slice:
        return slice(int(bounds[3 * row + kind]), int(bounds[3 * row + kind + 1]))

    def size(row: int, kind: int) -> int:
        return int(bounds[3 * row + kind + 1] - bounds[3 * row + kind])

    rows = range(len(row_codes))
    n_keys = []
    for row in rows:
        row_keys = keys[part(row, entries.GROUND)]
        n_keys.append(1 + int(np.count_nonzero(row_keys[1:] != row_keys[:-1])) if len(row_keys) else 0)
    plan = RowPlan(
        row_codes.tolist(),
        [size(row, entries.GROUND) for row in rows],
        n_keys,
        [size(row, entries.OPEN) for row in rows],
        [size(row, entries.VARIABLE) for row in rows],
        n_leaves,
        cover,
        max_child,
        keyed_codes,
        cap,
        served,
    )
    hash_parts: list[np.ndarray] = []
    start_parts: list[np.ndarray] = []
    rank_parts: list[np.ndarray] = []
    n_ranks = 0
    for row in rows:
        keyed = plan.keyed[row]
        if keyed:
            ground = part(row, entries.GROUND)
            row_keys = keys[ground]
            first = np.flatnonzero(np.concatenate(([True], row_keys[1:] != row_keys[:-1])))
            unique = row_keys[first]
            hash_parts += [unique, unique[::FENCE_STRIDE]]
            start_parts += [first.astype(np.int64) + n_ranks, np.zeros(len(hash_parts[-1]), np.int64)]
            rank_parts.append(ranks[ground])
            n_ranks += len(row_keys)
        if plan.reads_variables[row]:
            rank_parts.append(ranks[part(row, entries.VARIABLE)])
            n_ranks += len(rank_parts[-1])
        if keyed:
            rank_parts.append(ranks[part(row, entries.OPEN)])
            n_ranks += len(rank_parts[-1])

    def joined(parts_list, dtype):
        return np.concatenate(parts_list).astype(dtype) if parts_list else np.zeros(0, dtype)

    return {
        "table": plan.table,
        "hashes": joined(hash_parts, np.uint32),
        "key_start": packed.pack(joined(start_parts, np.int64), plan.start_width),
        "ranks": packed.pack(joined(rank_parts, np.int64), plan.rank_width),
    }
