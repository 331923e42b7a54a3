"""The one-call path of a small query: trie.unifypaths.matched_rows (candidates from the ground
prefix or the argument index) against unification of every stored atom; PersistentKB.bindings
(which takes that path when it can) against unification too, and PersistentKB.bindings_table
against PersistentKB.bindings."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conjunction import canonical

from metta_numba.atoms import E, Expression, Grounded, Symbol, Variable, alpha_equal
from metta_numba.codec import TermStore, decode, encode, encode_atoms
from metta_numba.space.base import replace_symbols
from metta_numba.store import PersistentKB
from metta_numba.syntax import parse_atom
from metta_numba.trie import Trie
from metta_numba.trie.argindex import ArgIndex, IndexOptions, candidate_paths, trie_candidates
from metta_numba.trie.argindex_kernels import USE_TRIE, prefix_ranges, range_total
from metta_numba.trie.pathmatch import MAYBE, YES
from metta_numba.trie.unifypaths import (
    ALL_SINGLE_MATCHES,
    COUNT_DAMAGED,
    NO_INDEX,
    NOT_SERVED,
    ROW_COPIES,
    ROW_FIRST_VALUE,
    ROW_PATH,
    ROW_RANK,
    ROW_STATUS,
    SOME_OTHER_ROWS,
    matched_rows,
)
from metta_numba.unify import rename_apart, substitute, unify_into

symbols = st.sampled_from(["a", "b", "f", "edge"]).map(Symbol)
stored_variables = st.sampled_from(["x", "y"]).map(Variable)
grounded = st.sampled_from([1, 2, 2.0, "s"]).map(Grounded)
terms_ = st.recursive(
    st.one_of(symbols, stored_variables, grounded),
    lambda kids: st.lists(kids, min_size=1, max_size=3).map(Expression),
    max_leaves=6,
)
facts = st.tuples(st.sampled_from(["edge", "f"]), terms_, terms_).map(lambda t: E(*t))
stored_atoms = st.one_of(facts, terms_)
pattern_leaves = st.one_of(symbols, grounded, st.sampled_from(["p", "q", "x"]).map(Variable))
patterns = st.one_of(
    st.tuples(st.sampled_from(["edge", "f"]), pattern_leaves, pattern_leaves).map(lambda t: E(*t)),
    st.recursive(pattern_leaves, lambda kids: st.lists(kids, min_size=1, max_size=3).map(Expression), max_leaves=6),
)


def _unified(stored, pattern):
    bindings: dict = {}
    return bindings if unify_into(rename_apart(stored), pattern, bindings) else None


def _spelled(atom):
    """`atom` with each number replaced by a symbol naming its type and value, so that `2`
    and `2.0` no longer unify."""
    if isinstance(atom, Expression):
        return Expression([_spelled(child) for child in atom.children])
    if isinstance(atom, Grounded) and isinstance(atom.value, int | float):
        return Symbol(f"{type(atom.value).__name__}:{atom.value!r}")
    return atom


def _run_kernel(trie, path, limit, index=None, most=256):
    counts = trie.arrays["leaf_count"]
    counts = np.ascontiguousarray(counts, dtype=counts.dtype.newbyteorder("<"))
    total = int(counts.sum())
    arrays = NO_INDEX if index is None else index.kernel_arrays
    width = counts.dtype.itemsize
    return matched_rows(trie._structure, path, limit, most, *arrays, counts.view(np.uint8), width, total)


def _served(trie, index, path, limit, most) -> bool:
    """Whether matched_rows answers the pattern: as ArgIndex.plan picks the candidates."""
    ranges, later = prefix_ranges(trie._structure, path)
    if range_total(ranges) <= limit:
        return later == 0
    if index is None:
        return False
    choice, estimate, _ = index.lookup(trie, path, gather=False)
    return choice != USE_TRIE and estimate <= most


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(stored_atoms, st.sampled_from([1, 1, 2, 300])), min_size=1, max_size=12),
    patterns,
    st.sampled_from([0, 2, 256]),
    st.booleans(),
    st.sampled_from([1, 4, 256]),
)
def test_matched_rows_agree_with_unification(stored_counts, pattern, limit, indexed, most):
    stored = [atom for atom, _ in stored_counts]
    terms = TermStore()
    data, offsets, names, _ = encode_atoms(stored, terms)
    trie = Trie.build(data, offsets, np.array([c for _, c in stored_counts], np.int64), names)
    index = ArgIndex.build(trie, IndexOptions(max_ratio=None)) if indexed else None
    key, pattern_names = encode(pattern, terms)
    path = np.frombuffer(key, np.uint8)
    rows, out, verdict = _run_kernel(trie, path, limit, index, most)
    if not _served(trie, index, path, limit, most):
        assert verdict == NOT_SERVED
        return
    assert rows.shape[1] == ROW_FIRST_VALUE + 2 * len(pattern_names)
    copies: Counter = Counter()
    for atom, count in stored_counts:
        copies[encode(atom, terms, intern=False)[0]] += count
    stored_by_rank = trie.atoms_of(np.arange(len(trie), dtype=np.int64), terms)
    by_rank = {row[ROW_RANK]: row for row in rows.tolist()}
    assert list(by_rank) == sorted(by_rank), "rows come in rank order"
    single = all(row[ROW_STATUS] == YES and row[ROW_COPIES] == 1 for row in by_rank.values())
    assert verdict == (ALL_SINGLE_MATCHES if single else SOME_OTHER_ROWS)
    raw = out.tobytes()
    for rank, atom in enumerate(stored_by_rank):
        expected = _unified(atom, pattern)
        row = by_rank.get(rank)
        if row is None:
            # Numbers compare by value (`2` unifies with `2.0`), but the kernel looks up the
            # pattern's own spelling only (the KB probes the other spellings: snapshot_probes),
            # so an atom it leaves out must not unify once numbers are told apart by type.
            assert expected is None or _unified(_spelled(atom), _spelled(pattern)) is None, (atom, pattern)
            continue
        own_path = encode(atom, terms, intern=False)[0]
        assert raw[row[ROW_PATH] : row[ROW_PATH + 1]] == own_path
        assert row[ROW_COPIES] == copies[own_path]
        if row[ROW_STATUS] == MAYBE:
            continue
        assert row[ROW_STATUS] == YES and expected is not None, (atom, pattern)
        for j, name in enumerate(pattern_names):
            start, end = row[ROW_FIRST_VALUE + 2 * j], row[ROW_FIRST_VALUE + 2 * j + 1]
            value = substitute(Variable(name), expected)
            if start == end:
                assert value == Variable(name), (atom, pattern, name)
            else:
                got = decode(raw[start:end], terms, [])
                assert got == value and type(got) is type(value), (atom, pattern, name)


def _columns_from_bindings(kb, pattern, variables, replace=None):
    columns = [[] for _ in variables]
    for answer in kb.bindings(pattern):
        for column, var in zip(columns, variables):
            value = substitute(var, answer) if var in answer else None
            column.append(value if value is None or replace is None else replace(value))
    return columns


def _same_columns(got, expected) -> bool:
    """Equal columns, where a value holding a stored variable is equal up to its renaming
    (each query renames stored variables apart afresh)."""
    if len(got) != len(expected):
        return False
    for column, other in zip(got, expected):
        if len(column) != len(other):
            return False
        for a, b in zip(column, other):
            if not (a == b and type(a) is type(b)) and (a is None or b is None or not alpha_equal(a, b)):
                return False
    return True


KB_TEXT = [
    "(edge n1 n2)", "(edge n1 n3)", "(edge n1 n3)", "(edge n2 n1)", "(edge n1 (pair a $z))",
    "(edge n1 $w)", "(edge n1 tok)", "(edge $u $u)", "(= (f zero $x) $x)", "(= (g zero $x) (s $x))",
    "(= (f (s $n)) $n)", "(edge n1 2)", "(edge n1 2.0)", '(edge n1 "text")',
    "(edge n1 a_symbol_whose_name_is_long_enough_to_live_in_the_term_store_of_the_kb)",
]
KB_PATTERNS = [
    "(edge n1 $y)", "(edge n2 $y)", "(edge n9 $y)", "(edge $x n1)", "(edge n1 (pair $p $q))",
    "(= (f zero $x) $x)", "(= ($f zero $x) $x)", "(= (f $a) $b)", "(edge n1 n3)", "(edge n1 $y $z)",
]


def test_bindings_table_agrees_with_bindings(tmp_path):
    with PersistentKB.create(tmp_path / "kb") as kb:
        for text in KB_TEXT:
            kb.add(parse_atom(text))
        kb.checkpoint()
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        token = Grounded("the token")

        def hook(value):
            return replace_symbols(value, {Symbol("tok"): token})

        # The one-call path serves a ground-prefix pattern (so the comparisons below test it).
        assert kb._generation.matched_rows(kb._encoded(parse_atom("(edge n1 $y)")).path) is not None
        for text in KB_PATTERNS:
            pattern = parse_atom(text)
            for _ in range(2):  # the second time from the kept encoding and values
                variables, columns = kb.bindings_table(pattern)
                assert _same_columns(columns, _columns_from_bindings(kb, pattern, variables)), text
                variables, columns = kb.bindings_table(pattern, hook, {"tok": token})
                expected = _columns_from_bindings(kb, pattern, variables, hook)
                assert _same_columns(columns, expected), text
        _, columns = kb.bindings_table(parse_atom("(edge n1 $y)"), hook, {"tok": token})
        assert token in columns[0] and Symbol("tok") not in columns[0]


def test_a_kept_encoding_follows_the_term_store(tmp_path):
    """A long symbol the KB does not hold encodes with a placeholder id; once the KB holds it,
    the same pattern must find it (its kept encoding is dropped)."""
    long_name = "a_symbol_whose_name_is_long_enough_to_live_in_the_term_store_of_the_kb"
    pattern = parse_atom(f"(edge {long_name} $y)")
    with PersistentKB.create(tmp_path / "kb") as kb:
        kb.add(parse_atom("(edge n1 n2)"))
        kb.checkpoint()
        assert kb.bindings_table(pattern) == ([Variable("y")], [[]])
        kb.add(parse_atom(f"(edge {long_name} found)"))
        kb.checkpoint()
        assert kb.bindings_table(pattern) == ([Variable("y")], [[Symbol("found")]])


def _answers(pattern, found) -> Counter:
    return Counter(canonical(substitute(pattern, bindings)) for bindings in found)


def _reference(stored_counts, pattern, with_atoms: bool = False) -> Counter:
    """The pattern's answers by unifying it with every stored copy (with the stored atoms, as
    PersistentKB.query gives them, on request)."""
    found: Counter = Counter()
    for atom, copies in stored_counts:
        bindings = _unified(atom, pattern)
        if bindings is not None:
            answer = canonical(substitute(pattern, bindings))
            found[(canonical(atom), answer) if with_atoms else answer] += copies
    return found


def _query_answers(pattern, found) -> Counter:
    return Counter((canonical(atom), canonical(substitute(pattern, values))) for atom, values in found)


# No numbers: the KB finds `2` for `2.0` through probes of other spellings, a path of its own.
kb_leaves = st.one_of(symbols, stored_variables, st.sampled_from(["s", "t"]).map(Grounded))
kb_terms = st.recursive(kb_leaves, lambda kids: st.lists(kids, min_size=1, max_size=3).map(Expression), max_leaves=6)
kb_atoms = st.one_of(st.tuples(st.sampled_from(["edge", "f"]), kb_terms, kb_terms).map(lambda t: E(*t)), kb_terms)
kb_pattern_leaves = st.one_of(symbols, st.sampled_from(["p", "q", "x"]).map(Variable))
kb_patterns = st.tuples(st.sampled_from(["edge", "f"]), kb_pattern_leaves, kb_pattern_leaves).map(lambda t: E(*t))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(kb_atoms, st.sampled_from([1, 1, 2])), min_size=1, max_size=30),
    st.lists(kb_patterns, max_size=4),
)
def test_bindings_agree_with_unification_of_every_stored_copy(tmp_path_factory, stored_counts, queries):
    directory = tmp_path_factory.mktemp("kb") / "kb"
    with PersistentKB.create(directory) as kb:
        for atom, copies in stored_counts:
            for _ in range(copies):
                kb.add(atom)
        kb.checkpoint()
    with PersistentKB.open(directory, readonly=True) as kb:
        for pattern in queries:
            for _ in range(2):  # the second time from the kept encoding and values
                assert _answers(pattern, kb.bindings(pattern)) == _reference(stored_counts, pattern), pattern
            assert _query_answers(pattern, kb.query(pattern)) == _reference(stored_counts, pattern, True), pattern


def test_a_pattern_the_index_narrows_is_answered_in_one_call(tmp_path):
    facts = [parse_atom(f"(edge n{i % 40} n{(7 * i) % 31})") for i in range(1200)]
    with PersistentKB.create(tmp_path / "kb") as kb:
        for fact in facts:
            kb.add(fact)
        kb.checkpoint()
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        generation = kb._generation
        assert generation.index is not None
        for text in ("(edge $x n5)", "(edge n3 $y)"):
            pattern = parse_atom(text)
            path = kb._encoded(pattern).path
            # (edge $x n5): the prefix `(edge` leaves all 1,200 paths, the index the few.
            assert generation.matched_rows(path) is not None, text
            assert _answers(pattern, kb.bindings(pattern)) == _reference([(f, 1) for f in facts], pattern), text
            assert _query_answers(pattern, kb.query(pattern)) == _reference([(f, 1) for f in facts], pattern, True)
        # Too many candidates for rows one by one, or none the index narrows: the general way
        # answers, the same.
        for text in ("(edge $x $y)", "(edge $x $x)"):
            broad = parse_atom(text)
            assert generation.matched_rows(kb._encoded(broad).path) is None
            assert _answers(broad, kb.bindings(broad)) == _reference([(f, 1) for f in facts], broad)


def test_a_copy_count_above_the_total_is_reported():
    terms = TermStore()
    data, offsets, names, _ = encode_atoms([parse_atom("(edge n1 n2)"), parse_atom("(edge n1 n3)")], terms)
    trie = Trie.build(data, offsets, np.array([1, 5], np.int64), names)
    counts = trie.arrays["leaf_count"]
    path = np.frombuffer(encode(parse_atom("(edge n1 $y)"), terms)[0], np.uint8)
    width = counts.dtype.itemsize
    counted = (*NO_INDEX, counts.view(np.uint8), width)
    assert matched_rows(trie._structure, path, 256, 256, *counted, 6)[2] == SOME_OTHER_ROWS
    assert matched_rows(trie._structure, path, 256, 256, *counted, 4)[2] == COUNT_DAMAGED


def test_a_large_table_decodes_only_the_wanted_columns(tmp_path):
    with PersistentKB.create(tmp_path / "kb") as kb:
        for i in range(400):
            kb.add(parse_atom(f"(edge n{i % 7} m{i})"))
            kb.add(parse_atom(f"(= (add{i % 150} $y zero) $y)"))  # $x's value lies in the pattern
            kb.add(parse_atom(f"(= (add{i} zero $y) $y)"))
        kb.checkpoint()
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        pattern = parse_atom("(= ($f zero $x) $x)")
        variables, full = kb.bindings_table(pattern)
        assert len(full[0]) == 800 and Symbol("zero") in full[1] and None in full[1]
        assert _same_columns(full, _columns_from_bindings(kb, pattern, variables))
        assert kb.bindings_table(pattern, wanted={Variable("f")})[1] == [full[0], [None] * 800]
        pattern = parse_atom("(edge $x $y)")
        variables, full = kb.bindings_table(pattern)
        assert variables == [Variable("x"), Variable("y")] and len(full[0]) == 400
        assert _same_columns(full, _columns_from_bindings(kb, pattern, variables))
        variables, only_y = kb.bindings_table(pattern, wanted={Variable("y")})
        assert only_y[1] == full[1]
        assert only_y[0] == [None] * 400


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(stored_atoms, st.sampled_from([1, 2])), min_size=1, max_size=14), patterns, st.booleans())
def test_candidate_paths_are_the_paths_of_the_candidates(stored_counts, pattern, indexed):
    """The match kernel's paths, read during its walk, against a second walk to every rank."""
    terms = TermStore()
    data, offsets, names, _ = encode_atoms([atom for atom, _ in stored_counts], terms)
    trie = Trie.build(data, offsets, np.array([c for _, c in stored_counts], np.int64), names)
    index = ArgIndex.build(trie, IndexOptions()) if indexed else None
    key = encode(pattern, terms)[0]
    ranks, got_data, got_offsets = candidate_paths(trie, index, key)
    expected = trie_candidates(trie, index, key)
    assert ranks.tolist() == expected.tolist()
    want_data, want_offsets = trie.paths(expected)
    assert got_data.tobytes() == want_data.tobytes() and got_offsets.tolist() == want_offsets.tolist()
    if not indexed:
        walked = trie.match_paths(np.frombuffer(key, np.uint8))
        assert walked[0].tolist() == trie.match(key).tolist()
        assert walked[1].tobytes() == trie.paths(walked[0])[0].tobytes()
