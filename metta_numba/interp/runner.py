"""Running programs: the `MeTTa` class.

A program is run one top-level atom at a time: a `!` atom is evaluated and its results are
kept, any other atom is added to the program's space (`&self`) as written. The run stops after
the first `!` whose results include a top-level `(Error ...)`. A syntax error stops the run
too; `run_program` reports it next to the results gathered before it, so that a command line
can choose what to print (hyperon prints no result line at all then).

Tokens: `&self`, `PI`, `EXP` and whatever `bind!` registers are replaced in every atom parsed
after they are defined. Operations such as `+` or `match` are recognised by name when a call
is evaluated, so atoms that come from a stored knowledge base work the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import NamedTuple

from metta_numba.atoms import Atom, Expression, Grounded, Symbol
from metta_numba.interp import bulk_load
from metta_numba.interp.core import CANONICAL, SpaceAtom, char_literal, is_error
from metta_numba.interp.evaluator import Evaluator
from metta_numba.interp.modules import Modules
from metta_numba.interp.sandbox import sandbox_root
from metta_numba.interp.stdlib import operations, stdlib_space
from metta_numba.space import GroundingSpace, Space
from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import LineMark, TopLevel, check_nul, decode_source, iter_program, iter_program_from

PARSED_PROGRAMS = 256
"""Short programs kept parsed: a query run again and again is read once (parsing is pure)."""
PARSED_PROGRAM_CHARS = 4096

_parsed: dict[tuple[str, str], tuple[TopLevel, ...]] = {}


def _program_items(text: str, filename: str):
    """iter_program, from the cache of short programs that parsed to the end."""
    key = (text, filename)
    items = _parsed.get(key)
    if items is not None:
        yield from items
        return
    read = []
    for item in iter_program(text, filename):
        read.append(item)
        yield item
    if len(text) <= PARSED_PROGRAM_CHARS:
        if len(_parsed) >= PARSED_PROGRAMS:
            _parsed.pop(next(iter(_parsed)))
        _parsed[key] = tuple(read)

__all__ = ["MeTTa", "ProgramResult"]

class ProgramResult(NamedTuple):
    """What a program run produced.

    `results` has one list per `!` that ran. `stopped_on_error` is True when the run ended at
    a `!` whose results hold a top-level Error (its results are the last list). `parse_error`
    is the syntax error that ended the run, if any; the `!`s before it have run.
    """

    results: list[list[Atom]]
    stopped_on_error: bool
    parse_error: ParseError | None


class MeTTa:
    """A MeTTa runner: a program space (`&self`), tokens, settings and an evaluator."""

    def __init__(
        self,
        space: Space | None = None,
        cwd: str | None = None,
        modules: Modules | None = None,
        sandbox: bool = False,
        compile: bool = True,
    ) -> None:
        """`sandbox=True`: file I/O, `include`, `import!` and `register-module!` only inside the
        program's folder (`cwd`, else the working directory), for this runner and the modules
        it loads; `self.sandbox` says whether it is on (other code may check it too).
        `compile=False` runs every function in the plain evaluator (no compiled tiers)."""
        self.space: Space = space if space is not None else GroundingSpace(name="top")
        if getattr(self.space, "name", None) is None:
            self.space.name = "top"
        self.self_atom = SpaceAtom(self.space)
        if hasattr(self.space, "bind_tokens"):  # a snapshot's stored rules refer to `&self` by name
            self.space.bind_tokens({"&self": self.self_atom})
        self.tokens: dict[str, Atom] = {
            **CANONICAL,
            "&self": self.self_atom,
            "PI": Grounded(math.pi),
            "EXP": Grounded(math.e),
        }
        # Tokens given by a regular expression (hyperon's Tokenizer.register_token), the latest
        # first: a symbol no exact token names is replaced by the first pattern it matches.
        self.token_patterns: list[tuple[re.Pattern, Callable[[str], Atom]]] = []
        self.settings: dict[str, Atom] = {}
        self.modules = modules if modules is not None else Modules()
        if sandbox and self.modules.sandbox_root is None:
            self.modules.sandbox_root = sandbox_root(cwd or os.getcwd())
        self.sandbox: bool = self.modules.sandbox_root is not None
        self._dirs = [os.path.abspath(cwd or os.getcwd())]
        self.ev = Evaluator(self.space, stdlib_space(), dict(operations()), runner=self)
        if compile:
            from metta_numba.interp.compiled import CompiledTier

            self.ev.tier = CompiledTier(self.ev, dict(self.ev.ops))

    # -- parsing --------------------------------------------------------------------------------
    def apply_tokens(self, atom: Atom) -> Atom:
        """Replace the symbols that name tokens (`&self`, `bind!`-ed names) by their atoms."""
        t = type(atom)
        if t is Symbol:
            new = self._token(atom.name)
            return atom if new is None else new
        if t is Expression:
            return self._replace_tokens(atom)
        return atom

    def add_token_pattern(self, regex: str, make: Callable[[str], Atom]) -> None:
        """Replace every later-parsed symbol that fully matches `regex` by `make(symbol name)`."""
        self.token_patterns.insert(0, (re.compile(regex), make))

    def _token(self, name: str) -> Atom | None:
        found = self.tokens.get(name)
        if found is None:
            for pattern, make in self.token_patterns:
                if pattern.fullmatch(name):
                    return make(name)
        if found is None and name[0] == "'":
            char = char_literal(name)
            if char is not None:
                return Grounded(char)
        return found

    def _replace_tokens(self, atom: Expression) -> Expression:
        tokens = self.tokens
        kids = atom.children
        replaced = None
        for i, child in enumerate(kids):
            t = type(child)
            if t is Symbol:
                new = tokens.get(child.name)
                if new is None and (child.name[0] == "'" or self.token_patterns):
                    new = self._token(child.name)
                if new is None:
                    continue
            elif t is Expression:
                new = self._replace_tokens(child)
                if new is child:
                    continue
            else:
                continue
            if replaced is None:
                replaced = list(kids)
            replaced[i] = new
        return atom if replaced is None else Expression(replaced)

    def parse_all(self, text: str) -> list[Atom]:
        return [self.apply_tokens(item.atom) for item in iter_program(text)]

    def parse_single(self, text: str) -> Atom:
        atoms = self.parse_all(text)
        if len(atoms) != 1:
            raise ParseError(f"expected exactly one atom, found {len(atoms)}", "<string>", 1, 1)
        return atoms[0]

    # -- running --------------------------------------------------------------------------------
    def evaluate_atom(self, atom: Atom) -> list[Atom]:
        """Evaluate one atom in this runner's space (like a `!` query)."""
        return self.ev.evaluate(atom)

    def run(self, program: str, flat: bool = False, filename: str = "<string>") -> list:
        """Run a program; one list of results per `!` (hyperon's `MeTTa.run`).

        A syntax error is raised as ParseError after the `!`s before it have run.
        """
        result = self.run_program(program, filename)
        if result.parse_error is not None:
            raise result.parse_error
        if flat:
            return [a for results in result.results for a in results]
        return result.results

    def run_program(self, text: str, filename: str = "<string>") -> ProgramResult:
        results: list[list[Atom]] = []
        stopped = False
        parse_error = None
        pushed = self._enter(filename)
        try:
            if len(text) < bulk_load.BULK_MIN_CHARS:
                for item in _program_items(text, filename):
                    if self._run_item(item, results):
                        stopped = True
                        break
            else:
                stopped = self._run_long_program(text, filename, results)
        except ParseError as err:
            parse_error = err
        finally:
            if pushed:
                self._dirs.pop()
        return ProgramResult(results, stopped, parse_error)

    def _run_long_program(self, text: str, filename: str, results: list[list[Atom]]) -> bool:
        """run_program for a long text: before each run of plain atoms, offer the run to the
        bulk loader; the parser goes on from where the loader stopped. True: stopped on an
        Error."""
        check_nul(text, filename)
        pos = 0
        mark = LineMark()  # so that each line of the text is counted once, in all the reads
        while True:
            pos = bulk_load.bulk_load_run(self, text, filename, pos, mark)
            for item, end in iter_program_from(text, filename, pos, mark):
                if self._run_item(item, results):
                    return True
                if item.is_query:
                    pos = end
                    break
            else:
                return False

    def _run_item(self, item: TopLevel, results: list[list[Atom]]) -> bool:
        """Run one top-level item; True when the run stops here (an Error)."""
        atom = self.apply_tokens(item.atom)
        if item.is_query:
            found = self.ev.evaluate(atom)
            results.append(found)
            # Only an expression can be an Error: most result lists are checked by type alone.
            return Expression in {type(a) for a in found} and any(is_error(a) for a in found)
        failure = self._type_error(atom)
        if failure is not None:
            results.append([failure])
            return True
        self.space.add(atom)
        return False

    def run_file(self, path: str) -> ProgramResult:
        with open(path, "rb") as f:
            text = decode_source(f.read(), str(path))
        return self.run_program(text, str(path))

    def _enter(self, filename: str) -> bool:
        if filename.startswith("<"):
            return False
        self._dirs.append(os.path.dirname(os.path.abspath(filename)))
        return True

    def _type_error(self, atom: Atom) -> Atom | None:
        mode = self.settings.get("type-check")
        if mode is None or getattr(mode, "name", None) != "auto":
            return None
        return self.ev.types.stored_error(atom)

    # -- modules --------------------------------------------------------------------------------
    @property
    def current_dir(self) -> str:
        """The directory of the file being run (module paths are relative to it)."""
        return self._dirs[-1]

    def import_module(self, target: Atom, name: Atom) -> None:
        self.modules.import_into(self, target, name)
