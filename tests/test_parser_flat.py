"""The parser reads a flat expression (bare tokens only) word by word; nested inside another
expression, the same text goes through the general token-by-token reader. Both must give the
same atom, or the same error at the same line and column."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from metta_numba.atoms import Expression
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import parse_program

_WORDS = st.sampled_from(
    ["a", "$x", "$", "x$y", "True", "False", "-1", "+2", "1.5", "1e3", "-", "!", "!x", "'c'",
     "9223372036854775807", "9223372036854775808", "-9223372036854775809", "é", "1.", "$a;b"]
)
_SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u2003", "\x1c", "\r\n"])


def _read(text: str):
    try:
        return ("ok", [(item.is_query, item.atom, item.col) for item in parse_program(text)])
    except ParseError as err:
        return ("error", err.line, err.col, err.message)


@given(st.lists(st.tuples(_WORDS, _SPACES), max_size=6), _SPACES)
@example([("9223372036854775808", " ")], " ")
@example([("$a;b", " ")], " ")
def test_flat_expression_reads_as_the_general_reader_does(words, lead):
    inner = lead + "".join(word + space for word, space in words)
    # A space before the flat one puts every character at the same line and column in both.
    flat = _read(" (" + inner + ")")
    # "(( ... ))": the outer expression is not flat, so the inner one is read token by token.
    nested = _read("((" + inner + "))")
    if nested[0] == "error":
        assert flat[0] == "error"
        assert flat == nested
    else:
        assert flat[0] == "ok"
        [(_, outer, _)] = nested[1]
        assert [(False, outer.children[0], 2)] == flat[1]
        assert type(outer.children[0]) is Expression


@given(st.lists(st.tuples(st.booleans(), _WORDS, _SPACES), max_size=5))
def test_top_level_items_keep_their_query_marks_and_columns(items):
    # Padded so that each flat item starts one column after its wrapped twin.
    text = "".join(("! " if query else "") + " (" + word + ") " + space for query, word, space in items)
    # The same items, each wrapped in a nested expression that the general reader handles.
    wrapped = "".join(("! " if query else "") + "((" + word + "))" + space for query, word, space in items)
    flat, nested = _read(text), _read(wrapped)
    assert flat[0] == nested[0]
    if flat[0] == "error":
        assert flat == nested  # the bad token sits at the same column in both
    else:
        assert [(q, c) for q, _, c in flat[1]] == [(q, c + 1) for q, _, c in nested[1]]
        assert [a for _, a, _ in flat[1]] == [a.children[0] for _, a, _ in nested[1]]
