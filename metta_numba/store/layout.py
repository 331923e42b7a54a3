"""The KB directory: file names, durable writes, CURRENT, and the locks.

    kb/CURRENT            names the live generation (one line, with its own checksum)
    kb/gen-000007.act     trie arrays (store.actfile)
    kb/gen-000007.h5      term store and metadata (store.termfile)
    kb/wal-000007.log     delta log since generation 7 (store.wal)
    kb/gen-000007.readers readers of generation 7 hold a shared flock on it
    kb/LOCK               the writer holds an exclusive flock on it

The log is named per generation, so that a checkpoint switches generation and log in one
atomic rename of CURRENT: a crash before the rename leaves the old pair, after it the new one.

Locks are BSD `flock` locks, not POSIX `fcntl` record locks: a POSIX lock is dropped as soon
as the process closes *any* descriptor of the file, which np.memmap and h5py both do. A file
system that refuses flock (errno in UNSUPPORTED_LOCK_ERRNOS: NFS without a lock manager, Lustre
mounted `noflock`, some FUSE and GPFS setups) raises LockUnsupportedError.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from pathlib import Path

from metta_numba.store.crc import crc32c_small
from metta_numba.store.errors import (
    CorruptSnapshotError,
    LockedError,
    LockUnsupportedError,
    SnapshotError,
    UnsupportedFormatError,
)

UNSUPPORTED_LOCK_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})

CURRENT = "CURRENT"
LOCK = "LOCK"
CURRENT_MAGIC = "MNKB"
CURRENT_VERSION = 1
_CURRENT_RE = re.compile(r"MNKB (\d+) (\d{6,12}) ([0-9a-f]{8})\n\Z")
_GEN_FILE_RE = re.compile(r"(?:gen|wal)-(\d{6,12})\.(?:act|h5|log|readers)(?:\.tmp)?\Z")


def act_name(generation: int) -> str:
    return f"gen-{generation:06d}.act"


def h5_name(generation: int) -> str:
    return f"gen-{generation:06d}.h5"


def wal_name(generation: int) -> str:
    return f"wal-{generation:06d}.log"


def readers_name(generation: int) -> str:
    return f"gen-{generation:06d}.readers"


def generation_files(generation: int) -> list[str]:
    """Every file of a generation; the readers file last, as deletion relies on that order."""
    return [act_name(generation), h5_name(generation), wal_name(generation), readers_name(generation)]


def generations_on_disk(directory: Path) -> set[int]:
    """Generation numbers that have any file (or temp file) in the directory."""
    found = set()
    for name in os.listdir(directory):
        m = _GEN_FILE_RE.match(name)
        if m:
            found.add(int(m.group(1)))
    return found


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write a small file so that readers see either the old content or the new, never a mix,
    and the new content survives a crash once this returns (temp, fsync, rename, fsync dir)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_file(tmp: Path, final: Path) -> None:
    """Make a finished temp file durable under its final name."""
    fsync_file(tmp)
    os.replace(tmp, final)


# ---- CURRENT -------------------------------------------------------------------------------


def format_current(generation: int) -> bytes:
    body = f"{CURRENT_MAGIC} {CURRENT_VERSION} {generation:06d}"
    return f"{body} {crc32c_small(body.encode()):08x}\n".encode()


def write_current(directory: Path, generation: int) -> None:
    write_file_atomic(directory / CURRENT, format_current(generation))


def read_current(directory: Path) -> int:
    """The live generation number. Raises SnapshotError when the directory is not a KB."""
    path = directory / CURRENT
    try:
        with open(path, "rb") as f:
            raw = f.read(128)
    except FileNotFoundError:
        if not directory.is_dir():
            raise SnapshotError("no such KB directory", directory) from None
        raise SnapshotError("not a KB directory (no CURRENT file)", directory) from None
    except IsADirectoryError:
        raise CorruptSnapshotError("CURRENT is not a file", path) from None
    except NotADirectoryError:
        what = "is a file, not a KB directory" if directory.exists() else "no such KB directory"
        raise SnapshotError(what, directory) from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptSnapshotError("CURRENT is not ASCII text", path) from None
    body, _, checksum = text.rstrip("\n").rpartition(" ")
    if not text.endswith("\n") or checksum != f"{crc32c_small(body.encode()):08x}":
        raise CorruptSnapshotError("CURRENT fails its checksum", path)
    parts = body.split(" ")
    if parts[0] == CURRENT_MAGIC and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) > CURRENT_VERSION:
        raise UnsupportedFormatError(f"CURRENT format version {parts[1]} is newer than this library", path)
    m = _CURRENT_RE.match(text)
    if m is None or int(m.group(1)) != CURRENT_VERSION:
        raise CorruptSnapshotError("CURRENT is malformed", path)
    return int(m.group(2))


# ---- locks ---------------------------------------------------------------------------------


class WriterLock:
    """The exclusive writer lock on kb/LOCK, held for the life of a writable KB."""

    def __init__(self, directory: Path) -> None:
        self.fd: int | None = None
        self.path = directory / LOCK
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError("the KB is open for writing in another process", directory) from None
            if err.errno in UNSUPPORTED_LOCK_ERRNOS:
                raise LockUnsupportedError(
                    "the file system does not support flock, so the KB cannot be opened for writing here",
                    self.path,
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = release


class ReaderLock:
    """A shared lock on one generation's readers file: while it is held, the writer will not
    delete that generation's files."""

    def __init__(self, fd: int | None, generation: int) -> None:
        self.fd: int | None = fd
        self.generation = generation

    @classmethod
    def acquire(cls, directory: Path, generation: int, attempts: int = 200) -> ReaderLock | None:
        """Lock a generation for reading. None when the generation is gone (deleted by the
        writer after a newer one became current): the caller reads CURRENT again."""
        path = directory / readers_name(generation)
        for _ in range(attempts):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                # The writer holds it exclusively, only while it deletes the generation.
                os.close(fd)
                time.sleep(0.001)
                continue
            except OSError as err:
                os.close(fd)
                if err.errno in UNSUPPORTED_LOCK_ERRNOS:
                    raise LockUnsupportedError("the file system does not support flock", path) from None
                raise
            if os.fstat(fd).st_nlink == 0:
                os.close(fd)
                return None
            return cls(fd, generation)
        raise LockedError(f"generation {generation} stayed locked by the writer", directory)

    @classmethod
    def unlocked(cls, directory: Path, generation: int) -> ReaderLock | None:
        """For a file system without flock: no lock, but the same check that the generation
        still exists (None when its readers file is gone, as `acquire`)."""
        if not (directory / readers_name(generation)).exists():
            return None
        return cls(None, generation)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = release


def create_readers_file(directory: Path, generation: int) -> None:
    fd = os.open(directory / readers_name(generation), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)


def try_delete_generation(directory: Path, generation: int) -> bool:
    """Delete a generation's files unless a reader holds it. True when it is gone."""
    path = directory / readers_name(generation)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        # The readers file goes last: a reader that locks it and finds it still linked knows
        # the other files are intact.
        for name in generation_files(generation):
            for candidate in (name, name + ".tmp"):
                try:
                    os.unlink(directory / candidate)
                except FileNotFoundError:
                    pass
        return True
    finally:
        if fd is not None:
            os.close(fd)


def ensure_kb_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise SnapshotError("exists and is not a directory", directory)
    directory.mkdir(parents=True, exist_ok=True)
