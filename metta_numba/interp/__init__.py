"""The MeTTa interpreter: evaluation with hyperon's semantics, the standard library, and the
`MeTTa` runner."""

from metta_numba.interp.runner import MeTTa, ProgramResult

__all__ = ["MeTTa", "ProgramResult"]
