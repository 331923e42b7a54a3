"""trie.spangroups.group_spans against grouping by the bytes themselves in a dict."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from metta_numba.trie.spangroups import group_spans


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.lists(st.tuples(st.integers(0, 40), st.integers(0, 4)), max_size=60))
def test_groups_are_equal_bytes_numbered_by_first_occurrence(blob, picks):
    buf = np.frombuffer(blob, np.uint8)
    spans = [(min(start, len(blob)), min(start + length, len(blob))) for start, length in picks]
    starts = np.array([s for s, _ in spans], np.int64)
    ends = np.array([e for _, e in spans], np.int64)
    groups, representatives = group_spans(buf, starts, ends)
    numbering: dict[bytes, int] = {}
    expected = [numbering.setdefault(blob[s:e], len(numbering)) for s, e in spans]
    assert groups.tolist() == expected
    assert len(representatives) == len(numbering)
    for g, (text, number) in enumerate(sorted(numbering.items(), key=lambda item: item[1])):
        assert number == g
        rep = int(representatives[g])
        assert blob[spans[rep][0] : spans[rep][1]] == text and expected[rep] == g
        assert rep == expected.index(g), "a group is represented by its first span"
