"""Random MeTTa programs for the differential tests of the compiled tiers.

Each program defines a few functions (numeric recursion guarded by a counter, data functions
over `cons` lists, overlapping heads, typed functions, symbol tables), then runs queries that
call them with numbers, symbols, data, variables and superposed arguments, inside `collapse`,
`let`, `case` and states, and changes rules half-way. Recursion always counts a non-negative
argument down, so every program ends.
"""

from __future__ import annotations

import random

SMALL_INTS = [0, 1, 2, 3, -1, 5, 7]
EDGE_NUMBERS = ["9223372036854775807", "-9223372036854775808", "2.5", "0.0", "-1.5", "1e300", "4611686018427387904"]


class ProgramMaker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.numeric: list[str] = []  # names of (name $n $m) numeric functions

    def number(self) -> str:
        rng = self.rng
        if rng.random() < 0.15:
            return rng.choice(EDGE_NUMBERS)
        return str(rng.choice(SMALL_INTS))

    def num_expr(self, depth: int, variables: list[str], recursive: str | None) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.3:
            return rng.choice(variables) if variables and rng.random() < 0.6 else self.number()
        kind = rng.randrange(9)
        sub = lambda: self.num_expr(depth - 1, variables, recursive)  # noqa: E731
        if kind <= 3:
            op = rng.choice(["+", "-", "*", "+", "-", "/", "%"])
            return f"({op} {sub()} {sub()})"
        if kind == 4:
            return f"(if {self.bool_expr(depth - 1, variables)} {sub()} {sub()})"
        if kind == 5:
            var = f"$k{depth}"
            return f"(let {var} {sub()} {self.num_expr(depth - 1, variables + [var], recursive)})"
        if kind == 6 and self.numeric:
            return f"({rng.choice(self.numeric)} {rng.randint(0, 3)} {sub()})"
        if kind == 7 and recursive:
            return f"({recursive} (- $n 1) {sub()})"
        return sub()

    def bool_expr(self, depth: int, variables: list[str]) -> str:
        rng = self.rng
        sub = lambda: self.num_expr(depth - 1, variables, None)  # noqa: E731
        kind = rng.randrange(5)
        if kind == 0:
            return f"(== {sub()} {sub()})"
        if kind == 1:
            return f"(not (< {sub()} {sub()}))"
        if kind == 2:
            return f"(and (<= {sub()} {sub()}) (> {sub()} {sub()}))"
        return f"({rng.choice(['<', '>', '<=', '>='])} {sub()} {sub()})"

    def numeric_function(self, index: int) -> str:
        name = f"g{index}"
        body = self.num_expr(3, ["$n", "$m"], name)
        base = self.num_expr(1, ["$n", "$m"], None)
        self.numeric.append(name)
        return f"(= ({name} $n $m) (if (<= $n 0) {base} {body}))"

    def definitions(self) -> list[str]:
        rng = self.rng
        lines = [self.numeric_function(i) for i in range(rng.randint(1, 4))]
        lines += [
            "(= (len nil) 0)",
            "(= (len (cons $h $t)) (+ 1 (len $t)))",
            "(= (app nil $y) $y)",
            "(= (app (cons $h $t) $y) (cons $h (app $t $y)))",
            "(= (color 1) red)",
            "(= (color 2) green)",
            "(= (color 2.0) blue)" if rng.random() < 0.3 else "(= (color 3) blue)",
        ]
        if rng.random() < 0.5:
            lines += ["(= (h $x) (+ $x 1))", "(= (h 0) 100)"]  # overlapping heads: nondeterministic
        else:
            lines += ["(= (h 0) 100)", "(= (h 1) (g0 2 1))"]
        if rng.random() < 0.4:
            lines += ["(: t0 (-> Number Number))", "(= (t0 $x) (* $x 2))"]
        else:
            lines += ["(= (t0 $x) (* $x 2))"]
        if rng.random() < 0.3:
            lines += ["(= (same $x $x) yes)", "(= (same 1 2) no)"]
        rng.shuffle(lines)
        return lines

    def argument(self) -> str:
        rng = self.rng
        kind = rng.randrange(10)
        if kind <= 4:
            return self.number()
        if kind == 5:
            return rng.choice(["a", "nil", "red"])
        if kind == 6:
            return "(superpose (1 2 3))"
        if kind == 7:
            return "$v"
        if kind == 8:
            return "(cons 1 (cons 2 nil))"
        return f"({rng.choice(self.numeric)} 1 2)"

    def query(self) -> str:
        rng = self.rng
        kind = rng.randrange(14)
        g = rng.choice(self.numeric)
        if kind <= 3:
            return f"!({g} {rng.randint(0, 4)} {self.argument()})"
        if kind == 4:
            return f"!(len {rng.choice(['nil', '(cons a nil)', '(app (cons a nil) (cons b (cons c nil)))', 'foo'])})"
        if kind == 5:
            return f"!(collapse (h {rng.choice(['0', '1', '2', '0.0'])}))"
        if kind == 6:
            return f"!(let $z ({g} 2 {self.number()}) (t0 $z))"
        if kind == 7:
            return f"!(case ({g} 1 {self.argument()}) ((0 zero) ($x ($x other))))"
        if kind == 8:
            return f"!(color {rng.choice(['1', '2', '2.0', '3', 'x'])})"
        if kind == 9:
            new = rng.choice(
                [
                    f"(= ({g} 0 0) 7)",
                    "(= (color 1) purple)",
                    "(= (len (cons $h $t)) many)",
                    "(= (t0 $x) (+ $x 1))",
                    "(memo 5 8)",
                    "(: g0 (-> Number Number Number))",
                ]
            )
            return f"!(add-atom &self {new})"
        if kind == 10:
            old = rng.choice(["(= (color 1) red)", "(= (len nil) 0)", "(= (h 0) 100)", "(= (t0 $x) (* $x 2))"])
            return f"!(remove-atom &self {old})"
        if kind == 11:
            return f"!(same {rng.choice(['1', '1.0', 'a'])} {rng.choice(['1', '2', 'a'])})"
        if kind == 12:
            return f"!(let $s (new-state ({g} 1 1)) (get-state $s))"
        return f"!(t0 {self.argument()})"


def random_program(seed: int, queries: int = 12) -> str:
    rng = random.Random(seed)
    maker = ProgramMaker(rng)
    lines = maker.definitions()
    lines += [maker.query() for _ in range(queries)]
    return "\n".join(lines) + "\n"


class NondeterministicMaker:
    """Programs of nondeterministic functions: overlapping equations, `superpose`, `match`
    over `&self` facts, `collapse`, `let`, `case`, `if`, `(empty)` and nested calls, with facts
    and rules added and removed between the queries. A function calls only functions defined
    before it, and the one recursive function counts a non-negative argument down."""

    NODES = ["n0", "n1", "n2", "n3", "n4"]

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.functions: list[str] = []  # names of (name $x) functions
        self.fresh = 0

    def var(self) -> str:
        self.fresh += 1
        return f"$v{self.fresh}"

    def expr(self, depth: int, variables: list[str]) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            if variables and rng.random() < 0.6:
                return rng.choice(variables)
            return rng.choice(["0", "1", "2", "3", "a", "n1", "2.5"])
        sub = lambda: self.expr(depth - 1, variables)  # noqa: E731
        kind = rng.randrange(13)
        if kind == 0:
            return f"(superpose ({' '.join(sub() for _ in range(rng.randint(0, 3)))}))"
        if kind == 1:
            var = self.var()
            return f"(let {var} {sub()} {self.expr(depth - 1, variables + [var])})"
        if kind == 2:
            return f"(if (< {sub()} {sub()}) {sub()} {sub()})"
        if kind == 3:
            return f"({rng.choice(['+', '-', '*'])} {sub()} {sub()})"
        if kind == 4:
            var = self.var()
            source = rng.choice(variables + self.NODES) if variables else rng.choice(self.NODES)
            return f"(match &self (edge {source} {var}) {self.expr(depth - 1, variables + [var])})"
        if kind == 5:
            return f"(collapse {sub()})"
        if kind == 6:
            var = self.var()
            return f"(case {sub()} ((1 one) ((pair {var} 2) {var}) ({var} (got {var}))))"
        if kind == 7 and self.functions:
            return f"({rng.choice(self.functions)} {sub()})"
        if kind == 8:
            return "(empty)"
        if kind == 9:
            return f"(pair {sub()} {sub()})"
        if kind == 10:
            return f"(walk {rng.choice(self.NODES)} {rng.randint(0, 3)})"
        if kind == 11:
            return f"(== {sub()} {sub()})"
        return sub()

    def function(self, index: int) -> list[str]:
        rng = self.rng
        name = f"nd{index}"
        lines = []
        for _ in range(rng.randint(1, 3)):
            head = rng.choice(["$x", "$x", "1", "a", "(pair $x $y)"])
            variables = [v for v in ("$x", "$y") if v in head]
            lines.append(f"(= ({name} {head}) {self.expr(3, variables)})")
        self.functions.append(name)
        return lines

    def definitions(self) -> list[str]:
        rng = self.rng
        lines = [f"(edge {rng.choice(self.NODES)} {rng.choice(self.NODES)})" for _ in range(rng.randint(2, 7))]
        if rng.random() < 0.2:
            lines.append("(edge n2 $any)")  # a fact with a variable: its answers are not ground
        lines += [
            "(= (walk $x $k) (if (<= $k 0) $x (match &self (edge $x $y) (walk $y (- $k 1)))))",
            "(= (walk $x $k) (if (== $k 1) (stop $x) (empty)))",
        ]
        for i in range(rng.randint(2, 4)):
            lines += self.function(i)
        return lines

    def argument(self) -> str:
        return self.rng.choice(["0", "1", "2", "a", "n1", "(pair 1 2)", "(superpose (1 2))", "2.0"])

    def query(self) -> str:
        rng = self.rng
        f = rng.choice(self.functions)
        g = rng.choice(self.functions)
        kind = rng.randrange(11)
        if kind <= 2:
            return f"!({f} {self.argument()})"
        if kind == 3:
            return f"!(collapse ({f} {self.argument()}))"
        if kind == 4:
            return f"!(let $a ({f} {self.argument()}) (let $b ({g} $a) (pair $a $b)))"
        if kind == 5:
            return f"!(superpose (({f} 1) ({g} a) 3))"
        if kind == 6:
            return f"!(match &self (edge $p $q) ({f} $q))"
        if kind == 7:
            return f"!(walk {rng.choice(self.NODES)} {rng.randint(0, 4)})"
        if kind == 8:
            new = rng.choice([f"(edge {rng.choice(self.NODES)} {rng.choice(self.NODES)})", f"(= ({f} $x) extra)"])
            return f"!(add-atom &self {new})"
        if kind == 9:
            return f"!(remove-atom &self (edge {rng.choice(self.NODES)} {rng.choice(self.NODES)}))"
        return f"!(case ({f} {self.argument()}) ((1 one) ($z ($z other))))"


def random_nondeterministic_program(seed: int, queries: int = 10) -> str:
    rng = random.Random(seed)
    maker = NondeterministicMaker(rng)
    lines = maker.definitions()
    lines += [maker.query() for _ in range(queries)]
    return "\n".join(lines) + "\n"
