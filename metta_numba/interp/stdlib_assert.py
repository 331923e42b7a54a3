"""The assert family. Results are compared as multisets (order ignored, counts matter); a
failure is `(Error <assert call> "<report>")`, which ends a program run."""

from __future__ import annotations

from collections.abc import Callable

from metta_numba.atoms import Atom, Expression, Grounded, Symbol, alpha_equal
from metta_numba.interp.core import TRUE, UNDEFINED, UNIT, error
from metta_numba.interp.grounded import ExecError, Registry

registry = Registry()

Equal = Callable[[Atom, Atom], bool]


def _results(ev, atom: Atom) -> list[Atom]:
    return [a for a, _ in ev.metta(atom, UNDEFINED)]


def _unmatched(left: list[Atom], right: list[Atom], equal: Equal) -> list[Atom]:
    """Items of `left` left over after pairing each with an equal, unused item of `right`."""
    used = [False] * len(right)
    rest = []
    for item in left:
        for j, other in enumerate(right):
            if not used[j] and equal(item, other):
                used[j] = True
                break
        else:
            rest.append(item)
    return rest


def _listing(atoms: list[Atom]) -> str:
    return ", ".join(repr(a) for a in atoms)


def compare_results(actual: list[Atom], expected: list[Atom], equal: Equal) -> str | None:
    """None when the two lists are equal as multisets, else hyperon's failure report."""
    missed = _unmatched(expected, actual, equal)
    excessive = _unmatched(actual, expected, equal)
    if not missed and not excessive:
        return None
    report = f"\nExpected: [{_listing(expected)}]\nGot: [{_listing(actual)}]"
    if missed:
        report += f"\nMissed results: {_listing(missed)}"
    if excessive:
        report += f"\nExcessive results: {_listing(excessive)}"
    return report


def _exact(a: Atom, b: Atom) -> bool:
    return a == b


def _expected_tuple(atom: Atom) -> list[Atom]:
    if type(atom) is not Expression:
        raise ExecError("Atom is not an ExpressionAtom")
    return list(atom.children)


def _make_assert(evaluate_expected: bool, equal: Equal, with_message: bool):
    def run(ev, args, call):
        actual = _results(ev, args[0])
        expected = _results(ev, args[1]) if evaluate_expected else _expected_tuple(args[1])
        report = compare_results(actual, expected, equal)
        if report is None:
            return [UNIT]
        if with_message:
            raise _MessageError(Expression(call.children[:3]), args[2])
        raise ExecError(Grounded(report))

    return run


class _MessageError(ExecError):
    """A failed `...Msg` assert: the culprit leaves out the message, which is the reason."""

    def __init__(self, culprit: Atom, message: Atom) -> None:
        super().__init__(message)
        self.culprit = culprit

    def error_atom(self, call: Atom) -> Expression:
        return error(self.culprit, self.reason)


_ASSERTS = {
    "assertEqual": (True, _exact),
    "assertEqualToResult": (False, _exact),
    "assertAlphaEqual": (True, alpha_equal),
    "assertAlphaEqualToResult": (False, alpha_equal),
}

for _name, (_evaluate, _equal) in _ASSERTS.items():
    registry.add(_name, "(-> Atom Atom (->))")(_make_assert(_evaluate, _equal, False))
    registry.add(_name + "Msg", "(-> Atom Atom Atom (->))")(_make_assert(_evaluate, _equal, True))


@registry.add("assertIncludes", "(-> Atom Expression (->))")
def _assert_includes(ev, args, call):
    actual = _results(ev, args[0])
    missing = _unmatched(_expected_tuple(args[1]), actual, _exact)
    if not missing:
        return [UNIT]
    reason = Expression(
        [
            Symbol("assertIncludes"),
            Symbol("error:"),
            Expression(missing),
            Symbol("not"),
            Symbol("included"),
            Symbol("in"),
            Symbol("result:"),
            Expression(actual),
        ]
    )
    raise ExecError(reason)


@registry.add("assert", "(-> Atom (->))")
def _assert(ev, args, call):
    atom = args[0]
    failure = error(call, Expression([atom, Symbol("not"), TRUE]))
    return [UNIT if value == TRUE else failure for value in _results(ev, atom)]
