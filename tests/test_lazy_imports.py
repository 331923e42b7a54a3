"""metta_numba.lazy_imports: the modules Numba imports without using them on our path are not
executed by importing Numba, and work as the real modules once used."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_importing_numba_runs_neither_deferred_module_until_used():
    out = run(
        """
        import sys
        import metta_numba
        import numba
        from numba.core import config
        import yaml
        from importlib import metadata
        print("safe_load" in vars(yaml), "entry_points" in vars(metadata))
        print(yaml.safe_load("a: [1, 2]"), metadata.version("numba") == numba.__version__)
        print("safe_load" in vars(yaml), "entry_points" in vars(metadata))
        try:
            yaml.no_such_name
        except AttributeError as err:
            print(err)
        """
    )
    assert out.splitlines() == [
        "False False",
        "{'a': [1, 2]} True",
        "True True",
        "module 'yaml' has no attribute 'no_such_name'",
    ]


def test_numba_reads_a_config_file_in_the_working_folder(tmp_path):
    # The one use Numba makes of yaml on import: .numba_config.yaml in the working folder.
    (tmp_path / ".numba_config.yaml").write_text("debuginfo: 1\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import metta_numba, numba.core.config as c; print(c.DEBUGINFO_DEFAULT)"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
