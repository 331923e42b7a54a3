"""Pre-warming: bring a generation's pages into the page cache before the first query.

A cold first query faults in a few pages of each array it reads, one synchronous disk read
after another. Two ways avoid that:
- `warm_generation` (`snapshot warm KB`) reads every section of the `.act` file and the term
  store's sidecar once, sequentially, so the kernel reads ahead in large requests; it returns
  when the pages are cached, and says what it read.
- `prefetch_generation` (`--prefetch`, `PersistentKB.open(prefetch=True)`) asks the kernel to
  read the same ranges in the background (madvise WILLNEED on the memory map, posix_fadvise
  WILLNEED on the sidecar) from a daemon thread, and returns at once: the open stays O(1).

Every section is on the query path: the walk reads the trie's arrays, a lookup by a later
argument reads the index's, decoding reads the leaf arrays and the term store. Pages evicted
later are faulted in again as usual; both are hints and change no data.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from pathlib import Path

from metta_numba.store.generation import Generation

READ_CHUNK = 1 << 22


def query_ranges(generation: Generation) -> list[tuple[str, int, int]]:
    """(section name, offset, bytes) of the .act sections a query reads, in file order."""
    sections = sorted(generation.act.sections.values(), key=lambda s: s.offset)
    return [(s.name, s.offset, s.length) for s in sections if s.length]


def _sidecar(generation: Generation) -> Path:
    return generation.terms.path


def _read_range(fd: int, offset: int, length: int, buffer: bytearray) -> int:
    done = 0
    view = memoryview(buffer)
    while done < length:
        n = os.preadv(fd, [view[: min(len(buffer), length - done)]], offset + done)
        if n <= 0:
            break
        done += n
    return done


def warm_generation(generation: Generation) -> dict:
    """Read every section a query touches, and the sidecar, into the page cache. Returns what
    was read: per section its bytes, the totals and the seconds it took."""
    started = time.perf_counter()
    buffer = bytearray(READ_CHUNK)
    sections = []
    with open(generation.act.path, "rb") as f:
        fd = f.fileno()
        for name, offset, length in query_ranges(generation):
            _advise_file(fd, offset, length)
            sections.append({"section": name, "bytes": _read_range(fd, offset, length, buffer)})
    sidecar = _sidecar(generation)
    with open(sidecar, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        _advise_file(f.fileno(), 0, size)
        sections.append({"section": sidecar.name, "bytes": _read_range(f.fileno(), 0, size, buffer)})
    return {
        "generation": generation.number,
        "sections": sections,
        "bytes": sum(s["bytes"] for s in sections),
        "seconds": time.perf_counter() - started,
    }


def _advise_file(fd: int, offset: int, length: int) -> None:
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # a hint only


class Prefetch:
    """A background prefetch of one generation (see the module docstring). `done` is set when
    every hint has been given; `seconds` is how long that took, `bytes` what it covered."""

    def __init__(self, generation: Generation) -> None:
        self.done = threading.Event()
        self.seconds = 0.0
        self.bytes = 0
        self.error: BaseException | None = None
        self._ranges = query_ranges(generation)
        self._act = generation.act
        self._sidecar = _sidecar(generation)
        self._thread = threading.Thread(target=self._run, name="metta-numba-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            advice = getattr(mmap, "MADV_WILLNEED", None)
            for _, offset, length in self._ranges:
                self.bytes += length
                if advice is not None:
                    self._act.advise_range(advice, offset, length)
            with open(self._sidecar, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                _advise_file(f.fileno(), 0, size)
                self.bytes += size
        except (OSError, ValueError) as err:  # a closed KB or a vanished file: hints only
            self.error = err
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


def prefetch_generation(generation: Generation) -> Prefetch:
    """Start prefetching the generation's query sections in the background; returns at once."""
    return Prefetch(generation)
