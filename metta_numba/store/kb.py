"""PersistentKB: a KB directory opened for querying and changing.

A PersistentKB is the generation it opened (read-only, memmapped) plus the working set (the
changes since, in memory) plus the log those changes were written to. Every add and remove is
appended to the log before the call returns; `sync` chooses when the log is fsynced:

    "always"  before each add or remove returns (inside `with kb.batch():`, once at its end)
    "batch"   at the end of each `with kb.batch():` block, and on sync(), checkpoint(), close()
    "never"   never (the OS writes the log back in its own time); checkpoints stay durable

`checkpoint()` merges the working set into the trie and writes the next generation, then
switches CURRENT and the log in one rename. It also runs by itself once `checkpoint_every`
changes have piled up.

One process may write (it holds kb/LOCK); any number may read, with `readonly=True`. A reader
keeps the generation it opened, and the log records it has read, until `refresh()`. A
generation's files are deleted once it is not current and no reader holds it.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from metta_numba.atoms import Atom, Variable
from metta_numba.codec import CodecError, HandleTable, TermStore, UnknownTerm, decode, encode, tags
from metta_numba.snapshot_probes import probe_patterns
from metta_numba.store import layout
from metta_numba.store.answer_stream import AnswerStreams
from metta_numba.store.answers import AnswerTables
from metta_numba.store.errors import (
    CorruptSnapshotError,
    LockUnsupportedError,
    SnapshotError,
    StoreWarning,
    os_errors_as_access_errors,
)
from metta_numba.store.generation import Generation
from metta_numba.store.join import JoinQueries
from metta_numba.store.many import ManyQueries
from metta_numba.store.opening import open_current, replay
from metta_numba.store.overlay import KBTerms, PendingTerms, QueryTerms
from metta_numba.store.wal import OP_ADD, OP_REMOVE, WalRecord, WalWriter, encode_record, scan_wal, torn_tail_copies
from metta_numba.store.working import WorkingSet
from metta_numba.trie.argindex import IndexOptions
from metta_numba.unify import match_counted

_FLOAT_TAG = bytes([tags.TAG_FLOAT])
"""A ground pattern's path without this byte holds no float (the byte may also be part of
other payloads: then the path is decoded and compared, which is only slower)."""

SYNC_MODES = ("always", "batch", "never")
DEFAULT_CHECKPOINT_EVERY = 100_000

Bindings = dict[Variable, Atom]


class PersistentKB(AnswerTables, AnswerStreams, ManyQueries, JoinQueries):
    """A KB on disk. Use `PersistentKB.create(path)` or `PersistentKB.open(path)`."""

    def __init__(self, directory: Path, *, readonly: bool, sync: str, checkpoint_every: int | None) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
        self.directory = Path(directory)
        self.readonly = readonly
        self.sync_mode = sync
        self.checkpoint_every = checkpoint_every
        self._lock = threading.RLock()
        self._writer_lock: layout.WriterLock | None = None
        self._reader_lock: layout.ReaderLock | None = None
        self._generation: Generation | None = None
        self._terms: KBTerms | None = None
        self._working = WorkingSet()
        self._wal: WalWriter | None = None
        self._wal_end = 0
        self._batch_depth = 0
        self._in_transaction = False
        self._verify_on_open = False
        self._outdated_ok = False
        self._prefetch = False
        self.prefetch = None
        self._lock_readers = True
        self._decoded: dict[bytes, Atom] = {}
        self._reset_answer_caches()
        self._closed = False

    # ---- opening and closing ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        exist_ok: bool = False,
        sync: str = "always",
        checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
        argindex: bool = True,
        index_options: IndexOptions | None = None,
    ) -> PersistentKB:
        """Create an empty KB at `path` (a new directory) and open it for writing. Its
        generations carry an argument index (trie.argindex) unless `argindex=False`."""
        directory = Path(path)
        if (directory / layout.CURRENT).exists():
            if not exist_ok:
                raise SnapshotError("a KB already exists here", directory)
            return cls.open(directory, sync=sync, checkpoint_every=checkpoint_every)
        with os_errors_as_access_errors(directory):
            layout.ensure_kb_directory(directory)
            writer_lock = layout.WriterLock(directory)
            try:
                if not (directory / layout.CURRENT).exists():
                    options = (index_options or IndexOptions()).to_json() if argindex else None
                    from metta_numba.store.checkpoint import empty_generation

                    empty_generation(directory, 1, options)
                    layout.write_current(directory, 1)
            finally:
                writer_lock.release()
        return cls.open(directory, sync=sync, checkpoint_every=checkpoint_every)

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        sync: str = "always",
        checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
        verify: bool = False,
        outdated_ok: bool = False,
        prefetch: bool = False,
    ) -> PersistentKB:
        """Open an existing KB. A writer (the default) takes the KB's lock, or raises LockedError;
        `readonly=True` opens a reader, which never blocks nor is blocked by the writer.
        `verify=True` runs `verify()`'s checks on every generation taken in, before answering
        (O(KB size); see Generation.open for the default checks). Where the file system
        refuses flock, a reader opens without its lock and warns (StoreWarning), a writer
        raises LockUnsupportedError. A generation of an older store format raises
        OutdatedFormatError, unless `outdated_ok` (then it answers without its argument index,
        and `upgrade()` converts it). `prefetch=True` asks the kernel, from a background thread,
        to read every section a query touches into the page cache (store.prewarm); the open
        does not wait, and `self.prefetch` (a store.prewarm.Prefetch) tells when it is done."""
        kb = cls(Path(path), readonly=readonly, sync=sync, checkpoint_every=checkpoint_every)
        kb._verify_on_open = verify
        kb._outdated_ok = outdated_ok
        kb._prefetch = prefetch
        with os_errors_as_access_errors(kb.directory):
            layout.read_current(kb.directory)  # a clear error before any file is created
            try:
                if not readonly:
                    kb._writer_lock = layout.WriterLock(kb.directory)
                try:
                    kb._load_current()
                except LockUnsupportedError as err:
                    if not readonly:
                        raise
                    warnings.warn(
                        f"{err}: opened read-only without the reader lock, which is safe only while "
                        "no writer changes this KB",
                        StoreWarning,
                        stacklevel=2,
                    )
                    kb._lock_readers = False
                    kb._load_current()
                if not readonly:
                    kb._collect_garbage()
            except BaseException:
                kb._release()
                raise
        return kb

    def _load_current(self) -> None:
        """Open the current generation under a reader lock, then replay its log."""
        opened = open_current(
            self.directory,
            writer=not self.readonly,
            lock_readers=self._lock_readers,
            verify=self._verify_on_open,
            outdated_ok=self._outdated_ok,
        )
        self._install(opened.generation, opened.terms, opened.working, opened.reader_lock)
        self._wal, self._wal_end = opened.wal, opened.wal_end

    def _install(self, generation: Generation, terms: KBTerms, working: WorkingSet, lock: layout.ReaderLock) -> None:
        old_generation, old_lock = self._generation, self._reader_lock
        self._generation, self._terms, self._working, self._reader_lock = generation, terms, working, lock
        self._decoded = {}
        self._reset_answer_caches()
        if self._prefetch:
            from metta_numba.store.prewarm import prefetch_generation

            self.prefetch = prefetch_generation(generation)
        if old_generation is not None:
            old_generation.close()
        if old_lock is not None:
            old_lock.release()
            self._delete_if_unused(old_lock.generation)

    def _delete_if_unused(self, number: int) -> None:
        try:
            if layout.read_current(self.directory) != number:
                layout.try_delete_generation(self.directory, number)
        except (OSError, SnapshotError):
            pass  # a reader without write access, or a KB being replaced: the writer cleans up

    def _collect_garbage(self) -> None:
        current = self._generation.number
        for number in layout.generations_on_disk(self.directory):
            if number != current:
                layout.try_delete_generation(self.directory, number)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / (layout.CURRENT + ".tmp")).unlink()

    def close(self) -> None:
        """Sync the log (unless sync="never"), release the locks and the generation."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._wal is not None and self.sync_mode != "never":
                    self._wal.sync()
            finally:
                self._release()

    def _release(self) -> None:
        self._closed = True
        if self._wal is not None:
            self._wal.close()
            self._wal = None
        if self._generation is not None:
            self._generation.close()
            self._generation = None
        if self._reader_lock is not None:
            self._reader_lock.release()
            self._reader_lock = None
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    def __enter__(self) -> PersistentKB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self, writing: bool = False) -> None:
        if self._closed:
            raise SnapshotError("the KB is closed", self.directory)
        if writing and self.readonly:
            raise SnapshotError("the KB is open read-only", self.directory)

    # ---- changes ---------------------------------------------------------------------------

    def add(self, atom: Atom) -> None:
        """Add one copy of `atom`. It is in the log when this returns."""
        with self._lock:
            self._check_open(writing=True)
            pending = PendingTerms(self._terms)
            path, names = encode(atom, pending)
            self._add_encoded(path, tuple(names), pending)

    def add_path(self, path: bytes, names: tuple[str, ...] = ()) -> None:
        """Add one copy of an encoded path that refers to no term id (a MORK path, say)."""
        with self._lock:
            self._check_open(writing=True)
            try:
                # An empty term store: a path that refers to any term id fails to decode.
                decode(path, TermStore(), list(names))
            except CodecError as err:
                raise ValueError(f"not a path without term ids: {err}") from None
            self._add_encoded(bytes(path), tuple(names), PendingTerms(self._terms))

    def _add_encoded(self, path: bytes, names: tuple[str, ...], pending: PendingTerms) -> None:
        self._log(WalRecord(OP_ADD, path, names, pending.record_terms()))
        pending.commit()
        self._working.apply(path, 1, names)
        self._after_change()

    def remove(self, atom: Atom) -> bool:
        """Remove one copy of `atom` (variable names aside). False when there was none."""
        with self._lock:
            self._check_open(writing=True)
            pending = PendingTerms(self._terms)
            try:
                path, _ = encode(atom, pending, intern=False)
            except (UnknownTerm, CodecError):
                return False
            if self._count_key(path) <= 0:
                return False
            self._log(WalRecord(OP_REMOVE, path, (), pending.record_terms()))
            self._working.apply(path, -1)
            self._after_change()
            return True

    def _log(self, record: WalRecord) -> None:
        if self._in_transaction:
            return  # the transaction's checkpoint makes it durable, with the rest or not at all
        with os_errors_as_access_errors(self.directory):
            self._wal.append(encode_record(record))
            self._wal_end = self._wal.position
            if self.sync_mode == "always" and self._batch_depth == 0:
                self._wal.sync()

    def _after_change(self) -> None:
        if (
            self.checkpoint_every
            and self._working.changes >= self.checkpoint_every
            and self._batch_depth == 0
            and not self._in_transaction
        ):
            self.checkpoint()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PersistentKB]:
        """The changes made in the block become durable together when it ends, or none do:
        they stay in memory (no log record, no automatic checkpoint), and the block's end
        commits them with a checkpoint (one rename of CURRENT). A crash before that leaves
        the KB as it was; an exception in the block drops them. (In `kb.batch()` each change
        is logged, so a crash keeps a prefix of them.)"""
        with self._lock:
            self._check_open(writing=True)
            if self._in_transaction:
                raise SnapshotError("a transaction is already open on this KB", self.directory)
            self._in_transaction = True
            committed = False
            try:
                yield self
                self._in_transaction = False
                self.checkpoint()
                committed = True
            finally:
                self._in_transaction = False
                if not committed and not self._closed:
                    self._drop_changes()

    def _drop_changes(self) -> None:
        """Forget the changes not in the log: reopen the generation and replay its log."""
        with os_errors_as_access_errors(self.directory):
            if self._wal is not None:
                self._wal.close()
                self._wal = None
            self._load_current()

    @contextlib.contextmanager
    def batch(self) -> Iterator[PersistentKB]:
        """Group changes: the log is fsynced once when the block ends (modes other than never)."""
        with self._lock:
            self._check_open(writing=True)
            self._batch_depth += 1
            try:
                yield self
            finally:
                self._batch_depth -= 1
                if self._batch_depth == 0 and not self._closed:
                    if self.sync_mode != "never":
                        self._wal.sync()
                    self._after_change()

    def sync(self) -> None:
        """fsync the log now."""
        with self._lock:
            self._check_open(writing=True)
            self._wal.sync()

    # ---- reading ---------------------------------------------------------------------------

    def _count_key(self, path: bytes) -> int:
        return self._generation.count(path) + self._working.get(path)

    def count(self, atom: Atom) -> int:
        """How many copies of `atom` (up to variable names) the KB holds."""
        with self._lock:
            self._check_open()
            try:
                path, _ = encode(atom, QueryTerms(self._terms), intern=False)
            except CodecError:
                return 0
            return max(0, self._count_key(path))

    def __len__(self) -> int:
        with self._lock:
            self._check_open()
            return self._generation.total_count() + self._working.net

    def _decode(self, path: bytes, names: tuple[str, ...] | list[str]) -> Atom:
        atom = self._decoded.get(path)
        if atom is None:
            try:
                atom = decode(path, self._terms, list(names))
            except CodecError as err:
                raise CorruptSnapshotError(f"stored path does not decode: {err}", self.directory) from None
            if len(self._decoded) > 100_000:
                self._decoded.clear()
            self._decoded[path] = atom
        return atom

    def _snapshot_names(self, names_id: int) -> list[str]:
        if names_id < 0:
            return []
        try:
            return self._terms.text(names_id).split(" ")
        except KeyError:
            raise CorruptSnapshotError(f"variable-name term {names_id} is missing", self.directory) from None

    def query(self, pattern: Atom) -> list[tuple[Atom, Bindings]]:
        """Every stored atom that unifies with `pattern`, once per copy, with the values of the
        pattern's variables. Stored variables are renamed apart before unifying."""
        with self._lock:
            self._check_open()
            probes = probe_patterns(pattern)
            if probes[0] is not pattern:
                return match_counted(pattern, self._probed(probes))
            try:
                # The pattern holds no grounded object (probe_patterns would widen it): no handles.
                key, names = encode(pattern, QueryTerms(self._terms), intern=False)
            except CodecError:
                return self._query_scan(pattern)
            if not self._working.delta:
                found = self._ground_query(pattern, key) if not names else None
                if found is not None:
                    return found
                matched = self._generation.matched_rows(key)
                if matched is not None:  # few candidates, found and sifted in one kernel call
                    rows, data, _ = matched
                    return match_counted(pattern, self._row_atoms(rows, data))
            return match_counted(pattern, self._candidates(key))

    def _ground_query(self, pattern: Atom, key: bytes) -> list[tuple[Atom, Bindings]] | None:
        """A pattern without variables whose only snapshot candidate is its own path: that
        atom, once per copy, with no bindings. None when unification has to decide."""
        copies = self._generation.sole_match(key)
        if copies is None:
            return None
        if copies == 0:
            return []
        if _FLOAT_TAG not in key:
            return [(pattern, {})] * copies  # the codec gives back exactly what it encoded
        atom = self._decode(key, ())
        if atom != pattern:
            return None  # equal bytes, unequal values (a NaN): unification says no
        return [(atom, {})] * copies

    def candidates(self, pattern: Atom) -> list[tuple[Atom, int]]:
        """Stored atoms that may unify with `pattern`, with their number of copies: what the
        trie kernels and the working set's index find, before exact unification (which is the
        caller's, e.g. the interpreter's space). Variable names are the stored ones."""
        with self._lock:
            self._check_open()
            probes = probe_patterns(pattern)
            if probes[0] is not pattern:
                return list(self._probed(probes))
            try:
                key, _ = encode(pattern, QueryTerms(self._terms), intern=False, handles=HandleTable())
            except CodecError:
                return list(self._all_atoms())
            return list(self._candidates(key))

    def estimate(self, pattern: Atom) -> int:
        """An upper bound of the distinct atoms `pattern` may unify with, from the snapshot's
        counts (trie prefix ranges, argument index) and the working set's index: what a
        conjunction's planner compares, at the cost of a lookup without decoding."""
        with self._lock:
            self._check_open()
            try:
                key, _ = encode(pattern, QueryTerms(self._terms), intern=False, handles=HandleTable())
            except CodecError:
                return len(self)
            return self._generation.estimate(key) + sum(1 for _ in self._working.candidates(key))

    def _candidates(self, key: bytes, seen: tuple[set, set] | None = None) -> Iterator[tuple[Atom, int]]:
        """Candidates of one encoded pattern; with `seen`, those already given (by the other
        probes of one pattern) are skipped."""
        working = self._working
        for path, count, names_id in self._generation.matches(key):
            if seen is not None:
                if path in seen[0]:
                    continue
                seen[0].add(path)
            copies = count + min(0, working.get(path))
            if copies > 0:
                yield self._decode(path, self._snapshot_names(names_id)), copies
        for path in working.candidates(key):
            if seen is not None:
                if path in seen[1]:
                    continue
                seen[1].add(path)
            yield self._decode(path, working.names.get(path, ())), working.delta[path]

    def _probed(self, probes: list[Atom]) -> Iterator[tuple[Atom, int]]:
        """Candidates of a pattern that needs probes (a whole number in both of its encodings,
        a grounded object widened to a variable: see snapshot_probes), each stored path once."""
        keys = []
        for probe in probes:
            try:
                keys.append(encode(probe, QueryTerms(self._terms), intern=False, handles=HandleTable())[0])
            except CodecError:
                yield from self._all_atoms()
                return
        seen: tuple[set, set] = (set(), set())
        for key in keys:
            yield from self._candidates(key, seen)

    def _query_scan(self, pattern: Atom) -> list[tuple[Atom, Bindings]]:
        # A pattern the codec cannot encode (an integer beyond 64 bits) is checked against all.
        return match_counted(pattern, self._all_atoms())

    def _all_atoms(self) -> Iterator[tuple[Atom, int]]:
        working = self._working
        for path, count, names_id in self._generation.items():
            copies = count + min(0, working.get(path))
            if copies > 0:
                yield self._decode(path, self._snapshot_names(names_id)), copies
        for path, delta in working.added():
            yield self._decode(path, working.names.get(path, ())), delta

    def atoms(self) -> list[Atom]:
        """Every atom of the KB, each as many times as it is held."""
        with self._lock:
            self._check_open()
            out = []
            for atom, copies in self._all_atoms():
                out.extend([atom] * copies)
            return out

    def iter_paths(self) -> Iterator[bytes]:
        """Every distinct path of the KB (for export), in no particular order."""
        with self._lock:
            self._check_open()
            working = self._working
            for path, count, _ in self._generation.items():
                if count + min(0, working.get(path)) > 0:
                    yield path
            for path, _ in working.added():
                if self._generation.count(path) == 0:
                    yield path

    def atom_counts(self) -> Iterator[tuple[Atom, int]]:
        """(atom, number of copies) for every distinct atom of the KB."""
        with self._lock:
            self._check_open()
            yield from self._all_atoms()

    # ---- generations -----------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation.number

    @property
    def pending_changes(self) -> int:
        """Changes in the working set since the generation (what a checkpoint would fold in)."""
        return self._working.changes

    def checkpoint(self) -> int:
        """Fold the working set into a new generation and make it current. Returns its number."""
        with self._lock:
            self._check_open(writing=True)
            if self._working.changes == 0 and not self._terms.added:
                return self._generation.number
            return self._write_next_generation()

    def upgrade(self) -> int:
        """Write the KB's content, log included, as a new generation in the current store
        format and make it current (as a checkpoint does). Returns its number; a KB already in
        the current format is left as it is."""
        with self._lock:
            self._check_open(writing=True)
            if not self._generation.outdated:
                return self._generation.number
            return self._write_next_generation()

    def _write_next_generation(self) -> int:
        with self._lock:
            # Imported here: merging tries is the only user of the merge kernels, and a process
            # that only queries should not pay for loading them at start-up.
            from metta_numba.store.checkpoint import next_generation

            with os_errors_as_access_errors(self.directory):
                if self.sync_mode != "never":
                    self._wal.sync()
                number = self._generation.number + 1
                next_generation(self.directory, number, self._generation, self._working, self._terms)
                layout.write_current(self.directory, number)
                self._wal.close()
                self._wal = None
                self._load_current()
                self._collect_garbage()
            return number

    def refresh(self) -> bool:
        """A reader: take in the log records and generations written since. True if any."""
        with self._lock:
            self._check_open()
            if not self.readonly:
                return False
            number = layout.read_current(self.directory)
            if number == self._generation.number:
                wal_path = self.directory / layout.wal_name(number)
                scan = scan_wal(wal_path, number, start=self._wal_end)
                replay(scan.records, self._generation, self._terms, self._working, wal_path)
                self._wal_end = scan.end
                return bool(scan.records)
            self._load_current()
            return True

    def verify(self) -> dict:
        """Check every checksum of the generation's files and the trie's structure, and that the
        log replays. Raises CorruptSnapshotError (or a subclass) on the first problem.

        Returns what is not damage but a person should know: `torn_tail`, (offset, bytes) of a
        log whose last record was cut short (None when it ends cleanly), and `torn_copies`, the
        side files holding tails a writer cut off earlier."""
        with self._lock:
            self._check_open()
            self._generation.verify()
            number = self._generation.number
            wal_path = self.directory / layout.wal_name(number)
            scan = scan_wal(wal_path, number)
            with os_errors_as_access_errors(self.directory):
                size = wal_path.stat().st_size
                copies = torn_tail_copies(self.directory)
            return {"torn_tail": (scan.end, size - scan.end) if scan.torn else None, "torn_copies": copies}

    def info(self) -> dict:
        with self._lock:
            self._check_open()
            generation = self._generation
            return {
                "path": str(self.directory),
                "generation": generation.number,
                "atoms": len(self),
                "snapshot_atoms": generation.total_count(),
                "snapshot_paths": len(generation.trie),
                "terms": len(self._terms),
                "pending_changes": self._working.changes,
                "files": generation.file_sizes(),
                "metadata": generation.metadata(),
            }

    def snapshot_generation(self) -> Generation:
        """The opened generation (for tools: bench, info); valid until refresh or checkpoint."""
        return self._generation

