"""Property test: random add/remove/checkpoint/reopen sequences against a multiset model.

The model is a Counter keyed by each atom's alpha-normal form (variables renamed by first
occurrence), which is what the KB treats as one key. Query answers of the model come from
unifying the pattern with every model atom, the same check hyperon's space does."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.store import working as working_module
from metta_numba.store.kb import PersistentKB
from metta_numba.store.working import WorkingSet
from metta_numba.syntax import format_atom
from metta_numba.unify import rename_apart, substitute, unify


def alpha_normal(atom):
    """The atom with its variables renamed _0, _1, ... in order of first occurrence."""
    mapping = {}

    def walk(a):
        if type(a) is Variable:
            if a not in mapping:
                mapping[a] = Variable(f"_{len(mapping)}")
            return mapping[a]
        if type(a) is Expression:
            return Expression([walk(c) for c in a.children])
        return a

    return walk(atom)


def key_text(atom) -> str:
    return format_atom(alpha_normal(atom))


leaves = st.one_of(
    st.sampled_from([Symbol("a"), Symbol("b"), Symbol("f"), Symbol("edge"), Symbol("L" * 70)]),
    st.sampled_from([Variable("x"), Variable("y"), Variable("z")]),
    st.sampled_from([Grounded(1), Grounded(-7), Grounded(2.5), Grounded(True)]),
    st.sampled_from([Grounded("s"), Grounded("t t"), Grounded("ü")]),
    st.text(alphabet="pqr", min_size=1, max_size=3).map(Grounded),
)
atoms = st.recursive(leaves, lambda kids: st.lists(kids, min_size=0, max_size=4).map(Expression), max_leaves=8)

OPERATIONS = ["add", "add", "add", "remove", "remove", "query", "checkpoint", "reopen"]


def model_answers(model: dict, pattern) -> list:
    out = []
    for key, (atom, copies) in model.items():
        bindings = unify(pattern, rename_apart(atom))
        if bindings is not None:
            out += [(key, key_text(substitute(pattern, bindings)))] * copies
    return sorted(out)


def instantiate(pattern, values):
    """The pattern with each of its variables replaced by its value (values are final)."""
    if type(pattern) is Variable:
        return values.get(pattern, pattern)
    if type(pattern) is Expression:
        return Expression([instantiate(c, values) for c in pattern.children])
    return pattern


def kb_answers(kb, pattern) -> list:
    return sorted((key_text(atom), key_text(instantiate(pattern, values))) for atom, values in kb.query(pattern))


def drawn_atom(data, model: dict):
    """A fresh random atom, or (mostly) one the model holds, so removes and queries hit."""
    if model and data.draw(st.booleans()):
        return data.draw(st.sampled_from(sorted(model)).map(lambda key: model[key][0]))
    return data.draw(atoms)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_kb_matches_a_multiset_model(data):
    directory = Path(tempfile.mkdtemp(prefix="kbprop-"))
    try:
        model: dict[str, tuple] = {}
        kb = PersistentKB.create(directory / "kb", sync="never", checkpoint_every=7)
        for _ in range(data.draw(st.integers(0, 30))):
            op = data.draw(st.sampled_from(OPERATIONS))
            if op == "add":
                atom = drawn_atom(data, model)
                key = key_text(atom)
                previous = model.get(key)
                model[key] = (previous[0] if previous else atom, (previous[1] if previous else 0) + 1)
                kb.add(atom)
            elif op == "remove":
                atom = drawn_atom(data, model)
                key = key_text(atom)
                previous = model.get(key)
                assert kb.remove(atom) == (previous is not None)
                if previous is not None:
                    if previous[1] == 1:
                        del model[key]
                    else:
                        model[key] = (previous[0], previous[1] - 1)
            elif op == "query":
                pattern = drawn_atom(data, model)
                assert kb_answers(kb, pattern) == model_answers(model, pattern)
            elif op == "checkpoint":
                kb.checkpoint()
            else:
                kb.close()
                kb = PersistentKB.open(directory / "kb", sync="never", checkpoint_every=7)
        expected = Counter({key: copies for key, (_, copies) in model.items()})
        assert Counter(key_text(a) for a in kb.atoms()) == expected
        assert len(kb) == sum(expected.values())
        for key, (atom, copies) in model.items():
            assert kb.count(atom) == copies, key
        for pattern in data.draw(st.lists(atoms, min_size=1, max_size=4)):
            assert kb_answers(kb, pattern) == model_answers(model, pattern)
        kb.close()
        with PersistentKB.open(directory / "kb", readonly=True) as reader:
            assert Counter(key_text(a) for a in reader.atoms()) == expected
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("argument_index_from", [0, 10**9])
@settings(max_examples=150, deadline=None)
@given(st.lists(atoms, min_size=1, max_size=20), atoms)
def test_working_set_index_never_misses_a_unifiable_key(argument_index_from, stored, pattern):
    """The working set's indexes (by prefix; by argument) return a superset of the keys that
    unify."""
    from metta_numba.codec import TermStore, encode

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(working_module, "ARGUMENT_INDEX_FROM", argument_index_from)

        terms = TermStore()
        working = WorkingSet()
        by_key = {}
        for atom in stored:
            path, names = encode(atom, terms)
            working.apply(path, 1, tuple(names))
            by_key[path] = atom
        pattern_path, _ = encode(pattern, terms)
        candidates = set(working.candidates(pattern_path))
        for path, atom in by_key.items():
            if unify(pattern, rename_apart(atom)) is not None:
                assert path in candidates, (format_atom(pattern), format_atom(atom))
