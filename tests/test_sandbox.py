"""`MeTTa(sandbox=True)` and `metta-numba --sandbox`: a program may open files, include and
import only inside its own folder; without the sandbox it may reach any path (hyperon's
behaviour)."""

from __future__ import annotations

import os

import pytest
from test_cli import cli, write

from metta_numba.interp.runner import MeTTa
from metta_numba.syntax import format_results


@pytest.fixture
def tree(tmp_path):
    """tmp/prog (the program's folder, with a module and a data file) and files outside it."""
    prog = tmp_path / "prog"
    (prog / "lib").mkdir(parents=True)
    write(prog / "data.txt", "inside")
    write(prog / "lib" / "mod.metta", "(= (m) 42)\n")
    write(tmp_path / "secret.txt", "outside")
    write(tmp_path / "outmod.metta", "(= (o) 1)\n")
    os.symlink(tmp_path / "secret.txt", prog / "link.txt")
    return tmp_path


def run(metta: MeTTa, text: str) -> list[str]:
    return [format_results(r) for r in metta.run_program(text, "<test>").results]


def is_sandbox_error(line: str) -> bool:
    return line.startswith("[(Error") and "outside the program's folder" in line


def test_sandboxed_runner_reaches_only_its_folder(tree):
    prog = tree / "prog"
    metta = MeTTa(cwd=str(prog), sandbox=True)
    assert metta.sandbox is True
    read = '!(file-read-to-string! (file-open! "{}" "r"))'
    assert run(metta, "!(import! &self fileio)\n" + read.format(prog / "data.txt")) == ["[()]", '["inside"]']
    for outside in (tree / "secret.txt", prog / "link.txt", prog / ".." / "secret.txt"):
        assert is_sandbox_error(run(metta, read.format(outside))[0]), outside
    assert is_sandbox_error(run(metta, f'!(file-open! "{tree / "new.txt"}" "wc")')[0])
    assert not (tree / "new.txt").exists()
    assert run(metta, "!(import! &self lib:mod)\n!(m)") == ["[()]", "[42]"]
    for program in ("!(import! &self ../outmod)", "!(include ../outmod)", f"!(register-module! {tree})"):
        assert is_sandbox_error(run(metta, program)[0]), program


def test_modules_inherit_the_sandbox(tree):
    # The module's own `!`s run in a runner of its own: it must be sandboxed as well.
    prog = tree / "prog"
    escape = tree / "written-by-module.txt"
    write(prog / "lib" / "writer.metta", f'(= (w) 1)\n!(import! &self fileio)\n!(file-open! "{escape}" "wc")\n')
    metta = MeTTa(cwd=str(prog), sandbox=True)
    assert run(metta, "!(import! &self lib:writer)\n!(w)") == ["[()]", "[1]"]
    assert not escape.exists()
    unsandboxed = MeTTa(cwd=str(prog))
    run(unsandboxed, "!(import! &self lib:writer)")
    assert escape.exists()


def test_without_the_sandbox_any_path_is_reachable(tree):
    metta = MeTTa(cwd=str(tree / "prog"))
    assert metta.sandbox is False
    program = f'!(import! &self fileio)\n!(file-read-to-string! (file-open! "{tree / "secret.txt"}" "r"))'
    assert run(metta, program) == ["[()]", '["outside"]']
    assert run(metta, "!(import! &self ../outmod)\n!(o)") == ["[()]", "[1]"]


def test_sandbox_flag_of_the_command(tree):
    program = write(
        tree / "prog" / "p.metta",
        f'!(import! &self fileio)\n!(file-read-to-string! (file-open! "{tree / "secret.txt"}" "r"))\n',
    )
    proc = cli("--sandbox", str(program), cwd=tree)
    assert proc.returncode == 0 and is_sandbox_error(proc.stdout.splitlines()[1]), proc.stdout
    proc = cli(str(program), cwd=tree)
    assert proc.stdout.splitlines()[1] == '["outside"]'
    session = f'!(import! &self fileio)\n!(file-open! "{tree / "secret.txt"}" "r")\n'
    proc = cli("repl", "--sandbox", stdin=session, cwd=tree / "prog")
    assert is_sandbox_error(proc.stdout.splitlines()[-1]), proc.stdout
