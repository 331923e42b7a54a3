"""metta_numba.jit.njit: declared signatures compile on first use, then the kernel behaves as
an eagerly compiled one (conversions to the declared types, a TypeError for others)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from metta_numba import jit

KERNELS = '''
from numba import types
from metta_numba.jit import njit

RO = types.Array(types.uint8, 1, "C", readonly=True)

@njit(types.int64(RO, types.int64), cache=True, nogil=True)
def count_at_least(data, floor):
    n = 0
    for byte in data:
        if byte >= floor:
            n += 1
    return n

@njit(types.int64(RO), cache=True)
def count_high(data):
    return count_at_least(data, 128)

@njit([types.int64(types.int64), types.float64(types.float64)], cache=True)
def twice(x):
    return x + x
'''


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    name = f"lazy_kernels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(KERNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def test_nothing_compiles_at_import_and_the_declared_signature_on_first_call(kernels):
    assert kernels.count_at_least.signatures == [] and kernels.count_high.signatures == []
    data = np.array([1, 200, 130, 7], np.uint8)  # writable: converts to the read-only type
    assert kernels.count_high(data) == 2
    assert [str(s) for s in kernels.count_high.signatures] == ["(Array(uint8, 1, 'C', True, aligned=True),)"]
    # The callee was typed through its declared signature, not the caller's argument types.
    assert len(kernels.count_at_least.signatures) == 1
    assert kernels.count_at_least(data, 100) == 2


def test_first_call_by_keyword(kernels):
    data = np.array([1, 200], np.uint8)
    assert kernels.count_at_least(data=data, floor=100) == 1
    assert kernels.count_at_least(data, floor=0) == 2


def test_types_outside_the_declaration_are_refused_as_by_an_eager_kernel(kernels):
    assert kernels.twice(21) == 42 and kernels.twice(1.25) == 2.5
    assert len(kernels.twice.signatures) == 2
    with pytest.raises(TypeError):
        kernels.twice("text")
    with pytest.raises(TypeError):
        kernels.count_at_least(np.zeros(3, np.int32), 1)
    assert len(kernels.twice.signatures) == 2 and len(kernels.count_at_least.signatures) == 1


def test_compile_all_declares_every_kernel(kernels):
    count = jit.compile_all()
    assert count >= 100  # the project's kernels, and these
    assert all(d.signatures for d, _ in jit._deferred)
