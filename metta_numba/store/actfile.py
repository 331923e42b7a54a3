"""The `.act` file: named NumPy arrays in one file, opened as memmap views without copying.

Layout (every integer little-endian):

    0    header, 64 bytes
           magic "MNACT\\r\\n\\x1a" (8)   format major u16, minor u16   byte-order mark u32
           section count u32   table entry size u32   file size u64   table offset u64
           table xxh64 u64   reserved (8)   xxh64 of the 56 bytes before it u64
    64   section table, one 128-byte entry per section
           name (48, UTF-8, NUL-padded)   dtype (8, NumPy string such as "<i8")   ndim u32
           reserved u32   shape (4 x u64)   offset u64   length u64   xxh64 u64   reserved u64
    ...  the sections, each at a 64-byte aligned offset

Opening reads the header and the table only, and checks everything that can be checked
without reading the data: magic, version, both header checksums, the recorded file size,
known dtypes, shape x itemsize = length, alignment, and that sections lie inside the file and
do not overlap. `verify()` hashes every section. The cost of opening does not grow with the
size of the sections.

A file that the magic marks as ours but with a newer major version raises
UnsupportedFormatError; any other failed check raises CorruptSnapshotError.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xxhash

from metta_numba.store.errors import CorruptSnapshotError, UnsupportedFormatError
from metta_numba.trie.spill import drop_pages

MAGIC = b"MNACT\r\n\x1a"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
BYTE_ORDER_MARK = 0x01020304
ALIGN = 64
HEADER_SIZE = 64
ENTRY_SIZE = 128
NAME_SIZE = 48
MAX_NDIM = 4
MAX_SECTIONS = 4096
HASH_CHUNK = 1 << 24

_HEADER = struct.Struct("<8sHHIIIQQQ8x")
_HEADER_HASH = struct.Struct("<Q")
_ENTRY = struct.Struct("<48s8sII4QQQQ8x")

# Only plain numeric dtypes, in the file's (little-endian) byte order.
ALLOWED_DTYPES = frozenset(["|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"])

assert _HEADER.size + _HEADER_HASH.size == HEADER_SIZE
assert _ENTRY.size == ENTRY_SIZE


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _file_dtype(array: np.ndarray) -> np.dtype:
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if dtype.str not in ALLOWED_DTYPES:
        raise TypeError(f"cannot store an array of dtype {array.dtype} in an .act file")
    return dtype


def _byte_chunks(array: np.ndarray):
    """The bytes of an array in bounded chunks (memmapped input is not read all at once)."""
    flat = array.reshape(-1)
    if flat.dtype.byteorder == ">":
        flat = flat.astype(flat.dtype.newbyteorder("<"))
    step = max(1, HASH_CHUNK // max(1, flat.itemsize))
    for start in range(0, flat.shape[0], step):
        yield np.ascontiguousarray(flat[start : start + step]).view(np.uint8)


def write_act(path: Path, sections: Mapping[str, np.ndarray]) -> int:
    """Write the arrays to `path` (not fsynced; the caller publishes it). Returns its size."""
    names = list(sections)
    if len(names) > MAX_SECTIONS:
        raise ValueError("too many sections")
    table_size = ENTRY_SIZE * len(names)
    layout = []
    offset = _align(HEADER_SIZE + table_size)
    for name in names:
        raw_name = name.encode("utf-8")
        if not raw_name or len(raw_name) > NAME_SIZE or b"\0" in raw_name:
            raise ValueError(f"bad section name {name!r}")
        array = np.asarray(sections[name])
        if array.ndim > MAX_NDIM:
            raise ValueError(f"section {name!r} has more than {MAX_NDIM} dimensions")
        dtype = _file_dtype(array)
        layout.append((raw_name, array, dtype, offset, array.size * dtype.itemsize))
        offset = _align(offset + array.size * dtype.itemsize)
    file_size = offset if layout else HEADER_SIZE + table_size

    entries = []
    with open(path, "wb") as f:
        for raw_name, array, dtype, section_offset, length in layout:
            f.seek(section_offset)
            digest = xxhash.xxh64()
            written = 0
            for chunk in _byte_chunks(array):
                f.write(chunk)
                digest.update(chunk)
                written += chunk.size
                drop_pages(array)  # a section mapped from a build's file: keep it out of memory
            assert written == length
            shape = list(array.shape) + [0] * (MAX_NDIM - array.ndim)
            entries.append(
                _ENTRY.pack(
                    raw_name,
                    dtype.str.encode(),
                    array.ndim,
                    0,
                    *shape,
                    section_offset,
                    length,
                    digest.intdigest(),
                )
            )
        f.truncate(file_size)
        table = b"".join(entries)
        head = _HEADER.pack(
            MAGIC,
            FORMAT_MAJOR,
            FORMAT_MINOR,
            BYTE_ORDER_MARK,
            len(names),
            ENTRY_SIZE,
            file_size,
            HEADER_SIZE,
            xxhash.xxh64_intdigest(table),
        )
        f.seek(0)
        f.write(head + _HEADER_HASH.pack(xxhash.xxh64_intdigest(head)) + table)
    return file_size


def fadvise(fd: int, advice: str, offset: int = 0, length: int = 0) -> None:
    """posix_fadvise(fd, offset, length, POSIX_FADV_<advice>) where the system has it: a hint
    only, so an error changes nothing."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, getattr(os, f"POSIX_FADV_{advice}"))
        except OSError:
            pass


def read_without_readahead(fd: int) -> None:
    """Reads through `fd` fetch what they ask for, a page at a time in the page cache, as the
    map's faults do, and no more (a hint only).

    A sequential reader's readahead fetches megabytes ahead, which a query's own faults then
    wait behind; and a first read of a file without this advice lets the kernel keep that
    file's pages in large blocks (folios of up to 2 MB, on file systems with large folio
    support) for later readers too, so that a process mapping the file maps a whole block at
    each fault: after `snapshot warm`, 100 queries on the large baseline KB mapped 55 MB of it
    (RSS 163 MiB) instead of about 11 MB (RSS 112 MiB). Every read of an .act file goes
    through a descriptor advised so: the header and table here, the prewarm's reads."""
    fadvise(fd, "RANDOM")


def cache_page_by_page(path: Path) -> None:
    """After `path` is written and synced: let its pages go from the page cache and have them
    read again in the background, one page at a time (see read_without_readahead). Written
    pages stay in the large blocks the writes made, and the first query processes after a
    build then mapped 55 MB more of the large baseline KB (RSS 167 MB after 100 queries). A
    hint only: an error changes nothing but the RSS."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fadvise(fd, "DONTNEED")
        read_without_readahead(fd)
        fadvise(fd, "WILLNEED")
    finally:
        os.close(fd)


class FileMap:
    """A read-only memory map of a whole file, with its bytes as a uint8 array.

    The kernel is told to expect random access: a query touches a few pages spread over the
    arrays, and the default readahead around each fault would read megabytes for them (on a
    cold cache, 20 ms instead of 3 ms for the first query at 400K atoms). Whole-file passes
    (verify, checkpoint) switch to sequential access for their duration with `sequential()`.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.frombuffer(self._mmap, dtype=np.uint8)
        self._advise(getattr(mmap, "MADV_RANDOM", None))

    def _advise(self, advice: int | None) -> None:
        if advice is not None and hasattr(self._mmap, "madvise"):
            try:
                self._mmap.madvise(advice)
            except (OSError, ValueError):
                pass  # advice only; some file systems refuse it

    @contextlib.contextmanager
    def sequential(self):
        self._advise(getattr(mmap, "MADV_SEQUENTIAL", None))
        try:
            yield
        finally:
            self._advise(getattr(mmap, "MADV_RANDOM", None))


class Section:
    """One entry of the section table."""

    __slots__ = ("name", "dtype", "shape", "offset", "length", "checksum")

    def __init__(
        self, name: str, dtype: np.dtype, shape: tuple[int, ...], offset: int, length: int, checksum: int
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.offset = offset
        self.length = length
        self.checksum = checksum


class ActFile:
    """An opened `.act` file: its section table and a read-only memmap view per section."""

    def __init__(
        self,
        path: Path,
        sections: dict[str, Section],
        base: FileMap | None,
        version: tuple[int, int],
        file_size: int,
    ) -> None:
        self.path = path
        self.sections = sections
        self.version = version
        self.file_size = file_size
        self._base = base
        self.arrays: dict[str, np.ndarray] = {name: self._view(s) for name, s in sections.items()}

    def _view(self, section: Section) -> np.ndarray:
        if section.length == 0 or self._base is None:
            return np.zeros(section.shape, dtype=section.dtype)
        raw = self._base.array[section.offset : section.offset + section.length]
        return raw.view(section.dtype).reshape(section.shape)

    @classmethod
    def open(cls, path: Path) -> ActFile:
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptSnapshotError("snapshot file is missing", path) from None
        try:
            size = os.fstat(fd).st_size
            read_without_readahead(fd)
            head = os.pread(fd, HEADER_SIZE, 0)
            sections, version = _read_table(path, fd, head, size)
        finally:
            os.close(fd)
        base = FileMap(path) if size > 0 and sections else None
        return cls(path, sections, base, version, size)

    def sequential(self):
        """Context manager: expect a sequential pass over the file (see FileMap)."""
        return self._base.sequential() if self._base is not None else contextlib.nullcontext()

    def checksum_ok(self, name: str) -> bool:
        section = self.sections[name]
        digest = xxhash.xxh64()
        for chunk in _byte_chunks(self.arrays[name]):
            digest.update(chunk)
        return digest.intdigest() == section.checksum

    def verify(self) -> None:
        """Hash every section; raise CorruptSnapshotError naming the first that fails."""
        with self.sequential():
            for name in self.sections:
                if not self.checksum_ok(name):
                    raise CorruptSnapshotError(f"section {name!r} fails its checksum", self.path)

    def close(self) -> None:
        # Views handed out keep the mapping alive; it goes when the last of them does.
        self.arrays = {}
        self._base = None


def _read_table(path: Path, fd: int, head: bytes, size: int) -> tuple[dict[str, Section], tuple[int, int]]:
    def bad(message: str) -> CorruptSnapshotError:
        return CorruptSnapshotError(message, path)

    if len(head) < HEADER_SIZE:
        raise bad("file is shorter than the .act header")
    (magic, major, minor, bom, count, entry_size, recorded_size, table_offset, table_hash) = _HEADER.unpack_from(head)
    if magic != MAGIC:
        raise bad("not an .act file (bad magic)")
    (stored_head_hash,) = _HEADER_HASH.unpack_from(head, _HEADER.size)
    if xxhash.xxh64_intdigest(head[: _HEADER.size]) != stored_head_hash:
        raise bad(".act header fails its checksum")
    if major > FORMAT_MAJOR:
        raise UnsupportedFormatError(f".act format {major}.{minor} is newer than this library ({FORMAT_MAJOR}.x)", path)
    if major != FORMAT_MAJOR or bom != BYTE_ORDER_MARK:
        raise bad("unknown .act format version or byte order")
    if entry_size != ENTRY_SIZE or count > MAX_SECTIONS or table_offset != HEADER_SIZE:
        raise bad("malformed .act section table header")
    if recorded_size != size:
        raise bad(f"file is {size} bytes, its header records {recorded_size} (truncated or extended)")
    table_end = HEADER_SIZE + count * ENTRY_SIZE
    if table_end > size:
        raise bad("section table runs past the end of the file")
    table = os.pread(fd, count * ENTRY_SIZE, HEADER_SIZE)
    if len(table) != count * ENTRY_SIZE or xxhash.xxh64_intdigest(table) != table_hash:
        raise bad("section table fails its checksum")

    sections: dict[str, Section] = {}
    spans = []
    for i in range(count):
        raw_name, raw_dtype, ndim, _, d0, d1, d2, d3, offset, length, checksum = _ENTRY.unpack_from(
            table, i * ENTRY_SIZE
        )
        try:
            name = raw_name.rstrip(b"\0").decode("utf-8")
            dtype_str = raw_dtype.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise bad(f"section {i} has an unreadable name or dtype") from None
        if not name or name in sections:
            raise bad(f"section {i} has an empty or repeated name")
        if dtype_str not in ALLOWED_DTYPES:
            raise bad(f"section {name!r} has unknown dtype {dtype_str!r}")
        if ndim > MAX_NDIM:
            raise bad(f"section {name!r} has {ndim} dimensions")
        dims = (d0, d1, d2, d3)
        if any(dims[ndim:]):
            raise bad(f"section {name!r} has a malformed shape")
        shape = tuple(dims[:ndim])
        dtype = np.dtype(dtype_str)
        elements = 1
        for d in shape:
            elements *= d
        if elements * dtype.itemsize != length:
            raise bad(f"section {name!r}: shape {shape} x {dtype.itemsize} bytes != length {length}")
        if offset % ALIGN or offset < table_end or offset + length > size:
            raise bad(f"section {name!r} lies outside the file or is misaligned")
        sections[name] = Section(name, dtype, shape, offset, length, checksum)
        spans.append((offset, offset + length))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise bad("sections overlap")
    return sections, (major, minor)
