"""Streamed and counted answers (PersistentKB.iter_bindings, count_matches), batched lookups
(query_many) and the conjunction seam of `metta-numba query` (space.query_answers), each
against the answers the KB gives one pattern at a time."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.atoms import Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.query_command import readable
from metta_numba.space import SnapshotSpace
from metta_numba.space.conjunction import match_conjunction
from metta_numba.space.query_answers import answers, count_answers
from metta_numba.store.generation import Generation
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import format_atom
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import parse_atom
from metta_numba.unify import substitute

# A small vocabulary, so that random patterns meet random facts often.
_leaf = st.one_of(
    st.sampled_from([Symbol("a"), Symbol("b"), Symbol("c"), Symbol("edge")]),
    st.sampled_from([Grounded(1), Grounded(2), Grounded(2.0), Grounded("s")]),
)
_var = st.sampled_from([Variable("x"), Variable("y"), Variable("z")])


def _terms(leaf):
    return st.recursive(leaf, lambda inner: st.lists(inner, min_size=1, max_size=3).map(Expression), max_leaves=5)


_facts = st.lists(
    st.lists(_terms(_leaf), min_size=1, max_size=3).map(lambda k: Expression([Symbol("edge"), *k])), max_size=25
)
_stored_with_vars = st.lists(
    _terms(st.one_of(_leaf, _var)).map(lambda t: Expression([Symbol("edge"), t, Variable("x")])), max_size=3
)
_patterns = st.lists(_terms(st.one_of(_leaf, _var, _var)), min_size=1, max_size=3).map(
    lambda k: Expression([Symbol("edge"), *k])
)


def _shown(pattern, bindings_list) -> list[str]:
    """Each answer as the text of the pattern's variables' values, in answer order (a stored
    variable renamed apart shows by its stored name, whatever number the renaming gave it)."""
    variables = variables_of(pattern)
    return [format_atom(readable(Expression([substitute(v, b) for v in variables]))) for b in bindings_list]


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="querystream-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _kb(folder: Path, stored, added=(), removed=()) -> PersistentKB:
    """A KB of `stored` (checkpointed), then `added` and `removed` left in its working set."""
    shutil.rmtree(folder / "kb", ignore_errors=True)
    kb = PersistentKB.create(folder / "kb", sync="never", checkpoint_every=None)
    for atom in stored:
        kb.add(atom)
    kb.checkpoint()
    for atom in added:
        kb.add(atom)
    for atom in removed:
        kb.remove(atom)
    return kb


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    facts=_facts,
    with_vars=_stored_with_vars,
    extra=_facts,
    patterns=st.lists(_patterns, min_size=1, max_size=6),
    data=st.data(),
)
def test_streams_counts_and_batches_agree_with_one_pattern_answers(folder, facts, with_vars, extra, patterns, data):
    unsaved = data.draw(st.booleans())
    added = extra[:3] if unsaved else ()
    removed = facts[:2] if unsaved else ()
    kb = _kb(folder, facts + with_vars, added, removed)
    try:
        for pattern in patterns:
            whole = kb.bindings(pattern)
            assert _shown(pattern, kb.iter_bindings(pattern)) == _shown(pattern, whole)
            assert kb.count_matches(pattern) == len(whole)
        many = kb.query_many([format_atom(p) for p in patterns])
        assert len(many) == len(patterns)
        assert list(many.counts()) == [len(kb.query(p)) for p in patterns]
        for i, pattern in enumerate(patterns):
            expected = kb.query(pattern)
            got = many[i]
            assert Counter(format_atom(a) for a, _ in got) == Counter(format_atom(a) for a, _ in expected)
            assert Counter(_shown(pattern, (b for _, b in got))) == Counter(_shown(pattern, (b for _, b in expected)))
            assert many.pattern(i) == pattern
    finally:
        kb.close()


def test_a_stream_reads_candidates_a_chunk_at_a_time(folder, monkeypatch):
    facts = [Expression([Symbol("p"), Grounded(i)]) for i in range(3000)]
    kb = _kb(folder, facts)
    pattern = parse_atom("(p $n)")
    calls = []
    chunked = Generation.matched_ranks

    def counted(self, key, ranks):
        calls.append(len(ranks))
        return chunked(self, key, ranks)

    monkeypatch.setattr(Generation, "matched_ranks", counted)
    try:
        first = list(islice(kb.iter_bindings(pattern), 10))
        assert calls == [16], "ten answers read one small chunk, not the 3000 candidates"
        assert first == kb.bindings(pattern)[:10]
        calls.clear()
        assert list(kb.iter_bindings(pattern)) == kb.bindings(pattern)
        assert sum(calls) == 3000 and calls[:3] == [16, 32, 64]
        assert kb.count_matches(pattern) == 3000
        assert kb.count_matches(parse_atom("(p 17)")) == 1
        assert kb.count_matches(parse_atom("(p $n $n)")) == 0
    finally:
        kb.close()


def test_a_stream_ends_when_the_kb_moves_to_another_generation(folder):
    from metta_numba.store.errors import SnapshotError

    kb = _kb(folder, [Expression([Symbol("p"), Grounded(i)]) for i in range(500)])
    try:
        stream = kb.iter_bindings(parse_atom("(p $n)"))
        next(stream)
        kb.add(parse_atom("(p new)"))
        kb.checkpoint()
        with pytest.raises(SnapshotError, match="another generation"):
            list(stream)
    finally:
        kb.close()


def test_query_many_reads_text_and_reports_where_it_fails(folder):
    kb = _kb(folder, [parse_atom("(edge a b)"), parse_atom("(edge a b)"), parse_atom('(edge a "long string here")')])
    try:
        many = kb.query_many('(edge a b)\n(edge a "long string here")\n(edge a "unknown string")\n(edge $x b)\n')
        assert list(many.counts()) == [2, 1, 0, 2]
        assert many[0] == [(parse_atom("(edge a b)"), {})] * 2
        assert many.pattern(2) == parse_atom('(edge a "unknown string")')
        with pytest.raises(ParseError) as err:
            kb.query_many("(edge a b)\n  (edge (a b)\n", "file.metta")
        assert str(err.value).startswith("file.metta:2:3:")
        with pytest.raises(ValueError, match="one atom per pattern"):
            kb.query_many(["(edge a b) (edge a c)"])
    finally:
        kb.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), max_size=14))
def test_conjunction_answers_and_count_agree_with_the_planner(folder, edges):
    kb = _kb(folder, [Expression([Symbol("edge"), Symbol(s), Symbol(t)]) for s, t in edges])
    try:
        for text in ("(, (edge $a $b) (edge $b $c) (edge $c $a))", "(, (edge a $x) (edge $x $y))", "(, (edge $a $a))"):
            pattern = parse_atom(text)
            expected = match_conjunction(SnapshotSpace(kb), pattern.children[1:])
            assert Counter(_shown(pattern, answers(kb, pattern))) == Counter(_shown(pattern, expected))
            assert count_answers(kb, pattern) == len(expected)
    finally:
        kb.close()


def test_renamed_stored_variables_print_by_their_stored_names():
    assert format_atom(readable(parse_atom("(g $x#12 $y#12)"))) == "(g $x $y)"
    # A name already shown in the same answer is not reused.
    assert format_atom(readable(parse_atom("(g $x#12 $x)"))) == "(g $x2 $x)"
    assert format_atom(readable(parse_atom("(g $x#3 $x#4)"))) == "(g $x $x2)"


def test_batch_answers_plain_matches_together_with_the_lines_a_session_prints(folder):
    from metta_numba.dist.batch import BatchOptions, plain_match_lines, run_query

    stored = "(edge a b)\n(edge a b)\n(edge b c)\n(edge $s z)\n(= (f $x) (g $x))\n(= (h b) hb)\n(val (+ 1 2))\n"
    kb = _kb(folder, [parse_atom(line) for line in stored.splitlines()])
    queries = [
        "(match &self (edge a b) yes)",
        "(match &self (edge a $y) $y)",
        "(match &self (edge q z) (found q))",
        "(match &self (edge zz zz) yes)",
        "(match &self (edge a $y) (h $y))",  # reduces: (h b) -> hb
        "(match &self (val $v) $v)",  # (+ 1 2) reduces to 3
        "(match &self (, (edge a $y) (edge $y $z)) $z)",
        "(+ 1 2)",
    ]
    try:
        for options in (BatchOptions(), BatchOptions(max_results=1)):
            fast = plain_match_lines(kb, queries, options)
            assert [line is not None for line in fast] == [True] * 4 + [False] * 4
            for text, line in zip(queries, fast):
                if line is not None:
                    assert line == run_query(kb, text, options), text
    finally:
        kb.close()


def test_query_many_finds_whole_numbers_in_either_form(folder):
    stored = ["(n 1 2.0 3)", "(n 1 2.0 3 4)", "(n 1.5)", "(n 7.0)", "(n 9223372036854775807)"]
    kb = _kb(folder, [parse_atom(text) for text in stored])
    try:
        # Three whole numbers: every form is looked up in the kernel; four: `query` widens them.
        texts = ["(n 1.0 2 3.0)", "(n 1.0 2 3 4.0)", "(n 1.5)", "(n 7)", "(n 9223372036854775807)", "(n 2 2)"]
        many = kb.query_many(texts)
        assert list(many.counts()) == [len(kb.query(parse_atom(t))) for t in texts] == [1, 1, 1, 1, 1, 0]
        assert many[0] == [(parse_atom("(n 1 2.0 3)"), {})]
        assert many[3] == [(parse_atom("(n 7.0)"), {})]
    finally:
        kb.close()
