"""Regenerate tests/conformance/*.expected by running hyperon 0.2.10 on each program.

The oracle is hyperon's own `metta FILE` command, in a virtual environment of its own (the
project's environment pins an older hyperon for the differential tests):

    python3 -m venv .oracle-0210 && .oracle-0210/bin/pip install hyperon==0.2.10
    python scripts/oracle_expected.py [--metta .oracle-0210/bin/metta] [PROGRAM.metta ...]

With no program named, every tests/conformance/*.metta is regenerated. For each program the
expected file receives exactly what `metta FILE` printed on stdout. Beside the expected files,
`expected.json` records the oracle's version and, per program, the exit status, how many of the
printed lines are result lines (the rest is `println!` output, which comes first), and a hash
of the program, so that the test suite notices a program edited without regenerating.

A program whose first lines carry the marker `; expected: by hand` has an expected file written
by hand (hyperon 0.2.10 gets that case wrong or crashes on it); it is never run through the
oracle, and its sidecar entry counts every expected line as a result line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE_DIR = REPO / "tests" / "conformance"
SIDECAR = CONFORMANCE_DIR / "expected.json"
HAND_MARKER = "; expected: by hand"
TIMEOUT_SECONDS = 120
ORACLE_VERSION = "0.2.10"

# Runs a program the way hyperon's `metta` command does (same environment, same printing), and
# also writes how many result lists the run returned, which stdout alone cannot tell apart
# from `println!` output.
_COUNTING_DRIVER = """
import os, sys
import hyperon
path, count_file = sys.argv[1], sys.argv[2]
with open(path) as f:
    program = f.read()
env = hyperon.Environment.custom_env(working_dir=os.path.dirname(path), config_dir="")
results = hyperon.MeTTa(env_builder=env).run(program)
for result in results:
    print(result)
with open(count_file, "w") as f:
    f.write(str(len(results)))
"""


def find_oracle(explicit: str | None) -> Path:
    candidates = [explicit, os.environ.get("METTA_ORACLE")]
    candidates += [str(REPO / ".oracle-0210" / "bin" / "metta"), shutil.which("metta")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    sys.exit("no hyperon `metta` command found: pass --metta or set METTA_ORACLE (see the docstring)")


def is_hand_written(program: Path) -> bool:
    head = program.read_text(encoding="utf-8").splitlines()[:5]
    return any(line.strip().startswith(HAND_MARKER) for line in head)


def source_hash(program: Path) -> str:
    return hashlib.sha256(program.read_bytes()).hexdigest()


def oracle_version(metta: Path) -> str:
    out = subprocess.run([str(metta), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def run_oracle(metta: Path, program: Path) -> dict:
    """Run one program through the oracle; returns stdout, exit status and result-line count."""
    # Run from the program's directory: hyperon resolves module paths against the file, but
    # fileio paths against the current directory.
    cli = subprocess.run(
        [str(metta), program.name],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        cwd=program.parent,
    )
    result_lines = 0
    if cli.returncode == 0:
        python = metta.parent / "python"
        with tempfile.TemporaryDirectory() as tmp:
            count_file = Path(tmp) / "count"
            driver = subprocess.run(
                [str(python), "-c", _COUNTING_DRIVER, program.name, str(count_file)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                cwd=program.parent,
            )
            # Addresses of spaces and other objects differ between two runs, so only the shape
            # of the output is compared.
            if len(driver.stdout.splitlines()) != len(cli.stdout.splitlines()):
                raise RuntimeError(f"{program.name}: the counting driver's output differs from `metta`'s")
            result_lines = int(count_file.read_text())
    return {
        "stdout": cli.stdout,
        "stderr": cli.stderr,
        "exit_status": cli.returncode,
        "result_lines": result_lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metta", help="path of hyperon 0.2.10's `metta` command")
    parser.add_argument("programs", nargs="*", type=Path)
    args = parser.parse_args(argv)

    programs = [p.resolve() for p in args.programs] or sorted(CONFORMANCE_DIR.glob("*.metta"))
    sidecar = json.loads(SIDECAR.read_text()) if SIDECAR.exists() else {"programs": {}}
    metta: Path | None = None
    failures = 0
    for program in programs:
        expected = program.with_suffix(".expected")
        entry: dict = {"source_sha256": source_hash(program)}
        if is_hand_written(program):
            if not expected.exists():
                print(f"{program.name}: hand-written, but {expected.name} is missing", file=sys.stderr)
                failures += 1
                continue
            entry.update(
                expected_by="hand",
                exit_status=0,
                result_lines=len(expected.read_text(encoding="utf-8").splitlines()),
            )
        else:
            if metta is None:
                metta = find_oracle(args.metta)
                version = oracle_version(metta)
                if version != ORACLE_VERSION:
                    # The project's own environment has an older hyperon on PATH: its output
                    # differs in printing and in the library, so it must not write expectations.
                    sys.exit(f"{metta} is hyperon {version or '(unknown)'}, expected {ORACLE_VERSION}")
                sidecar["oracle"] = f"hyperon {version}"
            try:
                outcome = run_oracle(metta, program)
            except subprocess.TimeoutExpired:
                print(f"{program.name}: the oracle took longer than {TIMEOUT_SECONDS} s", file=sys.stderr)
                failures += 1
                continue
            if outcome["exit_status"] not in (0, 1):
                # A crash (a Rust panic aborts with 134) is an oracle bug: the case belongs in
                # a hand-written program, see docs/compatibility.md.
                print(
                    f"{program.name}: oracle exited {outcome['exit_status']}; stderr tail:\n"
                    + outcome["stderr"][-600:],
                    file=sys.stderr,
                )
                failures += 1
                continue
            expected.write_text(outcome["stdout"], encoding="utf-8")
            entry.update(expected_by="oracle", exit_status=outcome["exit_status"], result_lines=outcome["result_lines"])
        sidecar["programs"][program.name] = entry
        print(
            f"{program.name}: {entry['expected_by']}, exit {entry['exit_status']}, {entry['result_lines']} result lines"
        )
    sidecar["programs"] = dict(sorted(sidecar["programs"].items()))
    SIDECAR.write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
