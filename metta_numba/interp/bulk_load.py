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
from metta_numba.syntax.bulk_parallel import run_end

BULK_MIN_CHARS = 1 << 16
"""Shorter runs go through the parser (a small program never loads the kernels)."""
APPEND_MIN_CHARS = 1 << 12
"""Once the space holds a segment (the kernels are loaded), a run this long is added as a
segment of its own (space/segment_stack.py) rather than parsed atom by atom."""


def bulk_load_run(runner, text: str, filename: str, pos: int, mark=None) -> int:
    """Load the plain atoms from offset `pos` up to the next line that starts with `!` into the
    runner's space, when that is exact and worth it; returns where parsing goes on (`pos`
    when nothing was loaded). `mark` (a parser.LineMark at or before `pos`, if given) is moved
    to that place when the scan counted the run's lines on the way."""
    cut = run_end(text, pos)
    space = runner.space
    least = BULK_MIN_CHARS if getattr(space, "_segment", None) is None else min(BULK_MIN_CHARS, APPEND_MIN_CHARS)
    if cut - pos < least or not _runner_allows(runner):
        return pos
    from types import SimpleNamespace

    from metta_numba.codec import CodecError, TermStore
    from metta_numba.space import segment as segments
    from metta_numba.space.segment import BulkSegment, SegmentUnsupported, joined_paths, space_paths
    from metta_numba.space.segment_stack import SegmentStack
    from metta_numba.syntax.bulk_parallel import ParallelScan, take_early_scan
    from metta_numba.syntax.errors import ParseError

    terms = space._segment.terms if space._segment is not None else TermStore()
    try:
        scan = take_early_scan(text, pos, cut) or ParallelScan(text[pos:cut].encode("utf-8"), filename)
        # The segment's kernels load while the text is scanned (see segment.load_kernels).
        batch = scan.encoded(terms, segments.load_kernels)
        newlines = scan.newlines
        del scan
        segments.trim_free_memory()  # the scan's buffers
    except ParseError:
        return pos
    if len(batch) == 0 or batch.is_query.any() or _names_a_token(runner, batch, text, pos, cut):
        return pos
    if space._segment is None and len(batch) < space.count():
        return pos  # the parser's atoms would cost more to rebuild than this run saves
    parts = []
    try:
        # The space's atoms first: all of them for its first segment, else those added one
        # by one since its last segment (the new segment goes after the others).
        data, offsets, names, skipped = space_paths(space, terms, own_only=space._segment is not None)
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
    if space._segment is not None:
        segment = SegmentStack.appended(space._segment, segment)
    space.replace_with_segment(segment)
    if mark is not None and newlines is not None and mark.at <= pos:
        # The parser goes on at `cut` without counting the run's lines again.
        line = mark.line + text.count("\n", mark.at, pos) + newlines
        found = text.rfind("\n", mark.at, cut)
        mark.at, mark.line = cut, line
        mark.line_start = found + 1 if found >= 0 else mark.line_start
    return cut


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
        # One character first: str.find of one character runs at memchr speed, ten times a
        # longer word's search, and the characters of a token's name are often absent.
        if text.find(name[:1], pos, cut) < 0 or text.find(name, pos, cut) < 0:
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
