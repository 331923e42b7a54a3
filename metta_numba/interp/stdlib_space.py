"""Spaces, states, nondeterminism and the program environment: `new-space`, `add-atom`,
`remove-atom`, `get-atoms`, `match`, `superpose`, `collapse`, `case`, `capture`, states,
`bind!`, `pragma!`, modules (`import!`, `include`, `mod-space!`), and printing."""

from __future__ import annotations

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, Variable, variables_of
from metta_numba.interp.core import (
    EMPTY,
    UNDEFINED,
    UNIT,
    BareSpaceAtom,
    SpaceAtom,
    StateAtom,
    StateCell,
    text_of,
)
from metta_numba.interp.grounded import ExecError, NoReduce, Registry
from metta_numba.interp.minimal import space_matches
from metta_numba.interp.results import match_result
from metta_numba.space import GroundingSpace, Space, query_view
from metta_numba.space.conjunction import conjuncts, join_step, query_pattern
from metta_numba.unify import rename_apart, substitute, unify

registry = Registry()

CONJUNCTION = ","


def _space(atom: Atom, what: str, where: str = "the first argument") -> Space:
    if isinstance(atom, SpaceAtom):
        return atom.obj
    raise ExecError(f"{what} expects a space as {where}")


def query_conjunction(space: Space, pattern: Atom) -> list[dict]:
    """Bindings of `pattern` against `space` and what it imported; `(, p1 p2 ...)` joins the
    patterns.

    A space that gives hyperon's answer order is joined left to right, each step in that
    order, as hyperon does; other spaces (snapshots) go through the join planner of
    metta_numba.space.conjunction."""
    parts = conjuncts(pattern)
    if not (space.orders_answers or space.dependencies):
        return query_pattern(space, pattern)
    if parts is None:
        return query_view(space, pattern)
    rows: list[dict] = [{}]
    for part in parts:
        rows = join_step(lambda p: query_view(space, p), part, rows)
        if not rows:
            break
    return rows


# -- spaces ---------------------------------------------------------------------------------------


@registry.add("new-space", "(-> SpaceType)")
def _new_space(ev, args, call):
    return [SpaceAtom(GroundingSpace())]


@registry.add("add-atom", "(-> SpaceType Atom (->))")
def _add_atom(ev, args, call):
    from metta_numba.codec import CodecError

    try:
        _space(args[0], "add-atom").add(args[1])
    except CodecError as err:  # a snapshot KB's delta log cannot hold a Python object or a space
        raise ExecError(f"cannot add {args[1]!r} to a snapshot KB: {err}") from None
    return [UNIT]


@registry.add("remove-atom", "(-> SpaceType Atom (->))")
def _remove_atom(ev, args, call):
    _space(args[0], "remove-atom").remove(args[1])
    return [UNIT]


@registry.add("get-atoms", "(-> SpaceType Atom)")
def _get_atoms(ev, args, call):
    # Stored variables show up renamed, as hyperon's `$x#N`.
    return [rename_apart(a) for a in _space(args[0], "get-atoms", "its argument").listing()]


@registry.add("match", "(-> SpaceType Atom Atom %Undefined%)")
def _match(ev, args, call):
    # Each answer also binds the pattern's variables for the caller (hyperon 0.2.10).
    space = _space(args[0], "match")
    pattern, template = args[1], args[2]
    names = variables_of(pattern)
    out = []
    for bindings in query_conjunction(space, pattern):
        delta = {v: substitute(v, bindings) for v in names if v in bindings}
        out.append((match_result(template, bindings), delta or None))
    return out


# -- nondeterminism -------------------------------------------------------------------------------


@registry.add("superpose", "(-> Expression %Undefined%)")
def _superpose(ev, args, call):
    # The elements are results as written; the evaluator then evaluates each of them.
    tuple_atom = args[0]
    if type(tuple_atom) is not Expression:
        raise ExecError("superpose expects single expression as an argument")
    return list(tuple_atom.children)


@registry.add("collapse", "(-> Atom Atom)")
def _collapse(ev, args, call):
    return [Expression([a for a, _ in ev.metta(args[0], UNDEFINED)])]


@registry.add("case", "(-> Atom Expression %Undefined%)")
def _case(ev, args, call):
    cases = args[1]
    if type(cases) is not Expression:
        return []  # hyperon: no result
    pairs = []
    for case in cases.children:
        if type(case) is not Expression or len(case.children) != 2:
            raise ExecError("case expects a tuple of (pattern template) pairs")
        pairs.append(case.children)
    # As hyperon's collapse-bind then superpose-bind: the bindings made while evaluating the
    # first argument stay with each of its results, so they reach the chosen branch and the caller.
    values = ev.metta(args[0], UNDEFINED) or [(EMPTY, None)]
    out = []
    for value, delta in values:
        for pattern, template in pairs:
            if delta:
                pattern = substitute(pattern, delta)
                template = substitute(template, delta)
            if isinstance(value, SpaceAtom) and type(pattern) is not Variable:
                # A space unifies by being queried: one result per way it matches.
                found = space_matches(value, pattern)
                out.extend((substitute(template, bindings), delta) for bindings in found)
                if found:
                    break
                continue
            bindings = unify(pattern, value)
            if bindings is not None:
                out.append((substitute(template, bindings), delta))
                break
    return out


@registry.add("capture", "(-> Atom Atom)")
def _capture(ev, args, call):
    home = ev.runner.space if ev.runner is not None else ev.space
    return [a for a, _ in ev.in_space(home, ev.metta, args[0], UNDEFINED)]


# -- states ---------------------------------------------------------------------------------------


@registry.add("new-state", "(-> $t (StateMonad $t))")
def _new_state(ev, args, call):
    value = args[0]
    return [StateAtom(StateCell(value, ev.types.actual_type(value)))]


@registry.add("get-state", "(-> (StateMonad $t) $t)")
def _get_state(ev, args, call):
    state = args[0]
    if not isinstance(state, StateAtom):
        raise ExecError("get-state expects single state atom as an argument")
    return [state.obj.value]


@registry.add("change-state!", "(-> (StateMonad $t) $t (StateMonad $t))")
def _change_state(ev, args, call):
    state = args[0]
    if not isinstance(state, StateAtom):
        raise ExecError("change-state! expects a state as the first argument")
    state.obj.value = args[1]
    return [state]


# -- environment ----------------------------------------------------------------------------------


def _runner(ev):
    if ev.runner is None:
        raise ExecError("this operation needs a running program")
    return ev.runner


@registry.add("bind!", "(-> Symbol %Undefined% (->))")
def _bind(ev, args, call):
    token = args[0]
    if type(token) is not Symbol:
        raise ExecError("bind! expects symbol atom as a token")
    _runner(ev).tokens[token.name] = args[1]
    return [UNIT]


@registry.add("pragma!", None)
def _pragma(ev, args, call):
    # hyperon's wording; a third argument and beyond are ignored there too.
    if len(args) < 2:
        raise ExecError("pragma! expects key and value as arguments")
    key, value = args[0], args[1]
    if type(key) is not Symbol:
        raise ExecError("pragma! expects symbol atom as a key")
    name = key.name
    if name == "max-stack-depth":
        if type(value) is not Grounded or type(value.value) is not int or value.value < 0:
            raise ExecError("max-stack-depth expects a non-negative integer")
        from metta_numba.interp.evaluator import DEFAULT_MAX_DEPTH

        ev.max_depth = value.value or DEFAULT_MAX_DEPTH
    elif name == "interpreter":
        ev.bare_minimal = getattr(value, "name", None) == "bare-minimal"
    if ev.runner is not None and name is not None:
        ev.runner.settings[name] = value
    return [UNIT]


@registry.add("import!", "(-> Atom Atom (->))")
def _import(ev, args, call):
    _runner(ev).import_module(args[0], args[1])
    return [UNIT]


@registry.add("include", "(-> Atom Atom)")
def _include(ev, args, call):
    runner = _runner(ev)
    return runner.modules.include(runner, args[0])


@registry.add("mod-space!", "(-> Atom SpaceType)")
def _mod_space(ev, args, call):
    runner = _runner(ev)
    return [SpaceAtom(runner.modules.space_of(runner, args[0]))]


@registry.add("module-space-no-deps", "(-> SpaceType SpaceType)")
def _module_space_no_deps(ev, args, call):
    return [BareSpaceAtom(_space(args[0], "module-space-no-deps"))]


@registry.add("register-module!", "(-> Atom (->))")
def _register_module(ev, args, call):
    runner = _runner(ev)
    runner.modules.register(runner, args[0])
    return [UNIT]


@registry.add("print-mods!", "(-> (->))")
def _print_mods(ev, args, call):
    runner = _runner(ev)
    ev.write_out("top")
    for name in runner.modules.spaces:
        ev.write_out(f"top:{name}")
    return [UNIT]


@registry.add("git-module!", "(-> Atom (->))")
def _git_module(ev, args, call):
    raise ExecError("git-module! is not supported by metta-numba")


# -- printing -------------------------------------------------------------------------------------


@registry.add("println!", "(-> %Undefined% (->))")
def _println(ev, args, call):
    ev.write_out(text_of(args[0]))
    return [UNIT]


@registry.add("trace!", "(-> %Undefined% Atom %Undefined%)")
def _trace(ev, args, call):
    ev.write_err(repr(args[0]))
    return [args[1]]


@registry.add("print-alternatives!", "(-> Atom Expression (->))")
def _print_alternatives(ev, args, call):
    items = args[1]
    if type(items) is not Expression:
        raise NoReduce()
    ev.write_out(f"{len(items.children)} {text_of(args[0])}:")
    for item in items.children:
        ev.write_out("    " + text_of(item))
    return [UNIT]
