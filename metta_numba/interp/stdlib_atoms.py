"""Operations on atoms: control (`if`, `if-equal`, `if-error`), tuples (`size-atom`,
`index-atom`, `unique-atom`, the multiset ones, `map/filter/foldl-atom`), variables (`sealed`,
`=alpha`, `atom-subst`), types (`get-type`, `get-metatype`), and strings (`format-args`,
`repr`, `parse`, `stringToChars`, `charsToString`, `sort-strings`)."""

from __future__ import annotations

import itertools
from collections import Counter

from metta_numba.atoms import Atom, Expression, Grounded, Variable, alpha_equal, variables_of
from metta_numba.interp.core import (
    EMPTY,
    FALSE,
    NO_RETURN,
    RETURN,
    TRUE,
    UNDEFINED,
    UNIT,
    Char,
    SpaceAtom,
    error,
    is_error,
    metatype,
    text_of,
)
from metta_numba.interp.grounded import ExecError, NoReduce, Registry
from metta_numba.interp.minimal import replace_variable, run_instruction
from metta_numba.interp.types import fresh_type
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import parse_atoms
from metta_numba.unify import fresh_suffix, substitute, unify

registry = Registry()


def _expression(atom: Atom, what: str) -> Expression:
    if type(atom) is not Expression:
        raise ExecError("Atom is not an ExpressionAtom")
    return atom


# -- control --------------------------------------------------------------------------------------


@registry.add("if", "(-> Bool Atom Atom $t)")
def _if(ev, args, call):
    cond = args[0]
    if cond == TRUE:
        return [args[1]]
    if cond == FALSE:
        return [args[2]]
    raise NoReduce()


@registry.add("if-equal", "(-> Atom Atom Atom Atom %Undefined%)")
def _if_equal(ev, args, call):
    return [args[2] if alpha_equal(args[0], args[1]) else args[3]]


@registry.add("if-error", "(-> Atom Atom Atom %Undefined%)")
def _if_error(ev, args, call):
    return [args[1] if is_error(args[0]) else args[2]]


@registry.add("return-on-error", "(-> Atom Atom %Undefined%)")
def _return_on_error(ev, args, call):
    atom = args[0]
    if atom == EMPTY:
        return [Expression([RETURN, EMPTY])]
    if is_error(atom):
        return [Expression([RETURN, atom])]
    return [args[1]]


@registry.add("switch", "(-> %Undefined% Expression %Undefined%)")
def _switch(ev, args, call):
    value, cases = args
    if type(cases) is not Expression:
        return []  # hyperon: no result
    for case in cases.children:
        if type(case) is not Expression or len(case.children) != 2:
            raise ExecError("switch expects a tuple of (pattern template) pairs")
        bindings = unify(case.children[0], value)
        if bindings is not None:
            return [substitute(case.children[1], bindings)]
    return []


# -- variables ------------------------------------------------------------------------------------


def seal(keep, atom: Atom) -> Atom:
    """Rename every variable of `atom` apart, except those in `keep`."""
    keep_set = set(keep)
    suffix = fresh_suffix()
    mapping = {
        v: Variable(f"{v.name.split('#', 1)[0]}#{suffix}") for v in variables_of(atom) if v not in keep_set
    }
    if not mapping:
        return atom
    return substitute(atom, mapping)


@registry.add("sealed", "(-> Expression Atom Atom)")
def _sealed(ev, args, call):
    # hyperon takes a lone variable, or any other atom, as the list of variables to keep.
    listed = args[0].children if type(args[0]) is Expression else (args[0],)
    keep = [v for v in listed if type(v) is Variable]
    return [seal(keep, args[1])]


@registry.add("=alpha", "(-> Atom Atom Bool)")
def _alpha(ev, args, call):
    return [TRUE if alpha_equal(_numbers_as_floats(args[0]), _numbers_as_floats(args[1])) else FALSE]


def _numbers_as_floats(atom: Atom) -> Atom:
    """The atom with integers made floats: hyperon's numbers are equal across the two kinds."""
    t = type(atom)
    if t is Grounded and type(atom.value) is int:
        return Grounded(float(atom.value))
    if t is Expression:
        return Expression([_numbers_as_floats(c) for c in atom.children])
    return atom


@registry.add("atom-subst", "(-> Atom Variable Atom Atom)")
def _atom_subst(ev, args, call):
    value, var, template = args
    if type(var) is not Variable:
        raise NoReduce()
    return [replace_variable(template, var, value)]


# -- types ----------------------------------------------------------------------------------------


@registry.add("get-type", "(-> Atom %Undefined%)")
def _get_type(ev, args, call):
    return [fresh_type(t) for t in ev.types.types_of(args[0])]


@registry.add("get-type-space", "(-> SpaceType Atom Atom)")
def _get_type_space(ev, args, call):
    space = args[0]
    if not isinstance(space, SpaceAtom):
        raise ExecError("get-type-space expects a space as the first argument")
    types = ev.in_space(space.obj, ev.types.types_of, args[1])
    return [fresh_type(t) for t in types]


@registry.add("get-metatype", "(-> Atom Atom)")
def _get_metatype(ev, args, call):
    return [metatype(args[0], ev.ops)]


# -- tuples ---------------------------------------------------------------------------------------


@registry.add("size-atom", "(-> Expression Number)")
def _size_atom(ev, args, call):
    return [Grounded(len(_expression(args[0], "size-atom").children))]


@registry.add("nop", None)
def _nop(ev, args, call):
    # Untyped in hyperon too: any number of arguments, evaluated and ignored.
    return [UNIT]


@registry.add("index-atom", "(-> Expression Number Atom)")
def _index_atom(ev, args, call):
    items = _expression(args[0], "index-atom").children
    index = args[1]
    if type(index) is not Grounded or type(index.value) not in (int, float) or index.value != index.value:
        raise ExecError("index-atom expects two arguments: expression and atom")
    i = int(index.value)
    if i < 0 or i >= len(items):
        raise ExecError("Index is out of bounds")
    return [items[i]]


def _number_values(atom: Atom, name: str) -> list:
    if type(atom) is not Expression:
        raise ExecError("Atom is not an ExpressionAtom")
    if not atom.children:
        raise ExecError("Empty expression")
    values = []
    for item in atom.children:
        if type(item) is not Grounded or type(item.value) not in (int, float):
            raise ExecError(f"Only numbers are allowed in expression: {atom!r}")
        values.append(float(item.value))
    return values


@registry.add("min-atom", "(-> %Undefined% Number)")
def _min_atom(ev, args, call):
    return [Grounded(min(_number_values(args[0], "min-atom")))]


@registry.add("max-atom", "(-> %Undefined% Number)")
def _max_atom(ev, args, call):
    return [Grounded(max(_number_values(args[0], "max-atom")))]


@registry.add("unique-atom", "(-> Expression Atom)")
def _unique_atom(ev, args, call):
    # Atoms equal up to the names of their variables count as repeats.
    seen: set = set()
    out = []
    for item in _expression(args[0], "unique-atom").children:
        key = alpha_key(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return [Expression(out)]


def alpha_key(atom: Atom) -> Atom:
    """The atom with its variables renamed by order of first occurrence (alpha-equal atoms
    get equal keys)."""
    names = variables_of(atom)
    if not names:
        return atom
    return substitute(atom, {v: Variable(f"%{i}") for i, v in enumerate(names)})


@registry.add("union-atom", "(-> Expression Expression Atom)")
def _union_atom(ev, args, call):
    left = _expression(args[0], "union-atom").children
    return [Expression(left + _expression(args[1], "union-atom").children)]


def _split_common(left: Atom, right: Atom, what: str) -> tuple[list, list]:
    """Items of `left` that pair off with an item of `right` (multiset), and those that do not."""
    remaining = Counter(_expression(right, what).children)
    common = []
    rest = []
    for item in _expression(left, what).children:
        if remaining[item] > 0:
            remaining[item] -= 1
            common.append(item)
        else:
            rest.append(item)
    return common, rest


@registry.add("intersection-atom", "(-> Expression Expression Atom)")
def _intersection_atom(ev, args, call):
    return [Expression(_split_common(args[0], args[1], "intersection-atom")[0])]


@registry.add("subtraction-atom", "(-> Expression Expression Atom)")
def _subtraction_atom(ev, args, call):
    return [Expression(_split_common(args[0], args[1], "subtraction-atom")[1])]


@registry.add("sort-strings", "(-> Expression Expression)")
def _sort_strings(ev, args, call):
    if type(args[0]) is not Expression:
        raise ExecError("sort-strings expects expression with strings as a first argument")
    items = args[0].children
    for item in items:
        if type(item) is not Grounded or type(item.value) is not str:
            raise ExecError("sort-strings expects expression with strings as a first argument")
    return [Expression(sorted(items, key=lambda a: a.value))]


def _combinations(options: list[list]) -> list[list]:
    return [list(combo) for combo in itertools.product(*options)]


@registry.add("map-atom", "(-> Expression Variable Atom Expression)")
def _map_atom(ev, args, call):
    items, var, body = args
    if type(var) is not Variable:
        raise NoReduce()
    options = []
    for item in _expression(items, "map-atom").children:
        template = replace_variable(seal([var], body), var, item)
        options.append([r for r, _ in ev.metta(template, UNDEFINED)])
    return [Expression(combo) for combo in _combinations(options)]


@registry.add("filter-atom", "(-> Expression Variable Atom Expression)")
def _filter_atom(ev, args, call):
    items, var, predicate = args
    if type(var) is not Variable:
        raise NoReduce()
    options = []
    for item in _expression(items, "filter-atom").children:
        test = replace_variable(seal([var], predicate), var, item)
        keep = []
        for verdict, _ in run_instruction(ev, test):
            if verdict == TRUE:
                keep.append([item])
            elif verdict == FALSE:
                keep.append([])
            else:
                return [error(call, NO_RETURN)]
        options.append(keep)
    return [Expression([x for part in combo for x in part]) for combo in _combinations(options)]


@registry.add("foldl-atom", "(-> Expression Atom Variable Variable Atom %Undefined%)")
def _foldl_atom(ev, args, call):
    items, init, acc_var, item_var, op = args
    if type(acc_var) is not Variable or type(item_var) is not Variable:
        raise NoReduce()
    accs = [init]
    for item in _expression(items, "foldl-atom").children:
        next_accs = []
        for acc in accs:
            step = seal([acc_var, item_var], op)
            step = replace_variable(replace_variable(step, acc_var, acc), item_var, item)
            next_accs.extend(r for r, _ in ev.metta(step, UNDEFINED))
        accs = next_accs
    return accs


# -- strings --------------------------------------------------------------------------------------


@registry.add("format-args", "(-> Atom Expression String)")
def _format_args(ev, args, call):
    template = args[0]
    if type(template) is not Grounded or type(template.value) is not str or type(args[1]) is not Expression:
        raise ExecError("format-args expects format string as a first argument and expression as a second argument")
    values = [text_of(a) for a in args[1].children]
    text = template.value
    parts = text.split("{}")
    out = [parts[0]]
    for i, part in enumerate(parts[1:]):
        out.append(values[i] if i < len(values) else "")
        out.append(part)
    return [Grounded("".join(out))]


@registry.add("repr", "(-> Atom String)")
def _repr(ev, args, call):
    return [Grounded(repr(args[0]))]


@registry.add("parse", "(-> String Atom)")
def _parse(ev, args, call):
    text = args[0]
    if type(text) is not Grounded or type(text.value) is not str:
        raise NoReduce()
    try:
        atoms = parse_atoms(text.value)
    except ParseError as err:
        raise ExecError(Grounded(err.message)) from None
    if not atoms:
        raise ExecError("parse expects a string holding an atom")
    atom = atoms[0]
    if ev.runner is not None:
        atom = ev.runner.apply_tokens(atom)
    return [atom]


@registry.add("stringToChars", "(-> String Atom)")
def _string_to_chars(ev, args, call):
    text = args[0]
    if type(text) is not Grounded or type(text.value) is not str:
        raise NoReduce()
    return [Expression([Grounded(Char(c)) for c in text.value])]


@registry.add("charsToString", "(-> Atom String)")
def _chars_to_string(ev, args, call):
    # Each element's printed form without its first and last character: `'a'` gives a, and
    # other atoms are cut the same way (hyperon does this; see METTA_REFERENCE.md section 4).
    items = _expression(args[0], "charsToString").children
    return [Grounded("".join(_char_text(a) for a in items))]


def _char_text(atom: Atom) -> str:
    if type(atom) is Grounded and type(atom.value) is Char:
        return atom.value.char
    if type(atom) is Grounded and type(atom.value) is str:
        return atom.value
    return repr(atom)[1:-1]
