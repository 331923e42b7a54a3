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
        with _lock:
            loader = self.__dict__.pop("_deferred_loader", None)
            if loader is not None:
                loader.exec_module(self)
                return getattr(self, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


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


def defer_unused_imports() -> None:
    """Register the DEFERRED modules as deferred, unless Numba (or they) are imported already."""
    if "numba" in sys.modules:
        return
    for name in DEFERRED:
        _defer(name)
