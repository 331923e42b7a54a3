"""The delta log: every add and remove since the generation, appended before it is acknowledged.

File: a 24-byte header (magic "MNWAL\\r\\n\\x1a", version u32, crc32c u32 of the other header
fields, generation u64), then records. Every integer is little-endian.

Record:
    body length u32   crc32c of those 4 bytes u32
    body:  op u8 (1 add, 2 remove)
           path length u32, path bytes
           variable-name count u32, then per name: length u32, UTF-8
           term count u32, then per term: id u64, length u32, UTF-8
    crc32c of the body u32

The body carries the atom's variable names and the texts of the strings and long symbols its
path refers to by id, when those ids are newer than the generation's term store: the log is
replayable on top of the generation alone.

Replay rules, which tell a crash from damage:
- a record cut short by the end of the file (a crash during the append) is a torn tail: replay
  stops before it, and the writer cuts it off, keeping the cut bytes in a side file
  `wal-N.log.torn-OFFSET` and warning (StoreWarning); `snapshot verify` reports a torn tail;
- a header whose checksum fails, followed by nothing but zero bytes, is a torn tail as well (a
  file system that extended the file before writing its data);
- any other failed checksum is damage, and raises WalCorruptError: records after it would
  otherwise be skipped in silence.

A log cut exactly at a record boundary reads as a clean shorter log: nothing in the file
tells the records that are gone from records never written. Telling them apart would need a
durable record count kept outside the log, updated (and fsynced) with every append; we do not
keep one, as it would double the fsyncs of sync="always".
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path
from typing import NamedTuple

from metta_numba.store.crc import crc32c, crc32c_small
from metta_numba.store.errors import StoreWarning, UnsupportedFormatError, WalCorruptError
from metta_numba.store.layout import fsync_dir

MAGIC = b"MNWAL\r\n\x1a"
WAL_VERSION = 1
OP_ADD = 1
OP_REMOVE = 2
MAX_BODY = 1 << 30

_FILE_HEADER = struct.Struct("<8sIIQ")
HEADER_SIZE = _FILE_HEADER.size
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_RECORD_HEAD = struct.Struct("<II")


class WalRecord(NamedTuple):
    op: int
    path: bytes
    names: tuple[str, ...]
    terms: tuple[tuple[int, str], ...]


def _header_crc(version: int, generation: int) -> int:
    return crc32c_small(MAGIC + _U32.pack(version) + _U64.pack(generation))


def file_header(generation: int) -> bytes:
    return _FILE_HEADER.pack(MAGIC, WAL_VERSION, _header_crc(WAL_VERSION, generation), generation)


def encode_record(record: WalRecord) -> bytes:
    parts = [bytes((record.op,)), _U32.pack(len(record.path)), record.path, _U32.pack(len(record.names))]
    for name in record.names:
        raw = name.encode("utf-8")
        parts += (_U32.pack(len(raw)), raw)
    parts.append(_U32.pack(len(record.terms)))
    for term_id, text in record.terms:
        raw = text.encode("utf-8")
        parts += (_U64.pack(term_id), _U32.pack(len(raw)), raw)
    body = b"".join(parts)
    if len(body) > MAX_BODY:
        raise ValueError("log record too large")
    head = _U32.pack(len(body))
    return head + _U32.pack(crc32c(head)) + body + _U32.pack(crc32c(body))


class _Malformed(Exception):
    pass


class _Cursor:
    """Reads the fields of a record body in order, refusing to run past its end."""

    def __init__(self, body: bytes) -> None:
        self.view = memoryview(body)
        self.position = 0

    def take(self, size: int) -> memoryview:
        end = self.position + size
        if end > len(self.view):
            raise _Malformed("record body is truncated")
        out = self.view[self.position : end]
        self.position = end
        return out

    def u32(self) -> int:
        return _U32.unpack(self.take(4))[0]

    def u64(self) -> int:
        return _U64.unpack(self.take(8))[0]

    def text(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")


def _decode_body(body: bytes) -> WalRecord:
    cursor = _Cursor(body)
    op = cursor.take(1)[0]
    if op not in (OP_ADD, OP_REMOVE):
        raise _Malformed(f"unknown operation {op}")
    path = bytes(cursor.take(cursor.u32()))
    names = tuple(cursor.text() for _ in range(cursor.u32()))
    terms = []
    for _ in range(cursor.u32()):
        term_id = cursor.u64()
        terms.append((term_id, cursor.text()))
    if cursor.position != len(body):
        raise _Malformed("trailing bytes in a record body")
    return WalRecord(op, path, names, tuple(terms))


class WalScan(NamedTuple):
    records: list[WalRecord]
    end: int  # offset just past the last good record
    torn: bool  # bytes after `end` are a torn tail


def read_header(path: Path, data: bytes, generation: int) -> None:
    if len(data) < HEADER_SIZE:
        raise WalCorruptError("log file is shorter than its header", path, 0, 0)
    magic, version, crc, recorded_generation = _FILE_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WalCorruptError("not a log file (bad magic)", path, 0, 0)
    if crc != _header_crc(version, recorded_generation):
        raise WalCorruptError("log header fails its checksum", path, 0, 0)
    if version > WAL_VERSION:
        raise UnsupportedFormatError(f"log format {version} is newer than this library", path)
    if recorded_generation != generation:
        raise WalCorruptError(f"log belongs to generation {recorded_generation}, not {generation}", path, 0, 0)


def scan_wal(path: Path, generation: int, start: int = 0) -> WalScan:
    """Read the records of a log from byte `start` (0 = the whole file, header included)."""
    try:
        with open(path, "rb") as f:
            if start:
                f.seek(start)
            data = f.read()
    except FileNotFoundError:
        raise WalCorruptError("log file is missing", path, 0, 0) from None
    if start == 0:
        read_header(path, data, generation)
        position = HEADER_SIZE
    else:
        position = 0
    records: list[WalRecord] = []
    size = len(data)
    while position < size:
        rest = size - position
        if rest < _RECORD_HEAD.size:
            return WalScan(records, start + position, True)
        body_len, head_crc = _RECORD_HEAD.unpack_from(data, position)
        if crc32c(data[position : position + 4]) != head_crc or body_len == 0 or body_len > MAX_BODY:
            if not data[position:].strip(b"\0"):
                return WalScan(records, start + position, True)
            raise WalCorruptError("log record header fails its checksum", path, start + position, len(records))
        record_end = position + _RECORD_HEAD.size + body_len + 4
        if record_end > size:
            return WalScan(records, start + position, True)
        body = data[position + _RECORD_HEAD.size : record_end - 4]
        (body_crc,) = _U32.unpack_from(data, record_end - 4)
        if crc32c(body) != body_crc:
            raise WalCorruptError("log record fails its checksum", path, start + position, len(records))
        try:
            records.append(_decode_body(body))
        except (_Malformed, UnicodeDecodeError) as err:
            raise WalCorruptError(f"malformed log record: {err}", path, start + position, len(records)) from None
        position = record_end
    return WalScan(records, start + position, False)


def create_wal(path: Path, generation: int) -> None:
    """Write a new empty log (not fsynced; the caller publishes it)."""
    with open(path, "wb") as f:
        f.write(file_header(generation))


TORN_SUFFIX = ".torn-"


def keep_torn_tail(path: Path, end: int) -> Path:
    """Copy the log's bytes from `end` on into a new side file next to it, durably."""
    with open(path, "rb") as f:
        f.seek(end)
        tail = f.read()
    side = path.with_name(f"{path.name}{TORN_SUFFIX}{end}")
    copy = 1
    while side.exists():
        side = path.with_name(f"{path.name}{TORN_SUFFIX}{end}.{copy}")
        copy += 1
    with open(side, "xb") as f:
        f.write(tail)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    return side


def torn_tail_copies(directory: Path) -> list[str]:
    """Names of the side files in a KB directory that hold torn tails cut from its logs
    (of any generation: a checkpoint deletes an old log, not what was cut from it)."""
    return sorted(name for name in os.listdir(directory) if name.startswith("wal-") and TORN_SUFFIX in name)


class WalWriter:
    """Appends records to the log of the live generation."""

    def __init__(self, path: Path, end: int) -> None:
        self.path = path
        self.fd = -1
        self.fd = os.open(path, os.O_WRONLY)
        # Drop a torn tail left by a crash, durably, before appending after it; its bytes are
        # kept aside first, as they may be the remains of records someone wants to inspect.
        size = os.fstat(self.fd).st_size
        if size != end:
            kept = keep_torn_tail(path, end)
            os.ftruncate(self.fd, end)
            os.fsync(self.fd)
            warnings.warn(
                f"{path}: cut a torn tail of {size - end} bytes at offset {end} (an append cut short "
                f"by a crash, or a damaged end of the file); the bytes are kept in {kept.name}",
                StoreWarning,
                stacklevel=2,
            )
        self.position = end
        self.dirty = False

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.position)
            self.position += written
            view = view[written:]
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fdatasync(self.fd)
            self.dirty = False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    __del__ = close
