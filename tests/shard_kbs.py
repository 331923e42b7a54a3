"""Random KB sources and queries for the sharded-KB tests: facts, rules, type declarations,
atoms with variables in key positions, numbers (3 and 3.0), strings and long symbols."""

from __future__ import annotations

import random

LONG = "long_symbol_" + "x" * 60


def kb_source(seed: int, size: int = 60) -> str:
    rng = random.Random(seed)
    nodes = [f"n{i}" for i in range(8)] + [LONG]
    numbers = ["3", "3.0", "4", "-1", "2.5"]
    lines = []
    for _ in range(size):
        kind = rng.randrange(10)
        a, b = rng.choice(nodes), rng.choice(nodes)
        if kind <= 3:
            lines.append(f"(edge {a} {b})")
        elif kind == 4:
            lines.append(f"(val {rng.choice(numbers)} {a})")
        elif kind == 5:
            lines.append(f'(label {a} "text {rng.randrange(5)}")')
        elif kind == 6:
            lines.append(f"(= (f {a}) {b})")
        elif kind == 7:
            lines.append(rng.choice([f"(edge $x {b})", f"($h {a})", "(= (g $x) (f $x))", "(= $any fallback)"]))
        elif kind == 8:
            lines.append(f"(: {a} Node)")
        else:
            lines.append(f"(tri {a} {b} {rng.choice(numbers)})")
    lines.append("(= (g2 $x) (f (f $x)))")
    return "\n".join(lines) + "\n"


def kb_queries(seed: int, count: int = 25) -> list[str]:
    """`!`-less query texts: matches with ground and variable keys, conjunctions, rule calls,
    types."""
    rng = random.Random(seed + 1000)
    nodes = [f"n{i}" for i in range(8)] + [LONG]
    patterns = [
        lambda: f"(edge {rng.choice(nodes)} $y)",
        lambda: f"(edge $x {rng.choice(nodes)})",
        lambda: "(edge $x $y)",
        lambda: f"(val {rng.choice(['3', '3.0', '4', '2.5'])} $y)",
        lambda: "(val $n $y)",
        lambda: f"(label {rng.choice(nodes)} $t)",
        lambda: f"($h {rng.choice(nodes)})",
        lambda: f"(tri {rng.choice(nodes)} $b $n)",
        lambda: f"(= (f {rng.choice(nodes)}) $r)",
        lambda: "(: $x Node)",
    ]
    out = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 4:
            out.append(f"(match &self (, (edge {rng.choice(nodes)} $y) (edge $y $z)) ($y $z))")
        elif kind <= 1:
            pattern = rng.choice(patterns)()
            out.append(f"(match &self {pattern} {pattern})")
        elif kind == 2:
            out.append(f"({rng.choice(['f', 'g', 'g2'])} {rng.choice(nodes)})")
        else:
            out.append(f"(get-type {rng.choice(nodes)})")
    return out
