"""Pre-warming: bring a generation's pages into the page cache before the first query.

A cold first query faults in a few pages of each array it reads, one synchronous disk read
after another. Two ways avoid that:
- `warm_generation` (`snapshot warm KB`) reads every section of the `.act` file and the term
  store's sidecar once, each after a WILLNEED hint for all of it (the kernel then reads it in
  large requests), with the readahead of a sequential reader off: that readahead would keep
  the pages in large blocks, which a query process maps whole at each fault (RSS); it
  returns when the pages are cached, and says what it read.
- `prefetch_generation` (`--prefetch`, `PersistentKB.open(prefetch=True)`) reads the same
  ranges from a daemon thread, in file order, in reads of PREFETCH_CHUNK bytes with
  the kernel's readahead off and in the idle I/O class, and returns at once: the open stays
  O(1). It reads rather than hints, and reads that way, so that a first query's own page
  faults do not wait behind it: WILLNEED hints over a whole large KB queue all of it at once
  (a cold first query on the large baseline KB took 46 ms after them, 3.4 ms without
  prefetch), and so does a sequential reader's readahead (8 MB here); with small reads alone
  it still took 7 ms, and 3.6 ms once the reads are in the idle class.

Every section is on the query path: the walk reads the trie's arrays, a lookup by a later
argument reads the index's, decoding reads the leaf arrays and the term store. Pages evicted
later are faulted in again as usual; both are hints and change no data.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from metta_numba.store.actfile import fadvise, read_without_readahead
from metta_numba.store.generation import Generation

READ_CHUNK = 1 << 22
PREFETCH_CHUNK = 1 << 18


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
        read_without_readahead(fd)
        for name, offset, length in query_ranges(generation):
            fadvise(fd, "WILLNEED", offset, length)
            sections.append({"section": name, "bytes": _read_range(fd, offset, length, buffer)})
    sidecar = _sidecar(generation)
    with open(sidecar, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        read_without_readahead(f.fileno())
        fadvise(f.fileno(), "WILLNEED", 0, size)
        sections.append({"section": sidecar.name, "bytes": _read_range(f.fileno(), 0, size, buffer)})
    return {
        "generation": generation.number,
        "sections": sections,
        "bytes": sum(s["bytes"] for s in sections),
        "seconds": time.perf_counter() - started,
    }


_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}  # the ioprio_set system call's number
_IOPRIO_IDLE = 3 << 13  # class IDLE (3) in the class bits, level 0


def _idle_io_priority() -> None:
    """This thread's disk reads in the idle class where the kernel's I/O scheduler has classes
    (mq-deadline, bfq): a query's page faults are served before the prefetch's reads."""
    number = _IOPRIO_SET.get(os.uname().machine) if sys.platform == "linux" else None
    if number is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(number, 1, threading.get_native_id(), _IOPRIO_IDLE)  # 1: IOPRIO_WHO_PROCESS
    except (OSError, AttributeError):
        pass  # a hint only


class Prefetch:
    """A background prefetch of one generation (see the module docstring). `done` is set when
    every range has been read; `seconds` is how long that took, `bytes` what was read."""

    def __init__(self, generation: Generation) -> None:
        self.done = threading.Event()
        self.seconds = 0.0
        self.bytes = 0
        self.error: BaseException | None = None
        # In file order, the trie's sections first. Read smallest section first, as before store
        # format 4 made the trie's columns small, a cold first query on the large KB took 11-25
        # ms with the prefetch running; in file order 3.3-3.7 ms, and 2.9-3.7 ms without it.
        self._ranges = [(offset, length) for _, offset, length in query_ranges(generation)]
        self._act_path = generation.act.path
        self._sidecar = _sidecar(generation)
        self._thread = threading.Thread(target=self._run, name="metta-numba-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _idle_io_priority()
        started = time.perf_counter()
        buffer = bytearray(PREFETCH_CHUNK)
        try:
            with open(self._act_path, "rb") as f:
                read_without_readahead(f.fileno())
                for offset, length in self._ranges:
                    self.bytes += _read_range(f.fileno(), offset, length, buffer)
            with open(self._sidecar, "rb") as f:
                read_without_readahead(f.fileno())
                self.bytes += _read_range(f.fileno(), 0, os.fstat(f.fileno()).st_size, buffer)
        except (OSError, ValueError) as err:  # a vanished file: the prefetch is a hint only
            self.error = err
        finally:
            self.seconds = time.perf_counter() - started
            self.done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


def prefetch_generation(generation: Generation) -> Prefetch:
    """Start prefetching the generation's query sections in the background; returns at once."""
    return Prefetch(generation)
