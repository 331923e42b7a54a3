"""The Numba types of a kernel call's arguments, as `Dispatcher.typeof_pyval` gives them, with
plain arrays (and tuples of them) typed here.

Numba's typing of an array first asks whether it is a masked array, and that question
imports numpy.ma (10-25 ms) in every process that calls a kernel from Python with an argument
the dispatcher's C code does not type itself (a read-only array, a tuple of arrays, any
argument of a first call). An exact `np.ndarray` is never a masked array, so its type is
derived here from its dtype, dimensions, layout and writability, as Numba derives it.
"""

from __future__ import annotations

import numpy as np


def argument_type(dispatcher, value):
    """The Numba type of `value` as an argument of `dispatcher` (Numba's answer, or the same
    type computed without importing numpy.ma)."""
    found = _plain_type(value)
    if found is None:
        return type(dispatcher).typeof_pyval(dispatcher, value)
    active = getattr(dispatcher, "_types_active_call", None)
    if active is not None:
        active.add(found)  # as Numba's keeps the types of a call alive
    return found


def call_argument_types(dispatcher, call_args: tuple) -> tuple:
    """The types Numba's dispatcher derives for a call (an omitted argument: its default)."""
    from numba.core import types
    from numba.core.dispatcher import OmittedArg

    return tuple(
        types.Omitted(value.value) if isinstance(value, OmittedArg) else argument_type(dispatcher, value)
        for value in call_args
    )


def _plain_type(value):
    """The type of an exact ndarray of a dtype Numba supports, or of a tuple of such arrays;
    None for anything else (left to Numba)."""
    kind = type(value)
    if kind is np.ndarray:
        return _array_type(value)
    if kind is tuple and value and all(type(item) is np.ndarray for item in value):
        items = [_array_type(item) for item in value]
        if any(item is None for item in items):
            return None
        from numba.core import types

        return types.BaseTuple.from_types(items, tuple)
    return None


def _array_type(value: np.ndarray):
    from numba.core import errors, types
    from numba.np import numpy_support

    try:
        dtype = numpy_support.from_dtype(value.dtype)
    except errors.NumbaNotImplementedError:
        return None  # an unsupported dtype: Numba's own answer
    layout = numpy_support.map_layout(value)
    return types.Array(dtype, value.ndim, layout, readonly=not value.flags.writeable)
