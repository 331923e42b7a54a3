"""Spaces and the tokenizer of hyperon's Python API, over the engine's spaces and runner."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from metta_numba.atoms import variables_of
from metta_numba.hyperon.atoms import Atom, from_api, to_api
from metta_numba.hyperon.bindings import BindingsSet, frame_of
from metta_numba.space import GroundingSpace, Space, query_view
from metta_numba.unify import substitute

if TYPE_CHECKING:
    from metta_numba.interp.runner import MeTTa as EngineRunner

__all__ = ["SpaceRef", "GroundingSpaceRef", "Tokenizer"]


class SpaceRef:
    """A reference to a space; `cspace` is the engine space."""

    def __init__(self, space: Space | None = None) -> None:
        self.cspace: Space = space if space is not None else GroundingSpace()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpaceRef) and other.cspace is self.cspace

    def __hash__(self) -> int:
        return id(self.cspace)

    def __repr__(self) -> str:
        return f"GroundingSpaceRef({self.cspace!r})"

    @staticmethod
    def _from_cspace(space: Space) -> GroundingSpaceRef:
        return GroundingSpaceRef(space)

    def copy(self) -> SpaceRef:
        return self

    def add_atom(self, atom: Atom) -> None:
        self.cspace.add(from_api(atom))

    def remove_atom(self, atom: Atom) -> bool:
        return self.cspace.remove(from_api(atom))

    def replace_atom(self, atom: Atom, replacement: Atom) -> bool:
        if not self.cspace.remove(from_api(atom)):
            return False
        self.cspace.add(from_api(replacement))
        return True

    def atom_count(self) -> int:
        return self.cspace.count()

    def get_atoms(self) -> list[Atom]:
        return [to_api(a) for a in self.cspace.listing()]

    def get_payload(self) -> Space:
        return self.cspace

    def query(self, pattern: Atom) -> BindingsSet:
        """Every way `pattern` unifies with an atom of the space (and of what it imported):
        one answer per match, binding the pattern's variables."""
        engine_pattern = from_api(pattern)
        variables = variables_of(engine_pattern)
        return BindingsSet([frame_of(b, variables) for b in query_view(self.cspace, engine_pattern)])

    def subst(self, pattern: Atom, templ: Atom) -> list[Atom]:
        """`templ` instantiated by each answer to `pattern`."""
        engine_pattern = from_api(pattern)
        engine_templ = from_api(templ)
        return [to_api(substitute(engine_templ, b)) for b in query_view(self.cspace, engine_pattern)]


class GroundingSpaceRef(SpaceRef):
    """A reference to an in-memory space (a new empty one when none is given)."""


class Tokenizer:
    """The tokens of a runner: text that parses to a given atom."""

    def __init__(self, runner: EngineRunner) -> None:
        self._runner = runner

    def register_token(self, regex: str, constr: Callable[[str], Atom]) -> None:
        """Parse every symbol that fully matches `regex` as `constr(text)`."""
        self._runner.add_token_pattern(regex, lambda text: from_api(constr(text)))


_REGEX_SYNTAX = re.compile(r"[\\.^$*+?{}\[\]|()]")


def register_atom(runner: EngineRunner, name: str, atom: Atom) -> None:
    """Parse `name` as `atom` from now on. A name with regular-expression syntax in it is a
    pattern, as in hyperon (which registers `\\+` for `+`)."""
    engine_atom = from_api(atom)
    if _REGEX_SYNTAX.search(name) is None:
        runner.tokens[name] = engine_atom
    else:
        runner.add_token_pattern(name, lambda _text: engine_atom)
