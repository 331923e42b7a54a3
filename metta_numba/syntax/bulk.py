"""The bulk reader: a whole MeTTa source file -> a batch of encoded paths, with no atom objects.

This is how a big knowledge base is read. A Numba kernel (`syntax.bulk_kernels`) walks the
bytes once and writes every top-level atom's path (`codec.atom_codec` bytes) into one buffer.
The grammar, the bytes, the term ids and the errors (message, line and column) are exactly
those of `syntax.parser` followed by `codec.encode`, interning each atom's strings and long
symbols in order and then its variable names joined by one space.

The Python side here does only what is per *distinct* text or per rare token: it interns the
distinct strings, long symbols and variable-name lists the kernel found, converts the floats
the kernel could not convert exactly, and words errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metta_numba.codec.kernels import first_invalid_utf8
from metta_numba.codec.terms import TermStore
from metta_numba.syntax import bulk_kernels as kernels
from metta_numba.syntax import bulk_lexer as lexer
from metta_numba.syntax import parser
from metta_numba.syntax.errors import ParseError

__all__ = [
    "EncodedBatch",
    "ScannedSource",
    "encode_file",
    "encode_source",
    "intern_scanned",
    "scan_source",
]


@dataclass
class EncodedBatch:
    """The top-level atoms of a source, as paths: path i is `data[offsets[i]:offsets[i+1]]`.

    `is_query[i]` tells a `!` item; `names[i]` is the term id of its variable names joined by a
    space (-1 when it has none). Strings and long symbols in the paths are ids into `terms`."""

    data: np.ndarray
    offsets: np.ndarray
    is_query: np.ndarray
    names: np.ndarray
    terms: TermStore = field(repr=False)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def path(self, index: int) -> bytes:
        return self.data[self.offsets[index] : self.offsets[index + 1]].tobytes()

    def var_names(self, index: int) -> list[str]:
        """The variable names of atom `index`, in order of first occurrence."""
        name_id = int(self.names[index])
        return [] if name_id < 0 else self.terms.text(name_id).split(" ")


def encode_source(
    data: bytes, filename: str = "<string>", terms: TermStore | None = None, *, valid_utf8: bool = False
) -> EncodedBatch:
    """Encode every top-level atom of a UTF-8 MeTTa source.

    Raises ParseError (file:line:col, as the Python parser reports it) on bad input; `terms` is
    left untouched then, so a file that fails to parse commits nothing."""
    scanned = scan_source(data, filename, valid_utf8=valid_utf8)
    return intern_scanned(scanned, TermStore() if terms is None else terms)


@dataclass
class ScannedSource:
    """A source read by the kernel, its strings not yet interned: paths whose term ids are
    the source's own text numbers (`texts`, in order of first occurrence), and where in the
    paths those ids are written (`text_patch`)."""

    out: np.ndarray
    offsets: np.ndarray
    is_query: np.ndarray
    names: np.ndarray
    texts: list[str]
    text_patch: np.ndarray


def scan_source(data: bytes, filename: str = "<string>", *, valid_utf8: bool = False) -> ScannedSource:
    """The kernel's half of `encode_source`: no term store is touched, and the kernel runs
    without the GIL, so several sources (or byte ranges of one) can be scanned in threads.
    `valid_utf8`: the bytes are known to be UTF-8 (encoded from a str), so are not checked."""
    raw = bytes(data) if not isinstance(data, bytes) else data
    check_bytes(raw, filename, valid_utf8)
    return scan_range(raw, 0, len(raw), filename, copy=True)


def check_bytes(raw: bytes, filename: str, valid_utf8: bool, end: int | None = None) -> None:
    """A positioned ParseError for a bad UTF-8 sequence (unless known valid) or a NUL in
    raw[:end]."""
    end = len(raw) if end is None else end
    if not valid_utf8:
        src = np.frombuffer(raw, dtype=np.uint8, count=end)
        bad_byte = first_invalid_utf8(src, 0, src.size)
        if bad_byte >= 0:
            raise ParseError.at_byte(raw, bad_byte, parser.MSG_INVALID_UTF8, filename)
    nul = raw.find(b"\0", 0, end)
    if nul >= 0:
        raise ParseError.at_byte(raw, nul, parser.MSG_NUL, filename)


def scan_range(raw: bytes, start: int, end: int, filename: str, copy: bool) -> ScannedSource:
    """Scan raw[start:end] (whole atoms) without copying the bytes. With `copy` the arrays are
    copied out of the kernel's growable buffers, so that no spare capacity stays alive with
    them; without, they are views, for a caller that joins several scans into new arrays."""
    src = np.frombuffer(raw, dtype=np.uint8, count=end - start, offset=start)
    last_quote = raw.rfind(b'"', start, end)
    result = kernels.encode_kernel(src, parser.MAX_DEPTH, last_quote - start if last_quote >= 0 else -1)
    counts, out, offsets, is_query, names, side, text_start, text_length, text_patch, float_patch = result
    if counts[kernels.STATUS] != lexer.ERR_NONE:
        piece = raw if start == 0 and end == len(raw) else raw[start:end]
        raise _parse_error(piece, counts, filename)
    n_atoms = int(counts[kernels.N_ATOMS])
    keep = (lambda a: a.copy()) if copy else (lambda a: a)
    out = keep(out[: int(counts[kernels.OUT_POS])])
    _convert_slow_floats(raw, start, out, float_patch[: 3 * int(counts[kernels.N_FLOAT_PATCH])])
    texts = []
    for text_id in range(int(counts[kernels.N_TEXTS])):
        at = int(text_start[text_id])
        texts.append(side[at : at + int(text_length[text_id])].tobytes().decode("utf-8"))
    return ScannedSource(
        out=out,
        offsets=keep(offsets[: n_atoms + 1]),
        is_query=keep(is_query[:n_atoms]),
        names=keep(names[:n_atoms]),
        texts=texts,
        text_patch=keep(text_patch[: int(counts[kernels.N_TEXT_PATCH])]),
    )


def intern_scanned(scanned: ScannedSource, terms: TermStore) -> EncodedBatch:
    """Intern a scanned source's texts into `terms` and rewrite its paths to their term ids.
    Sources interned in order give the ids that encoding them in that order gives."""
    term_of_text = np.fromiter((terms.intern(text) for text in scanned.texts), np.int64, len(scanned.texts))
    out, names = scanned.out, scanned.names
    if not np.array_equal(term_of_text, np.arange(len(scanned.texts))):
        kernels.remap_text_ids(out, scanned.text_patch, term_of_text)
        has_names = names >= 0
        names[has_names] = term_of_text[names[has_names]]
    return EncodedBatch(data=out, offsets=scanned.offsets, is_query=scanned.is_query, names=names, terms=terms)


def encode_file(path: str | Path, terms: TermStore | None = None) -> EncodedBatch:
    """Encode a .metta file; errors name the file."""
    with open(path, "rb") as f:
        data = f.read()
    return encode_source(data, str(path), terms)


def _convert_slow_floats(raw: bytes, base: int, out: np.ndarray, patches: np.ndarray) -> None:
    """Convert the float tokens the kernel left (too many digits, or a large exponent); their
    positions count from raw[base]."""
    if patches.size == 0:
        return
    triples = patches.reshape(-1, 3)
    spans = (triples[:, 1:] + base).tolist()
    values = np.array([float(raw[start:end]) for start, end in spans], np.float64)
    bits = values.view(np.uint64)
    sign = np.uint64(1 << 63)
    keys = np.where(bits & sign, ~bits, bits | sign).astype(np.uint64)
    kernels.put_keys(out, np.ascontiguousarray(triples[:, 0]), keys)


def _parse_error(raw: bytes, counts: np.ndarray, filename: str) -> ParseError:
    status = int(counts[kernels.STATUS])
    pos = int(counts[kernels.ERR_POS])
    if status == lexer.ERR_BAD_ESCAPE:
        kind = raw[pos + 1 : pos + 5].decode("utf-8", errors="ignore")[:1]
        message = parser.bad_escape_message(kind)
    elif status == lexer.ERR_INT_OVERFLOW:
        token = raw[pos : int(counts[kernels.ERR_END])].decode("utf-8")
        message = parser.int_overflow_message(token)
    else:
        message = _MESSAGES[status]
    return ParseError.at_byte(raw, pos, message, filename)


_MESSAGES = {
    lexer.ERR_UNCLOSED_PAREN: parser.MSG_UNCLOSED_PAREN,
    lexer.ERR_UNEXPECTED_CLOSE: parser.MSG_UNEXPECTED_CLOSE,
    lexer.ERR_TOO_DEEP: parser.MSG_TOO_DEEP,
    lexer.ERR_UNCLOSED_STRING: parser.MSG_UNCLOSED_STRING,
    lexer.ERR_BAD_HEX_ESCAPE: parser.MSG_BAD_HEX_ESCAPE,
    lexer.ERR_BAD_UNICODE_ESCAPE: parser.MSG_BAD_UNICODE_ESCAPE,
}
