"""Opening the current generation of a KB: read CURRENT, lock the generation for reading, open
its files, replay its log. Also the repairs a writer makes on the way, each with a warning: a
missing readers file (recreated) and a torn log tail (cut off into a side file, store.wal).

A reader repairs nothing; it reports what it cannot open with a precise error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

from metta_numba.store import layout
from metta_numba.store.errors import CorruptSnapshotError, SnapshotError, StoreWarning, WalCorruptError
from metta_numba.store.generation import Generation
from metta_numba.store.overlay import KBTerms
from metta_numba.store.wal import OP_ADD, WalRecord, WalWriter, scan_wal
from metta_numba.store.working import WorkingSet

ATTEMPTS = 1000
"""How often CURRENT may change under an opening reader (a writer checkpointing) before it
gives up."""


class Opened(NamedTuple):
    """A generation opened and locked, with its log replayed."""

    generation: Generation
    terms: KBTerms
    working: WorkingSet
    reader_lock: layout.ReaderLock
    wal: WalWriter | None  # None for a reader
    wal_end: int


def open_current(
    directory: Path, *, writer: bool, lock_readers: bool = True, verify: bool = False, outdated_ok: bool = False
) -> Opened:
    """Open the generation CURRENT names. `writer`: the caller holds kb/LOCK, may repair and
    gets a WalWriter. `lock_readers=False` opens without the readers file's lock (a file system
    without flock, for a KB no writer uses). `verify`: check every checksum before returning.
    `outdated_ok`: open a generation of an older store format (see Generation.open)."""
    for _ in range(ATTEMPTS):
        number = layout.read_current(directory)
        if lock_readers:
            reader_lock = layout.ReaderLock.acquire(directory, number)
        else:
            reader_lock = layout.ReaderLock.unlocked(directory, number)
        if reader_lock is None:
            if layout.read_current(directory) != number:
                continue  # deleted by the writer after a newer CURRENT; read it again
            # CURRENT still names it, so no writer is deleting it: the file is lost.
            reader_lock = _replace_readers_file(directory, number, writer)
        try:
            generation = Generation.open(
                directory, number, check_bytes=-1 if verify else None, outdated_ok=outdated_ok
            )
            if verify:
                generation.verify()
            terms = KBTerms(generation.terms)
            working = WorkingSet()
            wal_path = directory / layout.wal_name(number)
            scan = scan_wal(wal_path, number)
            replay(scan.records, generation, terms, working, wal_path)
            wal = WalWriter(wal_path, scan.end) if writer else None
        except BaseException:
            reader_lock.release()
            raise
        return Opened(generation, terms, working, reader_lock, wal, scan.end)
    raise SnapshotError("CURRENT kept changing while opening", directory)


def _replace_readers_file(directory: Path, number: int, writer: bool) -> layout.ReaderLock:
    """CURRENT names generation `number` but its readers file is missing. A writer (which
    alone deletes generations) recreates it when the generation's files are there."""
    act = directory / layout.act_name(number)
    readers = directory / layout.readers_name(number)
    if not act.exists():
        message = f"CURRENT names generation {number}, but its snapshot file {act.name} is missing"
        raise CorruptSnapshotError(message, directory)
    if not writer:
        raise CorruptSnapshotError(
            f"CURRENT names generation {number}, but its readers file is missing; a generation without "
            "one is being deleted, so a reader does not open it (opening the KB for writing once "
            "recreates the file)",
            readers,
        )
    layout.create_readers_file(directory, number)
    layout.fsync_dir(directory)
    warnings.warn(f"{readers}: was missing, recreated", StoreWarning, stacklevel=4)
    lock = layout.ReaderLock.acquire(directory, number)
    if lock is None:
        raise CorruptSnapshotError("the recreated readers file vanished", readers)
    return lock


def replay(records: list[WalRecord], generation: Generation, terms: KBTerms, working: WorkingSet, wal_path) -> None:
    """Apply log records to a working set and term overlay, checking them as it goes."""
    where = str(wal_path)
    for record in records:
        for term_id, text in record.terms:
            terms.register(term_id, text, where)
        if record.op == OP_ADD:
            working.apply(record.path, 1, record.names)
        else:
            if generation.count(record.path) + working.get(record.path) <= 0:
                raise WalCorruptError("log removes an atom that is not there", where)
            working.apply(record.path, -1)
