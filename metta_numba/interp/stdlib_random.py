"""The `random` module, loaded by `!(import! &self random)`: random numbers from seedable
generators, and the token `&rng` for a default generator."""

from __future__ import annotations

import random

from metta_numba.atoms import Grounded, GroundedObject
from metta_numba.interp.core import FALSE, TRUE, UNIT
from metta_numba.interp.grounded import ExecError, NoReduce, Registry

registry = Registry()


class RandomGenerator:
    """A seedable generator; `seed` None means seeded from the system."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def reset(self) -> None:
        self.rng = random.Random(self.seed)


class GeneratorAtom(GroundedObject):
    __slots__ = ()

    def display(self) -> str:
        return f"RandomGenerator-0x{id(self.obj):012x}"


def _generator(atom) -> RandomGenerator:
    if isinstance(atom, GeneratorAtom):
        return atom.obj
    raise NoReduce()


def _number(atom):
    if type(atom) is Grounded and type(atom.value) in (int, float):
        return atom.value
    raise NoReduce()


def default_tokens() -> dict:
    return {"&rng": GeneratorAtom(RandomGenerator(None))}


@registry.add("new-random-generator", "(-> Number RandomGenerator)")
def _new_generator(ev, args, call):
    seed = _number(args[0])
    return [GeneratorAtom(RandomGenerator(int(seed)))]


@registry.add("set-random-seed", "(-> RandomGenerator Number (->))")
def _set_seed(ev, args, call):
    gen = _generator(args[0])
    gen.seed = int(_number(args[1]))
    gen.reset()
    return [UNIT]


@registry.add("reset-random-generator", "(-> RandomGenerator RandomGenerator)")
def _reset(ev, args, call):
    gen = _generator(args[0])
    gen.reset()
    return [args[0]]


@registry.add("random-int", "(-> RandomGenerator Number Number Number)")
def _random_int(ev, args, call):
    gen = _generator(args[0])
    low, high = _number(args[1]), _number(args[2])
    if type(low) is not int or type(high) is not int:
        raise ExecError("random-int expects integer bounds")
    if low >= high:
        raise ExecError("RangeIsEmpty")
    return [Grounded(gen.rng.randrange(low, high))]


@registry.add("random-float", "(-> RandomGenerator Number Number Number)")
def _random_float(ev, args, call):
    gen = _generator(args[0])
    low, high = float(_number(args[1])), float(_number(args[2]))
    if low >= high:
        raise ExecError("RangeIsEmpty")
    return [Grounded(gen.rng.uniform(low, high))]


@registry.add("flip", "(-> Bool)")
def _flip(ev, args, call):
    return [TRUE if random.random() < 0.5 else FALSE]
