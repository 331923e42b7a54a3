"""Corrupt trie arrays give CorruptTrieError, never a crash or a hang.

The tampering trials run in a subprocess, so that a segfault in a kernel would show up as a
failed exit status here instead of killing the test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from metta_numba.atoms import E
from metta_numba.codec import TermStore, encode
from metta_numba.trie import ARRAY_NAMES, CorruptTrieError, Trie
from metta_numba.trie.column_pack import block_column, escaped_column, label_column
from metta_numba.trie.columns import decode

TRIAL_SCRIPT = r"""
import json, sys, traceback
from collections import Counter
import numpy as np
from metta_numba.atoms import E, Expression, Grounded, Symbol, Variable
from metta_numba.codec import TermStore, encode
from metta_numba.trie import ARRAY_NAMES, CorruptTrieError, Trie
from metta_numba.trie.column_pack import block_column, escaped_column, label_column
from metta_numba.trie.columns import decode

rng = np.random.default_rng(int(sys.argv[1]))
n_trials = int(sys.argv[2])
terms = TermStore()
names = ["a", "b", "f", "g", "succ", "zero"]

def random_atom(depth):
    roll = rng.integers(0, 10)
    if depth == 0 or roll < 4:
        kind = rng.integers(0, 3)
        if kind == 0:
            return Symbol(str(rng.choice(names)))
        if kind == 1:
            return Variable(str(rng.choice(["x", "y"])))
        return Grounded(int(rng.integers(-3, 3)))
    return Expression(random_atom(depth - 1) for _ in range(rng.integers(0, 4)))

atoms = [E("=", random_atom(3), random_atom(3)) for _ in range(150)] + [random_atom(4) for _ in range(150)]
paths = [encode(a, terms)[0] for a in atoms]
offsets = np.cumsum([0] + [len(p) for p in paths])
base = Trie.build(np.frombuffer(b"".join(paths), np.uint8), offsets)
patterns = [encode(a, terms)[0] for a in
            [Variable("q"), E("=", "$h", "$b"), E("=", ("f", "$x"), "$x"), E("$p", "$p"), atoms[0], atoms[200]]]

COLUMNS = ("label_off", "child_start", "children", "child_rank_offset")

def packed(name, values, arrays):
    if name == "label_off":
        return label_column(values, arrays["label_len"])
    return (block_column if name == "child_start" else escaped_column)(values)

def tamper(arrays):
    # Returns (description, must_fail_validation).
    name = str(rng.choice(ARRAY_NAMES))
    array = arrays[name]
    kind = int(rng.integers(0, 6))
    if kind == 0 or array.size == 0:
        cut = int(rng.integers(1, 4))
        arrays[name] = array[: max(0, array.size - cut)].copy()
        return f"truncate {name}", array.size > 0 and name != "labels"
    index = int(rng.integers(0, array.size))
    if kind == 1 and name == "label_len":  # one byte per node: no value runs past uint8, but
        array[index] = 1 if index == 0 else 0  # only the root's label is (and must be) empty
        return f"bad label length label_len[{index}]", True
    values = decode(array, arrays["label_len"]) if name in COLUMNS else None
    if kind in (1, 2) and values is not None and values.size:
        # A wrong value in a well-formed column (what a bug in a writer would leave).
        index = int(rng.integers(0, values.size))
        n_nodes = arrays["label_len"].size
        if kind == 1:
            limit = {"label_off": arrays["labels"].size + 1, "child_start": decode(arrays["children"]).size + 1,
                     "children": n_nodes, "child_rank_offset": 2**31 - 1}[name]
            values[index] = int(rng.choice([limit, 2**31 - 1, 2**40]))
            what, must_fail = f"out of range {name}[{index}]", True
        elif name == "children":
            values[index] = 0  # a child that is its own parent: a cycle
            what, must_fail = f"no step children[{index}]", True
        else:
            values[index] = int(rng.integers(0, 2**40))
            what, must_fail = f"random value {name}[{index}]", False
        arrays[name] = packed(name, values, arrays)
        return what, must_fail
    if kind == 3 and name == "leaf_count":
        array[index] = 0
        return f"zero count at {index}", True
    if kind == 4 and array.size > 1:
        other = int(rng.integers(0, array.size))
        array[index], array[other] = array[other], array[index]
        return f"swap {name}[{index}] [{other}]", False
    # A random value: in a column, a damaged word of its header or of its bits.
    info = np.iinfo(array.dtype)
    array[index] = int(rng.integers(max(info.min, -2**40), min(info.max, 2**40), dtype=np.int64))
    return f"random value {name}[{index}]", False

def exercise(trie):
    # Every kernel entry point, each of which may raise CorruptTrieError and nothing else.
    done = 0
    calls = [
        lambda: [trie.count(p) for p in paths[:20]],
        lambda: [trie.match(p) for p in patterns],
        lambda: list(trie.iter_paths()),
        lambda: [trie.path(r) for r in range(0, len(trie), 7)],
        lambda: trie.prefix_range(paths[5][:3]),
        lambda: list(trie.iter_paths(paths[3][:2])),
        lambda: trie.merge(base),
        lambda: base.merge(trie),
        lambda: trie.subtract(base),
        lambda: trie.merkleize(),
        lambda: trie.validate(),
    ]
    for call in calls:
        try:
            call()
            done += 1
        except CorruptTrieError:
            pass
    return done

unexpected, undetected = [], []
outcomes = Counter()
for trial in range(n_trials):
    arrays = {name: array.copy() for name, array in base.arrays.items()}
    what, must_fail = tamper(arrays)
    for validate in (True, False):
        try:
            trie = Trie.from_arrays(arrays, validate=validate)
        except CorruptTrieError:
            outcomes[f"rejected at open (validate={validate})"] += 1
            continue
        except Exception:
            unexpected.append(f"{what}: from_arrays: {traceback.format_exc()}")
            continue
        if validate and must_fail:
            undetected.append(what)
        try:
            outcomes[f"calls completed (validate={validate})"] += exercise(trie)
        except Exception:
            unexpected.append(f"{what} (validate={validate}): {traceback.format_exc()}")
print(json.dumps({"unexpected": unexpected, "undetected": undetected, "outcomes": outcomes}))
"""


def run_trials(seed: int, n_trials: int) -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba_cache"))
    done = subprocess.run(
        [sys.executable, "-c", TRIAL_SCRIPT, str(seed), str(n_trials)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seed", [1, 2])
def test_tampered_arrays_raise_corrupt_trie_error_and_never_crash(seed):
    report = run_trials(seed, 150)
    assert report["unexpected"] == []
    # Out-of-range indices, lower child ids, zero counts and truncations are always caught by
    # validation at open.
    assert report["undetected"] == []
    outcomes = report["outcomes"]
    assert outcomes["rejected at open (validate=True)"] > 0
    # Lazy opening lets most tampering through to the kernels, which must cope.
    assert outcomes["calls completed (validate=False)"] > 0


def edit_column(arrays: dict, name: str, index: int | slice, value: int) -> None:
    """Set values[index] of column `name` and store it packed again: a well-formed column holding
    a wrong value (children hold each edge's step from its parent)."""
    values = decode(arrays[name], arrays["label_len"])
    values[index] = value
    if name == "label_off":
        arrays[name] = label_column(values, arrays["label_len"])
    else:
        arrays[name] = (block_column if name == "child_start" else escaped_column)(values)


def small_trie() -> tuple[Trie, TermStore]:
    terms = TermStore()
    atoms = [E("f", "a"), E("f", "b"), E("=", ("g", "$x"), "$x"), E("h", ("f", "a"), "$y")]
    paths = [encode(a, terms)[0] for a in atoms]
    offsets = np.cumsum([0] + [len(p) for p in paths])
    return Trie.build(np.frombuffer(b"".join(paths), np.uint8), offsets), terms


def test_missing_or_mistyped_arrays_are_rejected_at_open():
    trie, _ = small_trie()
    for name in ARRAY_NAMES:
        arrays = trie.arrays
        del arrays[name]
        with pytest.raises(CorruptTrieError, match=name):
            Trie.from_arrays(arrays, validate=False)
        arrays = trie.arrays
        arrays[name] = arrays[name].astype(np.float64)
        with pytest.raises(CorruptTrieError, match=name):
            Trie.from_arrays(arrays, validate=False)
        arrays = trie.arrays
        arrays[name] = np.stack([arrays[name], arrays[name]])
        with pytest.raises(CorruptTrieError, match=name):
            Trie.from_arrays(arrays, validate=False)
    arrays = trie.arrays
    arrays["child_start"] = arrays["child_start"][:-1]
    with pytest.raises(CorruptTrieError, match="length"):
        Trie.from_arrays(arrays, validate=False)


def test_a_cycle_is_caught_by_the_kernels_without_validation():
    trie, terms = small_trie()
    arrays = trie.arrays
    edit_column(arrays, "children", -1, 0)  # the last edge now leads to its own node
    with pytest.raises(CorruptTrieError):
        Trie.from_arrays(arrays, validate=True)
    lazy = Trie.from_arrays(arrays, validate=False)
    with pytest.raises(CorruptTrieError):
        lazy.match(b"\xc0")
    with pytest.raises(CorruptTrieError):
        list(lazy.iter_paths())


def test_a_node_with_more_edges_than_bytes_is_caught_without_validation():
    """Edges must start with distinct bytes, so a node has at most 256: the match walk saves
    one branch per edge and relies on that bound."""
    terms = TermStore()
    atoms = [E("f", "$x")] + [E("g", f"s{i}") for i in range(400)]
    paths = [encode(a, terms)[0] for a in atoms]
    trie = Trie.build(np.frombuffer(b"".join(paths), np.uint8), np.cumsum([0] + [len(p) for p in paths]))
    arrays = trie.arrays
    # Hand every edge after the root's first to one node: far more than 256 edges.
    node = int(decode(arrays["children"])[0])  # the root's first child: 0 plus its step
    n_edges = len(decode(arrays["children"]))
    edit_column(arrays, "child_start", slice(node + 1, -1), n_edges)
    with pytest.raises(CorruptTrieError):
        Trie.from_arrays(arrays, validate=True)
    lazy = Trie.from_arrays(arrays, validate=False)
    with pytest.raises(CorruptTrieError):
        lazy.match(b"\xc0")


def test_big_endian_arrays_are_rejected():
    trie, _ = small_trie()
    arrays = trie.arrays
    arrays["label_off"] = arrays["label_off"].astype(">i8")
    with pytest.raises(CorruptTrieError, match="label_off"):
        Trie.from_arrays(arrays)


@pytest.mark.parametrize("count_dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("name_dtype", [np.int8, np.int16, np.int32, np.int64])
def test_bad_leaf_values_are_caught_in_every_leaf_dtype(count_dtype, name_dtype):
    trie, terms = small_trie()

    def leaf_arrays(counts, names):
        arrays = trie.arrays
        arrays["leaf_count"] = np.array(counts, count_dtype)
        arrays["leaf_name"] = np.array(names, name_dtype)
        return arrays

    Trie.from_arrays(leaf_arrays([1, 2, 1, 1], [-1, -1, 0, 0]))
    with pytest.raises(CorruptTrieError, match="count 0"):
        Trie.from_arrays(leaf_arrays([1, 0, 1, 1], [-1, -1, -1, -1]))
    with pytest.raises(CorruptTrieError, match="below -1"):
        Trie.from_arrays(leaf_arrays([1, 1, 1, 1], [-1, -2, -1, -1]))
    # One leaf too few: validation counts the leaves; a lazy open lets the walk find it.
    with pytest.raises(CorruptTrieError, match="length"):
        Trie.from_arrays(leaf_arrays([1, 1, 1], [-1, -1, -1, -1]), validate=False)
    arrays = leaf_arrays([1, 1, 1], [-1, -1, -1])
    with pytest.raises(CorruptTrieError):
        Trie.from_arrays(arrays)
    lazy = Trie.from_arrays(arrays, validate=False)
    with pytest.raises(CorruptTrieError):
        lazy.count(trie.path(3))  # the walk reaches rank 3, past the leaf arrays


@pytest.mark.parametrize("offset", [2**32 - 1, 2**31, 2**32 - 2])
def test_label_offsets_near_the_top_of_uint32_are_caught(offset):
    """Offset plus length is computed in 64 bits: a huge uint32 offset cannot wrap to a small one."""
    trie, _ = small_trie()
    for node in range(1, trie.n_nodes):
        arrays = trie.arrays
        edit_column(arrays, "label_off", node, offset)
        with pytest.raises(CorruptTrieError):
            Trie.from_arrays(arrays)
        lazy = Trie.from_arrays(arrays, validate=False)
        with pytest.raises(CorruptTrieError):
            list(lazy.iter_paths())
        with pytest.raises(CorruptTrieError):
            lazy.match(b"\xc0")  # a variable pattern visits every node


def test_a_label_running_past_the_label_bytes_is_caught():
    trie, _ = small_trie()
    arrays = trie.arrays
    label_len = arrays["label_len"].copy()
    label_len[-1] = 255  # the last node's label starts near the end of `labels`
    arrays["label_len"] = label_len
    assert int(decode(arrays["label_off"], arrays["label_len"])[-1]) + 255 > len(arrays["labels"])
    with pytest.raises(CorruptTrieError, match="label"):
        Trie.from_arrays(arrays)
    lazy = Trie.from_arrays(arrays, validate=False)
    with pytest.raises(CorruptTrieError):
        list(lazy.iter_paths())
    with pytest.raises(CorruptTrieError):
        lazy.match(b"\xc0")


def test_node_arrays_of_the_earlier_layout_ask_for_a_rebuild():
    trie, _ = small_trie()
    for name, dtype in (("label_off", np.int64), ("label_len", np.int32)):
        arrays = trie.arrays
        arrays[name] = arrays[name].astype(dtype)
        with pytest.raises(CorruptTrieError, match=f"{name}.*rebuild the snapshot"):
            Trie.from_arrays(arrays, validate=False)
