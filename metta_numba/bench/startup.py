"""Whole-process start-up of the command, direct and through `metta-numba serve`, with where the
direct command's time goes (imports, kernel loads from the cache, the KB open, the rest).

    python -m metta_numba.bench.startup KB --program '!(add1250 zero zero)' \
        --pattern '(= (add1250 $a $b) $r)' [--source SRC.metta] [--hyperon VENV] [--repeat 5]

Every figure is the median of `--repeat` fresh processes (min-max in brackets), with the page
and kernel caches warm (one untimed run first): wall time, and CPU time (user + system), which
a busy machine inflates less. The breakdown comes from separate runs with CPU-time timers
around importing, `cold_start.load_cached` and `PersistentKB.open`; time goes to the
innermost phase (an import made while a kernel loads counts as an import). With `--source` (the
KB's text) and `--hyperon` (a venv with hyperon's `metta-py`), hyperon's whole process loading
that text and answering the program is measured too. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BREAKDOWN_CHILD = r"""
import contextlib, io, json, os, sys, time
import importlib._bootstrap as bootstrap
clock = time.process_time  # CPU time: what a busy machine changes least
spent = {}
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

start = clock()
bootstrap._find_and_load = timed("imports", bootstrap._find_and_load)
from metta_numba import cli
cli.prepare_process()  # as the command's entry point does, before NumPy is imported
from metta_numba import cold_start
cold_start.load_cached = timed("kernel loads", cold_start.load_cached)
from metta_numba.store import kb as kb_module
kb_module.PersistentKB.open = classmethod(timed("open", kb_module.PersistentKB.open.__func__))
with contextlib.redirect_stdout(io.StringIO()):
    code = cli.main(sys.argv[1:])
leave()
spent["in the process"] = clock() - start
print(json.dumps(spent), file=sys.stderr, flush=True)
os._exit(code)
"""
PHASES = ("imports", "kernel loads", "open", "other")


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules load from their bytecode
    return env


def wall(cmd: list[str], repeat: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of `repeat` runs of `cmd` (after one untimed run); a
    failure stops the bench."""
    walls, cpus = [], []
    for i in range(repeat + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, env=_env())
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
        if i:
            walls.append(elapsed)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def phase_samples(args: list[str], repeat: int, env: dict | None = None) -> dict[str, list[float]]:
    """CPU seconds per phase of `repeat` runs of the command ARGS; RuntimeError (its stderr's
    last line) when a run fails."""
    phases: dict[str, list[float]] = {}
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", BREAKDOWN_CHILD, *args], capture_output=True,
                              env=_env() if env is None else env)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.decode().strip().splitlines() or ["no output"])[-1][:400])
        figures = json.loads(done.stderr.decode().strip().splitlines()[-1])
        for phase in (*PHASES, "in the process"):
            phases.setdefault(phase, []).append(figures.get(phase, 0.0))
    return phases


def breakdown(args: list[str], repeat: int) -> dict[str, list[float]]:
    try:
        return phase_samples(args, repeat)
    except RuntimeError as err:
        sys.exit(f"breakdown of {args} failed: {err}")


def shown(samples: list[float]) -> str:
    ms = [s * 1e3 for s in samples]
    return f"{statistics.median(ms):.0f} ms ({min(ms):.0f}-{max(ms):.0f})"


def shown_process(figures: tuple[list[float], list[float]]) -> str:
    walls, cpus = figures
    return f"{shown(walls)}; CPU {shown(cpus)}"


def start_server(kb: Path, sock: Path) -> subprocess.Popen:
    log = sock.with_suffix(".log")
    with open(log, "wb") as err:
        server = subprocess.Popen([sys.executable, "-m", "metta_numba", "serve", str(kb), "--socket", str(sock)],
                                  stderr=err, env=_env())
    deadline = time.monotonic() + 300
    while "serving" not in log.read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            sys.exit(f"the server did not start: {log.read_text()[-400:]}")
        time.sleep(0.05)
    return server


def client_imports(cmd: list[str]) -> str:
    """The heavy packages a client process imports (from -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True, env=_env())
    heavy = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            top = line.rsplit("|", 1)[1].strip().split(".")[0]
            if top in ("numpy", "numba", "llvmlite", "h5py"):
                heavy.add(top)
    return ", ".join(sorted(heavy)) or "none"


def served_rows(kb: Path, work: Path, command: list[str], run_args: list[str], query_args: list[str], repeat: int):
    rows = []
    sock = work / "s.sock"
    server = start_server(kb, sock)
    try:
        for name, cli_args in (("run --load-snapshot KB q.metta", run_args), ("query KB PATTERN", query_args)):
            served = command + cli_args + ["--server", str(sock)]
            rows.append((f"`{name} --server S`, whole process", shown_process(wall(served, repeat))))
        client = ["-m", "metta_numba", *query_args, "--server", str(sock)]
        rows.append(("heavy packages the client imports", client_imports(client)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kb", type=Path)
    parser.add_argument("--program", required=True, help="a one-query program, e.g. '!(add1250 zero zero)'")
    parser.add_argument("--pattern", required=True, help="a `query` pattern")
    parser.add_argument("--source", type=Path, help="the KB's text, for hyperon")
    parser.add_argument("--hyperon", type=Path, help="a venv with hyperon (its bin/metta-py runs the text)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--direct-only", action="store_true", help="no server figures (a version without serve)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "metta_numba"]
    work = Path(tempfile.mkdtemp(prefix="mn-startup-"))
    program = work / "q.metta"
    program.write_text(args.program + "\n")
    run_args = ["run", "--load-snapshot", str(args.kb), str(program)]
    query_args = ["query", str(args.kb), args.pattern]
    interpreter = shown_process(wall([sys.executable, "-c", "pass"], args.repeat))
    rows: list[tuple[str, str]] = [("`python -c pass` (the interpreter alone)", interpreter)]
    for name, cli_args in (("run --load-snapshot KB q.metta", run_args), ("query KB PATTERN", query_args)):
        rows.append((f"`{name}`, whole process", shown_process(wall(command + cli_args, args.repeat))))
        phases = breakdown(cli_args, args.repeat)
        rows.append(("&nbsp;&nbsp;in the process (CPU, timed run)", shown(phases["in the process"])))
        for phase in PHASES:
            rows.append((f"&nbsp;&nbsp;{phase} (CPU)", shown(phases[phase])))
    if not args.direct_only:
        rows += served_rows(args.kb, work, command, run_args, query_args, args.repeat)
    if args.source and args.hyperon:
        text = work / "with-query.metta"
        text.write_text(args.source.read_text() + "\n" + args.program + "\n")
        metta_py = str(args.hyperon / "bin" / "metta-py")
        figure = shown_process(wall([metta_py, str(text)], args.repeat))
        rows.append(("hyperon `metta-py` of the KB's text + the program, whole process", figure))
    shutil.rmtree(work, ignore_errors=True)
    print("| what | wall time, median (min-max); CPU time (user + system) |\n|---|---|")
    for name, figure in rows:
        print(f"| {name} | {figure} |")


if __name__ == "__main__":
    main()
