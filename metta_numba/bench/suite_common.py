"""Shared pieces of the benchmark suite: the run's options, figures as JSON, adaptive repeats,
and running a measurement in a fresh process.

A figure in the results is either a Stats dict (median, min, max, unit, samples), a plain
number, or `{"failed": reason}` when the measurement could not be taken (a peer that crashed,
a tool that is missing). The report prints a failure as such, never as a number.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from metta_numba.bench.measure import run_with_rusage
from metta_numba.bench.timing import Stats

SMOKE_SIZES = {"smoke": 400}
"""The one baseline size of `--smoke`: 1,600 rules, enough to exercise every code path."""


@dataclass
class Options:
    sizes: list[str]
    repeat: int
    out: Path
    workdir: Path
    profile: bool = False
    hyperon_python: str | None = None
    smoke: bool = False
    fact_sizes: list[int] = field(default_factory=list)
    fib: list[int] = field(default_factory=list)
    join_facts: int = 1_000_000
    log: Callable[[str], None] = print


def failed(reason: str) -> dict:
    return {"failed": reason}


def is_failed(figure: object) -> bool:
    return isinstance(figure, dict) and "failed" in figure


def stats_json(samples: list[float], unit: str) -> dict:
    return Stats.of(samples, unit).to_json()


def from_json(figure: dict) -> Stats:
    return Stats(figure["median"], figure["min"], figure["max"], figure["unit"], figure.get("samples", []))


def median_of(figure: object) -> float | None:
    """The median of a Stats dict, the value of a number, None for a failure or absence."""
    if isinstance(figure, dict) and "median" in figure:
        return figure["median"]
    if isinstance(figure, int | float) and not isinstance(figure, bool):
        return float(figure)
    return None


def timed_samples(
    fn: Callable[[], object], repeat: int, unit: str = "ms", budget_s: float = 20.0, inner: int = 1
) -> dict:
    """Time `fn` up to `repeat` times (each sample the mean of `inner` calls), stopping early
    once `budget_s` is spent, so a slow workload gets fewer samples instead of a long run."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    samples: list[float] = []
    spent_start = time.perf_counter()
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner * scale)
        if time.perf_counter() - spent_start > budget_s:
            break
    return stats_json(samples, unit)


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".numba_cache"))
    return env


def run_child(job: str, *args: str, timeout_s: float = 900) -> dict:
    """Run one job of bench.suite_child in a fresh process; its JSON output, with the
    process's own wall time, faults and peak RSS under "process"."""
    result = run_with_rusage(
        python_cmd("-m", "metta_numba.bench.suite_child", job, *args), timeout_s=timeout_s, env=child_env()
    )
    if result["timed_out"]:
        return failed(f"timed out after {timeout_s:.0f} s")
    if result["returncode"] != 0:
        tail = result["stderr"].strip().splitlines()[-1:] or ["no output"]
        return failed(f"exit {result['returncode']}: {tail[0][:200]}")
    try:
        out = json.loads(result["stdout"].strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return failed("unreadable output")
    out["process"] = _process_figures(result)
    return out


def run_cli(*args: str, timeout_s: float = 900) -> dict:
    """Run `python -m metta_numba ARGS` in a fresh process; wall time, faults and peak RSS,
    or a failure."""
    result = run_with_rusage(python_cmd("-m", "metta_numba", *args), timeout_s=timeout_s, env=child_env())
    if result["timed_out"]:
        return failed(f"timed out after {timeout_s:.0f} s")
    if result["returncode"] != 0:
        tail = result["stderr"].strip().splitlines()[-1:] or ["no output"]
        return failed(f"exit {result['returncode']}: {tail[0][:200]}")
    figures = _process_figures(result)
    figures["stdout_lines"] = result["stdout"].count("\n")
    return figures


def _process_figures(result: dict) -> dict:
    return {key: result[key] for key in ("wall_s", "user_s", "sys_s", "minor_faults", "major_faults", "peak_rss_bytes")}


def repeated_processes(run: Callable[[], dict], repeat: int) -> dict:
    """Run a whole-process measurement `repeat` times. Returns Stats of the wall time (s), of
    the peak RSS (bytes) and of the page faults, or the first failure."""
    runs = []
    for _ in range(max(1, repeat)):
        figures = run()
        if is_failed(figures):
            return figures
        runs.append(figures.get("process", figures))
    return process_stats(runs)


def process_stats(runs: list[dict]) -> dict:
    """Stats of the whole-process figures (run_cli's) of several runs."""
    return {
        "wall_s": stats_json([r["wall_s"] for r in runs], "s"),
        "peak_rss_bytes": stats_json([float(r["peak_rss_bytes"]) for r in runs], "B"),
        "minor_faults": stats_json([float(r["minor_faults"]) for r in runs], "faults"),
        "major_faults": stats_json([float(r["major_faults"]) for r in runs], "faults"),
    }


def middle_index(n: int) -> int:
    """The {i} of the baseline queries: the middle of the KB's index range."""
    return max(0, (n // 4) // 2)


def baseline_queries(n: int) -> dict[str, str]:
    """The five queries of BENCHMARKS.md section 1, with the middle i of a KB of size n."""
    i = middle_index(n)
    return {
        "rule call": f"!(add{i} zero zero)",
        "recursion": f"!(length{i} (cons a (cons b ())))",
        "match rule head": f"!(match &self (= (and{i} $a $b) $r) ($a $b $r))",
        "match rule body": f"!(match &self (= (or{i} $a $b) False) $a)",
        "variable head": "!(match &self (= ($f zero $x) $x) $f)",
    }


def metta_py(opts: Options) -> Path | None:
    """hyperon's `metta-py` beside the bench's hyperon Python, None when there is none."""
    if not opts.hyperon_python:
        return None
    path = Path(opts.hyperon_python).parent / "metta-py"
    return path if path.exists() else None


def run_metta_py(command: Path, program: Path) -> dict:
    """One whole process of `metta-py PROGRAM`: its figures (as run_cli's, with CPU seconds), or
    a failure."""
    result = run_with_rusage([str(command), str(program)], timeout_s=900)
    if result["timed_out"] or result["returncode"] != 0:
        return failed(f"hyperon exit {result['returncode']}")
    return {**_process_figures(result), "cpu_s": result["user_s"] + result["sys_s"]}
