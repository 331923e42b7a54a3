"""Exchange with MORK and PathMap: `.paths` files.

A `.paths` file is one zlib stream of records, each a u32 little-endian length followed by
that many path bytes. MORK's expression encoding is a subset of ours (arity, new variable,
variable reference, symbol of 1..63 bytes), so those paths are the same bytes in both.

Export writes each distinct path of the KB once (a PathMap is a set, not a multiset) and
skips the atoms that use our extension tags (numbers, strings, long symbols, ...). Import
adds every record once, and skips, with a count, the records that are not one complete term
of MORK tags, or whose symbol names are not UTF-8.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from metta_numba.codec import tags
from metta_numba.store.errors import SnapshotError

_LENGTH = struct.Struct("<I")
_READ_CHUNK = 1 << 20
ZLIB_LEVEL = 7  # what PathMap writes with


class PathsFormatError(SnapshotError):
    """A `.paths` file that is not a valid zlib stream of length-prefixed records."""


def is_mork_path(path: bytes) -> bool:
    """True when `path` is exactly one complete term made of MORK's tags, with UTF-8 names."""
    owed = 1
    position = 0
    fresh = 0
    length = len(path)
    while owed:
        if position >= length:
            return False
        tag = path[position]
        position += 1
        owed -= 1
        if tag < 0x40:
            owed += tag
        elif tag == tags.TAG_NEW_VAR:
            fresh += 1
        elif 0x80 <= tag < 0xC0:
            if tag & 0x3F >= fresh:
                return False
        elif tag > 0xC0:
            end = position + (tag & 0x3F)
            if end > length:
                return False
            try:
                path[position:end].decode("utf-8")
            except UnicodeDecodeError:
                return False
            position = end
        else:
            return False
    return position == length


def write_paths(paths: Iterator[bytes], out_path: str | os.PathLike) -> dict:
    """Write paths as a `.paths` file; the ones that are not MORK paths are skipped."""
    compressor = zlib.compressobj(ZLIB_LEVEL)
    written = skipped = 0
    tmp = Path(str(out_path) + ".tmp")
    with open(tmp, "wb") as f:
        for path in paths:
            if not is_mork_path(path):
                skipped += 1
                continue
            f.write(compressor.compress(_LENGTH.pack(len(path)) + path))
            written += 1
        f.write(compressor.flush())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_path)
    return {"written": written, "skipped": skipped, "bytes": os.path.getsize(out_path)}


def read_paths(in_path: str | os.PathLike) -> Iterator[bytes]:
    """Every record of a `.paths` file, as bytes, streamed."""
    decompressor = zlib.decompressobj()
    pending = bytearray()
    with open(in_path, "rb") as f:
        while True:
            chunk = f.read(_READ_CHUNK)
            try:
                pending += decompressor.decompress(chunk) if chunk else decompressor.flush()
            except zlib.error as err:
                raise PathsFormatError(f"not a zlib stream: {err}", in_path) from None
            position = 0
            while len(pending) - position >= 4:
                (size,) = _LENGTH.unpack_from(pending, position)
                if len(pending) - position - 4 < size:
                    break
                yield bytes(pending[position + 4 : position + 4 + size])
                position += 4 + size
            del pending[:position]
            if not chunk:
                break
    if not decompressor.eof:
        raise PathsFormatError("the zlib stream ends early (truncated file)", in_path)
    if pending:
        raise PathsFormatError("the last record is cut short", in_path)


def export_paths(kb, out_path: str | os.PathLike) -> dict:
    """Write the distinct paths of an open PersistentKB to a `.paths` file."""
    return write_paths(kb.iter_paths(), out_path)


def import_paths(kb, in_path: str | os.PathLike) -> dict:
    """Add every MORK path of a `.paths` file to an open, writable PersistentKB. The whole
    file is read and checked first, so a damaged file adds nothing; then the paths go in as
    one batch (one fsync). Returns how many were imported and skipped."""
    data, offsets, skipped = paths_batch(in_path)
    with kb.batch():
        for i in range(len(offsets) - 1):
            kb.add_path(data[offsets[i] : offsets[i + 1]].tobytes())
    return {"imported": len(offsets) - 1, "skipped": skipped}


def paths_batch(in_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
    """The MORK paths of a `.paths` file as a batch (data, offsets) for build_snapshot, and
    the number of records skipped."""
    kept = []
    skipped = 0
    for path in read_paths(in_path):
        if is_mork_path(path):
            kept.append(path)
        else:
            skipped += 1
    offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    if kept:
        np.cumsum([len(p) for p in kept], out=offsets[1:])
    return np.frombuffer(b"".join(kept), dtype=np.uint8).copy(), offsets, skipped
