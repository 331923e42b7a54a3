"""Property tests of the array trie against a reference model: a plain list of atoms, matched
by brute force with unify.match_atom."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import E, Expression, Grounded, Symbol, Variable, alpha_equal, variables_of
from metta_numba.codec import CodecError, TermStore, encode, encode_atoms
from metta_numba.trie import ARRAY_NAMES, CorruptTrieError, Trie
from metta_numba.trie.columns import column_len
from metta_numba.trie.layout import COLUMN_NAMES
from metta_numba.unify import match_atom

LONG_SYMBOL = "long-" + "x" * 70  # over 63 bytes: stored as a term id

symbols = st.sampled_from(["a", "b", "f", "g", "=", LONG_SYMBOL]).map(Symbol)
variables = st.sampled_from(["x", "y", "z"]).map(Variable)
# No whole floats: -2.0 equals -2 as an atom but has other bytes, and the trie matches bytes;
# the queries above it look a whole number up in both forms (trie.ground_batch.other_number).
grounded = st.one_of(
    st.integers(-2, 2),
    st.sampled_from([-(2**63), 2**63 - 1, 1.5, -2.5, 1e300, "s", "t", True, False]),
).map(Grounded)
atoms = st.recursive(
    st.one_of(symbols, variables, grounded),
    lambda kids: st.lists(kids, max_size=3).map(Expression),
    max_leaves=8,
)
rules = st.tuples(atoms, atoms).map(lambda hb: E("=", hb[0], hb[1]))
stored_atoms = st.one_of(atoms, rules)
atom_lists = st.lists(stored_atoms, max_size=14)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode_batch(atoms_in: list, terms: TermStore, counts: list[int] | None = None) -> Trie:
    """The trie of `atoms_in`, built the way the bulk reader's output is (paths + name ids)."""
    data, offsets, names, _ = encode_atoms(atoms_in, terms)
    count_array = None if counts is None else np.array(counts, np.int64)
    return Trie.build(data, offsets, count_array, names)


def key(atom, terms: TermStore) -> bytes:
    return encode(atom, terms)[0]


def multiset(atoms_in, terms, counts=None) -> Counter:
    result: Counter = Counter()
    for i, atom in enumerate(atoms_in):
        result[key(atom, terms)] += 1 if counts is None else counts[i]
    return result


def trie_multiset(trie: Trie, terms: TermStore) -> Counter:
    result: Counter = Counter()
    for atom, count in trie.iter_atoms(terms):
        result[key(atom, terms)] += count
    return result


def reference_matches(pattern, atoms_in, terms) -> Counter:
    return Counter(key(a, terms) for a in atoms_in if match_atom(pattern, a) is not None)


def trie_matches(trie: Trie, pattern, terms) -> Counter:
    result: Counter = Counter()
    for atom, count in trie.match_atoms(pattern, terms):
        result[key(atom, terms)] += count
    return result


def generalize(atom, choices: list[int]):
    """Replace some subterms of `atom` by variables, so that patterns hit stored atoms."""
    counter = iter(choices)
    fresh = iter(f"p{i}" for i in range(10_000))

    def walk(a):
        choice = next(counter, 0)
        if choice == 1:
            return Variable(next(fresh))
        if choice == 2:
            return Variable("p0")  # a repeated pattern variable
        if type(a) is Expression:
            return Expression(walk(c) for c in a.children)
        return a

    return walk(atom)


def has_repeated_variable(atom) -> bool:
    seen: list = []
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Variable:
            if a in seen:
                return True
            seen.append(a)
        elif type(a) is Expression:
            stack.extend(a.children)
    return False


@st.composite
def store_and_pattern(draw):
    stored = draw(atom_lists)
    if stored and draw(st.booleans()):
        base = draw(st.sampled_from(stored))
        pattern = generalize(base, draw(st.lists(st.integers(0, 4), max_size=12)))
    else:
        pattern = draw(stored_atoms)
    return stored, pattern


# --- the multiset itself ---------------------------------------------------------------------


@FAST
@given(atom_lists, st.data())
def test_iteration_counts_and_names(stored, data):
    terms = TermStore()
    counts = data.draw(st.lists(st.integers(1, 5), min_size=len(stored), max_size=len(stored)))
    trie = encode_batch(stored, terms, counts)
    assert trie_multiset(trie, terms) == multiset(stored, terms, counts)
    assert len(trie) == len({key(a, terms) for a in stored})
    assert trie.total_count == sum(counts)
    # Paths come out in byte order, each once, however the ranks are chunked.
    paths = [p for p, _ in trie.iter_paths()]
    assert paths == sorted({key(a, terms) for a in stored})
    assert [p for p, _ in trie.iter_paths(chunk=3)] == paths
    # Each distinct atom keeps the variable names of its first occurrence in input order.
    first_seen: dict = {}
    for atom in stored:
        first_seen.setdefault(key(atom, terms), atom)
    for atom, _ in trie.iter_atoms(terms):
        assert atom == first_seen[key(atom, terms)]
    trie.validate()


@FAST
@given(atom_lists, stored_atoms)
def test_count_equals_reference(stored, query):
    terms = TermStore()
    trie = encode_batch(stored, terms)
    for probe in [query, *stored[:3]]:
        expected = sum(1 for a in stored if alpha_equal(a, probe))
        assert trie.count(probe, terms) == expected
        if expected:
            assert trie.atom(trie.rank(probe, terms), terms) in stored


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store_and_pattern())
def test_match_equals_brute_force_unification(case):
    stored, pattern = case
    terms = TermStore()
    trie = encode_batch(stored, terms)
    assert trie_matches(trie, pattern, terms) == reference_matches(pattern, stored, terms)


# Two symbols and two variables: repeated variables on both sides are the common case here.
tiny_atoms = st.recursive(
    st.sampled_from([Symbol("a"), Symbol("b"), Variable("x"), Variable("y")]),
    lambda kids: st.lists(kids, min_size=1, max_size=3).map(Expression),
    max_leaves=7,
)


@st.composite
def tiny_store_and_pattern(draw):
    stored = draw(st.lists(tiny_atoms, max_size=12))
    if stored and draw(st.booleans()):
        # Mostly the repeated variable $p0 in place of subterms of a stored atom.
        choices = draw(st.lists(st.sampled_from([0, 0, 1, 2, 2]), max_size=10))
        return stored, generalize(draw(st.sampled_from(stored)), choices)
    return stored, draw(tiny_atoms)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_store_and_pattern())
def test_match_with_repeated_variables_on_both_sides(case):
    stored, pattern = case
    terms = TermStore()
    trie = encode_batch(stored, terms)
    assert trie_matches(trie, pattern, terms) == reference_matches(pattern, stored, terms)
    assert trie_matches(trie.merkleize(), pattern, terms) == reference_matches(pattern, stored, terms)


@FAST
@given(store_and_pattern())
def test_candidates_are_exact_without_repeated_variables(case):
    """The kernel over-approximates only through repeated variables: with none on either
    side, or with ground stored atoms, its candidates are exactly the unifiers."""
    stored, pattern = case
    terms = TermStore()
    linear = not has_repeated_variable(pattern) and not any(has_repeated_variable(a) for a in stored)
    all_ground = all(not variables_of(a) for a in stored)
    if not (linear or all_ground):
        stored = [a for a in stored if not variables_of(a)]
    trie = encode_batch(stored, terms)
    candidates = Counter()
    for atom, count in trie.match_atoms(pattern, terms, exact=False):
        candidates[key(atom, terms)] += count
    assert candidates == reference_matches(pattern, stored, terms)


@FAST
@given(store_and_pattern())
def test_match_on_bytes_equals_match_on_atom(case):
    stored, pattern = case
    terms = TermStore()
    trie = encode_batch(stored, terms)
    encoded = encode(pattern, terms)[0]
    assert trie.match(encoded).tolist() == trie.match(pattern, terms).tolist()


# --- merge, difference, merkleize --------------------------------------------------------


@FAST
@given(atom_lists, atom_lists)
def test_merge_is_multiset_union(left, right):
    terms = TermStore()
    merged = encode_batch(left, terms).merge(encode_batch(right, terms))
    assert trie_multiset(merged, terms) == multiset(left, terms) + multiset(right, terms)
    merged.validate()
    # A path present on both sides keeps the left side's variable names.
    first_seen: dict = {}
    for atom in left + right:
        first_seen.setdefault(key(atom, terms), atom)
    for atom, _ in merged.iter_atoms(terms):
        assert atom == first_seen[key(atom, terms)]


@FAST
@given(atom_lists, atom_lists, st.data())
def test_subtract_is_multiset_difference(left, right, data):
    terms = TermStore()
    right = right + data.draw(st.lists(st.sampled_from(left), max_size=5)) if left else right
    difference = encode_batch(left, terms).subtract(encode_batch(right, terms))
    assert trie_multiset(difference, terms) == multiset(left, terms) - multiset(right, terms)
    difference.validate()


@FAST
@given(store_and_pattern(), atom_lists)
def test_merkleize_preserves_everything(case, other):
    stored, pattern = case
    terms = TermStore()
    tree = encode_batch(stored, terms)
    dag = tree.merkleize()
    dag.validate()
    assert dag.merkleized and dag.n_nodes <= tree.n_nodes
    assert list(dag.iter_atoms(terms)) == list(tree.iter_atoms(terms))
    assert dag.match(pattern, terms).tolist() == tree.match(pattern, terms).tolist()
    assert trie_matches(dag, pattern, terms) == reference_matches(pattern, stored, terms)
    for probe in stored[:3] + [pattern]:
        assert dag.count(probe, terms) == tree.count(probe, terms)
        assert dag.rank(probe, terms) == tree.rank(probe, terms)
    for rank in range(len(tree)):
        assert dag.path(rank) == tree.path(rank)
    # Merges accept DAG inputs and give the same multisets.
    other_trie = encode_batch(other, terms)
    assert trie_multiset(dag.merge(other_trie.merkleize()), terms) == trie_multiset(tree.merge(other_trie), terms)
    assert trie_multiset(dag.subtract(other_trie), terms) == trie_multiset(tree.subtract(other_trie), terms)
    # Built merkleized (the layout's arrays merkleized before any packing): the same arrays.
    data, offsets, names, _ = encode_atoms(stored, terms)
    built = Trie.build(data, offsets, names=names, merkleize=True)
    assert built.merkleized
    assert {name: array.tolist() for name, array in built.arrays.items()} == {
        name: array.tolist() for name, array in dag.arrays.items()
    }


@FAST
@given(atom_lists)
def test_the_layout_lets_go_of_the_stream_and_numbers_the_nodes_in_preorder(stored):
    """build.layout_trie renumbers one array at a time (build.preorder) and keeps only the
    labels of the stream handed to it."""
    from metta_numba.trie import sort
    from metta_numba.trie.build import layout_trie

    data, offsets, _, _ = encode_atoms(stored, TermStore())
    if len(offsets) < 2:
        return
    order = sort.sort_paths(data, offsets)
    no_column = np.zeros(0, np.int64)
    first, common, length, _, _ = sort.fold_duplicates(data, offsets, order, no_column, no_column)
    labels = sort.suffix_labels(data, offsets, first, common, length)
    stream = [labels, common, length]
    label_off, _, child_start, children, first_byte, _ = layout_trie(stream)
    assert len(stream) == 1 and stream[0] is labels  # common and length are let go of
    visited, pending = [], [0]  # a depth-first walk, first child first, meets ids in order
    while pending:
        node = pending.pop()
        visited.append(node)
        edges = range(child_start[node], child_start[node + 1])
        assert [first_byte[e] for e in edges] == [labels[label_off[children[e]]] for e in edges]
        pending.extend(int(children[e]) for e in reversed(edges))
    assert visited == list(range(len(label_off)))


def test_merkleize_shares_repeated_suffixes():
    terms = TermStore()
    stored = [E("=", (f"f{i}", "zero", "$x"), "$x") for i in range(10, 40)]
    tree = encode_batch(stored, terms)
    dag = tree.merkleize()
    # Thirty rules differing only in the head's last digits: every "<digit> zero $x) $x" tail
    # is stored once per digit instead of once per rule.
    assert dag.n_nodes < tree.n_nodes
    assert len(dag.arrays["labels"]) < len(tree.arrays["labels"])
    assert trie_multiset(dag, terms) == multiset(stored, terms)


@FAST
@given(atom_lists, stored_atoms)
def test_prefix_range_lists_the_paths_with_that_prefix(stored, probe):
    terms = TermStore()
    trie = encode_batch(stored, terms)
    all_paths = [p for p, _ in trie.iter_paths()]
    for prefix in {key(probe, terms)[:k] for k in range(4)} | {p[:3] for p in all_paths[:3]}:
        expected = [p for p in all_paths if p.startswith(prefix)]
        assert [p for p, _ in trie.iter_paths(prefix)] == expected
        lo, hi = trie.prefix_range(prefix)
        assert all_paths[lo:hi] == expected


@FAST
@given(atom_lists, st.data())
def test_paths_of_sorted_ranks_walks_shared_prefixes_to_the_same_paths(stored, data):
    # Ascending ranks take the prefix-sharing walk, any other order the walk from the root:
    # both must give the n-th path in byte order, and merkleizing must not change that.
    terms = TermStore()
    trie = encode_batch(stored, terms)
    all_paths = [p for p, _ in trie.iter_paths()]
    if not all_paths:
        return
    for shape in (trie, trie.merkleize()):
        chosen = data.draw(st.lists(st.integers(0, len(all_paths) - 1), max_size=12))
        for ranks in (sorted(chosen), chosen):
            data_bytes, offsets = shape.paths(np.array(ranks, dtype=np.int64))
            got = [data_bytes[offsets[i] : offsets[i + 1]].tobytes() for i in range(len(ranks))]
            assert got == [all_paths[r] for r in ranks]


# --- arrays in, arrays out ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(store_and_pattern())
def test_from_arrays_round_trip_through_memmaps(tmp_path_factory, case):
    stored, pattern = case
    terms = TermStore()
    trie = encode_batch(stored, terms)
    folder = tmp_path_factory.mktemp("arrays")
    for name, array in trie.arrays.items():
        np.save(folder / f"{name}.npy", array)
    mapped = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAY_NAMES}
    for validate in (True, False):
        reopened = Trie.from_arrays(mapped, validate=validate)
        assert list(reopened.iter_atoms(terms)) == list(trie.iter_atoms(terms))
        assert reopened.match(pattern, terms).tolist() == trie.match(pattern, terms).tolist()
        assert reopened.merge(trie).total_count == 2 * trie.total_count
        assert reopened.merkleize().n_nodes <= trie.n_nodes


def test_arrays_have_the_documented_names_and_dtypes():
    terms = TermStore()
    trie = encode_batch([E("f", "a"), E("f", "b")], terms)
    arrays = trie.arrays
    assert tuple(arrays) == ARRAY_NAMES
    assert all(arrays[name].dtype == np.uint64 for name in COLUMN_NAMES)
    # Counts of 1 and no variable names: the narrowest leaf dtypes.
    assert arrays["leaf_count"].dtype == np.uint8 and arrays["leaf_name"].dtype == np.int8
    assert column_len(arrays["label_off"]) == trie.n_nodes == len(arrays["label_len"])
    assert column_len(arrays["child_start"]) == trie.n_nodes + 1
    assert len(arrays["leaf_count"]) == len(trie) == 2


def raw_trie(counts: list[int], names: list[int]) -> Trie:
    """A trie of the paths (s0) (s1) ... with the given counts and name ids."""
    terms = TermStore()
    paths = [encode(E(f"s{i}"), terms)[0] for i in range(len(counts))]
    offsets = np.cumsum([0] + [len(p) for p in paths], dtype=np.int64)
    data = np.frombuffer(b"".join(paths), np.uint8)
    return Trie.build(data, offsets, np.array(counts, np.int64), np.array(names, np.int64))


@pytest.mark.parametrize(
    ("top_count", "count_dtype"),
    [(1, np.uint8), (255, np.uint8), (256, np.uint16), (65536, np.uint32), (2**32, np.uint64), (2**62, np.uint64)],
)
@pytest.mark.parametrize(
    ("top_name", "name_dtype"),
    [(-1, np.int8), (127, np.int8), (128, np.int16), (40000, np.int32), (2**31, np.int64)],
)
def test_leaf_arrays_take_the_narrowest_dtype_that_holds_them(top_count, count_dtype, top_name, name_dtype):
    counts, names = [1, top_count, 2], [-1, 0, top_name]
    trie = raw_trie(counts, names)
    arrays = trie.arrays
    assert arrays["leaf_count"].dtype == count_dtype and arrays["leaf_name"].dtype == name_dtype
    # (s0) (s1) (s2) sort in that order, so rank i is path i.
    assert arrays["leaf_count"].tolist() == counts and arrays["leaf_name"].tolist() == names
    assert trie.total_count == sum(counts)
    _, _, batch_counts, batch_names = trie.batch()
    assert batch_counts.tolist() == counts and batch_names.tolist() == names
    # Merging widens the leaf values first: a sum past a dtype's top moves to a wider one.
    doubled = trie.merge(trie)
    assert doubled.arrays["leaf_count"].tolist() == [2 * c for c in counts]
    assert doubled.arrays["leaf_name"].tolist() == names
    assert doubled.arrays["leaf_count"].dtype.itemsize >= np.dtype(count_dtype).itemsize
    assert trie.subtract(raw_trie([1, 1, 1], [-1, -1, -1])).arrays["leaf_count"].tolist() == [
        c - 1 for c in counts if c > 1
    ]
    dag = trie.merkleize()
    assert dag.arrays["leaf_count"].tolist() == counts and dag.arrays["leaf_name"].tolist() == names


def test_from_arrays_takes_every_allowed_leaf_dtype_and_no_other():
    trie = raw_trie([1, 3, 2], [-1, 5, 0])
    for count_dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        for name_dtype in (np.int8, np.int16, np.int32, np.int64):
            arrays = trie.arrays
            arrays["leaf_count"] = arrays["leaf_count"].astype(count_dtype)
            arrays["leaf_name"] = arrays["leaf_name"].astype(name_dtype)
            reopened = Trie.from_arrays(arrays)
            assert [int(reopened.arrays["leaf_count"][k]) for k in range(3)] == [1, 3, 2]
            assert reopened.count(trie.path(1)) == 3 and reopened.total_count == 6
            assert reopened.merge(trie).arrays["leaf_count"].tolist() == [2, 6, 4]
    for name, dtype in (
        ("leaf_count", np.int8),
        ("leaf_count", np.int64),
        ("leaf_name", np.uint8),
        ("leaf_name", np.uint64),
        ("leaf_count", ">u2"),
        ("leaf_name", ">i4"),
    ):
        arrays = trie.arrays
        arrays[name] = arrays[name].astype(dtype)
        with pytest.raises(CorruptTrieError, match=name):
            Trie.from_arrays(arrays, validate=False)


# --- edge cases ------------------------------------------------------------------------------


def test_empty_trie():
    terms = TermStore()
    for trie in (Trie.empty(), encode_batch([], terms), Trie.empty().merkleize()):
        trie.validate()
        assert len(trie) == 0 and trie.total_count == 0
        assert trie.count(E("f", "a"), terms) == 0
        assert trie.match(Variable("x")).size == 0
        assert list(trie.iter_atoms(terms)) == []
        assert trie.prefix_range(b"") == (0, 0)
    one = encode_batch([E("f", "a")], terms)
    assert trie_multiset(Trie.empty().merge(one), terms) == trie_multiset(one, terms)
    assert len(one.subtract(one)) == 0


def test_big_arity_and_many_variables():
    """Extension tags: arity above 63 (0x44) and references to variable 64+ (0x46)."""
    terms = TermStore()
    names = [f"v{i}" for i in range(70)]
    wide = Expression([Symbol("w")] + [Variable(n) for n in names] + [Variable("v65"), Variable("v3")])
    ground_wide = Expression([Symbol("w")] + [Grounded(i) for i in range(70)] + [Grounded(65), Grounded(3)])
    wrong_wide = Expression([Symbol("w")] + [Grounded(i) for i in range(70)] + [Grounded(64), Grounded(3)])
    stored = [wide, ground_wide, E("w", "a"), Expression([Symbol("w")] * 64)]
    trie = encode_batch(stored, terms)
    assert trie_multiset(trie, terms) == multiset(stored, terms)
    for pattern in [ground_wide, wrong_wide, wide, Expression([Variable("q")] * 73), Variable("x")]:
        assert trie_matches(trie, pattern, terms) == reference_matches(pattern, stored, terms)
        assert trie_matches(trie.merkleize(), pattern, terms) == reference_matches(pattern, stored, terms)


def chain(depth: int, end: str):
    atom = Symbol(end)
    for _ in range(depth):
        atom = E("f", atom)
    return atom


def test_deep_paths_and_many_branches():
    """A path of 900 bytes that branches at each of its 300 levels: more pending branches,
    path bytes and results than any buffer starts with, in the match walk and the leaf walk."""
    terms = TermStore()
    stored = [chain(300, "a")] + [chain(k, "b") for k in range(300)] + [chain(150, "$x")]
    trie = encode_batch(stored, terms)
    trie.validate()
    assert trie_multiset(trie, terms) == multiset(stored, terms)
    assert [p for p, _ in trie.iter_paths(chunk=7)] == sorted(key(a, terms) for a in stored)
    for pattern in [Variable("q"), chain(299, "$y"), chain(200, "b"), chain(150, "$z"), E("f", ("f", "$w"))]:
        assert trie_matches(trie, pattern, terms) == reference_matches(pattern, stored, terms)
    dag = trie.merkleize()
    assert trie_multiset(dag.merge(trie), terms) == multiset(stored + stored, terms)


def test_unknown_string_in_a_query_still_matches_stored_variables():
    terms = TermStore()
    trie = encode_batch([E("f", "$x"), E("f", Grounded("known"))], terms)
    pattern = E("f", Grounded("never stored"))
    assert [str(a) for a, _ in trie.match_atoms(pattern, terms)] == ["(f $x)"]
    assert trie.count(pattern, terms) == 0


def test_atoms_with_strings_need_the_term_store():
    terms = TermStore()
    trie = encode_batch([E("f", Grounded("s"))], terms)
    with pytest.raises(ValueError, match="TermStore"):
        trie.count(E("f", Grounded("s")))
    with pytest.raises(ValueError, match="TermStore"):
        trie.match(E("f", Grounded("s")))


def test_build_rejects_malformed_paths():
    good = encode(E("f", "a"), TermStore())[0]
    for bad in [good[:-1], good + b"\x00", b"\x80", b"\x7f", b"\x45\x02"]:
        data = np.frombuffer(good + bad, np.uint8)
        with pytest.raises(CodecError, match="path 1"):
            Trie.build(data, np.array([0, len(good), len(good) + len(bad)]))
    with pytest.raises(CodecError):
        Trie.build(np.frombuffer(good, np.uint8), np.array([0, len(good) + 4]))
    with pytest.raises(ValueError, match="counts"):
        Trie.build(np.frombuffer(good, np.uint8), np.array([0, len(good)]), counts=np.array([0]))


@pytest.mark.parametrize(
    ("bad", "offending"),
    [
        (b"\x02\xc1f\x80", 3),  # a reference to variable 0 before any variable
        (b"\x01\xc2\xff\xfe", 2),  # a symbol name that is not UTF-8
        (b"\x45\x02", 0),  # a Bool payload other than 0 or 1
        (b"\x47" + bytes(8), 0),  # an in-process handle
        (b"\x44\x00\x00\x00\x02\xc0\xc0", 0),  # a big arity that fits the short form
        (b"\x02\xc0", 2),  # cut off: one child of two
        (b"\xc0\xc0", 1),  # a second atom after the first
    ],
)
def test_build_names_the_first_offending_byte(bad, offending):
    good = encode(E("f", "a"), TermStore())[0]
    data = np.frombuffer(good + bad, np.uint8)
    with pytest.raises(CodecError, match=rf"path 1 .*\(byte {len(good) + offending}\)"):
        Trie.build(data, np.array([0, len(good), len(good) + len(bad)]))
    trie = encode_batch([E("f", "a")], TermStore())
    with pytest.raises(CodecError):
        trie.match(bad)


def test_malformed_pattern_bytes():
    trie = encode_batch([E("f", "a")], TermStore())
    with pytest.raises(CodecError):
        trie.match(b"\x02\xc1f")
    with pytest.raises(CodecError):
        trie.match(b"\x81")


def test_sort_with_large_groups_and_long_shared_prefixes():
    """Enough paths with long common prefixes to take the radix passes, not only the insertion
    sort of small groups, against Python's own sort."""
    rng = np.random.default_rng(7)
    terms = TermStore()
    stored = []
    for _ in range(3000):
        head = f"function-with-a-long-name{rng.integers(0, 40)}"
        args = [rng.choice(["zero", "$x", "one"]) for _ in range(rng.integers(0, 4))]
        stored.append(E("=", (head, *args), int(rng.integers(-3, 3))))
    stored += stored[:500]  # duplicates
    trie = encode_batch(stored, terms)
    assert [p for p, _ in trie.iter_paths()] == sorted({key(a, terms) for a in stored})
    assert trie_multiset(trie, terms) == multiset(stored, terms)
    with pytest.raises(IndexError):
        trie.path(len(trie))


def test_corrupt_error_is_a_value_error():
    assert issubclass(CorruptTrieError, ValueError)


def test_suffixes_longer_than_one_label_become_chains():
    """A label holds at most 255 bytes: longer suffixes are split into one-child nodes, and paths
    that branch inside such a chain, at its joints or past it still round-trip."""
    terms = TermStore()
    long_tail = [f"s{i:03d}" for i in range(120)]  # 5 bytes each: some 600 bytes per atom
    atoms = [E("f", *long_tail)]
    for cut in (10, 51, 52, 53, 103, 119):  # branch points before, at and after 255-byte joints
        atoms.append(E("f", *long_tail[:cut], "x", *long_tail[cut + 1 :]))
    atoms.append(E("g", "a"))
    trie = encode_batch(atoms, terms, counts=[1, 2, 3, 4, 5, 6, 7, 8])
    trie.validate()
    arrays = trie.arrays
    assert arrays["label_len"].dtype == np.uint8
    assert int(arrays["label_len"].max()) == 255  # the first atom's tail needs full links
    expected = {encode(a, terms)[0]: c for a, c in zip(atoms, [1, 2, 3, 4, 5, 6, 7, 8])}
    assert dict(trie.iter_paths()) == expected
    for atom, count in zip(atoms, [1, 2, 3, 4, 5, 6, 7, 8]):
        assert trie.count(atom, terms) == count
    pattern = E("f", *long_tail[:60], "$y", *long_tail[61:])
    found = {encode(a, terms)[0] for a, _ in trie.match_atoms(pattern, terms)}
    assert found == {p for p in expected if p == encode(atoms[0], terms)[0]}
    merged = trie.merge(encode_batch(atoms[:2], terms))
    assert merged.count(atoms[1], terms) == 3 and merged.count(atoms[7], terms) == 8
    dag = trie.merkleize()
    dag.validate()
    assert dict(dag.iter_paths()) == expected
