"""Atom <-> byte path, one atom at a time (the Python side of the codec).

`encode` turns an atom into its prefix-order byte path plus the names of its variables in
order of first occurrence; `decode` turns a path back into an atom. Variables are anonymous in
the path, so two atoms that differ only in variable names encode to the same bytes.

Bulk data (a whole KB) does not come through here: `syntax.bulk` encodes text straight to
paths in a Numba kernel, and `codec.kernels` decodes and skips paths over arrays.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Symbol, Variable
from metta_numba.codec import tags
from metta_numba.codec.terms import TermLookup, TermStore

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")


class CodecError(ValueError):
    """An atom that cannot be encoded here, or bytes that are not a valid path."""


class UnknownTerm(LookupError):
    """Raised by a non-interning encode when a string or long symbol is not in the term store:
    no stored atom can contain it, so a query for it has no answer."""


class HandleTable:
    """In-process ids for grounded objects (spaces, states) held by an in-memory space."""

    def __init__(self) -> None:
        self.objects: list[GroundedObject] = []
        self.ids: dict[int, int] = {}

    def handle_of(self, atom: GroundedObject) -> int:
        key = id(atom.obj)
        handle = self.ids.get(key)
        if handle is None:
            handle = len(self.objects)
            self.objects.append(atom)
            self.ids[key] = handle
        return handle

    def atom_of(self, handle: int) -> GroundedObject:
        return self.objects[handle]


def _term_id(text: str, terms: TermStore | TermLookup, intern: bool) -> int:
    if intern:
        return terms.intern(text)
    term_id = terms.find(text)
    if term_id is None:
        raise UnknownTerm(text)
    return term_id


def encode(
    atom: Atom,
    terms: TermStore | TermLookup,
    *,
    intern: bool = True,
    handles: HandleTable | None = None,
) -> tuple[bytes, list[str]]:
    """Encode an atom. Returns the path and its variable names by first occurrence.

    With `intern=False` the term store is only read, and a missing string raises UnknownTerm.
    A GroundedObject needs `handles` (only in-memory spaces can hold one).
    """
    out = bytearray()
    var_index: dict[str, int] = {}
    names: list[str] = []
    stack: list[Atom] = [atom]
    while stack:
        a = stack.pop()
        t = type(a)
        if t is Expression:
            children = a.children
            n = len(children)
            if n <= tags.ARITY_SHORT_MAX:
                out.append(n)
            else:
                out.append(tags.TAG_BIG_ARITY)
                out += _U32.pack(n)
            stack.extend(reversed(children))
        elif t is Symbol:
            raw = a.name.encode("utf-8")
            if 0 < len(raw) <= tags.SYMBOL_SHORT_MAX:
                out.append(tags.TAG_SYMBOL | len(raw))
                out += raw
            else:
                out.append(tags.TAG_LONG_SYMBOL)
                out += _U64.pack(_term_id(a.name, terms, intern))
        elif t is Variable:
            index = var_index.get(a.name)
            if index is None:
                var_index[a.name] = len(names)
                names.append(a.name)
                out.append(tags.TAG_NEW_VAR)
            elif index <= tags.VAR_REF_SHORT_MAX:
                out.append(tags.TAG_VAR_REF | index)
            else:
                out.append(tags.TAG_BIG_VAR_REF)
                out += _U32.pack(index)
        elif t is Grounded:
            _encode_value(a.value, out, terms, intern)
        elif isinstance(a, GroundedObject):
            if handles is None:
                raise CodecError(f"{a!r} is a grounded object; only an in-memory space can hold it")
            out.append(tags.TAG_HANDLE)
            out += _U64.pack(handles.handle_of(a))
        else:
            raise CodecError(f"cannot encode {type(a).__name__}")
    return bytes(out), names


def _encode_value(value: object, out: bytearray, terms, intern: bool) -> None:
    vt = type(value)
    if vt is bool:
        out.append(tags.TAG_BOOL)
        out.append(1 if value else 0)
    elif vt is int:
        if not -tags.SIGN_BIT <= value < tags.SIGN_BIT:
            raise CodecError(f"integer {value} does not fit in 64 bits")
        out.append(tags.TAG_INT)
        out += _U64.pack(tags.int_to_key(value))
    elif vt is float:
        bits = _U64.unpack(_F64.pack(value))[0]
        out.append(tags.TAG_FLOAT)
        out += _U64.pack(tags.float_bits_to_key(bits))
    elif vt is str:
        out.append(tags.TAG_STRING)
        out += _U64.pack(_term_id(value, terms, intern))
    else:
        raise CodecError(f"cannot encode a grounded {vt.__name__}")


def default_var_name(index: int) -> str:
    return f"_{index}"


def decode(
    path: bytes,
    terms: TermStore | TermLookup,
    var_names: list[str] | None = None,
    handles: HandleTable | None = None,
) -> Atom:
    """Decode one path back into an atom. Variables take `var_names[i]`, or `_i` when absent.

    Raises CodecError on a malformed path (bad tag, truncated payload, trailing bytes)."""
    atom, end = decode_at(path, 0, terms, var_names, handles)
    if end != len(path):
        raise CodecError(f"{len(path) - end} trailing bytes after a complete atom")
    return atom


def decode_at(path, pos: int, terms, var_names=None, handles=None) -> tuple[Atom, int]:
    """Decode the atom that starts at byte `pos`; return it and the offset just past it."""
    mv = memoryview(path)
    length = len(path)
    fresh = 0
    names = var_names or []
    # Stack of [children list, remaining count] for the expressions being filled.
    frames: list[list] = []
    result: Atom | None = None
    while True:
        if pos >= length:
            raise CodecError("path ends inside an atom")
        tag = path[pos]
        pos += 1
        atom: Atom | None = None
        if tag < 0x40 or tag == tags.TAG_BIG_ARITY:
            if tag == tags.TAG_BIG_ARITY:
                if pos + 4 > length:
                    raise CodecError("truncated arity")
                arity = _U32.unpack_from(mv, pos)[0]
                pos += 4
            else:
                arity = tag
            if arity == 0:
                atom = Expression(())
            else:
                frames.append([[], arity])
                continue
        elif tag >= 0xC0:
            size = tag & 0x3F
            if size == 0:
                index = fresh
                fresh += 1
                atom = Variable(names[index] if index < len(names) else default_var_name(index))
            else:
                if pos + size > length:
                    raise CodecError("truncated symbol name")
                try:
                    atom = Symbol(bytes(mv[pos : pos + size]).decode("utf-8"))
                except UnicodeDecodeError:
                    raise CodecError("symbol name is not valid UTF-8") from None
                pos += size
        elif tag >= 0x80 or tag == tags.TAG_BIG_VAR_REF:
            if tag == tags.TAG_BIG_VAR_REF:
                if pos + 4 > length:
                    raise CodecError("truncated variable reference")
                index = _U32.unpack_from(mv, pos)[0]
                pos += 4
            else:
                index = tag & 0x3F
            if index >= fresh:
                raise CodecError(f"reference to variable {index} before its first occurrence")
            atom = Variable(names[index] if index < len(names) else default_var_name(index))
        else:
            atom, pos = _decode_ext(tag, mv, pos, length, terms, handles)
        # Attach the finished atom to its parent, closing every expression it completes.
        while True:
            if not frames:
                return atom, pos
            frame = frames[-1]
            frame[0].append(atom)
            frame[1] -= 1
            if frame[1]:
                break
            frames.pop()
            atom = Expression(frame[0])
    return result, pos  # pragma: no cover - the loop always returns


def _decode_ext(tag: int, mv, pos: int, length: int, terms, handles) -> tuple[Atom, int]:
    if tag > tags.EXT_LAST:
        raise CodecError(f"unknown tag byte 0x{tag:02x}")
    size = tags.EXT_PAYLOAD[tag - tags.EXT_FIRST]
    if pos + size > length:
        raise CodecError(f"truncated payload of tag 0x{tag:02x}")
    if tag == tags.TAG_BOOL:
        flag = mv[pos]
        if flag > 1:
            raise CodecError("Bool payload must be 0 or 1")
        return Grounded(flag == 1), pos + 1
    key = _U64.unpack_from(mv, pos)[0]
    pos += 8
    if tag == tags.TAG_INT:
        return Grounded(tags.key_to_int(key)), pos
    if tag == tags.TAG_FLOAT:
        return Grounded(_F64.unpack(_U64.pack(tags.key_to_float_bits(key)))[0]), pos
    if tag == tags.TAG_STRING or tag == tags.TAG_LONG_SYMBOL:
        try:
            text = terms.text(key)
        except (IndexError, KeyError):
            raise CodecError(f"term id {key} is not in the term store") from None
        return (Grounded(text) if tag == tags.TAG_STRING else Symbol(text)), pos
    if tag == tags.TAG_HANDLE:
        if handles is None:
            raise CodecError("object handle in a path outside an in-memory space")
        return handles.atom_of(key), pos
    raise CodecError(f"unknown tag byte 0x{tag:02x}")


def _python_object_in(atom: Atom) -> Atom | None:
    """The first grounded atom inside `atom` that wraps a Python value or function (its class
    sets `python_object`), if any."""
    stack = [atom]
    while stack:
        a = stack.pop()
        if type(a) is Expression:
            stack.extend(a.children)
        elif getattr(type(a), "python_object", False):
            return a
    return None


def encode_atoms(atoms: Iterable[Atom], terms: TermStore) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Encode atoms (a multiset: repeats are kept) into a batch of paths for `Trie.build`.

    Returns data, offsets, names (the term id of each atom's variable names joined by a space,
    -1 for none) and the number of atoms skipped because they hold a grounded object (a
    space, a state), which has no on-disk form. An atom holding a Python value raises
    CodecError naming it. This is the path for atoms that already exist
    as objects, such as a program's `&self`; a KB file goes through syntax.bulk instead."""
    chunks: list[bytes] = []
    names: list[int] = []
    skipped = 0
    for atom in atoms:
        try:
            path, var_names = encode(atom, terms)
        except CodecError:
            culprit = _python_object_in(atom)
            if culprit is not None:
                # A Python value is data the user expects to find again: refuse, do not skip.
                raise CodecError(
                    f"cannot save {atom!r} into a snapshot: it holds the Python object {culprit!r}, "
                    "which has no on-disk form"
                ) from None
            skipped += 1
            continue
        chunks.append(path)
        names.append(terms.intern(" ".join(var_names)) if var_names else -1)
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8).copy()
    return data, offsets, np.asarray(names, dtype=np.int64), skipped
