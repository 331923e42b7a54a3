"""`metta-numba query`: conjunctions, streamed text/json/jsonl answers, --limit, --count,
--patterns, the usage errors, and the same answers on a sharded KB."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from itertools import product
from pathlib import Path

import pytest

from metta_numba.cli import main

EDGES = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "c"), ("a", "b"), ("c", "d"), ("d", "c"), ("b", "a")]
OTHER = '(= (f $x) (g $x))\n(foo $v)\n(label a "one")\n(edge $s z)\n'


def _edge_copies(x: str, y: str) -> int:
    """How many stored atoms unify with (edge x y): the listed edges, and (edge $s z)."""
    return Counter(EDGES)[(x, y)] + (y == "z")


def _triangles() -> int:
    """Answers of the triangle conjunction, by brute force over every node and z."""
    nodes = sorted({n for e in EDGES for n in e} | {"z"})
    return sum(_edge_copies(x, y) * _edge_copies(y, z) * _edge_copies(z, x) for x, y, z in product(nodes, repeat=3))


@pytest.fixture(scope="module")
def kbs(tmp_path_factory) -> tuple[Path, Path]:
    """(plain KB, the same atoms in 2 shards)."""
    folder = tmp_path_factory.mktemp("querycli")
    source = folder / "kb.metta"
    source.write_text("".join(f"(edge {s} {t})\n" for s, t in EDGES) + OTHER)
    plain, sharded = folder / "plain.kb", folder / "sharded.kb"
    assert main(["snapshot", "build", str(source), "-o", str(plain)]) == 0
    assert main(["snapshot", "build", str(source), "-o", str(sharded), "--shards", "2"]) == 0
    return plain, sharded


@pytest.fixture
def query(capsys):
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["query", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_text_answers_print_stored_variables_by_their_names(kbs, query):
    plain, _ = kbs
    code, out, _ = query(str(plain), "(edge a $y)", "$y")
    assert code == 0 and sorted(out.split()) == ["b", "b", "c", "z"]
    code, out, _ = query(str(plain), "(= $a $b)")
    assert out == "(= (f $x) (g $x))\n"
    # The stored $x is renamed apart while unifying; shown, it takes its stored name unless
    # the answer already shows a variable of that name (here the query's own free $x).
    code, out, _ = query(str(plain), "(, (= $a $b) (foo $x))", "($a $x)")
    assert out == "((f $x2) $x)\n"


def test_jsonl_is_one_parsable_object_per_answer(kbs, query):
    plain, _ = kbs
    code, out, _ = query(str(plain), "(edge a $y)", "(to $y)", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 4
    assert sorted(r["bindings"]["$y"] for r in records) == ["b", "b", "c", "z"]
    assert all(r["result"] == f"(to {r['bindings']['$y']})" for r in records)
    # A variable the answer leaves free is null; its text line shows the variable itself.
    code, out, _ = query(str(plain), "(foo $w)", "--format", "jsonl")
    assert [json.loads(line) for line in out.splitlines()] == [{"bindings": {"$w": None}, "result": "(foo $w)"}]
    code, out, _ = query(str(plain), "(label $n $s)", "--format", "jsonl")
    assert json.loads(out)["bindings"] == {"$n": "a", "$s": '"one"'}


def test_json_is_an_array_of_the_jsonl_records(kbs, query):
    plain, _ = kbs
    _, lines, _ = query(str(plain), "(edge $x $y)", "--format", "jsonl")
    _, array, _ = query(str(plain), "(edge $x $y)", "--format", "json")
    assert json.loads(array) == [json.loads(line) for line in lines.splitlines()]
    _, empty, _ = query(str(plain), "(label nowhere $y)", "--format", "json")
    assert json.loads(empty) == []


def test_conjunction_answers_and_count(kbs, query):
    plain, _ = kbs
    triangle = "(, (edge $a $b) (edge $b $c) (edge $c $a))"
    code, out, _ = query(str(plain), triangle, "($a $b $c)")
    rows = out.splitlines()
    assert code == 0 and len(rows) == _triangles()
    for row in rows:
        x, y, z = row.strip("()").split()
        assert _edge_copies(x, y) and _edge_copies(y, z) and _edge_copies(z, x)
    assert query(str(plain), triangle, "--count")[1] == f"{_triangles()}\n"
    assert json.loads(query(str(plain), triangle, "--count", "--format", "jsonl")[1]) == {"count": _triangles()}
    _, out, _ = query(str(plain), triangle, "--limit", "2")
    assert len(out.splitlines()) == 2


def test_limit_and_count(kbs, query):
    plain, _ = kbs
    everything = query(str(plain), "(edge $x $y)")[1].splitlines()
    assert len(everything) == len(EDGES) + 1  # and the stored (edge $s z)
    for limit in (0, 1, 3, 100):
        code, out, _ = query(str(plain), "(edge $x $y)", "--limit", str(limit))
        assert code == 0 and out.splitlines() == everything[:limit]
    assert query(str(plain), "(edge $x $y)", "--count")[1] == f"{len(everything)}\n"
    assert query(str(plain), "(edge a b)", "--count")[1] == "2\n"
    assert query(str(plain), "(edge $x $x)", "--count")[1] == "1\n"  # only (edge $s z) unifies


@pytest.mark.parametrize(
    "args, message",
    [
        (["(edge $x $y)", "--count", "--limit", "3"], "--count"),
        (["(edge $x $y)", "$x", "--count"], "TEMPLATE"),
        (["(edge $x $y)", "--patterns", "p.metta"], "not both"),
        ([], "PATTERN"),
        (["(edge $x"], "<pattern>:1:1"),
        (["--patterns", "no-such-file.metta"], "no-such-file.metta"),
    ],
)
def test_bad_usage_exits_2(kbs, query, args, message):
    plain, _ = kbs
    code, out, err = query(str(plain), *args)
    assert code == 2 and message in err and out == ""


def test_patterns_file_answers_per_pattern_in_file_order(kbs, query, tmp_path):
    plain, _ = kbs
    patterns = tmp_path / "p.metta"
    patterns.write_text("(edge a b)\n(edge zz zz)\n(edge $x d) ; a comment\n(= (f 1) $r)\n(edge q z)\n")
    code, out, _ = query(str(plain), "--patterns", str(patterns))
    assert code == 0
    assert out.splitlines() == ["[(edge a b), (edge a b)]", "[]", "[(edge c d)]", "[(= (f 1) (g 1))]", "[(edge q z)]"]
    _, out, _ = query(str(plain), "--patterns", str(patterns), "--count")
    assert out.split() == ["2", "0", "1", "1", "1"]
    _, out, _ = query(str(plain), "--patterns", str(patterns), "--format", "jsonl", "--limit", "1")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["pattern"] for r in records][:3] == ["(edge a b)", "(edge zz zz)", "(edge $x d)"]
    assert [r["answers"] for r in records][:4] == [[{}], [], [{"$x": "c"}], [{"$r": "(g 1)"}]]
    _, out, _ = query(str(plain), "--patterns", str(patterns), "--count", "--format", "json")
    assert [r["count"] for r in json.loads(out)] == [2, 0, 1, 1, 1]


def test_a_patterns_file_that_does_not_parse_is_exit_2_with_its_place(kbs, query, tmp_path):
    plain, _ = kbs
    patterns = tmp_path / "bad.metta"
    patterns.write_text('(edge a b)\n(edge "open\n')
    code, out, err = query(str(plain), "--patterns", str(patterns))
    assert code == 2 and f"{patterns}:2:7:" in err and out == ""


def test_a_sharded_kb_gives_the_same_answers(kbs, query, tmp_path):
    plain, sharded = kbs
    patterns = tmp_path / "p.metta"
    patterns.write_text("(edge a b)\n(edge $x c)\n(foo 1)\n")
    for args in (
        ["(edge $x $y)"],
        ["(edge $x $y)", "--count"],
        ["(, (edge $a $b) (edge $b $c) (edge $c $a))", "--count"],
        ["(, (edge $a $b) (edge $b $a))", "($a $b)"],
        ["(= (f $x) $r)", "--format", "jsonl"],
        ["--patterns", str(patterns), "--count"],
    ):
        one, many = query(str(plain), *args), query(str(sharded), *args)
        assert one[0] == many[0] == 0
        assert sorted(one[1].splitlines()) == sorted(many[1].splitlines()), args
    _, out, _ = query(str(sharded), "(edge $x $y)", "--limit", "3")
    assert len(out.splitlines()) == 3


def test_patterns_from_stdin_and_a_closed_pipe(kbs):
    plain, _ = kbs
    command = [sys.executable, "-m", "metta_numba", "query", str(plain)]
    proc = subprocess.run(
        [*command, "--patterns", "-"], input="(edge a c)\n(edge c a)\n", capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout == "[(edge a c)]\n[(edge c a)]\n"
    # The reader stops after the first line: the rest of the stream is never needed.
    head = subprocess.Popen([*command, "(edge $x $y)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = head.stdout.readline()
    head.stdout.close()
    assert head.wait(timeout=120) == 0 and first.startswith(b"(edge ")
    assert b"Traceback" not in head.stderr.read()
