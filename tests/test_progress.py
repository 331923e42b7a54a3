"""Progress of `snapshot build`: shown on a terminal or in a notebook, not when piped."""

from __future__ import annotations

import sys
import types

from metta_numba.cli import main


def _build(tmp_path, capsys) -> str:
    source = tmp_path / "kb.metta"
    source.write_text("".join(f"(fact {i})\n" for i in range(50)))
    assert main(["snapshot", "build", str(source), "-o", str(tmp_path / "kb")]) == 0
    return capsys.readouterr().err


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path, capsys):
    assert "parse+encode" not in _build(tmp_path, capsys)


def test_progress_inside_a_notebook_kernel(tmp_path, capsys, monkeypatch):
    # A Jupyter kernel has ipykernel loaded; its stderr is not a terminal.
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert "parse+encode" in _build(tmp_path, capsys)
