"""`njit` for the project's kernels: the declared signatures, compiled (or loaded from the
cache) on first use instead of at import.

Numba compiles a function decorated with explicit signatures at once, at import: with a warm
cache that is still a load of the cached machine code per kernel (about 5 ms each), so
importing the trie made every process pay for some 70 kernels, most of which a command never
calls (build, merge and index-building kernels for a query; helpers inlined into their
callers, whose cached code already holds them).

Here the dispatcher is created without signatures and given them the first time it is needed:
called from Python, or typed as the callee of a kernel being compiled. Then compilation is
disabled, so from that moment it behaves exactly as an eagerly compiled one: arguments convert
to the declared types, and other types are a TypeError rather than a new specialisation.
Without signatures (`@njit(cache=True)`) or as a bare `@njit`, Numba's own decorator is used.
"""

from __future__ import annotations

import inspect
import threading

import numba

from metta_numba import cold_start, kernel_cache
from metta_numba.argument_types import argument_type, call_argument_types

kernel_cache.use_source_keyed_folder()

_compile_lock = threading.RLock()
_deferred: list = []  # (dispatcher, declare) of every kernel made here, for compile_all


def _load_without_refresh(dispatcher) -> None:
    """Numba refreshes its target context before it loads a cached kernel: the first time,
    that imports and installs some 250 registries of implementations (0.2-0.3 s), which our
    cached kernels do not need (the test suite loads every one of them this way). What they
    do need is the runtime (NRT, which allocates arrays), initialised here instead. Only the
    project's kernels load this way; a compilation still refreshes the contexts itself
    (numba.core.compiler.CompilerBase), and other code's kernels keep Numba's behaviour."""
    from numba.core import caching
    from numba.core.runtime import rtsys

    cache = dispatcher._cache
    if not isinstance(cache, caching.Cache):
        return  # caching is off (kernel_cache found no folder)

    def load_overload(sig, target_context):
        rtsys.initialize(target_context)
        with cache._guard_against_spurious_io_errors():
            return cache._load_overload(sig, target_context)

    cache.load_overload = load_overload


def _dispatcher(func, options: dict):
    """numba.njit(**options)(func), with its cache (cache=True) made when first used."""
    cached = options.pop("cache", False)
    dispatcher = numba.njit(**options)(func)
    # Numba's dispatcher types an argument in Python (a read-only array, a first call) with
    # this method: see argument_types.py.
    dispatcher.typeof_pyval = lambda value: argument_type(dispatcher, value)
    if cached:
        kernel_cache.defer_cache(dispatcher, _load_without_refresh)
    return dispatcher


def njit(*args, **options):
    """numba.njit, compiling the declared signature(s) on first use (see the module's doc)."""
    if not args or callable(args[0]):
        if args:  # bare @njit
            return _specialising(_dispatcher(args[0], options))
        return lambda func: _specialising(_dispatcher(func, dict(options)))
    signatures = args[0] if isinstance(args[0], list) else [args[0]]

    def decorate(func):
        dispatcher = _dispatcher(func, dict(options))
        _defer(dispatcher, signatures)
        return dispatcher

    return decorate


def _defer(dispatcher, signatures: list) -> None:
    pending = list(signatures)
    compile_for_args = dispatcher._compile_for_args
    get_call_template = dispatcher.get_call_template

    def declare() -> None:
        """Compile (or load) every pending signature. All of them, even for a call that needs
        one: with some compiled and compilation still enabled, Numba would convert a call's
        arguments to one of those instead of the declared signature that fits it best."""
        with _compile_lock:
            for signature in list(pending):
                dispatcher.compile(signature)
                pending.remove(signature)
            dispatcher.disable_compile()

    def load(call_args) -> bool:
        """Every declared signature from the cache, compiling none (True when all are there)."""
        with _compile_lock:
            if not cold_start.load_cached(dispatcher, pending):
                return False
            pending.clear()
            dispatcher.disable_compile()
            return True

    def argument_types(call_args, call_kwargs) -> list | None:
        try:
            bound = inspect.signature(dispatcher.py_func).bind(*call_args, **call_kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        return [argument_type(dispatcher, value) for value in bound.args]

    def compile_and_call(call_args, call_kwargs):
        declare()
        return dispatcher(*call_args, **call_kwargs)

    uncached = cold_start.UncachedKernel(dispatcher, load, compile_and_call, signatures)

    def first_call(*call_args, **call_kwargs):
        # Numba's dispatcher asks for something to call with these arguments when it has no
        # overload for them: once the declared ones exist, itself. Without machine code in
        # the cache, a Python runner may stand in (cold_start).
        if not pending:
            return compile_for_args(*call_args, **call_kwargs)
        if cold_start.in_python_call():  # called by a kernel's twin: typed as the kernel says
            runner = uncached.runner(call_args, call_kwargs)
            if runner is not None:
                return runner
        actual = argument_types(call_args, call_kwargs)
        if actual is None:
            declare()
            return dispatcher._explain_matching_error(*call_args, **call_kwargs)
        needed = _matching(dispatcher, pending, actual)
        if needed is not None and not cold_start.in_python_call():
            runner = uncached.runner(call_args, call_kwargs)
            if runner is not None:
                return runner
        declare()
        # Every declared overload exists now and compilation is off: the dispatcher itself
        # picks the best fit (an exact one before a conversion), or refuses with a TypeError.
        return dispatcher

    def call_template(call_args, call_kwargs):
        declare()
        return get_call_template(call_args, call_kwargs)

    dispatcher._compile_for_args = first_call
    dispatcher.get_call_template = call_template
    _deferred.append((dispatcher, declare))


def _matching(dispatcher, formals: list, actual: list):
    """The first of the declared signatures `formals` that the argument types `actual`
    convert to, or None."""
    convert = dispatcher.typingctx.can_convert
    for formal in formals:
        formal_args = tuple(getattr(formal, "args", formal))
        if len(formal_args) == len(actual) and all(
            convert(have, want) is not None for have, want in zip(actual, formal_args, strict=True)
        ):
            return formal
    return None


def _specialising(dispatcher):
    """A kernel without declared signatures (Numba specialises it on its argument types), with
    the cold-start path of declared ones: machine code from the cache, else a Python runner."""
    _load_without_refresh(dispatcher)
    compile_for_args = dispatcher._compile_for_args

    def load(call_args) -> bool:
        with _compile_lock:
            return cold_start.load_cached(dispatcher, [call_argument_types(dispatcher, call_args)])

    def compile_and_call(call_args, call_kwargs):
        return compile_for_args(*call_args, **call_kwargs)(*call_args, **call_kwargs)

    uncached = cold_start.UncachedKernel(dispatcher, load, compile_and_call)

    def first_call(*call_args, **call_kwargs):
        if not call_kwargs:
            runner = uncached.runner(call_args, call_kwargs)
            if runner is not None:
                return runner
            # Loaded from the cache just now: its machine code, without Numba's compilation
            # entry, whose first run reads every installed package's entry points (importing
            # importlib.metadata, some 20 ms) for extensions a cached kernel cannot use.
            loaded = dispatcher.overloads.get(call_argument_types(dispatcher, call_args))
            if loaded is not None:
                return loaded.entry_point
        return compile_for_args(*call_args, **call_kwargs)

    dispatcher._compile_for_args = first_call
    return dispatcher


KERNEL_PACKAGES = ("metta_numba.codec", "metta_numba.syntax", "metta_numba.trie")


def compile_all(progress=None) -> int:
    """Import every kernel module and compile (or load) every declared signature: what
    `metta-numba warmup` runs to fill the cache. Returns the number of kernels."""
    import importlib
    import pkgutil

    for package_name in KERNEL_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            importlib.import_module(info.name)
    for done, (dispatcher, declare) in enumerate(list(_deferred), 1):
        declare()
        if progress is not None:
            progress(done, len(_deferred), dispatcher.__name__)
    return len(_deferred)
