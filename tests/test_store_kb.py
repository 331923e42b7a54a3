"""PersistentKB behaviour: changes, queries, generations, locking, the log, sync modes, and the
snapshot build/info/verify/compact functions."""

from __future__ import annotations

import os

import pytest

from metta_numba.atoms import E, G, S, V
from metta_numba.store import layout
from metta_numba.store.errors import LockedError, SnapshotError, StoreWarning, WalCorruptError
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import format_atom, parse_atom, parse_atoms


def texts(atoms):
    return sorted(format_atom(a) for a in atoms)


def answer_texts(results, pattern_vars):
    return sorted(tuple(format_atom(values[V(name)]) for name in pattern_vars) for _, values in results)


FAMILY = """
(parent Tom Bob) (parent Tom Liz) (parent Bob Ann) (parent Bob Pat) (parent Pat Jim)
(= (grand $x $z) (, (parent $x $y) (parent $y $z)))
(age Tom 70) (weight Bob 80.5) (alive Ann True) (said Liz "hello, world")
(long-one LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL)
"""


@pytest.fixture
def kb(tmp_path):
    with PersistentKB.create(tmp_path / "kb") as kb:
        yield kb


def fill(kb, text=FAMILY):
    atoms = parse_atoms(text)
    for atom in atoms:
        kb.add(atom)
    return atoms


@pytest.mark.parametrize("checkpoint", [False, True])
def test_add_query_count_survive_reopen(tmp_path, checkpoint):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        atoms = fill(kb)
        if checkpoint:
            assert kb.checkpoint() == 2
        assert texts(kb.atoms()) == texts(atoms)
    with PersistentKB.open(path) as kb:
        assert texts(kb.atoms()) == texts(atoms)
        assert len(kb) == len(atoms)
        got = kb.query(parse_atom("(parent Bob $c)"))
        assert answer_texts(got, ["c"]) == [("Ann",), ("Pat",)]
        assert kb.count(parse_atom('(said Liz "hello, world")')) == 1
        assert kb.count(parse_atom("(age Tom 70)")) == 1
        assert kb.count(parse_atom("(age Tom 71)")) == 0
        assert kb.count(parse_atom('(said Liz "never stored")')) == 0
        assert answer_texts(kb.query(parse_atom("(weight Bob $w)")), ["w"]) == [("80.5",)]
        assert answer_texts(kb.query(parse_atom("(alive $who True)")), ["who"]) == [("Ann",)]
        assert answer_texts(kb.query(parse_atom("(long-one $l)")), ["l"]) == [("L" * 76,)]


def test_multiset_and_remove(kb):
    fact = parse_atom("(likes Sam tea)")
    kb.add(fact)
    kb.add(fact)
    assert kb.count(fact) == 2
    assert len(kb.query(parse_atom("(likes Sam $x)"))) == 2
    assert kb.remove(fact)
    assert kb.count(fact) == 1
    kb.checkpoint()
    assert kb.count(fact) == 1
    assert kb.remove(fact)
    assert not kb.remove(fact)
    assert kb.count(fact) == 0
    assert kb.query(parse_atom("(likes $a $b)")) == []
    assert not kb.remove(parse_atom('(likes "unknown text" x)'))


def test_removing_a_snapshot_atom_then_adding_it_back(kb):
    fill(kb)
    kb.checkpoint()
    atom = parse_atom("(parent Tom Bob)")
    assert kb.remove(atom)
    assert answer_texts(kb.query(parse_atom("(parent Tom $c)")), ["c"]) == [("Liz",)]
    kb.add(atom)
    kb.add(atom)
    assert answer_texts(kb.query(parse_atom("(parent Tom $c)")), ["c"]) == [("Bob",), ("Bob",), ("Liz",)]
    kb.checkpoint()
    assert kb.count(atom) == 2


@pytest.mark.parametrize("pending", [False, True])
def test_ground_queries_find_the_atom_itself_and_stored_variables(kb, pending):
    for text in ["(edge a b)", "(edge a b)", "(edge $x c)", "(edge a d)", "(edge $y d)", "(f 1.5 \"s\")",
                 "(wide (g $z) e)", "(wide (g 1) e)", "(fact a b)", "(fact a b)", "(fact b c)"]:
        kb.add(parse_atom(text))
    kb.checkpoint()
    if pending:
        kb.add(parse_atom("(unrelated x)"))  # a working set, so the general path answers

    def found(text):
        return sorted((format_atom(atom), tuple(values.items())) for atom, values in kb.query(parse_atom(text)))

    assert found("(edge a b)") == [("(edge a b)", ())] * 2
    assert found("(edge a c)") == [("(edge $x c)", ())]
    assert found("(edge a d)") == [("(edge $y d)", ()), ("(edge a d)", ())]
    assert found('(f 1.5 "s")') == [('(f 1.5 "s")', ())]
    assert found("(wide (g 1) e)") == [("(wide (g $z) e)", ()), ("(wide (g 1) e)", ())]
    assert found("(fact a b)") == [("(fact a b)", ())] * 2
    assert found("(fact b c)") == [("(fact b c)", ())]
    assert found("(edge z z)") == [] and found("(edge a)") == [] and found("(nothing)") == []
    assert found("(fact a c)") == [] and found("(fact (a) b)") == []
    kb.remove(parse_atom("(edge a b)"))
    kb.remove(parse_atom("(fact a b)"))
    assert found("(edge a b)") == [("(edge a b)", ())]
    assert found("(fact a b)") == [("(fact a b)", ())]


def test_a_ground_answer_is_the_stored_atom_itself(kb):
    stored = [
        parse_atom("(alive Ann True)"),
        parse_atom('(said Liz "hello, world")'),
        parse_atom("(age Tom -70)"),
        parse_atom("(long-one LLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLLL)"),
        E(S("weight"), S("Bob"), G(80.5)),
        E(S("m"), G(float("nan"))),
    ]
    for atom in stored:
        kb.add(atom)
    kb.checkpoint()
    for atom in stored:  # floats are decoded and compared (nan equals itself as an atom)
        [(found, values)] = kb.query(atom)
        assert found == atom and values == {}
        assert format_atom(found) == format_atom(atom)
    assert kb.query(parse_atom("(age Tom 70)")) == [] and kb.query(E(S("m"), G(1.5))) == []


def test_unification_is_two_sided_and_stored_variables_are_renamed_apart(kb):
    fill(kb)
    kb.checkpoint()
    kb.add(parse_atom("(= (double $x) (+ $x $x))"))
    results = kb.query(parse_atom("(= (grand Tom $who) $body)"))
    assert len(results) == 1
    atom, values = results[0]
    assert format_atom(atom) == "(= (grand $x $z) (, (parent $x $y) (parent $y $z)))"
    body = values[V("who")]
    assert body.name != "who" and body.name.startswith("z#")  # the stored $z, renamed apart
    ((_, values),) = kb.query(parse_atom("(= (double 3) $r)"))
    assert format_atom(values[V("r")]) == "(+ 3 3)"
    # A query string that no stored atom holds still binds a stored variable.
    kb.add(parse_atom("(echo $anything)"))
    ((_, values),) = kb.query(parse_atom('(echo "a text never stored")'))
    assert values == {}
    assert kb.query(parse_atom('(said Liz "a text never stored")')) == []


def test_variable_names_survive_log_replay_and_checkpoint(tmp_path):
    path = tmp_path / "kb"
    rule = "(= (append (cons $head $tail) $ys) (cons $head (append $tail $ys)))"
    with PersistentKB.create(path) as kb:
        kb.add(parse_atom(rule))
    with PersistentKB.open(path) as kb:
        assert texts(kb.atoms()) == [rule]
        kb.checkpoint()
        assert texts(kb.atoms()) == [rule]
    with PersistentKB.open(path) as kb:
        assert texts(kb.atoms()) == [rule]
        # the same atom up to variable names is the same key
        assert kb.count(parse_atom("(= (append (cons $a $b) $c) (cons $a (append $b $c)))")) == 1


def test_new_strings_are_carried_by_the_log_then_by_the_next_term_store(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        fill(kb)
        kb.checkpoint()
        kb.add(E(S("said"), S("Bob"), G("a brand new string")))
        kb.add(E(S("said"), S("Ann"), G("hello, world")))
    with PersistentKB.open(path) as kb:
        said = answer_texts(kb.query(parse_atom("(said $who $what)")), ["who", "what"])
        assert said == [("Ann", '"hello, world"'), ("Bob", '"a brand new string"'), ("Liz", '"hello, world"')]
        kb.checkpoint()
    with PersistentKB.open(path, readonly=True) as kb:
        assert answer_texts(kb.query(parse_atom("(said $who $what)")), ["who", "what"]) == said
        kb.verify()


def test_one_writer_many_readers(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as writer:
        with pytest.raises(LockedError):
            PersistentKB.open(path)
        writer.add(S("w"))
        with PersistentKB.open(path, readonly=True) as reader:
            assert texts(reader.atoms()) == ["w"]
            with pytest.raises(SnapshotError, match="read-only"):
                reader.add(S("x"))
    with PersistentKB.open(path):
        pass


def test_reader_keeps_its_view_until_refresh_and_old_generations_go_when_unused(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as writer:
        writer.add(S("a"))
        reader = PersistentKB.open(path, readonly=True)
        seen_generation = reader.generation
        writer.add(S("b"))
        assert texts(reader.atoms()) == ["a"]
        assert reader.refresh()
        assert texts(reader.atoms()) == ["a", "b"]
        writer.checkpoint()
        writer.add(S("c"))
        writer.checkpoint()
        # The reader's generation is still on disk, the one in between is gone.
        assert (path / layout.act_name(seen_generation)).exists()
        assert not (path / layout.act_name(seen_generation + 1)).exists()
        assert texts(reader.atoms()) == ["a", "b"]
        assert reader.refresh()
        assert reader.generation == writer.generation
        assert texts(reader.atoms()) == ["a", "b", "c"]
        assert not (path / layout.act_name(seen_generation)).exists()
        assert not reader.refresh()
        reader.close()
    names = sorted(os.listdir(path))
    generation = layout.read_current(path)
    assert names == sorted(["CURRENT", "LOCK", *layout.generation_files(generation)])


def test_auto_checkpoint(tmp_path):
    with PersistentKB.create(tmp_path / "kb", checkpoint_every=10) as kb:
        for i in range(25):
            kb.add(E(S("n"), G(i)))
        assert kb.generation == 3
        assert kb.pending_changes == 5
        assert len(kb) == 25


def test_torn_log_tail_is_dropped_and_truncated(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        fill(kb)
        wal_path = path / layout.wal_name(kb.generation)
    size = os.path.getsize(wal_path)
    os.truncate(wal_path, size - 5)  # the last add was cut short by a crash
    with PersistentKB.open(path, readonly=True) as reader:
        assert len(reader) == len(parse_atoms(FAMILY)) - 1
        assert os.path.getsize(wal_path) == size - 5  # readers never write
    with pytest.warns(StoreWarning, match="torn tail"), PersistentKB.open(path) as kb:
        assert len(kb) == len(parse_atoms(FAMILY)) - 1
        assert os.path.getsize(wal_path) < size - 5
        kb.add(S("after"))
    with PersistentKB.open(path) as kb:
        assert kb.count(S("after")) == 1


def test_damage_in_the_middle_of_the_log_is_an_error(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        fill(kb)
        wal_path = path / layout.wal_name(kb.generation)
    data = bytearray(wal_path.read_bytes())
    data[60] ^= 0x10
    wal_path.write_bytes(bytes(data))
    with pytest.raises(WalCorruptError):
        PersistentKB.open(path)
    with pytest.raises(WalCorruptError):
        PersistentKB.open(path, readonly=True)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("always", {"single": 3, "batch": 1}),
        ("batch", {"single": 0, "batch": 1}),
        ("never", {"single": 0, "batch": 0}),
    ],
)
def test_sync_modes(tmp_path, monkeypatch, mode, expected):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    with PersistentKB.create(tmp_path / "kb", sync=mode) as kb:
        calls.clear()
        for i in range(3):
            kb.add(E(S("single"), G(i)))
        assert len(calls) == expected["single"]
        calls.clear()
        with kb.batch():
            for i in range(3):
                kb.add(E(S("batched"), G(i)))
        assert len(calls) == expected["batch"]


def test_bad_sync_mode(tmp_path):
    with pytest.raises(ValueError):
        PersistentKB.create(tmp_path / "kb", sync="sometimes")


def test_open_errors(tmp_path):
    with pytest.raises(SnapshotError, match="no such"):
        PersistentKB.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SnapshotError, match="CURRENT"):
        PersistentKB.open(tmp_path / "empty")
    PersistentKB.create(tmp_path / "kb").close()
    with pytest.raises(SnapshotError, match="exists"):
        PersistentKB.create(tmp_path / "kb")
    kb = PersistentKB.open(tmp_path / "kb")
    kb.close()
    with pytest.raises(SnapshotError, match="closed"):
        kb.atoms()
