"""hyperon's Python API (0.2.x) over metta-numba's engine.

A hyperon script runs after changing its import, `from hyperon import *` to
`from metta_numba.hyperon import *`; docs/compatibility.md lists where the two differ.

    from metta_numba.hyperon import MeTTa, OperationAtom, E, S, V
    metta = MeTTa()
    metta.register_atom("halve", OperationAtom("halve", lambda x: x / 2, ["Number", "Number"]))
    metta.run("!(halve 5)")   # [[2.5]]
"""

from metta_numba.hyperon.atoms import (
    Atom,
    AtomKind,
    Atoms,
    AtomType,
    E,
    ExpressionAtom,
    G,
    GroundedAtom,
    GroundedObject,
    IncorrectArgumentError,
    MettaError,
    NoReduceError,
    OperationAtom,
    OperationObject,
    PrimitiveAtom,
    S,
    SymbolAtom,
    V,
    ValueAtom,
    ValueObject,
    VariableAtom,
    atoms_are_equivalent,
    get_string_value,
)
from metta_numba.hyperon.base import GroundingSpaceRef, SpaceRef, Tokenizer
from metta_numba.hyperon.bindings import Bindings, BindingsSet
from metta_numba.hyperon.ext import grounded, register_atoms, register_tokens
from metta_numba.hyperon.runner import MeTTa

__all__ = [
    "Atom", "AtomKind", "Atoms", "AtomType", "E", "ExpressionAtom", "G", "GroundedAtom", "GroundedObject",
    "IncorrectArgumentError", "MettaError", "NoReduceError", "OperationAtom", "OperationObject", "PrimitiveAtom",
    "S", "SymbolAtom", "ValueAtom", "ValueObject", "VariableAtom", "V", "atoms_are_equivalent", "get_string_value",
    "GroundingSpaceRef", "SpaceRef", "Tokenizer", "Bindings", "BindingsSet", "grounded", "register_atoms",
    "register_tokens", "MeTTa",
]  # fmt: skip
