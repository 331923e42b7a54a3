"""metta_numba.hyperon, the hyperon-style Python API, without hyperon installed: expected
values follow from MeTTa's semantics (typed calls, errors, queries), not from a previous run."""

from __future__ import annotations

import textwrap

import pytest

from metta_numba.hyperon import (
    AtomKind,
    Atoms,
    AtomType,
    Bindings,
    BindingsSet,
    E,
    ExpressionAtom,
    G,
    GroundedAtom,
    GroundingSpaceRef,
    MeTTa,
    MettaError,
    NoReduceError,
    OperationAtom,
    S,
    SymbolAtom,
    V,
    ValueAtom,
    VariableAtom,
    atoms_are_equivalent,
    grounded,
)


def _printed(results) -> list:
    return [[repr(a) for a in r] for r in results]


@pytest.fixture
def metta():
    return MeTTa()


def test_run_gives_one_list_per_bang_or_one_flat_list(metta):
    assert _printed(metta.run("!(+ 1 2) (f) !(superpose (a b))")) == [["3"], ["a", "b"]]
    assert [repr(a) for a in metta.run("!(+ 1 2) !(* 2 3)", flat=True)] == ["3", "6"]


def test_parse_gives_atoms_of_each_kind(metta):
    atoms = metta.parse_all('(a $b) $c 1 "s" sym')
    assert [type(a) for a in atoms] == [ExpressionAtom, VariableAtom, GroundedAtom, GroundedAtom, SymbolAtom]
    assert [a.get_metatype() for a in atoms] == [
        AtomKind.EXPR, AtomKind.VARIABLE, AtomKind.GROUNDED, AtomKind.GROUNDED, AtomKind.SYMBOL
    ]
    assert atoms[0] == E(S("a"), V("b"))
    assert atoms[1].get_name() == "c" and atoms[4].get_name() == "sym"
    assert atoms[2].get_object().value == 1 and atoms[3].get_object().value == "s"
    assert metta.parse_single("(x y)") == E(S("x"), S("y"))
    with pytest.raises(RuntimeError):
        metta.parse_all("(unclosed")


def test_values_have_metta_types():
    assert ValueAtom(2).get_grounded_type() == AtomType.NUMBER
    assert ValueAtom(2.5).get_grounded_type() == AtomType.NUMBER
    assert ValueAtom("x").get_grounded_type() == AtomType.STRING
    assert ValueAtom(True).get_grounded_type() == AtomType.BOOL
    assert ValueAtom([1, 2]).get_grounded_type() == AtomType.UNDEFINED
    assert ValueAtom([1, 2], "Vector").get_grounded_type() == S("Vector")
    assert ValueAtom(2) == MeTTa().parse_single("2")
    assert ValueAtom([1, 2]) == ValueAtom([1, 2]) and ValueAtom([1, 2]) != ValueAtom([2, 1])


def test_typed_operation_checks_arguments_and_declares_its_type(metta):
    metta.register_atom("mul", OperationAtom("mul", lambda a, b: a * b, ["Number", "Number", "Number"]))
    assert _printed(metta.run("!(mul 6 7)")) == [["42"]]
    assert _printed(metta.run('!(mul 6 "x")')) == [['(Error (mul 6 "x") (BadArgType 2 Number String))']]
    assert _printed(metta.run("!(mul 1 2 3)")) == [["(Error (mul 1 2 3) IncorrectNumberOfArguments)"]]
    assert _printed(metta.run("!(get-type mul)")) == [["(-> Number Number Number)"]]
    # arguments are evaluated before the call, as for any function whose parameters are not Atom
    assert _printed(metta.run("!(mul (+ 1 1) (mul 2 5))")) == [["20"]]


def test_untyped_operation_leaves_a_call_on_symbols_unreduced(metta):
    metta.register_atom("join", OperationAtom("join", lambda a, b: a + b))
    assert _printed(metta.run('!(join "a" "b") !(join a b)')) == [['"ab"'], ["(join a b)"]]


def test_python_exception_becomes_an_error_atom(metta):
    metta.register_atom("div", OperationAtom("div", lambda a, b: a / b))
    [[err]] = metta.run("!(div 1 0)")
    head, call, reason = err.get_children()
    assert head == S("Error") and call == metta.parse_single("(div 1 0)")
    assert "ZeroDivisionError: division by zero" in repr(reason)


def test_metta_error_and_no_reduce_error(metta):
    def check(x):
        if x < 0:
            raise MettaError(ValueAtom("negative"), S("input"))
        if x == 0:
            raise NoReduceError()
        return x

    metta.register_atom("check", OperationAtom("check", check))
    [[err]] = metta.run("!(check -1)")
    assert err == E(S("Error"), ValueAtom("negative"), S("input"))
    assert _printed(metta.run("!(check 0) !(check 5)")) == [["(check 0)"], ["5"]]


def test_unwrap_false_passes_atoms_and_returns_a_list(metta):
    seen = []

    def swap(pair):
        seen.append(type(pair))
        a, b = pair.get_children()
        return [E(b, a)]

    metta.register_atom("swap", OperationAtom("swap", swap, ["Expression", "Expression"], unwrap=False))
    metta.register_atom("bad", OperationAtom("bad", lambda: 5, unwrap=False))
    assert _printed(metta.run("!(swap (x (f $y)))")) == [["((f $y) x)"]]
    assert seen == [ExpressionAtom]
    [[err]] = metta.run("!(bad)")
    assert "should return list" in repr(err)


def test_none_is_unit_and_a_returned_function_is_an_operation(metta):
    metta.register_atom("noop", OperationAtom("noop", lambda: None))
    metta.register_atom("adder", OperationAtom("adder", lambda n: (lambda x: x + n)))
    assert _printed(metta.run("!(noop)")) == [["()"]]
    assert metta.run("!(noop)")[0][0] == Atoms.UNIT
    assert _printed(metta.run("!((adder 2) 5)")) == [["7"]]


def test_keyword_arguments(metta):
    metta.register_atom("fmt", OperationAtom("fmt", lambda a, b, sep=" ": f"{a}{sep}{b}"))
    assert _printed(metta.run('!(fmt "a" "b" (Kwargs (sep "-")))')) == [['"a-b"']]


def test_tokens_by_regex_and_by_name(metta):
    metta.register_token(r"\d+%", lambda t: ValueAtom(int(t[:-1]) / 100))
    metta.register_atom("half", ValueAtom(0.5))
    assert _printed(metta.run("!(+ 25% half)")) == [["0.75"]]
    # the latest registration wins
    metta.register_token(r"\d+%", lambda t: S("percent"))
    assert _printed(metta.run("!(id 10%)")) == [["percent"]]


def test_space_from_python(metta):
    space = metta.space()
    space.add_atom(E(S("likes"), S("ann"), S("tea")))
    space.add_atom(E(S("likes"), S("bob"), S("tea")))
    space.add_atom(E(S("likes"), S("ann"), S("jam")))
    found = space.query(E(S("likes"), V("who"), S("tea")))
    assert sorted(found[i]["who"].get_name() for i in range(len(found))) == ["ann", "bob"]
    assert space.query(E(S("likes"), S("ann"), S("tea"))).is_single()
    assert space.query(E(S("likes"), S("cat"), V("x"))).is_empty()
    assert sorted(map(repr, space.subst(E(S("likes"), S("ann"), V("x")), E(S("ann-likes"), V("x"))))) == [
        "(ann-likes jam)", "(ann-likes tea)"
    ]
    assert space.remove_atom(E(S("likes"), S("bob"), S("tea"))) is True
    assert space.remove_atom(E(S("likes"), S("bob"), S("tea"))) is False
    assert space.atom_count() == 2
    assert _printed(metta.run("!(match &self (likes ann $x) $x)")) in ([["tea", "jam"]], [["jam", "tea"]])


def test_space_given_to_the_runner_and_as_an_atom():
    space = GroundingSpaceRef()
    space.add_atom(E(S("colour"), S("sky"), S("blue")))
    metta = MeTTa(space=space)
    assert _printed(metta.run("!(match &self (colour sky $c) $c)")) == [["blue"]]
    other = GroundingSpaceRef()
    other.add_atom(E(S("n"), ValueAtom(1)))
    metta.register_atom("&other", G(other))
    assert _printed(metta.run("!(match &other (n $x) $x)")) == [["1"]]
    assert metta.parse_single("&other").get_object() == other


def test_evaluate_atom_and_equivalence(metta):
    metta.run("(= (double $x) (* 2 $x))")
    assert [repr(a) for a in metta.evaluate_atom(metta.parse_single("(double 21)"))] == ["42"]
    assert atoms_are_equivalent(E(S("f"), V("a"), V("a")), E(S("f"), V("b"), V("b")))
    assert not atoms_are_equivalent(E(S("f"), V("a"), V("a")), E(S("f"), V("b"), V("c")))


def test_bindings():
    b = Bindings()
    assert b.is_empty()
    assert b.add_var_binding(V("x"), S("a"))
    assert not b.add_var_binding(V("x"), S("b"))
    assert b.resolve(V("x")) == S("a") and b.resolve(V("y")) is None
    pairs = BindingsSet(b)
    assert not pairs.is_single() and not pairs.is_empty()
    assert BindingsSet().is_single() and BindingsSet.empty().is_empty()
    matched = E(S("p"), V("x"), S("b")).match_atom(E(S("p"), S("a"), V("y")))
    assert matched[0] == {"x": S("a"), "y": S("b")}


def test_grounded_decorator(metta):
    @grounded(metta)
    def triple(x):
        return 3 * x

    assert _printed(metta.run("!(triple 4)")) == [["12"]]


MODULE = '''
from metta_numba.hyperon import OperationAtom, ValueAtom, E, S
from metta_numba.hyperon.ext import register_atoms, register_tokens

calls = []


@register_atoms
def ops():
    calls.append(1)
    return {"inc": OperationAtom("inc", lambda x: x + 1, ["Number", "Number"]), "base": ValueAtom(10)}


@register_tokens
def tokens():
    return {r"v\\d+": lambda t: E(S("version"), ValueAtom(int(t[1:])))}
'''


def test_import_python_module_from_a_program(tmp_path):
    (tmp_path / "incops.py").write_text(MODULE)
    (tmp_path / "main.metta").write_text(
        textwrap.dedent(
            """
            !(import! &self incops)
            !(inc base)
            !(id v3)
            !(inc "x")
            """
        )
    )
    from metta_numba import MeTTa as Engine

    outcome = Engine(cwd=str(tmp_path)).run_file(str(tmp_path / "main.metta"))
    assert [[repr(a) for a in r] for r in outcome.results] == [
        ["()"], ["11"], ["(version 3)"], ['(Error (inc "x") (BadArgType 1 Number String))']
    ]


def test_module_at_path_then_import(tmp_path):
    (tmp_path / "some_file.py").write_text(MODULE)
    metta = MeTTa()
    name = metta.load_module_at_path(str(tmp_path / "some_file.py"), "incmod")
    assert name == "incmod"
    assert _printed(metta.run("!(import! &self incmod) !(inc 1)")) == [["()"], ["2"]]
    with pytest.raises(RuntimeError):
        metta.load_module_at_path(str(tmp_path / "absent.py"))


def test_a_metta_file_wins_over_a_python_file_of_the_same_name(tmp_path):
    (tmp_path / "both.py").write_text(MODULE)
    (tmp_path / "both.metta").write_text("(= (inc $x) (from-metta $x))\n")
    from metta_numba import MeTTa as Engine

    runner = Engine(cwd=str(tmp_path))
    assert [[repr(a) for a in r] for r in runner.run("!(import! &self both) !(inc 1)")] == [["()"], ["(from-metta 1)"]]


def test_module_failing_to_load_is_an_error(tmp_path):
    (tmp_path / "broken.py").write_text("raise ValueError('nope')\n")
    from metta_numba import MeTTa as Engine

    [[err]] = Engine(cwd=str(tmp_path)).run("!(import! &self broken)")
    assert "ValueError: nope" in repr(err) and repr(err).startswith("(Error")


def test_module_decorated_by_another_api_is_refused(tmp_path):
    (tmp_path / "foreign.py").write_text(
        "import enum\n"
        "class RegisterType(enum.Enum):\n    ATOM = 1\n"
        "def ops():\n    return {}\n"
        "ops.metta_type = RegisterType.ATOM\nops.metta_pass_metta = False\n"
    )
    from metta_numba import MeTTa as Engine

    [[err]] = Engine(cwd=str(tmp_path)).run("!(import! &self foreign)")
    assert "metta_numba.hyperon" in repr(err)


def test_readme_example_gives_the_results_written_next_to_it():
    """Each expression statement of README's hyperon-API example that has a `# result` comment
    evaluates to that result."""
    import ast
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text().split("### hyperon's Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    lines = code.splitlines()
    namespace: dict = {}
    checked = 0
    for statement in ast.parse(code).body:
        source = ast.get_source_segment(code, statement)
        comment = lines[statement.end_lineno - 1].partition("# ")[2].strip()
        if isinstance(statement, ast.Expr) and comment:
            assert repr(eval(source, namespace)) == comment, source
            checked += 1
        else:
            exec(source, namespace)
    assert checked == 3


def test_operation_object_runs_outside_an_interpreter_and_as_an_atom(metta):
    from metta_numba.hyperon import OperationObject

    plus = OperationObject("plus", lambda a, b: a + b)
    assert plus.execute(ValueAtom(1), ValueAtom(2)) == [ValueAtom(3)]
    with pytest.raises(NoReduceError):
        plus.execute(S("a"), ValueAtom(2))
    metta.register_atom("plus", G(plus, AtomType.UNDEFINED))
    assert _printed(metta.run("!(plus 4 5)")) == [["9"]]
    assert metta.parse_single("plus").get_object() == plus
