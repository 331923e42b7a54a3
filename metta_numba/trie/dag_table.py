"""The table in which the DAG builder (trie.dag_build) finds a subtrie's earlier twin.

One uint64 per slot, 0 when empty: the low half of the class's hash in the high 32 bits, and
the class + 1 in the low 31 bits, with bit 31 set once the class has been found again since
the last sweep. With the hash in the slot a probe compares hashes without reading any array
by class, so the table is all the builder holds in memory for each class: 16 to 32 bytes
(a slot kept at most half full; the old and the new array for a moment while it doubles).

The table doubles as classes come, up to `max_slots`. A build with a memory budget sets that
bound (store.chunked_build). Once the table is full, a sweep keeps a quarter of its slots:
the classes found again since the last sweep first, then the newest ones, since a sorted
stream meets its recent shapes again soonest; it forgets the rest. A forgotten class is not
found again, so a later subtrie equal to it becomes a class of its own: the DAG stays
correct, with every path and answer the same, only less shared. Without a bound the table
holds every class, and the DAG is the fully shared one of `merkle.merkleize_structure`.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit
from metta_numba.trie.layout import u64_arr, u64_ro

Int = types.int64
FOUND_AGAIN = np.uint64(1 << 31)
CLASS_BITS = np.uint64((1 << 31) - 1)
HASH_SHIFT = np.uint64(32)
LOW_HALF = np.uint64(0xFFFFFFFF)
UNBOUNDED = 1 << 62
"""`max_slots` of a table that may grow with the classes."""
FIRST_SLOTS = 1 << 10
MIN_SLOTS = 8
"""The smallest bound: a sweep keeps a quarter of the slots, at least two classes."""


def new_table(max_slots: int) -> np.ndarray:
    """An empty table of the first size (at most `max_slots`, a power of two >= MIN_SLOTS)."""
    if max_slots < MIN_SLOTS or max_slots & (max_slots - 1):
        raise ValueError(f"a class table's bound must be a power of two of at least {MIN_SLOTS} slots")
    return np.zeros(min(FIRST_SLOTS, max_slots), np.uint64)


def slots_within(n_bytes: int) -> int:
    """The largest table bound (a power of two, at least MIN_SLOTS) whose slots and the copies
    a sweep or a doubling makes take at most `n_bytes` (1.5 times the slots' bytes)."""
    slots = MIN_SLOTS
    while 2 * slots * 8 * 3 // 2 <= n_bytes:
        slots *= 2
    return slots


@njit(Int(types.uint64), cache=True, nogil=True, inline="always")
def entry_class(entry):
    """The class of a non-empty slot."""
    return np.int64(entry & CLASS_BITS) - 1


@njit(types.uint64(types.uint64, Int), cache=True, nogil=True, inline="always")
def new_entry(hash_value, found):
    """The slot of class `found`, whose hash is `hash_value`."""
    return (hash_value & LOW_HALF) << HASH_SHIFT | np.uint64(found + 1)


@njit(types.boolean(types.uint64, types.uint64), cache=True, nogil=True, inline="always")
def same_hash(entry, hash_value):
    return (entry >> HASH_SHIFT) == (hash_value & LOW_HALF)


@njit(types.void(u64_arr, types.uint64), cache=True, nogil=True)
def _insert(table, entry):
    mask = np.uint64(table.shape[0] - 1)
    slot = (entry >> HASH_SHIFT) & mask
    while table[slot] != 0:
        slot = (slot + np.uint64(1)) & mask
    table[slot] = entry


@njit(u64_arr(u64_ro, Int), cache=True, nogil=True)
def grown(table, slots):
    """The table's classes in a new table of `slots` slots."""
    bigger = np.zeros(slots, np.uint64)
    for entry in table:
        if entry != 0:
            _insert(bigger, entry)
    return bigger


@njit(Int(u64_arr, Int), cache=True, nogil=True)
def sweep(table, keep):
    """Keep at most `keep` classes of a table, in place: those found again since the last sweep
    (the newest of them if they are more), then the newest others; clear their found-again
    marks. Returns the number kept."""
    n_found = 0
    n_other = 0
    for entry in table:
        if entry != 0:
            if entry & FOUND_AGAIN:
                n_found += 1
            else:
                n_other += 1
    # The classes are numbered in the order they were made: the newest `quota` of a group are
    # those at or above the quota-th largest class of it.
    from_found = n_found >= keep
    group = np.empty(n_found if from_found else n_other, np.int32)
    at = 0
    for entry in table:
        if entry != 0 and bool(entry & FOUND_AGAIN) == from_found:
            group[at] = entry_class(entry)
            at += 1
    quota = keep if from_found else keep - n_found  # at least 1: n_found < keep otherwise
    lowest = 0
    if quota < group.shape[0]:
        group.sort()
        lowest = group[group.shape[0] - quota]
    kept = np.empty(keep, np.uint64)
    n_kept = 0
    for entry in table:
        if entry != 0:
            found = bool(entry & FOUND_AGAIN)
            if (found and not from_found) or (found == from_found and entry_class(entry) >= lowest):
                kept[n_kept] = entry & ~FOUND_AGAIN
                n_kept += 1
    table[:] = 0
    for i in range(n_kept):
        _insert(table, kept[i])
    return n_kept
