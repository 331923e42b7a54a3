"""The compiled tier for nondeterministic functions and top-level queries (compiled/multi.py):
every answer, in order, is the plain evaluator's (`MeTTa(compile=False)` on the same program);
the tests also check that the compiled code really ran, or really handed back."""

from __future__ import annotations

import pytest

from metta_numba.interp.runner import MeTTa
from tests.test_compiled_differential import _normalised
from tests.test_compiled_tier import _run


def _same_both_ways(program: str, max_depth: int | None = None) -> MeTTa:
    plain, _ = _run(program, compile=False, max_depth=max_depth)
    compiled, runner = _run(program, compile=True, max_depth=max_depth)
    # Fresh variable suffixes come from a process-wide counter: numbered by first appearance.
    assert [[_normalised(a) for a in r] for r in compiled] == [[_normalised(a) for a in r] for r in plain]
    return runner


def _kinds(runner: MeTTa) -> dict:
    return {k: kind for ctx in runner.ev.tier._contexts.values() for k, kind in ctx.kinds.items()}


def _compiled_queries(runner: MeTTa) -> int:
    return sum(1 for ctx in runner.ev.tier._contexts.values() for fn in ctx.queries.values() if fn is not None)


DEFINITIONS = """
(= (two) (superpose (1 2)))
(= (spread $x) (superpose ($x (+ $x 10))))
(= (g $x) $x)
(= (g $x) (+ $x 100))
(= (g 0) zero)
(= (three) (superpose ((two) 3 (two))))
(= (r (pair $a $b)) one)
(= (r $x) two)
(= (r (pair 1 $b)) three)
(= (s "a") str)
(= (s $x) any)
"""

ORDER_CASES = [
    "!(if True (superpose (1 2 3)) 0)",
    "!(if (== (two) 1) (superpose (a b)) (superpose (c d)))",
    "!(superpose (1 (two) 3))",
    "!(let $x (two) $x)",
    "!(let $x (superpose (1 2)) (superpose ($x (+ $x 10))))",
    "!(pair (two) (superpose (a b)))",
    "!(+ (two) (superpose (10 20)))",
    "!(spread (two))",
    "!(g 1)",
    "!(g 0)",
    "!(g (two))",
    "!(collapse (g (two)))",
    "!(three)",
    "!(case (two) ((1 one) (2 two)))",
    "!(case (superpose (1 2 3)) ((1 (superpose (x y))) ($z z)))",
    "!(r (pair 1 2))",
    "!(r (pair 2 2))",
    "!(r 5)",
    '!(s "a")',
    "!(s a)",
    "!(superpose ((empty) 1 Empty (two)))",
    "!(let $l (collapse (three)) (superpose $l))",
]


@pytest.mark.parametrize("query", ORDER_CASES)
def test_results_come_in_the_plain_evaluators_order(query: str):
    _same_both_ways(DEFINITIONS + query)


def test_the_nondeterministic_functions_and_queries_are_compiled():
    runner = _same_both_ways(DEFINITIONS + "\n".join(ORDER_CASES))
    kinds = _kinds(runner)
    for key in [("two", 0), ("spread", 1), ("g", 1), ("three", 0), ("r", 1), ("s", 1)]:
        assert kinds[key] == "multi", key
    assert _compiled_queries(runner) >= 10
    assert runner.ev.tier.fallbacks == 0


BACKWARD = """
(parent a b)
(parent a c)
(parent b d)
(parent c e)
(parent c d)
(= (ancestor $x $y) (match &self (parent $x $y) True))
(= (ancestor $x $z) (match &self (parent $x $y) (ancestor $y $z)))
"""


def test_backward_chaining_over_facts():
    program = BACKWARD + "!(ancestor a d) !(ancestor a e) !(ancestor e a) !(collapse (ancestor a d))"
    runner = _same_both_ways(program + "!(match &self (parent $x $y) ($y $x))")
    assert _kinds(runner)[("ancestor", 2)] == "multi"


def test_facts_added_later_are_seen_without_recompiling():
    program = BACKWARD + "!(ancestor a f) !(add-atom &self (parent e f)) !(ancestor a f) !(ancestor a d)"
    runner = _same_both_ways(program)
    assert runner.ev.tier._current.compiled_count == 1


def test_a_new_rule_recompiles_the_function():
    program = DEFINITIONS + "!(g 1) !(add-atom &self (= (g 1) new)) !(g 1) !(remove-atom &self (= (g $x) $x)) !(g 1)"
    _same_both_ways(program)


def test_answers_with_variables_go_back_to_the_plain_evaluator():
    kids = "(= (kids $x) (match &self (parent $x $y) $y))\n"
    runner = _same_both_ways(BACKWARD + kids + "(parent e $any)\n!(kids a) !(kids e)")
    assert runner.ev.tier.fallbacks >= 1


def test_errors_and_bad_types_are_the_plain_evaluators():
    program = DEFINITIONS + (
        "(= (bad $x) (superpose ((/ 1 $x) 2)))\n"
        "!(bad 0) !(bad 2) !(+ (== 2 0) (empty)) !(+ (collapse (two)) (empty)) !(g a)"
        "!(case (empty) ((Empty none) ($x other)))"
    )
    runner = _same_both_ways(program)
    assert runner.ev.tier.fallbacks >= 1


def test_a_tuple_that_would_evaluate_further_is_handed_back():
    program = DEFINITIONS + "(= (twice $f) ($f 1))\n!(twice g) !(twice pair) !(let $h spread ($h 3))"
    _same_both_ways(program)


def test_numbers_of_both_kinds_stay_apart():
    _same_both_ways(DEFINITIONS + "!(let $x (g 2) $x) !(let $x (g 2.0) $x) !(superpose (2 2.0))")


def test_deep_recursion_ends_as_in_the_plain_evaluator():
    program = "(= (down $n) (if (< $n 0) (empty) (superpose ((down (- $n 1)) $n))))\n"
    _same_both_ways(program + "!(collapse (down 3)) !(down 10)")
    _same_both_ways(program + "!(down 100)", max_depth=50)


def test_redefined_words_are_not_taken_for_the_librarys():
    program = "(= (empty) something)\n(= (pick) (superpose ((empty) 1)))\n!(pick)"
    _same_both_ways(program)


FACT_ORDER = """
(e z 3)
(e a 1)
(e z 1)
(e a 2)
(e b 1)
(e a 1)
(= (from $x) (match &self (e $x $y) $y))
(= (to $y) (match &self (e $x $y) $x))
(= (both $x $y) (match &self (e $x $y) hit))
(= (all) (match &self (e $x $y) ($x $y)))
"""


def _indexed_sites(runner: MeTTa) -> int:
    count = 0
    for ctx in runner.ev.tier._contexts.values():
        for value in ctx.namespace.values():
            indexes = getattr(value, "indexes", None)
            if isinstance(indexes, dict):
                count += sum(1 for entry in indexes.values() if entry[1])
    return count


@pytest.mark.parametrize(
    "changes",
    [
        "",
        "!(remove-atom &self (e z 3)) !(add-atom &self (e z 3))",
        "!(add-atom &self (e 7 a)) !(add-atom &self (e a 7))",
        "!(add-atom &self (e a 2.0))",
        '!(add-atom &self (e a "s"))',
        "!(add-atom &self (e $v q))",
        "!(add-atom &self (e (f 1) q))",
    ],
)
def test_match_answers_from_the_fact_index_come_in_the_spaces_order(changes: str):
    queries = "!(from a) !(from z) !(to 1) !(both a 1) !(all) !(from a) !(to 1) !(both a 1) !(from 7) !(to a)"
    runner = _same_both_ways(FACT_ORDER + queries + changes + queries)
    if not changes:
        assert _indexed_sites(runner) >= 3


def test_many_distinct_queries_keep_a_bounded_cache(monkeypatch):
    from metta_numba.interp.compiled import tier

    monkeypatch.setattr(tier, "_MAX_QUERIES", 3)
    queries = " ".join(f"!(let $x (two) (+ $x {i}))" for i in range(8))
    runner = _same_both_ways(DEFINITIONS + queries + queries)
    ctx = runner.ev.tier._current
    assert 0 < len(ctx.queries) <= 3
    assert ctx.kinds[("two", 0)] == "multi"
