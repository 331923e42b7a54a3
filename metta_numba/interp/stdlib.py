"""The standard library as a whole: every grounded operation, and the space holding the
library's MeTTa-defined part (prelude.metta), built once per process and shared read-only."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from metta_numba.interp import stdlib_assert, stdlib_atoms, stdlib_doc, stdlib_math, stdlib_python, stdlib_space
from metta_numba.interp.core import canonical
from metta_numba.interp.grounded import Operation
from metta_numba.space import GroundingSpace
from metta_numba.syntax.parser import iter_program

_MODULES = (stdlib_math, stdlib_atoms, stdlib_space, stdlib_assert, stdlib_doc, stdlib_python)


@lru_cache(maxsize=1)
def _all_operations() -> tuple[tuple[str, Operation], ...]:
    ops: dict[str, Operation] = {}
    for module in _MODULES:
        ops.update(module.registry.ops)
    return tuple(ops.items())


def operations() -> dict[str, Operation]:
    """A fresh name -> operation table (a runner may add module operations to its copy)."""
    return dict(_all_operations())


@lru_cache(maxsize=1)
def stdlib_space() -> GroundingSpace:
    text = resources.files("metta_numba.interp").joinpath("prelude.metta").read_text(encoding="utf-8")
    space = GroundingSpace(name="stdlib")
    for item in iter_program(text, "prelude.metta"):
        space.add(canonical(item.atom))
    return space
