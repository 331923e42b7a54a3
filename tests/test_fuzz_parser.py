"""Fuzzing both readers: on any bytes at all, the Python parser and the bulk reader either
agree on the result or both raise a ParseError at the same line and column. Nothing else
(no IndexError, no UnicodeDecodeError, no crash) may escape either."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from strategies import programs

from metta_numba.codec import TermStore, encode
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import decode_source, parse_program


def read_with_parser(data: bytes):
    terms = TermStore()
    try:
        items = parse_program(decode_source(data))
    except ParseError as err:
        return ("error", err.line, err.col, err.message)
    out = []
    for item in items:
        path, names = encode(item.atom, terms)
        out.append((path, item.is_query, terms.intern(" ".join(names)) if names else -1))
    return ("ok", out, terms.texts)


def read_with_bulk(data: bytes):
    try:
        batch = encode_source(data)
    except ParseError as err:
        return ("error", err.line, err.col, err.message)
    out = [(batch.path(i), bool(batch.is_query[i]), int(batch.names[i])) for i in range(len(batch))]
    return ("ok", out, batch.terms.texts)


# Bytes that matter to the grammar, plus UTF-8 fragments (lead bytes without their tails).
_INTERESTING = b'()";$!\\ \n\tux{}0123456789.eE+-TrueFals' + bytes(
    [0xC2, 0xA0, 0xE2, 0x80, 0x83, 0xFF, 0xC3, 0x1C]
)


@given(st.binary(max_size=60))
@example(b"\xc2")
@example(b'"\\u{')
@example(b"!")
@example(b'"\\x')
@example(b"\xe2\x80")
def test_arbitrary_bytes(data):
    assert read_with_bulk(data) == read_with_parser(data)


@given(st.lists(st.sampled_from(list(_INTERESTING)), max_size=60).map(bytes))
def test_bytes_from_the_grammar_alphabet(data):
    assert read_with_bulk(data) == read_with_parser(data)


_mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete", "truncate"]), st.integers(0, 10**6), st.integers(0, 255)
)


@given(programs(finite_floats=False, max_items=4), st.lists(_mutation, max_size=4))
def test_mutated_programs(program, mutations):
    raw = bytearray(program[0].encode("utf-8"))
    for kind, where, value in mutations:
        if not raw:
            break
        where %= len(raw)
        if kind == "set":
            raw[where] = value
        elif kind == "insert":
            raw.insert(where, value)
        elif kind == "delete":
            del raw[where]
        else:
            del raw[where:]
    data = bytes(raw)
    assert read_with_bulk(data) == read_with_parser(data)


def test_very_deep_nesting_is_an_error_not_a_crash():
    data = b"(" * 10_000 + b")" * 10_000
    bulk, parser = read_with_bulk(data), read_with_parser(data)
    assert bulk == parser == ("error", 1, 1001, "expressions nested deeper than 1000 levels")
    data = b"!" + b"(" * 100_000
    assert read_with_bulk(data) == read_with_parser(data)
