"""`snapshot upgrade` of KBs written in store format 1 (tests/data/store_format1, made by the
library before the compact format): opening one untouched names both versions and the command;
the upgrade keeps every atom, copy and answer, delta log included, as a new generation."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_cli import cli

from metta_numba.store import layout
from metta_numba.store.errors import OutdatedFormatError, UnsupportedFormatError
from metta_numba.store.generation import STORE_FORMAT
from metta_numba.store.kb import PersistentKB
from metta_numba.store.snapshot import snapshot_upgrade
from metta_numba.syntax import parse_atom
from metta_numba.syntax.parser import parse_atoms
from metta_numba.unify import match_atom

DATA = Path(__file__).parent / "data" / "store_format1"
# The changes the fixture `kb` holds in its delta log (see its README).
LOGGED_ADDS = ["(edge n_100 n_200)", '(= (f0 $z) (added "in the log" $z))']
LOGGED_REMOVES = ["(edge n_1 n_2)", "(weight n_4 -17)"]
PATTERNS = [
    "(edge n_1 $y)",
    "(edge $x n_2)",
    "(edge $x $y)",
    "(= (f0 $a) $r)",
    "(= (f3 7) $r)",
    "(: $item (-> Number Atom))",
    "(label $n $text)",
    "(weight $n $w)",
    "(nested (a (b (c 1))) $q)",
    "(pair 5 $v)",
    "$anything",
    "(edge n_100 $y)",
]


def copy_of(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def expected_atoms(name: str) -> Counter:
    """The reference: the source's atoms as text, with the logged changes applied."""
    atoms = Counter(str(atom) for atom in parse_atoms((DATA / "source.metta").read_text()))
    if name == "kb":
        atoms.update(str(parse_atom(text)) for text in LOGGED_ADDS)
        atoms.subtract(str(parse_atom(text)) for text in LOGGED_REMOVES)
    return +atoms


def stored_atoms(kb: PersistentKB) -> Counter:
    return Counter({str(atom): count for atom, count in kb.atom_counts()})


def answers(kb: PersistentKB, text: str) -> Counter:
    return Counter(str(atom) for atom, _ in kb.query(parse_atom(text)))


def reference_answers(atoms: Counter, text: str) -> Counter:
    pattern = parse_atom(text)
    found = Counter()
    for atom_text, count in atoms.items():
        if match_atom(pattern, parse_atom(atom_text)) is not None:
            found[atom_text] += count
    return found


@pytest.mark.parametrize("name", ["kb", "kb_tree"])
def test_an_old_kb_opened_untouched_names_both_versions_and_the_upgrade(name, tmp_path):
    path = copy_of(name, tmp_path)
    for readonly in (True, False):
        with pytest.raises(OutdatedFormatError) as caught:
            PersistentKB.open(path, readonly=readonly)
        err = caught.value
        assert isinstance(err, UnsupportedFormatError)
        assert (err.found, err.supported) == (1, STORE_FORMAT)
        assert "store format 1" in str(err) and f"store format {STORE_FORMAT}" in str(err)
        assert f"snapshot upgrade {path}" in str(err)
    proc = cli("query", str(path), "(edge $x n_2)")
    assert proc.returncode == 3
    assert "snapshot upgrade" in proc.stderr and proc.stdout == ""
    # Nothing was written but the writer's lock file.
    for original in (DATA / name).iterdir():
        assert (path / original.name).read_bytes() == original.read_bytes(), original.name
    assert {p.name for p in path.iterdir()} - {p.name for p in (DATA / name).iterdir()} <= {"LOCK"}


@pytest.mark.parametrize("name", ["kb", "kb_tree"])
def test_upgrade_keeps_every_atom_and_answer(name, tmp_path):
    path = copy_of(name, tmp_path)
    report = snapshot_upgrade(path)
    assert (report["previous_generation"], report["generation"]) == (1, 2)
    assert (report["previous_format"], report["format"]) == (1, STORE_FORMAT)
    assert report["changes_folded"] == (4 if name == "kb" else 0)
    assert layout.read_current(path) == 2
    assert not (path / layout.act_name(1)).exists()
    reference = expected_atoms(name)
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.snapshot_generation().store_format == STORE_FORMAT
        assert kb.snapshot_generation().index is not None
        assert kb.pending_changes == 0
        assert kb.snapshot_generation().trie.merkleized == (name == "kb")
        assert stored_atoms(kb) == reference
        for text in PATTERNS:
            assert answers(kb, text) == reference_answers(reference, text), text
        kb.verify()


def test_a_second_upgrade_changes_nothing(tmp_path):
    path = copy_of("kb_tree", tmp_path)
    snapshot_upgrade(path)
    again = snapshot_upgrade(path)
    assert again["generation"] == again["previous_generation"] == 2


def test_the_upgrade_command(tmp_path):
    path = copy_of("kb", tmp_path)
    proc = cli("snapshot", "upgrade", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "store format 1" in proc.stdout and f"store format {STORE_FORMAT}" in proc.stdout
    proc = cli("query", str(path), "(edge n_100 $y)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "(edge n_100 n_200)"
    proc = cli("snapshot", "info", str(path))
    assert f"format: store {STORE_FORMAT}" in proc.stdout
    assert "argindex.ranks:" in proc.stdout and "packed:" in proc.stdout


def test_an_upgraded_kb_takes_changes_and_checkpoints(tmp_path):
    path = copy_of("kb", tmp_path)
    snapshot_upgrade(path)
    reference = expected_atoms("kb")
    with PersistentKB.open(path) as kb:
        kb.add(parse_atom("(edge n_7 n_8)"))
        assert kb.remove(parse_atom("(edge n_100 n_200)"))
        kb.checkpoint()
    reference.update(["(edge n_7 n_8)"])
    reference.subtract(["(edge n_100 n_200)"])
    with PersistentKB.open(path, readonly=True) as kb:
        assert stored_atoms(kb) == +reference
