"""A long run read and built on two threads (syntax.bulk_parallel.encode_text_parallel, the halves of a
segment's sort and its copy groups) gives exactly what one thread gives: same paths, names,
term ids and errors; same sort order, trie and copies of each path."""

from __future__ import annotations

import contextlib

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import programs

from metta_numba.codec import TermStore
from metta_numba.space import segment
from metta_numba.space import segment_kernels as kernels
from metta_numba.syntax import bulk, bulk_parallel
from metta_numba.syntax.errors import ParseError


@contextlib.contextmanager
def _cut_anything():
    """Every source is cut into pieces, however short (the threshold is for speed only)."""
    saved = bulk_parallel.PARALLEL_MIN_BYTES
    bulk_parallel.PARALLEL_MIN_BYTES = 0
    try:
        yield
    finally:
        bulk_parallel.PARALLEL_MIN_BYTES = saved


def _read(run, raw: bytes, seed_texts: list[str]):
    terms = TermStore(list(seed_texts))
    try:
        batch = run(raw, terms)
    except ParseError as err:
        return ("error", err.line, err.col, err.message, terms.texts)
    paths = [batch.path(i) for i in range(len(batch))]
    return ("ok", paths, batch.is_query.tolist(), batch.names.tolist(), terms.texts)


def _both(raw: bytes, jobs: int, seed_texts: list[str] = ()) -> tuple:
    one = _read(lambda r, t: bulk.encode_source(r, "p.metta", t, valid_utf8=True), raw, seed_texts)
    with _cut_anything():
        many = _read(lambda r, t: bulk_parallel.encode_text_parallel(r, "p.metta", t, jobs), raw, seed_texts)
    return one, many


_EDITS = ["\n(", "\n", "(", ")", '"', '"\n(', "\n(\n", "; c\n(", "!"]


@given(programs(max_items=10), st.data())
def test_pieces_read_as_one_scan(program, data) -> None:
    """Cuts land between atoms, inside expressions, strings and comments (the piece before
    the cut then fails and the source is read in one piece), and near a `!`."""
    text = program[0]
    if data.draw(st.booleans()):
        text = text.replace("!", " ")  # most runs the loader offers hold no `!`
    for _ in range(data.draw(st.integers(0, 4))):
        where = data.draw(st.integers(0, len(text)))
        text = text[:where] + data.draw(st.sampled_from(_EDITS)) + text[where:]
    seed = data.draw(st.lists(st.sampled_from(["x", "s" * 70, "t"]), max_size=2))
    one, many = _both(text.encode("utf-8"), data.draw(st.integers(2, 4)), seed)
    assert many == one


@given(programs(max_items=10), st.data())
def test_a_scan_of_the_first_bytes_of_a_buffer_reads_them_alone(program, data) -> None:
    """ParallelScan(raw, size=n) reads raw[:n] as a scan of those bytes does: what follows in
    the buffer (a `!`, a NUL, a broken atom) changes nothing."""
    text = program[0].replace("!", " ") if data.draw(st.booleans()) else program[0]
    raw = text.encode("utf-8")
    tail = data.draw(st.sampled_from([b"", b"!(q)\n", b"\0", b"(open\n", b"\n(a b)\n"]))
    seed = data.draw(st.lists(st.sampled_from(["x", "t"]), max_size=2))
    jobs = data.draw(st.integers(2, 4))
    one = _read(lambda r, t: bulk.encode_source(r, "p.metta", t, valid_utf8=True), raw, seed)
    with _cut_anything():
        scan = _read(lambda r, t: bulk_parallel.ParallelScan(r + tail, "p.metta", jobs, size=len(r)).encoded(t),
                     raw, seed)  # fmt: skip
    assert scan == one


def test_a_cut_inside_an_expression_or_a_string_is_not_taken() -> None:
    sources = [
        '(a "x\n(b c)" d)\n(e "f")\n(g h)\n',
        "(a\n(b c)\n(d e))\n(f $x)\n(g $x $y)\n",
        "(a b)\n; (not an atom\n(c d)\n(e f)\n",
        '(a b)\n(c "\\"\n(" d)\n(e $q)\n(f "s")\n',
    ]
    for source in sources:
        for jobs in (2, 3, 5):
            one, many = _both(source.encode(), jobs)
            assert one[0] == "ok" and many == one


def test_a_bang_before_the_cut_keeps_its_query() -> None:
    """`!` then a newline: the atom after the cut is a query; the whole source is one piece."""
    one, many = _both(b"(a b)\n!\n(c d)\n(e f)\n", 2)
    assert one[2] == [False, True, False] and many == one


def test_an_error_in_a_later_piece_is_reported_as_one_scan_reports_it() -> None:
    one, many = _both(b'(a b)\n(c d)\n(e f)\n(g "h)\n', 2)
    assert one[0] == "error" and many == one


def test_long_program_is_cut_and_read_alike() -> None:
    """A source long enough for the default threshold, with strings (term ids renumbered in
    the second piece) and variable names."""
    lines = [f'(= (f{i % 97} $x "s{i % 13}") (g $x {i}))' for i in range(60000)]
    raw = ("\n".join(lines) + "\n").encode()
    assert len(raw) >= bulk_parallel.PARALLEL_MIN_BYTES
    assert len(bulk_parallel.piece_cuts(raw, 2)) == 3
    one, many = _both(raw, 2)
    assert one[0] == "ok" and many == one


# -- the segment's sort in halves and its copy groups ---------------------------------------------

# Few distinct short paths, so that copies and shared prefixes turn up.
_FEW = [b"", b"a", b"ab", b"b", b"abc", b"\xff", b"a\x00"]
_paths = st.lists(st.sampled_from(_FEW) | st.binary(max_size=9), max_size=60)


def _arrays(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(b"".join(items) or b"\0", np.uint8)[: sum(map(len, items))].copy()
    offsets = np.zeros(len(items) + 1, np.int64)
    np.cumsum([len(p) for p in items], out=offsets[1:])
    return data, offsets


@given(_paths)
def test_sort_in_halves_and_copy_groups_match_a_reference(items) -> None:
    data, offsets = _arrays(items)
    order = segment._sorted_order(data, offsets, force_halves=len(items) > 0)
    assert [items[i] for i in order] == sorted(items)
    copies, copy_start = kernels.copy_groups(data, offsets, order)
    groups = [copies[copy_start[r] : copy_start[r + 1]].tolist() for r in range(len(copy_start) - 1)]
    distinct = sorted(set(items))
    assert groups == [[i for i, p in enumerate(items) if p == path] for path in distinct]


def test_a_long_segment_is_built_the_same_on_two_threads(monkeypatch) -> None:
    from types import SimpleNamespace

    lines = [f"(= (f{i % 50} $x c{i % 7}) (g $x))" for i in range(3000)] + ["(= (f1 $y c1) (g $y))"] * 5
    batch = bulk.encode_source("\n".join(lines).encode())

    def built(threshold: int):
        monkeypatch.setattr(segment, "PARALLEL_MIN_ATOMS", threshold)
        arrays = SimpleNamespace(data=batch.data, offsets=batch.offsets, names=batch.names, terms=batch.terms)
        return segment.BulkSegment(arrays)

    one, two = built(1 << 30), built(0)
    assert np.array_equal(one.copies, two.copies) and np.array_equal(one.copy_start, two.copy_start)
    for name, array in one.trie.arrays.items():
        assert np.array_equal(array, two.trie.arrays[name]), name


def test_the_listed_whitespace_is_what_str_isspace_and_the_parser_accept() -> None:
    import re

    from metta_numba.syntax.bulk_lexer import WHITESPACE

    every_char = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code < 0xE000)
    assert list(WHITESPACE) == [char for char in every_char if char.isspace()]
    assert list(WHITESPACE) == re.findall(r"\s", every_char)
