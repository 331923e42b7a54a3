"""One generation of a KB: the trie in `gen-N.act`, the term store in `gen-N.h5`.

Writing a generation writes its readers file, sidecar, array file and empty log under temp
names, fsyncs each and renames it into place; the caller then switches CURRENT. Opening one
is O(1): the header and section table of the `.act` file, its small `store.meta` section
(checked against its hash), a memmap of each array, and the few kilobytes of HDF5 metadata
of the sidecar (checked against the hash `store.meta` records).

`store.meta` is JSON: the generation number, the sidecar layout (see store.termfile), the
counts, and the options of the argument index. The other sections are the trie's arrays,
named `trie.<array name>`, and those of its argument index (trie.argindex), named
`argindex.<array name>`; a checkpoint rebuilds the index with the same options. A generation
saved from a program's space also records the order in which its atoms were added: sections
`order.path` (the path rank of each atom, in insertion order) and `order.names` (each copy's
variable names, a term id or -1), which a checkpoint and an upgrade carry over
(store.insertion_order).

Store formats: 4 stores the trie's label offsets, edge starts, children and rank offsets as
compact columns (trie.columns); 3 stored them as plain int32/uint32 arrays, a leaf array whose
values are all equal as that value in store.meta (`leaf_constants`), and keyed the index by
32-bit hashes; 2 packs the index's postings and key starts into bit fields (trie.packed); 1
stored them as uint32 and int64. A generation of format 1, 2 or 3 opens only for `snapshot
upgrade` (`outdated_ok`, and then without its index; its plain node arrays are packed in
memory); otherwise it raises OutdatedFormatError.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import metta_numba
from metta_numba.store import layout
from metta_numba.store.actfile import ActFile, cache_page_by_page, write_act
from metta_numba.store.errors import CorruptSnapshotError, OutdatedFormatError, UnsupportedFormatError
from metta_numba.store.termfile import GenerationTerms, TermArrays, read_h5_metadata, write_terms_h5
from metta_numba.store.wal import create_wal
from metta_numba.store.working import ground_prefix_ends
from metta_numba.trie import CorruptTrieError, Trie
from metta_numba.trie.argindex import (
    ArgIndex,
    IndexOptions,
    ground_candidates,
    trie_candidates,
    trie_estimate,
)
from metta_numba.trie.argindex_kernels import prefix_ranges
from metta_numba.trie.argindex_plan import SELECTIVE_PREFIX
from metta_numba.trie.layout import LEAF_DTYPES, constant_column, constant_value, is_constant_column
from metta_numba.trie.unifypaths import (
    ALL_SINGLE_MATCHES,
    COUNT_DAMAGED,
    NO_INDEX,
    NOT_SERVED,
    matched_rows,
    snapshot_matches,
    unify_paths,
)
from metta_numba.trie.walk import prefix_rank_range

FEW_CANDIDATES = 256
"""Candidates up to which `matched_rows` answers in one call: above it, the general way's
bulk decoding (store.answers) costs less than rows decoded one by one."""
OPEN_CHECK_BYTES = 64 << 20
"""Opening a generation whose two files total at most this many bytes hashes all of their
sections and datasets against the recorded checksums (about 10 ms per 64 MB once the file is
in the page cache): damage such as a zeroed or garbage page is an error before the first
answer. Larger generations are opened in O(1) and checked in full only by verify."""

META_SECTION = "store.meta"
TRIE_PREFIX = "trie."
INDEX_PREFIX = "argindex."
ORDER_PREFIX = "order."
STORE_FORMAT = 4
UPGRADABLE_FORMATS = (1, 2, 3)
"""Older store formats that `snapshot upgrade` converts."""


def _prefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {prefix + name: array for name, array in arrays.items()}


def _unprefixed(prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name[len(prefix) :]: array for name, array in arrays.items() if name.startswith(prefix)}


def build_index(trie: Trie, options: dict | None) -> ArgIndex | None:
    """The argument index of a trie, with options as recorded in store.meta (None: no index)."""
    return None if options is None else ArgIndex.build(trie, IndexOptions.from_json(options))


def write_generation(
    directory: Path,
    number: int,
    trie: Trie,
    terms: TermArrays,
    *,
    source_files: list | None = None,
    build_seconds: float | None = None,
    index_options: dict | None = None,
    insertion_order: dict[str, np.ndarray] | None = None,
    index: ArgIndex | None = None,
) -> dict:
    """Write generation `number` (all files durable, CURRENT untouched). The argument index is
    built with `index_options` (IndexOptions as JSON; None for no index), unless `index` is
    given, built with those options already; `insertion_order` holds the `order.` sections'
    arrays (`path`, `names`) when known. Returns store.meta."""
    merkleized = trie.merkleized
    started = time.perf_counter()
    counts = {"atoms": trie.total_count, "paths": len(trie), "terms": len(terms)}
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    attrs = {
        "generation": number,
        "created": created,
        "source_files": source_files or [],
        "counts": counts,
        "merkleized": bool(merkleized),
        "library_version": metta_numba.__version__,
        "store_format": STORE_FORMAT,
        "generation_uuid": uuid.uuid4().hex,
    }
    h5_path = directory / layout.h5_name(number)
    act_path = directory / layout.act_name(number)
    wal_path = directory / layout.wal_name(number)
    # The readers file comes first: a generation with files but no readers file is the
    # remnant of a deletion, which the writer may finish.
    layout.create_readers_file(directory, number)
    tmp = {p: p.with_name(p.name + ".tmp") for p in (h5_path, act_path, wal_path)}
    attrs["build_seconds"] = float(build_seconds if build_seconds is not None else 0.0)
    h5_layout = write_terms_h5(tmp[h5_path], terms, attrs)
    meta = {
        "store_format": STORE_FORMAT,
        "generation": number,
        "generation_uuid": attrs["generation_uuid"],
        "created": created,
        "counts": counts,
        "merkleized": bool(merkleized),
        "h5": h5_layout,
        "argindex": index_options,
    }
    trie_arrays, meta["leaf_constants"] = _leaf_constants(trie.arrays)
    sections = {META_SECTION: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    sections.update(_prefixed(TRIE_PREFIX, trie_arrays))
    if index is None:
        index = build_index(trie, index_options)
    if index is not None:
        sections.update(_prefixed(INDEX_PREFIX, index.arrays))
    if insertion_order is not None:
        sections.update(_prefixed(ORDER_PREFIX, insertion_order))
    write_act(tmp[act_path], sections)
    create_wal(tmp[wal_path], number)
    for final, temp in tmp.items():
        layout.publish_file(temp, final)
    layout.fsync_dir(directory)
    cache_page_by_page(act_path)
    meta["write_seconds"] = time.perf_counter() - started
    return meta


def _leaf_constants(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The trie's sections, less each leaf array whose values are all equal, and those values
    (store.meta's `leaf_constants`)."""
    constants = {}
    for name in LEAF_DTYPES:
        value = constant_value(arrays[name])
        if value is not None:
            constants[name] = value
    return {name: array for name, array in arrays.items() if name not in constants}, constants


def _with_leaf_constants(arrays: dict[str, np.ndarray], meta: dict, act_path: Path) -> dict[str, np.ndarray]:
    """The trie's arrays, with the leaf arrays that store.meta records as one value."""
    constants = meta.get("leaf_constants") or {}
    n_paths = (meta.get("counts") or {}).get("paths")
    lowest = {"leaf_count": 1, "leaf_name": -1}
    arrays = dict(arrays)
    for name, value in constants.items():
        if name not in lowest or name in arrays or type(value) is not int or type(n_paths) is not int:
            raise CorruptSnapshotError(f"generation record: leaf constant {name!r} is malformed", act_path)
        if not lowest[name] <= value < 2**63 or n_paths < 1:
            raise CorruptSnapshotError(f"generation record: leaf constant {name!r} is out of range", act_path)
        arrays[name] = constant_column(name, value, n_paths)
    return arrays


def _outdated(directory: Path, found: int) -> OutdatedFormatError:
    if found in UPGRADABLE_FORMATS:
        how = f"run `metta-numba snapshot upgrade {directory}` to convert it"
    else:
        how = "no upgrade exists from it: rebuild the KB from its sources"
    return OutdatedFormatError(
        f"KB is in store format {found}; this library reads store format {STORE_FORMAT}: {how}",
        str(directory),
        found=found,
        supported=STORE_FORMAT,
    )


class Generation:
    """An opened generation: memmapped trie, lazily read term store, recorded metadata."""

    def __init__(
        self,
        directory: Path,
        number: int,
        act: ActFile,
        terms: GenerationTerms,
        trie: Trie,
        index: ArgIndex | None,
        meta: dict,
    ):
        self.directory = directory
        self.number = number
        self.act = act
        self.terms = terms
        self.trie = trie
        self.index = index
        self.meta = meta
        self._leaf_count = trie.arrays["leaf_count"]
        self._leaf_name = trie.arrays["leaf_name"]
        # The counts as little-endian bytes, for kernels that take any of their widths.
        # A constant column gives its one value, with a negative width (unifypaths).
        counts = self._leaf_count
        constant = is_constant_column(counts)
        counts = np.ascontiguousarray(counts[:1] if constant else counts, dtype=counts.dtype.newbyteorder("<"))
        width = counts.dtype.itemsize
        self._count_bytes, self._count_width = counts.view(np.uint8), -width if constant else width
        self._total = int(meta["counts"]["atoms"])
        self.store_format = int(meta["store_format"])

    @classmethod
    def open(
        cls, directory: Path, number: int, check_bytes: int | None = None, outdated_ok: bool = False
    ) -> Generation:
        """Open generation `number`: O(1) checks of the headers and the layout, then, when both
        files total at most `check_bytes` (default OPEN_CHECK_BYTES), every checksum.
        `outdated_ok` opens an older store format (for an upgrade) instead of raising
        OutdatedFormatError."""
        generation = cls._open(directory, number, outdated_ok)
        limit = OPEN_CHECK_BYTES if check_bytes is None else check_bytes
        try:
            if generation.checked_size() <= limit:
                generation.verify_checksums()
        except BaseException:
            generation.close()
            raise
        return generation

    def checked_size(self) -> int:
        """Bytes that verify_checksums reads."""
        return self.act.file_size + self.terms.file_size

    def verify_checksums(self) -> None:
        """Hash every section of the .act file and every dataset of the sidecar."""
        with self.sequential():
            self.act.verify()
            self.terms.verify_checksums()

    @classmethod
    def _open(cls, directory: Path, number: int, outdated_ok: bool = False) -> Generation:
        act_path = directory / layout.act_name(number)
        act = ActFile.open(act_path)
        if META_SECTION not in act.sections or not act.checksum_ok(META_SECTION):
            raise CorruptSnapshotError("generation record (store.meta) is missing or damaged", act_path)
        try:
            meta = json.loads(bytes(act.arrays[META_SECTION]).decode("utf-8"))
            store_format = int(meta["store_format"])
            recorded_number = int(meta["generation"])
            h5_layout = meta["h5"]
            if int(meta["counts"]["atoms"]) < 0:
                raise ValueError("negative atom count")
        except (ValueError, KeyError, TypeError):
            raise CorruptSnapshotError("generation record (store.meta) is malformed", act_path) from None
        if store_format > STORE_FORMAT:
            raise UnsupportedFormatError(f"store format {store_format} is newer than this library", act_path)
        if recorded_number != number:
            raise CorruptSnapshotError(f"file holds generation {recorded_number}, not {number}", act_path)
        outdated = store_format < STORE_FORMAT
        if outdated and (store_format not in UPGRADABLE_FORMATS or not outdated_ok):
            raise _outdated(directory, store_format)
        terms = GenerationTerms(directory / layout.h5_name(number), h5_layout)
        try:
            trie_arrays = _with_leaf_constants(_unprefixed(TRIE_PREFIX, act.arrays), meta, act_path)
            trie = Trie.from_arrays(trie_arrays, validate=False, merkleized=bool(meta.get("merkleized")))
            index_arrays = _unprefixed(INDEX_PREFIX, act.arrays)
            indexed = meta.get("argindex") is not None and not outdated  # an upgrade rebuilds it
            index = ArgIndex.from_arrays(index_arrays, len(trie)) if indexed else None
        except CorruptTrieError as err:
            raise CorruptSnapshotError(f"trie arrays are inconsistent: {err}", act_path) from None
        return cls(directory, number, act, terms, trie, index, meta)

    def insertion_order(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(path rank, variable names) of each atom in the order it was added, when the
        generation was saved from a space (None otherwise)."""
        arrays = _unprefixed(ORDER_PREFIX, self.act.arrays)
        if "path" not in arrays or "names" not in arrays:
            return None
        return arrays["path"], arrays["names"]

    @property
    def outdated(self) -> bool:
        """Written in an older store format (opened for an upgrade)."""
        return self.store_format < STORE_FORMAT

    def total_count(self) -> int:
        """Atoms in the generation, copies included (recorded when it was written)."""
        return self._total

    def count(self, path: bytes) -> int:
        with self._trie_errors():
            return self.trie.count(path)

    def matches(self, pattern: bytes) -> Iterator[tuple[bytes, int, int]]:
        """(path, count, variable-names term id) of every stored path that may unify with the
        pattern (a superset of the true matches: the caller unifies)."""
        with self._trie_errors():
            ranks = trie_candidates(self.trie, self.index, pattern)
            if not len(ranks):
                return
            data, offsets = self.trie.paths(ranks)
        # Few ranks is the common case: scalar reads beat building index arrays.
        offsets = offsets.tolist()
        leaf_count, leaf_name, total = self._leaf_count, self._leaf_name, self.total_count()
        for i, rank in enumerate(ranks.tolist()):
            count = int(leaf_count[rank])
            if count > total:
                raise self._count_error()
            yield data[offsets[i] : offsets[i + 1]].tobytes(), count, int(leaf_name[rank])

    def sole_match(self, pattern: bytes) -> int | None:
        """For a pattern without variables: the copies of its own stored path when that is its
        only candidate (0 when it has none at all), else None (the caller unifies)."""
        # On the warm lookup path: a plain try costs less than the _trie_errors context.
        try:
            total, rank = ground_candidates(self.trie, np.frombuffer(pattern, dtype=np.uint8))
            if total == 0:
                return 0
            if rank < 0:
                return None
            count = int(self._leaf_count[rank])
        except (CorruptTrieError, IndexError) as err:
            raise self._damaged(err) from None
        if count > self._total:
            raise self._count_error()
        return count

    def estimate(self, pattern: bytes) -> int:
        """An upper bound of the stored paths the pattern may unify with, from counts alone."""
        with self._trie_errors():
            return trie_estimate(self.trie, self.index, pattern)

    def matched(self, pattern: bytes) -> tuple[np.ndarray, ...]:
        """The pattern's candidates, unified in bulk (trie.unifypaths): (counts, name ids, data,
        offsets, status, spans, sides), the candidates' paths as one batch."""
        with self._trie_errors():
            ranks, data, offsets, status, spans, sides = snapshot_matches(self.trie, self.index, pattern)
        counts = self._checked_counts(self._leaf_count[ranks])
        return counts, self._leaf_name[ranks], data, offsets, status, spans, sides

    def matched_rows(self, pattern: bytes | np.ndarray) -> tuple[list[list[int]], bytes, bool] | None:
        """`matched` in one kernel call, for a pattern with at most FEW_CANDIDATES candidates
        (picked by its ground prefix or by the argument index): (rows as lists and the bytes
        they point into, see trie.unifypaths.matched_rows; whether every row is a match once).
        None for any other pattern, and for one that is not well formed (the general way
        reports that)."""
        index = NO_INDEX if self.index is None else self.index.kernel_arrays
        if isinstance(pattern, bytes):
            pattern = np.frombuffer(pattern, dtype=np.uint8)
        try:
            rows, data, verdict = matched_rows(
                self.trie._structure, pattern, SELECTIVE_PREFIX, FEW_CANDIDATES, *index,
                self._count_bytes, self._count_width, self._total,
            )  # fmt: skip
        except (CorruptTrieError, IndexError) as err:
            raise self._damaged(err) from None
        except ValueError:
            return None
        if verdict == NOT_SERVED:
            return None
        if verdict == COUNT_DAMAGED:
            raise self._count_error()
        return rows.tolist(), data.tobytes(), verdict == ALL_SINGLE_MATCHES

    def name_id(self, rank: int) -> int:
        """The variable-names term id of the path of this rank (-1: none)."""
        return int(self._leaf_name[rank])

    def candidate_chunks(self, pattern: bytes, first: int = 16, most: int = 1 << 16) -> Iterator[np.ndarray]:
        """The pattern's candidate ranks (those `matched` unifies) in chunks of growing size,
        `first` (16) then doubling up to `most`: a reader that stops early has paid for little more
        than what it used. Candidates that are whole prefix ranges of the trie are cut into
        chunks without listing them all first."""
        path = np.frombuffer(pattern, dtype=np.uint8)
        with self._trie_errors():
            ranges, later = prefix_ranges(self.trie._structure, path)
            whole = None if later == 0 else trie_candidates(self.trie, self.index, path)
        size = first
        if whole is not None:
            lo = 0
            while lo < len(whole):
                yield whole[lo : lo + size]
                lo += size
                size = min(2 * size, most)
            return
        for lo, hi in ranges.reshape(-1, 2).tolist():
            while lo < hi:
                step = min(size, hi - lo)
                yield np.arange(lo, lo + step, dtype=np.int64)
                lo += step
                size = min(2 * size, most)

    def prefix_copies(self, pattern: bytes) -> int | None:
        """The copies of all stored paths that start with the pattern's ground prefix, when
        those are all of its candidates (no ground token after the prefix, no stored variable
        met along it), else None. For a pattern whose variables are distinct and each written
        once, every such path unifies with it: this is its number of answers."""
        path = np.frombuffer(pattern, dtype=np.uint8)
        ends, _ = ground_prefix_ends(pattern, len(pattern))
        with self._trie_errors():
            ranges, later = prefix_ranges(self.trie._structure, path)
            if later or len(ranges) != 2:
                return None
            lo, hi = prefix_rank_range(self.trie._structure, path[: ends[-1] if ends else 0])
        if [lo, hi] != ranges.tolist():
            return None
        counts = self._leaf_count[lo:hi]
        total = int(counts.sum())
        if hi > lo and int(counts.max()) > self.total_count():
            raise self._count_error()
        return total

    def matched_ranks(self, pattern: bytes, ranks: np.ndarray) -> tuple[np.ndarray, ...]:
        """`matched` for some of the pattern's candidate ranks (a chunk of `candidate_chunks`)."""
        with self._trie_errors():
            data, offsets = self.trie.paths(ranks)
            status, spans, sides = unify_paths(np.frombuffer(pattern, dtype=np.uint8), data, offsets)
        counts = self._checked_counts(self._leaf_count[ranks])
        return counts, self._leaf_name[ranks], data, offsets, status, spans, sides

    def items(self, chunk: int = 65536) -> Iterator[tuple[bytes, int, int]]:
        """(path, count, variable-names term id) of every stored path, in byte order."""
        for start in range(0, len(self.trie), chunk):
            with self._trie_errors(), self.sequential():
                data, offsets, counts, names = self.trie.batch(start, start + chunk)
            counts = self._checked_counts(counts)
            for i in range(len(offsets) - 1):
                yield data[offsets[i] : offsets[i + 1]].tobytes(), int(counts[i]), int(names[i])

    def _checked_counts(self, counts: np.ndarray) -> np.ndarray:
        if len(counts) and int(counts.max()) > self.total_count():
            raise self._count_error()
        return counts

    def _count_error(self) -> CorruptSnapshotError:
        # A damaged count must not make a caller build billions of copies: no single path can
        # hold more copies than the generation records in all.
        return CorruptSnapshotError("a multiplicity exceeds the generation's atom count", self.act.path)

    @contextlib.contextmanager
    def _trie_errors(self):
        """A kernel that meets a damaged array raises CorruptTrieError: report it as the file's."""
        try:
            yield
        except (CorruptTrieError, IndexError) as err:
            raise self._damaged(err) from None

    def _damaged(self, err: Exception) -> CorruptSnapshotError:
        return CorruptSnapshotError(f"trie arrays are damaged: {err}", self.act.path)

    @contextlib.contextmanager
    def sequential(self):
        """For a pass over the whole generation: let the kernel read ahead (see FileMap)."""
        with self.act.sequential(), self.terms.sequential():
            yield

    def verify(self) -> None:
        """Every checksum of both files, then the trie's own structural checks."""
        with self.sequential():
            self.act.verify()
            self.terms.verify()
            with self._trie_errors():
                self.trie.validate()
                if self.index is not None:
                    self.index.verify()
        counts = self.meta.get("counts", {})
        if counts.get("paths") != len(self.trie) or counts.get("terms") != len(self.terms):
            raise CorruptSnapshotError("recorded counts disagree with the arrays", self.act.path)

    def metadata(self) -> dict:
        """The sidecar's metadata attributes (safe to parse: its HDF5 header was hash-checked)."""
        return read_h5_metadata(self.directory / layout.h5_name(self.number))

    def file_sizes(self) -> dict[str, int]:
        sizes = {}
        for name in (layout.act_name(self.number), layout.h5_name(self.number), layout.wal_name(self.number)):
            try:
                sizes[name] = os.path.getsize(self.directory / name)
            except FileNotFoundError:
                sizes[name] = 0
        return sizes

    def close(self) -> None:
        self.act.close()
        self.terms.close()
