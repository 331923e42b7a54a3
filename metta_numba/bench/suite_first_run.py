"""A big program's first run after an install: the medium baseline KB's text (400K rules) and
one query, in a whole process, with the kernel cache warm, empty with the package's bundled
kernels (metta_numba.kernel_bundle), and empty without them (every kernel the bulk load needs
compiles, after the Python twins' budget).

The bundled case runs a copy of the package with its bundle, as a built package holds it, in
the bench's work folder: the sources are copied each run, the bundle is built again (`python -m
metta_numba.kernel_bundle`, which compiles every kernel: its time is reported too) only when the
kernel sources changed. Each empty-cache run gets a new
NUMBA_CACHE_DIR; a background warmup it starts is stopped after it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from metta_numba.bench.kbgen import baseline_rule_count
from metta_numba.bench.report import Table
from metta_numba.bench.suite_baseline import size_n, source_file
from metta_numba.bench.suite_common import Options, baseline_queries, failed, is_failed
from metta_numba.bench.suite_startup import cold_runs, command_env, command_process, run_times
from metta_numba.kernel_cache import PACKAGE_DIR, kernel_source_digest


def _bundled_copy(workdir: Path, log) -> tuple[Path, float | None] | dict:
    """(root of a package copy holding its bundle, seconds the bundle took to build or None
    when the bundle of these kernel sources was there), or a failure. The sources are copied
    afresh each time; the bundle is built again only when the kernel sources changed."""
    root = workdir / "bundled-package"
    package = root / PACKAGE_DIR.name
    if package.is_dir():
        for entry in package.iterdir():
            if entry.name != "_kernels":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__", "_kernels"), dirs_exist_ok=True)
    if (package / "_kernels" / f"kernels-{kernel_source_digest()}").is_dir():
        return root, None
    log("[first run] compiling the kernels into a bundle (about 80 s)")
    env = command_env()
    env["PYTHONPATH"] = str(root)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "metta_numba.kernel_bundle", str(root)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        return failed(f"bundle build: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:200]}")
    return root, seconds


def bench_first_run(opts: Options) -> dict:
    if opts.smoke:
        return failed("not run with --smoke (it compiles every kernel)")
    label = "medium" if "medium" in opts.sizes else opts.sizes[0]
    n = size_n(label)
    source = source_file(label, opts.workdir)
    program = opts.workdir / f"first_run_{label}.metta"
    program.write_bytes(source.read_bytes() + b"\n" + next(iter(baseline_queries(n).values())).encode() + b"\n")
    repeat = max(1, min(opts.repeat, 3))
    result: dict = {"label": label, "rules": baseline_rule_count(n)}
    try:
        opts.log(f"[first run] {label}: warm, empty cache with and without bundled kernels")
        warm = command_process([str(program)], command_env())
        if is_failed(warm):
            return warm
        runs = [command_process([str(program)], command_env()) for _ in range(repeat)]
        failure = next((r for r in runs if is_failed(r)), None)
        if failure is None and any(r["stdout"] != warm["stdout"] for r in runs):
            failure = failed("the answer differs from the first run's")
        result["warm"] = failure or run_times(runs)
        bundled = _bundled_copy(opts.workdir, opts.log)
        if is_failed(bundled):
            result["bundled"] = bundled
        else:
            root, build_seconds = bundled
            result["bundle_build_s"] = build_seconds
            result["bundled"] = cold_runs([str(program)], warm["stdout"], repeat, {"PYTHONPATH": str(root)}, cwd=root)
        result["no_bundle"] = cold_runs([str(program)], warm["stdout"], 1)
    finally:
        program.unlink(missing_ok=True)
    return result


def first_run_table(first_run: dict) -> Table:
    from metta_numba.bench.suite_report import cell, get

    columns = ["what", "wall time", "CPU time (user + system)", "target"]
    if is_failed(first_run):
        table = Table("A big program's first run", columns)
        table.add("first run", cell(first_run), "-", "-")
        return table
    table = Table(
        f"A big program's first run, whole process: the {first_run.get('label')} KB's text "
        f"({first_run.get('rules', 0):,} rules) and one query",
        columns,
        note="Empty kernel cache: a new NUMBA_CACHE_DIR per run. Bundled kernels: a copy of the package "
        "holding the kernels a built package bundles, copied into the empty cache at start. Without "
        "them: one run; the kernels the bulk load needs compile after the Python twins' 3 s budget.",
    )
    table.add("warm kernel cache", cell(get(first_run, "warm/wall_s")), cell(get(first_run, "warm/cpu_s")), "-")
    table.add("empty kernel cache, bundled kernels", cell(get(first_run, "bundled/wall_s")),
              cell(get(first_run, "bundled/cpu_s")), "≤ 5 s")  # fmt: skip
    table.add("empty kernel cache, no bundled kernels", cell(get(first_run, "no_bundle/wall_s")),
              cell(get(first_run, "no_bundle/cpu_s")), "-")  # fmt: skip
    build = first_run.get("bundle_build_s")
    table.add("building the bundle (every kernel, generic CPU)", "-" if build is None else f"{build:.1f} s", "-", "-")
    return table
