"""The insertion order of a generation saved from a program's space (the `order.` sections,
store.generation), and how a new generation carries it over.

A checkpoint or an upgrade writes a new trie whose ranks differ from the old one's where paths
were added or removed since. The order is carried as follows: the copies the working set
removed leave it (the latest copies of a path first, as the order lists each copy), every
other entry keeps its place with its path's new rank, and the copies added since follow in
the order their paths were first changed, each with its path's variable names.
"""

from __future__ import annotations

import numpy as np

from metta_numba.trie import Trie


def narrow_order(values: np.ndarray) -> np.ndarray:
    """int32 when the values fit (the sections stay small), else int64."""
    if values.size == 0 or (int(values.min()) >= -(2**31) and int(values.max()) < 2**31):
        return values.astype(np.int32)
    return values.astype(np.int64)


def carried_order(
    order: tuple[np.ndarray, np.ndarray] | None,
    old: Trie,
    new: Trie,
    added: list[tuple[bytes, int, int]],
    removed: list[tuple[bytes, int]],
) -> dict[str, np.ndarray] | None:
    """The `order.` sections of the generation whose trie is `new`, made from `old`'s by
    adding `added` (path, copies, variable-names term id) and removing `removed` (path,
    copies). `order` is the old generation's (path ranks, name ids), or None (nothing to carry)."""
    if order is None:
        return None
    ranks = np.asarray(order[0], dtype=np.int64)
    names = np.asarray(order[1], dtype=np.int64)
    if len(ranks) != len(names):
        raise ValueError("the order sections disagree in length")
    if not added and not removed:
        return {"path": narrow_order(ranks), "names": narrow_order(names)}
    keep = np.ones(len(ranks), dtype=bool)
    gone = []
    for path, copies in removed:
        rank = old.rank(path)
        if rank is None:
            continue
        at = np.flatnonzero(ranks == rank)
        keep[at[max(len(at) - copies, 0) :]] = False
        if copies >= old.count(path):
            gone.append(rank)
    new_ranks = sorted(r for r in (new.rank(path) for path, _, _ in added if old.rank(path) is None) if r is not None)
    kept_old = np.delete(np.arange(len(old), dtype=np.int64), gone)
    slots = np.delete(np.arange(len(new), dtype=np.int64), new_ranks)
    if len(kept_old) != len(slots):
        raise ValueError("the new trie does not hold the old paths and the added ones")
    moved = np.full(len(old), -1, dtype=np.int64)
    moved[kept_old] = slots
    ranks = moved[ranks[keep]]
    names = names[keep]
    # Entries whose path went (more copies removed than the order listed) leave with it.
    names = names[ranks >= 0]
    ranks = ranks[ranks >= 0]
    tail_ranks = [new.rank(path) for path, copies, _ in added for _ in range(copies)]
    tail_names = [name for _, copies, name in added for _ in range(copies)]
    ranks = np.concatenate([ranks, np.asarray(tail_ranks, dtype=np.int64)])
    names = np.concatenate([names, np.asarray(tail_names, dtype=np.int64)])
    return {"path": narrow_order(ranks), "names": narrow_order(names)}
