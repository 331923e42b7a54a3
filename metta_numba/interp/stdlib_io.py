"""The `fileio` and `json` modules (loaded with `!(import! &self fileio)` / `json`).

fileio: `file-open!` with a mode made of r (read), w (write), a (append), c (create) and
t (truncate) letters, then reads, writes and seeks on the handle; paths are relative to the
working directory.

json: atoms to JSON text and back. Symbols and variables travel as strings with a `sym!:` or
`var!:` prefix, tuples as arrays, and objects as dict spaces (`dict-space`, `get-value`,
`get-keys`).
"""

from __future__ import annotations

import json
import os

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable
from metta_numba.interp.core import FALSE, TRUE, UNIT
from metta_numba.interp.grounded import ExecError, NoReduce, Registry
from metta_numba.interp.sandbox import check_inside
from metta_numba.syntax.printer import format_float

fileio_registry = Registry()
json_registry = Registry()


# -- fileio ---------------------------------------------------------------------------------------


class FileAtom(GroundedObject):
    """An open file (a binary Python file object)."""

    __slots__ = ()
    metta_type = Symbol("FileHandle")

    def display(self) -> str:
        return f"FileHandle-0x{id(self.obj):012x}"


def _text(atom: Atom) -> str:
    if type(atom) is Grounded and type(atom.value) is str:
        return atom.value
    raise NoReduce()


def _count(atom: Atom) -> int:
    if type(atom) is Grounded and type(atom.value) is int and atom.value >= 0:
        return atom.value
    raise NoReduce()


def _file(atom: Atom):
    if isinstance(atom, FileAtom):
        return atom.obj
    raise NoReduce()


def _open_flags(mode: str) -> int:
    unknown = set(mode) - set("rwact")
    if unknown or not mode:
        raise ExecError(f"unknown file mode {mode!r} (use r, w, a, c, t)")
    writing = "w" in mode or "a" in mode
    flags = (os.O_RDWR if "r" in mode else os.O_WRONLY) if writing else os.O_RDONLY
    if "a" in mode:
        flags |= os.O_APPEND
    if "c" in mode:
        flags |= os.O_CREAT
    if "t" in mode:
        flags |= os.O_TRUNC
    return flags


@fileio_registry.add("file-open!", "(-> String String FileHandle)")
def _file_open(ev, args, call):
    path, mode = _text(args[0]), _text(args[1])
    if ev.runner is not None:
        check_inside(ev.runner.modules.sandbox_root, path, "file")
    try:
        fd = os.open(path, _open_flags(mode), 0o644)
    except OSError as err:
        raise ExecError(Grounded(f"cannot open {path}: {err.strerror}")) from None
    writable = "w" in mode or "a" in mode
    return [FileAtom(os.fdopen(fd, ("r+b" if "r" in mode else "wb") if writable else "rb", buffering=0))]


@fileio_registry.add("file-read-to-string!", "(-> FileHandle String)")
def _file_read(ev, args, call):
    return [Grounded(_file(args[0]).read().decode("utf-8", errors="replace"))]


@fileio_registry.add("file-write!", "(-> FileHandle String ())")
def _file_write(ev, args, call):
    _file(args[0]).write(_text(args[1]).encode("utf-8"))
    return [UNIT]


@fileio_registry.add("file-seek!", "(-> FileHandle Number ())")
def _file_seek(ev, args, call):
    _file(args[0]).seek(_count(args[1]))
    return [UNIT]


@fileio_registry.add("file-read-exact!", "(-> FileHandle Number String)")
def _file_read_exact(ev, args, call):
    count = _count(args[1])
    data = _file(args[0]).read(count)
    if len(data) != count:
        raise ExecError("unexpected end of file")
    return [Grounded(data.decode("utf-8", errors="replace"))]


@fileio_registry.add("file-get-size!", "(-> FileHandle Number)")
def _file_size(ev, args, call):
    return [Grounded(os.fstat(_file(args[0]).fileno()).st_size)]


# -- json -----------------------------------------------------------------------------------------


class DictAtom(GroundedObject):
    """A dictionary (a JSON object): keys and values are atoms, in insertion order."""

    __slots__ = ()
    metta_type = Symbol("DictSpace")

    def display(self) -> str:
        return f"DictSpace-0x{id(self.obj):012x}"


def encode(atom: Atom) -> str:
    t = type(atom)
    if t is Grounded:
        value = atom.value
        if type(value) is bool:
            return "true" if value else "false"
        if type(value) is int:
            return str(value)
        if type(value) is float:
            return format_float(value)
        if type(value) is str:
            return json.dumps(value, ensure_ascii=False)
    if t is Symbol:
        return json.dumps("sym!:" + atom.name, ensure_ascii=False)
    if t is Variable:
        return json.dumps("var!:" + atom.name, ensure_ascii=False)
    if t is Expression:
        return "[" + ", ".join(encode(c) for c in atom.children) + "]"
    if isinstance(atom, DictAtom):
        items = (f"{encode_key(k)}:{encode(v)}" for k, v in atom.obj.items())
        return "{" + ",".join(items) + "}"
    raise ExecError(f"cannot encode {atom!r} as JSON")


def encode_key(key: Atom) -> str:
    if type(key) is Grounded and type(key.value) is str:
        return json.dumps(key.value, ensure_ascii=False)
    return json.dumps(repr(key), ensure_ascii=False)


def decode(value) -> Atom:
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, (int, float)):
        return Grounded(value)
    if isinstance(value, str):
        if value.startswith("sym!:"):
            return Symbol(value[5:])
        if value.startswith("var!:"):
            return Variable(value[5:])
        return Grounded(value)
    if isinstance(value, list):
        return Expression([decode(v) for v in value])
    if isinstance(value, dict):
        return DictAtom({Grounded(k): decode(v) for k, v in sorted(value.items())})
    return Symbol("null")


@json_registry.add("json-encode", "(-> Atom String)")
def _json_encode(ev, args, call):
    return [Grounded(encode(args[0]))]


@json_registry.add("json-decode", "(-> String Atom)")
def _json_decode(ev, args, call):
    try:
        return [decode(json.loads(_text(args[0])))]
    except json.JSONDecodeError as err:
        raise ExecError(Grounded(f"invalid JSON: {err.msg}")) from None


@json_registry.add("dict-space", "(-> Expression DictSpace)")
def _dict_space(ev, args, call):
    pairs = args[0]
    if type(pairs) is not Expression:
        raise NoReduce()
    table = {}
    for pair in pairs.children:
        if type(pair) is not Expression or len(pair.children) != 2:
            raise ExecError("dict-space expects a tuple of (key value) pairs")
        table[pair.children[0]] = pair.children[1]
    return [DictAtom(table)]


@json_registry.add("get-value", "(-> DictSpace Atom Atom)")
def _get_value(ev, args, call):
    if not isinstance(args[0], DictAtom):
        raise NoReduce()
    value = args[0].obj.get(args[1])
    return [] if value is None else [value]


@json_registry.add("get-keys", "(-> DictSpace Atom)")
def _get_keys(ev, args, call):
    if not isinstance(args[0], DictAtom):
        raise NoReduce()
    return list(args[0].obj.keys())
