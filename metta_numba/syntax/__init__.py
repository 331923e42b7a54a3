"""MeTTa surface syntax: the parser, the printer and the bulk (Numba) reader."""

from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import iter_program, parse_atom, parse_atoms, parse_program
from metta_numba.syntax.printer import format_atom, format_results

__all__ = [
    "ParseError",
    "format_atom",
    "format_results",
    "iter_program",
    "parse_atom",
    "parse_atoms",
    "parse_program",
]
