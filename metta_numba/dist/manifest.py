"""The on-disk form of a sharded KB: its manifest and its commit journal.

    KB/shards.json        the manifest: format, shard count, shard directories, partition function
    KB/shard-000/ ...     one ordinary KB directory per shard (its own CURRENT, log, LOCK)
    KB/COMMIT             the commit journal, present only while a save is being switched in

Each shard's CURRENT stays authoritative: a checkpoint of one shard never touches the manifest.
A save that changes several shards must land all or nothing, and one rename cannot switch several
CURRENT files, so the journal records the decision: the new generations are written first (files
only, CURRENT untouched), then COMMIT names each changed shard's new generation (written
atomically: that rename is the commit point), then each shard's CURRENT is switched, then COMMIT
is removed. Whoever opens the KB next and finds a COMMIT finishes the switch (rolls forward); a
save that died before COMMIT left only unreferenced generation files, which a shard's next
writer deletes. See docs/cluster.md.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from metta_numba.dist.partition import PARTITION_FUNCTION, UNROUTED_SHARD
from metta_numba.store import layout
from metta_numba.store.errors import CorruptSnapshotError, LockedError, SnapshotError, UnsupportedFormatError

MANIFEST = "shards.json"
JOURNAL = "COMMIT"
FORMAT = "metta-numba-shards"
VERSION = 1
KEY_DESCRIPTION = (
    "(= L R) and (: L T): the function symbol of L; other expressions: head and first argument; "
    "a lone symbol or value: itself; integral floats as integers"
)


@dataclass(frozen=True)
class Manifest:
    directory: Path
    shards: int
    directories: tuple[str, ...]

    def shard_path(self, index: int) -> Path:
        return self.directory / self.directories[index]

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "shards": self.shards,
            "directories": list(self.directories),
            "partition": {
                "function": PARTITION_FUNCTION,
                "unrouted_shard": UNROUTED_SHARD,
                "key": KEY_DESCRIPTION,
            },
        }


def shard_directory_name(index: int) -> str:
    return f"shard-{index:03d}"


def is_sharded(path: str | Path | None) -> bool:
    """True when `path` is a sharded KB (holds a manifest). A directory this user cannot look
    into is not called sharded: opening it as a plain KB then reports the permission error."""
    if path is None:
        return False
    try:
        return (Path(path) / MANIFEST).is_file()
    except OSError:
        return False


def new_manifest(directory: str | Path, shards: int) -> Manifest:
    return Manifest(Path(directory), shards, tuple(shard_directory_name(i) for i in range(shards)))


def write_manifest(manifest: Manifest) -> None:
    data = json.dumps(manifest.to_json(), indent=1).encode() + b"\n"
    layout.write_file_atomic(manifest.directory / MANIFEST, data)


def read_manifest(directory: str | Path) -> Manifest:
    """The manifest of a sharded KB, checked; errors name shards.json."""
    directory = Path(directory)
    path = directory / MANIFEST
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SnapshotError("not a sharded KB (no shards.json)", directory) from None
    except (OSError, ValueError) as err:
        raise CorruptSnapshotError(f"shards.json is unreadable: {err}", path) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CorruptSnapshotError("shards.json is not a metta-numba shard manifest", path)
    if not isinstance(raw.get("version"), int) or raw["version"] > VERSION:
        raise UnsupportedFormatError(f"shard manifest version {raw.get('version')!r} is not supported", path)
    function = (raw.get("partition") or {}).get("function")
    if function != PARTITION_FUNCTION:
        raise UnsupportedFormatError(f"partition function {function!r} is not supported", path)
    shards, dirs = raw.get("shards"), raw.get("directories")
    if (
        not isinstance(shards, int)
        or shards < 1
        or not isinstance(dirs, list)
        or len(dirs) != shards
        or not all(isinstance(d, str) and d and "/" not in d and d not in (".", "..") for d in dirs)
    ):
        raise CorruptSnapshotError("shards.json: shard count and directories disagree", path)
    return Manifest(directory, shards, tuple(dirs))


def check_shard(manifest: Manifest, index: int) -> Path:
    """The shard's directory, or an error naming the shard when it is missing."""
    path = manifest.shard_path(index)
    if not (path / layout.CURRENT).is_file():
        what = "is missing" if not path.exists() else "is not a KB (no CURRENT file)"
        raise SnapshotError(f"shard {index} of {manifest.shards} {what}", path)
    return path


# ---- the commit journal -----------------------------------------------------------------------


def write_journal(directory: Path, targets: dict[int, int]) -> None:
    """The commit point of a save: shard index -> the generation it switches to."""
    body = json.dumps({"switch": {str(k): v for k, v in sorted(targets.items())}}).encode() + b"\n"
    layout.write_file_atomic(directory / JOURNAL, body)


def read_journal(directory: Path) -> dict[int, int] | None:
    path = directory / JOURNAL
    try:
        raw = json.loads(path.read_bytes())
        return {int(k): int(v) for k, v in raw["switch"].items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CorruptSnapshotError(f"the commit journal is unreadable: {err}", path) from None


def clear_journal(directory: Path) -> None:
    (directory / JOURNAL).unlink(missing_ok=True)
    layout.fsync_dir(directory)


def switch_shards(manifest: Manifest, targets: dict[int, int]) -> None:
    """Point each listed shard's CURRENT at its target generation (idempotent)."""
    for index, number in sorted(targets.items()):
        path = manifest.shard_path(index)
        if layout.read_current(path) != number:
            if not (path / layout.act_name(number)).exists():
                raise CorruptSnapshotError(
                    f"the commit journal names generation {number} of shard {index}, which is missing", path
                )
            layout.write_current(path, number)


def roll_forward(manifest: Manifest, wait_seconds: float = 30.0) -> bool:
    """Finish a save whose journal is still there. The shards' writer locks are taken first, so a
    save still running in another process is waited for, not raced. True when one was finished."""
    deadline = time.monotonic() + wait_seconds
    while True:
        targets = read_journal(manifest.directory)
        if targets is None:
            return False
        locks = []
        try:
            for index in sorted(targets):
                locks.append(layout.WriterLock(manifest.shard_path(index)))
        except LockedError:
            for lock in locks:
                lock.release()
            if time.monotonic() > deadline:
                raise LockedError("a save into this sharded KB is still being committed", manifest.directory) from None
            time.sleep(0.05)
            continue
        try:
            if read_journal(manifest.directory) is None:
                return False  # the saving process finished meanwhile
            switch_shards(manifest, targets)
            clear_journal(manifest.directory)
            return True
        finally:
            for lock in locks:
                lock.release()
