"""Sharded KBs opened in one process (dist.sharded_kb): the same answers as the unsharded KB,
saves that land on all shards or none, and clear errors for a missing or corrupt shard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from shard_kbs import kb_queries, kb_source

from metta_numba.cli import main
from metta_numba.codec.terms import TermStore
from metta_numba.dist.manifest import JOURNAL, read_manifest
from metta_numba.dist.partition import shard_of
from metta_numba.dist.shard_build import BuildOptions, build_sharded
from metta_numba.dist.sharded_kb import ShardedKB, ShardedSpace, commit_changes
from metta_numba.interp.runner import MeTTa
from metta_numba.space import SnapshotSpace
from metta_numba.store import PersistentKB, build_snapshot
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.parser import parse_atom
from metta_numba.syntax.printer import format_atom

ROOT = Path(__file__).resolve().parent.parent


def _build_pair(tmp: Path, text: str, shards: int) -> tuple[Path, Path]:
    source = tmp / "kb.metta"
    source.write_text(text)
    plain, sharded = tmp / "plain", tmp / "sharded"
    terms = TermStore()
    build_snapshot(encode_source(source.read_bytes(), str(source), terms), terms, plain, overwrite=True)
    build_sharded([str(source)], sharded, shards, BuildOptions())
    return plain, sharded


def _answers(space, query: str) -> list[str]:
    """A query's results as a sorted list of texts (a multiset)."""
    return sorted(format_atom(a) for a in MeTTa(space=space).run("!" + query)[0])


@pytest.mark.parametrize(("seed", "shards"), [(11, 2), (523, 3), (9001, 4)])
def test_sharded_answers_equal_unsharded(tmp_path, seed, shards):
    plain, sharded = _build_pair(tmp_path, kb_source(seed), shards)
    with PersistentKB.open(plain, readonly=True) as one, ShardedKB.open(sharded) as many:
        assert len(many) == len(one)
        assert sorted(map(format_atom, many.atoms())) == sorted(map(format_atom, one.atoms()))
        for query in kb_queries(seed):
            assert _answers(ShardedSpace(many), query) == _answers(SnapshotSpace(one), query), query


def test_each_atom_sits_in_its_shard_and_plain_queries_match(tmp_path):
    plain, sharded = _build_pair(tmp_path, kb_source(7, size=120), 3)
    manifest = read_manifest(sharded)
    for index in range(manifest.shards):
        with PersistentKB.open(manifest.shard_path(index), readonly=True) as kb:
            assert all(shard_of(atom, 3) == index for atom in kb.atoms())
    with PersistentKB.open(plain, readonly=True) as one, ShardedKB.open(sharded) as many:
        for text in ("(edge n1 $y)", "(edge $x n2)", "(val 3 $y)", "($h n0)", "(= (f $x) $r)", "$any"):
            pattern = parse_atom(text)
            assert _matches(many, pattern) == _matches(one, pattern), text


def _matches(kb, pattern) -> list[str]:
    """(atom, values) of every match, as texts with fresh-variable numbers blanked (each KB
    numbers its renamed variables its own way)."""
    rows = (format_atom(a) + " " + " ".join(sorted(format_atom(v) for v in b.values())) for a, b in kb.query(pattern))
    return sorted(re.sub(r"#\d+", "#", row) for row in rows)


@pytest.fixture
def cli(capsys):
    """Run the command line in this process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_build_query_info_verify_and_run(tmp_path, cli):
    source = tmp_path / "kb.metta"
    source.write_text("(edge a b)\n(edge a c)\n(edge $x z)\n(= (f $x) (g $x))\n(= (g 1) one)\n(val 3.0 x)\n")
    kb = tmp_path / "kb"
    code, out, err = cli("snapshot", "build", str(source), "-o", str(kb), "--shards", "2")
    assert code == 0, err
    assert (kb / "shards.json").is_file() and (kb / "shard-000" / "CURRENT").is_file()
    code, out, _ = cli("query", str(kb), "(edge a $y)", "$y")
    assert code == 0 and sorted(out.split()) == ["b", "c", "z"]
    code, out, _ = cli("snapshot", "info", str(kb))
    assert code == 0 and "shards: 2" in out and "atoms: 6" in out
    assert cli("snapshot", "verify", str(kb))[0] == 0
    program = tmp_path / "p.metta"
    program.write_text("!(f 1)\n!(add-atom &self (edge q r))\n!(remove-atom &self (edge a b))\n")
    code, out, err = cli("run", str(program), "--load-snapshot", str(kb), "--save-snapshot", str(kb))
    assert code == 0, err
    assert out.splitlines() == ["[one]", "[()]", "[()]"]
    code, out, _ = cli("query", str(kb), "(edge $x $y)", "($x $y)")
    assert sorted(re.sub(r"#\d+", "", line) for line in out.splitlines()) == ["($x z)", "(a c)", "(q r)"]


def test_missing_or_corrupt_shard_is_exit_3_naming_the_shard(tmp_path, cli):
    _, sharded = _build_pair(tmp_path, kb_source(3), 3)
    (sharded / "shard-001" / "CURRENT").write_bytes(b"garbage\n")
    code, _, err = cli("query", str(sharded), "(edge $x $y)")
    assert code == 3 and "shard 1 of 3" in err and "shard-001" in err
    os.rename(sharded / "shard-001", tmp_path / "moved")
    code, _, err = cli("snapshot", "info", str(sharded))
    assert code == 3 and "shard 1 of 3 is missing" in err and "shard-001" in err
    os.rename(tmp_path / "moved", sharded / "shard-001")
    (sharded / "shards.json").write_text("{not json")
    code, _, err = cli("query", str(sharded), "(edge $x $y)")
    assert code == 3 and "shards.json" in err


def test_verify_names_a_shard_whose_trie_file_is_damaged(tmp_path, cli):
    _, sharded = _build_pair(tmp_path, kb_source(5, size=200), 2)
    act = next((sharded / "shard-001").glob("gen-*.act"))
    data = bytearray(act.read_bytes())
    data[len(data) // 2] ^= 0xFF
    act.write_bytes(bytes(data))
    code, _, err = cli("snapshot", "verify", str(sharded))
    assert code == 3 and "shard 1 of 2" in err


# ---- saves: all shards or none ------------------------------------------------------------------

_CRASHING_SAVE = """
import os, sys
from metta_numba.dist import manifest as mf, sharded_kb
from metta_numba.syntax.parser import parse_atom
point = sys.argv[2]
if point == "before-commit":
    mf.write_journal = lambda *a: os._exit(9)
else:
    from metta_numba.store import layout
    switch = layout.write_current
    calls = []
    def one_then_die(directory, number):
        if calls:
            os._exit(9)
        calls.append(directory)
        switch(directory, number)
    layout.write_current = one_then_die
added = [parse_atom(t) for t in sys.argv[3:]]
sharded_kb.commit_changes(sys.argv[1], added, [parse_atom("(edge n0 n1)")])
"""


def _contents(kb_path: Path) -> list[str]:
    with ShardedKB.open(kb_path) as kb:
        return sorted(map(format_atom, kb.atoms()))


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_save_killed_midway_lands_everywhere_or_nowhere(tmp_path, point):
    source = "".join(f"(edge n{i} n{i + 1})\n(= (f{i} $x) $x)\n" for i in range(12))
    _, sharded = _build_pair(tmp_path, source, 3)
    before = _contents(sharded)
    added = [f"(edge m{i} k)" for i in range(12)] + [f"(= (h{i}) {i})" for i in range(6)]
    assert len({shard_of(parse_atom(t), 3) for t in added}) == 3  # every shard changes
    run = subprocess.run(
        [sys.executable, "-c", _CRASHING_SAVE, str(sharded), point, *added], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 9, run.stderr
    after = _contents(sharded)
    expected = sorted([t for t in before if t != "(edge n0 n1)"] + added)
    if point == "before-commit":
        assert after == before
    else:
        assert after == expected
    assert not (sharded / JOURNAL).exists()
    # And a save that runs to its end lands everywhere.
    commit_changes(sharded, [parse_atom("(edge z z)")], [])
    assert "(edge z z)" in _contents(sharded)


_SAVE_LOOP = """
import sys
from metta_numba.dist import sharded_kb
from metta_numba.syntax.parser import parse_atom
added = [parse_atom(t) for t in sys.argv[2:]]
print("ready", flush=True)
sharded_kb.commit_changes(sys.argv[1], added, [])
print("saved", flush=True)
"""


def test_a_save_killed_at_a_random_moment_is_all_or_nothing(tmp_path):
    import random
    import signal
    import time

    source = "".join(f"(edge n{i} n{i + 1})\n(= (f{i} $x) $x)\n" for i in range(12))
    _, sharded = _build_pair(tmp_path, source, 3)
    rng = random.Random(4)
    for round_ in range(3):
        before = _contents(sharded)
        added = [f"(edge r{round_}x{i} k)" for i in range(12)]
        child = subprocess.Popen(
            [sys.executable, "-c", _SAVE_LOOP, str(sharded), *added], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        after = _contents(sharded)
        assert after in (before, sorted(before + added))
        assert not (sharded / JOURNAL).exists()


def test_a_parse_error_in_a_later_byte_range_names_its_place_in_the_file(tmp_path, monkeypatch, cli):
    monkeypatch.setattr("metta_numba.dist.shard_build.MIN_RANGE_BYTES", 64)
    lines = [f"(edge n{i} n{i + 1})" for i in range(40)]
    lines[33] = '(edge n33 "unclosed)'
    source = tmp_path / "bad.metta"
    source.write_text("\n".join(lines) + "\n")
    code, _, plain_err = cli("snapshot", "build", str(source), "-o", str(tmp_path / "plain"))
    assert code == 1 and ":34:" in plain_err
    code, _, sharded_err = cli("snapshot", "build", str(source), "-o", str(tmp_path / "sharded"), "--shards", "2")
    assert code == 1 and sharded_err == plain_err
    assert not (tmp_path / "sharded" / "shards.json").exists()
