"""Where a `metta-numba` command's start-up goes: imports, kernel loads from the cache, the KB
open, and the rest (parsing the program, the query, printing), in one process.

    python profiling/startup_breakdown.py [--repeat 5] -- run --load-snapshot KB q.metta
    python profiling/startup_breakdown.py -- query KB '(edge n_1 $x)'

Each repeat is a fresh process. Time is given to the innermost phase running: an import made
while a kernel loads counts as an import, a kernel loaded during the open counts as a kernel
load. The whole-process wall time (interpreter start and exit included) is measured outside.
Prints the median of each phase in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHILD = r"""
import io, json, sys, time, contextlib
import importlib._bootstrap as bootstrap
clock = time.perf_counter
spent = {"imports": 0.0, "kernel loads": 0.0, "open": 0.0}
stack = [["other", clock()]]

def enter(phase):
    now = clock()
    top = stack[-1]
    spent[top[0]] = spent.get(top[0], 0.0) + now - top[1]
    stack.append([phase, now])

def leave():
    now = clock()
    phase, since = stack.pop()
    spent[phase] = spent.get(phase, 0.0) + now - since
    if stack:
        stack[-1][1] = now

def timed(phase, func):
    def wrapper(*args, **kwargs):
        enter(phase)
        try:
            return func(*args, **kwargs)
        finally:
            leave()
    return wrapper

bootstrap._find_and_load = timed("imports", bootstrap._find_and_load)
start = clock()
from metta_numba import cold_start, jit
cold_start.load_cached = timed("kernel loads", cold_start.load_cached)
from metta_numba.store import generation
from metta_numba.store import kb as kb_module
kb_module.PersistentKB.open = classmethod(timed("open", kb_module.PersistentKB.open.__func__))
from metta_numba import cli
with contextlib.redirect_stdout(io.StringIO()):
    code = cli.main(sys.argv[1:])
leave()
spent["total in main"] = clock() - start
print(json.dumps({"code": code, **spent}), file=sys.stderr, flush=True)
import os
os._exit(0)  # as the command does: no interpreter teardown
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the metta-numba arguments (after --)")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD, *command], capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"failed: {done.stderr.strip()[-500:]}")
        figures = json.loads(done.stderr.strip().splitlines()[-1])
        figures.pop("code")
        figures["whole process"] = wall
        for key, value in figures.items():
            rows.setdefault(key, []).append(value * 1e3)
        # The plain command, without the timers, as a user runs it.
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "metta_numba", *command], capture_output=True, check=True)
        rows.setdefault("whole process, untimed", []).append((time.perf_counter() - started) * 1e3)
    for key, values in rows.items():
        print(f"{key:>24}: {statistics.median(values):7.1f} ms  ({min(values):.1f}-{max(values):.1f})")


if __name__ == "__main__":
    main()
