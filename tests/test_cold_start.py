"""Kernels without machine code in the cache (metta_numba.cold_start): they run as Python twins
that answer as the compiled kernels do, within a CPU budget, fall back to compiling on any
doubt, pick up the cache once it is filled, and one background warmup at a time fills it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_cli import cli, write

from metta_numba import cold_start, jit
from metta_numba.bench.kbgen import generate_fact_kb, generate_kb
from metta_numba.interp.bulk_load import BULK_MIN_CHARS
from metta_numba.trie.errors import CorruptTrieError

KERNELS = '''
import numpy as np
from numba import types
from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError

U8 = types.Array(types.uint8, 1, "C", readonly=True)
I64 = types.Array(types.int64, 1, "C")

@njit(types.int64(U8, types.int64), cache=True)
def read_u32(buf, pos):
    # uint8 elements shifted: Numba widens them to int64 first (NumPy alone would give 0).
    return (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]

@njit(types.uint64(U8), cache=True)
def fnv1a(data):
    h = np.uint64(0xCBF29CE484222325)
    for k in range(data.shape[0]):
        h = (h ^ np.uint64(data[k])) * np.uint64(0x100000001B3)
    return h

@njit(types.int64(U8), cache=True)
def checked_total(data):
    total = 0
    for k in range(0, data.shape[0] - 3, 4):
        if data[k] == 255:
            raise CorruptTrieError("a word starts with 255")
        total += read_u32(data, k)
    return total

@njit(types.int64(I64, types.int64), cache=True)
def bump_then_power(out, n):
    out[0] += 1  # written before the twin fails: undone before the compiled run
    h = 1
    for _ in range(n):
        h = h * 3  # wraps around in Numba; a Python int does not
    return h

@njit(types.int64(types.int64), cache=True)
def spin(n):
    total = 0
    for i in range(n):
        total += i & 7
    return total

@njit([types.int64(types.int64), types.float64(types.float64)], cache=True)
def twice(x):
    return x + x

@njit([types.int64(U8), types.int64(types.Array(types.int64, 1, "C", readonly=True))], cache=True)
def head_plus_one(data):
    return data[0] + 1

@njit(cache=True)
def specialised(data):
    return read_u32(data, 0) + 1
'''


@pytest.fixture
def cold(tmp_path, monkeypatch):
    """A fresh kernel module (so nothing of it is cached), the budget reset, and no real
    background warmup: the spawns are counted instead."""
    name = f"cold_kernels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(KERNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cold_start, "_spent", 0.0)
    spawns = []
    monkeypatch.setattr(cold_start, "start_background_warmup", lambda: spawns.append(1))
    previous = cold_start.mode()
    module = importlib.import_module(name)
    module.spawns = spawns
    module.folder = tmp_path
    yield module
    cold_start.set_mode(previous)
    _forget(name)


def _forget(module_name: str) -> None:
    """Drop a test module and its kernels (jit.compile_all must not compile kernels whose
    module is gone)."""
    sys.modules.pop(module_name, None)
    jit._deferred[:] = [entry for entry in jit._deferred if entry[0].py_func.__module__ != module_name]


def _wrapped_int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & ((1 << 64) - 1)
    return h


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """The kernels of KERNELS, every one run as its twin (nothing compiles in python mode)."""
    folder = tmp_path_factory.mktemp("twins")
    (folder / "cold_kernels_twins.py").write_text(KERNELS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield importlib.import_module("cold_kernels_twins")
        _forget("cold_kernels_twins")


@given(data=st.binary(min_size=4, max_size=64))
def test_twins_answer_as_the_compiled_kernels(twins, data):
    previous = cold_start.mode()
    cold_start.set_mode("python")
    try:
        _check_twins(twins, data)
    finally:
        cold_start.set_mode(previous)


def _check_twins(twins, data: bytes) -> None:
    buf = np.frombuffer(data, np.uint8)
    words = [int.from_bytes(data[k : k + 4], "big") for k in range(0, len(data) - 3, 4)]
    assert twins.read_u32(buf, 0) == words[0]
    assert twins.fnv1a(buf) == _fnv1a(data)
    if any(data[k] == 255 for k in range(0, len(data) - 3, 4)):
        with pytest.raises(CorruptTrieError):
            twins.checked_total(buf)
    else:
        assert twins.checked_total(buf) == sum(words)
    assert twins.specialised(buf) == words[0] + 1
    for kernel in (twins.read_u32, twins.fnv1a, twins.checked_total, twins.specialised):
        assert kernel.signatures == []  # the twins answered, nothing was compiled


def test_a_project_error_passes_through_without_compiling(cold):
    cold_start.set_mode("background")
    with pytest.raises(CorruptTrieError):
        cold.checked_total(np.array([1, 2, 3, 4, 255, 0, 0, 0], np.uint8))
    assert cold.checked_total.signatures == []
    assert cold.spawns  # a cold kernel asks for the cache to be warmed


def test_a_diverging_twin_is_undone_and_the_call_compiled(cold):
    cold_start.set_mode("background")
    out = np.zeros(1, np.int64)
    assert cold.bump_then_power(out, 100) == _wrapped_int64(3**100)
    assert out[0] == 1  # the twin's write was undone before the compiled kernel ran
    assert len(cold.bump_then_power.signatures) == 1
    assert cold.bump_then_power(out, 3) == 27 and out[0] == 2


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU-time timer is POSIX")
def test_the_budget_bounds_python_time(cold, monkeypatch):
    cold_start.set_mode("background")
    monkeypatch.setattr(cold_start, "BUDGET_SECONDS", 0.05)
    n = 50_000_000  # minutes as Python, a fraction of a second compiled
    started = time.process_time()
    assert cold.spin(n) == (n // 8) * 28 + sum(range(n % 8))
    assert time.process_time() - started < 30
    assert len(cold.spin.signatures) == 1 and cold_start.budget_left() <= 0
    # With the budget spent, another cold kernel compiles at once.
    assert cold.read_u32(np.array([0, 0, 1, 0], np.uint8), 0) == 256
    assert len(cold.read_u32.signatures) == 1


def test_a_kernel_switches_to_the_cache_once_filled(cold, monkeypatch):
    cold_start.set_mode("background")
    monkeypatch.setattr(cold_start, "RECHECK_SECONDS", 0.0)
    buf = np.array([0, 0, 2, 1], np.uint8)
    assert cold.read_u32(buf, 0) == 513 and cold.read_u32.signatures == []
    # Another process (as the background warmup does) compiles the kernel into the cache.
    script = f"import numpy as np, {cold.__name__} as k; k.read_u32(np.zeros(4, np.uint8), 0)"
    env = dict(os.environ, METTA_NUMBA_COLD="compile", PYTHONPATH=str(cold.folder))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    assert cold.read_u32(buf, 0) == 513
    assert len(cold.read_u32.signatures) == 1


def test_a_signature_is_not_loaded_without_the_others(cold, monkeypatch):
    # Only the uint8 signature reaches the cache. Loaded alone, with compilation still on,
    # Numba could convert other arguments to it; so the kernel stays a twin until all are there.
    script = (
        f"import {cold.__name__} as k; from numba import types; "
        "k.head_plus_one.compile(types.int64(k.U8))"
    )
    env = dict(os.environ, METTA_NUMBA_COLD="compile", PYTHONPATH=str(cold.folder))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
    cold_start.set_mode("background")
    monkeypatch.setattr(cold_start, "RECHECK_SECONDS", 0.0)
    assert cold.head_plus_one(np.array([255], np.uint8)) == 256
    assert cold.head_plus_one(np.array([7, 1], np.int64)) == 8
    assert cold.head_plus_one.signatures == []


def test_a_first_call_gets_the_best_fitting_signature(cold):
    cold_start.set_mode("compile")
    assert cold.twice(1.25) == 2.5 and cold.twice(4) == 8


def test_other_threads_compile(cold):
    cold_start.set_mode("background")
    results = []
    worker = threading.Thread(target=lambda: results.append(cold.read_u32(np.array([0, 1, 0, 0], np.uint8), 0)))
    worker.start()
    worker.join()
    assert results == [1 << 16] and len(cold.read_u32.signatures) == 1


def test_one_warmup_at_a_time(tmp_path, monkeypatch):
    lock = tmp_path / "warmup.lock"
    first = cold_start.try_lock(lock)
    assert first is not None and cold_start.try_lock(lock) is None
    monkeypatch.setattr(cold_start, "warmup_lock_path", lambda: lock)
    monkeypatch.setattr(cold_start, "_warmup_started", False)
    monkeypatch.setattr(cold_start, "_mode", "background")
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a[0]))
    cold_start.start_background_warmup()
    assert started == []  # held: one is running
    first.close()
    monkeypatch.setattr(cold_start, "_warmup_started", False)
    cold_start.start_background_warmup()
    cold_start.start_background_warmup()
    assert started == [[sys.executable, "-m", "metta_numba", "warmup", "--background"]]


@pytest.mark.parametrize(("cpu_name", "cpu_features", "host"), [("generic", "", False), (None, None, True)])
def test_the_background_warmup_compiles_for_this_process_cpu(tmp_path, monkeypatch, cpu_name, cpu_features, host):
    from numba.core import config

    monkeypatch.setattr(cold_start, "warmup_lock_path", lambda: tmp_path / "warmup.lock")
    monkeypatch.setattr(cold_start, "_warmup_started", False)
    monkeypatch.setattr(cold_start, "_mode", "background")
    monkeypatch.setattr(config, "CPU_NAME", cpu_name)
    monkeypatch.setattr(config, "CPU_FEATURES", cpu_features)
    monkeypatch.delenv("METTA_NUMBA_CPU", raising=False)
    environments = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: environments.append(k["env"]))
    cold_start.start_background_warmup()
    [env] = environments
    assert (env.get("METTA_NUMBA_CPU") == "host") == host


def test_background_warmup_leaves_at_once_when_another_runs():
    path = cold_start.warmup_lock_path()
    held = cold_start.try_lock(path)
    assert held is not None
    try:
        started = time.perf_counter()
        proc = cli("warmup", "--background")
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
        assert time.perf_counter() - started < 30  # a full warmup takes minutes
    finally:
        held.close()


def _cold_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The command with an empty kernel cache, every kernel run as its twin."""
    folder = tmp_path / f"empty-cache-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(folder), METTA_NUMBA_COLD="python")
    proc = subprocess.run(
        [sys.executable, "-m", "metta_numba", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert not [p for p in folder.rglob("*.nbi")], "nothing may compile in python mode"
    return proc


def test_commands_on_an_empty_cache_answer_as_with_a_warm_one(tmp_path):
    facts = write(tmp_path / "facts.metta", generate_fact_kb(600, seed=3))
    rules = write(tmp_path / "rules.metta", generate_kb(40))
    for source, kb in ((facts, tmp_path / "facts.kb"), (rules, tmp_path / "rules.kb")):
        assert cli("snapshot", "build", str(source), "-o", str(kb)).returncode == 0
    queries = [
        ("facts.kb", "(edge n_5 $y)"),
        ("facts.kb", "(edge $x n_7)"),
        ("facts.kb", "(edge $x $x)"),
        ("rules.kb", "(= (add3 $x $y) $z)"),
        ("rules.kb", "(= ($f zero $x) $x)"),
        ("rules.kb", "(= (length7 (cons $h $t)) $r)"),
    ]
    for kb, pattern in queries:
        warm = cli("query", str(tmp_path / kb), pattern)
        assert warm.returncode == 0 and warm.stdout
        assert _cold_cli(tmp_path, "query", str(tmp_path / kb), pattern).stdout == warm.stdout
    program = write(
        tmp_path / "q.metta",
        "!(match &self (= (and5 $a $b) $r) ($a $b $r))\n!(match &self (= ($f zero $x) $x) $f)\n"
        "!(add-atom &self (edge n_1 n_1))\n!(match &self (edge $x $x) $x)\n",
    )
    warm = cli("--load-snapshot", str(tmp_path / "rules.kb"), str(program))
    assert warm.returncode == 0 and warm.stdout.count("\n") == 4
    assert _cold_cli(tmp_path, "--load-snapshot", str(tmp_path / "rules.kb"), str(program)).stdout == warm.stdout
    n = 4
    while len(generate_kb(n)) < BULK_MIN_CHARS + 1000:
        n *= 2
    long_program = write(
        tmp_path / "long.metta",
        generate_kb(n) + "\n!(match &self (= (and1 $a $b) $r) ($a $b $r))\n!(length3 (cons a (cons b ())))\n",
    )
    warm = cli("run", str(long_program))
    assert warm.returncode == 0 and warm.stdout.count("\n") == 2
    assert _cold_cli(tmp_path, "run", str(long_program)).stdout == warm.stdout


def test_background_is_the_default_mode():
    script = textwrap.dedent(
        """
        import os
        os.environ.pop("METTA_NUMBA_COLD", None)
        from metta_numba import cold_start, jit
        print(cold_start.mode())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "background"
