"""Running the command as an unprivileged user (`nobody`), for tests of what such a user meets:
a read-only install, no writable home, files it may not read.

Only root can switch user; the tests skip elsewhere. The test interpreter may live where that
user cannot go (a pyenv under /root), so another interpreter of the same Python version that
the user can run is looked for, given this environment's packages on PYTHONPATH: to the user,
the install (sources and site-packages, owned by root) is read-only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534


@functools.lru_cache(maxsize=1)
def interpreter() -> str | None:
    """A Python of this version that `nobody` can start, or None."""
    if os.getuid() != 0:
        return None
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(sys.executable), shutil.which(version, path="/usr/bin:/usr/local/bin:/bin")]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                user=NOBODY,
                group=NOBODY,
                extra_groups=[],
                capture_output=True,
                text=True,
                timeout=30,
                env={"PATH": "/usr/bin:/bin"},
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return candidate
    return None


def require() -> str:
    """The interpreter, or skip the test."""
    if os.getuid() != 0:
        pytest.skip("only root can run a command as another user")
    found = interpreter()
    if found is None:
        pytest.skip("no Python of this version that the unprivileged user can run")
    return found


def world_readable_dir(prefix: str) -> Path:
    """A new folder every user can read and traverse (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o755)
    return folder


def run_as_nobody(args: list[str], *, env: dict | None = None, cwd: str | Path = "/", timeout: float = 300):
    """`python -m metta_numba ARGS` as nobody, with HOME=/nonexistent and no NUMBA_CACHE_DIR."""
    python = require()
    site_packages = sysconfig.get_paths()["purelib"]
    base = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONPATH": os.pathsep.join([str(ROOT), site_packages]),
        "PYTHONDONTWRITEBYTECODE": "1",
        # Missing kernels compile into the cache (no Python twins, no background warmup).
        "METTA_NUMBA_COLD": os.environ.get("METTA_NUMBA_COLD", "compile"),
    }
    return subprocess.run(
        [python, "-m", "metta_numba", *args],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
        cwd=cwd,
    )
