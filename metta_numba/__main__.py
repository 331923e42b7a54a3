"""`python -m metta_numba` is the `metta-numba` command."""

from metta_numba.cli import entry

entry()
