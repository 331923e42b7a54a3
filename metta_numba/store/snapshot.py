"""Whole-KB operations behind `metta-numba snapshot build|info|verify|compact`.

Each function takes paths and returns plain data (dicts of numbers and strings) for the
command line to print; failures raise the typed errors of store.errors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import xxhash

from metta_numba.codec.terms import TermStore
from metta_numba.store import layout
from metta_numba.store.errors import SnapshotError, os_errors_as_access_errors
from metta_numba.store.generation import INDEX_PREFIX, TRIE_PREFIX, write_generation
from metta_numba.store.insertion_order import narrow_order
from metta_numba.store.kb import PersistentKB
from metta_numba.store.termfile import TermArrays
from metta_numba.trie import Trie, sort
from metta_numba.trie.argindex import PACKED, ArgIndex, IndexOptions
from metta_numba.trie.packed import packed_len, packed_width


def describe_sources(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Name, size and xxh64 of each source file, for the generation's provenance record."""
    out = []
    for path in paths:
        digest = xxhash.xxh64()
        with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 22), b""):
                digest.update(chunk)
        out.append({"path": str(path), "size": os.path.getsize(path), "xxh64": digest.hexdigest()})
    return out


def _atoms_only(batch) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """data, offsets, names of the batch's atoms, without its `!` queries."""
    data = np.asarray(batch.data, dtype=np.uint8)
    offsets = np.asarray(batch.offsets, dtype=np.int64)
    names = getattr(batch, "names", None)
    is_query = getattr(batch, "is_query", None)
    if is_query is None or not np.any(is_query):
        return data, offsets, names
    keep = np.flatnonzero(~np.asarray(is_query, dtype=bool))
    starts, ends = offsets[keep], offsets[keep + 1]
    lengths = ends - starts
    new_offsets = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    pieces = [data[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    new_data = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)
    return new_data, new_offsets, None if names is None else np.asarray(names)[keep]


def build_snapshot(
    batch,
    terms: TermStore,
    path: str | os.PathLike,
    *,
    merkleize: bool = True,
    source_files: list[dict] | None = None,
    overwrite: bool = False,
    argindex: bool = True,
    index_options: IndexOptions | None = None,
    keep_order: bool = False,
) -> dict:
    """Write a batch of encoded atoms (syntax.bulk.EncodedBatch, or any object with `data`,
    `offsets`, optional `names` and `is_query`) as a KB at `path`.

    A new directory gets generation 1. An existing KB is refused unless `overwrite`, which
    replaces its content by a new generation (under the writer lock, so not while a writer has
    it open); readers of the old generation keep it until they refresh. `argindex` builds the
    argument index (trie.argindex) with `index_options`; checkpoints keep those options.
    `keep_order` records the batch's order (the `order.` sections, store.generation).
    Returns the generation number, counts, file sizes and timings."""
    directory = Path(path)
    options = (index_options or IndexOptions()) if argindex else None
    with os_errors_as_access_errors(directory):
        return _build_snapshot(batch, terms, directory, merkleize, source_files, overwrite, options, keep_order)


def _build_snapshot(batch, terms, directory, merkleize, source_files, overwrite, index_options, keep_order) -> dict:
    started = time.perf_counter()
    with generation_slot(directory, overwrite) as number:
        data, offsets, names = _atoms_only(batch)
        data = np.ascontiguousarray(data, dtype=np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        names = None if names is None else np.ascontiguousarray(names, dtype=np.int64)
        # Saved paths come from this library's encoder, so they may be sorted before
        # Trie.build checks them; other batches are checked first, as before.
        order = sort.sort_paths(data, offsets) if keep_order and len(offsets) > 1 else None
        trie = Trie.build(data, offsets, names=names, order=order, merkleize=merkleize)
        insertion = None
        if keep_order:
            insertion = _insertion_order(data, offsets, order, names)
        del order
        built = time.perf_counter()
        return publish_trie(
            directory,
            number,
            trie,
            terms,
            source_files=source_files,
            started=started,
            built=built,
            index_options=index_options,
            insertion_order=insertion,
        )


def _insertion_order(data, offsets, order, names) -> dict[str, np.ndarray]:
    """The `order.` sections of a batch: each atom's path rank and its own variable names."""
    n = len(offsets) - 1
    ranks = np.zeros(0, np.int64) if order is None else sort.group_copies(data, offsets, order)
    own_names = np.full(n, -1, np.int64) if names is None else names
    return {"path": narrow_order(ranks), "names": narrow_order(own_names)}


@contextmanager
def generation_slot(directory: Path, overwrite: bool) -> Iterator[int]:
    """Hold the writer lock of the KB at `directory` (created when absent) and give the number
    of the generation to write next. An existing KB is refused unless `overwrite`."""
    exists = (directory / layout.CURRENT).exists()
    if exists and not overwrite:
        raise SnapshotError("a KB already exists here (pass overwrite=True to replace it)", directory)
    layout.ensure_kb_directory(directory)
    writer_lock = layout.WriterLock(directory)
    try:
        yield layout.read_current(directory) + 1 if exists else 1
    finally:
        writer_lock.release()


def publish_trie(
    directory: Path,
    number: int,
    trie: Trie,
    terms: TermStore,
    *,
    source_files: list[dict] | None,
    started: float,
    built: float,
    index_options: IndexOptions | None,
    insertion_order: dict[str, np.ndarray] | None = None,
    index: ArgIndex | None = None,
) -> dict:
    """Write `trie` (merkleized or not) and `terms` as generation `number`, make it current and
    delete the older generations no reader holds. Call inside `generation_slot`; `started` and
    `built` are when the build began and when its trie was laid out. `index_options` None: no
    argument index; `insertion_order`: the `order.` sections; `index`: the argument index, built
    already with `index_options`. Returns the build report."""
    term_arrays = TermArrays.from_texts(list(terms.texts))
    meta = write_generation(
        directory,
        number,
        trie,
        term_arrays,
        source_files=source_files or [],
        build_seconds=time.perf_counter() - started,
        index_options=None if index_options is None else index_options.to_json(),
        insertion_order=insertion_order,
        index=index,
    )
    layout.write_current(directory, number)
    for old in layout.generations_on_disk(directory):
        if old != number:
            layout.try_delete_generation(directory, old)
    sizes = {name: os.path.getsize(directory / name) for name in (layout.act_name(number), layout.h5_name(number))}
    return {
        "path": str(directory),
        "generation": number,
        "counts": meta["counts"],
        "merkleized": trie.merkleized,
        "files": sizes,
        "trie_seconds": built - started,
        "total_seconds": time.perf_counter() - started,
    }


def snapshot_info(path: str | os.PathLike) -> dict:
    """Generation, counts, file sizes, format, the bytes of each section and metadata of a KB
    (opened read-only). A packed section (trie.packed) also gives its bits per value, and a leaf
    array stored as one value (store.meta) that value."""
    with PersistentKB.open(path, readonly=True) as kb:
        info = kb.info()
        generation = kb.snapshot_generation()
        major, minor = generation.act.version
        info["format"] = f"store {generation.store_format}, .act {major}.{minor}"
        info["sections"] = {name: _section_text(generation, name) for name in generation.act.sections}
        for name, value in (generation.meta.get("leaf_constants") or {}).items():
            info["sections"][TRIE_PREFIX + name] = f"0 bytes, every value {value} (store.meta leaf_constants)"
        return info


def _section_text(generation, name: str) -> str:
    section = generation.act.sections[name]
    text = f"{section.length:,} bytes, {section.dtype.name}"
    if name.startswith(INDEX_PREFIX) and name[len(INDEX_PREFIX) :] in PACKED:
        words = generation.act.arrays[name]
        text += f", packed: {packed_len(words):,} values of {packed_width(words)} bits"
    return text


def snapshot_warm(path: str | os.PathLike) -> dict:
    """Read the sections a query touches, and the term store, into the page cache
    (store.prewarm.warm_generation); returns what was read."""
    from metta_numba.store.prewarm import warm_generation

    with PersistentKB.open(path, readonly=True) as kb:
        report = warm_generation(kb.snapshot_generation())
    report["path"] = str(path)
    return report


def snapshot_verify(path: str | os.PathLike) -> dict:
    """Check every checksum and structure of the current generation and its log.
    Raises CorruptSnapshotError (or a subclass) naming the first damaged file."""
    started = time.perf_counter()
    with PersistentKB.open(path, readonly=True) as kb:
        log = kb.verify()
        files = kb.snapshot_generation().file_sizes()
        return {
            "path": str(path),
            "generation": kb.generation,
            "ok": True,
            "torn_tail": log["torn_tail"],
            "torn_copies": log["torn_copies"],
            "bytes_checked": sum(files.values()),
            "pending_changes": kb.pending_changes,
            "seconds": time.perf_counter() - started,
        }


def snapshot_upgrade(path: str | os.PathLike) -> dict:
    """Convert a KB of an older store format: its content, delta log included, becomes a new
    generation in the current format (switched to atomically, as a checkpoint is), and the old
    generation is deleted once no reader holds it. A KB in the current format is left as is."""
    formats = []

    def upgrade(kb: PersistentKB) -> int:
        formats.append(kb.snapshot_generation().store_format)
        number = kb.upgrade()
        formats.append(kb.snapshot_generation().store_format)
        return number

    report = _new_generation(Path(path), upgrade, outdated_ok=True)
    report["previous_format"], report["format"] = formats
    if report["generation"] == report["previous_generation"]:
        report["changes_folded"] = 0
    return report


def _new_generation(directory: Path, write, outdated_ok: bool = False) -> dict:
    """Open the KB as its writer, `write(kb)` a new generation (returning its number), and
    report the generations, the changes folded and the directory's bytes before and after."""
    with PersistentKB.open(directory, outdated_ok=outdated_ok) as kb, os_errors_as_access_errors(directory):
        before = _kb_bytes(directory)
        previous = kb.generation
        folded = kb.pending_changes
        generation = write(kb)
    with os_errors_as_access_errors(directory):
        left = sorted(n for n in layout.generations_on_disk(directory) if n != generation)
        after = _kb_bytes(directory)
    return {
        "path": str(directory),
        "generation": generation,
        "previous_generation": previous,
        "changes_folded": folded,
        "bytes_before": before,
        "bytes_after": after,
        "generations_kept_for_readers": left,
    }


def _kb_bytes(directory: Path) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())


def snapshot_compact(path: str | os.PathLike) -> dict:
    """Fold the log into a new generation and delete the generations no reader holds."""
    return _new_generation(Path(path), PersistentKB.checkpoint)


def save_atoms(atoms: Iterable, path: str | os.PathLike, *, merkleize: bool = True) -> dict:
    """Write atoms as a new generation of the KB at `path` (created when absent, its content
    replaced when present). The report has `skipped`: atoms holding grounded objects."""
    from metta_numba.codec import encode_atoms

    terms = TermStore()
    data, offsets, names, skipped = encode_atoms(atoms, terms)
    report = save_paths(data, offsets, names, terms, path, merkleize=merkleize)
    report["skipped"] = skipped
    return report


def save_paths(data, offsets, names, terms: TermStore, path: str | os.PathLike, *, merkleize: bool = True) -> dict:
    """Write encoded atoms, given in the order they were added (`names`: each one's variable
    names), as a new generation of the KB at `path`, that order included (generation.py)."""
    from types import SimpleNamespace

    batch = SimpleNamespace(data=data, offsets=offsets, names=names, is_query=None)
    return build_snapshot(batch, terms, path, merkleize=merkleize, overwrite=True, keep_order=True)
