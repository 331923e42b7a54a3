"""Loading a program's leading run of plain atoms through the bulk reader.

A big knowledge base file is mostly plain atoms before its first `!`. Parsing those one by one
into Python atoms costs far more than the bulk reader (syntax.bulk) plus a segment of arrays
(space.segment) that decodes only what queries reach. The run is taken that way only when it
is large, when nothing in it depends on the runner's state (no symbol that names a token, no
type checking on addition) and when the space has held nothing yet; the rest of the program is
read and run as before, from where the run ends. A run the bulk reader cannot read, or one it
reads differently from the parser (a `!` not at the start of a line), is left to the parser,
which then reports any syntax error at its place, in order.
"""

from __future__ import annotations

import re

from metta_numba.atoms import Symbol

BULK_MIN_CHARS = 1 << 16
"""Shorter leading runs go through the parser (a small program never loads the kernels)."""

_QUERY_LINE = re.compile(r"^!", re.MULTILINE)


def bulk_load_leading_atoms(runner, text: str, filename: str) -> int:
    """Load the plain atoms before the first line that starts with `!` into the runner's space
    as one segment, when that is exact and worth it; returns where parsing goes on (0: at the
    start, nothing was loaded)."""
    found = _QUERY_LINE.search(text)
    cut = len(text) if found is None else found.start()
    if cut < BULK_MIN_CHARS or not _runner_allows(runner):
        return 0
    from metta_numba.space.segment import BulkSegment, SegmentUnsupported
    from metta_numba.syntax.bulk import encode_source
    from metta_numba.syntax.errors import ParseError

    try:
        batch = encode_source(text[:cut].encode("utf-8"), filename)
    except ParseError:
        return 0
    if len(batch) == 0 or batch.is_query.any() or _names_a_token(runner, batch):
        return 0
    try:
        segment = BulkSegment(batch)
    except SegmentUnsupported:
        return 0
    runner.space.attach_segment(segment)
    return cut


def _runner_allows(runner) -> bool:
    from metta_numba.space import GroundingSpace

    space = runner.space
    return (
        type(space) is GroundingSpace
        and space.count() == 0
        and space._next_id == 0
        and not runner.token_patterns
        and runner.settings.get("type-check") is None
    )


def _names_a_token(runner, batch) -> bool:
    """Whether a symbol of the batch may name a token (conservatively: the token's encoded
    bytes occur anywhere, or a symbol may be a character literal)."""
    data = batch.data.tobytes()
    if b"'" in data:
        return True
    for name, atom in runner.tokens.items():
        if type(atom) is Symbol and atom.name == name:
            continue  # a reserved name's shared instance: decoding gives it (core.canonical)
        raw = name.encode("utf-8")
        if len(raw) <= 63:
            if bytes([0xC0 | len(raw)]) + raw in data:
                return True
        elif batch.terms.find(name) is not None:
            return True
    return False
