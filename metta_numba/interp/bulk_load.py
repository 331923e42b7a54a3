"""Loading a program's long runs of plain atoms through the bulk reader.

A big knowledge base file is mostly plain atoms between a few `!`s. Parsing those one by one
into Python atoms costs far more than the bulk reader (syntax.bulk) plus a segment of arrays
(space.segment) that decodes only what queries reach. Before each run of plain atoms the
runner offers the run here; it is taken only when it is long, when nothing in it depends on
the runner's state (no symbol that names a token, no type checking on addition) and when the
space can hold it as a segment exactly:

- the space is the in-memory space and has never had an atom removed (its answer order then
  follows from the atoms alone, in insertion order);
- the run holds at least as many atoms as the space: the space's atoms and the run are then
  rebuilt into one segment, so the rebuilds of a growing program cost a bounded multiple of
  its size (a program with a `!` every few lines keeps the parser for those short runs);
- every atom already in the space can be encoded (no space or state inside, no float).

The rest of the program is read and run as before, from where the run ends. A run the bulk
reader cannot read, or one it reads differently from the parser (a `!` not at the start of a
line), is left to the parser, which then reports any syntax error at its place, in order.
"""

from __future__ import annotations

from metta_numba.atoms import Symbol

BULK_MIN_CHARS = 1 << 16
"""Shorter runs go through the parser (a small program never loads the kernels)."""
SCAN_JOBS = 2
"""Threads that scan a long run (the bulk reader's kernel releases the GIL)."""


def bulk_load_run(runner, text: str, filename: str, pos: int) -> int:
    """Load the plain atoms from offset `pos` up to the next line that starts with `!` into the
    runner's space, when that is exact and worth it; returns where parsing goes on (`pos`
    when nothing was loaded)."""
    cut = _next_query_line(text, pos)
    if cut - pos < BULK_MIN_CHARS or not _runner_allows(runner):
        return pos
    from types import SimpleNamespace

    from metta_numba.codec import CodecError, TermStore
    from metta_numba.space import segment as segments
    from metta_numba.space.segment import BulkSegment, SegmentUnsupported, joined_paths, space_paths
    from metta_numba.syntax.bulk import encode_text_parallel
    from metta_numba.syntax.errors import ParseError

    space = runner.space
    terms = space._segment.terms if space._segment is not None else TermStore()
    try:
        # The segment's kernels load while the text is scanned (see segment.load_kernels).
        batch = encode_text_parallel(text[pos:cut].encode("utf-8"), filename, terms, SCAN_JOBS, segments.load_kernels)
    except ParseError:
        return pos
    if len(batch) == 0 or len(batch) < space.count() or batch.is_query.any():
        return pos
    if _names_a_token(runner, batch, text, pos, cut):
        return pos
    parts = []
    if space.count():
        try:
            data, offsets, names, skipped = space_paths(space, terms)
        except CodecError:
            return pos
        if skipped:
            return pos
        parts.append((data, offsets, names))
    parts.append((batch.data, batch.offsets, batch.names))
    data, offsets, names = joined_paths(parts)
    try:
        segment = BulkSegment(SimpleNamespace(data=data, offsets=offsets, names=names, terms=terms))
    except (SegmentUnsupported, ValueError):  # a float; more distinct atoms than a trie holds
        return pos
    space.replace_with_segment(segment)
    return cut


def _next_query_line(text: str, pos: int) -> int:
    """Where the first line at or after `pos` that starts with `!` starts (the end when none):
    `^!` in multiline mode, by str.find, which is several times faster on a long text."""
    if text.startswith("!", pos) and (pos == 0 or text[pos - 1] == "\n"):
        return pos
    found = text.find("\n!", pos)
    return len(text) if found < 0 else found + 1


def _runner_allows(runner) -> bool:
    from metta_numba.space import GroundingSpace

    space = runner.space
    return (
        type(space) is GroundingSpace
        and not space.ever_removed
        and not runner.token_patterns
        and runner.settings.get("type-check") is None
    )


def _names_a_token(runner, batch, text: str, pos: int, cut: int) -> bool:
    """Whether a symbol of the batch read from text[pos:cut] may name a token
    (conservatively: the token's encoded bytes occur anywhere in the paths, or a symbol may
    be a character literal). The paths are searched only for what the text holds at all:
    a search of the text is several times faster."""
    data = None
    for name, atom in runner.tokens.items():
        if type(atom) is Symbol and atom.name == name:
            continue  # a reserved name's shared instance: decoding gives it (core.canonical)
        if text.find(name, pos, cut) < 0:
            continue
        raw = name.encode("utf-8")
        if len(raw) > 63:
            if batch.terms.find(name) is not None:
                return True
            continue
        data = batch.data.tobytes() if data is None else data
        if bytes([0xC0 | len(raw)]) + raw in data:
            return True
    return text.find("'", pos, cut) >= 0 and bool((batch.data == ord("'")).any())
