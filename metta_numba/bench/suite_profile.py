"""`--profile`: py-spy flame graphs of compile and of a query loop, page faults and peak RSS
of whole processes (getrusage through wait4), an RSS/USS trace of a snapshot build (psutil),
and `perf stat` counters where perf is installed and the kernel lets us use it.

Every figure that a missing tool prevents comes back as {"failed": reason}.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from metta_numba.bench.measure import run_with_rusage, sample_rss
from metta_numba.bench.suite_common import Options, child_env, failed, python_cmd


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else None


def flame_graph(name: str, cmd: list[str], figures: Path) -> dict:
    py_spy = _py_spy()
    if py_spy is None:
        return failed("py-spy not installed (pip install py-spy, extra `profile`)")
    svg = figures / f"flame-{name}.svg"
    result = run_with_rusage(
        [py_spy, "record", "--rate", "200", "--format", "flamegraph", "--output", str(svg), "--", *cmd],
        timeout_s=600, env=child_env(),
    )
    if result["returncode"] != 0 or not svg.exists():
        tail = (result["stderr"].strip().splitlines() or ["no output"])[-1]
        return failed(f"py-spy: {tail[:200]}")
    return {"svg": svg.name, "wall_s": result["wall_s"]}


def perf_stat(cmd: list[str]) -> dict:
    if shutil.which("perf") is None:
        return failed("perf not installed")
    events = "task-clock,page-faults,minor-faults,major-faults,context-switches"
    if subprocess.run(["perf", "stat", "-e", "instructions", "true"], capture_output=True).returncode == 0:
        events += ",cycles,instructions,cache-misses,branch-misses"
    result = run_with_rusage(["perf", "stat", "-x", ",", "-e", events, "--", *cmd], timeout_s=600, env=child_env())
    if result["returncode"] != 0:
        return failed(f"perf stat exit {result['returncode']}: {result['stderr'].strip()[-200:]}")
    counters = {}
    for line in result["stderr"].splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2]:
            try:
                counters[fields[2]] = float(fields[0])
            except ValueError:
                counters[fields[2]] = fields[0]  # "<not supported>" or "<not counted>"
    return counters or failed("perf stat printed no counters")


def rss_trace(cmd: list[str]) -> dict:
    try:
        samples, code = sample_rss(cmd)
    except ImportError:
        return failed("psutil not installed")
    if code != 0 or not samples:
        return failed(f"exit {code}")
    return {
        "peak_rss_bytes": max(s[1] for s in samples),
        "peak_uss_bytes": max(s[2] for s in samples),
        "samples": len(samples),
    }


def bench_profile(opts: Options, baseline: dict) -> dict:
    """Profile the largest baseline size of the run."""
    label = opts.sizes[-1]
    source = Path("/tmp") / f"kb_{label}.metta" if label != "smoke" else opts.workdir / "kb_smoke.metta"
    kb_path = opts.workdir / f"{label}.kb"
    figures = opts.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    n = baseline[label]["n"]
    query = f"!(match &self (= (and{(n // 4) // 2} $a $b) $r) ($a $b $r))"
    seconds = "2" if opts.smoke else "10"
    child = ("-m", "metta_numba.bench.suite_child")
    compile_cmd = python_cmd(*child, "compile", str(source), "3" if label != "large" else "1")
    loop_cmd = python_cmd(*child, "query-loop", str(kb_path), seconds, query)
    build_cmd = python_cmd("-m", "metta_numba", "snapshot", "build", str(source), "-o",
                           str(opts.workdir / f"{label}-profile.kb"), "--no-merkleize")
    one_query = opts.workdir / f"q1_{label}.metta"
    startup_cmd = python_cmd("-m", "metta_numba", "--load-snapshot", str(kb_path), str(one_query))
    opts.log(f"[profile {label}] py-spy, perf, rusage")
    out: dict = {"size": label}
    out["flame_compile"] = flame_graph(f"compile-{label}", compile_cmd, figures)
    out["flame_query_loop"] = flame_graph(f"query-loop-{label}", loop_cmd, figures)
    build = run_with_rusage(build_cmd, timeout_s=900, env=child_env())
    startup = run_with_rusage(startup_cmd, timeout_s=300, env=child_env())
    for key, result in (("rusage_build", build), ("rusage_startup", startup)):
        out[key] = (
            failed(f"exit {result['returncode']}") if result["returncode"] != 0
            else {k: result[k] for k in ("wall_s", "minor_faults", "major_faults", "peak_rss_bytes")}
        )
    out["rss_trace_build"] = rss_trace(build_cmd)
    out["perf_stat_startup"] = perf_stat(startup_cmd)
    return out
