"""End-to-end tests of the `metta-numba` command, each through a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metta_numba", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=dict(os.environ),
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- run ----------------------------------------------------------------------------------------


def test_example_family_runs_and_prints_one_line_per_query():
    proc = cli(str(EXAMPLES / "family.metta"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == sum(1 for ln in (EXAMPLES / "family.metta").read_text().splitlines() if ln.startswith("!"))
    # Bob's parents are Tom and Pam; both rules alternatives come out, in hyperon's order.
    assert lines[0] == "[Pam, Tom]"
    assert lines[1] == "[Pam]"
    assert lines[-1] == "[()]"


@pytest.mark.parametrize("name", ["reachability.metta", "types.metta", "search.metta"])
def test_every_example_runs_cleanly(name):
    proc = cli(str(EXAMPLES / name))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example must print its results"
    assert "Error" not in proc.stdout.splitlines()[0]


def test_run_subcommand_and_stdin_are_the_same_as_a_file(tmp_path):
    program = "(= (sq $x) (* $x $x))\n!(sq 7)\n!(sq 1.5)\n"
    source = write(tmp_path / "p.metta", program)
    direct = cli(str(source))
    explicit = cli("run", str(source))
    piped = cli("-", stdin=program)
    assert direct.stdout == explicit.stdout == piped.stdout == "[49]\n[2.25]\n"


def test_results_print_after_the_whole_run(tmp_path):
    source = write(tmp_path / "p.metta", '!(println! "first")\n!(+ 1 1)\n')
    proc = cli(str(source))
    assert proc.stdout == "first\n[()]\n[2]\n"


def test_parse_error_exits_1_with_position_and_no_result_lines(tmp_path):
    source = write(tmp_path / "bad.metta", '!(println! "side effect")\n!(+ 1 1)\n!(+ 1\n')
    proc = cli(str(source))
    assert proc.returncode == 1
    # hyperon: earlier `!`s have run (their side effects show), but no result line is printed.
    assert proc.stdout == "side effect\n"
    assert f"{source}:3:2:" in proc.stderr and "unclosed '('" in proc.stderr


def test_stray_paren_names_its_column(tmp_path):
    source = write(tmp_path / "bad.metta", "(a b)\n  (c d))\n")
    proc = cli(str(source))
    assert proc.returncode == 1
    assert f"{source}:2:8:" in proc.stderr


def test_missing_file_exits_1():
    proc = cli("/nonexistent/nothing.metta")
    assert proc.returncode == 1
    assert "no such file" in proc.stderr


def test_failed_assertion_exits_1_and_stops_the_run(tmp_path):
    source = write(tmp_path / "a.metta", "!(assertEqual (+ 1 1) 3)\n!(+ 2 2)\n")
    proc = cli(str(source))
    assert proc.returncode == 1
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("[(Error (assertEqual (+ 1 1) 3)")
    assert "assertion failed" in proc.stderr


def test_other_error_ends_run_with_exit_0_as_hyperon(tmp_path):
    source = write(tmp_path / "e.metta", "!(/ 1 0)\n!(+ 1 1)\n")
    proc = cli(str(source))
    assert proc.returncode == 0
    assert proc.stdout == "[(Error (/ 1 0) DivisionByZero)]\n"


@pytest.mark.parametrize(
    "args",
    [[], ["--no-such-flag", "x.metta"], ["snapshot"], ["snapshot", "build", "x.metta"], ["query", "kb"],
     ["batch", "kb", "q.metta", "--workers", "2", "--scheduler", "tcp://x:1"]],
)
def test_usage_errors_exit_2(args):
    proc = cli(*args)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["run", "--help"], ["repl", "--help"], ["snapshot", "--help"], ["snapshot", "build", "--help"],
     ["snapshot", "info", "--help"], ["snapshot", "verify", "--help"], ["snapshot", "compact", "--help"],
     ["query", "--help"], ["batch", "--help"]],
)
def test_help_on_every_subcommand(args):
    proc = cli(*args)
    assert proc.returncode == 0
    assert "usage:" in proc.stdout


# --- snapshots ------------------------------------------------------------------------------------

FACTS = "".join(f"(edge n{i} n{(i * 7 + 3) % 20})\n" for i in range(40)) + '(label n1 "one")\n(= (f $x) (g $x))\n'


@pytest.fixture
def kb(tmp_path) -> Path:
    source = write(tmp_path / "facts.metta", FACTS)
    out = tmp_path / "facts.kb"
    proc = cli("snapshot", "build", str(source), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "generation 1" in proc.stdout and "42 atoms" in proc.stdout
    return out


def test_snapshot_info_and_verify(kb):
    info = cli("snapshot", "info", str(kb))
    assert info.returncode == 0, info.stderr
    assert "generation: 1" in info.stdout and "atoms: 42" in info.stdout
    assert "facts.metta" in info.stdout
    verify = cli("snapshot", "verify", str(kb))
    assert verify.returncode == 0 and "ok" in verify.stdout


def test_snapshot_build_no_merkleize_gives_same_answers(tmp_path, kb):
    plain = tmp_path / "plain.kb"
    proc = cli("snapshot", "build", str(tmp_path / "facts.metta"), "-o", str(plain), "--no-merkleize")
    assert proc.returncode == 0 and "not merkleized" in proc.stdout
    a = cli("query", str(kb), "(edge $x n3)", "$x").stdout.split()
    b = cli("query", str(plain), "(edge $x n3)", "$x").stdout.split()
    assert sorted(a) == sorted(b)
    expected = sorted(f"n{i}" for i in range(40) if (i * 7 + 3) % 20 == 3)
    assert sorted(a) == expected


def test_snapshot_build_refuses_queries_and_reports_parse_errors(tmp_path):
    with_query = write(tmp_path / "q.metta", "(a b)\n!(+ 1 2)\n")
    proc = cli("snapshot", "build", str(with_query), "-o", str(tmp_path / "x.kb"))
    assert proc.returncode == 1 and "queries" in proc.stderr
    broken = write(tmp_path / "b.metta", "(a b)\n(c\n")
    proc = cli("snapshot", "build", str(broken), "-o", str(tmp_path / "y.kb"))
    assert proc.returncode == 1 and f"{broken}:2:1:" in proc.stderr
    assert not (tmp_path / "y.kb" / "CURRENT").exists(), "a KB is never written from a file that failed to parse"


def test_query_text_and_json(kb):
    proc = cli("query", str(kb), "(edge n1 $y)")
    assert proc.returncode == 0
    assert proc.stdout == "(edge n1 n10)\n"
    proc = cli("query", str(kb), "(label $n $s)", "($n is $s)", "--format", "json")
    records = json.loads(proc.stdout)
    assert [r["result"] for r in records] == ['(n1 is "one")']
    assert records[0]["bindings"] == {"$n": "n1", "$s": '"one"'}
    # A stored rule variable binds too: matching works both ways.
    proc = cli("query", str(kb), "(= (f 5) $r)", "$r")
    assert proc.stdout == "(g 5)\n"


def test_corrupt_or_missing_kb_exits_3(tmp_path, kb):
    assert cli("query", str(tmp_path / "nothing.kb"), "(a)").returncode == 3
    act = next(kb.glob("gen-*.act"))
    data = bytearray(act.read_bytes())
    data[0:8] = b"XXXXXXXX"
    act.write_bytes(bytes(data))
    for args in (["snapshot", "verify", str(kb)], ["snapshot", "info", str(kb)], ["query", str(kb), "(a)"]):
        proc = cli(*args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    program = write(tmp_path / "p.metta", "!(+ 1 1)\n")
    assert cli("--load-snapshot", str(kb), str(program)).returncode == 3


def test_load_snapshot_runs_program_over_the_kb(tmp_path, kb):
    program = write(tmp_path / "p.metta", "!(match &self (edge n1 $y) $y)\n!(f 3)\n")
    proc = cli("--load-snapshot", str(kb), str(program))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[n10]\n[(g 3)]\n"


def test_load_and_save_snapshot_round_trip_keeps_adds_and_removes(tmp_path, kb):
    change = write(
        tmp_path / "change.metta",
        "(edge new1 new2)\n!(add-atom &self (edge new2 new3))\n!(remove-atom &self (edge n1 n10))\n",
    )
    proc = cli("--load-snapshot", str(kb), "--save-snapshot", str(kb), str(change))
    assert proc.returncode == 0, proc.stderr
    info = cli("snapshot", "info", str(kb)).stdout
    assert "generation: 2" in info
    check = write(
        tmp_path / "check.metta",
        "!(match &self (edge new1 $y) $y)\n!(match &self (edge new2 $y) $y)\n!(match &self (edge n1 $y) $y)\n",
    )
    proc = cli("--load-snapshot", str(kb), str(check))
    assert proc.stdout == "[new2]\n[new3]\n[]\n"
    # Saving to another path writes a fresh KB with the same content.
    other = tmp_path / "copy.kb"
    proc = cli("--load-snapshot", str(kb), "--save-snapshot", str(other), "--no-merkleize", str(check))
    assert proc.returncode == 0, proc.stderr
    assert cli("--load-snapshot", str(other), str(check)).stdout == "[new2]\n[new3]\n[]\n"


def test_save_snapshot_from_a_plain_program(tmp_path):
    program = write(tmp_path / "p.metta", "(fact 1)\n(fact 2)\n!(add-atom &self (fact 3))\n")
    out = tmp_path / "saved.kb"
    assert cli(str(program), "--save-snapshot", str(out)).returncode == 0
    proc = cli("query", str(out), "(fact $x)", "$x")
    assert sorted(proc.stdout.split()) == ["1", "2", "3"]


def test_snapshot_compact_folds_the_log(tmp_path, kb):
    change = write(tmp_path / "c.metta", "!(add-atom &self (edge x y))\n")
    # Writing without --save-snapshot of the same path: open the KB writable through compact.
    proc = cli("--load-snapshot", str(kb), "--save-snapshot", str(kb), str(change))
    assert proc.returncode == 0
    proc = cli("snapshot", "compact", str(kb))
    assert proc.returncode == 0, proc.stderr
    assert "generation" in proc.stdout
    assert cli("query", str(kb), "(edge x $y)", "$y").stdout == "y\n"


def test_batch_on_a_local_cluster(tmp_path, kb):
    queries = write(tmp_path / "q.metta", "".join(f"!(match &self (edge n{i} $y) $y)\n" for i in range(6)))
    proc = cli("batch", str(kb), str(queries), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    expected = [f"[n{(i * 7 + 3) % 20}]" for i in range(6)]
    assert proc.stdout.splitlines() == expected
    plain_atoms = write(tmp_path / "bad.metta", "(edge a b)\n")
    assert cli("batch", str(kb), str(plain_atoms)).returncode == 1


def test_a_program_runs_with_the_collector_on_and_blas_threads_as_the_user_set(tmp_path):
    # The command pauses Python's garbage collector only while it starts (cli.start_up_done),
    # and starts NumPy's BLAS with one thread unless OPENBLAS_NUM_THREADS says otherwise.
    program = write(
        tmp_path / "gc.metta",
        '!((py-atom gc.isenabled))\n!((py-atom os.environ.get) "OPENBLAS_NUM_THREADS")\n',
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-m", "metta_numba", str(program)], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[True]", '["1"]']
    proc = subprocess.run([sys.executable, "-m", "metta_numba", str(program)], capture_output=True, text=True,
                          timeout=300, env=dict(env, OPENBLAS_NUM_THREADS="3"))  # fmt: skip
    assert proc.stdout.splitlines() == ["[True]", '["3"]']
