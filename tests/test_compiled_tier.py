"""The compiled tiers: what they take over, what they hand back, and when they recompile.

Every answer is checked against the plain evaluator (`MeTTa(compile=False)`) on the same
program, never against a value copied from our own output."""

from __future__ import annotations

import sys

import pytest

from metta_numba.interp.compiled import CompiledTier
from metta_numba.interp.compiled.codegen import Compiler, Refused
from metta_numba.interp.compiled.tier import World
from metta_numba.interp.runner import MeTTa
from metta_numba.syntax.printer import format_atom

FIB = "(= (fib $n) (if (< $n 2) $n (+ (fib (- $n 1)) (fib (- $n 2)))))\n"


def _run(program: str, compile: bool, promote_after: int | None = None, max_depth: int | None = None):
    runner = MeTTa(compile=compile)
    if compile and promote_after is not None:
        runner.ev.tier = CompiledTier(runner.ev, dict(runner.ev.ops), promote_after=promote_after)
    if max_depth is not None:
        runner.ev.max_depth = max_depth
    limit = sys.getrecursionlimit()
    try:
        results = runner.run(program)
    finally:
        sys.setrecursionlimit(limit)
    return [[format_atom(a) for a in r] for r in results], runner


def _same_both_ways(program: str, **options) -> MeTTa:
    plain, _ = _run(program, compile=False, max_depth=options.get("max_depth"))
    compiled, runner = _run(program, compile=True, **options)
    assert compiled == plain
    return runner


def _entries(runner: MeTTa) -> dict:
    return {k: fn for ctx in runner.ev.tier._contexts.values() for k, fn in ctx.entries.items()}


def test_fib_is_compiled_and_agrees():
    runner = _same_both_ways(FIB + "!(fib 15) !(fib 0) !(fib -3) !(fib 2.5)")
    assert _entries(runner)[("fib", 1)] is not None


def test_fib_of_a_fibonacci_identity():
    # fib(n) = fib(n-1) + fib(n-2) on the compiled side alone, far past what the plain side runs.
    results, _ = _run(FIB + "!(fib 24) !(fib 23) !(fib 25)", compile=True)
    assert int(results[2][0]) == int(results[0][0]) + int(results[1][0])


def test_wrong_arguments_go_back_to_the_plain_evaluator():
    runner = _same_both_ways(FIB + '!(fib a) !(fib "s") !(fib (cons 1 nil)) !(fib $x) !(+ 1 (fib True))')
    assert runner.ev.tier.fallbacks >= 1


def test_errors_inside_compiled_code_are_the_plain_evaluators():
    program = "(= (inv $n) (/ 10 $n))\n(= (chain $n) (+ 1 (inv $n)))\n!(chain 5) !(chain 0)"
    _same_both_ways(program)


def test_int64_wraps_as_in_the_plain_evaluator():
    program = "(= (big $n) (* $n 4611686018427387904))\n(= (up $n) (+ $n 9223372036854775807))\n"
    _same_both_ways(program + "!(big 3) !(big -5) !(up 1) !(up 1.0)")


def test_overlapping_heads_are_compiled_as_nondeterministic():
    runner = _same_both_ways("(= (h 0) zero)\n(= (h $x) any)\n!(h 0) !(h 1)")
    assert _entries(runner).get(("h", 1)) is not None
    assert runner.ev.tier._current.kinds[("h", 1)] == "multi"


def test_int_and_float_literal_heads_stay_apart_only_through_the_plain_path():
    _same_both_ways("(= (k 1) one)\n(= (k 2) two)\n!(k 1) !(k 1.0) !(k 2) !(k 3)")


def test_data_functions_and_unreduced_calls():
    program = (
        "(= (len nil) 0)\n(= (len (cons $h $t)) (+ 1 (len $t)))\n"
        "(= (app nil $y) $y)\n(= (app (cons $h $t) $y) (cons $h (app $t $y)))\n"
        "!(len (app (cons a (cons b nil)) (cons c nil))) !(len foo) !(app (cons 1 nil) nil)"
    )
    runner = _same_both_ways(program)
    assert _entries(runner)[("len", 1)] is not None


def test_adding_a_rule_recompiles_that_function_only():
    program = FIB + "(= (sq $x) (* $x $x))\n!(fib 10) !(sq 4)\n"
    _, runner = _run(program, compile=True)
    before = _entries(runner)
    runner.run("(memo 5 8)\n(= (other) 1)\n!(fib 11)")
    after = _entries(runner)
    assert after[("fib", 1)] is before[("fib", 1)]  # facts and other heads change nothing
    runner.run("(= (sq 4) 99)\n")
    results = runner.run("!(sq 4) !(sq 3) !(fib 5)")
    plain, _ = _run(program + "(memo 5 8)\n(= (other) 1)\n(= (sq 4) 99)\n!(sq 4) !(sq 3) !(fib 5)", compile=False)
    assert [[format_atom(a) for a in r] for r in results] == plain[-3:]
    assert _entries(runner).get(("fib", 1)) is before[("fib", 1)]


def test_removing_a_rule_mid_run():
    _same_both_ways("(= (c 1) red)\n(= (c 2) green)\n!(c 1) !(remove-atom &self (= (c 1) red)) !(c 1) !(c 2)")


def test_a_number_typed_function_is_compiled_with_its_checks():
    program = (
        "(: dbl (-> Number Number))\n(= (dbl $x) (* $x 2))\n"
        "(: bad (-> Number Number))\n(= (bad $x) (< $x 2))\n"
        "(: part (-> Number Number))\n(= (part 1) 10)\n"
        "!(dbl 4) !(dbl 2.5) !(dbl a) !(+ 1 (dbl 3)) !(bad 1) !(part 1) !(part 2) !(dbl (part 2))"
    )
    runner = _same_both_ways(program)
    assert _entries(runner)[("dbl", 1)] is not None


def test_other_typed_functions_are_left_to_the_plain_evaluator():
    runner = _same_both_ways("(: tag (-> Symbol Symbol))\n(= (tag $x) $x)\n!(tag a) !(tag 1)")
    assert _entries(runner).get(("tag", 1)) is None


def test_let_locals_and_shared_let_variables():
    program = (
        "(= (f $n) (let $m (+ $n 1) (* $m $m)))\n"
        "(= (g $n) (- (let $k (% $n 2) $k) (let $k 1 5)))\n"  # one $k for both lets: no result
        "!(f 3) !(g 4) !(g 3)"
    )
    runner = _same_both_ways(program)
    assert _entries(runner)[("f", 1)] is not None
    assert _entries(runner).get(("g", 1)) is None


def test_deep_recursion_keeps_the_plain_stack_overflow():
    program = "(= (down $n) (if (== $n 0) 0 (+ 1 (down (- $n 1)))))\n!(down 50) !(down 400)"
    _same_both_ways(program, max_depth=300)


def test_redefined_operations_are_not_compiled_over():
    _same_both_ways("(: + (-> Number Number Number))\n(= (p $x) (+ $x 1))\n!(p 1)")


def test_planner_refuses_calls_to_nondeterministic_functions():
    runner = MeTTa()
    runner.run("(= (pick) 1)\n(= (pick) 2)\n(= (user $x) (+ $x (pick)))")
    with pytest.raises(Refused):
        Compiler(World(runner.ev, dict(runner.ev.ops))).plan("user", 1, set())


@pytest.mark.parametrize(
    "program",
    [
        FIB + "!(fib 12) !(fib 1) !(fib 2.0)",
        "(= (even $n) (if (== $n 0) True (not (even (- $n 1)))))\n!(even 10) !(even 7)",
        "(= (m $a $b) (if (> $a 0) (m (- $a 1) (* $b 3)) $b))\n!(m 45 1) !(m 3 2)",
        "(= (down $n) (if (== $n 0) 0 (+ 1 (down (- $n 1)))))\n!(down 12000)",
    ],
)
def test_tier_two_agrees_with_the_plain_evaluator(program):
    runner = _same_both_ways(program, promote_after=1)
    assert runner.ev.tier._contexts and any(ctx.promoted for ctx in runner.ev.tier._contexts.values())
