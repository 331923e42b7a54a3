"""A program's leading run of atoms loaded in bulk (interp.bulk_load, space.segment) runs
exactly as when every atom is parsed and added one by one: same results, same order."""

from __future__ import annotations

import random
import re

import pytest

from metta_numba.interp import bulk_load
from metta_numba.interp.runner import MeTTa
from metta_numba.space import segment_order

SYMBOLS = ["a", "b", "c", "d"]
VARIABLES = ["$x", "$y", "$z", "$w"]
LEAVES = SYMBOLS + ["1", "2", "-3", '"s"', '"t"', "True"]


def _term(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 0 and roll < 0.25:
        head = rng.choice(["p", "q", "cons"])
        return f"({head} {' '.join(_term(rng, depth - 1) for _ in range(rng.randint(0, 2)))})"
    if roll < 0.5:
        return rng.choice(VARIABLES)
    if roll < 0.505:
        return rng.choice(["1.0", "2.5"])  # a float keeps its run on the parser
    return rng.choice(LEAVES)


def _plain_atom(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return f"(edge {_term(rng, 1)} {_term(rng, 1)})"
    if kind < 0.7:
        head = rng.choice(["f", "g"])
        return f"(= ({head} {_term(rng, 2)}) {_term(rng, 2)})"
    if kind < 0.8:
        return f"(: {rng.choice(SYMBOLS)} {rng.choice(['T', 'U', '(-> T U)', 'Type', '(-> Atom T)'])})"
    if kind < 0.9:
        return f"(rel {_term(rng, 2)} {_term(rng, 1)} {_term(rng, 1)})"
    return _term(rng, 2)


QUERIES = [
    "!(match &self (edge $x $y) ($x $y))",
    "!(match &self (edge a $y) $y)",
    "!(match &self (rel $a $b $c) ($a $b $c))",
    "!(match &self ($h (p $u) $v) ($h $u $v))",
    "!(f a)",
    "!(g (p b))",
    "!(get-atoms &self)",
    "!(get-type a)",
    "!(add-atom &self (edge c tok))",
    "!(remove-atom &self (edge a b))",
    "!(bind! tok (edge d d))",
    "!(match &self $any $any)",
]


def _program(seed: int) -> str:
    rng = random.Random(seed)
    lines = [_plain_atom(rng) for _ in range(rng.randint(1, 60))]
    # Duplicates and copies equal up to variable names.
    for _ in range(rng.randint(0, 6)):
        lines.append(rng.choice(lines))
        lines.append(rng.choice(lines).replace("$x", "$renamed"))
    rng.shuffle(lines)
    for _ in range(rng.randint(1, 8)):
        lines.append(rng.choice(QUERIES))
        lines.extend(_plain_atom(rng) for _ in range(rng.choice([0, 2, 4, 30, 90])))
        if rng.random() < 0.3:
            lines.append("(edge tok b)")
    lines.append(rng.choice(QUERIES))
    return "\n".join(lines) + "\n"


def _renumbered(text: str) -> str:
    """Fresh variables (`$x#N`) numbered by first appearance: N counts on across runs."""
    seen: dict[str, str] = {}
    return re.sub(r"#\d+", lambda m: seen.setdefault(m.group(), f"#{len(seen)}"), text)


def _run(text: str) -> tuple[str, bool]:
    runner = MeTTa()
    result = runner.run_program(text)
    return _renumbered(repr(result)), runner.space._segment is not None


@pytest.mark.parametrize("seed", range(80))
def test_bulk_loaded_program_runs_as_parsed_one_by_one(seed: int, monkeypatch) -> None:
    _compare_both_ways(seed, monkeypatch)


def _record_bulk_loads(monkeypatch) -> list[bool]:
    """Offer every run to the bulk loader; the returned list records whether each was loaded."""
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    loaded: list[bool] = []
    original = bulk_load.bulk_load_run

    def recording(runner, source, filename, pos, *mark):
        end = original(runner, source, filename, pos, *mark)
        loaded.append(end > pos)
        return end

    monkeypatch.setattr(bulk_load, "bulk_load_run", recording)
    return loaded


def _compare_both_ways(seed: int, monkeypatch) -> list[bool]:
    """Run program `seed` as parsed and with every run offered to the bulk loader; returns
    whether each offered run was loaded."""
    text = _program(seed)
    expected, used = _run(text)
    assert not used
    loaded = _record_bulk_loads(monkeypatch)
    got, _ = _run(text)
    assert got == expected
    return loaded


def _dense_program(seed: int, run_sizes: tuple[int, ...] = (0, 1, 2, 3)) -> str:
    """A `!` every few lines: removals of stored atoms (some removed again, some added back),
    tokens bound mid-file and used by later atoms, and queries that show the order; after
    each `!`, a run of one of `run_sizes` new atoms."""
    rng = random.Random(seed)
    stored = [_plain_atom(rng) for _ in range(rng.randint(5, 40))]
    stored += [rng.choice(stored) for _ in range(rng.randint(0, 5))]
    lines = list(stored)
    for step in range(rng.randint(3, 16)):
        roll = rng.random()
        if roll < 0.4:
            lines.append(f"!(remove-atom &self {rng.choice(stored)})")
        elif roll < 0.55:
            lines.append(f"!(add-atom &self {rng.choice(stored)})")
        elif roll < 0.65:
            lines.append(f"!(bind! tok{step} {rng.choice(stored)})")
            lines.append(f"(edge tok{step} {rng.choice(SYMBOLS)})")
        else:
            lines.append(rng.choice(QUERIES[:7] + QUERIES[-1:]))
        new = [_plain_atom(rng) for _ in range(rng.choice(run_sizes))]
        stored += new
        lines += new
    lines.append("!(get-atoms &self)")
    lines.append("!(match &self ($h $u $v) ($h $u $v))")
    return "\n".join(lines) + "\n"


STACK_RUNS = (1, 2, 5, 12, 40)
"""Run sizes after which later runs stack up as segments of their own (segment_stack.py)."""


@pytest.mark.parametrize("run_sizes", [(0, 1, 2, 3), STACK_RUNS])
@pytest.mark.parametrize("budget", [0, 1000])
@pytest.mark.parametrize("seed", range(25))
def test_removals_and_small_runs_run_as_parsed_one_by_one(seed: int, budget: int, run_sizes, monkeypatch) -> None:
    """Removals mark segment atoms (tombstones): answers, listings and the order of atoms
    added later stay as when every atom is parsed; budget 0 orders through the built trie,
    1000 through passes over the paths. Each run after the first is a segment of its own
    (merged with others as they grow; a removal merges them all)."""
    text = _dense_program(seed, run_sizes)
    expected, used = _run(text)
    assert not used
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    monkeypatch.setattr(segment_order, "SCAN_BUDGET", budget)
    got, used = _run(text)
    assert got == expected
    assert used or re.search(r"\d\.\d", text)


def test_the_random_programs_take_the_bulk_path_often(monkeypatch) -> None:
    """The comparison above means something only if runs do go through the bulk path, the
    first one and later ones (rebuilding the space into one segment)."""
    firsts = later = 0
    for seed in range(80):
        loaded = _compare_both_ways(seed, monkeypatch)
        firsts += loaded[0]
        later += sum(loaded[1:])
        monkeypatch.undo()
    assert firsts >= 30 and later >= 10, (firsts, later)


def test_syntax_error_after_the_run_is_reported_in_order(monkeypatch) -> None:
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    text = "(edge a b)\n(edge b c)\n!(match &self (edge $x $y) $x)\n!(error-here\n"
    runner = MeTTa()
    result = runner.run_program(text, "prog.metta")
    assert runner.space._segment is not None
    assert [repr(r) for r in result.results] == ["[a, b]"]
    assert result.parse_error is not None and result.parse_error.line == 4


@pytest.mark.parametrize("lead", ["", "(lead one)\n\n", "(lead one) "])
def test_the_line_mark_moves_past_a_run_scanned_in_pieces(lead: str, monkeypatch) -> None:
    # The scan threads count the run's newlines, so that the parser goes on after the run
    # at the right line without counting them again.
    from metta_numba.syntax import bulk_parallel
    from metta_numba.syntax.parser import LineMark, iter_program_from

    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    monkeypatch.setattr(bulk_parallel, "PARALLEL_MIN_BYTES", 0)
    rng = random.Random(len(lead))
    atoms = ["(edge a{} b)", "(= (f{} $x) (g $x))", '(rel "s{}" (p 1 $y))']
    run = "".join(rng.choice(atoms).format(k) + "\n" * rng.randint(1, 3) for k in range(300))
    text = lead + run + "!(match &self (edge $x $y) $x)\n  (after)\n"
    runner, mark = MeTTa(), LineMark()
    pos = len(lead)
    if lead:
        next(iter_program_from(text, "t", 0, mark))  # the mark stands at the first item
    cut = bulk_load.bulk_load_run(runner, text, "t", pos, mark)
    assert cut == text.index("!") and runner.space._segment is not None
    assert (mark.at, mark.line, mark.line_start) == (cut, 1 + text.count("\n", 0, cut), cut)
    places = [(item.line, item.col) for item, _ in iter_program_from(text, "t", cut, mark)]
    expected = [(item.line, item.col) for item, _ in iter_program_from(text, "t", 0)][-2:]
    assert places == expected == [(text.count("\n", 0, cut) + 1, 2), (text.count("\n", 0, cut) + 2, 3)]


def test_a_run_naming_a_token_is_parsed_as_before(monkeypatch) -> None:
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    runner = MeTTa()
    result = runner.run_program("(holds &self)\n!(match &self (holds $s) $s)\n")
    assert runner.space._segment is None
    assert len(result.results[0]) == 1 and result.results[0][0] is runner.self_atom


def _saved_atoms(tmp_path, name: str, text: str) -> tuple[list[tuple[str, int]], list[str]]:
    """The saved KB's (atom, copies), sorted, and its atoms in the recorded insertion order
    (each copy with its own variable names)."""
    from metta_numba.cli import main
    from metta_numba.codec import decode
    from metta_numba.store import PersistentKB

    program = tmp_path / f"{name}.metta"
    program.write_text(text)
    kb_path = tmp_path / f"{name}.kb"
    assert main([str(program), "--save-snapshot", str(kb_path)]) == 0
    with PersistentKB.open(kb_path, readonly=True) as kb:
        counts = sorted((repr(atom), copies) for atom, copies in kb.atom_counts())
        generation = kb.snapshot_generation()
        ranks, names = generation.insertion_order()
        terms = generation.terms
        in_order = []
        for rank, name_id in zip(ranks.tolist(), names.tolist()):
            own = None if name_id < 0 else terms.text(name_id).split(" ")
            in_order.append(repr(decode(generation.trie.path(rank), terms, own)))
        return counts, in_order


@pytest.mark.parametrize("seed", [1, 4, 7, 10, -3, -4, -5, -6, -7])
def test_save_snapshot_of_a_bulk_loaded_space_holds_every_atom_in_order(seed, tmp_path, monkeypatch, capsys) -> None:
    """Saved from the segment's arrays as they are, or from atoms parsed one by one: the same
    atoms, and the same insertion order with each copy's own variable names, which is also the
    order in which the parsed run's space holds them. (Negative seeds: programs with removals.)"""
    if seed < 0:
        text = _dense_program(-seed)
    else:
        text = _program(seed).replace("!(bind! tok (edge d d))", "").replace("!(add-atom &self (edge c tok))", "")
    expected = _saved_atoms(tmp_path, "parsed", text)
    runner = MeTTa()
    runner.run_program(text)
    assert expected[1] == [repr(atom) for atom in runner.space.atoms()]
    loaded = _record_bulk_loads(monkeypatch)
    assert _saved_atoms(tmp_path, "bulk", text) == expected
    assert any(loaded) and len(expected[0]) > 5


def test_the_stop_at_an_error_still_leaves_a_later_syntax_error_unread(monkeypatch) -> None:
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    text = "(edge a b)\n(= (f $x) (g $x))\n!(f a)\n!(Error x y)\n(edge c d)\n!(never\n"
    runner = MeTTa()
    result = runner.run_program(text)
    assert runner.space._segment is not None
    assert result.stopped_on_error and result.parse_error is None
    assert [repr(r) for r in result.results] == ["[(g a)]", "[(Error x y)]"]
