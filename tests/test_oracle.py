"""Differential tests: random programs run through hyperon and through metta_numba agree.

A seeded generator writes small programs: facts (a multiset, some holding variables), rules
with variables, nondeterministic and overlapping rules, recursive rules over small numbers and
Peano numerals, match queries with conjunctions, and let / let* / case / collapse around them.
Each program runs through hyperon's Python API (`hyperon.MeTTa().run`) and through ours, and the
results of each `!` must be the same multiset of atoms up to renaming of variables.

Generated programs stay clear of what would make the comparison unfair: nothing depends on the
order of alternatives (a `collapse` is only summed or counted), there is no division or
remainder, no type error, no assert, no string, and no printed space or state, since hyperon
0.2.6 (the version the project's environment pins) prints errors and some library results
differently from 0.2.10.

METTA_ORACLE_EXAMPLES sets the number of programs (default 100), METTA_ORACLE_SEED the seed of
the first one (each program has its own seed, so a failure names the seed that reproduces it).
A disagreement is reported with its program shrunk to the lines that still disagree.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, alpha_equal
from metta_numba.syntax import format_atom, parse_atom

pytestmark = pytest.mark.oracle

EXAMPLES = int(os.environ.get("METTA_ORACLE_EXAMPLES", "100"))
FIRST_SEED = int(os.environ.get("METTA_ORACLE_SEED", "1000"))
OUR_TIME_LIMIT_SECONDS = 30
MAX_REPORTED = 5

SYMBOLS = ("a", "b", "c", "d")
COLORS = ("red", "blue")
QUERY_VARIABLES = ("$x", "$y", "$z", "$w")


# --------------------------------------------------------------------------- generator


class ProgramGenerator:
    """Writes one random program; every line is one top-level atom (facts, rules, queries)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def program(self) -> str:
        lines = self.facts() + self.rules()
        # `!` glued to a token other than `(` would make one symbol: `! 3`, not `!3`.
        lines += [f"! {self.query()}" for _ in range(self.rng.randint(3, 8))]
        return "\n".join(lines) + "\n"

    # --- stored atoms

    def facts(self) -> list[str]:
        rng = self.rng
        facts = [f"(edge {rng.choice(SYMBOLS)} {rng.choice(SYMBOLS)})" for _ in range(rng.randint(2, 7))]
        facts += [f"(val {rng.choice(SYMBOLS)} {rng.randint(0, 4)})" for _ in range(rng.randint(1, 5))]
        facts += [f"(color {rng.choice(SYMBOLS)} {rng.choice(COLORS)})" for _ in range(rng.randint(0, 4))]
        facts += [
            f"(link (pair {rng.choice(SYMBOLS)} {rng.choice(SYMBOLS)}) {rng.randint(0, 4)})"
            for _ in range(rng.randint(0, 3))
        ]
        if rng.random() < 0.3:
            # A stored variable matches anything in that position.
            facts.append(f"(edge $any {rng.choice(SYMBOLS)})")
        if rng.random() < 0.3:
            facts.append(rng.choice(facts))  # spaces are multisets
        rng.shuffle(facts)
        return facts

    def rules(self) -> list[str]:
        rng = self.rng
        picks = rng.sample(SYMBOLS, rng.randint(1, 3))
        rules = [
            f"(= (inc $n) (+ $n {rng.randint(1, 3)}))",
            "(= (twice $n) (* $n 2))",
            f"(= (poly $n) (+ (* $n $n) {rng.randint(0, 3)}))",
            *[f"(= (pick) {s})" for s in picks],
            "(= (choose $n) $n)",
            f"(= (choose $n) (+ $n {rng.randint(1, 5)}))",
            "(= (kind 0) zero)",
            "(= (kind $n) num)",
            f"(= (kind {rng.choice(SYMBOLS)}) sym)",
            "(= (next $s) (match &self (edge $s $t) $t))",
            "(= (two-hop $s) (match &self (, (edge $s $m) (edge $m $t)) $t))",
            "(= (score $s) (match &self (val $s $v) $v))",
            "(= (sumto $n) (if (< $n 1) 0 (+ $n (sumto (- $n 1)))))",
            "(= (reach $s $k) (if (< $k 1) $s (reach (next $s) (- $k 1))))",
            "(= (steps $n) (if (< $n 1) (done) (superpose ((steps (- $n 1)) (at $n)))))",
            "(= (add Z $m) $m)",
            "(= (add (S $k) $m) (S (add $k $m)))",
            "(= (swap ($p $q)) ($q $p))",
            "(= (first (pair $l $r)) $l)",
            "(= (mk $v) (pair $v $fresh))",
            "(= (pos $n) (if (> $n 0) $n (empty)))",
        ]
        if rng.random() < 0.3:
            rules.append(rng.choice(rules))  # a duplicated rule doubles its results
        rng.shuffle(rules)
        return rules

    # --- expressions

    def number(self, depth: int, plain: bool = False) -> str:
        """A number-valued expression; `plain` leaves out `superpose`, which hyperon 0.2.6's type
        check rejects inside an `if` condition (0.2.10 accepts it)."""
        rng = self.rng
        if depth <= 0 or rng.random() < 0.3:
            return str(rng.randint(0, 4))
        d = depth - 1
        forms: list[Callable[[], str]] = [
            lambda: f"(inc {self.number(d, plain)})",
            lambda: f"(twice {self.number(d, plain)})",
            lambda: f"(poly {self.number(d, plain)})",
            # Arithmetic arguments are plain too: hyperon 0.2.6 also rejects a `superpose` nested
            # under two grounded operations.
            lambda: f"({rng.choice('+-*')} {self.number(d, True)} {self.number(d, True)})",
            lambda: f"(choose {self.number(d, plain)})",
            lambda: f"(score {self.symbol(d)})",
            lambda: f"(sumto {rng.randint(0, 6)})",
            lambda: f"(pos {self.number(d, plain)})",
            lambda: f"(let $v{depth} {self.number(d, plain)} (+ $v{depth} {self.number(d, plain)}))",
            lambda: f"(if {self.condition(d)} {self.number(d, plain)} {self.number(d, plain)})",
        ]
        if not plain:
            forms.append(lambda: f"(superpose ({' '.join(self.number(d) for _ in range(rng.randint(1, 3)))}))")
        return rng.choice(forms)()

    def symbol(self, depth: int) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.3:
            return rng.choice(SYMBOLS)
        # The walks over edges fan out; nesting them multiplies the answers (three nested
        # two-hops ran hyperon out of memory), so their start is never another walk.
        forms: list[Callable[[], str]] = [
            lambda: "(pick)",
            lambda: f"(next {self.start()})",
            lambda: f"(two-hop {self.start()})",
            lambda: f"(reach {self.start()} {rng.randint(0, 2)})",
            lambda: f"(superpose ({' '.join(rng.sample(SYMBOLS, rng.randint(1, 3)))}))",
        ]
        return rng.choice(forms)()

    def start(self) -> str:
        return self.rng.choice((*SYMBOLS, "(pick)"))

    def condition(self, depth: int) -> str:
        rng = self.rng
        operator = rng.choice(("<", ">", "<=", ">=", "=="))
        return f"({operator} {self.number(depth, plain=True)} {self.number(depth, plain=True)})"

    def peano(self, n: int) -> str:
        return "Z" if n == 0 else f"(S {self.peano(n - 1)})"

    def pattern_clause(self, variables: list[str]) -> str:
        rng = self.rng

        def term(constants: tuple) -> str:
            if rng.random() < 0.7:
                v = rng.choice(QUERY_VARIABLES[: rng.randint(1, 4)])
                variables.append(v)
                return v
            return str(rng.choice(constants))

        relation = rng.choice(("edge", "edge", "val", "color", "link"))
        if relation == "link":
            pair = f"(pair {term(SYMBOLS)} {term(SYMBOLS)})" if rng.random() < 0.7 else term(("(pair a b)",))
            return f"(link {pair} {term(tuple(range(5)))})"
        if relation == "edge":
            return f"(edge {term(SYMBOLS)} {term(SYMBOLS)})"
        if relation == "val":
            return f"(val {term(SYMBOLS)} {term(tuple(range(5)))})"
        return f"(color {term(SYMBOLS)} {term(COLORS)})"

    def match_query(self) -> str:
        variables: list[str] = []
        clauses = [self.pattern_clause(variables) for _ in range(self.rng.randint(1, 3))]
        pattern = clauses[0] if len(clauses) == 1 else f"(, {' '.join(clauses)})"
        template = f"({' '.join(dict.fromkeys(variables))})" if variables else "found"
        return f"(match &self {pattern} {template})"

    def space_query(self) -> str:
        """Adds and removes in a fresh space, then a match over it (the space is never printed)."""
        rng = self.rng
        steps = [
            f"($_ ({rng.choice(('add-atom', 'add-atom', 'remove-atom'))} $s (k {rng.choice(SYMBOLS)})))"
            for _ in range(rng.randint(1, 4))
        ]
        return f"(let $s (new-space) (let* ({' '.join(steps)}) (match $s (k $v) $v)))"

    def query(self) -> str:
        rng = self.rng
        depth = rng.randint(1, 3)
        forms: list[Callable[[], str]] = [
            lambda: self.number(depth),
            lambda: self.number(depth),
            lambda: self.symbol(depth),
            self.match_query,
            self.match_query,
            lambda: rng.choice(
                (
                    "(kind $q)",
                    "(kind 0)",
                    "(kind 2)",
                    f"(kind {rng.choice(SYMBOLS)})",
                    "(next $q)",
                    # Query variables bound by rule heads; not by a match inside a rule, which
                    # binds them in 0.2.10 but not in 0.2.6.
                    "(let $r (kind $q) ($q $r))",
                    "(let $r (swap $w) ($w $r))",
                    "(score $q)",
                )
            ),
            lambda: f"(let* (($p {self.symbol(depth)}) ($n (score $p))) ($p $n))",
            lambda: f"(case {self.number(depth)} ((0 zero) (1 one) ($other (big $other))))",
            lambda: f"(case {self.symbol(depth)} ((Empty none) ($s (got $s))))",
            # size-atom and foldl-atom take their tuple unevaluated: bind the collapse first.
            lambda: f"(let $all (collapse {rng.choice((self.number, self.symbol))(depth)}) (size-atom $all))",
            lambda: f"(let $all (collapse {self.number(depth)}) (foldl-atom $all 0 $acc $i (+ $acc $i)))",
            lambda: f"(unique {self.symbol(depth)})",
            lambda: f"(add {self.peano(rng.randint(0, 3))} {self.peano(rng.randint(0, 3))})",
            lambda: f"(swap ({self.symbol(1)} {self.number(1)}))",
            lambda: f"(mk {self.number(1)})",
            lambda: rng.choice(("(swap $w)", "(mk $w)", "(first $w)", "(first (pair $w b))")),
            lambda: f"(first (pair {self.symbol(depth - 1)} {self.number(depth - 1)}))",
            lambda: f"(steps {rng.randint(0, 3)})",
            lambda: f"(if {self.condition(depth - 1)} (yes {self.symbol(depth - 1)}) no)",
            self.space_query,
            # A state changed once: both values deterministic, so that no order of evaluation
            # can show through.
            lambda: (
                f"(let $st (new-state {rng.randint(0, 4)}) "
                f"(let $_ (change-state! $st (+ {rng.randint(0, 4)} {rng.randint(0, 4)})) (get-state $st)))"
            ),
            lambda: f"(let ($l $r) ({self.symbol(depth - 1)} {self.number(depth - 1)}) ($r $l))",
            # unify takes its arguments as written: evaluate the symbol first.
            lambda: f"(let $s {self.symbol(depth - 1)} (unify ($s $u) (a {self.number(1)}) (matched $u) unmatched))",
        ]
        return rng.choice(forms)()


# --------------------------------------------------------------------------- running


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Interrupt our engine if it runs away (a loop in Python code sees the signal)."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# The child that runs hyperon: one program per line of JSON in, its printed results out.
_HYPERON_CHILD = """
import json, sys
import hyperon
for line in sys.stdin:
    results = hyperon.MeTTa().run(json.loads(line))
    print(json.dumps([[str(atom) for atom in r] for r in results]), flush=True)
"""


class HyperonProcess:
    """Runs programs through hyperon in a child process, replaced every `programs_per_child`
    programs: hyperon 0.2.6 keeps about 5 MB per `MeTTa()` instance until its process ends."""

    def __init__(self, programs_per_child: int = 100) -> None:
        self.programs_per_child = programs_per_child
        self.child: subprocess.Popen | None = None
        self.served = 0

    def run(self, program: str) -> list[list[Atom]]:
        if self.child is None or self.served >= self.programs_per_child:
            self.close()
            self.child = subprocess.Popen(
                [sys.executable, "-c", _HYPERON_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            self.served = 0
        self.served += 1
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps(program) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"hyperon's process ended on this program:\n{program}")
        return [[parse_atom(text) for text in results] for results in json.loads(line)]

    def close(self) -> None:
        if self.child is not None:
            self.child.stdin.close()
            self.child.wait(timeout=60)
            self.child = None


_hyperon_process = HyperonProcess()
atexit.register(_hyperon_process.close)


def run_hyperon(program: str) -> list[list[Atom]]:
    return _hyperon_process.run(program)


def run_ours(program: str) -> list[list[Atom]]:
    from metta_numba import MeTTa

    with time_limit(OUR_TIME_LIMIT_SECONDS):
        return MeTTa().run(program)


def _typed_numbers(atom: Atom) -> Atom:
    """The atom with each number replaced by a symbol naming its type and value: `1` and `1.0`
    are equal atoms (they unify) but print differently, and the comparison must see that."""
    if type(atom) is Grounded and type(atom.value) in (int, float):
        return Symbol(f"{type(atom.value).__name__}:{atom.value!r}")
    if type(atom) is Expression:
        return Expression([_typed_numbers(child) for child in atom.children])
    return atom


def same_results(expected: list[Atom], got: list[Atom]) -> bool:
    """Equal as multisets, each atom up to a renaming of its variables (numbers of one type)."""
    if len(expected) != len(got):
        return False
    remaining = [_typed_numbers(atom) for atom in got]
    for atom in map(_typed_numbers, expected):
        for i, candidate in enumerate(remaining):
            if alpha_equal(atom, candidate):
                del remaining[i]
                break
        else:
            return False
    return True


def show(results: list[Atom]) -> str:
    return "[" + ", ".join(format_atom(a) for a in results) + "]"


def compare(program: str, run_reference: Callable = run_hyperon, run_candidate: Callable = run_ours) -> list[str]:
    """The disagreements between two runs of a program, one text per `!`; empty when they agree."""
    reference = run_reference(program)
    try:
        ours = run_candidate(program)
    except Exception as error:  # a crash of our engine is a disagreement to report, not a test error
        return [f"metta_numba raised {type(error).__name__}: {error}"]
    problems = []
    queries = [line for line in program.splitlines() if line.startswith("!")]
    for index in range(max(len(reference), len(ours))):
        want = reference[index] if index < len(reference) else None
        have = ours[index] if index < len(ours) else None
        if want is None or have is None or not same_results(want, have):
            query = queries[index] if index < len(queries) else "?"
            problems.append(
                f"{query}\n    hyperon:     {'(no result list)' if want is None else show(want)}"
                f"\n    metta_numba: {'(no result list)' if have is None else show(have)}"
            )
    return problems


def shrink(program: str, disagrees: Callable[[str], bool]) -> str:
    """Drop lines one at a time while the programs still disagree (greedy, to a fixpoint)."""
    lines = program.splitlines()
    changed = True
    while changed:
        changed = False
        for i in range(len(lines) - 1, -1, -1):
            candidate = lines[:i] + lines[i + 1 :]
            if any(line.startswith("!") for line in candidate) and disagrees("\n".join(candidate) + "\n"):
                lines = candidate
                changed = True
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- tests


hyperon = pytest.importorskip("hyperon")


def test_random_programs_agree_with_hyperon(capsys: pytest.CaptureFixture) -> None:
    programs = agreed = queries = multi_result_queries = 0
    reports: list[str] = []
    for seed in range(FIRST_SEED, FIRST_SEED + EXAMPLES):
        program = ProgramGenerator(seed).program()
        reference = run_hyperon(program)
        queries += len(reference)
        multi_result_queries += sum(len(r) > 1 for r in reference)
        problems = compare(program, run_reference=lambda _text, known=reference: known)
        programs += 1
        if not problems:
            agreed += 1
            continue
        if len(reports) < MAX_REPORTED:
            small = shrink(program, lambda text: bool(compare(text)))
            reports.append(f"seed {seed}, shrunk program:\n{small}" + "\n".join(compare(small)))
    with capsys.disabled():
        print(
            f"\noracle: {programs} programs ({queries} queries, {multi_result_queries} with several "
            f"results), {agreed} agreed with hyperon {hyperon.__version__}, {programs - agreed} disagreed"
        )
    summary = f"{programs - agreed} of {programs} programs disagree"
    assert agreed == programs, summary + ":\n\n" + "\n\n".join(reports)


def test_generated_programs_are_meaningful() -> None:
    """Guards the generator: hyperon answers without errors, and the programs exercise
    nondeterminism and matching rather than yielding nothing."""
    total = with_results = with_several = 0
    for seed in range(FIRST_SEED, FIRST_SEED + 20):
        program = ProgramGenerator(seed).program()
        results = run_hyperon(program)
        assert len(results) == program.count("\n!"), f"seed {seed}: the run ended early\n{program}"
        for result in results:
            errors = [a for a in result if format_atom(a).startswith("(Error")]
            assert not errors, f"seed {seed}: {show(result)}"
        total += len(results)
        with_results += sum(bool(r) for r in results)
        with_several += sum(len(r) > 1 for r in results)
    assert with_results >= total // 2
    assert with_several >= total // 10


def test_generator_is_deterministic() -> None:
    assert ProgramGenerator(7).program() == ProgramGenerator(7).program()
    assert ProgramGenerator(7).program() != ProgramGenerator(8).program()


def test_same_results_is_a_multiset_alpha_comparison() -> None:
    def atoms(*texts: str) -> list[Atom]:
        return [parse_atom(t) for t in texts]

    assert same_results(atoms("(f $x)", "a"), atoms("a", "(f $y)"))
    assert same_results(atoms("(f $x $y)"), atoms("(f $a#3 $b#4)"))
    assert not same_results(atoms("(f $x $x)"), atoms("(f $a $b)"))
    assert not same_results(atoms("a", "a"), atoms("a"))
    assert not same_results(atoms("a", "a", "b"), atoms("a", "b", "b"))
    assert not same_results(atoms("1"), atoms("1.0"))


def test_compare_reports_and_shrink_isolates_a_disagreement() -> None:
    """The comparison machinery on a stand-in engine that gets `(twice ...)` wrong."""

    def wrong_twice(program: str) -> list[list[Atom]]:
        results = run_hyperon(program)
        queries = [line for line in program.splitlines() if line.startswith("!")]
        return [r + [parse_atom("extra")] if "twice" in q else r for q, r in zip(queries, results)]

    program = "(= (twice $n) (* $n 2))\n(= (inc $n) (+ $n 1))\n!(inc 1)\n!(twice 2)\n!(inc 5)\n"
    assert not compare(program, run_candidate=run_hyperon)
    problems = compare(program, run_candidate=wrong_twice)
    assert len(problems) == 1 and problems[0].startswith("!(twice 2)")
    small = shrink(program, lambda text: bool(compare(text, run_candidate=wrong_twice)))
    assert small == "!(twice 2)\n"
