"""A KB built from text keeps `&self` as a symbol; run over the snapshot, it means the KB's
space, as it does when the same text is part of the program."""

from __future__ import annotations

import pytest

from metta_numba.interp.runner import MeTTa
from metta_numba.space import SnapshotSpace
from metta_numba.store import PersistentKB
from metta_numba.store.snapshot import build_snapshot
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.printer import format_atom

KB_TEXT = """
(edge a b) (edge b c) (edge a d)
(= (hop $x) (match &self (edge $x $y) $y))
(= (hop2 $x) (hop (hop $x)))
(= (count-edges) (size-atom (collapse (match &self (edge $x $y) $y))))
(= (grow $x) (add-atom &self (edge $x new)))
"""
QUERIES = "!(hop a)\n!(hop2 a)\n!(match &self (= (hop $x) $b) $b)\n!(grow c)\n!(hop c)\n"


@pytest.mark.parametrize("compile", [True, False])
def test_self_in_stored_rules_is_the_snapshot_space(tmp_path, compile):
    batch = encode_source(KB_TEXT.encode())
    build_snapshot(batch, batch.terms, tmp_path / "kb", merkleize=False)
    in_memory = MeTTa(compile=compile).run(KB_TEXT + QUERIES)
    with PersistentKB.open(tmp_path / "kb", readonly=True) as kb:
        over_snapshot = MeTTa(space=SnapshotSpace(kb), compile=compile).run(QUERIES)
    as_text = [[format_atom(a) for a in r] for r in in_memory]
    assert [[format_atom(a) for a in r] for r in over_snapshot] == as_text
    assert sorted(as_text[0]) == ["b", "d"] and as_text[4] == ["new"]  # what the KB text says
