"""Answers in bulk: a top-level match over a snapshot gives what the plain evaluator gives,
order included, and really takes the bulk path where every answer is final."""

from __future__ import annotations

import sys

import pytest

from metta_numba.interp.runner import MeTTa
from metta_numba.space import SnapshotSpace
from metta_numba.store import PersistentKB
from metta_numba.store import answers as answers_module
from metta_numba.store.snapshot import build_snapshot
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.printer import format_atom

KB_TEXT = """
(edge a b) (edge a c) (edge b c) (edge a b) (edge c a)
(edge a (pair 1 2)) (edge a (wrap x)) (edge a 3) (edge a 3.0) (edge a "s") (edge a $v)
(= (wrap $x) (wrapped $x))
(= (add1 zero $x) $x) (= (add1 $x zero) $x) (= (mul1 zero $x) zero)
(= (match1 $x $x) True) (= (match1 $x $y) False)
(= (add2 zero $x) $x) (= (add2 (succ $x) $y) (succ (add2 $x $y)))
(: pair (-> Number Number Pair))
(flag Empty) (flag (Error x y))
"""

QUERIES = [
    "!(match &self (edge a $y) $y)",
    "!(match &self (edge $x c) ($x to c))",
    "!(match &self (edge $x $y) ($x $y))",
    "!(match &self (= ($f zero $x) $x) $f)",
    "!(match &self (= ($f zero $x) $x) ($f $x))",
    "!(match &self (= (add1 $a $b) $r) ($a $b $r))",
    "!(match &self (edge a $y) found)",
    "!(match &self (edge a $y) $unbound)",
    "!(match &self (flag $f) $f)",
    "!(match &self (edge zz $y) $y)",
    "!(match &self (, (edge a $y) (edge $y c)) $y)",
    "!(collapse (match &self (edge $x c) ($x to c)))",
    "!(size-atom (collapse (match &self (= ($f zero $x) $x) $f)))",
    "!(collapse (match &self (edge zz $y) $y))",
    "!(size-atom (match &self (edge $x c) ($x c)))",
    "!(collapse (collapse (match &self (edge $x c) $x)))",
    "!(size-atom (collapse (match &self (edge a $y) $y)))",
]


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bulk")
    batch = encode_source(KB_TEXT.encode())
    build_snapshot(batch, batch.terms, folder / "kb", merkleize=False)
    return folder / "kb"


def _run(kb_path, query: str, compile: bool):
    limit = sys.getrecursionlimit()
    with PersistentKB.open(kb_path, readonly=True) as kb:
        runner = MeTTa(space=SnapshotSpace(kb), compile=compile)
        try:
            results = runner.run(query)
        finally:
            sys.setrecursionlimit(limit)
        bulk = runner.ev.tier.bulk_answers if compile else 0
    return [[format_atom(a) for a in r] for r in results], bulk


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("query", QUERIES)
def test_bulk_match_agrees_with_the_plain_evaluator(kb_path, query, grouped, monkeypatch):
    if grouped:  # every table takes the kernels' grouped decoding, as large answer sets do
        monkeypatch.setattr(answers_module, "BULK_DECODE_AFTER", 0)
    plain, _ = _run(kb_path, query, compile=False)
    compiled, _ = _run(kb_path, query, compile=True)
    assert compiled == plain


@pytest.mark.parametrize(
    "query, bulk",
    [
        ("!(match &self (edge $x c) ($x to c))", True),
        ("!(match &self (= ($f zero $x) $x) $f)", True),
        ("!(match &self (edge a $y) $y)", False),  # (wrap x) reduces by a rule
        ("!(match &self (flag $f) $f)", False),  # Empty and Error are not final
        ("!(match &self (= ($f zero $x) $x) ($f $x))", False),  # add1 zero ... is a call
        ("!(collapse (match &self (= ($f zero $x) $x) $f))", True),
        ("!(size-atom (collapse (match &self (= ($f zero $x) $x) $f)))", False),
        ("!(collapse (collapse (match &self (edge $x c) $x)))", False),
    ],
)
def test_the_bulk_path_is_taken_only_when_every_answer_is_final(kb_path, query, bulk):
    _, answered = _run(kb_path, query, compile=True)
    assert (answered > 0) == bulk
