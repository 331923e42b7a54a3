"""Whole-process start-up, as a new user meets it: the command with a warm kernel cache (and
where its CPU time goes), with an empty kernel cache, `snapshot build` followed by a query, and
hyperon loading the same KB's text and answering the same query.

Every figure comes from fresh processes on the smallest baseline KB of the run. The empty-cache
runs each get a new cache folder (NUMBA_CACHE_DIR), so they pay what a first run after an
install pays: uncached kernels run as their Python twins while a background `warmup` fills the
cache (cold_start.py); that background process is stopped after each run, so it does not
compete with the next measurement.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from metta_numba.bench.kbgen import baseline_rule_count
from metta_numba.bench.measure import run_with_rusage
from metta_numba.bench.report import Table
from metta_numba.bench.startup import PHASES, phase_samples
from metta_numba.bench.suite_baseline import size_n, source_file
from metta_numba.bench.suite_common import (
    Options,
    baseline_queries,
    child_env,
    failed,
    is_failed,
    metta_py,
    middle_index,
    run_metta_py,
    stats_json,
)


def command_env(cache: str | None = None) -> dict:
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: modules load from their bytecode
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    return env


def command_process(args: list[str], env: dict, timeout_s: float = 300, cwd: Path | None = None) -> dict:
    """One `python -m metta_numba ARGS` process: wall and CPU seconds and its output, or a
    failure."""
    result = run_with_rusage([sys.executable, "-m", "metta_numba", *args], timeout_s=timeout_s, env=env, cwd=cwd)
    if result["timed_out"] or result["returncode"] != 0:
        tail = (result["stderr"].strip().splitlines() or ["no output"])[-1]
        return failed(f"exit {result['returncode']}: {tail[:200]}")
    return {"wall_s": result["wall_s"], "cpu_s": result["user_s"] + result["sys_s"], "stdout": result["stdout"]}


def _repeated(run, repeat: int) -> dict:
    """Stats of wall and CPU seconds over `repeat` runs (after one untimed run), or the first
    failure."""
    runs = []
    for i in range(repeat + 1):
        figures = run()
        if is_failed(figures):
            return figures
        if i:
            runs.append(figures)
    return run_times(runs)


def run_times(runs: list[dict]) -> dict:
    """Stats of the wall and CPU seconds of `runs`."""
    return {
        "wall_s": stats_json([r["wall_s"] for r in runs], "s"),
        "cpu_s": stats_json([r["cpu_s"] for r in runs], "s"),
    }


def stop_warmups(cache: str) -> None:
    """Stop the background warmup a cold run started with `cache` as its kernel cache."""
    import psutil

    for process in psutil.process_iter(["pid"]):
        try:
            if process.pid != os.getpid() and process.environ().get("NUMBA_CACHE_DIR") == cache:
                process.kill()
                process.wait(10)
        except (psutil.Error, OSError):
            continue


def cold_runs(args: list[str], expected: str, repeat: int, extra_env: dict | None = None,
              cwd: Path | None = None) -> dict:  # fmt: skip
    """Runs with an empty kernel cache each (`extra_env` added to the environment, from `cwd`);
    the answer must be the warm run's."""
    runs = []
    for _ in range(repeat):
        cache = tempfile.mkdtemp(prefix="metta-cold-cache-")
        try:
            figures = command_process(args, {**command_env(cache), **(extra_env or {})}, cwd=cwd, timeout_s=600)
        finally:
            stop_warmups(cache)
            shutil.rmtree(cache, ignore_errors=True)
        if is_failed(figures):
            return figures
        if figures["stdout"] != expected:
            return failed("the answer with an empty kernel cache differs from the warm one")
        runs.append(figures)
    return run_times(runs)


def _breakdown(args: list[str], repeat: int) -> dict:
    """CPU seconds per phase (bench.startup's timers) over `repeat` runs, or a failure."""
    try:
        phases = phase_samples(args, repeat, command_env())
    except RuntimeError as err:
        return failed(str(err)[:200])
    return {phase: stats_json(samples, "s") for phase, samples in phases.items()}


def bench_startup(opts: Options) -> dict:
    label = "small" if "small" in opts.sizes else opts.sizes[0]
    n = size_n(label)
    source = source_file(label, opts.workdir)
    kb = opts.workdir / f"{label}.kb"
    if not kb.exists():
        return failed(f"the {label} KB was not built")
    repeat = max(1, min(opts.repeat, 5))
    program = opts.workdir / f"startup_{label}.metta"
    program.write_text(next(iter(baseline_queries(n).values())) + "\n")
    pattern = f"(= (and{middle_index(n)} $a $b) $r)"
    commands = {
        "run --load-snapshot KB q.metta": ["run", "--load-snapshot", str(kb), str(program)],
        "query KB PATTERN": ["query", str(kb), pattern],
    }
    opts.log(f"[startup] {label}: warm and empty kernel caches")
    result: dict = {"label": label, "rules": baseline_rule_count(n), "commands": {}}
    for name, args in commands.items():
        warm = command_process(args, command_env())
        if is_failed(warm):
            result["commands"][name] = warm
            continue
        result["commands"][name] = {
            "warm": _repeated(lambda args=args: command_process(args, command_env()), repeat),
            "breakdown": _breakdown(args, repeat),
            "cold_cache": cold_runs(args, warm["stdout"], max(1, min(repeat, 3))),
        }
    built = opts.workdir / f"startup_{label}_build.kb"

    def build_and_query() -> dict:
        shutil.rmtree(built, ignore_errors=True)
        build = command_process(["snapshot", "build", str(source), "-o", str(built)], command_env())
        if is_failed(build):
            return build
        query = command_process(["query", str(built), pattern], command_env())
        if is_failed(query):
            return query
        return {"wall_s": build["wall_s"] + query["wall_s"], "cpu_s": build["cpu_s"] + query["cpu_s"]}

    result["build_then_query"] = _repeated(build_and_query, repeat)
    shutil.rmtree(built, ignore_errors=True)
    result["hyperon"] = _hyperon(opts, source, program, repeat)
    program.unlink()
    return result


def _hyperon(opts: Options, source: Path, program: Path, repeat: int) -> dict:
    """hyperon's `metta-py` on the KB's text followed by the same query, whole process."""
    command = metta_py(opts)
    if command is None:
        return failed("not run: no hyperon `metta-py` given (--peers)")
    text = program.with_name(program.stem + "_with_kb.metta")
    text.write_bytes(source.read_bytes() + b"\n" + program.read_bytes())
    try:
        return _repeated(lambda: run_metta_py(command, text), repeat)
    finally:
        text.unlink()


def startup_table(startup: dict) -> Table:
    from metta_numba.bench.suite_report import cell, get

    if is_failed(startup):
        table = Table("Start-up, whole process", ["what", "wall time", "CPU time (user + system)", "target"])
        table.add("start-up", cell(startup), "-", "-")
        return table
    label = startup.get("label", "?")
    table = Table(
        f"Start-up, whole process, {label} KB ({startup.get('rules', 0):,} rules), one query",
        ["what", "wall time", "CPU time (user + system)", "target"],
        note="Warm: page and kernel caches warm (after one untimed run). Empty kernel cache: a new "
        "NUMBA_CACHE_DIR per run (uncached kernels run as Python while a background warmup fills "
        "the cache). The phases are CPU time in a separate timed run (bench.startup).",
    )
    for name, figures in startup.get("commands", {}).items():
        if is_failed(figures):
            table.add(f"`{name}`", cell(figures), "-", "-")
            continue
        target = "≤ 0.7 s" if name.startswith("run") else "-"
        table.add(f"`{name}`, warm caches", cell(get(figures, "warm/wall_s")), cell(get(figures, "warm/cpu_s")),
                  target)
        phases = figures.get("breakdown", {})
        if is_failed(phases):
            table.add("&nbsp;&nbsp;phases", cell(phases), "-", "-")
        else:
            for phase in (*PHASES, "in the process"):
                table.add(f"&nbsp;&nbsp;{phase}", "-", cell(phases.get(phase)), "-")
        table.add(f"`{name}`, empty kernel cache", cell(get(figures, "cold_cache/wall_s")),
                  cell(get(figures, "cold_cache/cpu_s")), "≤ 5 s" if name.startswith("run") else "-")
    table.add("`snapshot build SRC -o KB`, then `query KB PATTERN`", cell(get(startup, "build_then_query/wall_s")),
              cell(get(startup, "build_then_query/cpu_s")), "< 1.5 s")
    table.add("hyperon `metta-py`: the KB's text + the same query", cell(get(startup, "hyperon/wall_s")),
              cell(get(startup, "hyperon/cpu_s")), "-")
    return table
