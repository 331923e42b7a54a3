"""The bulk reader on several threads: a long run of a program's text cut into pieces that are
scanned at once (the reader's kernel releases the GIL), and a scan started early.

A piece boundary must fall between two top-level atoms. Pieces are cut before a `(` that
starts a line, and a cut is trusted only when the piece before it reads without error: a cut
inside an expression or a string leaves that piece with an unclosed parenthesis or string
(comments end at the newline before the cut). A `!` could end a piece and mark the atom after
the cut as a query, so a source holding any `!` byte is read in one piece, as is a source
with an error anywhere (so that the error is the one a single scan reports).

`start_early_scan` lets the command line begin scanning a big program's first run as soon as
the file is read: the interpreter's imports and set-up then overlap the scan, and the bulk
loader takes the result (`take_early_scan`) when it reaches that run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from metta_numba.syntax.errors import ParseError

if TYPE_CHECKING:
    from metta_numba.codec.terms import TermStore
    from metta_numba.syntax.bulk import EncodedBatch

# The reader (and so Numba) is imported when a scan starts: `run_end` serves the interpreter
# for every long program, most of whose runs are short.

PARALLEL_MIN_BYTES = 1 << 20
"""Shorter sources are scanned by one thread: a second one would not pay for itself."""
SCAN_JOBS = 2
"""Pieces (threads) of a long source."""


class ParallelScan:
    """A scan of UTF-8 bytes (encoded from a str) in pieces, each in a thread of its own,
    started at construction; `encoded` waits for it and interns the pieces in order."""

    def __init__(self, raw: bytes, filename: str, jobs: int = SCAN_JOBS, size: int | None = None) -> None:
        """Scan raw[:size] (all of `raw` by default: a longer buffer is not copied)."""
        from metta_numba.syntax.bulk import check_bytes, scan_range

        size = len(raw) if size is None else size
        self.raw = raw
        self.size = size
        self.filename = filename
        self.newlines: int | None = None
        """How many newlines the text holds, once `encoded` returned (None: not counted)."""
        cuts = piece_cuts(raw, jobs, size)
        self._threads: list[threading.Thread] = []
        self._pieces: list = []
        self._newlines: list = []
        if len(cuts) <= 2 or raw.find(b"!", 0, size) >= 0:
            return  # one piece: read by `encoded` in the calling thread
        check_bytes(raw, filename, valid_utf8=True, end=size)
        self._pieces = [None] * (len(cuts) - 1)
        self._newlines = [0] * (len(cuts) - 1)

        def scan(k: int) -> None:
            try:
                self._pieces[k] = scan_range(raw, cuts[k], cuts[k + 1], filename, copy=False)
            except ParseError as err:
                self._pieces[k] = err
            # The newlines too, for the line numbers of what follows the run: counted here,
            # without the GIL (NumPy's loops release it), not by the interpreter's thread.
            self._newlines[k] = _count_newlines(raw, cuts[k], cuts[k + 1])

        # The kernel's machine code is loaded here first: a thread that called it while
        # another was loading it would run its slow stand-in instead (cold_start checks the
        # cache again only after a while).
        scan_range(b"()", 0, 2, filename, copy=False)
        for k in range(len(self._pieces)):
            thread = threading.Thread(target=scan, args=(k,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def encoded(self, terms: TermStore, meanwhile: Callable[[], None] | None = None) -> EncodedBatch:
        """The batch `encode_source` gives (ParseError likewise); `meanwhile` runs in the
        calling thread while the pieces are scanned."""
        from metta_numba.syntax.bulk import encode_source, intern_scanned

        if meanwhile is not None:
            meanwhile()
        for thread in self._threads:
            thread.join()
        # The text and the pieces (views of the kernel's growable buffers) are let go here.
        pieces, raw = self._pieces, self.raw
        self._pieces, self.raw = [], b""
        if not pieces or any(isinstance(piece, ParseError) for piece in pieces):
            raw = raw if self.size == len(raw) else raw[: self.size]
            return encode_source(raw, self.filename, terms, valid_utf8=True)
        self.newlines = sum(self._newlines)
        return _joined([intern_scanned(piece, terms) for piece in pieces], terms)


def encode_text_parallel(
    raw: bytes, filename: str, terms: TermStore, jobs: int = SCAN_JOBS, meanwhile: Callable[[], None] | None = None
) -> EncodedBatch:
    """`encode_source` of bytes encoded from a str, scanned in `jobs` pieces at once; the
    calling thread runs `meanwhile` (if given) as they scan."""
    return ParallelScan(raw, filename, jobs).encoded(terms, meanwhile)


def _count_newlines(raw: bytes, start: int, end: int) -> int:
    import numpy as np

    return int(np.count_nonzero(np.frombuffer(raw, np.uint8, end - start, start) == 10))


def piece_cuts(raw: bytes, jobs: int, size: int | None = None) -> list[int]:
    """0, the cut points (each just after a newline, before a `(`), and `size` (len(raw))."""
    size = len(raw) if size is None else size
    cuts = [0]
    if size >= PARALLEL_MIN_BYTES:
        for k in range(1, jobs):
            found = raw.find(b"\n(", max(cuts[-1], size * k // jobs), size)
            if found < 0:
                break
            cuts.append(found + 1)
    cuts.append(size)
    return cuts


def _joined(batches: list[EncodedBatch], terms: TermStore) -> EncodedBatch:
    """One batch of several, one after the other (new arrays: the pieces may be views)."""
    import numpy as np

    from metta_numba.syntax.bulk import EncodedBatch

    sizes = np.concatenate([np.diff(b.offsets) for b in batches])
    offsets = np.empty(len(sizes) + 1, np.int64)
    offsets[0] = 0
    np.cumsum(sizes, out=offsets[1:])
    return EncodedBatch(
        data=np.concatenate([b.data for b in batches]),
        offsets=offsets,
        is_query=np.concatenate([b.is_query for b in batches]),
        names=np.concatenate([b.names for b in batches]),
        terms=terms,
    )


# -- the early scan of a program's first run ----------------------------------------------------

_early: list = []  # at most one (text, start, end, ParallelScan)


def run_end(text: str, pos: int) -> int:
    """Where the first line at or after `pos` that starts with `!` starts (the end when none):
    the end of the run of plain atoms from `pos`. `^!` in multiline mode, by str.find, which
    is several times faster on a long text."""
    if text.startswith("!", pos) and (pos == 0 or text[pos - 1] == "\n"):
        return pos
    found = text.find("\n!", pos)
    return len(text) if found < 0 else found + 1


def start_early_scan(text: str, filename: str, min_chars: int, raw: bytes | None = None) -> bool:
    """Begin scanning the run of plain atoms that opens `text`, when it holds at least
    `min_chars` characters (see the module docstring); True when it began. `raw`: the bytes
    `text` was decoded from, scanned in place when the text is ASCII (as long as its bytes:
    the offsets agree) rather than encoded again."""
    end = run_end(text, 0)
    if end < min_chars:
        return False
    try:
        if raw is not None and len(raw) == len(text):
            scan = ParallelScan(raw, filename, size=end)
        else:
            scan = ParallelScan(text[:end].encode("utf-8"), filename)
    except ParseError:
        return False  # the interpreter reports it in its place
    _early[:] = [(text, 0, end, scan)]
    return True


def take_early_scan(text: str, start: int, end: int) -> ParallelScan | None:
    """The early scan of text[start:end], if one was started (it is handed out once)."""
    if _early and _early[0][0] is text and _early[0][1:3] == (start, end):
        return _early.pop()[3]
    return None
