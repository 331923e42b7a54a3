"""metta_numba.lazy_linking: a kernel loaded from the cache runs without its linking bitcode
parsed, and a kernel compiled later that calls it still links it in and runs; and
metta_numba.argument_types types arguments exactly as Numba does, without numpy.ma."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba import cold_start, jit
from metta_numba.argument_types import argument_type

KERNELS = '''
import numpy as np
from numba import types
from metta_numba.jit import njit

I64 = types.Array(types.int64, 1, "C")

@njit(I64(types.int64), cache=True)
def squares(n):
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = i * i
    return out

@njit(cache=True)
def total(values):
    return values.sum()
'''


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """A fresh kernel module whose kernels another process compiled into the cache."""
    name = f"linking_kernels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(KERNELS)
    script = f"import numpy as np, {name} as k; k.squares(3); k.total(np.arange(3))"
    env = dict(os.environ, METTA_NUMBA_COLD="compile", PYTHONPATH=str(tmp_path))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    monkeypatch.syspath_prepend(str(tmp_path))
    previous = cold_start.mode()
    cold_start.set_mode("background")
    monkeypatch.setattr(cold_start, "start_background_warmup", lambda: None)
    module = importlib.import_module(name)
    yield module
    cold_start.set_mode(previous)
    sys.modules.pop(name, None)
    jit._deferred[:] = [entry for entry in jit._deferred if entry[0].py_func.__module__ != name]


def _library(dispatcher):
    (overload,) = dispatcher.overloads.values()
    return overload.library


def test_a_loaded_kernel_runs_before_its_bitcode_is_parsed(cached):
    assert cached.squares(5).tolist() == [0, 1, 4, 9, 16]
    assert cached.total(np.arange(4)) == 6
    for kernel in (cached.squares, cached.total):
        assert "_unparsed_bitcode" in vars(_library(kernel))  # loaded from the cache, lazily


def test_a_kernel_compiled_later_links_a_loaded_one(cached):
    import numba

    squares = cached.squares
    assert squares(2).tolist() == [0, 1]
    library = _library(squares)
    assert "_unparsed_bitcode" in vars(library)

    @numba.njit
    def sum_of_squares(n):
        return squares(n).sum()

    assert sum_of_squares(4) == 0 + 1 + 4 + 9
    assert "_unparsed_bitcode" not in vars(library)  # parsed when the new kernel linked it
    assert library._shared_module is not None


def test_the_engine_knows_a_pending_librarys_symbols(cached):
    cached.squares(1)
    library = _library(cached.squares)
    (overload,) = cached.squares.overloads.values()
    name = overload.fndesc.llvm_cpython_wrapper_name
    engine = library._codegen._engine
    assert "_unparsed_bitcode" in vars(library)
    assert engine.is_symbol_defined(name)  # asks the pending libraries before answering no
    assert "_unparsed_bitcode" not in vars(library)
    assert not engine.is_symbol_defined("no_such_symbol_anywhere")


DTYPES = [np.uint8, np.int32, np.int64, np.float64, np.bool_, np.uint64, np.complex128]


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    array = np.zeros(shape, dtype, order=draw(st.sampled_from("CF")))
    if array.ndim and draw(st.booleans()):
        array = array[::2]  # not contiguous
    if draw(st.booleans()):
        array.flags.writeable = False
    return array


@settings(max_examples=60, deadline=None)
@given(st.one_of(arrays(), st.lists(arrays(), min_size=1, max_size=3).map(tuple), st.integers(-5, 5)))
def test_argument_types_are_numbas(value):
    dispatcher = _probe()
    assert argument_type(dispatcher, value) == type(dispatcher).typeof_pyval(dispatcher, value)


def test_an_unsupported_dtype_is_left_to_numba():
    dispatcher = _probe()
    for value in (np.array([object()]), np.array(["text"]), (np.zeros(2), np.array([object()]))):
        assert argument_type(dispatcher, value) == type(dispatcher).typeof_pyval(dispatcher, value)


def _probe():
    """A plain Numba dispatcher (typing an argument needs one, not a compiled kernel)."""
    import numba

    if not _PROBE:
        _PROBE.append(numba.njit(lambda x: 0))
    return _PROBE[0]


_PROBE: list = []


def test_calling_kernels_imports_neither_numpy_ma_nor_package_metadata():
    script = (
        "import sys, numpy as np\n"
        "from metta_numba.syntax.bulk import encode_source\n"
        "from metta_numba.space.segment import load_kernels\n"
        "encode_source(b'(a b)\\n(c $x)\\n')\n"
        "load_kernels()\n"
        "print('numpy.ma' in sys.modules, 'importlib.metadata' in sys.modules and "
        "'entry_points' in vars(sys.modules['importlib.metadata']))\n"
    )
    # The commands' mode (the tests' is "compile": Numba's own path, which reads the metadata).
    env = dict(os.environ, METTA_NUMBA_COLD="background")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
