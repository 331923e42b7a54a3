"""Conformance: every program in this folder prints what hyperon 0.2.10 prints.

Each `prog.metta` has its expected stdout in `prog.expected`: `println!` output first, then one
line per `!` that ran (hyperon prints results after the whole run). Most expected files come
from hyperon 0.2.10 itself (scripts/oracle_expected.py); a program marked `; expected: by hand`
covers a case that hyperon 0.2.10 gets wrong, and its expected file follows the documented
intent (docs/compatibility.md). `expected.json` records, per program, the exit status, how many
expected lines are result lines, and a hash of the program as it was when the expected file was
made.

Lines are compared after two normalizations: the `#N` suffix of renamed variables (`$x#17`) and
the address of an object (`GroundingSpace-0x55d3c1a2b0c8`) vary from run to run.

Programs run through `MeTTa().run` with stdout captured (the default), or through the command
line with METTA_CONFORMANCE_RUNNER=cli (`python -m metta_numba FILE`, or the command given in
METTA_CONFORMANCE_CMD: pointing it at hyperon's own `metta` checks this harness). Either way each
program runs from its own directory, so that module and file paths in it are relative to it.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFORMANCE_DIR = Path(__file__).resolve().parent
PROGRAMS = sorted(CONFORMANCE_DIR.glob("*.metta"))
SIDECAR = json.loads((CONFORMANCE_DIR / "expected.json").read_text(encoding="utf-8"))
RUNNER = os.environ.get("METTA_CONFORMANCE_RUNNER", "api")
CLI_COMMAND = shlex.split(os.environ.get("METTA_CONFORMANCE_CMD", f"{sys.executable} -m metta_numba"))
CLI_TIMEOUT_SECONDS = 600

_RENAMED_VARIABLE = re.compile(r"(\$[^\s()\"#]*)#\d+")
_OBJECT_ADDRESS = re.compile(r"\b([A-Za-z]+)-0x[0-9a-fA-F]+")


def normalize(line: str) -> str:
    """Blank out what legitimately varies between runs: `#N` suffixes and object addresses."""
    return _OBJECT_ADDRESS.sub(r"\1-0x?", _RENAMED_VARIABLE.sub(r"\1#N", line))


def split_lines(text: str) -> list[str]:
    """Lines as `print` wrote them (str.splitlines would also split on form feeds and such)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True)
class ProgramOutput:
    lines: list[str]
    """Everything the program printed on stdout."""
    result_lines: int | None
    """How many of the last lines are `!` results; None when only stdout was seen (CLI)."""
    exit_status: int


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_via_api(program: Path) -> ProgramOutput:
    """Run through the Python API and print the results the way `metta FILE` does."""
    from metta_numba import MeTTa
    from metta_numba.syntax import ParseError, format_results

    text = program.read_text(encoding="utf-8")
    captured = io.StringIO()
    results: list = []
    exit_status = 0
    with working_directory(program.parent), contextlib.redirect_stdout(captured):
        try:
            results = MeTTa().run(text)
        except ParseError:
            exit_status = 1
    result_lines = [format_results(result) for result in results]
    return ProgramOutput(split_lines(captured.getvalue()) + result_lines, len(result_lines), exit_status)


def run_via_cli(program: Path) -> ProgramOutput:
    completed = subprocess.run(
        [*CLI_COMMAND, program.name],
        cwd=program.parent,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
    )
    return ProgramOutput(split_lines(completed.stdout), None, completed.returncode)


@functools.cache
def run_program(name: str) -> ProgramOutput:
    program = CONFORMANCE_DIR / name
    return run_via_cli(program) if RUNNER == "cli" else run_via_api(program)


def expected_output(name: str) -> ProgramOutput:
    entry = SIDECAR["programs"][name]
    text = (CONFORMANCE_DIR / name).with_suffix(".expected").read_text(encoding="utf-8")
    return ProgramOutput(split_lines(text), entry["result_lines"], entry["exit_status"])


def query_lines(program: Path) -> list[int]:
    """Source line of each `!` query, in order (the queries before a parse error, if any)."""
    from metta_numba.syntax import ParseError, iter_program

    lines: list[int] = []
    try:
        for item in iter_program(program.read_text(encoding="utf-8"), program.name):
            if item.is_query:
                lines.append(item.line)
    except ParseError:
        pass
    return lines


def query_cases() -> list:
    """One case per `!` that ran under the oracle: (program name, index among results, line)."""
    cases = []
    for program in PROGRAMS:
        entry = SIDECAR["programs"].get(program.name)
        if entry is None:
            continue
        for index, line in enumerate(query_lines(program)[: entry["result_lines"]]):
            cases.append(pytest.param(program.name, index, id=f"{program.name}:{line}"))
    return cases


def result_line(output: ProgramOutput, count: int, index: int) -> str | None:
    """The index-th of the result lines. Without an exact count (CLI), they are taken to be the
    last `count` lines, as many as the expected output has."""
    known = output.result_lines if output.result_lines is not None else count
    position = len(output.lines) - known + index
    if index >= known or position < 0:
        return None
    return output.lines[position]


@pytest.mark.parametrize("name", [p.name for p in PROGRAMS])
def test_expected_file_is_current(name: str) -> None:
    """The expected file exists and was made from the program as it stands."""
    program = CONFORMANCE_DIR / name
    assert program.with_suffix(".expected").is_file(), f"run scripts/oracle_expected.py {name}"
    entry = SIDECAR["programs"].get(name)
    assert entry is not None, f"{name} is missing from expected.json: run scripts/oracle_expected.py"
    digest = hashlib.sha256(program.read_bytes()).hexdigest()
    assert entry["source_sha256"] == digest, f"{name} changed since its expected file was made"


@pytest.mark.parametrize("name", [p.name for p in PROGRAMS])
def test_program(name: str) -> None:
    """The whole stdout, `println!` output and result lines, and the exit status."""
    expected = expected_output(name)
    got = run_program(name)
    expected_lines = [normalize(line) for line in expected.lines]
    got_lines = [normalize(line) for line in got.lines]
    diff = "\n".join(difflib.unified_diff(expected_lines, got_lines, "expected", "got", lineterm=""))
    assert got_lines == expected_lines, f"{name}: stdout differs\n{diff}"
    assert got.exit_status == expected_exit_status(expected), f"{name}: exit status"


def expected_exit_status(expected: ProgramOutput, ours: bool | None = None) -> int:
    """hyperon's exit status, except that our command exits 1 when the run ended at a failed
    assertion (a documented difference, docs/compatibility.md), so a test file fails a script.
    `ours`: whether the program ran through our command (by default, as the runner says)."""
    if ours is None:
        ours = RUNNER == "cli" and "METTA_CONFORMANCE_CMD" not in os.environ
    if ours and expected.lines and expected.lines[-1].startswith("[(Error (assert"):
        return 1
    return expected.exit_status


@pytest.mark.parametrize(("name", "index"), query_cases())
def test_query(name: str, index: int) -> None:
    """The result line of one `!` (the test id names the program and the source line)."""
    expected = expected_output(name)
    got = run_program(name)
    want = result_line(expected, expected.result_lines, index)
    have = result_line(got, expected.result_lines, index)
    assert have is not None, f"no result line: expected {want}"
    assert normalize(have) == normalize(want), f"\nexpected {want}\n     got {have}"


# The one-behaviour programs of the conformance issue (A_... to O_...) also run through the
# command, as a user runs them, whatever METTA_CONFORMANCE_RUNNER says for the rest.
BEHAVIOUR_PROGRAMS = [p.name for p in PROGRAMS if re.fullmatch(r"[A-O]_\w+\.metta", p.name)]


@pytest.mark.parametrize("name", BEHAVIOUR_PROGRAMS)
def test_behaviour_program_through_the_command(name: str) -> None:
    expected = expected_output(name)
    got = run_via_cli(CONFORMANCE_DIR / name)
    assert [normalize(line) for line in got.lines] == [normalize(line) for line in expected.lines]
    assert got.exit_status == expected_exit_status(expected, ours="METTA_CONFORMANCE_CMD" not in os.environ)
