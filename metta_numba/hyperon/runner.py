"""`MeTTa`, the runner of hyperon's Python API, over the engine's runner."""

from __future__ import annotations

import os
from collections.abc import Callable

from metta_numba.hyperon.atoms import Atom, from_api, to_api
from metta_numba.hyperon.base import GroundingSpaceRef, Tokenizer, register_atom
from metta_numba.interp.runner import MeTTa as EngineRunner
from metta_numba.syntax.errors import ParseError

__all__ = ["MeTTa"]


class MeTTa:
    """A MeTTa runner: a program space, tokens and an interpreter.

    `MeTTa()` makes a runner with a fresh space; `MeTTa(space=GroundingSpaceRef(...))` runs over
    a given space; `MeTTa(cmetta=runner)` wraps an engine runner (`metta_numba.MeTTa`)."""

    def __init__(self, cmetta: EngineRunner | None = None, space: GroundingSpaceRef | None = None, env_builder=None):
        if cmetta is None:
            cmetta = EngineRunner(space=space.cspace if space is not None else None)
        self.cmetta = cmetta

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeTTa) and other.cmetta is self.cmetta

    def __hash__(self) -> int:
        return id(self.cmetta)

    def space(self) -> GroundingSpaceRef:
        return GroundingSpaceRef(self.cmetta.space)

    def tokenizer(self) -> Tokenizer:
        return Tokenizer(self.cmetta)

    def working_dir(self) -> str:
        return self.cmetta.current_dir

    def register_token(self, regexp: str, constr: Callable[[str], Atom]) -> None:
        self.tokenizer().register_token(regexp, constr)

    def register_atom(self, name: str, symbol: Atom) -> None:
        register_atom(self.cmetta, name, symbol)

    def parse_all(self, program: str) -> list[Atom]:
        try:
            return [to_api(a) for a in self.cmetta.parse_all(program)]
        except ParseError as err:
            raise RuntimeError(str(err)) from err

    def parse_single(self, program: str) -> Atom:
        """The first atom of the text."""
        atoms = self.parse_all(program)
        if not atoms:
            raise StopIteration
        return atoms[0]

    def run(self, program: str, flat: bool = False) -> list:
        """Run a program: one list of results per `!` (all results in one list when `flat`)."""
        try:
            results = self.cmetta.run(program)
        except ParseError as err:
            raise RuntimeError(str(err)) from err
        if flat:
            return [to_api(a) for found in results for a in found]
        return [[to_api(a) for a in found] for found in results]

    def evaluate_atom(self, atom: Atom) -> list[Atom]:
        return [to_api(a) for a in self.cmetta.evaluate_atom(from_api(atom))]

    def load_module_at_path(self, path: str, mod_name: str | None = None) -> str:
        """Make the module file at `path` (`.metta` or `.py`) importable by `mod_name` (its
        file name without the extension by default); returns the name. `import!` loads it."""
        path = os.path.abspath(path)
        if not os.path.exists(path):
            raise RuntimeError(f"Failed to load module: no file at {path}")
        if os.path.isdir(path):
            init = os.path.join(path, "__init__.py")
            module_file = os.path.join(path, "module.metta")
            path = module_file if os.path.isfile(module_file) else init
        name = mod_name or os.path.splitext(os.path.basename(path.rstrip(os.sep)))[0]
        if name == "__init__":
            name = os.path.basename(os.path.dirname(path))
        self.cmetta.modules.paths[name] = path
        return name
