"""Atoms as byte paths (DESIGN.md section 3): tags, the term store, encode and decode."""

from metta_numba.codec.atom_codec import (
    CodecError,
    HandleTable,
    UnknownTerm,
    decode,
    decode_at,
    encode,
    encode_atoms,
)
from metta_numba.codec.terms import TermStore

__all__ = ["CodecError", "HandleTable", "TermStore", "UnknownTerm", "decode", "decode_at", "encode", "encode_atoms"]
