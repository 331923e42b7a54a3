"""Modules Numba imports at start-up but our commands never use, made lazy.

Importing Numba imports `yaml` (to read a `.numba_config.yaml` in the working folder, if there
is one) and `importlib.metadata` (to list extension entry points before a compilation):
together about a tenth of Numba's import time, and neither is used when kernels load from the
cache. Here both are registered, before Numba is imported, as module objects whose code runs
on the first access to an attribute they do not have yet. A process that uses them (a
compilation, Dask reading its YAML configuration, a config file in the working folder) gets the
real module at that moment; one that does not never pays for it.

The standard library's importlib.util.LazyLoader does not serve here: `import yaml` reads the
module's `__spec__`, which makes a LazyLoader module load at once. These objects have their
`__spec__`, `__file__` and `__path__` from the start, as a module being imported does, and
only their own names are missing until loaded.
"""

from __future__ import annotations

import sys
import threading
import types

DEFERRED = ("yaml", "importlib.metadata")
_lock = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A module whose code runs on the first access to a name it lacks (see the module's doc)."""

    def __getattr__(self, name: str):
        # Called only for names not in the module's dict: before loading, or a real miss.
        if self._load_now():
            return getattr(self, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def _load_now(self) -> bool:
        """Run the module's code unless it ran already; True when it ran now."""
        with _lock:
            loader = self.__dict__.pop("_deferred_loader", None)
            if loader is None:
                return False
            loader.exec_module(self)
            return True


def _defer(name: str) -> None:
    import importlib.util

    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        return  # not installed (Numba then goes without it, as usual), or not loadable so
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    module._deferred_loader = spec.loader
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


NUMBA_DEFERRED = ("numba.np.arrayobj", "numba.cpython.unicode")
"""Numba modules that loading a cached kernel imports only to rebuild its environment: the
kernel's machine code was built with their functions inlined, and keeps a module's namespace
only for object-mode fallbacks, which our kernels do not have. Importing them costs some
35 ms before a program's first scan. Deferred, a namespace is there at once and fills in when
anything reads a name from it, or when Numba refreshes a target context: every compilation
does that first, and their registrations (implementations, overloads) are then in place as
Numba expects them."""


def defer_numba_internals() -> None:
    """Register NUMBA_DEFERRED as deferred (Numba is imported by then: finding a submodule
    imports its parents), unless they are imported already; and have a refresh of Numba's
    target context load them first."""
    with _lock:
        if _refresh_hooked:
            return
        from numba.core import base

        refresh = getattr(base.BaseContext, "refresh", None)
        if refresh is None:  # another Numba: nothing would load them before a compilation
            _refresh_hooked.append(False)
            return

        def refresh_after_loading(self):
            load_deferred()
            return refresh(self)

        base.BaseContext.refresh = refresh_after_loading
        _refresh_hooked.append(True)
        for name in NUMBA_DEFERRED:
            _defer(name)


_refresh_hooked: list[bool] = []


def load_deferred() -> None:
    """Run the code of the NUMBA_DEFERRED modules not loaded yet."""
    for name in NUMBA_DEFERRED:
        module = sys.modules.get(name)
        if type(module) is _DeferredModule:
            module._load_now()


def defer_unused_imports() -> None:
    """Register the DEFERRED modules as deferred, unless Numba (or they) are imported already."""
    if "numba" in sys.modules:
        return
    for name in DEFERRED:
        _defer(name)
