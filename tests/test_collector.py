"""metta_numba.collector: the collector is off inside the block and back as it was after it."""

from __future__ import annotations

import gc

import pytest

from metta_numba.collector import collector_paused


def test_the_collector_is_held_off_inside_and_restored_after():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner block does not switch it back on early"
    assert gc.isenabled()


def test_an_exception_restores_the_collector():
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_switched_off_outside_stays_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
