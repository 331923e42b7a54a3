"""Documentation: `get-doc` turns `(@doc name (@desc ...) (@params ...) (@return ...))` atoms
into `(@doc-formal ...)` with the types filled in, and `help!` prints it."""

from __future__ import annotations

from metta_numba.atoms import Atom, Expression, Symbol, Variable
from metta_numba.interp.core import UNDEFINED, UNIT, SpaceAtom, is_function_type, text_of
from metta_numba.interp.grounded import NoReduce, Registry

registry = Registry()

DOC = Symbol("@doc")
DOC_FORMAL = Symbol("@doc-formal")
ITEM = Symbol("@item")
KIND = Symbol("@kind")
TYPE_TAG = Symbol("@type")
DESC = Symbol("@desc")
PARAMS = Symbol("@params")
PARAM = Symbol("@param")
RETURN_TAG = Symbol("@return")


def _find_doc(spaces, name: Atom) -> Expression | None:
    """The `(@doc name ...)` atom for `name` in the first of `spaces` that has one."""
    for space in spaces:
        for stored in space.candidates(Expression([DOC, name, Variable("%desc")])):
            if type(stored) is Expression and len(stored.children) == 3 and stored.children[1] == name:
                return stored
        pattern = Expression([DOC, name, Variable("%d"), Variable("%p"), Variable("%r")])
        for stored in space.candidates(pattern):
            if type(stored) is Expression and len(stored.children) == 5 and stored.children[1] == name:
                return stored
    return None


def get_doc(ev, space, name: Atom) -> Expression | None:
    """`(@doc-formal ...)` for `name` from the `@doc` atoms of `space`; None when undocumented."""
    doc = _find_doc((space, ev.stdlib), name)
    if doc is None:
        return None
    types = ev.in_space(space, ev.types.types_of, name)
    typ = types[0] if types else UNDEFINED
    is_function = is_function_type(typ) or (doc is not None and len(doc.children) == 5)
    kind = Symbol("function" if is_function else "atom")
    head = [DOC_FORMAL, Expression([ITEM, name]), Expression([KIND, kind]), Expression([TYPE_TAG, typ])]
    if len(doc.children) == 3:
        return Expression(head + [doc.children[2]])
    desc, params, ret = doc.children[2:]
    param_types = list(typ.children[1:-1]) if is_function_type(typ) else []
    ret_type = typ.children[-1] if is_function_type(typ) else UNDEFINED
    formal_params = []
    items = params.children[1].children if type(params) is Expression and len(params.children) == 2 else ()
    for i, param in enumerate(items):
        text = param.children[1] if type(param) is Expression and len(param.children) == 2 else param
        ptype = param_types[i] if i < len(param_types) else UNDEFINED
        formal_params.append(Expression([PARAM, Expression([TYPE_TAG, ptype]), Expression([DESC, text])]))
    ret_text = ret.children[1] if type(ret) is Expression and len(ret.children) == 2 else ret
    formal_ret = Expression([RETURN_TAG, Expression([TYPE_TAG, ret_type]), Expression([DESC, ret_text])])
    return Expression(head + [desc, Expression([PARAMS, Expression(formal_params)]), formal_ret])


@registry.add("get-doc", "(-> SpaceType Atom %Undefined%)")
def _get_doc(ev, args, call):
    if not isinstance(args[0], SpaceAtom):
        raise NoReduce()
    formal = get_doc(ev, args[0].obj, args[1])
    return [] if formal is None else [formal]


@registry.add("help-space!", "(-> SpaceType (->))")
def _help_space(ev, args, call):
    if not isinstance(args[0], SpaceAtom):
        raise NoReduce()
    for stored in args[0].obj.atoms():
        kids = stored.children if type(stored) is Expression else ()
        if len(kids) >= 3 and kids[0] == DOC and type(kids[2]) is Expression and len(kids[2].children) == 2:
            ev.write_out(f"{kids[1]!r}\n\t{_plain(kids[2])}")
    return [UNIT]


def _plain(atom: Atom) -> str:
    """The text inside `(@desc "...")`-like wrappers, else the printed atom."""
    if type(atom) is Expression and len(atom.children) == 2:
        return text_of(atom.children[1])
    return text_of(atom)


@registry.add("help!", "(-> Atom (->))")
def _help(ev, args, call):
    if len(args) != 1:
        raise NoReduce()
    formal = get_doc(ev, ev.space, args[0])
    if formal is None:
        ev.write_out(f"No documentation found for {args[0]!r}")
        return [UNIT]
    kids = formal.children
    item = kids[1].children[1]
    kind = kids[2].children[1]
    typ = kids[3].children[1]
    desc = _plain(kids[4])
    if len(kids) == 7:
        ev.write_out(f"Function {item!r}: {typ!r} {desc}")
        ev.write_out("Parameters:")
        for param in kids[5].children[1].children:
            ev.write_out(f"  (type {param.children[1].children[1]!r}) {_plain(param.children[2])}")
        ret = kids[6]
        ev.write_out(f"Return: (type {ret.children[1].children[1]!r}) {_plain(ret.children[2])}")
    elif getattr(kind, "name", None) == "function":
        ev.write_out(f"Function {item!r} (type {typ!r}) {desc}")
    else:
        ev.write_out(f"Atom {item!r}: {typ!r} {desc}")
    return [UNIT]
