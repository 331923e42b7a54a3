"""`Bindings` and `BindingsSet` of hyperon's Python API: the answers of a space query.

A Bindings is one answer, a map from variables to atoms; a BindingsSet is a list of answers.
Indexing a BindingsSet gives a plain dict from variable name (without `$`) to atom, as
hyperon's does, which is what most scripts use."""

from __future__ import annotations

from collections.abc import Iterator

from metta_numba.atoms import Variable
from metta_numba.hyperon.atoms import Atom, VariableAtom, from_api, to_api
from metta_numba.unify import substitute, unify_into

__all__ = ["Bindings", "BindingsSet"]


class Bindings:
    """One answer: variables bound to atoms."""

    def __init__(self, bindings: dict | None = None) -> None:
        self._map: dict = dict(bindings) if bindings else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bindings) and self._resolved() == other._resolved()

    __hash__ = None

    def __repr__(self) -> str:
        items = sorted(self._resolved().items(), key=lambda kv: kv[0].name)
        return "{ " + ", ".join(f"${var.name} <- {value!r}" for var, value in items) + " }"

    def _resolved(self) -> dict:
        return {var: substitute(var, self._map) for var in self._map}

    def clone(self) -> Bindings:
        return Bindings(self._map)

    def is_empty(self) -> bool:
        return not self._map

    def add_var_binding(self, var: VariableAtom, atom: Atom) -> bool:
        """Bind `var` to `atom`; False (and no change) when that conflicts with a binding."""
        trial = dict(self._map)
        if not unify_into(from_api(var), from_api(atom), trial):
            return False
        self._map = trial
        return True

    def resolve(self, var: VariableAtom) -> Atom | None:
        engine_var = from_api(var)
        if engine_var not in self._map:
            return None
        return to_api(substitute(engine_var, self._map))

    def narrow_vars(self, variables) -> None:
        """Keep only the given variables (with their values fully resolved)."""
        keep = [from_api(v) for v in variables]
        self._map = {v: substitute(v, self._map) for v in keep if v in self._map}

    def merge(self, other: Bindings) -> BindingsSet:
        merged = dict(self._map)
        for var, value in other._map.items():
            if not unify_into(var, value, merged):
                return BindingsSet.empty()
        return BindingsSet(Bindings(merged))

    def iterator(self) -> Iterator[tuple[VariableAtom, Atom]]:
        return iter([(VariableAtom(var), to_api(value)) for var, value in self._resolved().items()])


class BindingsSet:
    """A list of answers. `BindingsSet()` holds one empty answer (everything matches);
    `BindingsSet.empty()` holds none."""

    def __init__(self, input: Bindings | list | None = None) -> None:
        if input is None:
            self._frames: list[Bindings] = [Bindings()]
        elif isinstance(input, Bindings):
            self._frames = [input]
        else:
            self._frames = [b if isinstance(b, Bindings) else Bindings(b) for b in input]

    @staticmethod
    def empty() -> BindingsSet:
        return BindingsSet([])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BindingsSet) and self._frames == other._frames

    __hash__ = None

    def __repr__(self) -> str:
        return "[ " + ", ".join(repr(b) for b in self._frames) + " ]"

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> dict[str, Atom]:
        frame = self._frames[index]
        return {var.name: to_api(value) for var, value in frame._resolved().items()}

    def clone(self) -> BindingsSet:
        return BindingsSet([b.clone() for b in self._frames])

    def is_empty(self) -> bool:
        return not self._frames

    def is_single(self) -> bool:
        return len(self._frames) == 1 and self._frames[0].is_empty()

    def push(self, bindings: Bindings) -> None:
        self._frames.append(bindings)

    def add_var_binding(self, var: VariableAtom, value: Atom) -> bool:
        """Bind `var` in every answer; answers it conflicts with are dropped."""
        self._frames = [b for b in self._frames if b.add_var_binding(var, value)]
        return bool(self._frames)

    def add_var_equality(self, a: Atom, b: Atom) -> bool:
        return self.add_var_binding(a, b)

    def merge_into(self, other: BindingsSet | Bindings) -> None:
        """Each answer combined with each of `other`'s, dropping the conflicting pairs."""
        others = other._frames if isinstance(other, BindingsSet) else [other]
        merged = []
        for mine in self._frames:
            for theirs in others:
                merged.extend(mine.merge(theirs)._frames)
        self._frames = merged

    def iterator(self) -> Iterator[Bindings]:
        return iter(list(self._frames))


def frame_of(bindings: dict, variables: list[Variable]) -> Bindings:
    """The answer a query gives for its pattern's variables."""
    return Bindings({v: substitute(v, bindings) for v in variables if v in bindings})
