"""Typed errors of the store. Every failure to read a KB directory is one of these.

    SnapshotError                  base class; also a KB that is missing or already exists
    ├── CorruptSnapshotError       a file of the generation fails a check (magic, size, bounds,
    │                              checksum, a dangling reference); `.path` names the file
    │   └── WalCorruptError        a delta-log record fails its checksum and is not a torn tail
    ├── UnsupportedFormatError     a file written by a newer (or unknown) format version
    │   └── OutdatedFormatError    a generation of an older store format (`snapshot upgrade`)
    ├── LockedError                another process holds the writer lock of the KB
    ├── LockUnsupportedError       the file system does not support flock (a writer cannot
    │                              lock the KB; a reader opens without its lock and warns)
    └── KBAccessError              the operating system refused a KB path (permission denied,
                                   not a directory, read-only file system, disk full)

StoreWarning is the category of the warnings the store gives while it carries on (a torn log
tail kept aside, a lock the file system does not support).

A torn last record of the delta log (a crash in the middle of an append) is not an error:
replay stops there and the writer truncates it. Bad records that are followed by more log
are corruption, and raise WalCorruptError.
"""

from __future__ import annotations

import contextlib


class SnapshotError(Exception):
    """Base class of every store error. `path` is the file or directory concerned."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CorruptSnapshotError(SnapshotError):
    """A snapshot file is damaged: bad magic, a size or bound out of range, a failed checksum."""


class WalCorruptError(CorruptSnapshotError):
    """A delta-log record is damaged and is not the torn tail of a crash.

    `offset` is the byte offset of the bad record and `valid_records` the number of records
    before it that did check out."""

    def __init__(self, message: str, path: str | None = None, offset: int = -1, valid_records: int = 0) -> None:
        super().__init__(message, path)
        self.offset = offset
        self.valid_records = valid_records


class UnsupportedFormatError(SnapshotError):
    """A file of a format version this library cannot read (written by a newer release)."""


class OutdatedFormatError(UnsupportedFormatError):
    """A generation written in an older store format, which `metta-numba snapshot upgrade KB`
    (or `store.snapshot.snapshot_upgrade`) converts. `found` and `supported` are the versions."""

    def __init__(self, message: str, path: str | None = None, found: int = 0, supported: int = 0) -> None:
        super().__init__(message, path)
        self.found = found
        self.supported = supported


class LockedError(SnapshotError):
    """The KB is opened for writing by another process (only one writer at a time)."""


class LockUnsupportedError(SnapshotError):
    """The file system refuses `flock` (some network and parallel file systems)."""


class KBAccessError(SnapshotError):
    """An OSError met on a KB's directory or files, as one line naming the path.

    `errno` is the OSError's errno, so callers can still tell EACCES from EROFS or ENOSPC."""

    def __init__(self, message: str, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, path)
        self.errno = errno

    @classmethod
    def from_os_error(cls, err: OSError, path) -> KBAccessError:
        """`err` as a KBAccessError; `path` names the KB when the OSError names no file."""
        where = err.filename if err.filename is not None else path
        return cls(err.strerror or str(err), where, err.errno)


class StoreWarning(UserWarning):
    """The store carried on after something a person should know about."""


@contextlib.contextmanager
def os_errors_as_access_errors(path):
    """Within the block, an OSError about the KB at `path` becomes a KBAccessError."""
    try:
        yield
    except OSError as err:
        raise KBAccessError.from_os_error(err, path) from None
