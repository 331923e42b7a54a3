"""The argument index against a reference model: a plain list of atoms, matched by brute force
with unify.match_atom. Whatever the index options (all positions, a few, some heads, a size
cap that drops every posting), a query through the index finds exactly the reference's
matches, with their multiplicities."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import generalize

from metta_numba.atoms import E, Expression, Grounded, Symbol, Variable, is_ground
from metta_numba.codec import TermStore, encode, encode_atoms
from metta_numba.syntax import parse_atom
from metta_numba.trie import CorruptTrieError, Trie, packed
from metta_numba.trie.argindex import (
    ArgIndex,
    IndexOptions,
    LiveArgIndex,
    parse_position,
    trie_candidates,
    trie_estimate,
)
from metta_numba.unify import match_atom

symbols = st.sampled_from(["a", "b", "f", "g", "edge", "="]).map(Symbol)
variables = st.sampled_from(["x", "y", "z"]).map(Variable)
grounded = st.sampled_from([1, 2, 2.5, "s", True]).map(Grounded)
atoms = st.recursive(
    st.one_of(symbols, variables, grounded),
    lambda kids: st.lists(kids, max_size=4).map(Expression),
    max_leaves=10,
)
facts = st.tuples(st.sampled_from(["edge", "f"]), atoms, atoms).map(lambda t: E(*t))
rules = st.tuples(atoms, atoms).map(lambda hb: E("=", hb[0], hb[1]))
stored_atoms = st.one_of(atoms, facts, rules)

position_choices = [(1,), (2,), (3,), (1, 0), (1, 1), (1, 2), (2, 1)]
index_options = st.one_of(
    st.just(IndexOptions()),
    st.builds(IndexOptions, positions=st.lists(st.sampled_from(position_choices), max_size=4)),
    st.builds(IndexOptions, heads=st.lists(st.sampled_from(["edge", "=", "f", "zz"]), max_size=2)),
    st.builds(IndexOptions, max_bytes=st.sampled_from([0, 200, 2000])),
    st.builds(IndexOptions, max_child=st.integers(1, 3)),
)


@st.composite
def kb_and_patterns(draw):
    stored = draw(st.lists(stored_atoms, max_size=16))
    counts = draw(st.lists(st.integers(1, 3), min_size=len(stored), max_size=len(stored)))
    patterns = []
    for _ in range(draw(st.integers(1, 4))):
        if stored and draw(st.booleans()):
            base = draw(st.sampled_from(stored))
            patterns.append(generalize(base, draw(st.lists(st.integers(0, 4), max_size=12))))
        else:
            patterns.append(draw(stored_atoms))
    return stored, counts, patterns


def build(stored, terms, counts=None) -> Trie:
    data, offsets, names, _ = encode_atoms(stored, terms)
    return Trie.build(data, offsets, None if counts is None else np.array(counts, np.int64), names)


def key(atom, terms) -> bytes:
    return encode(atom, terms)[0]


def reference(stored, counts, pattern, terms) -> Counter:
    found: Counter = Counter()
    for atom, count in zip(stored, counts):
        if match_atom(pattern, atom) is not None:
            found[key(atom, terms)] += count
    return found


def through_index(trie, index, pattern, terms, selective=None) -> Counter:
    if selective is None:
        ranks = trie_candidates(trie, index, key(pattern, terms))
    else:
        ranks = index.candidates(trie, key(pattern, terms), selective=selective)
    assert list(ranks) == sorted(set(ranks.tolist())), "candidates are sorted and distinct"
    counts = trie.arrays["leaf_count"]
    found: Counter = Counter()
    for rank, atom in zip(ranks.tolist(), trie.atoms_of(ranks, terms)):
        if match_atom(pattern, atom) is not None:
            found[key(atom, terms)] += int(counts[rank])
    return found


@given(kb_and_patterns(), index_options)
def test_index_queries_equal_the_reference(case, options):
    stored, counts, patterns = case
    terms = TermStore()
    trie = build(stored, terms, counts)
    index = ArgIndex.build(trie, options)
    index.verify()
    reopened = ArgIndex.from_arrays(index.arrays, len(trie))
    for pattern in patterns:
        expected = reference(stored, counts, pattern, terms)
        assert through_index(trie, index, pattern, terms) == expected
        assert through_index(trie, reopened, pattern, terms) == expected
        # Small tries have selective prefixes: make the index answer too.
        assert through_index(trie, index, pattern, terms, selective=-1) == expected
        assert through_index(trie, None, pattern, terms) == expected
        distinct = len(expected)
        assert trie_estimate(trie, index, key(pattern, terms)) >= distinct
        assert trie_estimate(trie, None, key(pattern, terms)) >= distinct


@given(st.lists(stored_atoms, max_size=20), st.data())
def test_live_index_candidates_hold_every_match(stored, data):
    terms = TermStore()
    live = LiveArgIndex(max_child=data.draw(st.integers(1, 4)))
    present: dict[bytes, object] = {}
    for atom in stored:
        path = key(atom, terms)
        if path in present and data.draw(st.booleans()):
            live.discard(path)
            del present[path]
        elif path not in present:
            live.add(path)
            present[path] = atom
    for _ in range(3):
        if present and data.draw(st.booleans()):
            base = data.draw(st.sampled_from(list(present.values())))
            pattern = generalize(base, data.draw(st.lists(st.integers(0, 4), max_size=10)))
        else:
            pattern = data.draw(stored_atoms)
        found = live.candidates(key(pattern, terms))
        matching = {p for p, a in present.items() if match_atom(pattern, a) is not None}
        if found is None:
            continue  # no ground position: the caller's prefix index answers
        assert len(found) == len(set(found))
        assert set(found) <= set(present)
        assert matching <= set(found)


# --- the fact KB: figures checked against a plain count of the facts -------------------------


def fact_trie(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, max(1, n // 10), size=(n, 2)).tolist()
    terms = TermStore()
    stored = [E("edge", f"n_{i}", f"n_{j}") for i, j in pairs]
    return pairs, stored, terms, build(stored, terms)


def test_reverse_lookup_candidates_are_exactly_the_facts():
    pairs, _, terms, trie = fact_trie(3000)
    index = ArgIndex.build(trie)
    for target in (0, 5, 17, 299):
        ranks = index.candidates(trie, key(parse_atom(f"(edge $x n_{target})"), terms))
        got = sorted(str(a) for a in trie.atoms_of(ranks, terms))
        expected = sorted({f"(edge n_{i} n_{j})" for i, j in pairs if j == target})
        assert got == expected
        assert index.estimate(trie, key(parse_atom(f"(edge $x n_{target})"), terms)) == len(expected)


def test_position_statistics_count_distinct_arguments():
    pairs, _, _, trie = fact_trie(2000)
    distinct = {tuple(p) for p in pairs}
    stats = {p["position"]: p for p in ArgIndex.build(trie).positions()}
    assert set(stats) == {(1,), (2,)}
    assert stats[(1,)]["ground"] == len(distinct)
    assert stats[(1,)]["keys"] == len({i for i, _ in distinct})
    assert stats[(2,)]["keys"] == len({j for _, j in distinct})
    assert stats[(2,)]["variables"] == stats[(2,)]["open"] == 0


def test_size_cap_drops_the_least_selective_position_first():
    terms = TermStore()
    # Position 2 has two values, position 3 a hundred: 2 is the less selective (position 1,
    # one value under one head, is the trie's: see test_head_fanout).
    stored = [E("p", "x", f"k{i % 2}", f"v{i}") for i in range(100)]
    trie = build(stored, terms)
    full = ArgIndex.build(trie, IndexOptions(max_ratio=None))
    stats = {p["position"]: p for p in full.positions()}
    assert stats[(2,)]["keyed"] and stats[(3,)]["keyed"] and not stats[(1,)]["keyed"]
    # The cap counts the index unpacked, whatever the widths of its packed arrays.
    assert full.unpacked_nbytes > full.nbytes
    capped = ArgIndex.build(trie, IndexOptions(max_bytes=full.unpacked_nbytes - 1, max_ratio=None))
    kept = {p["position"]: p["keyed"] for p in capped.positions()}
    assert kept == {(1,): False, (2,): False, (3,): True}
    assert capped.nbytes < full.nbytes
    # Queries stay exact without the dropped postings.
    for pattern in ("(p x k1 $v)", "(p x $k v7)", "(p x k0 v8)", "($h x $k v7)"):
        atom = parse_atom(pattern)
        expected = reference(stored, [1] * len(stored), atom, terms)
        assert through_index(trie, capped, atom, terms) == expected


def test_heads_option_indexes_only_those_heads():
    terms = TermStore()
    stored = [E("edge", f"a{i}", f"b{i % 3}") for i in range(30)] + [E("link", f"a{i}", f"b{i % 3}") for i in range(30)]
    trie = build(stored, terms)
    index = ArgIndex.build(trie, IndexOptions(heads=["link"]))
    stats = {p["position"]: p for p in index.positions()}
    assert stats[(2,)]["ground"] == 30
    # An indexed head: the postings answer. The other head falls back to its prefix range.
    assert index.estimate(trie, key(parse_atom("(link $x b1)"), terms)) == 10
    assert index.estimate(trie, key(parse_atom("(edge $x b1)"), terms)) == 30
    for pattern in ("(link $x b1)", "(edge $x b1)", "($r $x b2)"):
        atom = parse_atom(pattern)
        assert through_index(trie, index, atom, terms) == reference(stored, [1] * 60, atom, terms)


def test_stored_variables_are_candidates_at_every_position():
    terms = TermStore()
    stored = [E("edge", "a", "b"), E("edge", "$x", "c"), E("edge", "a", ("f", "$y")), Variable("any"),
              E("=", ("add", "$x", "zero"), "$x"), E("=", "$call", "loop")]
    trie = build(stored, terms)
    index = ArgIndex.build(trie)
    cases = {
        "(edge q c)": {"(edge $x c)", "$any"},
        "(edge a (f 3))": {"(edge a (f $y))", "$any"},
        "(= (add 1 zero) $r)": {"(= (add $x zero) $x)", "(= $call loop)", "$any"},
    }
    for pattern, expected in cases.items():
        ranks = index.candidates(trie, key(parse_atom(pattern), terms), selective=-1)
        found = {str(a) for a in trie.atoms_of(ranks, terms)}
        assert expected <= found, pattern
        matching = {str(a) for a in stored if match_atom(parse_atom(pattern), a) is not None}
        assert matching == expected


def test_parse_position():
    assert parse_position("2") == (2,)
    assert parse_position("1.2") == (1, 2)
    for bad in ("0", "0.1", "1.2.3", "x", "-1"):
        with pytest.raises(ValueError):
            parse_position(bad)


def test_options_round_trip_through_json():
    options = IndexOptions(positions=[(2,), (1, 1)], heads=["edge"], max_bytes=10, max_ratio=None)
    again = IndexOptions.from_json(json.loads(json.dumps(options.to_json())))
    assert again.to_json() == options.to_json()
    assert IndexOptions.from_json(None).to_json() == IndexOptions().to_json()


# --- corrupt arrays ---------------------------------------------------------------------------


def small_index():
    terms = TermStore()
    stored = [E("edge", f"n{i % 7}", f"n{i % 5}") for i in range(40)] + [E("edge", "$x", "n1"), Variable("v")]
    trie = build(stored, terms)
    return trie, ArgIndex.build(trie), terms


def test_missing_mistyped_or_foreign_arrays_are_rejected_at_open():
    trie, index, _ = small_index()
    arrays = index.arrays
    for name in arrays:
        broken = dict(arrays)
        del broken[name]
        with pytest.raises(CorruptTrieError):
            ArgIndex.from_arrays(broken, len(trie))
        broken = dict(arrays)
        broken[name] = arrays[name].astype(np.float64)
        with pytest.raises(CorruptTrieError):
            ArgIndex.from_arrays(broken, len(trie))
    with pytest.raises(CorruptTrieError, match="another trie"):
        ArgIndex.from_arrays(arrays, len(trie) + 1)
    for name in ("table", "hashes", "ranks", "key_start"):
        broken = dict(arrays)
        broken[name] = arrays[name][:-1].copy()
        with pytest.raises(CorruptTrieError):
            ArgIndex.from_arrays(broken, len(trie))
            ArgIndex.from_arrays(broken, len(trie)).verify()


def test_verify_finds_disorder_that_open_lets_through():
    trie, index, _ = small_index()
    ranks = packed.unpack(index.arrays["ranks"])
    width = packed.packed_width(index.arrays["ranks"])
    swapped = ranks.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    arrays = {name: array.copy() for name, array in index.arrays.items()}
    arrays["ranks"] = packed.pack(swapped, width)
    opened = ArgIndex.from_arrays(arrays, len(trie))
    with pytest.raises(CorruptTrieError):
        opened.verify()
    too_large = ranks.copy()
    too_large[3] = len(trie) + 5
    arrays = {name: array.copy() for name, array in index.arrays.items()}
    arrays["ranks"] = packed.pack(too_large)
    with pytest.raises(CorruptTrieError):
        ArgIndex.from_arrays(arrays, len(trie)).verify()
    arrays = {name: array.copy() for name, array in index.arrays.items()}
    arrays["hashes"][[0, 1]] = arrays["hashes"][[1, 0]]
    with pytest.raises(CorruptTrieError):
        ArgIndex.from_arrays(arrays, len(trie)).verify()


TRIAL_SCRIPT = r"""
import json, sys, traceback
import numpy as np
from metta_numba.atoms import E, Variable
from metta_numba.codec import TermStore, encode
from metta_numba.syntax import parse_atom
from metta_numba.trie import CorruptTrieError, Trie
from metta_numba.trie.argindex import ArgIndex

rng = np.random.default_rng(int(sys.argv[1]))
terms = TermStore()
atoms = [E("edge", f"n{i % 7}", f"n{i % 5}") for i in range(60)] + [E("edge", "$x", "n1"), Variable("v"),
         E("=", ("f", "$x", "a"), "$x"), E("=", ("f", "b", ("g", "$y")), "c")]
paths = [encode(a, terms)[0] for a in atoms]
offsets = np.cumsum([0] + [len(p) for p in paths])
trie = Trie.build(np.frombuffer(b"".join(paths), np.uint8), offsets)
base = ArgIndex.build(trie).arrays
patterns = [encode(parse_atom(p), terms)[0] for p in
            ["(edge $x n1)", "(edge n3 $y)", "(= (f b $z) $r)", "(= (f $q (g c)) $r)", "($p n2 n2)", "$w"]]
unexpected, outcomes = [], {"rejected": 0, "answered": 0, "raised": 0, "verify caught": 0}
for trial in range(int(sys.argv[2])):
    arrays = {name: array.copy() for name, array in base.items()}
    name = str(rng.choice(sorted(arrays)))
    array = arrays[name]
    for _ in range(int(rng.integers(1, 4))):
        if array.size == 0:
            break
        at = int(rng.integers(0, array.size))
        info = np.iinfo(array.dtype)
        choice = int(rng.integers(0, 3))
        value = [int(rng.integers(-3, 3)), int(rng.integers(0, 2 * array.size + 2)),
                 int(rng.integers(-2**40, 2**40))][choice]
        array[at] = min(max(value, info.min), info.max)
    try:
        index = ArgIndex.from_arrays(arrays, len(trie))
    except CorruptTrieError:
        outcomes["rejected"] += 1
        continue
    except Exception:
        unexpected.append(f"{name}: open: {traceback.format_exc()}")
        continue
    for pattern in patterns:
        try:
            ranks = index.candidates(trie, pattern, selective=-1)
            if ranks.size and (ranks.min() < 0 or ranks.max() >= len(trie)):
                unexpected.append(f"{name}: rank out of range")
            index.estimate(trie, pattern)
            outcomes["answered"] += 1
        except CorruptTrieError:
            outcomes["raised"] += 1
        except Exception:
            unexpected.append(f"{name}: lookup: {traceback.format_exc()}")
    try:
        index.verify()
    except CorruptTrieError:
        outcomes["verify caught"] += 1
    except Exception:
        unexpected.append(f"{name}: verify: {traceback.format_exc()}")
print(json.dumps({"unexpected": unexpected, "outcomes": outcomes}))
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_tampered_index_raises_and_never_crashes(seed):
    # In a subprocess: a segfault shows as a failed exit status instead of killing the run.
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))
    done = subprocess.run(
        [sys.executable, "-c", TRIAL_SCRIPT, str(seed), "300"], capture_output=True, text=True, timeout=900, env=env
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["unexpected"] == []
    outcomes = report["outcomes"]
    assert outcomes["rejected"] > 0 and outcomes["answered"] > 0
    assert outcomes["verify caught"] > 0


# --- exact matching of candidate paths (trie.pathmatch) --------------------------------------


def _holds_number(atom) -> bool:
    kinds = set()
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Expression:
            stack.extend(a.children)
        elif type(a) is Grounded and type(a.value) in (int, float):
            kinds.add(type(a.value))
    return bool(kinds)


@given(st.lists(stored_atoms, min_size=1, max_size=12), st.data())
def test_path_matching_agrees_with_unification(stored, data):
    from metta_numba.codec import decode
    from metta_numba.trie.pathmatch import MAYBE, NO, YES, match_paths
    from metta_numba.unify import substitute

    terms = TermStore()
    base = data.draw(st.sampled_from(stored))
    pattern = generalize(base, data.draw(st.lists(st.integers(0, 4), max_size=12)))
    pattern_path, names = encode(pattern, terms)
    paths = [key(atom, terms) for atom in stored]
    offsets = np.cumsum([0] + [len(p) for p in paths], dtype=np.int64)
    blob = b"".join(paths)
    status, spans = match_paths(np.frombuffer(pattern_path, np.uint8), np.frombuffer(blob, np.uint8), offsets)
    for i, atom in enumerate(stored):
        unified = match_atom(pattern, atom)
        if status[i] == NO:
            assert unified is None
        elif status[i] == MAYBE:
            # Only a stored variable, or numbers (an integer and a float are one number with
            # other bytes) meeting a repeated variable, leave the question open.
            assert not is_ground(atom) or _holds_number(atom)
        else:
            assert status[i] == YES and unified is not None
            values = {
                Variable(name): decode(blob[spans[i, 2 * j] : spans[i, 2 * j + 1]], terms)
                for j, name in enumerate(names)
            }
            assert substitute(pattern, values) == atom


# --- snapshot build chooses what to index ----------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))
    return subprocess.run(
        [sys.executable, "-m", "metta_numba", *args], capture_output=True, text=True, timeout=600, env=env
    )


def test_snapshot_build_options_choose_positions_and_heads(tmp_path):
    from metta_numba.store import PersistentKB

    source = tmp_path / "src.metta"
    source.write_text("(edge a b)\n(edge b c)\n(link a c)\n(= (f 1 2) 3)\n")
    done = run_cli("snapshot", "build", str(source), "-o", str(tmp_path / "kb"), "--index-positions", "2,1.1",
                   "--index-heads", "edge,=")
    assert done.returncode == 0, done.stderr
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        positions = {p["position"]: p for p in kb.snapshot_generation().index.positions()}
        assert kb.query(parse_atom("(edge $x c)"))[0][0] == parse_atom("(edge b c)")
    # Position 2 of the edge facts and of the rule; 1.1 of the rule; position 1 only for
    # the variables its children need. The `link` fact is not indexed.
    assert positions[(2,)]["keyed"] and positions[(2,)]["ground"] == 3
    assert positions[(1, 1)]["keyed"] and positions[(1, 1)]["ground"] == 1
    assert not positions[(1,)]["keyed"]
    done = run_cli("snapshot", "build", str(source), "-o", str(tmp_path / "none"), "--no-index")
    assert done.returncode == 0, done.stderr
    with PersistentKB.open(tmp_path / "none", readonly=True) as kb:
        assert kb.snapshot_generation().index is None
        assert len(kb.query(parse_atom("(edge $x c)"))) == 1
    done = run_cli("snapshot", "build", str(source), "-o", str(tmp_path / "bad"), "--index-positions", "0.1")
    assert done.returncode == 2 and "--index-positions" in done.stderr
