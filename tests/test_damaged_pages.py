"""A whole zeroed or garbage page in any section of a generation (every trie and index array of
the .act file, every dataset of the .h5 sidecar) is an error before the first answer: by
default for a generation under store.generation.OPEN_CHECK_BYTES, and with verify=True (or
--verify) for any size. Never a wrong answer with exit 0."""

from __future__ import annotations

import shutil

import pytest
from test_cli import cli

from metta_numba.store import generation as generation_module
from metta_numba.store import layout
from metta_numba.store.actfile import ActFile
from metta_numba.store.errors import CorruptSnapshotError
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import parse_atom

PAGE = 4096
FACTS = [f'(edge n{i} n{(i * 7 + 3) % 300} "label {i % 50}")' for i in range(3000)]
FACTS += [f"(= (rule{i} $x) (pair $x {i}))" for i in range(500)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages") / "kb"
    with PersistentKB.create(path, sync="never") as kb, kb.batch():
        for text in FACTS:
            kb.add(parse_atom(text))
    with PersistentKB.open(path) as kb:
        kb.checkpoint()
    return path


def regions(kb_path) -> list[tuple[str, str, int, int]]:
    """(label, file, offset, length) of every section and dataset with bytes."""
    number = layout.read_current(kb_path)
    act_name, h5_name = layout.act_name(number), layout.h5_name(number)
    out = []
    for section in ActFile.open(kb_path / act_name).sections.values():
        if section.length and section.name != generation_module.META_SECTION:
            out.append((section.name, act_name, section.offset, section.length))
    with PersistentKB.open(kb_path, readonly=True) as kb:
        datasets = kb.snapshot_generation().meta["h5"]["datasets"]
    for name, (offset, length, _, _) in datasets.items():
        if length:
            out.append((name, h5_name, offset, length))
    return out


def damage_page(path, offset: int, length: int, garbage: bool) -> None:
    """Overwrite one page-sized piece of a region (all of it when shorter): zeros, or a
    garbage pattern where the bytes are zero already."""
    start = offset + max(0, (length - PAGE) // 2) // PAGE * PAGE if length > PAGE else offset
    size = min(PAGE, offset + length - start)
    with open(path, "r+b") as f:
        f.seek(start)
        old = f.read(size)
        new = bytes(size) if not garbage and any(old) else bytes((0xA5 + i * 31) % 256 for i in range(size))
        if new == old:
            new = bytes(size)
        f.seek(start)
        f.write(new)


def opens_and_answers(kb_path, verify: bool) -> None:
    with PersistentKB.open(kb_path, readonly=True, verify=verify) as kb:
        kb.query(parse_atom("(edge n5 $y $l)"))
        kb.query(parse_atom("(= (rule7 $x) $body)"))


@pytest.mark.parametrize("garbage", [False, True], ids=["zeroed", "garbage"])
def test_a_damaged_page_in_any_section_fails_the_default_open(base, tmp_path, garbage):
    found = regions(base)
    assert {label.split(".")[0] for label, *_ in found} >= {"trie", "argindex", "terms/blob"}
    for label, file, offset, length in found:
        copy = tmp_path / label.replace("/", "_")
        shutil.copytree(base, copy)
        damage_page(copy / file, offset, length, garbage)
        with pytest.raises(CorruptSnapshotError):
            opens_and_answers(copy, verify=False)
        shutil.rmtree(copy)


def test_above_the_open_check_size_verify_true_still_finds_the_damage(base, tmp_path, monkeypatch):
    monkeypatch.setattr(generation_module, "OPEN_CHECK_BYTES", 0)
    label, file, offset, length = next(r for r in regions(base) if r[0] == "trie.labels")
    copy = tmp_path / "big"
    shutil.copytree(base, copy)
    opens_and_answers(copy, verify=True)  # the undamaged KB passes
    damage_page(copy / file, offset, length, garbage=True)
    with pytest.raises(CorruptSnapshotError, match=label):
        opens_and_answers(copy, verify=True)


def test_query_command_exits_3_on_a_zeroed_page(base, tmp_path):
    label, file, offset, length = next(r for r in regions(base) if r[0].startswith("trie."))
    copy = tmp_path / "cli"
    shutil.copytree(base, copy)
    damage_page(copy / file, offset, length, garbage=False)
    for args in (["query", str(copy), "(edge n5 $y $l)"], ["query", "--verify", str(copy), "(edge n5 $y $l)"]):
        proc = cli(*args)
        assert proc.returncode == 3 and "checksum" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
