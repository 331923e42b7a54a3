"""trie.relation_ids (cells numbered straight from a leaf stream) against expanding the stream,
splitting each path with trie.relation_cells and numbering the cells' bytes in a dict."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.atoms import E, Grounded, Symbol, Variable
from metta_numba.codec import TermStore, encode_atoms
from metta_numba.trie import Trie
from metta_numba.trie.relation_cells import ROW_OK, relation_cells
from metta_numba.trie.relation_ids import relation_ids
from metta_numba.trie.value_table import CHUNK, ValueTable

symbols = st.sampled_from(["a", "b", "c", "n_1", "n_12", "n_123", "x" * 20]).map(Symbol)
plain_numbers = st.sampled_from([0, 1, -7, 2**40, 2.5]).map(Grounded)
nested = st.tuples(st.just(Symbol("f")), symbols).map(lambda t: E(*t))
ground = st.one_of(symbols, symbols, symbols, plain_numbers, nested)
# What makes a row no plain row of values: a variable, a whole float or NaN (see relation_cells).
spoilers = st.one_of(st.sampled_from(["v", "w"]).map(Variable), st.sampled_from([2.0, float("nan")]).map(Grounded),
                     st.tuples(st.just(Symbol("f")), st.just(Variable("v"))).map(lambda t: E(*t)))
rows = st.tuples(st.sampled_from(["edge", "p"]), st.integers(2, 4), st.lists(ground, min_size=3, max_size=3))

def front_coded(paths: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(suffixes, common, length) of byte-sorted distinct paths, as trie.stream lays them out."""
    suffixes, common, length = bytearray(), [], []
    previous = b""
    for path in paths:
        shared = 0
        while shared < min(len(path), len(previous)) and path[shared] == previous[shared]:
            shared += 1
        suffixes += path[shared:]
        common.append(shared)
        length.append(len(path))
        previous = path
    return np.frombuffer(bytes(suffixes) + b"\0", np.uint8), np.array(common, np.int32), np.array(length, np.int32)


def reference(paths: list[bytes], arity: int, numbering: dict[bytes, int]) -> tuple[list[int] | None, dict]:
    """The ids relation_ids should give (None: some row is not ROW_OK), and the numbering after."""
    data = np.frombuffer(b"".join(paths) + b"\0", np.uint8)
    offsets = np.cumsum([0] + [len(p) for p in paths]).astype(np.int64)
    starts, ends, status = relation_cells(data, offsets, arity)
    if len(status) and int(status.max()) != ROW_OK:
        return None, numbering
    after = dict(numbering)
    ids = [after.setdefault(data[s:e].tobytes(), len(after)) for s, e in zip(starts.tolist(), ends.tolist())]
    return ids, after


def check(paths: list[bytes], stream: tuple, arity: int, table: ValueTable, numbering: dict[bytes, int]) -> dict:
    expected, after = reference(paths, arity, numbering)
    ids, status = table.add_by(relation_ids, *stream, arity)
    assert (status == ROW_OK) == (expected is not None)
    if expected is not None:
        assert ids.tolist() == expected
    assert len(table) == len(after), "a relation that is not joinable numbers nothing"
    assert all(table[i] == raw and table.find(raw) == i for raw, i in after.items())
    return after


@settings(max_examples=150, deadline=None)
@given(st.lists(rows, max_size=40), st.lists(st.tuples(rows, st.integers(0, 2), spoilers), max_size=2))
def test_stored_relations_number_as_their_expanded_cells(plain, spoiled):
    for (_, arity, args), position, spoiler in spoiled:
        args[min(position, arity - 2)] = spoiler
    atoms = [E(Symbol(head), *args[: arity - 1]) for head, arity, args in plain + [row for row, _, _ in spoiled]]
    terms = TermStore()
    if atoms:
        data, offsets, names, _ = encode_atoms(atoms, terms)
        trie = Trie.build(data, offsets, None, names)
    else:
        trie = Trie.empty()
    table, numbering = ValueTable(), {}
    for head in ("edge", "p"):  # one table across relations: ids are shared and stable
        for arity in (2, 3, 4):
            prefix = bytes([arity, 0xC0 + len(head)]) + head.encode()
            lo, hi = trie.prefix_range(prefix)
            paths = [trie.path(rank) for rank in range(lo, hi)]
            numbering = check(paths, trie.leaf_stream(lo, hi), arity, table, numbering)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=25), st.integers(2, 4), st.lists(st.binary(max_size=6), max_size=5))
def test_any_bytes_are_rows_or_refused_as_the_batch_refuses_them(tails, arity, known):
    """Paths of random bytes after an arity tag and a head: rows or malformed ones."""
    paths = sorted({bytes([arity, 0xC1]) + b"h" + tail for tail in tails})
    table, numbering = ValueTable(), {}
    for raw in known:
        numbering.setdefault(raw, table.add(raw))
    check(paths, front_coded(paths), arity, table, numbering)


def test_a_relation_longer_than_a_chunk_numbers_across_chunks():
    """More rows than relation_ids reads between two checks of the table's room (CHUNK), so
    that runs of a first argument cross from one chunk to the next."""
    rng = np.random.default_rng(3)
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, 1500, (3 * CHUNK, 2))}
    atoms = [E(Symbol("edge"), Symbol(f"n_{a // 5}"), Symbol(f"n_{b}")) for a, b in sorted(pairs)]
    data, offsets, names, _ = encode_atoms(atoms, TermStore())
    trie = Trie.build(data, offsets, None, names)
    lo, hi = trie.prefix_range(bytes([3, 0xC4]) + b"edge")
    assert hi - lo > 2 * CHUNK
    table = ValueTable()
    table.add(b"\xc3n_7")  # a value known before, numbered first
    check([trie.path(rank) for rank in range(lo, hi)], trie.leaf_stream(lo, hi), 3, table, {b"\xc3n_7": 0})
