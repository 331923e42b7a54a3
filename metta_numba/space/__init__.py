"""Spaces: the interface the interpreter talks to (`base`), the in-memory multiset
(`grounding`), the snapshot-backed space (`snapshot`), hyperon's answer order (`order`) and
conjunctions joined over any of them (`conjunction`)."""

from metta_numba.space.base import (
    ANY_HEAD,
    EQUALS,
    HAS_TYPE,
    NARROW_RULES_AFTER,
    SUBTYPE,
    Rule,
    Space,
    changed_head,
    match_stored,
    may_match,
    module_view,
    query_view,
    replace_symbols,
)
from metta_numba.space.grounding import GroundingSpace
from metta_numba.space.snapshot import SnapshotSpace

__all__ = [
    "ANY_HEAD",
    "EQUALS",
    "HAS_TYPE",
    "NARROW_RULES_AFTER",
    "SUBTYPE",
    "GroundingSpace",
    "Rule",
    "SnapshotSpace",
    "Space",
    "changed_head",
    "match_stored",
    "may_match",
    "module_view",
    "query_view",
    "replace_symbols",
]
