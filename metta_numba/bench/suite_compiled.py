"""Compiled evaluation, as a user meets it: whole-process `metta-numba prog.metta` for fib with
the tiers on and off, PeTTa on the same programs when SWI-Prolog is installed, and what the
first call of a function costs to compile in tier 1 and tier 2.

PeTTa runs through the SWI-Prolog 9.0 shim of `../shared/peers/` (or the file named by
`METTA_NUMBA_PETTA`), one process per program, as its README says. It is an optional peer:
`apt-get install -y swi-prolog-nox` puts `swipl` on the PATH; without it the table says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metta_numba.bench.suite_common import Options, failed, stats_json
from metta_numba.bench.suite_interp import FIB

PETTA_SHIM = Path(__file__).resolve().parents[3] / "shared" / "peers" / "petta_swi90.pl"
WHOLE_PROCESS_FIB = (20, 25, 30)
PLAIN_FIB = 20
"""The largest fib the plain evaluator runs in the whole-process table (fib 25 takes 18 s)."""


def _petta_command(program: Path) -> list[str] | None:
    shim = Path(os.environ.get("METTA_NUMBA_PETTA", PETTA_SHIM))
    swipl = shutil.which("swipl")
    if swipl is None or not shim.exists():
        return None
    return [swipl, "--stack_limit=8g", "-q", str(shim), "--", str(program), "--silent"]


def _ours_command(program: Path, compile: bool) -> list[str]:
    command = [sys.executable, "-m", "metta_numba", str(program)]
    return command + ([] if compile else ["--no-compile"])


def _time_process(command: list[str], repeat: int, timeout_s: float) -> dict:
    samples = []
    output = ""
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return failed(f"timed out after {timeout_s:.0f} s")
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            return failed(f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1][:200]}")
        output = proc.stdout.strip()
    return {"s": stats_json(samples, "s"), "output": output.splitlines()[-1:] if output else []}


def whole_process(opts: Options, folder: Path) -> dict:
    out: dict = {}
    sizes = [10] if opts.smoke else list(WHOLE_PROCESS_FIB)
    repeat = 1 if opts.smoke else 3
    for n in sizes:
        program = folder / f"fib{n}.metta"
        program.write_text(FIB + f"!(fib {n})\n")
        opts.log(f"[compiled] whole process fib {n}")
        entry = {"metta-numba": _time_process(_ours_command(program, True), repeat, 300)}
        if n <= PLAIN_FIB:
            entry["metta-numba --no-compile"] = _time_process(_ours_command(program, False), repeat, 300)
        petta = _petta_command(program)
        entry["PeTTa"] = failed("not run: swipl or the PeTTa shim not found") if petta is None else (
            _time_process(petta, repeat, 300)
        )
        out[f"fib {n}"] = entry
    return out


def first_call_costs(opts: Options) -> dict:
    """Seconds to compile fib on its first call: tier 1 (Python source), and tier 2 (numba,
    in a fresh process: import, then compile or load from the per-user cache)."""
    from metta_numba.interp.compiled.tier import _Context
    from metta_numba.interp.runner import MeTTa

    runner = MeTTa()
    runner.run(FIB)
    ctx = _Context(runner.ev, dict(runner.ev.ops), promote_after=1)
    start = time.perf_counter()
    ctx.compile(("fib", 1))
    tier1 = time.perf_counter() - start
    probe = (
        "import time, sys\n"
        "from metta_numba.interp.runner import MeTTa\n"
        "from metta_numba.interp.compiled.tier import _Context\n"
        f"r = MeTTa(); r.run({FIB!r})\n"
        "c = _Context(r.ev, dict(r.ev.ops), promote_after=1); c.compile(('fib', 1))\n"
        "t = time.perf_counter(); c.promote('F_fib_1'); print(time.perf_counter() - t, c.promoted)\n"
    )
    tier2 = {}
    with tempfile.TemporaryDirectory() as empty_cache:
        env = {**os.environ, "XDG_CACHE_HOME": empty_cache}
        for label in ("cold cache", "warm cache"):  # the second run finds what the first wrote
            proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env)
            if proc.returncode != 0 or "fib" not in proc.stdout:
                tier2[label] = failed((proc.stderr.strip().splitlines() or ["no output"])[-1][:200])
            else:
                tier2[label] = {"s": float(proc.stdout.split()[0])}
    return {"tier 1 s": tier1, "tier 2 (numba import included)": tier2}


def bench_compiled(opts: Options) -> dict:
    with tempfile.TemporaryDirectory(prefix="metta-compiled-") as folder:
        results = {"whole process": whole_process(opts, Path(folder))}
    opts.log("[compiled] first-call compile cost")
    results["first call"] = first_call_costs(opts)
    return results
