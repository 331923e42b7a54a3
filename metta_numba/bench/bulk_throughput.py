"""Read throughput of the bulk reader and of the Python parser on the baseline KB, in MB/s.

    from metta_numba.bench.bulk_throughput import kb_file, bulk_throughput, parser_throughput
    bulk_throughput(kb_file("large"))     # writes /tmp/kb_large.metta on first use

Each figure is the median of `repeat` runs over the file's bytes already in memory (reading
the file is not timed). The first bulk call of a process may compile or load the kernels, so
one untimed warm-up call comes first.
"""

from __future__ import annotations

from pathlib import Path

from metta_numba.bench.kbgen import SIZES, write_kb
from metta_numba.bench.timing import time_call
from metta_numba.codec import TermStore, encode
from metta_numba.syntax.bulk import encode_source
from metta_numba.syntax.parser import decode_source, parse_program

KB_DIR = Path("/tmp")


def kb_file(size: str, directory: Path = KB_DIR) -> Path:
    """The baseline KB of a named size (small, medium, large), written once and then reused."""
    path = Path(directory) / f"kb_{size}.metta"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_kb(SIZES[size], partial)
        partial.replace(path)  # another process never sees a half-written file
    return path


def _figures(path: Path, run, repeat: int) -> dict:
    data = Path(path).read_bytes()
    atoms = run(data)
    seconds = time_call(lambda: run(data), repeat, unit="s")
    megabytes = len(data) / 1e6
    return {
        "file": str(path),
        "megabytes": megabytes,
        "atoms": atoms,
        "seconds": seconds.median,
        "mb_per_s": megabytes / seconds.median,
        "mb_per_s_min": megabytes / seconds.max,
        "mb_per_s_max": megabytes / seconds.min,
        "repeat": repeat,
    }


def bulk_throughput(path: str | Path, repeat: int = 3) -> dict:
    """Bulk reader: UTF-8 bytes -> batch of encoded paths, names and term ids."""
    return _figures(Path(path), lambda data: len(encode_source(data)), repeat)


def parser_throughput(path: str | Path, repeat: int = 3, with_encode: bool = True) -> dict:
    """Python parser (decode, parse, and with `with_encode` also codec.encode of every atom
    and interning of its variable names: the same output as the bulk reader)."""

    def run(data: bytes) -> int:
        items = parse_program(decode_source(data))
        if with_encode:
            terms = TermStore()
            for item in items:
                _, names = encode(item.atom, terms)
                if names:
                    terms.intern(" ".join(names))
        return len(items)

    return _figures(Path(path), run, repeat)
