"""Running peer engines side by side with ours, in the same benchmark run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

PEER_SCRIPT = os.path.join(os.path.dirname(__file__), "peer_hyperon.py")


def find_hyperon_python(spec: str | None) -> str | None:
    """The Python interpreter that has hyperon: `spec` may name a venv directory or a Python
    executable; without one, this interpreter if it can import hyperon."""
    candidates = []
    if spec:
        if os.path.isdir(spec):
            candidates.append(os.path.join(spec, "bin", "python"))
        else:
            candidates.append(shutil.which(spec) or spec)
    else:
        candidates.append(sys.executable)
    for python in candidates:
        try:
            probe = subprocess.run([python, "-c", "import hyperon"], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return python
    return None


def run_hyperon(python: str, spec: dict, timeout_s: float = 1800) -> dict:
    """Run one peer job; a crash, a timeout or bad output comes back as {"failed": reason}."""
    try:
        proc = subprocess.run(
            [python, PEER_SCRIPT],
            input=json.dumps(spec).encode(),
            capture_output=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return {"failed": f"exit {proc.returncode}: {tail[0][:200]}"}
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"failed": "unreadable output"}
