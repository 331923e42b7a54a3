"""Compiled evaluation: MeTTa functions run as generated Python code (tier 1) and, when they
are numeric and hot, as Numba-compiled code (tier 2).

The plain evaluator stays the reference. The tiers take over only what they can prove they do
the same way and hand anything else back; `MeTTa(compile=False)` or `--no-compile` turns them
off. This package depends on the evaluator's modules, never the other way round: the runner
plugs a `CompiledTier` into the evaluator.
"""

from metta_numba.interp.compiled.tier import CompiledTier

__all__ = ["CompiledTier"]
