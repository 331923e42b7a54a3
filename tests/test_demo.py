"""`metta-numba demo` builds the generated KB, queries it from fresh processes, and prints
answers that agree with the KB (computed here from the generator's facts)."""

from __future__ import annotations

import io
import re

from metta_numba import demo
from metta_numba.bench.kbgen import generate_fact_kb


def _edges(n: int) -> list[tuple[str, str]]:
    return re.findall(r"\(edge (\S+) (\S+)\)", generate_fact_kb(n))


def test_demo_answers_agree_with_the_kb(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "SHOWN_ANSWERS", 1_000_000)
    out = io.StringIO()
    assert demo.run_demo(2_000, str(tmp_path), keep=False, out=out) == 0
    text = out.getvalue()
    edges = _edges(2_000)
    forward = {y for x, y in edges if x == "n_5"}
    backward = {x for x, y in edges if y == "n_7"}
    two_hop = {z for y in forward for x, z in edges if x == y}
    lines = text.splitlines()

    def answers(query: str) -> set[str]:
        line = lines[lines.index(query) + 1].strip()
        return set(line[1:-1].split(", ")) if line != "[]" else set()

    assert answers("!(match &self (edge n_5 $y) $y)") == forward
    assert answers("!(match &self (edge $x n_7) $x)") == backward
    assert answers("!(match &self (, (edge n_5 $y) (edge $y $z)) $z)") == two_hop
    assert answers("!(add (succ (succ zero)) (succ zero))") == {"(succ (succ (succ zero)))"}
    # both runs are reported, for each step
    for step in ("build the snapshot", "open the snapshot", "answer 4 queries"):
        row = next(line for line in lines if line.startswith(step))
        assert len(re.findall(r"\d+\.\d+ m?s", row)) == 2, row
    assert (tmp_path / "kb2").is_dir()
