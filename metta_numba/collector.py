"""Python's cyclic garbage collector held off while a block builds many atoms at once."""

from __future__ import annotations

import gc


class collector_paused:  # lower case: it reads as a function, `with collector_paused():`
    """Hold off Python's cyclic garbage collector while a block builds many atoms. Each few
    hundred new objects trigger a young collection, and the promoted ones soon a full pass
    over every live object: decoding 100K values spent more time there than in building the
    atoms. Atoms hold no reference cycles, and any cycle the block makes is still collected,
    only later (the collector runs again as soon as the block ends and objects are allocated).

    A class rather than a generator-based context manager: a warm small query enters it too,
    and this costs a fraction of a microsecond."""

    __slots__ = ("_paused",)

    def __enter__(self) -> None:
        self._paused = gc.isenabled()
        if self._paused:
            gc.disable()

    def __exit__(self, *exc) -> None:
        if self._paused:
            gc.enable()
