"""Process-level measurements shared by the benchmark suite and the profiling scripts:
page faults and peak RSS of a command, an RSS sampler, and dropping files from the page cache.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def peak_rss_of(pid: int | str = "self") -> int | None:
    """VmHWM of a live process, in bytes: the peak RSS of its current program.

    getrusage's ru_maxrss is no use for a child of a large process: Linux carries the parent's
    peak over into the child at fork and exec, so every child seems at least as big as the
    bench process that started it."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _runs(pid: int, cmd: list[str]) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1] == [os.fsencode(str(part)) for part in cmd]
    except OSError:
        return False


def run_with_rusage(cmd: list[str], timeout_s: float | None = None, **popen_kwargs) -> dict:
    """Run a command to completion; return its wall time, exit code, peak RSS in bytes, and the
    getrusage figures of that child alone (minor/major page faults, user and system CPU
    seconds). A command still running after `timeout_s` is killed; `timed_out` says so."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **popen_kwargs)
        peak, timed_out, pause = None, False, 0.001
        while True:
            # wait4 reports this child's own usage (RUSAGE_CHILDREN would mix in earlier ones).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            # Until the child has exec'd the command, its memory is still the parent's.
            if peak is not None or _runs(proc.pid, cmd):
                peak = max(peak or 0, peak_rss_of(proc.pid) or 0)
            if timeout_s is not None and time.perf_counter() - start > timeout_s:
                proc.kill()
                timed_out = True
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return {
        "cmd": cmd,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "minor_faults": usage.ru_minflt,
        "major_faults": usage.ru_majflt,
        # Sampled every 10 ms at most; a peak in the last few milliseconds before exit is missed.
        "peak_rss_bytes": peak if peak is not None else usage.ru_maxrss * 1024,
        "stdout": stdout.decode("utf-8", "replace"),
        "stderr": stderr.decode("utf-8", "replace"),
    }


def sample_rss(cmd: list[str], interval_s: float = 0.01) -> tuple[list[tuple[float, int, int]], int]:
    """Run a command and sample its RSS and USS every `interval_s`.

    Returns ([(seconds since start, rss bytes, uss bytes), ...], exit code). USS (memory unique
    to the process) is what it really costs; RSS also counts shared snapshot pages."""
    import psutil

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    handle = psutil.Process(proc.pid)
    samples: list[tuple[float, int, int]] = []
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            info = handle.memory_full_info()
            samples.append((time.perf_counter() - start, info.rss, info.uss))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            break
        time.sleep(interval_s)
    return samples, proc.wait()


def drop_from_page_cache(paths: Iterable[str | os.PathLike]) -> int:
    """Ask the kernel to drop the given files (or every file under a directory) from the page
    cache, so the next read is cold. Returns how many files were advised."""
    count = 0
    for root in paths:
        root = Path(root)
        files = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else [root]
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                # Dirty pages cannot be dropped, so write them out first.
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count
