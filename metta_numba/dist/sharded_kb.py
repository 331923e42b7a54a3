"""A sharded KB opened in one process: ShardedKB reads all shards, ShardedSpace gives the
interpreter one space over them, and `commit_changes` saves a run's changes to every shard
all or nothing (the protocol is in dist.manifest).

A query reads only the shards `partition.shards_for` names: its own shard and the unrouted
shard 0 when its key is ground, all shards otherwise. Answers come shard by shard in ascending
shard order, each shard's in its own key order: the same multiset as the unsharded KB gives,
not always in the same order (an unsharded snapshot also answers in key order, not in the
order the atoms were added, so `run` never promised one across snapshots).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from metta_numba.atoms import Atom
from metta_numba.dist import manifest as mf
from metta_numba.dist.partition import shard_of, shards_for
from metta_numba.space import SnapshotSpace
from metta_numba.store import layout
from metta_numba.store.errors import SnapshotError


def _shard_error(err: SnapshotError, index: int, count: int, path: Path) -> SnapshotError:
    """The same error, its message saying which shard it is about."""
    message = err.args[0] if err.args else str(err)
    return type(err)(f"shard {index} of {count}: {message}", getattr(err, "path", None) or str(path))


class ShardedKB:
    """All shards of a sharded KB, opened read-only, behind PersistentKB's reading interface."""

    readonly = True

    def __init__(self, manifest: mf.Manifest, shards: list) -> None:
        self.manifest = manifest
        self.directory = manifest.directory
        self.shards = shards

    @classmethod
    def open(cls, path: str | Path) -> ShardedKB:
        """Open every shard read-only; a save left half switched is finished first. A missing or
        corrupt shard raises a SnapshotError naming the shard."""
        from metta_numba.store import PersistentKB

        manifest = mf.read_manifest(path)
        mf.roll_forward(manifest)
        shards: list = []
        try:
            for index in range(manifest.shards):
                shard_path = mf.check_shard(manifest, index)
                try:
                    shards.append(PersistentKB.open(shard_path, readonly=True))
                except SnapshotError as err:
                    raise _shard_error(err, index, manifest.shards, shard_path) from None
        except BaseException:
            for kb in shards:
                kb.close()
            raise
        return cls(manifest, shards)

    def close(self) -> None:
        for kb in self.shards:
            kb.close()

    def __enter__(self) -> ShardedKB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def routed(self, pattern: Atom) -> list:
        return [self.shards[i] for i in shards_for(pattern, len(self.shards))]

    # ---- PersistentKB's reading interface (what SnapshotSpace and `query` use) ---------------

    def query(self, pattern: Atom) -> list:
        return [pair for kb in self.routed(pattern) for pair in kb.query(pattern)]

    def bindings(self, pattern: Atom) -> list:
        return [b for kb in self.routed(pattern) for b in kb.bindings(pattern)]

    def bindings_table(self, pattern: Atom, value_hook=None, symbols=None, wanted=None):
        """The shards' tables, one after the other (their variables agree: the pattern's own,
        in order of first occurrence); `value_hook`, `symbols` and `wanted` as in
        PersistentKB.bindings_table."""
        variables, columns = None, None
        for kb in self.routed(pattern):
            shard_vars, shard_columns = kb.bindings_table(pattern, value_hook, symbols, wanted)
            if variables is None:
                variables, columns = list(shard_vars), [list(c) for c in shard_columns]
            elif list(shard_vars) != variables:
                return None  # cannot happen for one pattern; the caller then unifies itself
            else:
                for column, more in zip(columns, shard_columns, strict=True):
                    column.extend(more)
        return variables, columns

    def iter_bindings(self, pattern: Atom) -> Iterator[dict]:
        """The shards' streamed answers (PersistentKB.iter_bindings), one shard after the other."""
        for kb in self.routed(pattern):
            yield from kb.iter_bindings(pattern)

    def count_matches(self, pattern: Atom) -> int:
        return sum(kb.count_matches(pattern) for kb in self.routed(pattern))

    def query_many(self, patterns, filename: str = "<patterns>") -> ShardedAnswers:
        """PersistentKB.query_many on every shard (an atom lives on one shard, so a pattern's
        answers are those of all shards together), answers per pattern in input order."""
        return ShardedAnswers([kb.query_many(patterns, filename) for kb in self.shards])

    def candidates(self, pattern: Atom) -> list:
        return [pair for kb in self.routed(pattern) for pair in kb.candidates(pattern)]

    def estimate(self, pattern: Atom) -> int:
        return sum(kb.estimate(pattern) for kb in self.routed(pattern))

    def count(self, atom: Atom) -> int:
        return self.shards[shard_of(atom, len(self.shards))].count(atom)

    def atom_counts(self) -> Iterator[tuple[Atom, int]]:
        for kb in self.shards:
            yield from kb.atom_counts()

    def atoms(self) -> list[Atom]:
        return [atom for kb in self.shards for atom in kb.atoms()]

    def __len__(self) -> int:
        return sum(len(kb) for kb in self.shards)

    def info(self) -> dict:
        per_shard = [kb.info() for kb in self.shards]
        return {
            "path": str(self.directory),
            "format": f"{mf.FORMAT} {mf.VERSION}",
            "shards": self.manifest.shards,
            "atoms": sum(i["atoms"] for i in per_shard),
            "pending_changes": sum(i["pending_changes"] for i in per_shard),
            "bytes": sum(sum(i["files"].values()) for i in per_shard),
            "shard": [
                {
                    "index": n,
                    "directory": self.manifest.directories[n],
                    "generation": i["generation"],
                    "atoms": i["atoms"],
                    "bytes": sum(i["files"].values()),
                }
                for n, i in enumerate(per_shard)
            ],
        }

    def verify(self) -> None:
        for index, kb in enumerate(self.shards):
            try:
                kb.verify()
            except SnapshotError as err:
                raise _shard_error(err, index, len(self.shards), self.manifest.shard_path(index)) from None


class ShardedSpace(SnapshotSpace):
    """The interpreter's `&self` over a sharded KB. The shards stay read-only during a run:
    additions and removals are kept in this process (as SnapshotSpace does over a read-only
    KB), and `changes()` hands them to `commit_changes` when the run is saved."""

    def __init__(self, kb: ShardedKB, name: str | None = None) -> None:
        super().__init__(kb, name)
        self.removed_from_kb: list[Atom] = []

    def remove(self, atom: Atom) -> bool:
        hidden_before = sum(self._hidden.values())
        removed = super().remove(atom)
        if sum(self._hidden.values()) > hidden_before:
            self.removed_from_kb.append(atom)  # a copy held by a shard: the save removes it there
        return removed

    def changes(self) -> tuple[list[Atom], list[Atom]]:
        """(atoms added, atoms removed from the shards) since the KB was opened."""
        return list(self.local.atoms()), list(self.removed_from_kb)

    def __repr__(self) -> str:
        return f"ShardedSpace({self.kb.directory})"


def commit_changes(path: str | Path, added: Iterable[Atom], removed: Iterable[Atom]) -> dict[int, int]:
    """Apply a run's changes to the shards they belong to, all or nothing. Returns shard index ->
    new generation for the shards that changed.

    Each changed shard is opened as a writer (its lock keeps other writers out until the end),
    the changes go into its working set without touching its log, and its next generation is
    written as files only. Then the journal commits the switch, the CURRENT files are switched
    and the journal is removed (dist.manifest)."""
    from metta_numba.store import PersistentKB

    manifest = mf.read_manifest(path)
    mf.roll_forward(manifest)
    count = manifest.shards
    by_shard: dict[int, tuple[list[Atom], list[Atom]]] = {}
    for atom in added:
        by_shard.setdefault(shard_of(atom, count), ([], []))[0].append(atom)
    for atom in removed:
        by_shard.setdefault(shard_of(atom, count), ([], []))[1].append(atom)
    writers: dict[int, PersistentKB] = {}
    previous: dict[int, int] = {}
    try:
        targets: dict[int, int] = {}
        for index in sorted(by_shard):
            shard_path = mf.check_shard(manifest, index)
            try:
                kb = writers[index] = PersistentKB.open(shard_path, sync="never", checkpoint_every=None)
            except SnapshotError as err:
                raise _shard_error(err, index, count, shard_path) from None
            adds, removes = by_shard[index]
            previous[index] = kb.generation
            targets[index] = _write_next_generation(kb, adds, removes)
        if targets:
            mf.write_journal(manifest.directory, targets)  # the commit point
            mf.switch_shards(manifest, targets)
            mf.clear_journal(manifest.directory)
    finally:
        for kb in writers.values():
            kb.close()
    for index, number in previous.items():
        # Old generations go now unless a reader holds them (the shard's next writer retries).
        layout.try_delete_generation(manifest.shard_path(index), number)
    return targets


def _write_next_generation(kb, added: list[Atom], removed: list[Atom]) -> int:
    """Write `kb`'s next generation = what it holds + `added` - `removed`, as files only (its
    CURRENT and its log untouched, so the shard is unchanged until the switch). This reaches
    into PersistentKB's working set: the public add/remove would log each change, and a log
    replays on the next open, which would let a save that died before its commit point land
    in some shards."""
    from metta_numba.codec import CodecError, UnknownTerm, encode
    from metta_numba.store.checkpoint import next_generation
    from metta_numba.store.overlay import PendingTerms

    working, terms = kb._working, kb._terms
    for atom in added:
        pending = PendingTerms(terms)
        path, names = encode(atom, pending)
        pending.commit()
        working.apply(path, 1, tuple(names))
    for atom in removed:
        try:
            path, _ = encode(atom, PendingTerms(terms), intern=False)
        except (UnknownTerm, CodecError):
            continue
        if kb._count_key(path) > 0:
            working.apply(path, -1)
    number = kb.generation + 1
    next_generation(kb.directory, number, kb._generation, working, terms)
    return number


class ShardedAnswers(Sequence):
    """The ManyAnswers of every shard as one: a pattern's answers are the shards' together."""

    def __init__(self, parts: list) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return len(self._parts[0]) if self._parts else 0

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return [answer for part in self._parts for answer in part[index]]

    def counts(self):
        return sum(part.counts() for part in self._parts)

    def pattern(self, index: int) -> Atom:
        return self._parts[0].pattern(index)
