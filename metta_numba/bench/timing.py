"""Repeat-and-summarise timing: every benchmark figure is a median with its min and max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Stats:
    """Summary of repeated measurements of one figure, in the unit named by `unit`."""

    median: float
    min: float
    max: float
    unit: str
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: list[float], unit: str) -> Stats:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), unit, list(samples))

    def to_json(self) -> dict:
        return asdict(self)

    def scaled(self, factor: float, unit: str) -> Stats:
        return Stats(self.median * factor, self.min * factor, self.max * factor, unit,
                     [s * factor for s in self.samples])


def time_call(fn: Callable[[], object], repeat: int, unit: str = "ms", inner: int = 1) -> Stats:
    """Time `fn` `repeat` times (each sample the mean of `inner` back-to-back calls)."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner * scale)
    return Stats.of(samples, unit)


def time_once(fn: Callable[[], object], unit: str = "ms") -> tuple[float, object]:
    """Time a single call; return (elapsed in `unit`, the call's result)."""
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * scale, result
