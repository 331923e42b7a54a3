"""The partition function of sharded KBs (dist.partition) and the cutting of sources into byte
ranges (dist.source_ranges): pure functions, checked against unification and the parser."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from strategies import atoms, generalize, programs

from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.dist.partition import (
    UNROUTED_SHARD,
    home_shard,
    partition_key,
    shard_of,
    shards_for,
)
from metta_numba.dist.source_ranges import atom_spans, byte_ranges
from metta_numba.space import match_stored
from metta_numba.syntax.parser import parse_program

# A small vocabulary, so that random stored atoms and random patterns unify often.
_leaf = st.one_of(
    st.sampled_from([Symbol(n) for n in ("a", "b", "f", "g", "=", ":", "edge")]),
    st.sampled_from([Grounded(3), Grounded(3.0), Grounded(-0.0), Grounded(0), Grounded(2.5), Grounded("s")]),
    st.sampled_from([Variable(n) for n in ("x", "y", "z")]),
)
small_atoms = st.recursive(_leaf, lambda kids: st.lists(kids, max_size=4).map(Expression), max_leaves=10)
rule_like = st.tuples(st.sampled_from([Symbol("="), Symbol(":")]), small_atoms, small_atoms).map(
    lambda t: Expression(list(t))
)
stored_atoms = st.one_of(small_atoms, rule_like)
shard_counts = st.integers(1, 7)


def _reachable(stored, pattern, shards: int) -> bool:
    return shard_of(stored, shards) in shards_for(pattern, shards)


@given(stored_atoms, stored_atoms, shard_counts)
def test_a_query_reads_every_shard_that_holds_a_match(stored, pattern, shards):
    if match_stored(stored, pattern) is not None:
        assert _reachable(stored, pattern, shards)


@given(stored_atoms, st.lists(st.sampled_from([0, 1, 3]), max_size=40), shard_counts)
def test_a_pattern_made_from_a_stored_atom_reaches_its_shard(stored, choices, shards):
    pattern = generalize(stored, choices)
    assert match_stored(stored, pattern) is not None
    assert _reachable(stored, pattern, shards)


@given(atoms(max_leaves=12), shard_counts)
def test_shards_for_is_the_key_shard_and_the_unrouted_one_or_all(atom, shards):
    routed = shards_for(atom, shards)
    assert routed == sorted(set(routed)) and all(0 <= s < shards for s in routed)
    if partition_key(atom) is None:
        assert routed == list(range(shards)) and home_shard(atom, shards) is None
    else:
        assert routed == sorted({UNROUTED_SHARD, home_shard(atom, shards)})


def test_integral_floats_and_ints_share_a_key():
    for value in (0, 3, -7, 2**60):
        as_int = Expression([Symbol("val"), Grounded(value), Symbol("x")])
        as_float = Expression([Symbol("val"), Grounded(float(value)), Symbol("y")])
        assert partition_key(as_int) == partition_key(as_float)
    assert partition_key(Expression([Symbol("val"), Grounded(2.5)])) != partition_key(
        Expression([Symbol("val"), Grounded(2)])
    )


def test_rules_and_types_of_a_function_share_a_shard():
    f = Symbol("f")
    members = [
        Expression([Symbol("="), Expression([f, Variable("x")]), Variable("x")]),
        Expression([Symbol("="), Expression([f, Grounded(1), Grounded(2)]), Grounded(3)]),
        Expression([Symbol(":"), f, Expression([Symbol("->"), Symbol("Number"), Symbol("Number")])]),
        Expression([Symbol("="), f, Grounded(0)]),
    ]
    for shards in (2, 5, 16):
        assert len({shard_of(m, shards) for m in members}) == 1


def test_variables_in_key_positions_go_to_the_unrouted_shard():
    for atom in (
        Variable("x"),
        Expression([Symbol("edge"), Variable("x"), Symbol("b")]),
        Expression([Variable("h"), Symbol("a")]),
        Expression([Symbol("="), Variable("lhs"), Symbol("r")]),
        Expression([Symbol("="), Expression([Variable("f"), Symbol("a")]), Symbol("r")]),
    ):
        assert partition_key(atom) is None
        assert shard_of(atom, 8) == UNROUTED_SHARD


def test_placement_is_the_same_in_another_process_with_another_hash_seed():
    samples = ["(edge a b)", "(= (fib $n) (+ 1 $n))", '(val 3.0 "x")', "(: foo Number)", "lone"]
    from metta_numba.syntax.parser import parse_atom

    here = [shard_of(parse_atom(s), 13) for s in samples]
    code = (
        "from metta_numba.syntax.parser import parse_atom\n"
        "from metta_numba.dist.partition import shard_of\n"
        f"print([shard_of(parse_atom(s), 13) for s in {samples!r}])\n"
    )
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        )
        assert out.stdout.strip() == repr(here)


# ---- byte ranges ---------------------------------------------------------------------------------


@given(programs(max_items=8), st.integers(1, 6))
def test_byte_ranges_cut_between_items(program, parts):
    text, items = program
    raw = text.encode()
    ranges = byte_ranges(raw, parts)
    assert len(ranges) <= parts
    assert all(a < b for a, b in ranges) and all(b1 == a2 for (_, b1), (a2, _) in zip(ranges, ranges[1:]))
    if ranges:
        assert ranges[0][0] == 0 and ranges[-1][1] == len(raw)
    whole = [(item.is_query, item.atom) for item in parse_program(text)]
    pieces = [
        (item.is_query, item.atom) for a, b in ranges for item in parse_program(raw[a:b].decode())
    ]
    assert pieces == whole


@given(programs(max_items=8))
def test_atom_spans_hold_one_item_each(program):
    text, _ = program
    raw = text.encode()
    import numpy as np

    starts, ends = atom_spans(np.frombuffer(raw, np.uint8))
    whole = [(item.is_query, item.atom) for item in parse_program(text)]
    spans = [parse_program(raw[s:e].decode()) for s, e in zip(starts.tolist(), ends.tolist())]
    assert all(len(items) == 1 for items in spans)
    assert [(items[0].is_query, items[0].atom) for items in spans] == whole


@given(st.one_of(atoms(max_leaves=12), stored_atoms))
def test_the_key_read_from_a_stored_path_is_the_atoms_key(atom):
    import numpy as np

    from metta_numba.codec import TermStore, encode
    from metta_numba.dist.path_keys import key_prefix_ends, path_key

    terms = TermStore()
    path, _ = encode(atom, terms)
    assert path_key(path, terms) == partition_key(atom)
    # Only the bytes up to where the key ends are needed.
    end = int(key_prefix_ends(np.frombuffer(path, np.uint8), np.array([0, len(path)]))[0])
    assert 0 < end <= len(path)
    assert path_key(path[:end], terms) == partition_key(atom)


# ---- batch planning -------------------------------------------------------------------------------

_batch_queries = st.lists(
    st.sampled_from(
        [
            "(match &self (edge a $y) $y)",
            "(match &self (edge b $y) $y)",
            "(match &self (edge $x c) $x)",
            "(match &self (= (f $x) $r) $r)",
            "(f 3)",
            "(match &self (edge a $y)",  # not a query the planner understands: any worker
        ]
    ),
    max_size=40,
)


@given(_batch_queries, st.integers(0, 10), st.integers(1, 7), st.integers(1, 12), st.integers(1, 4))
def test_batch_chunks_cover_each_query_once_grouped_by_home_shard(queries, start, chunk, block, shards):
    from metta_numba.dist.batch import plan_chunks, query_home
    from metta_numba.syntax.parser import parse_atom

    start = min(start, len(queries))
    planned = list(plan_chunks(queries, start, chunk, block, shards))
    flat = [i for indices, _ in planned for i in indices]
    assert sorted(flat) == list(range(start, len(queries)))
    for indices, home in planned:
        assert 0 < len(indices) <= chunk and indices == sorted(indices)
        assert (min(indices) - start) // block == (max(indices) - start) // block  # one block of the file
        for i in indices:
            expected = query_home(queries[i], shards) if shards > 1 else None
            assert home == expected
            if expected is not None:
                pattern = parse_atom(queries[i]).children[2]
                assert shards_for(pattern, shards) == sorted({UNROUTED_SHARD, expected})
