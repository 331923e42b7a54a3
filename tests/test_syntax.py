"""The Python parser and the printer: token rules, `!`, comments, errors, printing, round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import I64_MAX, I64_MIN, atoms, identical, is_finite_atom, top_level_safe

from metta_numba.atoms import E, Expression, Grounded, S, Symbol, V, Variable
from metta_numba.syntax import ParseError, format_atom, format_results, parse_atom, parse_atoms, parse_program
from metta_numba.syntax.parser import MAX_DEPTH, LineMark, decode_source, iter_program, iter_program_from
from metta_numba.syntax.printer import format_float


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo", S("foo")),
        ("a-b?", S("a-b?")),
        ("'a", S("'a")),
        ("5.", S("5.")),
        (".5", S(".5")),
        ("1_000", S("1_000")),
        ("0x10", S("0x10")),
        ("1.5e", S("1.5e")),
        ("1e", S("1e")),
        ("1.e5", S("1.e5")),
        ("--5", S("--5")),
        ("-", S("-")),
        ("+", S("+")),
        ("true", S("true")),
        ("Truex", S("Truex")),
        ("NaN", S("NaN")),
        ("inf", S("inf")),
        ("٣", S("٣")),
        ('a"b', S('a"b')),
        ("x$y", S("x$y")),
        ("42", Grounded(42)),
        ("-5", Grounded(-5)),
        ("+5", Grounded(5)),
        ("007", Grounded(7)),
        ("-0", Grounded(0)),
        (str(I64_MAX), Grounded(I64_MAX)),
        (str(I64_MIN), Grounded(I64_MIN)),
        ("1.5", Grounded(1.5)),
        ("-2.5e3", Grounded(-2500.0)),
        ("1e5", Grounded(100000.0)),
        ("1E-2", Grounded(0.01)),
        ("+1.5", Grounded(1.5)),
        ("1.5e+2", Grounded(150.0)),
        ("True", Grounded(True)),
        ("False", Grounded(False)),
        ("$x", V("x")),
        ("$", V("")),
        ("$a;b", V("a;b")),
        ('$q"', V('q"')),
        ("$$", V("$")),
        ('"a\\"b\\n"', Grounded('a"b\n')),
        ('"\\\\ \\\' \\t"', Grounded("\\ ' \t")),
        ('"\\x41\\x7F\\x00"', Grounded("A\x7f\x00")),
        ('"\\u{41}\\u{1F642}\\u{10FFFF}"', Grounded("A\U0001f642\U0010ffff")),
        ('"raw\ttab\nnewline é"', Grounded("raw\ttab\nnewline é")),
        ('""', Grounded("")),
        ("()", Expression(())),
        ("(a (b c))", E("a", E("b", "c"))),
        ("(a ; comment ) (\n b)", E("a", "b")),
        ("(a\u2003b\xa0c\x1cd)", E("a", "b", "c", "d")),
        ("(f$x)", E("f$x")),
        ("(! x)", E("!", "x")),
    ],
)
def test_token_rules(text, expected):
    atom = parse_atom(text)
    assert identical(atom, expected), (atom, expected)


def test_int_and_float_are_distinct_from_bool():
    # An integer and a float are one number as atoms (they unify, as in hyperon), but each
    # keeps its own type and printed form; a Bool is never a number.
    assert parse_atom("1") == parse_atom("1.0") and parse_atom("1") != parse_atom("True")
    assert parse_atom("1.0") != parse_atom("True") and parse_atom("0") != parse_atom("False")
    assert type(parse_atom("1").value) is int and type(parse_atom("1.0").value) is float
    assert format_atom(parse_atom("1.0")) == "1.0" and format_atom(parse_atom("1")) == "1"


def test_a_symbol_token_ends_at_a_comment_but_a_variable_does_not():
    assert parse_atoms("a;b\nc") == [S("a"), S("c")]
    assert parse_atoms("$a;b\nc") == [V("a;b"), S("c")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!x", [(False, S("!x"))]),
        ("! x", [(True, S("x"))]),
        ("!(a)", [(True, E("a"))]),
        ("!\n(a)", [(True, E("a"))]),
        ("!;c\n(a)", [(True, E("a"))]),
        ('!"s"', [(False, S('!"s"'))]),
        ("!$v", [(False, S("!$v"))]),
        ("!3", [(False, S("!3"))]),
        ("! !", [(True, S("!"))]),
        ("(a) !", [(False, E("a"))]),  # a `!` with nothing after it is dropped
        ("(a)!(b)", [(False, E("a")), (True, E("b"))]),
        ("!\u2003x", [(True, S("x"))]),
    ],
)
def test_bang_marks_a_query_only_when_it_stands_alone(text, expected):
    assert [(item.is_query, item.atom) for item in parse_program(text)] == expected


def test_items_record_their_line_and_column():
    items = parse_program("; c\n  (a)\n é ! (b)")
    assert [(i.line, i.col) for i in items] == [(2, 3), (3, 2), (3, 6)]


@given(st.lists(st.tuples(st.sampled_from([" ", "  ", "\n", "\n  ", " ; c\n", "\t\n\n"]), st.booleans()), max_size=30))
def test_item_positions_match_a_count_from_the_start(layout):
    # Positions are tracked incrementally (linear even on one long line); counting from the
    # start of the text for every item is the model. Each "(" here opens a top-level atom.
    text = "".join(gap + ("!(q)" if query else "(a b)") for gap, query in layout)
    expected = [
        (text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1) for i, ch in enumerate(text) if ch == "("
    ]
    assert [(item.line, item.col) for item in parse_program(text)] == expected


class _ScanCountingText(str):
    """A str that adds up the characters its count/rfind/find calls are asked to scan."""

    scanned = 0

    def _span(self, start, end):
        start = 0 if start is None else start
        end = len(self) if end is None else end
        type(self).scanned += max(0, end - start)

    def count(self, sub, start=None, end=None):
        self._span(start, end)
        return str.count(self, sub, start, end)

    def rfind(self, sub, start=None, end=None):
        self._span(start, end)
        return str.rfind(self, sub, start, end)

    def find(self, sub, start=None, end=None):
        self._span(start, end)
        return str.find(self, sub, start, end)


def test_positions_on_one_long_line_take_linear_work():
    # Finding each item's line start by searching back from it was quadratic on one long
    # line; what the position tracking scans must stay proportional to the text.
    text = _ScanCountingText(" ".join(f"(fact a{i} b{i})" for i in range(3000)))
    _ScanCountingText.scanned = 0
    items = parse_program(text)
    assert len(items) == 3000 and items[-1].col == len(text) - len("(fact a2999 b2999)") + 1
    assert _ScanCountingText.scanned <= 3 * len(text)


def test_nul_is_a_parse_error_in_both_readers():
    from metta_numba.syntax.bulk import encode_source

    text = '(a b)\n(c "in\0string")'
    with pytest.raises(ParseError, match="NUL") as err:
        parse_program(text, "f.metta")
    assert (err.value.line, err.value.col) == (2, 7)
    with pytest.raises(ParseError, match="NUL") as bulk_err:
        encode_source(text.encode(), "f.metta")
    assert (bulk_err.value.line, bulk_err.value.col) == (2, 7)
    # Written as an escape, NUL is a character of the string like any other.
    assert parse_atom('"a\\0b"') == Grounded("a\0b")


def test_comments_and_empty_programs():
    assert parse_program("") == []
    assert parse_program("   \n\t") == []
    assert parse_program("; nothing but a comment") == []
    assert parse_atoms("(a) ; (b)\n(c) ;") == [E("a"), E("c")]


def _error(text: str) -> ParseError:
    with pytest.raises(ParseError) as err:
        parse_program(text, "f.metta")
    return err.value


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("(a\n  (b\n", 2, 3, "unclosed '(': the expression opened here is not closed by the end of input"),
        ("(a (b c)\nd", 1, 1, "unclosed '(': the expression opened here is not closed by the end of input"),
        ("(a)\n\n  )", 3, 3, "unexpected ')': no expression is open"),
        ("! )", 1, 3, "unexpected ')': no expression is open"),
        ('(a\n "abc)', 2, 2, "unclosed string literal: no closing '\"' before the end of input"),
        ('"a\\"', 1, 1, "unclosed string literal: no closing '\"' before the end of input"),
        ('"a\\q"', 1, 3, "invalid escape sequence '\\q' (valid: \\\" \\\\ \\' \\n \\t \\r \\0 \\xHH \\u{H})"),
        ('"\\x8"', 1, 2, "invalid escape sequence: \\x takes two hex digits up to 7F"),
        ('"\\x80"', 1, 2, "invalid escape sequence: \\x takes two hex digits up to 7F"),
        ('"\\u41"', 1, 2, "invalid escape sequence '\\u' (valid: \\\" \\\\ \\' \\n \\t \\r \\0 \\xHH \\u{H})"),
        ('"\\u{}"', 1, 2, "invalid escape sequence: \\u{...} takes 1-6 hex digits of a code point"),
        ('"\\u{1234567}"', 1, 2, "invalid escape sequence: \\u{...} takes 1-6 hex digits of a code point"),
        ('"\\u{D800}"', 1, 2, "invalid escape sequence: \\u{...} takes 1-6 hex digits of a code point"),
        ('"\\u{110000}"', 1, 2, "invalid escape sequence: \\u{...} takes 1-6 hex digits of a code point"),
        ("(x 9223372036854775808)", 1, 4, "integer literal 9223372036854775808 does not fit in 64 bits"),
        ("-9223372036854775809", 1, 1, "integer literal -9223372036854775809 does not fit in 64 bits"),
        ("éé )", 1, 4, "unexpected ')': no expression is open"),
    ],
)
def test_errors_name_line_and_column(text, line, col, message):
    err = _error(text)
    assert (err.line, err.col, err.message) == (line, col, message)
    assert str(err) == f"f.metta:{line}:{col}: {message}"


def test_nesting_limit():
    assert len(parse_program("(" * MAX_DEPTH + ")" * MAX_DEPTH)) == 1
    err = _error("(" * 10_000 + ")" * 10_000)
    assert (err.line, err.col) == (1, MAX_DEPTH + 1) and "nested deeper" in err.message


def test_invalid_utf8_is_a_parse_error():
    with pytest.raises(ParseError) as err:
        decode_source("(é\n é".encode() + b"\xc3(", "bad.metta")
    assert (err.value.line, err.value.col, err.value.filename) == (2, 3, "bad.metta")


def test_iter_program_yields_the_items_before_an_error():
    items = iter_program("!(a) (b) )")
    assert next(items).atom == E("a") and next(items).atom == E("b")
    with pytest.raises(ParseError):
        next(items)


def test_parse_atoms_rejects_a_query_and_parse_atom_wants_one_atom():
    with pytest.raises(ParseError):
        parse_atoms("!(a)")
    with pytest.raises(ParseError):
        parse_atom("a b")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3.0"), (0.1, "0.1"), (1e16, "1e16"), (1.5e300, "1.5e300"), (1e-5, "1e-5"), (-0.0, "-0.0"),
        (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "NaN"), (1e15, "1000000000000000.0"),
        (1e-4, "0.0001"), (-2.5, "-2.5"), (5e-324, "5e-324"), (1.25e-300, "1.25e-300"),
        (123456789012345680.0, "1.2345678901234568e17"),
    ],
)  # fmt: skip
def test_float_printing(value, text):
    assert format_float(value) == text
    assert format_atom(Grounded(value)) == text


@pytest.mark.parametrize(
    ("atom", "text"),
    [
        (Grounded('a"b\n'), '"a\\"b\\n"'),
        (Grounded("tab\there"), '"tab\\there"'),
        (Grounded("back\\slash"), '"back\\\\slash"'),
        (Grounded("cr\r é 🙂 '"), '"cr\\r é 🙂 \'"'),
        (Grounded(""), '""'),
        (Grounded(True), "True"),
        (Grounded(False), "False"),
        (Grounded(42), "42"),
        (Grounded(-5), "-5"),
        (Symbol("a-b?"), "a-b?"),
        (Variable("x"), "$x"),
        (Expression(()), "()"),
        (E("a", E("b", "c")), "(a (b c))"),
        (E("foo", E("+", 1, 2), "$v"), "(foo (+ 1 2) $v)"),
    ],
)
def test_printing(atom, text):
    assert format_atom(atom) == text


def test_results_line():
    assert format_results([]) == "[]"
    assert format_results([Grounded(3), E("a", "b")]) == "[3, (a b)]"


def test_deeply_nested_atoms_print_and_parse_without_recursion():
    atom = Expression(())
    for _ in range(MAX_DEPTH - 1):
        atom = Expression([atom])
    text = format_atom(atom)
    assert text == "(" * MAX_DEPTH + ")" * MAX_DEPTH
    assert parse_atom(text) == atom


@given(atoms(finite_floats=True))
def test_parse_of_printed_atom_is_the_atom(atom):
    if not top_level_safe(atom):
        atom = Expression([atom])
    assert identical(parse_atom(format_atom(atom)), atom)


@given(atoms())
def test_non_finite_floats_print_as_symbols(atom):
    if not top_level_safe(atom):
        atom = Expression([atom])
    parsed = parse_atom(format_atom(atom))
    assert identical(parsed, atom) == is_finite_atom(atom)
    assert format_atom(parsed) == format_atom(atom)


def test_deep_atoms_compare_and_nan_atoms_hash_alike():
    """Atom equality must survive nesting beyond Python's recursion limit, and two NaN floats,
    equal as atoms, must hash alike (Python hashes each NaN object differently)."""
    left, right = Expression(()), Expression(())
    for _ in range(5000):
        left, right = Expression([left, S("a")]), Expression([right, S("a")])
    assert left == right and left is not right
    assert Expression([right, S("b")]) != Expression([left, S("a")])
    nan_pair = (E("f", Grounded(float("nan"))), E("f", Grounded(float("-nan"))))
    assert nan_pair[0] == nan_pair[1] and len(set(nan_pair)) == 1


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("\x01|\r|\0|\x1b|\x7f", '"\\u{1}|\\r|\\0|\\u{1b}|\\u{7f}"'),
        ("e\u0301|\u200b|\ufeff|\u00a0", '"e\\u{301}|\\u{200b}|\\u{feff}|\\u{a0}"'),
        ("é ☺ 😀 ñ", '"é ☺ 😀 ñ"'),
    ],
)
def test_strings_print_with_debug_escapes_and_read_back(text, printed):
    # hyperon escapes what would not show on its own (METTA conformance: string_escapes).
    assert format_atom(Grounded(text)) == printed
    assert parse_atom(printed) == Grounded(text)


_ITEM_TEXTS = st.sampled_from(["(a b)", "!(f $x)", "sym", "; note\n", '"two\nlines"', "(g\n  (h))", "! (q)"])
_GAPS = st.sampled_from([" ", "\n", "  \n\n ", "\t", "\n; comment\n"])


@given(st.lists(st.tuples(_ITEM_TEXTS, _GAPS), max_size=12), st.lists(st.integers(0, 11), max_size=4))
def test_reading_on_from_a_line_mark_gives_the_places_of_one_read(items, stops):
    # A reader stopping after some items and going on later from where the last one ended,
    # with the same LineMark (as the runner does between bulk-loaded runs), sees each item at
    # the line and column of one read of the whole text.
    text = "".join(item + gap for item, gap in items)
    whole = [(item.line, item.col) for item, _ in iter_program_from(text, "t", 0)]
    mark, pos, places = LineMark(), 0, []
    stops = set(stops)
    while True:
        for item, end in iter_program_from(text, "t", pos, mark):
            places.append((item.line, item.col))
            if len(places) in stops:
                stops.discard(len(places))
                pos = end
                break
        else:
            break
    assert places == whole
