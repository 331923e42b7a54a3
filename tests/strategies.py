"""Hypothesis strategies for atoms and MeTTa program text, shared by the test modules.

- `symbols()`, `variables()`, `ints()`, `floats()`, `strings()`, `bools()`: leaves, biased
  towards the edge cases: symbol names longer than 63 UTF-8 bytes and non-ASCII names, tokens
  that look like numbers but are symbols, variable names that repeat, i64 extremes, -0.0,
  infinities, NaN and subnormal floats, strings full of quotes, backslashes and control
  characters.
- `atoms()`: any atom, nested; an expression of arity above 63 or one with more than 64
  distinct variables turns up now and then.
- `programs()`: program text with comments, odd whitespace and `!` queries, together with
  the (is_query, atom) items a correct parser must read from it.

Every atom these make prints and parses back to itself (`parse_atom(format_atom(a)) == a`)
except where noted: a float that is not finite prints as a symbol (`inf`, `NaN`), and a bare
symbol `!` at top level reads as a query mark (`top_level_safe` tells).
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

# Characters that end a bare token, or that start something other than a symbol.
_TOKEN_BREAKERS = set('()";$')

# Symbols that look like numbers, Bools or syntax but are read as symbols (METTA_REFERENCE.md).
TRICKY_SYMBOLS = (
    "5.", ".5", "1_000", "0x10", "+", "-", "1e", "1.5e", "1.e5", "--5", "+-1", "1e+", "1.5.3",
    "a-b?", "'a", "!x", "!", "!!", "->", "=", ",", "&self", "NaN", "nan", "inf", "-inf",
    "true", "TRUE", "False?", "Truex", "٣", "²", "x$y", 'x"y', "é", "→", "漢字", "🙂",
)  # fmt: skip


def _symbol_char(first: bool) -> st.SearchStrategy[str]:
    def ok(c: str) -> bool:
        if c.isspace() or c in _TOKEN_BREAKERS:
            return False
        # A symbol whose name starts with a digit or a sign could read as a number.
        return not (first and (c in "+-" or "0" <= c <= "9"))

    extra = "" if first else '$"'  # inside a name these are ordinary characters
    return st.one_of(
        st.sampled_from("abcxyz-_?!*/<>=&'.:#@%^~|" + extra),
        st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    ).filter(lambda c: ok(c) or (not first and c in extra))


@st.composite
def _plain_symbol_name(draw, min_size: int = 0, max_size: int = 12) -> str:
    first = draw(_symbol_char(True))
    rest = draw(st.lists(_symbol_char(False), min_size=min_size, max_size=max_size))
    name = first + "".join(rest)
    if name in ("True", "False"):
        name += "_"
    return name


def symbol_names() -> st.SearchStrategy[str]:
    """Names that the parser reads back as a symbol, long (over 63 bytes) ones included."""
    long_ascii = st.integers(64, 90).map(lambda n: "long_" + "s" * (n - 5))
    long_unicode = st.integers(22, 40).map(lambda n: "長" * n)  # 3 bytes each: 66+ bytes
    exactly_63 = st.just("b" * 63)
    return st.one_of(
        _plain_symbol_name(),
        st.sampled_from(TRICKY_SYMBOLS),
        _plain_symbol_name(min_size=60, max_size=80),
        long_ascii,
        long_unicode,
        exactly_63,
    )


def symbols() -> st.SearchStrategy[Symbol]:
    return symbol_names().map(Symbol)


# A small pool makes names repeat inside an atom; the odd ones are legal variable names too.
VARIABLE_POOL = ("x", "y", "z", "h", "t", "x1", "", "a;b", 'q"', "$", "é", "v_long_name_" + "n" * 60)


def variable_names() -> st.SearchStrategy[str]:
    free_char = st.characters(blacklist_categories=("Cs",))
    # NUL is not allowed anywhere in MeTTa source (it would print raw).
    free_char = free_char.filter(lambda c: not c.isspace() and c not in "()\0")
    return st.one_of(st.sampled_from(VARIABLE_POOL), st.text(free_char, max_size=8))


def variables() -> st.SearchStrategy[Variable]:
    return variable_names().map(Variable)


def ints() -> st.SearchStrategy[Grounded]:
    edges = st.sampled_from([I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 1, I64_MAX, 1 << 53, -(1 << 53)])
    return st.one_of(edges, st.integers(-1000, 1000), st.integers(I64_MIN, I64_MAX)).map(Grounded)


SPECIAL_FLOATS = (
    0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 1e16, 1e-5, 1e-4, 1.5e300, 0.1, 3.0, -2.5, 123456789.125,
)  # fmt: skip


def floats(finite: bool = False) -> st.SearchStrategy[Grounded]:
    special = [x for x in SPECIAL_FLOATS if math.isfinite(x)] if finite else list(SPECIAL_FLOATS)
    values = st.one_of(
        st.sampled_from(special),
        st.floats(allow_nan=not finite, allow_infinity=not finite, allow_subnormal=True),
        st.decimals(-1000, 1000, places=3, allow_nan=False).map(float),
    )
    return values.map(Grounded)


def string_values() -> st.SearchStrategy[str]:
    escapes = st.text(st.sampled_from("\"\\\n\t\r\x00\x7f' abcé🙂$;()"), max_size=12)
    return st.one_of(st.text(max_size=12), escapes, st.text(min_size=64, max_size=80))


def strings() -> st.SearchStrategy[Grounded]:
    return string_values().map(Grounded)


def bools() -> st.SearchStrategy[Grounded]:
    return st.booleans().map(Grounded)


def leaves(finite_floats: bool = False) -> st.SearchStrategy[Atom]:
    return st.one_of(symbols(), variables(), ints(), floats(finite_floats), strings(), bools())


@st.composite
def _many_variables(draw) -> Expression:
    """An expression with more than 64 distinct variables, some repeated (big references)."""
    count = draw(st.integers(65, 70))
    names = [Variable(f"v{i}") for i in range(count)]
    repeats = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
    return Expression([Symbol("vars"), *names, *repeats])


def atoms(finite_floats: bool = False, max_leaves: int = 20) -> st.SearchStrategy[Atom]:
    """Any atom: leaves and nested expressions, with now and then one of arity above 63."""
    base = leaves(finite_floats)

    def extend(children: st.SearchStrategy[Atom]) -> st.SearchStrategy[Atom]:
        normal = st.lists(children, max_size=5).map(Expression)
        wide = st.lists(base, min_size=64, max_size=67).map(Expression)
        many = _many_variables()
        return st.integers(0, 29).flatmap(lambda k: wide if k == 0 else (many if k == 1 else normal))

    return st.recursive(base, extend, max_leaves=max_leaves)


def top_level_safe(atom: Atom) -> bool:
    """False for the bare symbol `!`, which a program reads as a query mark, not an atom."""
    return not (type(atom) is Symbol and atom.name == "!")


def is_finite_atom(atom: Atom) -> bool:
    """True when no float in the atom is infinite or NaN (those print as symbols)."""
    stack = [atom]
    while stack:
        item = stack.pop()
        if type(item) is Expression:
            stack.extend(item.children)
        elif type(item) is Grounded and type(item.value) is float and not math.isfinite(item.value):
            return False
    return True


SPACES = (" ", "  ", "\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\u2028")


@st.composite
def separators(draw) -> str:
    """Whitespace, possibly with comments; never empty, and a comment never ends the text
    without its newline being there when more follows."""
    parts = [draw(st.sampled_from(SPACES))]
    for _ in range(draw(st.integers(0, 2))):
        comment_char = st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",))
        comment = draw(st.text(comment_char, max_size=10))
        parts.append(";" + comment + "\n")
        parts.append(draw(st.sampled_from(SPACES)))
    return "".join(parts)


@st.composite
def programs(draw, finite_floats: bool = True, max_items: int = 6) -> tuple[str, list[tuple[bool, Atom]]]:
    """(text, items): program text and the (is_query, atom) items it holds, in order."""
    from metta_numba.syntax.printer import format_atom

    items = draw(
        st.lists(
            st.tuples(st.booleans(), atoms(finite_floats=finite_floats, max_leaves=8).filter(top_level_safe)),
            max_size=max_items,
        )
    )
    if finite_floats:
        items = [(q, a) for q, a in items if is_finite_atom(a)]
    parts = [draw(st.sampled_from(["", " ", "\n", "; header\n"]))]
    for is_query, atom in items:
        if is_query:
            # `!` must stand alone; glued to `(` it still does, glued to a token it would not.
            glue = type(atom) is Expression and draw(st.booleans())
            parts.append("!" if glue else "!" + draw(separators()))
        parts.append(format_atom(atom))
        parts.append(draw(separators()))
    return "".join(parts), items


def identical(a: Atom, b: Atom) -> bool:
    """Structural equality that also tells -0.0 from 0.0 and matches NaN with NaN: what a
    lossless round trip must preserve (atom equality treats -0.0 and 0.0 as equal)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if type(x) is Expression:
            if len(x.children) != len(y.children):
                return False
            stack.extend(zip(x.children, y.children))
        elif type(x) is Grounded and type(x.value) is float:
            if type(y.value) is not float:
                return False
            if math.isnan(x.value) or math.isnan(y.value):
                if not (math.isnan(x.value) and math.isnan(y.value)):
                    return False
            elif x.value != y.value or math.copysign(1.0, x.value) != math.copysign(1.0, y.value):
                return False
        elif x != y:
            return False
    return True


def generalize(atom: Atom, choices: list[int]) -> Atom:
    """Replace some subterms of `atom` by variables, so that a pattern made from a stored atom
    hits it: choice 1 puts a fresh variable, 2 the repeated `$p0`, anything else keeps the
    subterm (and goes on into an expression)."""
    counter = iter(choices)
    fresh = iter(f"p{i}" for i in range(10_000))

    def walk(a: Atom) -> Atom:
        choice = next(counter, 0)
        if choice == 1:
            return Variable(next(fresh))
        if choice == 2:
            return Variable("p0")
        if type(a) is Expression:
            return Expression(walk(c) for c in a.children)
        return a

    return walk(atom)
