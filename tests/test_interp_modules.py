"""Modules and the built-in `fileio` and `json` modules, and the pragmas that change how a
program runs."""

import re

from metta_numba import MeTTa
from metta_numba.atoms import E, S, V
from metta_numba.interp.core import BindingsAtom


def printed(outcome) -> list[list[str]]:
    def norm(text: str) -> str:
        return re.sub(r"0x[0-9a-f]+", "0xADDR", re.sub(r"#\d+", "#N", text))

    return [[norm(repr(a)) for a in results] for results in outcome.results]


def write_tree(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_module_spaces_tokens_and_registered_directories(tmp_path, capsys):
    write_tree(
        tmp_path,
        {
            "lib/helper.metta": '(= (triple $x) (* 3 $x))\n(color red)\n!(println! "helper loaded")\n',
            "lib/sub/deep.metta": "(deep-fact 42)\n",
            "main.metta": """
                !(import! &self lib:helper)
                !(import! &self lib:helper)
                !(triple 4)
                !(import! &deep lib:sub:deep)
                !(match &deep (deep-fact $x) $x)
                !(match &self (deep-fact $x) $x)
                !(mod-space! lib:helper)
                !(module-space-no-deps (mod-space! lib:helper))
                !(match (mod-space! lib:helper) (color $c) $c)
                !(register-module! lib/sub)
                !(import! &reg sub:deep)
                !(match &reg (deep-fact $x) $x)
                !(import! &self nowhere)
            """,
        },
    )
    outcome = MeTTa().run_file(str(tmp_path / "main.metta"))
    assert printed(outcome) == [
        ["()"],
        ["()"],
        ["12"],
        ["()"],
        ["42"],
        [],
        ["ModuleSpace(GroundingSpace-top:lib:helper)"],
        ["GroundingSpace-top:lib:helper"],
        ["red"],
        ["()"],
        ["()"],
        ["42"],
        ["(Error (import! ModuleSpace(GroundingSpace-top) nowhere) Failed to resolve module top:nowhere)"],
    ]
    assert outcome.stopped_on_error
    assert capsys.readouterr().out == "helper loaded\n"


def test_include_yields_the_results_of_the_last_query(tmp_path):
    write_tree(tmp_path, {"q.metta": "(fact 1)\n!(superpose (a b))\n", "none.metta": "(fact 2)\n"})
    program = "!(include q)\n!(include none)\n!(match &self (fact $x) $x)\n"
    outcome = MeTTa(cwd=str(tmp_path)).run_program(program)
    assert printed(outcome) == [["a", "b"], [], ["1", "2"]]


def test_fileio(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("hello file\n")
    program = """
        !(import! &self fileio)
        !(let $h (file-open! "data.txt" "r") (file-read-to-string! $h))
        !(let $h (file-open! "data.txt" "r") (let $_ (file-seek! $h 6) (file-read-exact! $h 4)))
        !(let $h (file-open! "data.txt" "r") (file-get-size! $h))
        !(let $h (file-open! "out.txt" "wc") (file-write! $h "written"))
        !(get-type file-write!)
        !(file-open! "missing.txt" "r")
    """
    outcome = MeTTa().run_program(program)
    results = printed(outcome)
    assert results[:6] == [["()"], ['"hello file\\n"'], ['"file"'], ["11"], ["()"], ["(-> FileHandle String ())"]]
    assert results[6][0].startswith('(Error (file-open! "missing.txt" "r")')
    assert (tmp_path / "out.txt").read_text() == "written"


def test_json_round_trips():
    program = r"""
        !(import! &self json)
        !(json-encode (1 "two" 3.5 True (nested x) $v))
        !(json-decode "[1, 2.5, true, false, [2, []]]")
        !(json-decode "\"sym!:abc\"")
        !(json-decode "\"text\"")
        !(let $d (json-decode "{\"k\": 1, \"j\": 2}") (collapse (get-keys $d)))
        !(let $d (dict-space ((a 1) (b 2))) (get-value $d b))
        !(let $d (dict-space (("a" 1))) (json-encode $d))
        !(json-decode "[1,")
    """
    results = printed(MeTTa().run_program(program))
    assert results[1:8] == [
        ['"[1, \\"two\\", 3.5, true, [\\"sym!:nested\\", \\"sym!:x\\"], \\"var!:v\\"]"'],
        ["(1 2.5 True False (2 ()))"],
        ["abc"],
        ['"text"'],
        ['("j" "k")'],
        ["2"],
        ['"{\\"a\\":1}"'],
    ]
    assert results[8][0].startswith('(Error (json-decode "[1,") "invalid JSON')


def test_bare_minimal_interpreter_pragma():
    program = """
        (= (dbl $x) (* 2 $x))
        !(pragma! interpreter bare-minimal)
        !(+ 1 2)
        !(eval (+ 1 2))
        !(eval (dbl 2))
        !(chain (eval (dbl 2)) $x (eval (+ 1 $x)))
    """
    assert printed(MeTTa().run_program(program)) == [["()"], ["(+ 1 2)"], ["3"], ["(* 2 2)"], ["NotReducible"]]


def test_bindings_print_values_and_equal_variables():
    assert repr(BindingsAtom({})) == "{  }"
    assert repr(BindingsAtom({V("y"): S("b"), V("x"): S("a")})) == "{ $x <- a, $y <- b }"
    assert repr(BindingsAtom({V("y"): V("x")})) == "{ $x = $y }"
    assert repr(BindingsAtom({V("y"): V("x"), V("x"): E("f", 1)})) == "{ $x = $y <- (f 1) }"


def test_help_space_lists_documented_atoms(capsys):
    program = '!(bind! &d (new-space)) !(add-atom &d (@doc widget (@desc "A widget"))) !(help-space! &d)'
    MeTTa().run(program)
    assert capsys.readouterr().out == "widget\n\tA widget\n"
