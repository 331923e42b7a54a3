"""Typed errors of the store. Every failure to read a KB directory is one of these.

    SnapshotError                  base class; also a KB that is missing or already exists
    ├── CorruptSnapshotError       a file of the generation fails a check (magic, size, bounds,
    │                              checksum, a dangling reference); `.path` names the file
    │   └── WalCorruptError        a delta-log record fails its checksum and is not a torn tail
    ├── UnsupportedFormatError     a file written by a newer (or unknown) format version
    └── LockedError                another process holds the writer lock of the KB

A torn last record of the delta log (a crash in the middle of an append) is not an error:
replay stops there and the writer truncates it. Bad records that are followed by more log
are corruption, and raise WalCorruptError.
"""

from __future__ import annotations


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


class LockedError(SnapshotError):
    """The KB is opened for writing by another process (only one writer at a time)."""
