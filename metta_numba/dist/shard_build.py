"""`snapshot build --shards N`: sources -> N shard KBs under one manifest, here or on Dask.

Two stages, each a list of independent tasks:
  1. partition: a task reads one byte range of a source (cut at top-level atom boundaries by
     dist.source_ranges), checks it with the bulk reader, finds each atom's shard and writes the
     atoms' own source text into one run file per shard (KB/.runs/shard-XXX/part-NNNNN.metta);
  2. assemble: a task reads one shard's runs, in source order, with the bulk reader and builds
     the shard with today's in-memory build (store.snapshot.build_snapshot).
Runs carry source text rather than encoded paths so that each shard's term store holds only
its own strings and long symbols, with no renumbering of ids across tasks. The manifest is
written last, and the runs are deleted after it.

Without `workers`/`scheduler` the tasks run in this process, one after the other; with them,
on a Dask cluster, so the KB directory must be on a filesystem every worker sees.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metta_numba.dist import manifest as mf

RUNS = ".runs"
MIN_RANGE_BYTES = 1 << 20
"""A source smaller than this is one range: cutting it costs more than it saves."""
TARGET_RANGE_BYTES = 64 << 20


class ShardBuildError(Exception):
    """A sharded build refused or failed for a reason the user can fix (exit 1)."""


@dataclass
class BuildOptions:
    merkleize: bool = True
    argindex: bool = True
    index_options: object = None


def _readonly(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.uint8)


def _shift_error(err, source: str, start: int):
    """A parse error of a range, moved to its place in the whole file."""
    from metta_numba.syntax.errors import ParseError

    with open(source, "rb") as f:
        before = f.read(start)
    line_start = before.rfind(b"\n") + 1
    col = err.col + (len(before[line_start:].decode("utf-8", errors="replace")) if err.line == 1 else 0)
    return ParseError(err.message, source, err.line + before.count(b"\n"), col, start + max(err.offset, 0))


def partition_range(source: str, start: int, end: int, shards: int, runs_dir: str, task: int) -> list[int]:
    """Stage 1 on one byte range: write its atoms' text into per-shard runs; atoms per shard."""
    from metta_numba.dist.partition import key_shard
    from metta_numba.dist.path_keys import key_prefix_ends, path_key
    from metta_numba.dist.source_ranges import atom_spans
    from metta_numba.syntax.bulk import encode_source
    from metta_numba.syntax.errors import ParseError

    with open(source, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
    try:
        batch = encode_source(raw, source)
    except ParseError as err:
        raise _shift_error(err, source, start) from None
    if np.any(batch.is_query):
        raise ShardBuildError(
            f"{source}: holds `!` queries; a snapshot source holds atoms only. "
            "Run the program with `metta-numba --save-snapshot` instead."
        )
    starts, ends = atom_spans(_readonly(raw))
    if len(starts) != len(batch):
        raise ShardBuildError(f"{source}: bytes {start}-{end}: the range scan and the reader disagree on atoms")
    # Atoms whose paths start with the same key bytes share a shard: decode each prefix once.
    data, offsets = batch.data.tobytes(), batch.offsets.tolist()
    prefix_ends = key_prefix_ends(batch.data, batch.offsets).tolist()
    owner = np.empty(len(batch), np.int64)
    shard_of_prefix: dict[bytes, int] = {}
    for i in range(len(batch)):
        prefix = data[offsets[i] : prefix_ends[i]]
        shard = shard_of_prefix.get(prefix)
        if shard is None:
            shard = shard_of_prefix[prefix] = key_shard(path_key(prefix, batch.terms), shards)
        owner[i] = shard
    counts = np.bincount(owner, minlength=shards)
    for shard in np.flatnonzero(counts).tolist():
        pieces = [raw[s:e] for s, e in zip(starts[owner == shard].tolist(), ends[owner == shard].tolist(), strict=True)]
        out = Path(runs_dir) / mf.shard_directory_name(shard) / f"part-{task:05d}.metta"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"\n".join(pieces) + b"\n")
    return counts.tolist()


def assemble_shard(shard: int, runs_dir: str, shard_dir: str, options: BuildOptions, sources: list[dict]) -> dict:
    """Stage 2: build one shard from its runs (an empty shard when it has none)."""
    from metta_numba.codec.terms import TermStore
    from metta_numba.store.snapshot import build_snapshot
    from metta_numba.syntax.bulk import encode_source

    run_files = sorted((Path(runs_dir) / mf.shard_directory_name(shard)).glob("part-*.metta"))
    raw = b"".join(p.read_bytes() for p in run_files)
    terms = TermStore()
    batch = encode_source(raw, f"<runs of shard {shard}>", terms)
    return build_snapshot(
        batch,
        terms,
        shard_dir,
        merkleize=options.merkleize,
        source_files=sources,
        overwrite=True,
        argindex=options.argindex,
        index_options=options.index_options,
    )


def plan_ranges(sources: list[str], parallel: int) -> list[tuple[str, int, int]]:
    """(source, start, end) tasks: about twice `parallel` ranges overall (more for huge sources), cut
    at top-level atom boundaries, none below MIN_RANGE_BYTES."""
    from metta_numba.dist.source_ranges import byte_ranges

    sizes = {s: Path(s).stat().st_size for s in sources}
    total = max(1, sum(sizes.values()))
    wanted = max(2 * parallel, math.ceil(total / TARGET_RANGE_BYTES))  # 2 per worker evens out their loads
    tasks = []
    for source in sources:
        size = sizes[source]
        parts = max(1, min(round(wanted * size / total), size // MIN_RANGE_BYTES))
        if parts == 1:
            tasks.append((source, 0, size))
            continue
        data = np.memmap(source, dtype=np.uint8, mode="r")
        try:
            tasks.extend((source, a, b) for a, b in byte_ranges(data, parts))
        finally:
            del data
    return tasks


def _prepare_output(output: Path, shards: int) -> mf.Manifest:
    from metta_numba.store import layout

    if output.exists() and not output.is_dir():
        raise ShardBuildError(f"{output}: exists and is not a directory")
    if (output / layout.CURRENT).exists():
        raise ShardBuildError(f"{output}: holds an unsharded KB; build the sharded KB in another directory")
    if mf.is_sharded(output):
        old = mf.read_manifest(output)
        if old.shards != shards:
            raise ShardBuildError(f"{output}: a sharded KB of {old.shards} shards is there, not {shards}")
    elif output.exists() and any(p.name != RUNS for p in output.iterdir()):
        raise ShardBuildError(f"{output}: not empty and not a sharded KB")
    output.mkdir(parents=True, exist_ok=True)
    return mf.new_manifest(output, shards)


def build_sharded(
    sources: list[str],
    output: str | Path,
    shards: int,
    options: BuildOptions,
    *,
    client=None,
) -> dict:
    """Build a sharded KB. `client` is a dask.distributed Client (None: in this process)."""
    from metta_numba.store.snapshot import describe_sources

    started = time.perf_counter()
    if shards < 1:
        raise ShardBuildError("--shards must be at least 1")
    output = Path(output).absolute()
    manifest = _prepare_output(output, shards)
    runs_dir = output / RUNS
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir()
    provenance = describe_sources(sources)
    workers = len(client.scheduler_info().get("workers", {})) if client is not None else 1
    tasks = plan_ranges(sources, max(1, workers))
    try:
        if client is None:
            counts = [partition_range(s, a, b, shards, str(runs_dir), i) for i, (s, a, b) in enumerate(tasks)]
        else:
            futures = [
                client.submit(partition_range, s, a, b, shards, str(runs_dir), i, pure=False)
                for i, (s, a, b) in enumerate(tasks)
            ]
            counts = client.gather(futures)
        partitioned = time.perf_counter()
        args = [(i, str(runs_dir), str(manifest.shard_path(i)), options, provenance) for i in range(shards)]
        if client is None:
            reports = [assemble_shard(*a) for a in args]
        else:
            reports = client.gather([client.submit(assemble_shard, *a, pure=False) for a in args])
        mf.write_manifest(manifest)
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    per_shard = np.sum(np.array(counts, dtype=np.int64).reshape(len(tasks), shards), axis=0) if tasks else []
    return {
        "path": str(output),
        "shards": shards,
        "atoms": int(np.sum(per_shard)) if len(per_shard) else 0,
        "atoms_per_shard": [int(c) for c in per_shard],
        "ranges": len(tasks),
        "workers": workers,
        "bytes": sum(sum(r["files"].values()) for r in reports),
        "partition_seconds": partitioned - started,
        "total_seconds": time.perf_counter() - started,
    }
