"""Merkleizing against a reference model: the DAG has one node per distinct subtrie shape
(label bytes and the shapes of the children, in order), found here by hash-consing in a dict,
and it holds the tree's paths, counts and names. The KBs are big enough for the kernel's
class table to grow many times over (it starts at 1,024 slots and is kept half full)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.codec import TermStore
from metta_numba.syntax.bulk import encode_source
from metta_numba.trie import Trie


def reference_shapes(tree: Trie) -> int:
    """Distinct subtrie shapes of a tree, by hash-consing in Python."""
    arrays = tree.plain_arrays()
    labels, label_off, label_len = arrays["labels"], arrays["label_off"], arrays["label_len"]
    child_start, children = arrays["child_start"], arrays["children"]
    classes: dict[tuple, int] = {}
    class_of = {}
    # Preorder ids: children have higher ids than their parent, so a descending pass is
    # children first.
    for node in range(tree.n_nodes - 1, -1, -1):
        label = bytes(labels[int(label_off[node]) : int(label_off[node]) + int(label_len[node])])
        kids = tuple(class_of[int(c)] for c in children[child_start[node] : child_start[node + 1]])
        class_of[node] = classes.setdefault((label, kids), len(classes))
    return len(classes)


def _kb(n: int, fanout: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        a, b = rng.integers(0, fanout, 2).tolist()
        lines.append(f"(edge n{i % 997} (pair m{a} k{b}) (w {i % 13}))")
        lines.append(f"(= (f{a} $x {b}) (g $x n{i % 31}))")
    return "\n".join(lines).encode()


@pytest.mark.parametrize(("n", "fanout"), [(3_000, 40), (6_000, 400)])
def test_merkleized_nodes_are_the_distinct_shapes(n, fanout):
    batch = encode_source(_kb(n, fanout, n), "kb", TermStore())
    tree = Trie.build(batch.data, batch.offsets, names=batch.names)
    dag = tree.merkleize()
    dag.validate()
    assert dag.n_nodes == reference_shapes(tree) > 1024
    assert list(dag.iter_paths()) == list(tree.iter_paths())
    assert np.array_equal(dag.arrays["leaf_name"], tree.arrays["leaf_name"])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 1500), fanout=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_merkleizing_any_kb_gives_one_node_per_shape(n, fanout, seed):
    batch = encode_source(_kb(n, fanout, seed), "kb", TermStore())
    tree = Trie.build(batch.data, batch.offsets, names=batch.names)
    dag = tree.merkleize()
    dag.validate()
    assert dag.n_nodes == reference_shapes(tree)
    assert list(dag.iter_paths()) == list(tree.iter_paths())
