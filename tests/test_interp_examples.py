"""The example blocks E1-E13 of METTA_REFERENCE.md, run through `MeTTa.run_program`.

Expected lines are copied from the reference (hyperon 0.2.10's `metta FILE` output); they are
compared after replacing `#N` suffixes and space addresses, which vary between runs.
"""

import re

import pytest

from metta_numba import MeTTa
from metta_numba.syntax.printer import format_results


def normalise(line: str) -> str:
    line = re.sub(r"#\d+", "#N", line)
    return re.sub(r"0x[0-9a-f]+", "0xADDR", line)


def result_lines(program: str) -> tuple[list[str], bool, object]:
    outcome = MeTTa().run_program(program)
    return [normalise(format_results(r)) for r in outcome.results], outcome.stopped_on_error, outcome.parse_error


def test_e1_results_no_result_unit_unreduced_printing():
    lines, stopped, perr = result_lines(
        r"""
        !(+ 1 2)
        !(empty)
        !(nop)
        !(foo (+ 1 2) $v)
        !(id ("a\"b\n" 2.0 True ()))
        !(stringToChars "hi")
        """
    )
    assert lines == ["[3]", "[]", "[()]", "[(foo 3 $v)]", r'[("a\"b\n" 2.0 True ())]', "[('h' 'i')]"]
    assert not stopped and perr is None


def test_e2_numbers():
    lines, _, _ = result_lines(
        """
        !(/ -7 2)
        !(% -7 2)
        !(/ 7 2.0)
        !(* 1.0 1e16)
        !(/ 1 100000.0)
        !(/ -1.0 0)
        !(sqrt-math -1)
        !(pow-math 2 3)
        !(+ 9223372036854775807 1)
        """
    )
    assert lines == ["[-3]", "[-1]", "[3.5]", "[1e16]", "[1e-5]", "[-inf]", "[NaN]", "[8.0]", "[-9223372036854775808]"]


def test_e3_all_rules_fire_and_order_of_alternatives():
    lines, _, _ = result_lines(
        """
        (= (coin) heads)
        (= (coin) tails)
        !(coin)
        !(collapse (coin))
        !(superpose (1 (+ 1 1) 3))
        !(id (superpose (1 2 3)))
        !(id (id (superpose (1 2 3))))
        """
    )
    assert lines == ["[heads, tails]", "[(heads tails)]", "[1, 2, 3]", "[3, 2, 1]", "[1, 2, 3]"]


def test_e4_println_comes_before_results_and_trace_goes_to_stderr(capsys):
    lines, _, _ = result_lines(
        """
        !(println! "first")
        !(+ 1 1)
        !(trace! "to-stderr" 7)
        """
    )
    captured = capsys.readouterr()
    assert captured.out == "first\n"
    assert captured.err == '"to-stderr"\n'
    assert lines == ["[()]", "[2]", "[7]"]


def test_e5_typed_function_and_error_ends_run():
    lines, stopped, _ = result_lines(
        """
        (: dbl (-> Number Number))
        (= (dbl $x) (* 2 $x))
        !(dbl 4)
        !(dbl x)
        !(get-type (dbl 4))
        !(dbl 1 2)
        !(dbl 5)
        """
    )
    assert lines == ["[8]", "[(* 2 x)]", "[Number]", "[(Error (dbl 1 2) IncorrectNumberOfArguments)]"]
    assert stopped


def test_e6_bad_arg_type_and_bad_type():
    lines, stopped, _ = result_lines(
        """
        (: dbl (-> Number Number))
        (= (dbl $x) (* 2 $x))
        (: name (-> Number String))
        (= (name $n) $n)
        !(collapse (dbl "4"))
        !(collapse (name 1))
        !(dbl (dbl "4"))
        """
    )
    assert lines == [
        '[((Error (dbl "4") (BadArgType 1 Number String)))]',
        "[((Error 1 (BadType String Number)))]",
        '[(Error (dbl "4") (BadArgType 1 Number String))]',
    ]
    assert stopped


def test_e7_asserts():
    lines, stopped, _ = result_lines(
        """
        !(assertEqual (+ 1 1) 2)
        !(assertEqualToResult (superpose (b a b)) (a b b))
        !(assertEqualToResult (superpose (a b)) (a))
        !(+ 1 1)
        """
    )
    assert lines == [
        "[()]",
        "[()]",
        r'[(Error (assertEqualToResult (superpose (a b)) (a)) "\nExpected: [a]\nGot: [a, b]\nExcessive results: b")]',
    ]
    assert stopped


def test_e8_variables_keep_names_rule_variables_renamed():
    lines, _, _ = result_lines(
        """
        (= (mk $x) (pair $x $fresh))
        (= (f a) A)
        (= (f b) B)
        !(mk 1)
        !(f $q)
        !(let $r (f $q) ($q $r))
        """
    )
    assert lines == ["[(pair 1 $fresh#N)]", "[A, B]", "[(b B), (a A)]"]


def test_e9_bang_glued_to_a_token_is_a_symbol():
    lines, _, _ = result_lines(
        """
        !x
        ! x
        !(get-atoms &self)
        """
    )
    assert lines == ["[x]", "[!x]"]


def test_e10_states_print_their_final_value():
    lines, _, _ = result_lines(
        """
        !(bind! &c (new-state 1))
        !(get-state &c)
        ! &c
        !(change-state! &c 2)
        """
    )
    assert lines == ["[()]", "[1]", "[(State 2)]", "[(State 2)]"]


def test_e11_errors_beside_good_alternatives_are_dropped():
    lines, stopped, _ = result_lines(
        """
        (= (k) (Error k failed))
        (= (k) 3)
        !(k)
        !(collapse (k))
        !(case (/ 1 0) (((Error $a $m) (caught $m)) ($v $v)))
        !(/ 1 0)
        !(+ 1 1)
        """
    )
    assert lines == ["[3]", "[(3)]", "[(caught DivisionByZero)]", "[(Error (/ 1 0) DivisionByZero)]"]
    assert stopped


def test_e12_match_conjunction_template_evaluated():
    lines, _, _ = result_lines(
        """
        (edge a b)
        (edge b c)
        (edge c (+ 1 2))
        !(match &self (, (edge $x $y) (edge $y $z)) ($x $z))
        !(match &self (edge c $t) (quote $t))
        !(case (empty) ((Empty none)))
        !(switch (empty) ((Empty none)))
        """
    )
    assert lines == ["[(a c), (b 3)]", "[(quote (+ 1 2))]", "[none]", "[]"]


def test_e13_parse_error_after_queries_that_ran(capsys):
    lines, stopped, perr = result_lines(
        """!(println! "side effect")
!(+ 1 1)
!(+ 1
"""
    )
    assert capsys.readouterr().out == "side effect\n"
    assert perr is not None
    assert perr.line == 3
    assert lines == ["[()]", "[2]"]  # evaluated, but a CLI prints none of them


def test_run_raises_the_parse_error():
    with pytest.raises(Exception) as info:
        MeTTa().run("!(+ 1 2)\n(foo")
    assert "unclosed" in str(info.value)
