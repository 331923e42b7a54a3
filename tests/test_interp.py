"""The evaluator: minimal MeTTa instructions and the evaluation rules of METTA_REFERENCE.md §2.

Expected values come from the reference's rules; where the order of alternatives is checked,
it was worked out from hyperon's stack discipline (each `metta` level over an expression hands
on its alternatives reversed) and agrees with hyperon 0.2.6 on the same programs.
"""

import re

import pytest

from metta_numba import MeTTa


def run(program: str) -> list[list[str]]:
    return [[re.sub(r"#\d+", "#N", repr(a)) for a in results] for results in MeTTa().run(program)]


def last(program: str) -> list[str]:
    return run(program)[-1]


# -- minimal MeTTa ----------------------------------------------------------------------------------


def test_eval_does_one_step():
    assert last("(= (dbl $x) (* 2 $x)) !(eval (dbl 4))") == ["(* 2 4)"]
    assert last("(= a b) !(eval a)") == ["b"]
    assert last("!(eval (+ 1 2))") == ["3"]
    # No rule: the instruction's value is NotReducible, so the call stays as it is at top level.
    assert last("!(eval (undefined-thing 1))") == ["(eval (undefined-thing 1))"]
    assert last("!(chain (eval (undefined-thing 1)) $x (got $x))") == ["(got NotReducible)"]


def test_eval_with_wrong_shape_is_an_error():
    # (The collapse-bind tuple is evaluated further, and the Error inside it takes over.)
    assert last("!(collapse-bind (eval))") == ["(Error (eval) expected: (eval <atom>), found: (eval))"]
    # Called as a typed function, the arity is checked first.
    assert last("!(eval)") == ["(Error (eval) IncorrectNumberOfArguments)"]


def test_chain_binds_the_result_of_one_step():
    assert last("!(chain (+ 1 2) $x (foo $x))") == ["(foo 3)"]  # body evaluated after binding
    assert last("!(chain (eval (+ 1 2)) $x (quote $x))") == ["(quote 3)"]
    assert last("!(chain (+ 1 2) $x (quote $x))") == ["(quote (+ 1 2))"]


def test_unify_then_and_else():
    assert last("!(unify (a $x) (a 1) $x no)") == ["1"]
    assert last("!(unify (a $x) (b 1) $x no)") == ["no"]
    assert last("!(unify (f $x b) (f a $y) ($x $y) no)") == ["(a b)"]


def test_unify_against_a_space_matches_the_pattern():
    program = "(p 1) (p 2) !(unify &self (p $x) (got $x) none) !(unify &self (q $x) (got $x) none)"
    assert run(program) == [["(got 1)", "(got 2)"], ["none"]]


def test_cons_and_decons_atom():
    assert last("!(cons-atom a (b c))") == ["(a b c)"]
    assert last("!(decons-atom (a b c))") == ["(a (b c))"]
    assert last("!(decons-atom ())") == [
        "(Error (decons-atom ()) expected: (decons-atom (: <expr> Expression)), found: (decons-atom ()))"
    ]
    # The tail is an Expression parameter: it is not evaluated.
    assert last("!(cons-atom 1 (cdr-atom (1 2)))") == ["(1 cdr-atom (1 2))"]


def test_function_return():
    assert last("!(function (return 5))") == ["5"]
    assert last("(= (g) 1) (= (g) 2) !(function (chain (eval (g)) $x (return ($x $x))))") == ["(1 1)", "(2 2)"]
    assert last("!(function (unify a a (return yes) (return no)))") == ["yes"]


def test_function_without_return():
    # A bare instruction yields an unbound variable, the body of a call a NoReturn error.
    assert last("!(function (foo))") == ["$result#N"]
    assert last("(= (f) (function (foo))) !(f)") == ["(Error (f) NoReturn)"]


def test_collapse_bind_and_superpose_bind():
    assert last("!(collapse-bind (unify ($x 2) (1 $y) ($x $y) no))") == ["(((1 2) { $x <- 1, $y <- 2 }))"]
    assert last("!(superpose-bind (((a) { }) ((b) { })))") != []  # malformed pairs are an error, not a crash
    results = last("!(superpose-bind (collapse-bind (superpose (1 2))))")
    assert len(results) == 1 and results[0].startswith("(Error")


def test_metta_with_an_expected_type():
    assert last("!(metta (+ 1 2) Number &self)") == ["3"]
    assert last("!(metta (+ 1 2) String &self)") == ["(Error (+ 1 2) (BadType String Number))"]
    assert last("!(metta a Number &self)") == ["a"]
    assert last("!(metta (+ 1 2) Atom &self)") == ["(+ 1 2)"]


def test_context_space_is_self():
    assert last("!(context-space)") == ["ModuleSpace(GroundingSpace-top)"]


# -- rules --------------------------------------------------------------------------------------------


def test_all_matching_rules_fire_including_duplicates():
    assert last("(= (g 0) zero) (= (g $n) nonzero) !(g 0)") == ["zero", "nonzero"]
    assert last("(= (d) x) (= (d) x) !(d)") == ["x", "x"]


def test_unmatched_call_is_its_own_result_after_argument_evaluation():
    assert last("!(foo (+ 1 2) $v)") == ["(foo 3 $v)"]


def test_untyped_arguments_are_evaluated_before_rules():
    assert last("(= (g (+ 1 2)) raw) (= (g 3) value) !(g (+ 1 2))") == ["value"]


def test_symbols_are_never_rewritten():
    assert last("(= a b) ! a") == ["a"]


def test_not_reducible_body_leaves_the_call():
    assert last("(= (nr) NotReducible) !(nr)") == ["(nr)"]


def test_query_variables_bind_and_keep_names_rule_variables_renamed():
    assert last("(= (f a) A) (= (f b) B) !(f $q)") == ["A", "B"]
    assert last("(= (h $x $y) ($x $y)) !(h $y 1)") == ["($y 1)"]
    assert last("(= (mk $x) (pair $x $fresh)) !(mk 1)") == ["(pair 1 $fresh#N)"]


def test_bindings_flow_to_the_rest_of_the_expression():
    assert last("(= (f a) A) (= (f b) B) !(let $r (f $q) ($q $r))") == ["(b B)", "(a A)"]
    assert last("(= (color) red) (= (color) green) !(let $c (color) (paint $c))") == [
        "(paint green)",
        "(paint red)",
    ]


def test_recursion_through_rules():
    program = """
        (= (len ()) 0)
        (= (len ($h . $t)) (+ 1 (len $t)))
        !(len (a . (b . (c . ()))))
    """
    assert last(program) == ["3"]


def test_fib():
    program = "(= (fib $n) (if (< $n 2) $n (+ (fib (- $n 1)) (fib (- $n 2))))) !(fib 15)"
    assert last(program) == ["610"]


# -- types ----------------------------------------------------------------------------------------------

DBL = "(: dbl (-> Number Number)) (= (dbl $x) (* 2 $x)) "


def test_typed_call_checks_arity_and_argument_types():
    assert last(DBL + "!(dbl 1 2)") == ["(Error (dbl 1 2) IncorrectNumberOfArguments)"]
    assert last(DBL + '!(collapse (dbl "4"))') == ['((Error (dbl "4") (BadArgType 1 Number String)))']
    assert last(DBL + "!(dbl x)") == ["(* 2 x)"]  # an untyped symbol passes
    assert last(DBL + "!(dbl $v)") == ["(* 2 $v)"]


def test_atom_and_expression_parameters_are_not_evaluated():
    program = "(: q (-> Atom Expression Atom)) (= (q $a $e) ($a $e)) !(q (+ 1 2) (+ 3 4))"
    assert last(program) == ["((+ 1 2) (+ 3 4))"]
    assert last('(: e (-> Expression Atom)) (= (e $x) $x) !(collapse (e "s"))') == [
        '((Error (e "s") (BadArgType 1 Expression String)))'
    ]


def test_result_is_checked_against_the_return_type():
    program = "(: name (-> Number String)) (= (name $n) $n) !(collapse (name 1))"
    assert last(program) == ["((Error 1 (BadType String Number)))"]


def test_error_argument_turns_the_call_into_that_error():
    assert last(DBL + '!(dbl (dbl "4"))') == ['(Error (dbl "4") (BadArgType 1 Number String))']
    assert last("!(foo (/ 1 0) 2)") == ["(Error (/ 1 0) DivisionByZero)"]


def test_error_alternatives_are_dropped_beside_good_ones():
    assert last("(= (k) (Error k failed)) (= (k) 3) !(k)") == ["3"]
    assert last('!(superpose (1 (+ 1 "a")))') == ["1"]
    assert last('!(collapse (superpose ((+ 1 "a") (+ 2 "b"))))')[0].count("BadArgType") == 2


def test_no_result_argument_means_no_result():
    assert run("!(foo (empty))") == [[]]
    assert run("!(+ 1 (superpose ()))") == [[]]
    assert last("!(collapse (empty))") == ["()"]


def test_type_variables_unify_across_parameters():
    assert last('!(collapse (== 1 "1"))') == ['((Error (== 1 "1") (BadArgType 2 Number String)))']
    assert last("!(== a 1)") == ["False"]


def test_get_type():
    assert last(DBL + "!(get-type (dbl 4))") == ["Number"]
    assert run(DBL + '!(get-type (dbl "x"))')[-1] == []
    assert last('!(get-type (1 "a"))') == ["(Number String)"]
    assert last("!(get-type (a b))") == ["%Undefined%"]
    assert last("!(get-type +)") == ["(-> Number Number Number)"]
    assert last("(: x A) (:< A B) !(get-type x)") == ["A", "B"]


def test_every_function_type_of_an_overloaded_head_is_tried():
    program = "(: f (-> Number Number)) (: f (-> String String)) (= (f $x) $x) "
    assert run(program + '!(f 1) !(f "s")') == [["1"], ['"s"']]
    assert last(program + "!(collapse (f True))") == [
        "((Error (f True) (BadArgType 1 Number Bool)) (Error (f True) (BadArgType 1 String Bool)))"
    ]


def test_subtypes_are_accepted():
    program = "(: s Human) (:< Human Mortal) (: f (-> Mortal Bool)) (= (f $x) True) !(f s)"
    assert last(program) == ["True"]


# -- order of alternatives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ("!(superpose (1 2 3))", ["1", "2", "3"]),
        ("!(id (superpose (1 2 3)))", ["3", "2", "1"]),
        ("!(id (id (superpose (1 2 3))))", ["1", "2", "3"]),
        ("!(foo (superpose (1 2)) (superpose (a b)))", ["(foo 2 b)", "(foo 2 a)", "(foo 1 b)", "(foo 1 a)"]),
        ("!(+ (superpose (1 2)) (superpose (10 20)))", ["22", "12", "21", "11"]),
        ("!(let $x (superpose (1 2 3)) $x)", ["3", "2", "1"]),
        ("!(let* (($x (superpose (1 2))) ($y (superpose (a b)))) ($x $y))", ["(1 b)", "(1 a)", "(2 b)", "(2 a)"]),
        # superpose's elements are evaluated after it returns them (0.2.10; 0.2.6 differs)
        ("!(superpose ((superpose (1 2)) 3))", ["2", "1", "3"]),
        ("!(superpose (3 (superpose (1 2))))", ["3", "2", "1"]),
        ("!(collapse (superpose (1 (superpose (2 3)))))", ["(1 3 2)"]),
        ("!(case (superpose (1 2 3)) (($x $x)))", ["1", "2", "3"]),
        ("!(unique (superpose (a b a c)))", ["c", "b", "a"]),
        ("!(chain (eval (superpose (1 2 3))) $x $x)", ["1", "2", "3"]),
    ],
)
def test_order_of_alternatives(query, expected):
    assert last(query) == expected


# -- depth ----------------------------------------------------------------------------------------------


def test_runaway_recursion_is_an_error_not_a_crash():
    results = last("(= (loop $x) (+ 1 (loop $x))) !(pragma! max-stack-depth 50) !(loop 1)")
    assert len(results) == 1 and results[0].startswith("(Error") and results[0].endswith("StackOverflow)")


@pytest.mark.slow
def test_default_depth_limit_stops_infinite_recursion():
    results = last("(= (down) (down)) !(down)")
    assert results[0].endswith("StackOverflow)")


def test_depth_limit_set_through_the_api():
    runner = MeTTa()
    runner.ev.max_depth = 300
    results = [repr(a) for a in runner.run("(= (down $n) (down (+ $n 1))) !(down 0)")[-1]]
    assert len(results) == 1 and results[0].endswith("StackOverflow)")
    runner.ev.max_depth = 5000
    assert [repr(a) for a in runner.run("(= (count $n) (if (== $n 0) done (count (- $n 1)))) !(count 1000)")[-1]] == [
        "done"
    ]


def test_deep_but_finite_recursion_works():
    program = "(= (count $n) (if (== $n 0) done (count (- $n 1)))) !(count 3000)"
    assert last(program) == ["done"]


def test_running_a_program_again_reads_it_afresh_each_time():
    from metta_numba.syntax.errors import ParseError

    runner = MeTTa()
    program = "(counter 1) !(add-atom &self (counter 2)) !(match &self (counter $n) $n)"
    first = [sorted(str(a) for a in r) for r in runner.run(program)]
    second = [sorted(str(a) for a in r) for r in runner.run(program)]
    assert first == [["()"], ["1", "2"]]
    # The second run adds (counter 1) and (counter 2) again: each is held twice now.
    assert second == [["()"], ["1", "1", "2", "2"]]
    broken = "!(add-atom &self (seen)) !(match &self (seen) yes) (unclosed"
    for copies in (1, 2):
        with pytest.raises(ParseError):
            runner.run(broken)
        assert [str(a) for a in runner.run("!(match &self (seen) yes)")[0]] == ["yes"] * copies
