"""Arrays in files of a build's temporary folder, kept out of the resident set.

A build whose data outgrow its memory budget writes them to files and maps them. Pages of a
mapped file that the process has touched count in its resident set until they are unmapped,
so a pass over a mapping calls `drop_pages` now and then: the process lets go of the pages
(madvise DONTNEED). A shared file mapping keeps its data in the page cache, written or not,
so nothing is lost; a page read again is faulted back in from there.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np


def _mapping_of(array: np.ndarray) -> mmap.mmap | None:
    """The mmap under an array (np.memmap or a view of np.frombuffer over a mapping)."""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return base
        mapped = getattr(base, "_mmap", None)
        if isinstance(mapped, mmap.mmap):
            return mapped
        base = getattr(base, "base", None)
        if isinstance(base, memoryview):
            base = base.obj
    return None


def is_file_mapped(array: np.ndarray) -> bool:
    """The array is a view of a file mapping (so `drop_pages` lets go of its pages)."""
    return _mapping_of(array) is not None


def drop_pages(array: np.ndarray) -> None:
    """Let go of the resident pages of the file mapping under `array` (a no-op for an array
    in anonymous memory, and where madvise is missing)."""
    mapping = _mapping_of(array)
    if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        mapping.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):
        pass  # a closed mapping, or advice refused: only memory is at stake


PIECE = 1 << 20
"""Values a pass over mapped arrays reads between two lettings go of their pages."""


def in_pieces(values: np.ndarray, piece: int, *written: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(start, values[start:start + piece]) for each piece of `values`; after each, the pages
    of `values` and of the `written` arrays are let go of (`drop_pages`), so that a pass over
    mapped arrays holds one piece of them at a time."""
    for start in range(0, len(values), piece):
        yield start, values[start : start + piece]
        for array in (values, *written):
            drop_pages(array)


def zeroed_file_array(path: Path, dtype, n: int) -> np.ndarray:
    """A writable array of `n` zeros in a new file at `path`, mapped shared (writes reach the
    file; the zeros cost no disk until written)."""
    dtype = np.dtype(dtype)
    size = n * dtype.itemsize
    if size == 0:
        return np.zeros(0, dtype)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        mapping = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)
    finally:
        os.close(fd)
    return np.frombuffer(mapping, dtype=dtype)


RUN_WRITE_BYTES = 64 << 10
"""The largest write() of a run file: see `append_to_run_file`."""


def append_to_run_file(f: BinaryIO, array: np.ndarray) -> None:
    """Append the array's bytes to a run file, in writes of at most RUN_WRITE_BYTES.

    The page cache keeps a file in folios about as large as the writes that made them (ext4
    on Linux 6.x makes 2 MiB folios of an 8 MiB write), and a fault on a mapping maps the whole
    folio. A k-way merge reads each run's next bytes through one mapping: with runs written
    in big writes, each of k runs kept up to 2 MiB resident between two drop_pages, so that a
    smaller budget, with more runs, took more memory (the xlarge index's merge: 333 MiB of
    run file resident at a 256 MiB budget). Small writes keep it to k small folios."""
    raw = memoryview(np.ascontiguousarray(array)).cast("B")
    for start in range(0, len(raw), RUN_WRITE_BYTES):
        f.write(raw[start : start + RUN_WRITE_BYTES])


def append_in_pieces(f: BinaryIO, array: np.ndarray) -> None:
    """`append_to_run_file` of an array that may be mapped, read a piece at a time."""
    for _, part in in_pieces(array, PIECE):
        append_to_run_file(f, part)


def run_groups(n_runs: int, fan_in: int) -> Iterator[slice]:
    """For each group of `fan_in` runs in a row, the slice of a list of run starts (one more
    entry than runs: the end) that holds the group's starts and the end of its last run."""
    for first in range(0, n_runs, fan_in):
        yield slice(first, min(first + fan_in, n_runs) + 1)


def file_array(path: Path, dtype) -> np.ndarray:
    """The whole file at `path` as a read-only array, mapped for one pass in order."""
    dtype = np.dtype(dtype)
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype)
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapping, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        mapping.madvise(mmap.MADV_SEQUENTIAL)
    return np.frombuffer(mapping, dtype=dtype)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_BLOCK = 32 << 20


def _libc():
    import ctypes

    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def return_freed_blocks() -> None:
    """Make freed large arrays go back to the system at once, for the rest of the process.

    glibc's malloc maps each large block on its own, but raises that threshold (up to 32 MiB)
    whenever such a block is freed; later blocks below it come from the heap, and the heap
    keeps what is freed in it. A build frees arrays of tens of MiB between its phases, which
    then stayed resident under the next phase's peak. A fixed threshold ends that. It is the
    largest the dynamic one reaches (32 MiB): smaller blocks, such as a chunk's scratch
    arrays, are still reused from the heap (mapping each afresh made the index build some
    30% slower). A no-op where mallopt is missing."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim; else a no-op)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
