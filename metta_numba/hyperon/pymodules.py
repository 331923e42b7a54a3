"""Python files as MeTTa modules: `!(import! &self ops)` when `ops.py` is found.

The file is executed once per process and path; then each of its functions marked with
`register_atoms` / `register_tokens` is called, and what it returns is registered as tokens of
the importing runner, as hyperon's Python module loader does. A sandboxed runner refuses."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any

from metta_numba.hyperon.atoms import from_api
from metta_numba.hyperon.base import register_atom
from metta_numba.hyperon.ext import RegisterType
from metta_numba.interp.grounded import ExecError
from metta_numba.interp.python_values import exception_text
from metta_numba.interp.stdlib_python import refuse_in_sandbox

if TYPE_CHECKING:
    from metta_numba.interp.runner import MeTTa as EngineRunner

__all__ = ["import_python_module"]

_loaded: dict[str, ModuleType] = {}


def _load(path: str, name: str) -> ModuleType:
    module = _loaded.get(path)
    if module is not None:
        return module
    unique = "metta_py_" + re.sub(r"\W", "_", name)
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ExecError(f"Failed to load Python module {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ExecError(f"Failed to load Python module {name} from {path}: {exception_text(err)}") from None
    _loaded[path] = module
    return module


def _registering_functions(module: ModuleType) -> list[tuple[str, Any]]:
    found = []
    for attr in dir(module):
        obj = getattr(module, attr)
        kind = getattr(obj, "metta_type", None)
        if not callable(obj) or kind is None:
            continue
        if isinstance(kind, RegisterType):
            found.append((attr, obj))
        elif getattr(kind, "name", None) in ("ATOM", "TOKEN"):
            # Decorated by hyperon's own `register_atoms`: its atoms belong to hyperon.
            raise ExecError(
                f"{module.__file__}: {attr} is registered with hyperon's decorators; import "
                "register_atoms and the atom constructors from metta_numba.hyperon instead"
            )
    return found


def import_python_module(runner: EngineRunner, path: str, name: str) -> None:
    """Run the Python module at `path` (once) and register its atoms and tokens in `runner`."""
    refuse_in_sandbox(runner, f"importing the Python module {name}")
    module = _load(path, name)
    for attr, func in _registering_functions(module):
        try:
            if getattr(func, "metta_pass_metta", False):
                from metta_numba.hyperon.runner import MeTTa

                items = func(MeTTa(cmetta=runner))
            else:
                items = func()
            for token, value in dict(items).items():
                if func.metta_type is RegisterType.ATOM:
                    register_atom(runner, token, value)
                else:
                    runner.add_token_pattern(token, lambda text, make=value: from_api(make(text)))
        except ExecError:
            raise
        except Exception as err:
            raise ExecError(f"{name}.{attr} failed: {exception_text(err)}") from None
