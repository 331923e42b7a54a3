"""Differential tests: random programs give the same output, order included, with the compiled
tiers on and off (the plain evaluator is the reference)."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metta_numba.interp.compiled import CompiledTier
from metta_numba.interp.runner import MeTTa
from metta_numba.syntax.printer import format_atom
from tests.compiled_programs import random_nondeterministic_program, random_program

_FRESH = re.compile(r"#\d+")


def _normalised(text: str) -> str:
    """Fresh variable suffixes numbered by first appearance (the counter is process-wide)."""
    seen: dict[str, str] = {}
    return _FRESH.sub(lambda m: seen.setdefault(m.group(), f"#{len(seen)}"), text)


def _outcome(program: str, compile: bool, promote_after: int | None = None) -> tuple:
    runner = MeTTa(compile=compile)
    if compile and promote_after is not None:
        runner.ev.tier = CompiledTier(runner.ev, dict(runner.ev.ops), promote_after=promote_after)
    runner.ev.max_depth = 2000  # keeps a runaway recursion short; both ways use the same limit
    limit = sys.getrecursionlimit()
    try:
        result = runner.run_program(program)
    except Exception as err:  # the same failure both ways is part of the contract
        return ("raised", type(err).__name__)
    finally:
        sys.setrecursionlimit(limit)
    lines = [[_normalised(format_atom(a)) for a in found] for found in result.results]
    return (lines, result.stopped_on_error, str(result.parse_error))


def _check(seed: int, promote_after: int | None = None, make=random_program) -> None:
    program = make(seed)
    plain = _outcome(program, compile=False)
    compiled = _outcome(program, compile=True, promote_after=promote_after)
    assert compiled == plain, program


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_random_programs_agree(seed: int) -> None:
    _check(seed)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(20))
def test_random_programs_agree_many(block: int) -> None:
    for seed in range(block * 100, block * 100 + 100):
        _check(seed)


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_agree_with_tier_two_at_once(seed: int) -> None:
    # Every qualifying function goes native on its first call.
    _check(seed, promote_after=1)


def test_the_tier_really_runs_in_these_programs() -> None:
    # Without this, a tier that refused everything would pass the differential test.
    compiled_calls = 0
    for seed in range(20):
        runner = MeTTa(compile=True)
        runner.run_program(random_program(seed))
        compiled_calls += sum(len(ctx.entries) for ctx in runner.ev.tier._contexts.values())
    assert compiled_calls > 20


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_random_nondeterministic_programs_agree(seed: int) -> None:
    _check(seed, make=random_nondeterministic_program)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(20))
def test_random_nondeterministic_programs_agree_many(block: int) -> None:
    for seed in range(block * 100, block * 100 + 100):
        _check(seed, make=random_nondeterministic_program)


def test_the_nondeterministic_tier_really_runs_in_these_programs() -> None:
    # Functions and queries compiled as nondeterministic, and run without handing back.
    functions = queries = 0
    for seed in range(20):
        runner = MeTTa(compile=True)
        runner.run_program(random_nondeterministic_program(seed))
        for ctx in runner.ev.tier._contexts.values():
            functions += sum(1 for kind in ctx.kinds.values() if kind == "multi")
            queries += sum(1 for fn in ctx.queries.values() if fn is not None)
    assert functions > 20
    assert queries > 20
