"""Interpreter workloads (BENCHMARKS.md section 3): fib, a nondeterministic search and a
backward-chaining query, each run in a fresh runner; hyperon runs the same programs in the
same bench run, and the results of both are compared.
"""

from __future__ import annotations

import time

from metta_numba.bench.peers import run_hyperon
from metta_numba.bench.suite_common import Options, failed, stats_json
from metta_numba.interp.runner import MeTTa
from metta_numba.syntax.printer import format_atom

FIB = "(= (fib $n) (if (< $n 2) $n (+ (fib (- $n 1)) (fib (- $n 2)))))\n"

NONDETERMINISTIC = (
    "(= (digit) (superpose (0 1 2 3 4 5 6 7 8 9)))\n"
    "!(let $a (digit) (let $b (digit) (if (== (+ $a $b) 9) ($a $b) (empty))))\n"
)


def _backward_chaining(nodes: int = 255) -> str:
    # A complete binary tree of `parent` facts; `ancestor` walks it by chaining rules.
    facts = "".join(f"(parent n{i} n{2 * i + 1})\n(parent n{i} n{2 * i + 2})\n" for i in range(nodes))
    rules = (
        "(= (ancestor $x $y) (match &self (parent $x $y) True))\n"
        "(= (ancestor $x $z) (match &self (parent $x $y) (ancestor $y $z)))\n"
    )
    return facts + rules + "!(ancestor n0 n300)\n"


def programs(fib_sizes: list[int]) -> dict[str, str]:
    out = {f"fib {k}": FIB + f"!(fib {k})\n" for k in fib_sizes}
    out["nondeterministic digits"] = NONDETERMINISTIC
    out["backward chaining"] = _backward_chaining()
    return out


HYPERON_MAX_FIB = 20
"""hyperon 0.2.6 takes tens of seconds on fib 20; larger ones are left to us alone."""


def _hyperon_can_run(program: str) -> bool:
    return not program.startswith("fib") or int(program.split()[1]) <= HYPERON_MAX_FIB


def _run_ours(text: str, repeat: int, budget_s: float) -> tuple[dict, list[list[str]]]:
    samples, results = [], []
    spent = time.perf_counter()
    for _ in range(max(1, repeat)):
        runner = MeTTa()
        start = time.perf_counter()
        results = runner.run(text)
        samples.append((time.perf_counter() - start) * 1e3)
        if time.perf_counter() - spent > budget_s:
            break
    return stats_json(samples, "ms"), [sorted(format_atom(a) for a in r) for r in results]


def bench_interp(opts: Options) -> dict:
    progs = programs(opts.fib)
    out: dict = {}
    for name, text in progs.items():
        opts.log(f"[interp] {name}")
        ms, results = _run_ours(text, opts.repeat, budget_s=30)
        out[name] = {"ms": ms, "results": results}
    peer_programs = {name: text for name, text in progs.items() if _hyperon_can_run(name)}
    if not opts.hyperon_python:
        peer = failed("not run: hyperon not importable")
    else:
        opts.log("[interp] hyperon")
        spec = {"kb_file": None, "programs": peer_programs, "program_repeat": 1 if not opts.smoke else 2}
        peer = run_hyperon(opts.hyperon_python, spec, timeout_s=600)
    for name in progs:
        if "failed" in peer:
            out[name]["hyperon"] = peer
        elif name not in peer_programs:
            out[name]["hyperon"] = failed("not run: too slow in hyperon for one bench run")
        else:
            theirs = peer["programs"][name]
            out[name]["hyperon"] = {"ms": stats_json(theirs["ms"], "ms")}
            out[name]["same_results_as_hyperon"] = [sorted(r) for r in theirs["results"]] == out[name]["results"]
    return out
