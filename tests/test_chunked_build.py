"""The out-of-core `snapshot build` (store.chunked_build, trie.runs): with a budget so small that
every source is cut into many chunks and runs, it writes the very arrays and terms the
in-memory build writes, reports parse errors where the whole-file reader does, survives being
killed half-way, and refuses bad budgets with a usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import atoms, is_finite_atom, separators, top_level_safe
from test_cli import cli, write

from metta_numba.codec.terms import TermStore
from metta_numba.store import chunked_build, layout
from metta_numba.store.chunked_build import (
    MIN_CHUNK_BYTES,
    RUNS_PREFIX,
    QueriesInSourceError,
    RunFiles,
    build_from_sources,
    chunk_size,
    class_table_slots,
    merge_spilled,
    parse_memory_budget,
    source_chunks,
)
from metta_numba.store.generation import Generation
from metta_numba.store.snapshot import build_snapshot
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.printer import format_atom
from metta_numba.trie import Trie
from metta_numba.trie.dag_table import UNBOUNDED
from metta_numba.trie.runs import MergeState, sorted_run
from metta_numba.trie.spill import is_file_mapped

TINY_BUDGET = 1  # every chunk is MIN_CHUNK_BYTES (or one atom when an atom is longer)


@st.composite
def kb_texts(draw) -> str:
    """Atoms only, drawn from a small pool so that copies are common, with any separators."""
    pool = draw(st.lists(atoms(finite_floats=True, max_leaves=8).filter(top_level_safe), min_size=1, max_size=12))
    pool = [atom for atom in pool if is_finite_atom(atom)] or [None]
    picks = draw(st.lists(st.integers(0, len(pool) - 1), max_size=60))
    parts = [draw(st.sampled_from(["", "\n", "; header\n"]))]
    for pick in picks:
        if pool[pick] is not None:
            parts.append(format_atom(pool[pick]))
            parts.append(draw(separators()))
    return "".join(parts)


def _generation(directory: Path) -> Generation:
    return Generation.open(directory, layout.read_current(directory))


def _assert_same_snapshot(a: Path, b: Path) -> None:
    """Every array but the generation record is byte for byte the same, and so are the terms."""
    ga, gb = _generation(a), _generation(b)
    try:
        arrays_a = {k: v for k, v in ga.act.arrays.items() if k != "store.meta"}
        arrays_b = {k: v for k, v in gb.act.arrays.items() if k != "store.meta"}
        assert sorted(arrays_a) == sorted(arrays_b)
        for name, array in arrays_a.items():
            assert array.dtype == arrays_b[name].dtype, name
            assert np.array_equal(array, arrays_b[name]), name
        assert [ga.terms.text(i) for i in range(len(ga.terms))] == [gb.terms.text(i) for i in range(len(gb.terms))]
        assert ga.meta["counts"] == gb.meta["counts"]
    finally:
        ga.close()
        gb.close()


def _in_memory(sources: list[Path], directory: Path, merkleize: bool = True) -> None:
    terms = TermStore()
    batches = [encode_source(path.read_bytes(), str(path), terms) for path in sources]
    data = np.concatenate([b.data for b in batches])
    lengths = np.concatenate([np.diff(b.offsets) for b in batches])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    names = np.concatenate([b.names for b in batches])
    batch = type(batches[0])(data, offsets, np.zeros(len(lengths), bool), names, terms)
    build_snapshot(batch, terms, directory, merkleize=merkleize, overwrite=True)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(kb_texts(), min_size=1, max_size=3), jobs=st.integers(1, 3), merkleize=st.booleans())
def test_tiny_budget_build_writes_the_in_memory_snapshot(tmp_path_factory, texts, jobs, merkleize):
    folder = tmp_path_factory.mktemp("kb")
    sources = [write(folder / f"s{i}.metta", text) for i, text in enumerate(texts)]
    _in_memory(sources, folder / "whole", merkleize)
    report = build_from_sources(
        [str(s) for s in sources], folder / "chunked", memory_budget=TINY_BUDGET, jobs=jobs, merkleize=merkleize
    )
    _assert_same_snapshot(folder / "whole", folder / "chunked")
    # The reference model: the KB holds each source atom as often as the sources do.
    expected = Counter()
    terms = TermStore()
    for source in sources:
        batch = encode_source(source.read_bytes(), str(source), terms)
        expected.update(batch.path(i) for i in range(len(batch)))
    generation = _generation(folder / "chunked")
    try:
        assert {bytes(path): count for path, count, _ in generation.items()} == dict(expected)
    finally:
        generation.close()
    # One run per chunk: every source is cut at MIN_CHUNK_BYTES, or just past an atom longer.
    assert report["runs"] == sum(len(list(source_chunks(str(s), MIN_CHUNK_BYTES))) for s in sources)
    assert not any(p.name.startswith(RUNS_PREFIX) for p in (folder / "chunked").iterdir())


def test_a_medium_sized_source_is_cut_into_many_runs_with_the_same_result(tmp_path):
    from metta_numba.bench.kbgen import write_kb

    source = tmp_path / "kb.metta"
    write_kb(2_000, source)
    with open(source, "a") as f:
        f.write("(= (add0 zero $x) $x)\n(: Nat Type)\n")  # copies of earlier atoms, in a later run
    _in_memory([source], tmp_path / "whole")
    report = build_from_sources([str(source)], tmp_path / "chunked", memory_budget=200_000, jobs=2)
    assert report["runs"] > 10
    _assert_same_snapshot(tmp_path / "whole", tmp_path / "chunked")


@settings(max_examples=30, deadline=None)
@given(text=kb_texts(), cuts=st.lists(st.integers(0, 60), max_size=6), step=st.integers(1, 9))
def test_merging_runs_of_any_cut_gives_the_whole_batch_trie(text, cuts, step):
    batch = encode_source(text.encode())
    n = len(batch)
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    runs = [
        sorted_run(batch.data, batch.offsets[lo : hi + 1].copy(), batch.names[lo:hi].copy())
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    if not runs or n == 0:
        return
    flat = tuple(np.concatenate([run[k] for run in runs]) for k in range(5))
    path_start = np.cumsum([0] + [len(run[1]) for run in runs])
    byte_start = np.cumsum([0] + [len(run[0]) for run in runs])
    state = MergeState(path_start, byte_start, int(flat[2].max()))
    out = tuple(np.empty(len(array), array.dtype) for array in flat)
    while not state.step(flat, out, step):
        pass
    n_paths, n_bytes = state.merged
    stream = [out[0][:n_bytes], out[1][:n_paths], out[2][:n_paths]]
    merged = Trie._from_stream(stream, out[3][:n_paths], out[4][:n_paths])
    whole = Trie.build(batch.data, batch.offsets, names=batch.names)
    for name, array in whole.arrays.items():
        assert np.array_equal(array, merged.arrays[name]), name


def test_a_merkleized_merge_keeps_the_large_arrays_in_files_of_the_build_folder(tmp_path):
    source = "".join(f"(edge n{i % 97} n{(i * 7) % 89})\n(= (f {i % 13}) (g $x {i}))\n" for i in range(3000))
    batch = encode_source(source.encode())
    runs = RunFiles(tmp_path)
    for lo in range(0, len(batch), 500):
        hi = min(lo + 500, len(batch))
        runs.append(sorted_run(batch.data, batch.offsets[lo : hi + 1].copy(), batch.names[lo:hi].copy()))
    merged = merge_spilled(runs, merkleize=True)
    whole = Trie.build(batch.data, batch.offsets, names=batch.names, merkleize=True)
    for name, array in whole.arrays.items():
        assert np.array_equal(array, merged.arrays[name]), name
    # Every array, the packed columns too, is mapped from a file of the build folder, so the
    # build can let go of its pages.
    arrays = merged.arrays
    for name in whole.arrays:
        assert is_file_mapped(arrays[name]), name
        assert Path(_file_of(arrays[name])).parent == tmp_path
    made = {entry.name for entry in tmp_path.iterdir()}
    assert {"dag.labels", "dag.children", "leaf_name.leaves", "column.children", "column.label_off"} <= made


def test_a_build_whose_table_of_shared_subtries_fills_keeps_every_atom(tmp_path, monkeypatch, capsys):
    # A table of 8 slots (what a budget of 1 byte gives once the floor is lifted) fills again
    # and again: the snapshot shares less, but holds every atom as the in-memory build does.
    monkeypatch.setattr(chunked_build, "MIN_CLASS_TABLE_SLOTS", 8)
    source = write(
        tmp_path / "kb.metta",
        "".join(f"(edge n{i % 97} n{(i * 7) % 89})\n(= (f {i % 13}) (g $x {i}))\n" for i in range(1500)),
    )
    _in_memory([source], tmp_path / "whole")
    report = build_from_sources([str(source)], tmp_path / "chunked", memory_budget=TINY_BUDGET)
    assert report["class_table_sweeps"] > 0
    whole, chunked = _generation(tmp_path / "whole"), _generation(tmp_path / "chunked")
    try:
        assert list(chunked.items()) == list(whole.items())
        assert chunked.trie.n_nodes > whole.trie.n_nodes  # some subtries are stored twice
        chunked.trie.validate()
    finally:
        whole.close()
        chunked.close()
    # The command says why the snapshot is larger, and what to do about it.
    from metta_numba.cli import main

    assert main(["snapshot", "build", str(source), "-o", str(tmp_path / "cli"), "--memory-budget", "1"]) == 0
    assert "the table of shared subtries filled up" in capsys.readouterr().err


def test_the_table_of_shared_subtries_takes_a_share_of_the_budget():
    assert class_table_slots(None) == UNBOUNDED
    assert class_table_slots(1) == chunked_build.MIN_CLASS_TABLE_SLOTS
    for budget in (256 << 20, 1 << 30, 4 << 30):
        slots = class_table_slots(budget)
        # The slots, and a doubling's or a sweep's copies (1.5 times): within the share.
        assert 3 * 8 * slots // 2 <= budget // chunked_build.CLASS_TABLE_SHARE < 3 * 8 * slots


def _file_of(array: np.ndarray) -> str:
    """The path of the file under a mapped array, from this process's mappings."""
    address = array.__array_interface__["data"][0]
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(bound, 16) for bound in fields[0].split("-"))
        if low <= address < high and len(fields) == 6:
            return fields[5]
    raise AssertionError("no mapping holds the array")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=kb_texts(), size=st.integers(1, 300))
def test_chunks_are_whole_atoms_covering_the_source(tmp_path, text, size):
    source = write(tmp_path / "s.metta", text)
    chunks = list(source_chunks(str(source), size))
    assert b"".join(chunk.raw for chunk in chunks) == source.read_bytes()
    assert sum(len(encode_source(chunk.raw)) for chunk in chunks) == len(encode_source(source.read_bytes()))


@pytest.mark.parametrize(
    "tail",
    ['(edge n33 "unclosed)\n(edge a b)\n', "(c\n(d e)\n", "(x))\n", '(s "\\q")\n', "(é ü) (ok (\n"],
)
def test_a_parse_error_in_a_later_chunk_is_reported_where_the_whole_file_reader_reports_it(tmp_path, tail):
    text = "".join(f"(edge n{i} n{i + 1}) ; é\n" for i in range(60)) + tail
    source = write(tmp_path / "bad.metta", text)
    with pytest.raises(ParseError) as whole:
        encode_source(source.read_bytes(), str(source))
    with pytest.raises(ParseError) as chunked:
        build_from_sources([str(source)], tmp_path / "kb", memory_budget=TINY_BUDGET, jobs=2)
    assert str(chunked.value) == str(whole.value)
    assert chunked.value.offset == whole.value.offset
    assert not (tmp_path / "kb").exists(), "a failed first build leaves no KB directory behind"


def test_queries_in_a_later_chunk_are_refused_with_their_atom_number(tmp_path):
    text = "".join(f"(fact {i})\n" for i in range(100)) + "!(fact 3)\n"
    source = write(tmp_path / "q.metta", text)
    with pytest.raises(QueriesInSourceError, match="the first is atom 101"):
        build_from_sources([str(source)], tmp_path / "kb", memory_budget=TINY_BUDGET)


# --- a build killed half-way -----------------------------------------------------------------------

KILLER = """
import os, signal, sys
from metta_numba.store import chunked_build, generation
from metta_numba.trie import argindex_runs

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

stage = sys.argv[3]
if stage == "merge":
    chunked_build.merge_spilled = die
elif stage == "index":
    argindex_runs._packed_file = die  # the entry runs are spilled and counted
else:
    original = generation.write_act
    def write_then_die(path, sections):
        original(path, sections)
        die()
    generation.write_act = write_then_die
chunked_build.build_from_sources([sys.argv[1]], sys.argv[2], memory_budget=1, jobs=2)
"""


def _answers(directory: Path) -> dict[bytes, int]:
    generation = _generation(directory)
    try:
        return {bytes(path): count for path, count, _ in generation.items()}
    finally:
        generation.close()


@pytest.mark.parametrize("stage", ["merge", "index", "write"])
def test_a_build_killed_half_way_leaves_the_kb_as_it_was(tmp_path, stage):
    old = write(tmp_path / "old.metta", "".join(f"(old {i})\n" for i in range(50)))
    new = write(tmp_path / "new.metta", "".join(f"(new {i} {i})\n" for i in range(400)))
    kb = tmp_path / "kb"
    build_from_sources([str(old)], kb)
    before = _answers(kb)
    generation = layout.read_current(kb)
    proc = subprocess.run([sys.executable, "-c", KILLER, str(new), str(kb), stage], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    leftovers = [p.name for p in kb.iterdir() if p.name.startswith(RUNS_PREFIX) or p.name.endswith(".tmp")]
    assert leftovers, "the build was killed after it wrote temporary files"
    assert layout.read_current(kb) == generation
    assert _answers(kb) == before
    build_from_sources([str(new)], kb, memory_budget=TINY_BUDGET)
    assert not [p.name for p in kb.iterdir() if p.name.startswith(RUNS_PREFIX) or p.name.endswith(".tmp")]
    assert _answers(kb) == {encode_source(f"(new {i} {i})".encode()).path(0): 1 for i in range(400)}


# --- the budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("4G", 4 << 30), ("512m", 512 << 20), ("1.5GiB", 3 << 29), ("100", 100), ("64 KB", 64 << 10), ("2T", 2 << 40)],
)
def test_budget_sizes(text, size):
    assert parse_memory_budget(text) == size


@pytest.mark.parametrize("text", ["", "G", "4X", "-1G", "0", "0.0000001K", "4 G B", "1e9", "four"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(ValueError, match="budget|size"):
        parse_memory_budget(text)


def test_the_chunk_shrinks_with_the_budget_and_the_jobs():
    assert chunk_size(4 << 30, 1) > chunk_size(4 << 30, 4) > chunk_size(1 << 30, 4) >= MIN_CHUNK_BYTES
    assert chunk_size(1, 8) == MIN_CHUNK_BYTES


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--memory-budget", "4X"], "--memory-budget"),
        (["--memory-budget", "0"], "--memory-budget"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_bad_budget_or_jobs_flags_are_usage_errors(tmp_path, flags, fragment):
    source = write(tmp_path / "s.metta", "(a b)\n")
    proc = cli("snapshot", "build", str(source), "-o", str(tmp_path / "kb"), *flags)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "kb").exists()


def test_cli_build_with_a_budget_and_jobs_answers_queries(tmp_path):
    source = write(tmp_path / "s.metta", "".join(f"(edge n{i} n{(i * 7) % 50})\n" for i in range(500)))
    kb = tmp_path / "kb"
    proc = cli("snapshot", "build", str(source), "-o", str(kb), "--memory-budget", "1K", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    proc = cli("query", str(kb), "(edge n3 $y)")
    assert proc.returncode == 0 and proc.stdout == "(edge n3 n21)\n"
    assert os.listdir(kb) and not any(name.startswith(RUNS_PREFIX) for name in os.listdir(kb))


def test_build_scaling_measures_a_child_build(tmp_path):
    from metta_numba.bench.build_scaling import measure_build

    source = write(tmp_path / "kb_tiny.metta", "".join(f"(fact {i} {i % 7})\n" for i in range(300)))
    row = measure_build(source, "1M", 1, tmp_path)
    assert row["seconds"] > 0 and row["budget"] == "1M" and row["source_bytes"] == source.stat().st_size
    # The child imported NumPy and Numba: tens of MiB at least, whatever the machine.
    assert row["peak_rss_bytes"] > 20 << 20
    assert row["kb_bytes"] > 0
    assert not list(tmp_path.glob("*.kb")), "the measured KB is removed"


def test_progress_reports_bytes_read_paths_merged_and_index_entries_merged(tmp_path):
    text = "".join(f"(edge n{i} (w {i % 9}))\n" for i in range(400))
    source = write(tmp_path / "s.metta", text)
    reads, merges, indexes = [], [], []
    build_from_sources(
        [str(source)],
        tmp_path / "kb",
        memory_budget=TINY_BUDGET,
        on_read=reads.append,
        on_merge=lambda done, total: merges.append((done, total)),
        on_index=lambda done, total: indexes.append((done, total)),
    )
    assert sum(reads) == source.stat().st_size and len(reads) > 10
    # Every pass over the runs reads the 400 paths (the tiny budget merges them in groups first).
    done, total = merges[-1]
    assert done == total and total % 400 == 0 and total > 400
    assert [d for d, _ in merges] == sorted(d for d, _ in merges)
    done, total = indexes[-1]
    # Each entry is read twice (count, then write); (edge a (w b)) has entries at 1, 2, 2.0, 2.1.
    assert done == total == 2 * 4 * 400
    assert [d for d, _ in indexes] == sorted(d for d, _ in indexes)


def test_the_progress_bars_show_each_phase(capsys):
    from metta_numba.commands import _BuildBars

    bars = _BuildBars(100, True)
    bars.read(100)
    bars.merge(5, 10)
    bars.merge(10, 10)
    bars.index(3, 8)
    bars.index(8, 8)
    bars.close()
    err = capsys.readouterr().err
    assert "parse+encode: 100%" in err and "merge runs: 100%" in err and "index: 100%" in err


@pytest.mark.parametrize("fan_in", [2, 3, 7])
def test_runs_merged_in_groups_first_give_the_same_snapshot(tmp_path, monkeypatch, fan_in):
    from metta_numba.bench.kbgen import write_kb

    source = tmp_path / "kb.metta"
    write_kb(300, source)
    with open(source, "a") as f:
        f.write("(= (add0 zero $x) $x)\n(: Nat Type)\n")  # copies of earlier atoms, in a later run
    _in_memory([source], tmp_path / "whole")
    # A budget of one byte reads MIN_FAN_IN runs at once: made `fan_in`, the many runs of
    # small chunks are merged in groups, over several passes, before the last merge.
    monkeypatch.setattr(chunked_build, "MIN_FAN_IN", fan_in)
    passes = []
    real = chunked_build.fewer_runs

    def counting(runs, limit, on_merge):
        merged = real(runs, limit, on_merge)
        passes.append(len(merged.folder.relative_to(runs.folder).parts))
        assert merged.n_runs <= limit
        return merged

    monkeypatch.setattr(chunked_build, "fewer_runs", counting)
    progress = []
    report = build_from_sources(
        [str(source)], tmp_path / "chunked", memory_budget=TINY_BUDGET, jobs=2, on_merge=lambda *p: progress.append(p)
    )
    assert report["runs"] > fan_in**2 and passes[0] >= 2
    # One bar over the passes and the last merge: it never goes back, and it ends full.
    done = [d for d, _ in progress]
    assert done == sorted(done) and progress[-1][0] == progress[-1][1]
    assert {total for _, total in progress} == {progress[-1][1]}
    _assert_same_snapshot(tmp_path / "whole", tmp_path / "chunked")
    assert not any(p.name.startswith(RUNS_PREFIX) for p in (tmp_path / "chunked").iterdir())


def test_build_scaling_tabulates_sizes_by_budget():
    from metta_numba.bench.build_scaling import markdown_table

    rows = [
        {"size": "large", "source_bytes": 138_600_000, "budget": "1G", "seconds": 6.04, "peak_rss_bytes": 340 << 20},
        {"size": "large", "source_bytes": 138_600_000, "budget": "256M", "seconds": 6.0, "peak_rss_bytes": 202 << 20},
        {"size": "xlarge", "source_bytes": 1_433_900_000, "budget": "1G", "seconds": 71.0, "peak_rss_bytes": 420 << 20},
    ]
    lines = markdown_table(rows).splitlines()
    assert lines[0] == "| KB (text) | budget 1G | budget 256M |"
    assert lines[2] == "| large (138.6 MB) | 6.0 s, 340 MiB | 6.0 s, 202 MiB |"
    assert lines[3] == "| xlarge (1,433.9 MB) | 71.0 s, 420 MiB |  |"  # a budget not measured is empty
