"""`metta-numba query`: match a pattern, a conjunction or a file of patterns against a KB,
without evaluation, and print the answers as they are produced.

Output (one pattern or a conjunction):
    text    one line per answer: TEMPLATE (default: the pattern) with the answer's bindings
    jsonl   one JSON object per line and answer: {"bindings": {"$x": "MeTTa text" or null for
            a variable the answer leaves free, ...every variable of the pattern}, "result":
            "the text line"}
    json    a JSON array of the jsonl objects (written as they come, not built first)
    --count the number of answers alone: `N`, or {"count": N} in json and jsonl

With --patterns FILE (one pattern per line, or any MeTTa text of several atoms; `-` reads
stdin), the answers are given per pattern, in file order:
    text    one line per pattern: its answers as `[a1, a2, ...]` (`[]` for none), each answer
            the pattern with its bindings applied
    jsonl   one object per pattern: {"pattern": "...", "answers": [{"$x": "..."}, ...]}
    json    the array of those objects
    --count one count per line, or {"pattern": "...", "count": N}
--limit N keeps at most N answers (per pattern with --patterns).

A stored atom's variables are renamed apart when it is unified (`$x#12`); answers print them
with the name the KB holds, `$x`, unless that name is already taken in the same answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator

from metta_numba.atoms import Atom, Expression, Variable, variables_of
from metta_numba.cli import EXIT_OK, EXIT_USAGE, CommandError
from metta_numba.syntax.printer import format_atom
from metta_numba.unify import Bindings, substitute


def check_options(args) -> None:
    """The usage errors of `query` (exit 2), before the KB is opened."""
    if args.patterns is not None and args.pattern is not None:
        raise CommandError("give a PATTERN or --patterns FILE, not both", EXIT_USAGE)
    if args.patterns is None and args.pattern is None:
        raise CommandError("give a PATTERN, or --patterns FILE", EXIT_USAGE)
    if args.count and args.limit is not None:
        raise CommandError("--count counts every answer and --limit keeps some: give one of them", EXIT_USAGE)
    if args.count and args.template is not None:
        raise CommandError("--count prints a number: a TEMPLATE has nothing to shape", EXIT_USAGE)


def parsed_pattern(args) -> tuple[Atom, Atom]:
    """(pattern, template) of the command line; a syntax error is a usage error."""
    from metta_numba.syntax.errors import ParseError
    from metta_numba.syntax.parser import parse_atom

    try:
        pattern = parse_atom(args.pattern, "<pattern>")
        template = parse_atom(args.template, "<template>") if args.template else pattern
    except ParseError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    return pattern, template


def pattern_source(path: str) -> tuple[bytes, str]:
    """The bytes of a --patterns file (stdin for `-`) and the name errors give it."""
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except OSError as err:
        raise CommandError(f"--patterns {path}: {err.strerror}", EXIT_USAGE) from None


def run_query(args, kb) -> int:
    """Answer the command line's query on an open KB and print the answers."""
    if args.patterns is not None:
        return _run_many(args, kb)
    from metta_numba.space.query_answers import answers, count_answers

    pattern, template = parsed_pattern(args)
    out = sys.stdout
    if args.count:
        total = count_answers(kb, pattern)
        out.write(f"{total}\n" if args.format == "text" else json.dumps({"count": total}) + "\n")
        return EXIT_OK
    found = answers(kb, pattern, args.limit)
    _write_answers(out, args.format, variables_of(pattern), template, found)
    return EXIT_OK


def _write_answers(out, form: str, variables: list[Variable], template: Atom, found: Iterable[Bindings]) -> None:
    if form == "text":
        for bindings in found:
            shown = substitute(template, bindings)
            out.write(format_atom(shown if _all_ground(bindings) else readable(shown)) + "\n")
        return
    records = (_record(variables, template, bindings) for bindings in found)
    if form == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        _write_json_array(out, records)


def _record(variables: list[Variable], template: Atom, bindings: Bindings) -> dict:
    values = [substitute(v, bindings) if v in bindings else None for v in variables]
    shown = Expression([substitute(template, bindings), *(value for value in values if value is not None)])
    if not _all_ground(bindings):
        shown = readable(shown)
    result, *texts = shown.children
    texts = iter(texts)
    return {
        "bindings": {
            f"${v.name}": None if value is None else format_atom(next(texts)) for v, value in zip(variables, values)
        },
        "result": format_atom(result),
    }


def _write_json_array(out, records: Iterator[dict]) -> None:
    out.write("[")
    first = True
    for record in records:
        out.write("\n " if first else ",\n ")
        out.write(json.dumps(record, ensure_ascii=False))
        first = False
    out.write("\n]\n" if not first else "]\n")


def _run_many(args, kb) -> int:
    from metta_numba.syntax.errors import ParseError

    source, name = pattern_source(args.patterns)
    try:
        found = kb.query_many(source, name)
    except ParseError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    out = sys.stdout
    counts = found.counts().tolist()
    records = (_many_record(args, found, i, counts[i]) for i in range(len(found)))
    if args.format == "json":
        _write_json_array(out, records)
    elif args.format == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    elif args.count:
        for count in counts:
            out.write(f"{count}\n")
    else:
        for i in range(len(found)):
            pattern = found.pattern(i)
            texts = (format_atom(readable(substitute(pattern, b))) for b in _kept(args, found, i))
            out.write("[" + ", ".join(texts) + "]\n")
    return EXIT_OK


def _kept(args, found, index: int) -> list[Bindings]:
    return [bindings for _, bindings in found[index][: args.limit]]


def _many_record(args, found, index: int, count: int) -> dict:
    pattern = found.pattern(index)
    record = {"pattern": format_atom(pattern)}
    if args.count:
        record["count"] = count
        return record
    variables = variables_of(pattern)
    record["answers"] = [_record(variables, pattern, b)["bindings"] for b in _kept(args, found, index)]
    return record


def _all_ground(bindings: Bindings) -> bool:
    """No value holds a variable (so none renamed apart: the common case, checked cheaply)."""
    for value in bindings.values():
        t = type(value)
        if t is Variable or (t is Expression and not value._ground):
            return False
    return True


def readable(atom: Atom) -> Atom:
    """`atom` with each variable renamed apart by unification (`$x#12`) shown by the name the
    KB holds (`$x`), unless another variable of the atom has that name; then `$x2`, `$x3`, ...
    (the first one free)."""
    renamed = [v for v in variables_of(atom) if "#" in v.name]
    if not renamed:
        return atom
    used = {v.name for v in variables_of(atom) if "#" not in v.name}
    mapping: Bindings = {}
    for variable in renamed:
        base = variable.name.split("#", 1)[0]
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}{n}"
        used.add(name)
        mapping[variable] = Variable(name)
    return substitute(atom, mapping)
