"""`snapshot upgrade` of KBs written in store formats 1, 2 and 3 (tests/data/store_format1 to
store_format3, made by the library before each later format): opening one untouched names both
versions and the command; the upgrade keeps every atom, copy and answer, delta log included,
and the insertion order of a saved program, as a new generation."""

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

DATA = Path(__file__).parent / "data"
OLD_FORMATS = [1, 2, 3]
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


def old_data(old_format: int) -> Path:
    return DATA / f"store_format{old_format}"


def copy_of(name: str, tmp_path: Path, old_format: int = 1) -> Path:
    target = tmp_path / f"{name}-{old_format}"
    shutil.copytree(old_data(old_format) / name, target)
    return target


def expected_atoms(name: str) -> Counter:
    """The reference: the source's atoms as text, with the logged changes applied (both
    formats' fixtures hold the same source and changes)."""
    atoms = Counter(str(atom) for atom in parse_atoms((old_data(1) / "source.metta").read_text()))
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


@pytest.mark.parametrize("old_format", OLD_FORMATS)
@pytest.mark.parametrize("name", ["kb", "kb_tree"])
def test_an_old_kb_opened_untouched_names_both_versions_and_the_upgrade(name, old_format, tmp_path):
    path = copy_of(name, tmp_path, old_format)
    for readonly in (True, False):
        with pytest.raises(OutdatedFormatError) as caught:
            PersistentKB.open(path, readonly=readonly)
        err = caught.value
        assert isinstance(err, UnsupportedFormatError)
        assert (err.found, err.supported) == (old_format, STORE_FORMAT)
        assert f"store format {old_format}" in str(err) and f"store format {STORE_FORMAT}" in str(err)
        assert f"snapshot upgrade {path}" in str(err)
    proc = cli("query", str(path), "(edge $x n_2)")
    assert proc.returncode == 3
    assert "snapshot upgrade" in proc.stderr and proc.stdout == ""
    # Nothing was written but the writer's lock file.
    original_files = list((old_data(old_format) / name).iterdir())
    for original in original_files:
        assert (path / original.name).read_bytes() == original.read_bytes(), original.name
    assert {p.name for p in path.iterdir()} - {p.name for p in original_files} <= {"LOCK"}


@pytest.mark.parametrize("old_format", OLD_FORMATS)
@pytest.mark.parametrize("name", ["kb", "kb_tree"])
def test_upgrade_keeps_every_atom_and_answer(name, old_format, tmp_path):
    path = copy_of(name, tmp_path, old_format)
    report = snapshot_upgrade(path)
    assert (report["previous_generation"], report["generation"]) == (1, 2)
    assert (report["previous_format"], report["format"]) == (old_format, STORE_FORMAT)
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


@pytest.mark.parametrize("old_format", OLD_FORMATS)
def test_the_upgrade_command(old_format, tmp_path):
    path = copy_of("kb", tmp_path, old_format)
    proc = cli("snapshot", "upgrade", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"store format {old_format}" in proc.stdout and f"store format {STORE_FORMAT}" in proc.stdout
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


def order_of(kb: PersistentKB) -> list[str]:
    """The generation's recorded insertion order: each copy as text with its own names."""
    from metta_numba.codec import decode

    generation = kb.snapshot_generation()
    recorded = generation.insertion_order()
    assert recorded is not None
    out = []
    for rank, name_id in zip(*(column.tolist() for column in recorded), strict=True):
        own = None if name_id < 0 else generation.terms.text(name_id).split(" ")
        out.append(repr(decode(generation.trie.path(rank), generation.terms, own)))
    return out


def program_order() -> list[str]:
    """What the fixture's program leaves in its space, in order (the in-memory reference)."""
    from metta_numba.interp import MeTTa

    runner = MeTTa()
    runner.run_program((old_data(2) / "program.metta").read_text())
    return [repr(atom) for atom in runner.space.atoms()]


@pytest.mark.parametrize("old_format", [2, 3])
def test_upgrade_and_checkpoints_carry_the_insertion_order(tmp_path, old_format):
    path = copy_of("kb_order", tmp_path, old_format)
    expected = program_order()
    snapshot_upgrade(path)
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.snapshot_generation().store_format == STORE_FORMAT
        assert order_of(kb) == expected
    # A checkpoint with changes: removed copies leave the order (a path's latest copy first),
    # the others keep their places under their new ranks, added copies follow.
    changes = [
        ("add", "(edge a a)"),
        ("remove", "(edge a b)"),
        ("add", "(= (twice $q) (* 2 $q))"),
        ("add", "(edge a a)"),
        ("remove", "(colour b red)"),
        ("add", "(zzz 1)"),
    ]
    with PersistentKB.open(path) as kb:
        for how, text in changes:
            if how == "add":
                kb.add(parse_atom(text))
            else:
                assert kb.remove(parse_atom(text))
        kb.checkpoint()
    reference = list(expected)
    for how, text in changes:
        if how == "remove":
            del reference[max(i for i, atom in enumerate(reference) if atom == text)]
    reference += ["(edge a a)", "(edge a a)", "(= (twice $q) (* 2 $q))", "(zzz 1)"]
    with PersistentKB.open(path, readonly=True) as kb:
        assert order_of(kb) == reference
        # Each path is listed once per copy the trie holds.
        generation = kb.snapshot_generation()
        listed = Counter(generation.insertion_order()[0].tolist())
        trie = generation.trie
        assert listed == {rank: trie.count(trie.path(rank)) for rank in range(len(trie))}
        kb.verify()
    # A checkpoint without changes (snapshot compact) keeps it as it is.
    with PersistentKB.open(path) as kb:
        kb.add(parse_atom("(tmp 1)"))
        assert kb.remove(parse_atom("(tmp 1)"))
        kb.checkpoint()
    with PersistentKB.open(path, readonly=True) as kb:
        assert order_of(kb) == reference
