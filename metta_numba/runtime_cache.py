"""Numba's runtime functions (NRT: reference counts of the arrays kernels allocate), loaded from
the kernel cache instead of compiled in every process.

Before the first kernel loads, Numba compiles a small LLVM module of atomic reference-count
helpers with LLVM's optimiser and code generator: some 20 ms of every process that runs a
kernel, on the path before a program's first scan. Its machine code depends only on Numba's
version and the machine's code generator, so it is kept beside the cached kernels (Numba's
own format: the library's object code and bitcode, pickled as Numba pickles cached kernels)
under a name made of those, and loaded from there; the library is then the same one Numba
would have made, loaded as a cached kernel is.

`install()` takes over Numba's compile step for it; when no cache folder is in use, or the file
cannot be read or written, Numba compiles it as before.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
from pathlib import Path

_lock = threading.Lock()
_installed: list[bool] = []


def install() -> None:
    """Have Numba's runtime set-up load its functions from the cache (once per process)."""
    with _lock:
        if _installed:
            return
        from numba.core.runtime import nrtdynmod

        compile_functions = getattr(nrtdynmod, "compile_nrt_functions", None)
        if compile_functions is None or not hasattr(nrtdynmod, "create_nrt_module"):
            _installed.append(False)  # another Numba: it compiles its runtime as it does
            return

        def cached_nrt_functions(ctx):
            path = _cache_path(ctx)
            library = _load(ctx, path) if path is not None else None
            if library is None:
                library = compile_functions(ctx) if path is None else _compile_and_save(ctx, path)
            return library

        # The runtime (nrt.py) calls it through this module attribute, when it initialises.
        nrtdynmod.compile_nrt_functions = cached_nrt_functions
        _installed.append(True)


def _cache_path(ctx) -> Path | None:
    import llvmlite
    import numba
    from numba.core import config

    folder = getattr(config, "CACHE_DIR", "")
    if not folder:
        return None
    key = repr((numba.__version__, llvmlite.__version__, ctx.codegen().magic_tuple()))
    return Path(folder) / f"nrt-{hashlib.sha1(key.encode()).hexdigest()[:16]}.nrtlib"


def _load(ctx, path: Path):
    try:
        state = pickle.loads(path.read_bytes())
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
        return None
    if not (isinstance(state, tuple) and len(state) == 3 and state[1] == "object"):
        return None
    return ctx.codegen().unserialize_library(state)


def _compile_and_save(ctx, path: Path):
    """Numba's compile_nrt_functions, with the object code kept so that it can be saved."""
    from numba.core.runtime import nrtdynmod

    ir_module, library = nrtdynmod.create_nrt_module(ctx)
    library.enable_object_caching()
    library.add_ir_module(ir_module)
    library.finalize()
    data = pickle.dumps(library.serialize_using_object_code(), protocol=pickle.HIGHEST_PROTOCOL)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)  # whole or not at all, for a process reading it meanwhile
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only cache: compiled again next time
    return library
