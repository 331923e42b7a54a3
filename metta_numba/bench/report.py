"""Rendering benchmark results: markdown tables for BASELINE.md, and PNG figures.

The suite hands over plain data: tables (a title, column names, rows of cells) and series for
the figures. Nothing here measures anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from metta_numba.bench.timing import Stats


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([cell if isinstance(cell, str) else fmt(cell) for cell in cells])

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def fmt_number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt(value: object) -> str:
    """A cell: Stats print as `median unit (min-max)`, numbers compactly, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, Stats):
        if len(value.samples) > 1:
            spread = f"{fmt_number(value.min)}-{fmt_number(value.max)}"
            return f"{fmt_number(value.median)} {value.unit} ({spread})"
        return f"{fmt_number(value.median)} {value.unit}"
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def ratio(ours: float | None, theirs: float | None) -> str:
    """`theirs / ours` as a speed-up, e.g. `12.3x faster`."""
    if not ours or not theirs:
        return "n/a"
    r = theirs / ours
    return f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.1f}x slower"


def plot_series(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    series: dict[str, list[tuple[float, float]]],
    log: bool = True,
) -> Path | None:
    """One line per series of (x, y) points; returns the PNG path, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, points in series.items():
        points = [(x, y) for x, y in points if y is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
