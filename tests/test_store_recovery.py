"""What a KB does with the remains of a crash or of a careless hand: a missing readers file, a
CURRENT naming a generation that is gone, a log cut short. Each is a precise error or a
repair that leaves a trace, never a silent loss or a misleading message."""

from __future__ import annotations

import os

import pytest

from metta_numba.store import layout
from metta_numba.store.errors import CorruptSnapshotError, LockUnsupportedError, StoreWarning
from metta_numba.store.kb import PersistentKB
from metta_numba.store.wal import scan_wal
from metta_numba.syntax import format_atom, parse_atom


def make_kb(path, logged: int = 0):
    """A KB with two atoms in generation 2 and `logged` more in its log."""
    with PersistentKB.create(path) as kb:
        kb.add(parse_atom("(a 1)"))
        kb.add(parse_atom('(b "two")'))
        kb.checkpoint()
        for i in range(logged):
            kb.add(parse_atom(f"(logged {i})"))
    return layout.read_current(path)


def atom_texts(kb) -> list[str]:
    return sorted(format_atom(a) for a in kb.atoms())


def test_missing_readers_file_is_named_to_a_reader_and_recreated_by_a_writer(tmp_path):
    path = tmp_path / "kb"
    number = make_kb(path)
    readers = path / layout.readers_name(number)
    readers.unlink()
    with pytest.raises(CorruptSnapshotError, match="readers file is missing") as caught:
        PersistentKB.open(path, readonly=True)
    assert caught.value.path == str(readers)
    assert not readers.exists(), "a reader does not repair"
    with pytest.warns(StoreWarning, match="recreated"), PersistentKB.open(path) as kb:
        assert atom_texts(kb) == ['(a 1)', '(b "two")']
    assert readers.exists()
    with PersistentKB.open(path, readonly=True) as kb:
        assert len(kb) == 2


def test_current_naming_a_missing_generation_says_so(tmp_path):
    path = tmp_path / "kb"
    number = make_kb(path)
    for name in layout.generation_files(number):
        (path / name).unlink()
    for readonly in (True, False):
        with pytest.raises(CorruptSnapshotError, match=f"CURRENT names generation {number}.*missing"):
            PersistentKB.open(path, readonly=readonly)
    assert not (path / layout.readers_name(number)).exists(), "nothing is recreated for a lost generation"


def test_torn_log_is_reported_by_verify_and_kept_aside_by_the_writer(tmp_path):
    path = tmp_path / "kb"
    number = make_kb(path, logged=10)
    wal_path = path / layout.wal_name(number)
    cut_to = wal_path.stat().st_size - 5  # inside the last record
    os.truncate(wal_path, cut_to)
    with PersistentKB.open(path, readonly=True) as kb:
        report = kb.verify()
        assert len(kb) == 2 + 9  # the record cut short is not replayed
    torn_at = scan_wal(wal_path, number).end
    assert report["torn_tail"] == (torn_at, cut_to - torn_at) and report["torn_copies"] == []
    with pytest.warns(StoreWarning, match=f"torn tail of {cut_to - torn_at} bytes at offset {torn_at}"):
        kb = PersistentKB.open(path)
    with kb:
        report = kb.verify()
        assert report["torn_tail"] is None
        assert report["torn_copies"] == [f"{wal_path.name}.torn-{torn_at}"]
        kb.add(parse_atom("(after cut)"))
    with PersistentKB.open(path, readonly=True) as kb:
        assert len(kb) == 2 + 9 + 1


def test_clean_log_reports_no_torn_tail(tmp_path):
    path = tmp_path / "kb"
    make_kb(path, logged=3)
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.verify() == {"torn_tail": None, "torn_copies": []}


def test_file_system_without_flock_opens_readers_unlocked_and_refuses_writers(tmp_path, monkeypatch):
    import errno
    import fcntl

    path = tmp_path / "kb"
    make_kb(path, logged=2)

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.warns(StoreWarning, match="does not support flock.*no writer"):
        kb = PersistentKB.open(path, readonly=True)
    with kb:
        assert atom_texts(kb) == ["(a 1)", '(b "two")', "(logged 0)", "(logged 1)"]
        assert not kb.refresh()
    with pytest.raises(LockUnsupportedError, match="cannot be opened for writing"):
        PersistentKB.open(path)
