"""Python values as atoms: NumPy arrays and scalars, containers, the py-* operations, the
sandbox refusal, and snapshots refusing Python objects."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from metta_numba import MeTTa as Engine
from metta_numba.atoms import Expression, Grounded, Symbol, Variable
from metta_numba.codec import CodecError
from metta_numba.hyperon import MeTTa, OperationAtom, ValueAtom
from metta_numba.interp.python_values import PyValueAtom, to_atom
from metta_numba.space import GroundingSpace

_DTYPES = st.sampled_from([np.int8, np.int64, np.uint16, np.float32, np.float64, np.bool_])
_ARRAYS = _DTYPES.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """The reference model: same dtype, same shape, same bytes."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@given(_ARRAYS, _ARRAYS)
def test_array_atoms_are_equal_exactly_when_dtype_shape_and_bytes_are(a, b):
    x, y = PyValueAtom(a), PyValueAtom(b)
    assert (x == y) == _same_array(a, b)
    if x == y:
        assert hash(x) == hash(y)


@given(_ARRAYS)
def test_an_array_atom_equals_a_copy_and_not_its_bytes_under_another_dtype(a):
    assert PyValueAtom(a.copy()) == PyValueAtom(a)
    assert PyValueAtom(np.frombuffer(a.tobytes(), dtype=np.uint8)) != PyValueAtom(a)


def test_an_array_atom_does_not_change_when_the_callers_array_does():
    arr = np.arange(4)
    atom = PyValueAtom(arr)
    arr[0] = 99
    assert atom == PyValueAtom(np.arange(4))
    with pytest.raises(ValueError):
        atom.value[0] = 5


def test_array_atoms_are_index_keys_in_a_space():
    space = GroundingSpace()
    space.add(Expression([Symbol("vec"), Symbol("a"), PyValueAtom(np.array([1.0, 2.0]))]))
    space.add(Expression([Symbol("vec"), Symbol("b"), PyValueAtom(np.array([1, 2]))]))
    pattern = Expression([Symbol("vec"), Variable("who"), PyValueAtom(np.array([1.0, 2.0]))])
    answers = space.query(pattern)
    assert [str(b[Variable("who")]) for b in answers] == ["a"]


def test_numpy_scalars_become_metta_values():
    assert to_atom(np.int64(3)) == Grounded(3)
    assert to_atom(np.float32(0.5)) == Grounded(0.5)
    assert to_atom(np.bool_(True)) == Grounded(True)
    assert type(to_atom(np.int64(3)).value) is int
    assert to_atom(np.uint8(200)) == Grounded(200)
    assert type(to_atom(np.longdouble(1.5)).value) is float and to_atom(np.longdouble(1.5)) == Grounded(1.5)
    assert type(to_atom(np.complex64(1))) is PyValueAtom  # no MeTTa value for it
    # an Int and a Float of one value are one number (as in hyperon), whatever their origin
    assert to_atom(np.float64(3.0)) == Grounded(3) and type(to_atom(np.float64(3.0)).value) is float


def test_numpy_results_compare_with_literals_in_metta():
    metta = MeTTa()
    metta.register_atom("vec", ValueAtom(np.array([1, 2, 3])))
    metta.register_atom("np-sum", OperationAtom("np-sum", np.sum))
    metta.register_atom("np-mean", OperationAtom("np-mean", np.mean))
    assert [[repr(a) for a in r] for r in metta.run("!(np-sum vec) !(== (np-sum vec) 6) !(np-mean vec)")] == [
        ["6"], ["True"], ["2.0"]
    ]
    assert metta.run("!(get-type (np-sum vec))")[0][0].get_name() in ("Number", "%Undefined%")


def test_containers_compare_by_content():
    assert PyValueAtom([1, [2, 3]]) == PyValueAtom([1, [2, 3]])
    assert hash(PyValueAtom({"a": [1]})) == hash(PyValueAtom({"a": [1]}))
    assert PyValueAtom([1, 2]) != PyValueAtom((1, 2))
    assert PyValueAtom({"a": 1}) != PyValueAtom({"a": 2})


def test_unhashable_objects_compare_by_identity():
    class Box:
        __hash__ = None

    box = Box()
    assert PyValueAtom(box) == PyValueAtom(box)
    assert PyValueAtom(box) != PyValueAtom(Box())


def _results(text: str, runner=None) -> list:
    runner = runner or Engine()
    return [[repr(a) for a in r] for r in runner.run(text)]


def test_py_operations():
    assert _results("!(py-list (1 (2 a)))") == [["[1, [2, a]]"]]
    assert _results('!(py-tuple (1 "b"))') == [["(1, 'b')"]]
    assert _results('!(py-dict ((k 1) ("j" 2)))') == [["{'k': 1, 'j': 2}"]]
    assert _results("!((py-atom math.floor) 2.7)") == [["2"]]
    assert _results("!((py-dot (py-list (4 5 6)) index) 5)") == [["1"]]
    assert _results("!(py-chain (1 2 8))") == [["11"]]
    assert _results("!(py-atom operator.add)") == [["operator.add"]]
    [[err]] = _results("!(py-atom no.such.thing)")
    assert err.startswith("(Error (py-atom no.such.thing)") and "Failed to find" in err


def test_py_atom_does_not_evaluate_python_source():
    [[err]] = _results('!(py-atom "__import__(\'os\').getcwd()")')
    assert err.startswith("(Error")


@pytest.mark.parametrize(
    "program",
    [
        "!(py-atom len)",
        "!(py-dot 1 real)",
        "!(py-list (1))",
        "!(py-tuple (1))",
        "!(py-dict ((a 1)))",
        "!(py-chain (1))",
    ],
)
def test_sandboxed_runner_refuses_python_operations(program):
    runner = Engine()
    runner.sandbox = True  # the attribute the sandbox option sets on a runner
    [[err]] = _results(program, runner)
    assert err.startswith("(Error") and "sandboxed" in err
    assert not _results(program)[0][0].startswith("(Error")


def test_sandboxed_runner_refuses_a_python_module(tmp_path):
    (tmp_path / "mod.py").write_text("import sys\nsys.modules['__loaded_by_test__'] = True\n")
    runner = Engine(cwd=str(tmp_path))
    runner.sandbox = True
    [[err]] = _results("!(import! &self mod)", runner)
    assert "sandboxed" in err
    import sys

    assert "__loaded_by_test__" not in sys.modules


def test_saving_a_python_object_into_a_snapshot_names_the_atom(tmp_path):
    from metta_numba.store.snapshot import save_atoms

    atoms = [Expression([Symbol("ok"), Grounded(1)]), Expression([Symbol("vec"), PyValueAtom([7, 8])])]
    with pytest.raises(CodecError, match=r"\(vec \[7, 8\]\)"):
        save_atoms(atoms, tmp_path / "kb")
    assert not (tmp_path / "kb").exists()


def test_a_python_object_added_to_a_writable_snapshot_kb_stays_in_the_process(tmp_path):
    from metta_numba.space import SnapshotSpace
    from metta_numba.store import PersistentKB
    from metta_numba.syntax import parse_atom

    with PersistentKB.create(tmp_path / "kb") as kb:
        kb.add(parse_atom("(fact 1)"))
        runner = Engine(space=SnapshotSpace(kb))
        assert _results("!(let $l (py-list (1 2)) (add-atom &self (holds $l)))", runner) == [["()"]]
        assert sorted(_results("!(match &self ($h $x) $h)", runner)[0]) == ["fact", "holds"]
        # The KB itself never saw it: its log holds only what it can store.
        assert [str(a) for a in kb.atoms()] == ["(fact 1)"]


def test_a_module_loaded_by_a_sandboxed_runner_is_sandboxed_too(tmp_path):
    (tmp_path / "uses_python.metta").write_text("!(let $l (py-list (1 2)) (add-atom &self (got $l)))\n")
    program = "!(import! &self uses_python) !(match &self (got $x) $x)"
    free = Engine(cwd=str(tmp_path))
    assert _results(program, free) == [["()"], ["[1, 2]"]]
    sandboxed = Engine(cwd=str(tmp_path))
    sandboxed.sandbox = True
    assert _results(program, sandboxed) == [["()"], []]
