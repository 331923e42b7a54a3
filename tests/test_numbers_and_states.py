"""Integers equal to floats, and states compared by value, in memory and over a snapshot.

hyperon 0.2.10 unifies `3` with `3.0` and compares states by their current value. A snapshot
stores `3` and `3.0` as different bytes and cannot store a state at all, so both cases go
through `snapshot_probes`. The expected outputs below are hyperon 0.2.10's for the same
programs run with the facts in its own space.
"""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba import MeTTa
from metta_numba.atoms import Atom, E, Expression, G, Grounded, Symbol, Variable
from metta_numba.interp.core import SpaceAtom
from metta_numba.snapshot_probes import MAX_VARIANTS, holds_object, other_form, probe_patterns
from metta_numba.space import GroundingSpace, SnapshotSpace
from metta_numba.store.kb import PersistentKB
from metta_numba.store.snapshot import save_atoms
from metta_numba.syntax import format_results, parse_atom, parse_atoms

FACTS = """
(v 3)
(v 4.5)
(w 2.0)
(u $any)
(= (f 1) one)
(= (g 2.0) two)
"""

NUMBERS_PROGRAM = """
!(match &self (v 3.0) yes)
!(match &self (w 2) yes)
!(match &self (v $x) $x)
!(match &self (u 7.0) hit)
!(f 1.0)
!(g 2)
!(unify 3 3.0 yes no)
!(case 4 ((4.0 four) ($_ other)))
!(assertEqualToResult (/ 12 4) (3.0))
!(unique-atom (3 3.0 4))
!(unify True 1 yes no)
"""
NUMBERS_EXPECTED = [
    "[yes]",
    "[yes]",
    "[3, 4.5]",
    "[hit]",
    "[one]",
    "[two]",
    "[yes]",
    "[four]",
    "[()]",
    "[(3 4)]",
    "[no]",
]

STATES_PROGRAM = """
!(== (new-state 7) (new-state 7))
!(let $s (new-state on) (add-atom &self (lamp kitchen $s)))
!(let $t (new-state on) (match &self (lamp $room $t) $room))
!(assertEqual (new-state (p q)) (new-state (p q)))
!(bind! &s (new-state on))
!(add-atom &self (lamp hall &s))
!(change-state! &s off)
!(let $t (new-state on) (match &self (lamp $room $t) $room))
!(let $t (new-state off) (match &self (lamp $room $t) $room))
!(remove-atom &self (lamp hall &s))
!(let $t (new-state off) (match &self (lamp $room $t) $room))
"""
STATES_EXPECTED = [
    "[True]",
    "[()]",
    "[kitchen]",
    "[()]",
    "[()]",
    "[()]",
    "[(State off)]",
    "[kitchen]",
    "[hall]",
    "[()]",
    "[]",
]


def run(metta: MeTTa, program: str) -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):
        return [format_results(result) for result in metta.run(program)]


@contextlib.contextmanager
def snapshot_space(tmp_path, facts: str, readonly: bool):
    path = tmp_path / ("ro" if readonly else "rw")
    save_atoms(parse_atoms(facts), path)
    with PersistentKB.open(path, readonly=readonly, sync="never") as kb:
        yield SnapshotSpace(kb)


@pytest.mark.parametrize(
    ("program", "expected"), [(NUMBERS_PROGRAM, NUMBERS_EXPECTED), (STATES_PROGRAM, STATES_EXPECTED)]
)
def test_in_memory(program, expected):
    assert run(MeTTa(), FACTS + program) == expected


@pytest.mark.parametrize("readonly", [True, False])
@pytest.mark.parametrize(
    ("program", "expected"), [(NUMBERS_PROGRAM, NUMBERS_EXPECTED), (STATES_PROGRAM, STATES_EXPECTED)]
)
def test_over_a_snapshot(tmp_path, readonly, program, expected):
    with snapshot_space(tmp_path, FACTS, readonly) as space:
        assert run(MeTTa(space=space), program) == expected


def test_a_state_added_to_a_writable_snapshot_stays_in_memory(tmp_path):
    with snapshot_space(tmp_path, FACTS, readonly=False) as space:
        metta = MeTTa(space=space)
        run(metta, "!(let $s (new-state on) (add-atom &self (lamp hall $s)))")
        assert len(space.kb) == len(parse_atoms(FACTS))  # a state cannot be encoded into the KB
        assert run(metta, "!(match &self (lamp $r $s) $r)") == ["[hall]"]


def test_other_form():
    assert other_form(3) == 3.0 and type(other_form(3)) is float
    assert other_form(-2.0) == -2 and type(other_form(-2.0)) is int
    assert other_form(2.5) is None and other_form(float("nan")) is None and other_form(float("inf")) is None
    assert other_form(True) is None and other_form("3") is None
    assert other_form(2**53 + 1) is None  # no float holds it exactly
    assert other_form(2.0**63) is None  # beyond i64


def test_probe_patterns():
    plain = parse_atom("(p a $x)")
    assert probe_patterns(plain)[0] is plain
    two = probe_patterns(parse_atom("(p 3 2.5)"))
    assert [type(p.children[1].value) for p in two] == [int, float] and all(p.children[2] == G(2.5) for p in two)
    assert len(probe_patterns(parse_atom("(p 1 2.0 3)"))) == 8 == MAX_VARIANTS
    widened = probe_patterns(parse_atom("(p 1 2 3 (q 4))"))
    assert len(widened) == 1 and widened[0].children[1] == Variable("%number0")
    assert type(widened[0].children[4].children[1]) is Variable


def test_objects_are_widened_in_probes():
    space_atom = SpaceAtom(GroundingSpace())
    pattern = E("holds", space_atom, G(1))
    assert holds_object(pattern) and not holds_object(parse_atom("(p 1)"))
    probes = probe_patterns(pattern)
    assert len(probes) == 2 and all(type(p.children[1]) is Variable for p in probes)


# -- property: a snapshot answers as a reference that compares numbers by value ------------------

leaves = st.sampled_from([G(1), G(1.0), G(2), G(2.0), G(2.5), G(True), G("1"), Symbol("a")])


def flat(first_variable: str, second_variable: str):
    """Flat `(p X Y)` atoms whose variables, if any, are distinct (so each position unifies
    on its own and the reference needs no bindings)."""
    first = st.one_of(leaves, st.just(Variable(first_variable)))
    second = st.one_of(leaves, st.just(Variable(second_variable)))
    return st.tuples(first, second).map(lambda t: E("p", *t))


def same_leaf(a: Atom, b: Atom) -> bool:
    """Equal leaves, numbers by value (an int and a float alike), a Bool never a number."""
    if type(a) is Grounded and type(b) is Grounded:
        number = (int, float)
        if type(a.value) in number and type(b.value) in number:
            return a.value == b.value
        return type(a.value) is type(b.value) and a.value == b.value
    return type(a) is type(b) and a == b


def unifies(stored: Expression, pattern: Expression) -> bool:
    return all(
        type(s) is Variable or type(p) is Variable or same_leaf(s, p) for s, p in zip(stored.children, pattern.children)
    )


@settings(max_examples=60, deadline=None)
@given(stored=st.lists(flat("x", "y"), max_size=12), pattern=flat("u", "v"))
def test_snapshot_matches_numbers_by_value(tmp_path_factory, stored, pattern):
    expected = sum(unifies(atom, pattern) for atom in stored)
    assert len(GroundingSpace(stored).query(pattern)) == expected
    path = tmp_path_factory.mktemp("kb")
    save_atoms(stored, path)
    with PersistentKB.open(path, readonly=True, sync="never") as kb:
        assert len(SnapshotSpace(kb).query(pattern)) == expected
        assert len(kb.query(pattern)) == expected  # the `query` command's path
