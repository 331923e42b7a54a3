"""Process-level measurements shared by the benchmark suite and the profiling scripts:
page faults and peak RSS of a command, an RSS sampler, and dropping files from the page cache.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path


def run_with_rusage(cmd: list[str], **popen_kwargs) -> dict:
    """Run a command to completion; return its wall time, exit code and the getrusage figures
    of the child (minor/major page faults, peak RSS in bytes, user and system CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, **popen_kwargs)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cmd": cmd,
        "returncode": proc.returncode,
        "wall_s": wall,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "major_faults": after.ru_majflt - before.ru_majflt,
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far, in KiB on Linux.
        "peak_rss_bytes": after.ru_maxrss * 1024,
        "stdout": proc.stdout.decode("utf-8", "replace"),
        "stderr": proc.stderr.decode("utf-8", "replace"),
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
