"""MeTTa text -> atoms: the Python parser, used for programs and queries.

The grammar follows hyperon's reader:
- whitespace separates tokens; `;` starts a comment that runs to the end of the line;
- `(` ... `)` is an expression, `()` the empty one;
- `"..."` is a string with the escapes \\" \\\\ \\' \\n \\t \\r \\0 \\xHH (up to 0x7F) and \\u{H...}
  (`\\r` and `\\0` are ours: the printer writes them, so printed strings read back);
- a token starting with `$` is a variable and runs to whitespace or a parenthesis;
- any other token runs to whitespace, a parenthesis or `;`, and is an integer
  (`[+-]?digits`, i64), a float (`[+-]?digits.digits`, optionally with an exponent, or
  `[+-]?digits` with an exponent), `True`/`False`, or else a symbol;
- at top level, a `!` token standing alone marks the next atom as a query. `!x` is a symbol.

Big knowledge bases do not come through here: `syntax.bulk` turns a whole file into encoded
paths without building atoms. Both report errors at the same line and column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable
from metta_numba.syntax.errors import ParseError

MAX_DEPTH = 1000
"""Deepest nesting of parentheses accepted; deeper input is a ParseError, not a stack overflow."""

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)\Z")
_SPACE_RE = re.compile(r"\s*")
# A symbol token ends at whitespace, a parenthesis or a comment; a variable also runs over `;`.
_SYMBOL_TOKEN_RE = re.compile(r"[^\s();]+")
_VARIABLE_TOKEN_RE = re.compile(r"\$[^\s()]*")
# Inside an expression: skip space and comments, then one token, named by its kind (no group
# matches at the end of the text). A variable is a bare token that runs over `;`.
_NEXT_TOKEN_RE = re.compile(
    r'(?:\s+|;[^\n]*\n?)*(?:(?P<open>\()|(?P<close>\))|(?P<string>")|(?P<bare>\$[^\s()]*|[^\s();]+))?'
)
# A whole expression of bare tokens only (no nested expression, string or comment): its
# tokens are its whitespace-separated words. `str.split()` and `\s` agree on what whitespace is.
_FLAT_EXPRESSION_RE = re.compile(r'\(([^()";]*)\)')
_SPACE_AND_COMMENTS_RE = re.compile(r"(?:\s+|;[^\n]*\n?)*")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "'": "'", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}

# Error messages, shared with the bulk reader so that both word each error the same way.
MSG_UNCLOSED_PAREN = "unclosed '(': the expression opened here is not closed by the end of input"
MSG_UNEXPECTED_CLOSE = "unexpected ')': no expression is open"
MSG_TOO_DEEP = f"expressions nested deeper than {MAX_DEPTH} levels"
MSG_UNCLOSED_STRING = "unclosed string literal: no closing '\"' before the end of input"
MSG_STRING_ENDS_IN_ESCAPE = "unclosed string literal: input ends after '\\'"
MSG_BAD_HEX_ESCAPE = "invalid escape sequence: \\x takes two hex digits up to 7F"
MSG_BAD_UNICODE_ESCAPE = "invalid escape sequence: \\u{...} takes 1-6 hex digits of a code point"
MSG_INVALID_UTF8 = "invalid UTF-8 byte in the source"
MSG_NUL = "NUL character in the source (inside a string, write it as \\0)"


def bad_escape_message(kind: str) -> str:
    return f"invalid escape sequence '\\{kind}' (valid: \\\" \\\\ \\' \\n \\t \\r \\0 \\xHH \\u{{H}})"


def int_overflow_message(token: str) -> str:
    return f"integer literal {token} does not fit in 64 bits"


class TopLevel(NamedTuple):
    """One top-level item of a program: an atom, and whether a `!` made it a query."""

    is_query: bool
    atom: Atom
    line: int
    col: int


def parse_atom_token(token: str) -> Atom:
    """Classify a bare token (not a string, not a variable) as a number, Bool or symbol."""
    first = token[0]
    if first.isdigit() or ((first == "-" or first == "+") and len(token) > 1 and token[1].isdigit()):
        if _INT_RE.match(token):
            value = int(token)
            if value < I64_MIN or value > I64_MAX:
                raise OverflowError(token)
            return Grounded(value)
        if _FLOAT_RE.match(token):
            return Grounded(float(token))
    elif token == "True":
        return Grounded(True)
    elif token == "False":
        return Grounded(False)
    return Symbol(token)


def _bare_token_atom(token: str) -> Atom | None:
    """The atom of a bare token (a variable, number, Bool or symbol); None for an integer
    that does not fit in 64 bits."""
    if token[0] == "$":
        return Variable(token[1:])
    try:
        return parse_atom_token(token)
    except OverflowError:
        return None


class _Reader:
    """A cursor over the text that reads one atom at a time, without recursion."""

    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.pos = 0
        # Bare tokens (symbols, numbers, variables) already read, with their atoms: a KB repeats
        # its symbols and variable names, and atoms are immutable, so one object serves all.
        self.known_tokens: dict[str, Atom] = {}

    def error(self, offset: int, message: str) -> ParseError:
        return ParseError.at(self.text, offset, message, self.filename)

    def read_string(self) -> str:
        text = self.text
        start = self.pos
        pos = start + 1
        parts: list[str] = []
        while True:
            close = text.find('"', pos)
            backslash = text.find("\\", pos)
            if close < 0:
                raise self.error(start, MSG_UNCLOSED_STRING)
            if backslash < 0 or close < backslash:
                parts.append(text[pos:close])
                self.pos = close + 1
                return "".join(parts)
            parts.append(text[pos:backslash])
            pos = self._read_escape(backslash, parts)

    def _read_escape(self, backslash: int, parts: list[str]) -> int:
        text = self.text
        if backslash + 1 >= len(text):
            raise self.error(backslash, MSG_STRING_ENDS_IN_ESCAPE)
        kind = text[backslash + 1]
        if kind in _SIMPLE_ESCAPES:
            parts.append(_SIMPLE_ESCAPES[kind])
            return backslash + 2
        if kind == "x":
            digits = text[backslash + 2 : backslash + 4]
            if len(digits) == 2 and all(c in "0123456789abcdefABCDEF" for c in digits):
                code = int(digits, 16)
                if code <= 0x7F:
                    parts.append(chr(code))
                    return backslash + 4
            raise self.error(backslash, MSG_BAD_HEX_ESCAPE)
        if kind == "u" and backslash + 2 < len(text) and text[backslash + 2] == "{":
            close = text.find("}", backslash + 3, backslash + 10)
            digits = text[backslash + 3 : close] if close > 0 else ""
            if digits and all(c in "0123456789abcdefABCDEF" for c in digits):
                code = int(digits, 16)
                if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                    parts.append(chr(code))
                    return close + 1
            raise self.error(backslash, MSG_BAD_UNICODE_ESCAPE)
        raise self.error(backslash, bad_escape_message(kind))

    def read_token(self) -> Atom:
        """Read one string, variable or bare token at self.pos (which is not a parenthesis)."""
        text = self.text
        start = self.pos
        first = text[start]
        if first == '"':
            return Grounded(self.read_string())
        if first == "$":
            end = _VARIABLE_TOKEN_RE.match(text, start).end()
            self.pos = end
            return Variable(text[start + 1 : end])
        end = _SYMBOL_TOKEN_RE.match(text, start).end()
        self.pos = end
        try:
            return parse_atom_token(text[start:end])
        except OverflowError:
            raise self.error(start, int_overflow_message(text[start:end])) from None

    def read_atom(self) -> Atom:
        """Read one complete atom; self.pos must be at its first character."""
        text = self.text
        pos = self.pos
        flat = _FLAT_EXPRESSION_RE.match(text, pos)
        if flat is not None:
            # Most atoms of a knowledge base are flat: read them word by word, without a
            # regex match per token. Anything unusual (an integer out of range) is left to the
            # general reader below, which reports it at its place.
            known = self.known_tokens
            kids = []
            for token in flat.group(1).split():
                atom = known.get(token)
                if atom is None:
                    atom = _bare_token_atom(token)
                    if atom is None:
                        break
                    known[token] = atom
                kids.append(atom)
            else:
                self.pos = flat.end()
                return Expression(kids)
        if text[pos] != "(":
            if text[pos] == ")":
                raise self.error(pos, MSG_UNEXPECTED_CLOSE)
            return self.read_token()
        # Iterative reader: a stack of open expressions with the offsets where they opened.
        # One regex match per token skips the space before it and says what kind it is.
        stack: list[list[Atom]] = []
        opened_at: list[int] = []
        next_token = _NEXT_TOKEN_RE.match
        known = self.known_tokens
        while True:
            match = next_token(text, pos)
            kind = match.lastgroup
            if kind is None:  # only space and comments remain
                raise self.error(opened_at[-1], MSG_UNCLOSED_PAREN)
            pos = match.end()
            if kind == "bare":
                token = match.group(kind)
                atom = known.get(token)
                if atom is None:
                    self.pos = match.start(kind)
                    atom = known[token] = self.read_token()
                stack[-1].append(atom)
            elif kind == "open":
                if len(stack) >= MAX_DEPTH:
                    raise self.error(pos - 1, MSG_TOO_DEEP)
                stack.append([])
                opened_at.append(pos - 1)
            elif kind == "close":
                done = Expression(stack.pop())
                opened_at.pop()
                if not stack:
                    self.pos = pos
                    return done
                stack[-1].append(done)
            else:  # a string: its escapes and errors are read_string's
                self.pos = match.start(kind)
                stack[-1].append(Grounded(self.read_string()))
                pos = self.pos


def iter_program(text: str, filename: str = "<string>", start: int = 0) -> Iterator[TopLevel]:
    """Yield the top-level atoms of a program one by one, lazily (from offset `start`, which
    must be between two top-level items).

    A ParseError is raised when the reader reaches the bad spot, so the items before it can be
    handled first (hyperon runs the `!`s before a syntax error, then fails).
    """
    # A NUL would pass into symbols and print raw; like a bad UTF-8 byte, it fails the whole
    # source before anything runs (the bulk reader checks the same way).
    check_nul(text, filename)
    for item, _end in iter_program_from(text, filename, start):
        yield item


def check_nul(text: str, filename: str) -> None:
    """Refuse a source holding a NUL character (a positioned ParseError)."""
    nul = text.find("\0")
    if nul >= 0:
        raise ParseError.at(text, nul, MSG_NUL, filename)


class LineMark:
    """A place in a text whose line is known: offset `at` is on line `line`, which starts at
    offset `line_start`. iter_program_from counts lines on from it and moves it along."""

    __slots__ = ("at", "line", "line_start")

    def __init__(self) -> None:
        self.at, self.line, self.line_start = 0, 1, 0


def iter_program_from(
    text: str, filename: str, start: int, mark: LineMark | None = None
) -> Iterator[tuple[TopLevel, int]]:
    """iter_program from offset `start` (between two top-level items), with the offset where
    each item ends; the caller has checked the text with check_nul. With `mark` (at or before
    `start`), lines are counted from there rather than from the start of the text, and the
    mark follows the items read: a caller reading a long text in several calls counts each
    line once."""
    reader = _Reader(text, filename)
    skip = _SPACE_AND_COMMENTS_RE.match
    size = len(text)
    # Line and column are counted on from the previous item, not from the start of the text,
    # so that a file of many atoms (even all on one line) is read in linear time.
    if mark is None or mark.at > start:
        mark = LineMark()
    counted_to = start
    line = mark.line + text.count("\n", mark.at, start)
    found = text.rfind("\n", mark.at, start)
    line_start = found + 1 if found >= 0 else mark.line_start
    pos = skip(text, start).end()
    while pos < size:
        start = pos
        is_query = False
        if text[start] == "!":
            follower = text[start + 1 : start + 2]
            if not follower or follower in "();" or follower.isspace():
                is_query = True
                start = skip(text, start + 1).end()
                if start >= size:
                    return
        newlines = text.count("\n", counted_to, start)
        if newlines:
            line += newlines
            line_start = text.rfind("\n", counted_to, start) + 1
        counted_to = start
        mark.at, mark.line, mark.line_start = start, line, line_start
        reader.pos = start
        atom = reader.read_atom()
        end = reader.pos
        yield TopLevel(is_query, atom, line, start - line_start + 1), end
        pos = skip(text, end).end()


def parse_program(text: str, filename: str = "<string>") -> list[TopLevel]:
    """Parse a whole program; any syntax error is raised before anything is returned."""
    return list(iter_program(text, filename))


def parse_atoms(text: str, filename: str = "<string>") -> list[Atom]:
    """Parse text holding atoms only (no `!`), such as a query pattern."""
    items = parse_program(text, filename)
    for item in items:
        if item.is_query:
            raise ParseError("'!' is not allowed here", filename, item.line, item.col)
    return [item.atom for item in items]


def parse_atom(text: str, filename: str = "<string>") -> Atom:
    """Parse text holding exactly one atom."""
    atoms = parse_atoms(text, filename)
    if len(atoms) != 1:
        raise ParseError(f"expected exactly one atom, found {len(atoms)}", filename, 1, 1)
    return atoms[0]


def decode_source(data: bytes, filename: str = "<string>") -> str:
    """Decode a source file's bytes as UTF-8, turning bad bytes into a positioned ParseError."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParseError.at_byte(data, err.start, MSG_INVALID_UTF8, filename) from None


def read_program_file(path: str) -> str:
    """Read a .metta file as text (UTF-8, positioned error on bad bytes)."""
    with open(path, "rb") as f:
        return decode_source(f.read(), str(path))
