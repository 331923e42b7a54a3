"""The codec: atom <-> path round trips, the bytes of each tag, numeric order of keys, errors,
and the path kernels (`subterm_end`, `validate_paths`) against simple Python models."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import I64_MAX, I64_MIN, atoms, identical

from metta_numba.atoms import E, Expression, Grounded, GroundedObject, S, V, Variable, alpha_equal
from metta_numba.codec import CodecError, HandleTable, TermStore, UnknownTerm, decode, encode
from metta_numba.codec.kernels import first_invalid_utf8, subterm_end, validate_paths


@given(atoms())
def test_decode_of_encode_is_the_atom(atom):
    terms = TermStore()
    path, names = encode(atom, terms)
    assert alpha_equal(decode(path, terms), atom)
    assert identical(decode(path, terms, names), atom)


def _renamed(atom, prefix: str):
    if type(atom) is Variable:
        return Variable(prefix + atom.name)
    if type(atom) is Expression:
        return Expression([_renamed(c, prefix) for c in atom.children])
    return atom


@given(atoms(max_leaves=10))
def test_variable_names_are_not_part_of_the_path(atom):
    terms = TermStore()
    path, names = encode(atom, terms)
    renamed_path, renamed_names = encode(_renamed(atom, "r_"), terms)
    assert renamed_path == path
    assert renamed_names == ["r_" + name for name in names]


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        (E("a", "$x", "$x"), bytes([0x03, 0xC1, 0x61, 0xC0, 0x80])),
        (E("f", "$x", "$y", "$y", "$x"), bytes([0x05, 0xC1, 0x66, 0xC0, 0xC0, 0x81, 0x80])),
        (Expression(()), bytes([0x00])),
        (S("é"), bytes([0xC2, 0xC3, 0xA9])),
        (S("b" * 63), bytes([0xFF]) + b"b" * 63),
        (S("b" * 64), bytes([0x43]) + _u64(0)),
        (Grounded("s"), bytes([0x42]) + _u64(0)),
        (Grounded(0), bytes([0x40, 0x80]) + bytes(7)),
        (Grounded(-1), bytes([0x40]) + bytes([0x7F]) + bytes([0xFF]) * 7),
        (Grounded(I64_MIN), bytes([0x40]) + bytes(8)),
        (Grounded(I64_MAX), bytes([0x40]) + bytes([0xFF]) * 8),
        (Grounded(1.0), bytes([0x41]) + _u64(0xBFF0000000000000)),  # IEEE bits 3FF0..., sign bit set
        (Grounded(-1.0), bytes([0x41]) + _u64(0x400FFFFFFFFFFFFF)),  # bits BFF0..., all flipped
        (Grounded(0.0), bytes([0x41]) + _u64(0x8000000000000000)),
        (Grounded(-0.0), bytes([0x41]) + _u64(0x7FFFFFFFFFFFFFFF)),
        (Grounded(True), bytes([0x45, 0x01])),
        (Grounded(False), bytes([0x45, 0x00])),
        (Expression([S("a")] * 64), bytes([0x44, 0, 0, 0, 64]) + bytes([0xC1, 0x61]) * 64),
    ],
)
def test_tag_bytes(atom, expected):
    path, _ = encode(atom, TermStore())
    assert path == expected


def test_variable_reference_above_63():
    atom = Expression([V(f"v{i}") for i in range(65)] + [V("v64"), V("v3")])
    path, names = encode(atom, TermStore())
    assert path == bytes([0x44, 0, 0, 0, 67]) + bytes([0xC0]) * 65 + bytes([0x46, 0, 0, 0, 64, 0x83])
    assert decode(path, TermStore(), names) == atom


def _path(value) -> bytes:
    return encode(Grounded(value), TermStore())[0]


@given(st.lists(st.integers(I64_MIN, I64_MAX), min_size=2, max_size=20))
def test_int_paths_sort_like_the_numbers(values):
    assert sorted(values, key=_path) == sorted(values)
    for a, b in zip(values, values[1:]):
        assert (_path(a) < _path(b)) == (a < b) and (_path(a) == _path(b)) == (a == b)


finite_or_infinite = st.floats(allow_nan=False, allow_subnormal=True)


@given(st.lists(finite_or_infinite, min_size=2, max_size=20))
def test_float_paths_sort_like_the_numbers(values):
    # -0.0 sorts just before 0.0 (as in IEEE totalOrder); otherwise order is numeric order.
    by_path = sorted(values, key=_path)
    assert by_path == sorted(values, key=lambda x: (x, math.copysign(1.0, x)))
    for a, b in zip(values, values[1:]):
        if a < b:
            assert _path(a) < _path(b)
        elif a == b and math.copysign(1.0, a) == math.copysign(1.0, b):
            assert _path(a) == _path(b)


@given(finite_or_infinite)
def test_no_float_sorts_between_minus_zero_and_zero(value):
    assert not (_path(-0.0) < _path(value) < _path(0.0))
    assert _path(-0.0) < _path(0.0)


def test_nan_round_trips_and_sorts_outside_the_numbers():
    terms = TermStore()
    for nan in (math.nan, -math.nan, struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0]):
        decoded = decode(_path(nan), terms).value
        assert math.isnan(decoded)
        assert struct.pack(">d", decoded) == struct.pack(">d", nan)  # payload and sign kept
    assert _path(math.nan) > _path(math.inf) and _path(-math.nan) < _path(-math.inf)


def test_non_interning_encode_of_an_unknown_string():
    terms = TermStore(["known"])
    assert encode(Grounded("known"), terms, intern=False)[0] == bytes([0x42]) + _u64(0)
    with pytest.raises(UnknownTerm):
        encode(E("f", Grounded("new")), terms, intern=False)
    assert terms.texts == ["known"]


def test_grounded_objects_need_a_handle_table():
    obj = GroundedObject(object())
    with pytest.raises(CodecError):
        encode(obj, TermStore())
    handles = HandleTable()
    path, _ = encode(E("space", obj), TermStore(), handles=handles)
    assert decode(path, TermStore(), handles=handles).children[1] is obj
    with pytest.raises(CodecError):
        decode(path, TermStore())


@pytest.mark.parametrize(
    "path",
    [
        b"",
        bytes([0x02, 0xC1, 0x61]),  # one child missing
        bytes([0xC3, 0x61]),  # symbol name cut short
        bytes([0x40, 0, 0]),  # int payload cut short
        bytes([0x44, 0, 0]),  # big arity cut short
        bytes([0x48]),  # unknown tag
        bytes([0x80]),  # reference before any variable
        bytes([0x02, 0xC0, 0x81]),  # reference to a variable not yet introduced
        bytes([0x45, 0x02]),  # Bool payload other than 0/1
        bytes([0xC1, 0xFF]),  # symbol name not UTF-8
        bytes([0xC1, 0x61, 0x00]),  # trailing byte
        bytes([0x42]) + _u64(5),  # term id not in the store
    ],
)
def test_malformed_paths_raise_codec_error(path):
    with pytest.raises(CodecError):
        decode(path, TermStore())


# ---- path kernels -------------------------------------------------------------------------

_EXT_SIZES = {0x40: 8, 0x41: 8, 0x42: 8, 0x43: 8, 0x44: 4, 0x45: 1, 0x46: 4, 0x47: 8}


def model_subterm_end(data: bytes, pos: int, limit: int) -> int:
    """Reference model: skip one subterm of data[:limit] from pos, -1 if it is not there."""
    view = data[: max(0, min(limit, len(data)))]
    if pos < 0:
        return -1
    todo = 1
    while todo:
        if pos >= len(view):
            return -1
        tag = view[pos]
        pos += 1
        todo -= 1
        if tag < 0x40:
            todo += tag
            continue
        if tag >= 0x80:
            size = tag & 0x3F if tag >= 0xC0 else 0
        elif tag in _EXT_SIZES:
            size = _EXT_SIZES[tag]
        else:
            return -1
        payload = view[pos : pos + size]
        if len(payload) < size:
            return -1
        if tag == 0x44:
            todo += int.from_bytes(payload, "big")
        elif tag == 0x45 and payload[0] > 1:
            return -1
        pos += size
    return pos


class ReversibleTerms:
    """Term store stand-in for the model: every id has a text longer than 63 bytes, and
    interning that text gives the id back, so a decode-encode round trip keeps every id."""

    def text(self, term_id: int) -> str:
        return "L" * 64 + str(term_id)

    def intern(self, text: str) -> int:
        return int(text[64:])


def model_is_valid(path: bytes) -> bool:
    """Reference model: a path is valid when it decodes and re-encodes to the same bytes."""
    terms = ReversibleTerms()
    try:
        atom = decode(path, terms)
    except CodecError:
        return False
    return encode(atom, terms)[0] == path


def model_validate(data: bytes, offsets: list[int]) -> int:
    if not offsets:
        return 0
    for i, (start, end) in enumerate(zip(offsets, offsets[1:])):
        if start < 0 or end < start or end > len(data) or not model_is_valid(data[start:end]):
            return i
    return -1


def _batch(atom_list) -> tuple[bytes, list[int]]:
    terms = TermStore()
    paths = [encode(a, terms)[0] for a in atom_list]
    offsets = [0]
    for p in paths:
        offsets.append(offsets[-1] + len(p))
    return b"".join(paths), offsets


def _arrays(data: bytes, offsets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return np.frombuffer(data, np.uint8), np.array(offsets, np.int64)


@given(st.lists(atoms(max_leaves=8), max_size=5))
def test_validate_accepts_encoded_batches_and_subterm_end_skips_each_path(atom_list):
    data, offsets = _batch(atom_list)
    array, offset_array = _arrays(data, offsets)
    assert validate_paths(array, offset_array) == -1
    for start, end in zip(offsets, offsets[1:]):
        assert subterm_end(array, start, len(data)) == end
        assert subterm_end(array, start, end - 1) == -1  # one byte short


@given(st.binary(max_size=40), st.integers(-2, 45), st.integers(-2, 50))
def test_subterm_end_on_arbitrary_bytes_matches_the_model(data, pos, limit):
    result = subterm_end(np.frombuffer(data, np.uint8), pos, limit)
    assert result == model_subterm_end(data, pos, limit)
    assert result == -1 or pos < result <= min(limit, len(data))


_corruption = st.tuples(
    st.sampled_from(["set", "insert", "delete", "offset"]), st.integers(0, 10**6), st.integers(0, 255)
)


@given(st.lists(atoms(max_leaves=6), min_size=1, max_size=4), st.lists(_corruption, min_size=1, max_size=3))
def test_validate_finds_the_first_corrupted_path(atom_list, corruptions):
    data, offsets = _batch(atom_list)
    raw = bytearray(data)
    for kind, where, value in corruptions:
        if kind == "offset":
            offsets[where % len(offsets)] += value - 128
        elif not raw:
            continue
        elif kind == "set":
            raw[where % len(raw)] = value
        elif kind == "insert":
            raw.insert(where % len(raw), value)
        else:
            del raw[where % len(raw)]
    data = bytes(raw)
    expected = model_validate(data, offsets)
    assert validate_paths(*_arrays(data, offsets)) == expected


@given(st.binary(max_size=30))
def test_validate_on_arbitrary_bytes_matches_the_model(data):
    assert validate_paths(*_arrays(data, [0, len(data)])) == model_validate(data, [0, len(data)])


def test_validate_rejects_what_the_encoder_never_writes():
    cases = [
        bytes([0x44, 0, 0, 0, 1, 0xC1, 0x61]),  # big arity used for a small one
        bytes([0x02, 0xC0, 0x46, 0, 0, 0, 0]),  # big reference used for a small one
        bytes([0x47]) + _u64(1),  # in-process handle
        bytes([0xC1, 0x80]),  # symbol name not UTF-8
    ]
    for path in cases:
        assert validate_paths(*_arrays(path, [0, len(path)])) == 0
    assert validate_paths(*_arrays(b"", [])) == 0
    assert validate_paths(*_arrays(b"", [0])) == -1
    assert validate_paths(*_arrays(bytes([0]), [0, 1, 5])) == 1
    assert validate_paths(*_arrays(bytes([0]), [-1, 1])) == 0


def test_kernels_accept_read_only_memmaps(tmp_path):
    data, offsets = _batch([E("a", "$x"), Grounded("s"), E()])
    file = tmp_path / "paths.bin"
    file.write_bytes(data)
    mapped = np.memmap(file, dtype=np.uint8, mode="r")
    assert validate_paths(mapped, np.array(offsets, np.int64)) == -1
    assert subterm_end(mapped, offsets[1], len(data)) == offsets[2]


@given(st.binary(max_size=20), st.integers(0, 20), st.integers(0, 25))
def test_first_invalid_utf8_matches_python(data, start, end):
    assume(start <= len(data))
    window = data[start:end]
    try:
        window.decode("utf-8")
        expected = -1
    except UnicodeDecodeError as err:
        expected = start + err.start
    assert first_invalid_utf8(np.frombuffer(data, np.uint8), start, end) == expected
