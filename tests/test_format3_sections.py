"""Store format 3's sections: leaf arrays whose values are all equal are recorded in store.meta
as one value (`leaf_constants`) instead of a section, and the argument index keys by 32-bit
hashes. Round trips against a reference count, and damage: a malformed record of the
constants (written with a valid checksum, as a faulty writer would) and a damaged key section
opened without checksums each give a typed error or correct answers, never a crash."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from metta_numba.store import generation as generation_module
from metta_numba.store import layout
from metta_numba.store.actfile import ActFile, write_act
from metta_numba.store.errors import CorruptSnapshotError
from metta_numba.store.generation import STORE_FORMAT
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import parse_atom
from metta_numba.unify import match_atom

FACTS = [f"(edge n{i} n{(i * 7 + 3) % 90})" for i in range(400)]
RULES = [f"(= (r{i} $x) (pair $x {i}))" for i in range(40)]
PATTERNS = ["(edge n5 $y)", "(edge $x n10)", "($r n7 $y)", "(= (r3 $a) $b)", "(edge $x $y)"]


def make_kb(path: Path, texts: list[str]) -> Path:
    with PersistentKB.create(path, sync="never") as kb, kb.batch():
        for text in texts:
            kb.add(parse_atom(text))
    with PersistentKB.open(path) as kb:
        kb.checkpoint()
    return path


def act_path(kb_path: Path) -> Path:
    return kb_path / layout.act_name(layout.read_current(kb_path))


def sections_and_meta(kb_path: Path) -> tuple[dict[str, np.ndarray], dict]:
    act = ActFile.open(act_path(kb_path))
    try:
        sections = {name: np.array(array) for name, array in act.arrays.items()}
    finally:
        act.close()
    return sections, json.loads(bytes(sections[generation_module.META_SECTION]).decode())


def rewrite(kb_path: Path, sections: dict[str, np.ndarray], meta: dict) -> None:
    sections = dict(sections)
    sections[generation_module.META_SECTION] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_act(act_path(kb_path), sections)


def answers(kb: PersistentKB, text: str) -> Counter:
    return Counter(str(atom) for atom, _ in kb.query(parse_atom(text)))


def reference(texts: list[str], pattern: str) -> Counter:
    atom = parse_atom(pattern)
    return Counter(str(parse_atom(t)) for t in texts if match_atom(atom, parse_atom(t)) is not None)


@pytest.fixture(scope="module")
def facts_kb(tmp_path_factory) -> Path:
    return make_kb(tmp_path_factory.mktemp("f3") / "kb", FACTS)


def test_constant_leaf_arrays_are_recorded_as_one_value(facts_kb, tmp_path):
    sections, meta = sections_and_meta(facts_kb)
    assert meta["store_format"] == STORE_FORMAT  # format 3 brought these; later formats keep them
    assert meta["leaf_constants"] == {"leaf_count": 1, "leaf_name": -1}
    assert "trie.leaf_count" not in sections and "trie.leaf_name" not in sections
    assert sections["argindex.hashes"].dtype == np.uint32
    with PersistentKB.open(facts_kb, readonly=True) as kb:
        for pattern in PATTERNS:
            assert answers(kb, pattern) == reference(FACTS, pattern), pattern
        assert kb.count(parse_atom("(edge n5 n38)")) == 1
        kb.verify()
    # Copies and names vary: those arrays are sections again, constants only where equal.
    mixed = FACTS + FACTS[:3] + RULES
    with_rules = make_kb(tmp_path / "mixed", mixed)
    sections, meta = sections_and_meta(with_rules)
    assert "trie.leaf_count" in sections and meta["leaf_constants"] == {}
    with PersistentKB.open(with_rules, readonly=True) as kb:
        assert kb.count(parse_atom(FACTS[1])) == 2 and kb.count(parse_atom(FACTS[5])) == 1
        for pattern in PATTERNS:
            assert answers(kb, pattern) == reference(mixed, pattern), pattern


def test_a_checkpoint_over_constants_adds_copies(facts_kb, tmp_path):
    path = tmp_path / "kb"
    shutil.copytree(facts_kb, path)
    with PersistentKB.open(path) as kb:
        kb.add(parse_atom(FACTS[0]))
        kb.add(parse_atom("(= (g $q) $q)"))
        kb.checkpoint()
    sections, meta = sections_and_meta(path)
    assert "leaf_count" not in meta["leaf_constants"] and "trie.leaf_count" in sections
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.count(parse_atom(FACTS[0])) == 2
        assert answers(kb, "(= (g $a) $b)") == Counter({"(= (g $q) $q)": 1})
        kb.verify()


@pytest.mark.parametrize(
    "constants",
    [
        {"leaf_count": 0, "leaf_name": -1},
        {"leaf_count": 1, "leaf_name": -2},
        {"leaf_count": "1", "leaf_name": -1},
        {"leaf_count": True, "leaf_name": -1},
        {"leaf_count": 1, "leaf_name": -1, "leaf_other": 3},
        {"leaf_count": 2**64, "leaf_name": -1},
        {"leaf_name": -1},
    ],
    ids=["count-0", "name-below-minus-1", "text", "bool", "unknown-array", "too-large", "count-missing"],
)
def test_a_malformed_constant_record_fails_at_open(facts_kb, tmp_path, constants):
    path = tmp_path / "kb"
    shutil.copytree(facts_kb, path)
    sections, meta = sections_and_meta(path)
    meta["leaf_constants"] = constants
    rewrite(path, sections, meta)
    with pytest.raises(CorruptSnapshotError):
        with PersistentKB.open(path, readonly=True) as kb:
            kb.query(parse_atom("(edge n5 $y)"))


def test_a_constant_and_its_section_together_fail_at_open(facts_kb, tmp_path):
    path = tmp_path / "kb"
    shutil.copytree(facts_kb, path)
    sections, meta = sections_and_meta(path)
    sections["trie.leaf_count"] = np.ones(meta["counts"]["paths"], np.uint8)
    rewrite(path, sections, meta)
    with pytest.raises(CorruptSnapshotError, match="leaf_count"):
        PersistentKB.open(path, readonly=True)


@pytest.mark.parametrize("fill", ["zeros", "garbage", "reversed"])
def test_damaged_index_keys_unchecked_at_open_are_typed_errors_or_answers(facts_kb, tmp_path, monkeypatch, fill):
    monkeypatch.setattr(generation_module, "OPEN_CHECK_BYTES", 0)
    path = tmp_path / "kb"
    shutil.copytree(facts_kb, path)
    act = ActFile.open(act_path(path))
    section = act.sections["argindex.hashes"]
    act.close()
    keys = np.fromfile(act_path(path), dtype=np.uint32, count=section.length // 4, offset=section.offset)
    damaged = {"zeros": np.zeros_like(keys), "garbage": keys * np.uint32(2654435761), "reversed": keys[::-1]}[fill]
    with open(act_path(path), "r+b") as f:
        f.seek(section.offset)
        f.write(np.ascontiguousarray(damaged).tobytes())
    with PersistentKB.open(path, readonly=True) as kb:
        for pattern in PATTERNS:
            try:
                found = answers(kb, pattern)
            except CorruptSnapshotError:
                continue
            # Keys that no longer match lose candidates, never invent answers.
            assert found <= reference(FACTS, pattern), pattern
        with pytest.raises(CorruptSnapshotError):
            kb.verify()


def test_snapshot_info_names_the_constants(facts_kb):
    from test_cli import cli

    proc = cli("snapshot", "info", str(facts_kb))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "  trie.leaf_name: 0 bytes, every value -1 (store.meta leaf_constants)" in lines
    assert "  trie.leaf_count: 0 bytes, every value 1 (store.meta leaf_constants)" in lines
