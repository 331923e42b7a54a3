"""trie.unifypaths against unify.py: the kernel's YES and NO must be unification's answers, and
its values the substituted values of the pattern's variables."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.codec import HandleTable, TermStore, decode, encode
from metta_numba.syntax.parser import parse_atom
from metta_numba.trie.pathmatch import MAYBE, NO, YES
from metta_numba.trie.unifypaths import unify_paths
from metta_numba.unify import rename_apart, substitute, unify_into

LEAVES = [Symbol("a"), Symbol("b"), Grounded(1), Grounded(1.0), Grounded(2), Grounded("s"), Grounded(True)]


def _atoms(names: list[str]) -> st.SearchStrategy[Atom]:
    leaf = st.one_of(st.sampled_from(LEAVES), st.sampled_from([Variable(n) for n in names]))
    return st.recursive(leaf, lambda kids: st.lists(kids, min_size=1, max_size=3).map(Expression), max_leaves=8)


def _kernel(stored: list[Atom], pattern: Atom):
    terms = TermStore()
    paths = [encode(a, terms, handles=HandleTable())[0] for a in stored]
    key, names = encode(pattern, terms, handles=HandleTable())
    data = np.frombuffer(b"".join(paths), np.uint8)
    offsets = np.cumsum([0] + [len(p) for p in paths]).astype(np.int64)
    status, spans, sides = unify_paths(np.frombuffer(key, np.uint8), data, offsets)
    buffers = (key, data.tobytes())
    rows = []
    for i in range(len(stored)):
        values = {}
        for j, name in enumerate(names if status[i] == YES else []):
            side = int(sides[i, j])
            if side >= 0:
                values[Variable(name)] = decode(buffers[side][spans[i, 2 * j] : spans[i, 2 * j + 1]], terms, [])
        rows.append((int(status[i]), values))
    return rows


def _reference(stored: Atom, pattern: Atom):
    bindings: dict = {}
    if not unify_into(rename_apart(stored), pattern, bindings):
        return None
    return bindings


def _check(stored: list[Atom], pattern: Atom) -> list[int]:
    statuses = []
    for atom, (state, values) in zip(stored, _kernel(stored, pattern)):
        expected = _reference(atom, pattern)
        statuses.append(state)
        if state == NO:
            assert expected is None, (atom, pattern)
        elif state == YES:
            assert expected is not None, (atom, pattern)
            for var in set(_variables(pattern)):
                value = substitute(var, expected)
                if var in values:
                    assert values[var] == value and type(values[var]) is type(value), (atom, pattern, var)
                else:
                    assert value == var, (atom, pattern, var)
        else:
            assert state == MAYBE
    return statuses


def _variables(atom: Atom) -> list[Variable]:
    if type(atom) is Variable:
        return [atom]
    if type(atom) is Expression:
        return [v for kid in atom.children for v in _variables(kid)]
    return []


@settings(max_examples=300, deadline=None)
@given(st.lists(_atoms(["x", "y", "z"]), min_size=1, max_size=6), _atoms(["p", "q", "x"]))
def test_kernel_agrees_with_unify(stored, pattern):
    _check(stored, pattern)


def test_baseline_rule_shapes_are_decided_in_the_kernel():
    rules = [
        "(= (add5 zero $x) $x)",
        "(= (add5 $x zero) $x)",
        "(= (add5 (succ $x) $y) (succ (add5 $x $y)))",
        "(= (mul5 zero $x) zero)",
        "(= (match5 $x $x) True)",
        "(= (match5 $x $y) False)",
        "(= (and5 False $x) False)",
    ]
    stored = [parse_atom(r) for r in rules]
    statuses = _check(stored, parse_atom("(= ($f zero $x) $x)"))
    assert statuses == [YES, YES, NO, YES, NO, YES, NO]
    statuses = _check(stored, parse_atom("(= (and5 $a $b) $r)"))
    assert statuses[-1] == YES
