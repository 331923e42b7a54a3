"""Kernels loaded from the cache without their linking module until something links them.

A cached kernel is two things in Numba's cache file: its machine code (an object file) and
the LLVM bitcode of the same functions, kept so that a kernel compiled later can inline them.
Loading one parses that bitcode and reads every symbol name out of it (to answer "is this
symbol defined?"), although running the loaded kernel needs neither: a third of each load, some
50 ms of a command that loads a dozen kernels.

While `deferred_linking()` is active (cold_start.load_cached: only the project's kernels), a
kernel's code library is made with its bitcode kept as bytes. It is parsed, and its symbols
recorded, the first time anything needs them: a compilation linking the library in
(`_shared_module`), or a question about a symbol the engine does not know yet
(`JitEngine.is_symbol_defined`, wrapped here to parse the pending libraries before it answers
no). The library's own entry points are looked up in the loaded machine code directly, as
Numba's answer would be after the parse.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager

_local = threading.local()
_lock = threading.RLock()
_pending: list = []  # weak references to libraries whose bitcode is not parsed yet
_installed: list[bool] = []


@contextmanager
def deferred_linking():
    """Libraries unserialized in this thread inside the block keep their bitcode unparsed."""
    _install()
    before = getattr(_local, "active", False)
    _local.active = True
    try:
        yield
    finally:
        _local.active = before


def parse_pending() -> None:
    """Parse every pending library's bitcode and record its symbols (as Numba's load does)."""
    with _lock:
        waiting = _pending[:]
        _pending.clear()
        for ref in waiting:
            library = ref()
            if library is not None:
                library._shared_module  # noqa: B018 (the property parses it)


def _install() -> None:
    with _lock:
        if _installed:
            return
        from numba.core import codegen

        if not _internals_present(codegen):
            _installed.append(False)  # another Numba: its own load path, unchanged
            return
        base_unserialize = codegen.JITCodeLibrary._unserialize.__func__
        base_is_defined = codegen.JitEngine.is_symbol_defined

        def _unserialize(cls, codegen_, state):
            if not getattr(_local, "active", False) or cls is not codegen.JITCodeLibrary or state[1] != "object":
                return base_unserialize(cls, codegen_, state)
            try:
                name, _, (object_code, shared_bitcode) = state
                library = codegen_.create_library(name)
                library.__class__ = _lazy_class(codegen.JITCodeLibrary)
                library.enable_object_caching()
                library._set_compiled_object(object_code)
                library.__dict__["_unparsed_bitcode"] = shared_bitcode
                library._finalize_final_module()
            except (AttributeError, TypeError, ValueError):
                return base_unserialize(cls, codegen_, state)  # a state this module does not know
            with _lock:
                _pending.append(weakref.ref(library))
            return library

        def is_symbol_defined(self, name):
            if base_is_defined(self, name):
                return True
            if not _pending:
                return False
            parse_pending()
            return base_is_defined(self, name)

        codegen.JITCodeLibrary._unserialize = classmethod(_unserialize)
        codegen.JitEngine.is_symbol_defined = is_symbol_defined
        _installed.append(True)


def _internals_present(codegen) -> bool:
    """Whether this Numba has the internals the deferred load relies on (those of the Numba
    versions it was written for); with any missing, kernels load as Numba loads them."""
    library, engine = codegen.JITCodeLibrary, getattr(codegen, "JitEngine", None)
    needed = ("_unserialize", "enable_object_caching", "_set_compiled_object", "_finalize_final_module",
              "_ensure_finalized", "get_pointer_to_function")
    engine_needed = ("is_symbol_defined", "_load_defined_symbols", "get_function_address")
    return (engine is not None and all(hasattr(library, n) for n in needed)
            and all(hasattr(engine, n) for n in engine_needed))


_classes: dict = {}


def _lazy_class(base):
    found = _classes.get(base)
    if found is None:
        found = _classes[base] = type("LazyLinkingLibrary", (base,), _lazy_members(base))
    return found


def _lazy_members(base) -> dict:
    from llvmlite import binding as ll

    def get_shared(self):
        with _lock:
            raw = self.__dict__.pop("_unparsed_bitcode", None)
            if raw is not None:
                module = ll.parse_bitcode(raw)
                self.__dict__["_linking_module"] = module
                self._codegen._engine._load_defined_symbols(module)
            return self.__dict__.get("_linking_module")

    def set_shared(self, module):
        self.__dict__["_linking_module"] = module

    def get_pointer_to_function(self, name):
        # A name the library's bitcode holds (the wrapper of its entry point, when the kernel
        # is loaded): its address in the loaded machine code. Numba asks its symbol table
        # first since the engine may abort on a name defined nowhere; one held here is not
        # such a name. Any other name, or no address: Numba's own check (which parses).
        self._ensure_finalized()
        raw = self.__dict__.get("_unparsed_bitcode")
        if raw is not None and name.encode() in raw:
            address = self._codegen._engine.get_function_address(name)
            if address:
                return address
        return base.get_pointer_to_function(self, name)

    return {"_shared_module": property(get_shared, set_shared), "get_pointer_to_function": get_pointer_to_function}
