"""Runs added as segments of their own after a first one (space/segment_stack.py): the
segments' node codes, atoms and candidates are the ones a single segment of the same atoms
gives. (Programs with a `!` every few lines are run both ways in test_bulk_load.py.)"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from test_bulk_load import STACK_RUNS, _dense_program, _plain_atom

from metta_numba.codec import TermStore, encode_atoms
from metta_numba.interp import bulk_load
from metta_numba.interp.runner import MeTTa
from metta_numba.space.order import _prefix_tokens
from metta_numba.space.segment import BulkSegment
from metta_numba.space.segment_stack import SegmentStack
from metta_numba.syntax.parser import parse_program


def test_the_stack_programs_do_stack_segments(monkeypatch) -> None:
    """The comparison of test_bulk_load's dense programs with STACK_RUNS means something only
    if several segments are held at once."""
    monkeypatch.setattr(bulk_load, "BULK_MIN_CHARS", 0)
    held: list[int] = []
    appended = SegmentStack.appended.__func__

    def recording(cls, current, part):
        stack = appended(cls, current, part)
        held.append(len(stack.parts))
        return stack

    monkeypatch.setattr(SegmentStack, "appended", classmethod(recording))
    for seed in range(25):
        MeTTa().run_program(_dense_program(seed, STACK_RUNS))
    most = max(held)
    assert most >= 3


def _segment_of(lines: list[str], terms: TermStore) -> BulkSegment:
    atoms = [item.atom for item in parse_program("\n".join(lines))]
    data, offsets, names, _ = encode_atoms(atoms, terms)
    return BulkSegment(SimpleNamespace(data=data, offsets=offsets, names=names, terms=terms))


@pytest.mark.parametrize("seed", range(30))
def test_a_stack_gives_the_node_codes_of_one_segment(seed: int) -> None:
    rng = random.Random(seed)
    lines = [atom for atom in (_plain_atom(rng) for _ in range(rng.randint(2, 60))) if "." not in atom]
    lines += [rng.choice(lines) for _ in range(5)] if lines else ["(edge a b)", "(edge a b)"]
    rng.shuffle(lines)
    terms = TermStore()
    whole = _segment_of(lines, terms)
    cuts = sorted(rng.sample(range(1, len(lines)), min(4, len(lines) - 1)))
    stack = None
    for start, end in zip([0] + cuts, cuts + [len(lines)]):
        part = _segment_of(lines[start:end], terms)
        stack = part if stack is None else SegmentStack.appended(stack, part)
    assert len(stack) == len(lines)
    for index in range(len(lines)):
        assert stack.nodes_of(index) == whole.nodes_of(index)
        tokens = _prefix_tokens(whole.atom(index))
        assert stack.prefix_nodes(tokens) == whole.prefix_nodes(tokens)
        assert stack.atom(index) == whole.atom(index)
    pattern = parse_program("(edge $a $b)")[0].atom
    assert stack.candidate_ids(pattern).tolist() == whole.candidate_ids(pattern).tolist()


@pytest.mark.parametrize("threads", [False, True])
def test_a_segment_refuses_a_malformed_path_as_the_trie_build_does(threads, monkeypatch) -> None:
    # The segment checks its paths beside the trie's build (in a second thread when long):
    # a malformed one is still refused with the trie build's CodecError.
    from metta_numba.codec import CodecError
    from metta_numba.space import segment

    if threads:
        monkeypatch.setattr(segment, "PARALLEL_MIN_ATOMS", 1)
    atoms = [item.atom for item in parse_program("(edge a b)\n(edge b c)\n(f $x)\n")]
    terms = TermStore()
    data, offsets, names, _ = encode_atoms(atoms, terms)
    good = SimpleNamespace(data=data, offsets=offsets, names=names, terms=terms)
    assert len(BulkSegment(good)) == 3
    cut = list(offsets)
    cut[2] -= 1  # the second path loses its last byte, the third starts one early
    with pytest.raises(CodecError, match="path 1 is not one well-formed encoded atom"):
        BulkSegment(SimpleNamespace(data=data, offsets=cut, names=names, terms=terms))
