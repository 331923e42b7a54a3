"""The `.h5` sidecar of a generation: the term store as contiguous HDF5 datasets, and metadata.

Datasets (contiguous, unfiltered, so that their bytes sit at one offset of the file):

    terms/blob       uint8[]   every text, UTF-8, back to back
    terms/offsets    int64[n+1] text i is blob[offsets[i]:offsets[i+1]]
    terms/hash       uint64[n]  xxh64 of every text, sorted
    terms/hash_ids   int64[n]   the term id of each entry of terms/hash

Root attributes hold the metadata: format_version, created, source_files, counts, merkleized,
build_seconds, library_version, generation (lists and dicts as JSON text), and the xxh64 of
each dataset, so that the file can be checked on its own.

Reading does not go through HDF5 at all on the query path. The writer records, in the `.act`
file, where each dataset lies in the `.h5` file and a hash of every byte outside the datasets
(HDF5's own metadata). Opening memmaps the datasets at those offsets and checks that hash,
which costs a few kilobytes whatever the size of the KB, so a damaged HDF5 header is caught
before h5py parses it. `find(text)` binary-searches the sorted hashes in place: it touches
O(log n) pages and loads nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xxhash

from metta_numba.store.actfile import FileMap
from metta_numba.store.errors import CorruptSnapshotError

TERMS_FORMAT_VERSION = 1
DATASETS = ("terms/blob", "terms/offsets", "terms/hash", "terms/hash_ids")
_DTYPES = {
    "terms/blob": np.uint8,
    "terms/offsets": np.int64,
    "terms/hash": np.uint64,
    "terms/hash_ids": np.int64,
}
_WRITE_CHUNK = 1 << 22
_TEXT_CACHE_LIMIT = 1 << 16


def text_hash(raw: bytes) -> int:
    return xxhash.xxh64_intdigest(raw)


def encode_texts(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTF-8 blob, offsets (starting at 0) and xxh64 hashes of a list of texts."""
    raws = [t.encode("utf-8") for t in texts]
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    if raws:
        np.cumsum([len(r) for r in raws], out=offsets[1:])
    blob = np.frombuffer(b"".join(raws), dtype=np.uint8)
    hashes = np.fromiter((text_hash(r) for r in raws), dtype=np.uint64, count=len(raws))
    return blob, offsets, hashes


class TermArrays:
    """The four term-store arrays (in memory or memmapped)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, hashes: np.ndarray, hash_ids: np.ndarray) -> None:
        self.blob = blob
        self.offsets = offsets
        self.hashes = hashes
        self.hash_ids = hash_ids

    @classmethod
    def from_texts(cls, texts: list[str]) -> TermArrays:
        blob, offsets, hashes = encode_texts(texts)
        order = np.argsort(hashes, kind="stable")
        return cls(blob, offsets, hashes[order], order.astype(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def extended(self, texts: list[str]) -> TermArrays:
        """These arrays plus new texts (ids continue from len(self)). The old blob is not copied
        into memory: `write_terms_h5` streams it."""
        blob, offsets, hashes = encode_texts(texts)
        base = len(self)
        new_ids = np.arange(base, base + len(texts), dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        new_hashes = hashes[order]
        positions = np.searchsorted(self.hashes, new_hashes, side="right")
        merged_hashes = np.insert(np.asarray(self.hashes), positions, new_hashes)
        merged_ids = np.insert(np.asarray(self.hash_ids), positions, new_ids[order])
        last = int(self.offsets[-1]) if len(self.offsets) else 0
        merged_offsets = np.concatenate([np.asarray(self.offsets), offsets[1:] + last])
        return TermArrays(_Concat(self.blob, blob), merged_offsets, merged_hashes, merged_ids)

    def dataset_items(self):
        return (
            ("terms/blob", self.blob),
            ("terms/offsets", self.offsets),
            ("terms/hash", self.hashes),
            ("terms/hash_ids", self.hash_ids),
        )


class _Concat:
    """Two uint8 arrays seen as one, written without building the concatenation."""

    def __init__(self, first: np.ndarray, second: np.ndarray) -> None:
        self.parts = (first, second)
        self.shape = (len(first) + len(second),)

    def __len__(self) -> int:
        return self.shape[0]


def _chunks(array) -> Iterable[np.ndarray]:
    parts = array.parts if isinstance(array, _Concat) else (array,)
    for part in parts:
        for start in range(0, len(part), _WRITE_CHUNK):
            yield np.ascontiguousarray(part[start : start + _WRITE_CHUNK])


def write_terms_h5(path: Path, terms: TermArrays, metadata: dict) -> dict:
    """Write the sidecar to `path` (not fsynced; the caller publishes it).

    Returns its layout, which the `.act` file records: size, dataset extents and hashes, and
    the hash of the bytes outside the datasets."""
    import h5py

    checksums = {}
    # Alignment keeps every dataset at a 64-byte boundary, so its memmap view is aligned.
    with h5py.File(path, "w", locking=False, alignment_threshold=1, alignment_interval=64) as f:
        for name, array in terms.dataset_items():
            dataset = f.create_dataset(name, shape=(len(array),), dtype=_DTYPES[name])
            digest = xxhash.xxh64()
            position = 0
            for chunk in _chunks(array):
                chunk = chunk.astype(_DTYPES[name], copy=False)
                dataset[position : position + len(chunk)] = chunk
                digest.update(chunk.view(np.uint8))
                position += len(chunk)
            checksums[name] = digest.intdigest()
            dataset.attrs["xxh64"] = np.uint64(checksums[name])
        f.attrs["format_version"] = TERMS_FORMAT_VERSION
        for key, value in metadata.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value

    with h5py.File(path, "r", locking=False) as f:
        extents = {}
        for name in DATASETS:
            dataset = f[name]
            offset = dataset.id.get_offset()
            length = int(dataset.id.get_storage_size())
            if offset is None or length == 0:
                offset, length = 0, 0
            extents[name] = [int(offset), length, int(dataset.shape[0]), checksums[name]]
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        outside_hash = _outside_hash(f.fileno(), size, extents)
    return {"size": size, "datasets": extents, "outside_xxh64": outside_hash}


def _outside_hash(fd: int, size: int, extents: dict) -> int:
    """xxh64 of every byte of the file that is not inside a dataset."""
    digest = xxhash.xxh64()
    position = 0
    for offset, length, _, _ in sorted(e for e in extents.values() if e[1]):
        if offset > position:
            digest.update(os.pread(fd, offset - position, position))
        position = max(position, offset + length)
    if size > position:
        digest.update(os.pread(fd, size - position, position))
    return digest.intdigest()


def read_h5_metadata(path: Path) -> dict:
    """The root attributes of a sidecar, JSON text decoded. Call only on a checked file."""
    import h5py

    out = {}
    with h5py.File(path, "r", locking=False) as f:
        for key, value in f.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
    return out


class GenerationTerms:
    """The term store of one generation, memmapped from its `.h5` file.

    Same reading interface as codec.TermStore: `text(id)`, `find(text)`, `len()`."""

    def __init__(self, path: Path, layout: dict) -> None:
        self.path = Path(path)
        self._text_cache: dict[int, str] = {}
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptSnapshotError("term store file is missing", self.path) from None
        try:
            size = os.fstat(fd).st_size
            self._check_layout(layout, size)
            if _outside_hash(fd, size, layout["datasets"]) != layout["outside_xxh64"]:
                raise CorruptSnapshotError("HDF5 metadata of the term store fails its checksum", self.path)
        finally:
            os.close(fd)
        self._layout = layout
        self._map = FileMap(self.path) if size else None
        base = self._map.array if size else None
        views = {}
        for name in DATASETS:
            offset, length, count, _ = layout["datasets"][name]
            if length == 0:
                views[name] = np.zeros(0, dtype=_DTYPES[name])
            else:
                views[name] = base[offset : offset + length].view(_DTYPES[name])
        self.arrays = TermArrays(
            views["terms/blob"], views["terms/offsets"], views["terms/hash"], views["terms/hash_ids"]
        )
        self._count = len(views["terms/offsets"]) - 1
        self._blob_len = len(views["terms/blob"])
        if self._count > 0 and (
            int(views["terms/offsets"][0]) != 0 or int(views["terms/offsets"][-1]) != self._blob_len
        ):
            raise CorruptSnapshotError("term offsets do not span the text blob", self.path)

    def _check_layout(self, layout: dict, size: int) -> None:
        try:
            if layout["size"] != size:
                raise CorruptSnapshotError(f"term store is {size} bytes, expected {layout['size']}", self.path)
            spans = []
            for name in DATASETS:
                offset, length, count, _ = layout["datasets"][name]
                itemsize = np.dtype(_DTYPES[name]).itemsize
                if length != count * itemsize or offset < 0 or offset + length > size:
                    raise CorruptSnapshotError(f"dataset {name} lies outside the term store", self.path)
                spans.append((offset, offset + length))
            counts = [layout["datasets"][name][2] for name in DATASETS]
        except (KeyError, TypeError, ValueError):
            raise CorruptSnapshotError("term store layout record is malformed", self.path) from None
        if counts[1] != counts[2] + 1 or counts[2] != counts[3]:
            raise CorruptSnapshotError("term store datasets disagree on the number of terms", self.path)
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            if start < end:
                raise CorruptSnapshotError("term store datasets overlap", self.path)

    def __len__(self) -> int:
        return self._count

    def text(self, term_id: int) -> str:
        cached = self._text_cache.get(term_id)
        if cached is not None:
            return cached
        if not 0 <= term_id < self._count:
            raise KeyError(term_id)
        offsets = self.arrays.offsets
        start = int(offsets[term_id])
        end = int(offsets[term_id + 1])
        if not 0 <= start <= end <= self._blob_len:
            raise CorruptSnapshotError(f"term {term_id} lies outside the text blob", self.path)
        try:
            text = bytes(self.arrays.blob[start:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptSnapshotError(f"term {term_id} is not valid UTF-8", self.path) from None
        if len(self._text_cache) >= _TEXT_CACHE_LIMIT:
            self._text_cache.clear()
        self._text_cache[term_id] = text
        return text

    def find(self, text: str) -> int | None:
        """The id of `text`, or None. Reads O(log n) entries of the sorted hash index."""
        if self._count == 0:
            return None
        raw = text.encode("utf-8")
        key = np.uint64(text_hash(raw))
        hashes = self.arrays.hashes
        position = int(np.searchsorted(hashes, key, side="left"))
        while position < self._count and hashes[position] == key:
            term_id = int(self.arrays.hash_ids[position])
            try:
                if self.text(term_id) == text:
                    return term_id
            except KeyError:
                raise CorruptSnapshotError("hash index refers to a missing term", self.path) from None
            position += 1
        return None

    def sequential(self):
        """Context manager: expect a sequential pass over the file (see actfile.FileMap)."""
        return self._map.sequential() if self._map is not None else contextlib.nullcontext()

    def verify(self) -> None:
        """Check every dataset against its recorded xxh64, and that the index is a permutation."""
        with self.sequential():
            self._verify()

    def verify_checksums(self) -> None:
        """Check every dataset against its recorded xxh64 (the bytes only, not their order)."""
        for name, array in self.arrays.dataset_items():
            digest = xxhash.xxh64()
            for chunk in _chunks(array):
                digest.update(chunk.view(np.uint8))
            if digest.intdigest() != self._layout["datasets"][name][3]:
                raise CorruptSnapshotError(f"dataset {name} fails its checksum", self.path)

    @property
    def file_size(self) -> int:
        return int(self._layout["size"])

    def _verify(self) -> None:
        self.verify_checksums()
        # Compare neighbours rather than take np.diff: a difference of unsigned integers
        # wraps around and is never negative.
        offsets = np.asarray(self.arrays.offsets)
        if self._count and np.any(offsets[1:] < offsets[:-1]):
            raise CorruptSnapshotError("term offsets are not ascending", self.path)
        ids = np.asarray(self.arrays.hash_ids)
        if self._count and not np.array_equal(np.sort(ids), np.arange(self._count)):
            raise CorruptSnapshotError("hash index is not a permutation of the term ids", self.path)
        hashes = np.asarray(self.arrays.hashes)
        if self._count and np.any(hashes[1:] < hashes[:-1]):
            raise CorruptSnapshotError("hash index is not sorted", self.path)

    def close(self) -> None:
        self.arrays = TermArrays(*(np.zeros(0, dtype=_DTYPES[n]) for n in DATASETS))
        self._count = 0
        self._text_cache.clear()
