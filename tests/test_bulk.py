"""The bulk reader against the Python parser + codec: same bytes, queries, names, term ids and
errors; plus the cases that stress its buffers, its text table and its float fallback."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import identical, programs

from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.bench.kbgen import RULE_TEMPLATES, TYPE_DECLARATIONS, generate_fact_kb, generate_kb, write_kb
from metta_numba.codec import TermStore, decode, encode
from metta_numba.codec.kernels import validate_paths
from metta_numba.syntax.bulk import encode_file, encode_source
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import decode_source, parse_atom, parse_program


def reference(data: bytes, terms: TermStore, filename: str = "<string>"):
    """What the bulk reader must return, computed with the Python parser and codec: each
    atom's strings and long symbols are interned in order, then its variable names."""
    paths, is_query, names = [], [], []
    for item in parse_program(decode_source(data, filename), filename):
        path, var_names = encode(item.atom, terms)
        paths.append(path)
        is_query.append(item.is_query)
        names.append(terms.intern(" ".join(var_names)) if var_names else -1)
    return paths, is_query, names


def outcome(data: bytes, seed_texts: tuple[str, ...] = ()):
    """(bulk result, reference result), each a tuple of plain values or the error's position."""
    results = []
    for run in (_bulk, reference):
        terms = TermStore(list(seed_texts))
        try:
            paths, is_query, names = run(data, terms)
        except ParseError as err:
            results.append(("error", err.line, err.col, err.message))
        else:
            results.append(("ok", paths, list(is_query), list(names), terms.texts))
    return results


def _bulk(data: bytes, terms: TermStore):
    batch = encode_source(data, terms=terms)
    assert batch.offsets[0] == 0 and len(batch.offsets) == len(batch) + 1
    assert batch.data.size == batch.offsets[-1]
    return [batch.path(i) for i in range(len(batch))], batch.is_query.tolist(), batch.names.tolist()


def assert_same(data: bytes, seed_texts: tuple[str, ...] = ()) -> tuple:
    bulk, ref = outcome(data, seed_texts)
    assert bulk == ref
    return bulk


@given(programs(), st.lists(st.sampled_from(["x", "x y", "seed", "s" * 70, ""]), max_size=3))
def test_bulk_matches_parser_on_random_programs(program, seed):
    text, items = program
    result = assert_same(text.encode("utf-8"), tuple(seed))
    assert result[0] == "ok"
    # The generator knows what the text holds; the parser must read exactly that.
    parsed = parse_program(text)
    assert [p.is_query for p in parsed] == [q for q, _ in items]
    assert all(identical(p.atom, a) for p, (_, a) in zip(parsed, items))


@given(programs(max_items=4), st.data())
def test_bulk_errors_match_parser_on_corrupted_programs(program, data):
    text = program[0]
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, max(0, len(text))), st.sampled_from(_CORRUPTIONS)), max_size=3)
    )
    for where, what in edits:
        if what == "<del>":
            text = text[:where] + text[where + 1 :]
        elif what == "<cut>":
            text = text[:where]
        else:
            text = text[:where] + what + text[where:]
    assert_same(text.encode("utf-8"))


_CORRUPTIONS = [
    "(", ")", '"', "\\", ";", "$", "!", "\n", " ", "<del>", "<cut>", "\\x", "\\u{", "\\q",
    "99999999999999999999", "-9223372036854775809", "1.5e999", "é", "\u2003",
]  # fmt: skip


def test_names_are_interned_once_per_distinct_list():
    batch = encode_source(b"(f $x) (g $x) (h $x $y) (k $a $b) (m $x $y) c !(q $x)")
    texts = batch.terms.texts
    assert texts == ["x", "x y", "a b"]
    assert batch.names.tolist() == [0, 0, 1, 2, 1, -1, 0]
    assert batch.var_names(2) == ["x", "y"] and batch.var_names(5) == []
    assert batch.is_query.tolist() == [False] * 6 + [True]


def test_strings_and_long_symbols_share_the_term_store():
    long_name = "L" * 64
    source = f'("abc" {long_name} "abc" "{long_name}" "x\\ty" $v "v")'.encode()
    batch = encode_source(source, terms=TermStore(["v", "other"]))
    assert batch.terms.texts == ["v", "other", "abc", long_name, "x\ty"]
    atom = decode(batch.path(0), batch.terms, batch.var_names(0))
    expected = [Grounded("abc"), Symbol(long_name), Grounded("abc"), Grounded(long_name), Grounded("x\ty")]
    assert atom == Expression([*expected, Variable("v"), Grounded("v")])
    assert batch.names.tolist() == [0]
    assert_same(source, ("v", "other"))


def test_symbol_of_63_bytes_is_inline_and_64_is_a_term():
    for size, tag in ((63, 0xFF), (64, 0x43)):
        batch = encode_source(("é" * (size // 2) + "a" * (size % 2)).encode())
        assert batch.path(0)[0] == tag
    assert_same(("é" * 32).encode())


def test_arity_above_63_shifts_the_ids_and_floats_inside_it():
    """A wide expression's header grows after its children are written: the text ids and the
    slow floats recorded inside it must move with them."""
    children = " ".join(f'"s{i % 7}" 1.{"3" * 25} {i}' for i in range(30))
    source = f'(outer "first" (wide {children}) ("last" 2.{"7" * 30}))'.encode()
    assert_same(source)
    batch = encode_source(source)
    atom = decode(batch.path(0), batch.terms)
    wide = atom.children[2]
    assert len(wide.children) == 91
    assert wide.children[2] == Grounded(float("1." + "3" * 25)) and wide.children[3] == Grounded(0)
    assert atom.children[3] == Expression([Grounded("last"), Grounded(float("2." + "7" * 30))])


def test_more_than_64_variables_use_long_references():
    names = " ".join(f"$v{i}" for i in range(70))
    source = f"(f {names} $v0 $v69 $v65)".encode()
    assert_same(source)
    path = encode_source(source).path(0)
    assert path.endswith(bytes([0x80]) + bytes([0x46, 0, 0, 0, 69]) + bytes([0x46, 0, 0, 0, 65]))


@pytest.mark.parametrize(
    "token",
    ["0.1", "-0.0", "1e16", "1.5e300", "1e-5", "5e-324", "1e-400", "1e400", "-1e400", "1234567890123456789.5",
     "0.30000000000000004", "2.2250738585072011e-308", "9007199254740993.0", "1e22", "1e23", "0e999999999999",
     "1.7976931348623157e308", "4.9406564584124654e-324", "+3.0", "00001.50"],
)  # fmt: skip
def test_floats_convert_exactly(token):
    batch = encode_source(token.encode())
    value = decode(batch.path(0), batch.terms).value
    assert value == float(token) and np.copysign(1.0, value) == np.copysign(1.0, float(token))
    assert_same(token.encode())


@pytest.mark.parametrize(
    "source",
    [
        # distinct long strings, variable lists and slow floats: side buffer, text table, patches
        "\n".join(f'(s "{"w" * 1500}{i}" $v{i} {i}.{"1" * 20})' for i in range(200)),
        "(" + " ".join(f"$x{i}" for i in range(300)) + ")",  # one atom's variable table
        "(" + " 1" * 5000 + ")",  # output larger than input: 9 bytes for every 2
        "a\n" * 3000,  # more atoms than the first guess
    ],
    ids=["texts", "variables", "output", "atoms"],
)
def test_buffers_grow_past_their_first_capacity(source):
    assert_same(source.encode())
    batch = encode_source(source.encode())
    assert validate_paths(batch.data, batch.offsets) == -1


@pytest.mark.parametrize(
    ("source", "line", "col", "message_start"),
    [
        ("(a\n  (b\n", 2, 3, "unclosed '('"),
        ("(a (b c)\n d", 1, 1, "unclosed '('"),
        ("(a)\n  )", 2, 3, "unexpected ')'"),
        ('(a "abc)', 1, 4, "unclosed string literal"),
        ('"a\\qb"', 1, 3, "invalid escape sequence '\\q'"),
        ('"a\\é"', 1, 3, "invalid escape sequence '\\é'"),
        ('"\\x80"', 1, 2, "invalid escape sequence: \\x"),
        ('é "\\u{110000}"', 1, 4, "invalid escape sequence: \\u{"),
        ("(x 9223372036854775808)", 1, 4, "integer literal 9223372036854775808 does not fit"),
        ("é -9223372036854775809", 1, 3, "integer literal -9223372036854775809"),
        ("(" * 1001 + ")" * 1001, 1, 1001, "expressions nested deeper than 1000"),
    ],
)
def test_error_positions(source, line, col, message_start):
    with pytest.raises(ParseError) as bulk_error:
        encode_source(source.encode(), filename="kb.metta")
    err = bulk_error.value
    assert (err.line, err.col) == (line, col) and err.message.startswith(message_start)
    assert str(err).startswith(f"kb.metta:{line}:{col}: ")
    assert_same(source.encode())


def test_invalid_utf8_is_a_parse_error_with_a_character_column():
    source = "(é ".encode() + b"\xff)"
    with pytest.raises(ParseError) as err:
        encode_source(source)
    assert (err.value.line, err.value.col) == (1, 4)
    assert "UTF-8" in err.value.message
    assert_same(source)


def test_a_failed_parse_leaves_the_term_store_untouched():
    terms = TermStore(["kept"])
    with pytest.raises(ParseError):
        encode_source(b'("new string" $x) (', terms=terms)
    assert terms.texts == ["kept"]


def test_exactly_max_depth_is_accepted():
    source = ("(" * 1000 + ")" * 1000).encode()
    assert_same(source)
    assert len(encode_source(source)) == 1


def test_empty_and_comment_only_sources():
    for source in (b"", b"   \n", b"; only a comment", b"; c\n;d\n", b"!", b"! ; c\n"):
        batch = encode_source(source)
        assert len(batch) == 0 and batch.data.size == 0 and batch.offsets.tolist() == [0]
        assert_same(source)


def test_bytearray_input_and_encode_file(tmp_path):
    path = tmp_path / "prog.metta"
    path.write_bytes(b"(a $x) !(b)")
    from_file = encode_file(path)
    from_bytes = encode_source(bytearray(b"(a $x) !(b)"))
    assert from_file.data.tobytes() == from_bytes.data.tobytes()
    path.write_bytes(b"(a\n)\n)")
    with pytest.raises(ParseError, match=r"prog\.metta:3:1: "):
        encode_file(path)


def test_baseline_kb_rule_count_and_contents(tmp_path):
    n = 40
    text = generate_kb(n)
    lines = text.splitlines()
    assert len(lines) == 3 + 4 * n  # one line per declaration and per rule
    assert lines[:3] == list(TYPE_DECLARATIONS)
    assert lines[3] == "(= (add0 zero $x) $x)"
    assert lines[3 + 16 * 9 + 9] == "(= (length9 (cons $h $t)) (+ 1 (length9 $t)))"
    assert lines[-1] == "(= (not-equals9 $x $x) False)"
    assert len(RULE_TEMPLATES) == 16
    batch = encode_source(text.encode())
    assert len(batch) == 3 + 4 * n and not batch.is_query.any()
    assert_same(text.encode())
    rule = decode(batch.path(3 + 2), batch.terms, batch.var_names(3 + 2))
    assert rule == parse_atom("(= (add0 (succ $x) $y) (succ (add0 $x $y)))")
    out = tmp_path / "kb.metta"
    assert write_kb(n, out) == len(text.encode()) and out.read_text() == text
    assert generate_kb(10_000).count("\n") == 3 + 40_000


def test_fact_kb_shape():
    text = generate_fact_kb(1000, seed=3)
    atoms = [item.atom for item in parse_program(text)]
    assert len(atoms) == 1000 and text.count("\n") == 1000
    nodes = set()
    for atom in atoms:
        head, source, target = atom.children
        assert head == Symbol("edge")
        nodes.update(int(s.name.removeprefix("n_")) for s in (source, target))
    assert nodes <= set(range(100)) and len(nodes) > 90
    assert generate_fact_kb(1000, seed=3) == text and generate_fact_kb(1000, seed=4) != text
    assert_same(text.encode())


def test_the_bulk_lexer_whitespace_is_str_isspace() -> None:
    """The byte classes (built from a regex search at import) name exactly the characters
    that str.isspace accepts: the ASCII ones as SPACE, the others by their UTF-8 lead byte."""
    from metta_numba.syntax import bulk_lexer

    expected = [code for code in range(0x110000) if chr(code).isspace()]
    ascii_spaces = [code for code in range(0x80) if bulk_lexer.BYTE_CLASS[code] == bulk_lexer.SPACE]
    assert ascii_spaces + sorted(bulk_lexer.MULTIBYTE_SPACES.tolist()) == expected
    for code in expected[len(ascii_spaces) :]:
        assert bulk_lexer.BYTE_CLASS[chr(code).encode("utf-8")[0]] == bulk_lexer.MAYBE_SPACE_LEAD
