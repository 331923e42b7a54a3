"""Sharded builds and batches on a Dask LocalCluster of 2 worker processes (one cluster for the
module: starting one costs seconds)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shard_kbs import kb_queries, kb_source

from metta_numba.codec.terms import TermStore
from metta_numba.dist.batch import BatchOptions, run_batch, run_chunk
from metta_numba.dist.manifest import read_manifest
from metta_numba.dist.shard_build import BuildOptions, build_sharded
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.parser import parse_atoms
from metta_numba.syntax.printer import format_atom

distributed = pytest.importorskip("dask.distributed")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _shard_contents(kb_path: Path) -> list[list[str]]:
    manifest = read_manifest(kb_path)
    out = []
    for index in range(manifest.shards):
        with PersistentKB.open(manifest.shard_path(index), readonly=True) as kb:
            out.append(sorted(map(format_atom, kb.atoms())))
    return out


def test_a_distributed_build_equals_the_local_one(tmp_path, client, monkeypatch):
    # Small ranges, so that the 2 workers each get several byte ranges of each source.
    monkeypatch.setattr("metta_numba.dist.shard_build.MIN_RANGE_BYTES", 1500)
    sources = []
    for seed in (1, 2):
        path = tmp_path / f"part{seed}.metta"
        path.write_text(kb_source(seed, size=400))
        sources.append(str(path))
    report = build_sharded(sources, tmp_path / "dask", 3, BuildOptions(merkleize=False), client=client)
    assert report["ranges"] > 2 and report["workers"] == 2
    build_sharded(sources, tmp_path / "local", 3, BuildOptions(merkleize=False))
    assert _shard_contents(tmp_path / "dask") == _shard_contents(tmp_path / "local")
    every_atom = sorted(format_atom(a) for s in sources for a in parse_atoms(Path(s).read_text()))
    assert sorted(t for shard in _shard_contents(tmp_path / "dask") for t in shard) == every_atom
    assert not (tmp_path / "dask" / ".runs").exists()


def _plain_kb(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "kb.metta"
    source.write_text(text)
    terms = TermStore()
    build_snapshot(encode_source(source.read_bytes(), str(source), terms), terms, tmp_path / "plain")
    return tmp_path / "plain"


def _multiset(line: str) -> list[str]:
    """The results of a simple result line as a sorted list (no nested commas in these KBs),
    fresh-variable numbers blanked."""
    return sorted(re.sub(r"#\d+", "#", item) for item in line[1:-1].split(", ") if item)


def test_batch_on_sharded_and_plain_kbs_gives_the_same_lines(tmp_path, client):
    text = kb_source(42, size=150)
    plain = _plain_kb(tmp_path, text)
    (tmp_path / "src.metta").write_text(text)
    sharded = tmp_path / "sharded"
    build_sharded([str(tmp_path / "src.metta")], sharded, 2, BuildOptions())
    queries = kb_queries(42, count=60)
    options = BatchOptions(chunk_size=4)
    plain_lines: list[str] = []
    run_batch(client, str(plain), queries, plain_lines.append, options=options)
    sharded_lines: list[str] = []
    stats = run_batch(client, str(sharded), queries, sharded_lines.append, options=options)
    assert [_multiset(x) for x in sharded_lines] == [_multiset(x) for x in plain_lines]
    assert stats.routed_chunks > 0 and stats.workers == 2
    # Lines come in file order: the same as one in-process run, query by query.
    assert [_multiset(x) for x in plain_lines] == [_multiset(x) for x in run_chunk(str(plain), queries)]


def test_batch_queries_do_not_leak_timeouts_and_caps(tmp_path, client):
    kb = _plain_kb(
        tmp_path,
        "(edge a b)\n(edge a c)\n(edge a d)\n(= (countdown $n) (if (== $n 0) $n (countdown (- $n 1))))\n",
    )
    queries = [
        "(add-atom &self (edge a NEW))",
        "(match &self (edge a NEW) yes)",
        "(countdown 100000000)",
        "(match &self (edge a $y) $y)",
        "(countdown 5)",
    ]
    lines: list[str] = []
    run_batch(client, str(kb), queries, lines.append, options=BatchOptions(timeout=1.0, max_results=2, chunk_size=5))
    assert lines[0] == "[()]"
    assert lines[1] == "[]"  # the atom the first query added is gone with its session
    assert lines[2].startswith("[(Error (countdown 100000000)") and "timed out after 1 s" in lines[2]
    assert len(_multiset(lines[3])) == 2 and set(_multiset(lines[3])) <= {"b", "c", "d"}
    assert lines[4] == "[0]"


def test_a_batch_killed_and_resumed_prints_every_line_once(tmp_path):
    kb = _plain_kb(tmp_path, "(= (countdown $n) (if (== $n 0) $n (countdown (- $n 1))))\n")
    count = 2000  # enough work left after 20 lines that the kill lands mid-batch on a fast or busy machine
    (tmp_path / "q.metta").write_text("".join(f"!(+ {i} (countdown 200))\n" for i in range(count)))
    out = tmp_path / "out.txt"
    command = [sys.executable, "-m", "metta_numba", "batch", str(kb), str(tmp_path / "q.metta"), "-o", str(out)]
    first = subprocess.Popen([*command, "--workers", "2", "--chunk-size", "10"], cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 20:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the batch ended before it could be killed"
    finally:
        import os

        os.killpg(first.pid, signal.SIGKILL)  # the client and its LocalCluster workers
        first.wait()
    partial = out.read_bytes().count(b"\n")
    assert 20 <= partial < count
    resumed = subprocess.run([*command, "--resume", "--workers", "1"], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert out.read_text().splitlines() == [f"[{i}]" for i in range(count)]


def test_batch_without_dask_says_what_to_install(tmp_path, monkeypatch, capsys):
    from metta_numba.cli import main

    kb = _plain_kb(tmp_path, "(edge a b)\n")
    (tmp_path / "q.metta").write_text("!(match &self (edge a $y) $y)\n")
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # `import dask.distributed` fails
    assert main(["batch", str(kb), str(tmp_path / "q.metta")]) == 1
    assert "metta-numba[dist]" in capsys.readouterr().err


def test_a_worker_that_joins_during_a_batch_gets_work(tmp_path):
    from metta_numba.dist import batch as batch_module

    kb = _plain_kb(tmp_path, "(= (countdown $n) (if (== $n 0) $n (countdown (- $n 1))))\n")
    queries = [f"(+ {i} (countdown 300))" for i in range(300)]
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with distributed.Client(cluster) as c:
            lines: list[str] = []

            def emit(line: str) -> None:
                if not lines:
                    cluster.scale(2)  # the batch is under way: a second worker joins
                    c.wait_for_workers(2, timeout=120)
                lines.append(line)

            stats = run_batch(c, str(kb), queries, emit, options=BatchOptions(chunk_size=5))
            assert lines == [f"[{i}]" for i in range(300)]
            assert stats.workers == 2
            # Every worker that ran a chunk has the KB open.
            opened = c.run(lambda: sorted(batch_module._WORKER_KBS))
            assert len(opened) == 2 and all(paths == [str(kb.resolve())] for paths in opened.values())
    finally:
        cluster.close()
