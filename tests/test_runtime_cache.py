"""metta_numba.runtime_cache: Numba's runtime functions are compiled once into the kernel cache
and loaded from there; and lazy_imports.defer_numba_internals: the modules deferred while
kernels load still serve a compilation afterwards. Each case is a fresh process (the runtime
initialises once per process) over a cache folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

KERNELS = '''
import numpy as np
from numba import types
from metta_numba.jit import njit

@njit(types.Array(types.int64, 1, "C")(types.int64), cache=True)
def squares(n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = i * i
    return out
'''


def run(tmp_path, code: str, cold: str = "background") -> str:
    (tmp_path / "nrt_kernels.py").write_text(KERNELS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(tmp_path), METTA_NUMBA_COLD=cold)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def runtime_files(tmp_path) -> list:
    return sorted((tmp_path / "cache").rglob("nrt-*.nrtlib"))


FIRST = "import nrt_kernels; print(nrt_kernels.squares(4).tolist())"
# Loading from the cache: creating the runtime module again would be a compilation.
FROM_CACHE = """
    from numba.core.runtime import nrtdynmod
    def refuse(ctx):
        raise AssertionError("the runtime was compiled")
    nrtdynmod.create_nrt_module = refuse
    import nrt_kernels
    print(nrt_kernels.squares(5).tolist())
"""


def cached_kernels(tmp_path) -> None:
    """The kernel compiled into the cache, then loaded from it (which saves the runtime)."""
    assert run(tmp_path, FIRST, cold="compile").split("\n")[0] == "[0, 1, 4, 9]"
    assert runtime_files(tmp_path) == []  # a compilation initialises the runtime as Numba does
    assert run(tmp_path, FIRST).split("\n")[0] == "[0, 1, 4, 9]"


def test_the_runtime_is_compiled_once_then_loaded(tmp_path):
    cached_kernels(tmp_path)
    assert len(runtime_files(tmp_path)) == 1
    assert run(tmp_path, FROM_CACHE).strip() == "[0, 1, 4, 9, 16]"


def test_an_unreadable_runtime_file_is_compiled_again(tmp_path):
    cached_kernels(tmp_path)
    (path,) = runtime_files(tmp_path)
    path.write_bytes(b"not a pickle")
    assert run(tmp_path, FIRST).strip() == "[0, 1, 4, 9]"
    assert run(tmp_path, FROM_CACHE).strip() == "[0, 1, 4, 9, 16]"  # written whole again


def test_a_compilation_after_loading_finds_the_deferred_modules(tmp_path):
    cached_kernels(tmp_path)
    out = run(
        tmp_path,
        """
        import sys
        import numpy as np, numba
        import nrt_kernels
        nrt_kernels.squares(3)
        arrayobj, unicode = sys.modules["numba.np.arrayobj"], sys.modules["numba.cpython.unicode"]
        print("make_array" in vars(arrayobj), "_empty_string" in vars(unicode))

        @numba.njit
        def reversed_squares(n):
            values = nrt_kernels.squares(n)
            out = np.empty_like(values)
            out[:] = values[::-1]
            return out

        @numba.njit
        def shout(text):
            return text.upper() + "!"

        print(reversed_squares(4).tolist(), shout("abc"), "make_array" in vars(arrayobj))
        """,
    )
    assert out.split("\n")[:2] == ["False False", "[9, 4, 1, 0] ABC! True"]
