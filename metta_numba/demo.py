"""`metta-numba demo`: the project's main job in one command.

It writes the benchmark fact KB (a seeded graph of `(edge n_i n_j)` facts, plus a few rules),
compiles it into a snapshot, opens it, and answers queries from it through `--load-snapshot`,
each step in a fresh process as a user would run it. Everything is done twice: the first run
includes compiling the Numba kernels on a fresh install (they are cached afterwards), the second
shows the warm figures, which are the engine's speed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.kbgen import write_fact_kb

RULES = """
(: zero Nat)
(: succ (-> Nat Nat))
(= (add zero $x) $x)
(= (add (succ $x) $y) (succ (add $x $y)))
"""

QUERIES = """
!(match &self (edge n_5 $y) $y)
!(match &self (edge $x n_7) $x)
!(match &self (, (edge n_5 $y) (edge $y $z)) $z)
!(add (succ (succ zero)) (succ zero))
"""

SHOWN_ANSWERS = 8


class DemoError(Exception):
    """A step of the demo failed; the message holds the step's output."""


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise DemoError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return elapsed, done.stdout


def _open_time(kb_dir: Path) -> float:
    from metta_numba.store import PersistentKB

    start = time.perf_counter()
    kb = PersistentKB.open(kb_dir, readonly=True)
    elapsed = time.perf_counter() - start
    kb.close()
    return elapsed


def _shorten(line: str) -> str:
    """A result line with at most SHOWN_ANSWERS answers shown (answers here hold no commas)."""
    inner = line.strip()[1:-1]
    answers = inner.split(", ") if inner else []
    if len(answers) <= SHOWN_ANSWERS:
        return line.strip()
    return "[" + ", ".join(answers[:SHOWN_ANSWERS]) + f", ... {len(answers)} in all]"


def _seconds(value: float) -> str:
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.2f} s"


def run_demo(facts: int, directory: str | None, keep: bool, out=sys.stdout) -> int:
    """Build, open and query the demo KB twice; print the figures side by side."""
    work = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="metta-numba-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "kb.metta"
    queries = work / "queries.metta"
    written = write_fact_kb(facts, source)
    with open(source, "a", encoding="utf-8") as f:
        f.write(RULES)
    queries.write_text(QUERIES.lstrip(), encoding="utf-8")
    cli = [sys.executable, "-m", "metta_numba"]
    print(
        f"metta-numba demo: {facts:,} edge facts over {max(1, facts // 10):,} nodes and 2 typed rules "
        f"({written / 1e6:.1f} MB of MeTTa) in {work}",
        file=out,
        flush=True,
    )
    rows: dict[str, list[str]] = {"build the snapshot (process)": [], "open the snapshot": [],
                                  "answer 4 queries from it (process)": []}  # fmt: skip
    answers = []
    try:
        for attempt in (1, 2):
            kb_dir = work / f"kb{attempt}"
            if kb_dir.exists():
                shutil.rmtree(kb_dir)
            build_time, _ = _timed([*cli, "snapshot", "build", str(source), "-o", str(kb_dir)])
            open_time = _open_time(kb_dir)
            query_time, printed = _timed([*cli, "--load-snapshot", str(kb_dir), str(queries)])
            rows["build the snapshot (process)"].append(_seconds(build_time))
            rows["open the snapshot"].append(_seconds(open_time))
            rows["answer 4 queries from it (process)"].append(_seconds(query_time))
            answers.append(printed.splitlines())
    except DemoError as err:
        print(f"metta-numba demo: {err}", file=sys.stderr)
        return 1
    finally:
        if not keep and directory is None:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name in rows)
    print(f"\n{'':{width}}  {'first run':>12}  {'second run':>12}", file=out)
    for name, figures in rows.items():
        print(f"{name:{width}}  {figures[0]:>12}  {figures[1]:>12}", file=out)
    print(
        "\nThe first run includes compiling the Numba kernels on a fresh install (they are cached\n"
        "for later runs), and its open loads the store's libraries; the second run is the engine's\n"
        "speed. A process's time includes Python's start-up and imports.\n",
        file=out,
    )
    for query, line in zip(QUERIES.strip().splitlines(), answers[-1]):
        print(f"{query}\n    {_shorten(line)}", file=out)
    if answers[0] != answers[1]:
        print("metta-numba demo: the two runs gave different answers", file=sys.stderr)
        return 1
    if keep or directory is not None:
        print(f"\nKept in {work}: try  metta-numba --load-snapshot {work / 'kb2'} {queries}", file=out)
    return 0
