"""Corruption test: flip bytes in, and truncate, every part of every file of a KB (the .act
header, table and each section; the .h5 metadata and each dataset; the log; CURRENT). Each
damaged copy is opened, queried and verified in a subprocess with a timeout. The outcome must
be a documented exception (store.errors) or correct answers; never a crash, a hang, another
exception type, or wrong answers that verify() lets through.

A truncated log is what a crash leaves, so its correct answers are those of any prefix of the
logged changes."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from metta_numba.store import layout
from metta_numba.store.actfile import ActFile
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import format_atom, parse_atom, parse_atoms
from metta_numba.unify import rename_apart, substitute, unify

SNAPSHOT_ATOMS = """
(parent Tom Bob) (parent Tom Liz) (parent Bob Ann) (parent Bob Pat) (parent Pat Jim)
(= (grand $x $z) (, (parent $x $y) (parent $y $z)))
(age Tom 70) (weight Bob 80.5) (alive Ann True) (said Liz "hello, world")
(long-name LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL)
"""
# Changes after the checkpoint, kept in the log: (op, atom text).
LOGGED = [
    ("add", '(said Bob "a new string")'),
    ("add", "(parent Liz Joe)"),
    ("remove", "(parent Tom Bob)"),
    ("add", "(= (twice $v) ($v $v))"),
    ("add", '(said Joe "another one")'),
]
PATTERNS = ["(parent $p $c)", "(said $who $what)", "(= (grand Tom $g) $body)", "($h Ann $r)"]


def build_base(path: Path) -> None:
    with PersistentKB.create(path, sync="never") as kb:
        for atom in parse_atoms(SNAPSHOT_ATOMS):
            kb.add(atom)
        kb.checkpoint()
        for op, text in LOGGED:
            if op == "add":
                kb.add(parse_atom(text))
            else:
                assert kb.remove(parse_atom(text))


def answers_of(atoms) -> dict:
    """Atom list and query answers, computed straight from unify over a list of atoms."""
    out = {"atoms": sorted(format_atom(a) for a in atoms)}
    for text in PATTERNS:
        pattern = parse_atom(text)
        found = []
        for atom in atoms:
            bindings = unify(pattern, rename_apart(atom))
            if bindings is not None:
                found.append(format_atom(atom))
        out[text] = sorted(found)
    return out


def expected_states() -> list[dict]:
    """Answers after each prefix of the logged changes (the last one is the full KB)."""
    atoms = list(parse_atoms(SNAPSHOT_ATOMS))
    states = [answers_of(atoms)]
    for op, text in LOGGED:
        atom = parse_atom(text)
        if op == "add":
            atoms.append(atom)
        else:
            atoms.remove(atom)
        states.append(answers_of(atoms))
    return states


def kb_answers(kb) -> dict:
    out = {"atoms": sorted(format_atom(a) for a in kb.atoms())}
    for text in PATTERNS:
        pattern = parse_atom(text)
        out[text] = sorted(format_atom(atom) for atom, _ in kb.query(pattern))
        for _, values in kb.query(pattern):
            substitute(pattern, values)
    return out


def damage_cases(base: Path, rng: random.Random) -> list[dict]:
    """(file, kind, offset) of every damage to try."""
    cases = []
    generation = layout.read_current(base)

    def flips(name, offsets):
        cases.extend(
            {"file": name, "kind": "flip", "at": int(o), "mask": rng.choice([1, 4, 0x80, 0xFF])} for o in offsets
        )

    def cuts(name, offsets):
        cases.extend({"file": name, "kind": "truncate", "at": int(o)} for o in offsets)

    act = layout.act_name(generation)
    act_size = os.path.getsize(base / act)
    flips(act, rng.sample(range(64), 8))
    table_end = 64 + 128 * len(ActFile.open(base / act).sections)
    flips(act, rng.sample(range(64, table_end), 8))
    for section in ActFile.open(base / act).sections.values():
        if section.length:
            flips(act, [section.offset + rng.randrange(section.length) for _ in range(3)])
            cuts(act, [section.offset + section.length // 2])
        cuts(act, [section.offset])
    cuts(act, [0, 32, act_size - 1])

    h5 = layout.h5_name(generation)
    h5_size = os.path.getsize(base / h5)
    flips(h5, rng.sample(range(h5_size), 16))
    with PersistentKB.open(base, readonly=True) as kb:
        datasets = kb.snapshot_generation().meta["h5"]["datasets"]
    for offset, length, _, _ in datasets.values():
        if length:
            flips(h5, [offset + rng.randrange(length) for _ in range(2)])
    cuts(h5, [0, 100, h5_size // 2, h5_size - 1])

    wal = layout.wal_name(generation)
    wal_size = os.path.getsize(base / wal)
    flips(wal, rng.sample(range(wal_size), 20))
    cuts(wal, [0, 10, 23, *rng.sample(range(24, wal_size), 10)])

    current_size = os.path.getsize(base / layout.CURRENT)
    flips(layout.CURRENT, range(current_size))
    cuts(layout.CURRENT, [0, 5, current_size - 1])
    return cases


def apply_damage(directory: Path, case: dict) -> None:
    path = directory / case["file"]
    if case["kind"] == "truncate":
        os.truncate(path, case["at"])
        return
    with open(path, "r+b") as f:
        f.seek(case["at"])
        byte = f.read(1)[0]
        f.seek(case["at"])
        f.write(bytes((byte ^ case["mask"],)))


def worker(base: Path, work: Path, cases: list[dict]) -> None:
    """Run in a subprocess: one JSON line per case."""
    from metta_numba.store.errors import SnapshotError

    for index, case in enumerate(cases):
        copy = work / f"case-{index}"
        shutil.copytree(base, copy)
        apply_damage(copy, case)
        report = {"case": index}
        try:
            with PersistentKB.open(copy, readonly=True) as kb:
                report["answers"] = kb_answers(kb)
                kb.verify()
            report["outcome"] = "ok"
        except SnapshotError as err:
            report["outcome"] = "error"
            report["error"] = f"{type(err).__name__}: {err}"
        except BaseException as err:  # anything else is a failure of the test
            report["outcome"] = "unexpected"
            report["error"] = f"{type(err).__name__}: {err}"
        shutil.rmtree(copy)
        print(json.dumps(report), flush=True)


def test_damaged_files_raise_typed_errors_or_answer_correctly(tmp_path):
    base = tmp_path / "base"
    build_base(base)
    with PersistentKB.open(base, readonly=True) as kb:
        kb.verify()
        assert kb_answers(kb) == expected_states()[-1]  # the undamaged KB is right
    cases = damage_cases(base, random.Random(7))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run(
        [sys.executable, __file__, str(base), str(work), str(tmp_path / "cases.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    last = cases[len(reports)] if len(reports) < len(cases) else None
    assert proc.returncode == 0, f"worker died ({proc.returncode}) on case {last}: {proc.stderr[-2000:]}"
    assert len(reports) == len(cases)
    states = expected_states()
    outcomes = {"ok": 0, "error": 0}
    for report in reports:
        case = cases[report["case"]]
        assert report["outcome"] in ("ok", "error"), (case, report)
        if report["outcome"] == "ok":
            acceptable = states if case["file"].endswith(".log") and case["kind"] == "truncate" else states[-1:]
            assert report["answers"] in acceptable, (case, report)
        outcomes[report["outcome"]] += 1
    assert outcomes["error"] > len(cases) // 2  # most damage is detected, not shrugged off


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()))
