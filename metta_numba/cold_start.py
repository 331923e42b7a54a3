"""What a kernel does when the cache has no machine code for it: run as Python for a bounded
while, and warm the cache in a background process.

Compiling a kernel costs 0.1-0.5 s of Numba's own (Python) work, and the first query of an
empty cache needs 50-80 of them: 20-30 s. The same kernels run as plain Python on a small KB
answer that query in well under a second, since a query's kernels are output-sensitive (a
lookup, a walk over the answers). So, in the default mode (`METTA_NUMBA_COLD=background`), a
kernel whose machine code is not in the cache runs its Python twin, a `metta-numba warmup`
process fills the cache in the background, and the kernel switches to the cached code as soon
as the cache holds it (checked at most once a second).

The Python twin must give exactly the kernel's answers, and its cost must stay bounded:
- the twin is the kernel's source with every array element read converted as Numba types it:
  a small integer (uint8, int32...) becomes a Python int, as Numba widens it to int64 in
  arithmetic (NumPy would keep uint8 and wrap, or shift it to 0);
- it runs with NumPy's floating-point and integer-overflow errors raised: an overflow means
  the kernel relies on wrap-around (a hash), where NumPy scalars and Numba could disagree;
- every exception of the twin other than the project's own errors (CorruptTrieError, ...), and
  a call that would pass the process's Python budget (METTA_NUMBA_COLD_BUDGET, 3 s of CPU in
  all; enforced by a CPU-time timer in the main thread), restores the arrays the call may have
  written and runs the call again compiled. After the budget is spent every cold kernel
  compiles, as in `METTA_NUMBA_COLD=compile` (the old behaviour: compile in the foreground).
  So the extra cost of the Python path is at most the budget, and a program that does much
  work (a large bulk load, a huge answer set) ends up compiled.

`METTA_NUMBA_COLD=python` runs every uncached kernel as its twin without a budget and without
background warming: for checking that the twins answer as the compiled kernels do.
"""

from __future__ import annotations

import ast
import operator
import os
import signal
import sys
import threading
import time

import numpy as np

MODES = ("background", "compile", "python")
_mode = os.environ.get("METTA_NUMBA_COLD", "background")
if _mode not in MODES:
    _mode = "background"
BUDGET_SECONDS = float(os.environ.get("METTA_NUMBA_COLD_BUDGET", "3.0"))
RECHECK_SECONDS = 1.0
"""How often a kernel running as Python looks for its machine code in the cache again."""
MAX_RESTORE_BYTES = 64 << 20
"""Writable arrays a Python call may change are copied first (to restore them when it fails);
a call passing more than this compiles instead."""

_spent = 0.0  # CPU seconds of Python calls so far, against BUDGET_SECONDS
_local = threading.local()  # .depth: Python kernel calls in progress on this thread
_warmup_started = False


def mode() -> str:
    return _mode


def set_mode(new_mode: str) -> None:
    """Choose how uncached kernels run (`warmup` compiles: it is what fills the cache)."""
    global _mode
    if new_mode not in MODES:
        raise ValueError(f"unknown cold-start mode {new_mode!r}")
    _mode = new_mode


def budget_left() -> float:
    return float("inf") if _mode == "python" else BUDGET_SECONDS - _spent


class _OutOfBudget(BaseException):
    """Raised by the CPU timer into a Python kernel call that used up the budget. A
    BaseException, so that no `except Exception` in between takes it for an error."""


# --- loading from the cache without compiling --------------------------------------------------


def load_cached(dispatcher, signatures: list) -> bool:
    """Load the machine code of every one of `signatures` from the cache into `dispatcher`, as
    Numba's own `compile` does first; compiles nothing. All or none: with some overloads and
    compilation enabled, Numba would convert a call's arguments to one of them rather than to
    the declared signature that fits best. True when all were there."""
    from numba.core import caching, sigutils

    from metta_numba import lazy_imports, runtime_cache
    from metta_numba.kernel_cache import attached_cache
    from metta_numba.lazy_linking import deferred_linking

    cache = attached_cache(dispatcher)
    if not isinstance(cache, caching.Cache):
        return False
    # What loading the first kernel would do, made cheaper: Numba's runtime functions from
    # the cache too (runtime_cache), a module imported only for kernel environments deferred.
    runtime_cache.install()
    lazy_imports.defer_numba_internals()
    found = []
    for signature in signatures:
        args, _ = sigutils.normalize_signature(signature)
        if tuple(args) in dispatcher.overloads:
            continue
        with deferred_linking():  # the kernel's bitcode is parsed only if something links it
            cres = cache.load_overload(signature, dispatcher.targetctx)
        if cres is None:
            return False
        found.append(cres)
    for cres in found:
        if not cres.objectmode:
            dispatcher.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        dispatcher.add_overload(cres)
    return True


def caching_enabled(dispatcher) -> bool:
    from numba.core import caching

    from metta_numba.kernel_cache import attached_cache

    return isinstance(attached_cache(dispatcher), caching.Cache)


# --- the Python twin ---------------------------------------------------------------------------


_NARROW_TYPES = frozenset({np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32})


def as_numba_reads(value):
    """An array element as a Numba kernel sees it in arithmetic: an integer narrower than 64
    bits as a Python int (Numba widens it to int64); 64-bit integers, floats and booleans stay
    NumPy scalars, whose arithmetic (wrapping included) is Numba's."""
    return int(value) if type(value) in _NARROW_TYPES else value


_NARROW_INTEGERS = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32"})


class _WidenReads(ast.NodeTransformer):
    """`a[i]` read in an expression, and a cast such as `np.uint8(x)`, become
    `_numba_read(...)`: a Python int where Numba would widen the value to int64."""

    def visit_Subscript(self, node):
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        return self._widened(node)

    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _NARROW_INTEGERS:
            return self._widened(node)
        return node

    @staticmethod
    def _widened(node):
        call = ast.Call(func=ast.Name(id="_numba_read", ctx=ast.Load()), args=[node], keywords=[])
        return ast.copy_location(call, node)


def python_twin(py_func, links: dict):
    """`py_func` rebuilt with widened element reads, over a copy of its module's globals in
    which every kernel with a twin is replaced by `links[kernel]` (a direct call, instead of
    one through Numba's dispatcher); None when it cannot be rebuilt (no source, a closure),
    and the kernel then always compiles."""
    import inspect
    import textwrap

    code = py_func.__code__
    if code.co_freevars:
        return None
    try:
        lines, first_line = inspect.getsourcelines(py_func)
    except (OSError, TypeError):
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    function = tree.body[0]
    if not isinstance(function, ast.FunctionDef):
        return None
    function.decorator_list = []
    _WidenReads().visit(tree)
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, first_line - 1)
    module_code = compile(tree, code.co_filename, "exec")
    function_code = next(c for c in module_code.co_consts if getattr(c, "co_name", None) == code.co_name)
    namespace = {
        name: links[id(value)] if id(value) in links else value for name, value in py_func.__globals__.items()
    }
    namespace["_numba_read"] = as_numba_reads
    twin = type(py_func)(function_code, namespace, py_func.__name__, py_func.__defaults__)
    twin.__kwdefaults__ = py_func.__kwdefaults__
    return twin


# --- running a twin ----------------------------------------------------------------------------


def _writable_arrays(values, found: list) -> bool:
    """Collect the writable arrays among `values` (into tuples); False for an argument a
    Python call could change in a way not undone by restoring arrays (a list, an object)."""
    for value in values:
        if isinstance(value, np.ndarray):
            if value.flags.writeable:
                found.append(value)
        elif isinstance(value, tuple):
            if not _writable_arrays(value, found):
                return False
        elif not isinstance(value, (int, float, bool, complex, str, bytes, np.generic, type(None))):
            return False
    return True


_NUMBA_ERRORS = dict(over="ignore", under="ignore", divide="raise", invalid="raise")
"""NumPy's 64-bit scalars wrap on overflow as Numba's integers do (hashes rely on it); a
division by zero or an invalid float operation is left to the compiled kernel."""
_INT64_MIN = -(1 << 63)
_UINT64_END = 1 << 64


class TwinDiverged(ArithmeticError):
    """A twin computed an integer no 64-bit type holds: Numba would have wrapped it."""


def _boxed(value):
    """A twin's result as a compiled kernel returns it to Python: NumPy scalars as Python ones."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, int) and not _INT64_MIN <= value < _UINT64_END:
        raise TwinDiverged(value)
    if isinstance(value, tuple):
        return tuple(_boxed(v) for v in value)
    return value


def _nested_result(value):
    """A twin's result as a calling twin sees it (a Python int must fit in 64 bits)."""
    if type(value) is int and not _INT64_MIN <= value < _UINT64_END:
        raise TwinDiverged(value)
    if type(value) is tuple:
        for item in value:
            _nested_result(item)
    return value


def _own_error(error: BaseException) -> bool:
    """An exception class of this project: the kernel raised it on purpose (a corrupt array),
    and the compiled kernel raises the same. Anything else may be the twin's own failure."""
    return type(error).__module__.startswith("metta_numba.") and not isinstance(error, TwinDiverged)


def _on_timer(signum, frame) -> None:
    if getattr(_local, "armed", False):
        _local.armed = False
        raise _OutOfBudget()


def _timer_usable() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGVTALRM)
    if handler is _on_timer:
        return True
    if handler not in (signal.SIG_DFL, None):
        return False  # someone else's timer: do not take it over
    signal.signal(signal.SIGVTALRM, _on_timer)
    return True


def run_python(twin, args: tuple, kwargs: dict, run_compiled, convert_args=None):
    """Call `twin`, the Python form of a kernel called from Python (not from another twin).
    On a failure of the twin or when the budget runs out, restore the arrays it may have
    written and return `run_compiled()` instead. Its calls to other kernels go through their
    `UncachedKernel.link`."""
    global _spent
    saved: list = []
    if _mode != "python":
        arrays: list = []
        if not _writable_arrays(args, arrays) or not _writable_arrays(tuple(kwargs.values()), arrays):
            return run_compiled()
        if sum(a.nbytes for a in arrays) > MAX_RESTORE_BYTES or not _timer_usable():
            return run_compiled()
        saved = [(a, a.copy()) for a in arrays]
    started = time.process_time()
    _local.depth = 1
    try:
        call_args = convert_args(args) if convert_args is not None else args
        if _mode == "python":
            with np.errstate(**_NUMBA_ERRORS):
                return _boxed(twin(*call_args, **kwargs))
        _local.armed = True
        signal.setitimer(signal.ITIMER_VIRTUAL, max(BUDGET_SECONDS - _spent, 1e-3))
        try:
            with np.errstate(**_NUMBA_ERRORS):
                result = twin(*call_args, **kwargs)
        finally:
            _local.armed = False
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        return _boxed(result)
    except _OutOfBudget:
        _spent = BUDGET_SECONDS
    except Exception as error:
        if _mode == "python" or _own_error(error):
            raise
    finally:
        _local.depth = 0
        _spent += time.process_time() - started
    for array, copy in saved:
        np.copyto(array, copy)
    return run_compiled()


def in_python_call() -> bool:
    return getattr(_local, "depth", 0) > 0


# --- background warming ------------------------------------------------------------------------


def warmup_lock_path():
    """The lock file of the background warmup: in the kernel cache's folder."""
    from pathlib import Path

    from metta_numba.kernel_cache import PACKAGE_DIR, choose_cache_folder

    how, folder = choose_cache_folder()
    if folder is None:
        return None
    folder = Path(folder)
    if how == "numba" and folder == PACKAGE_DIR / "__pycache__":
        folder.mkdir(exist_ok=True)
    return folder / "metta-numba-warmup.lock"


def try_lock(path):
    """An open file holding an exclusive flock on `path`, or None when another process holds it
    (or the lock cannot be taken)."""
    import fcntl

    try:
        handle = open(path, "a")  # noqa: SIM115 (the lock lives as long as the handle)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def start_background_warmup() -> None:
    """Start one detached `metta-numba warmup --background` (once per process; the warmup
    itself exits at once when another holds the lock)."""
    global _warmup_started
    if _warmup_started or _mode != "background":
        return
    _warmup_started = True
    if "python" not in os.path.basename(sys.executable or "").lower():
        return  # embedded in another program: no interpreter to start the warmup with
    path = warmup_lock_path()
    if path is None:
        return
    probe = try_lock(path)
    if probe is None:
        return  # a warmup is running
    probe.close()
    import subprocess

    env = dict(os.environ, METTA_NUMBA_COLD="compile")
    from metta_numba.kernel_cache import compiled_cpu

    if compiled_cpu() == "host":
        # This process compiles for the host's CPU (Numba was imported before us): so must the
        # warmup, or it would fill the cache with code this process never looks up.
        env["METTA_NUMBA_CPU"] = "host"
    try:
        subprocess.Popen(
            [sys.executable, "-m", "metta_numba", "warmup", "--background"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    except OSError:
        pass  # no background warming: kernels compile when the budget is spent


# --- one kernel's state --------------------------------------------------------------------------


def _scalar_converter(formal, from_python: bool):
    """How a value passed for scalar type `formal` becomes what a compiled kernel sees, or None
    when it is taken as it is (arrays, tuples; int64 from another twin, which computes ints).
    From Python code, an int64 argument must be an integer (a float is left to Numba)."""
    from numba.core import types

    if isinstance(formal, types.Boolean):
        return bool
    if isinstance(formal, types.Float):
        return float
    if isinstance(formal, types.Integer):
        if formal.bitwidth == 64 and not formal.signed:
            return np.uint64
        if formal.bitwidth == 64:
            return operator.index if from_python else None
        return lambda value: int(np.dtype(str(formal)).type(value))  # out of range: OverflowError
    return None


def argument_converter(signatures, from_python: bool):
    """One function converting the scalar arguments of a call as the declared `signatures` do
    (None when none needs converting); False when the signatures disagree on a scalar's type,
    so that one conversion cannot stand for them all."""
    scalar_formals = {
        tuple(formal if _scalar_converter(formal, True) else None for formal in signature.args)
        for signature in signatures
    }
    if len(scalar_formals) != 1:
        return False
    converters = [_scalar_converter(formal, from_python) if formal else None for formal in scalar_formals.pop()]
    pairs = [(i, converter) for i, converter in enumerate(converters) if converter is not None]
    if not pairs:
        return None

    def convert(args: tuple) -> tuple:
        args = list(args)
        for i, converter in pairs:
            if i < len(args):
                args[i] = converter(args[i])
        return tuple(args)

    return convert


_links: dict = {}  # id(dispatcher) -> UncachedKernel.link, for the twins' globals


class UncachedKernel:
    """The cold-start state of one kernel: its twin, and when it last looked in the cache.

    `load(args)` loads from the cache the machine code a call with `args` needs (True when it
    is now there); `compile_and_call(args, kwargs)` compiles and calls the kernel."""

    def __init__(self, dispatcher, load, compile_and_call, signatures=None) -> None:
        self.dispatcher = dispatcher
        self._load = load
        self._compile_and_call = compile_and_call
        self._signatures = signatures
        self._twin = None  # None: not built yet; False: this kernel always compiles
        self._convert = None  # for calls from twins
        self._convert_top = None  # for calls from Python code
        self._checked = float("-inf")
        _links[id(dispatcher)] = self.link

    def runner(self, args: tuple, kwargs: dict):
        """What runs a call from Python that found no machine code: a Python runner, or None
        to load or compile as Numba would."""
        if _mode == "compile":
            return None
        if in_python_call():
            return self.link
        now = time.monotonic()
        if _mode != "python" and now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            if self._load(args):
                return None
        if self._twin is None:
            self._build()
        if self._twin is False or budget_left() <= 0:
            return None
        twin, convert = self._twin, self._convert_top

        def top_level(*call_args, **call_kwargs):
            return run_python(twin, call_args, call_kwargs, lambda: self._fail_over(call_args, call_kwargs), convert)

        return top_level

    def _fail_over(self, args: tuple, kwargs: dict):
        """The twin failed or ran out of budget: this kernel compiles from now on."""
        self._twin = False
        return self._compile_and_call(args, kwargs)

    def link(self, *args, **kwargs):
        """A call from another kernel's twin: the machine code when there is some, else the twin."""
        if self.dispatcher.overloads:
            return self.dispatcher(*args, **kwargs)
        if self._twin is None:
            self._build()
        if self._twin is False:
            return self._compile_and_call(args, kwargs)
        if self._convert is not None:
            args = self._convert(args)
        result = self._twin(*args, **kwargs)
        return _nested_result(result) if type(result) in (int, tuple) else result

    def _build(self) -> None:
        convert = argument_converter(self._signatures, False) if self._signatures else None
        twin = python_twin(self.dispatcher.py_func, _links) if convert is not False else None
        self._twin = twin if twin is not None else False
        self._convert = convert or None
        self._convert_top = argument_converter(self._signatures, True) or None if self._signatures else None
        if caching_enabled(self.dispatcher):
            start_background_warmup()
