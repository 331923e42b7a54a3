"""Answers of a pattern from the kernels: bindings per answer, or tables of values.

`AnswerTables` is the part of PersistentKB (store.kb) that turns what the kernels decided
about a pattern's candidates (trie.unifypaths: status, and where each variable's value lies)
into Python answers: a dict of bindings per answer for `bindings`, or one column of values
per variable for `bindings_table`, where equal values are grouped in kernels
(trie.spangroups) and decoded once. Candidates the kernels leave open go to unify.py.

It uses the KB's lock, generation, working set, term store and decoding cache; it is not used
on its own.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

from metta_numba.atoms import Atom, Symbol, Variable, variables_of
from metta_numba.codec import CodecError, HandleTable, decode, encode
from metta_numba.collector import collector_paused
from metta_numba.snapshot_probes import probe_patterns
from metta_numba.store.errors import CorruptSnapshotError
from metta_numba.store.overlay import QueryTerms
from metta_numba.trie.pathmatch import MAYBE, NO, YES
from metta_numba.trie.spangroups import group_spans, short_symbol_names
from metta_numba.trie.unifypaths import (
    ROW_COPIES,
    ROW_FIRST_VALUE,
    ROW_PATH,
    ROW_RANK,
    ROW_STATUS,
    SIDE_PATTERN,
    SIDE_UNBOUND,
)
from metta_numba.unify import substitute, unified_counted

Bindings = dict[Variable, Atom]

BULK_DECODE_AFTER = 256
"""Candidates above which a table groups equal values in kernels rather than row by row (the
kernels' fixed cost pays off only on larger answer sets)."""

KEPT_PATTERNS = 4096
"""Encoded patterns a KB keeps (see AnswerTables._encoded); past that it starts afresh."""


class EncodedPattern(NamedTuple):
    key: bytes
    path: np.ndarray  # the key's bytes as an array, for the kernels
    variables: list[Variable]  # in order of first occurrence
    plain: bool  # the snapshot's own lookup misses nothing (snapshot_probes)


def _replacer(value_hook, symbols: dict[str, Atom] | None):
    """One function for bindings_table's two replacements (see there)."""

    def replace(value: Atom) -> Atom:
        if symbols is not None and type(value) is Symbol:
            found = symbols.get(value.name)
            return value if found is None else found
        return value if value_hook is None else value_hook(value)

    return replace


def _short_symbol(raw: bytes) -> Symbol | None:
    """The symbol a one-token path spells (tag 0xC1-0xFF, then its UTF-8 name), else None:
    the commonest value of a match, decoded without the general decoder."""
    if len(raw) > 1 and raw[0] > 0xC0 and (raw[0] & 0x3F) == len(raw) - 1:
        try:
            return Symbol(raw[1:].decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return None


class AnswerTables:
    """Query answers as bindings or as tables of values (see the module docstring)."""

    def _reset_answer_caches(self) -> None:
        """Forget the kept encoded patterns and replaced values (a new term store decodes the
        same bytes differently)."""
        self._patterns: dict[Atom, EncodedPattern] = {}
        self._patterns_for, self._patterns_size = None, 0
        self._replaced: dict[bytes, Atom] = {}
        self._replaced_for: tuple | None = None

    def bindings(self, pattern: Atom) -> list[Bindings]:
        """The bindings of every match of `pattern`, once per copy, in the order of `query`
        (the stored atom on the left of the unification, as the interpreter's space does).
        Kernels unify the snapshot's candidates and say where each variable's value lies:
        only those bytes are decoded."""
        variables, rows = self._answer_rows(pattern)
        out: list[Bindings] = []
        for answer, copies in rows:
            if type(answer) is tuple:
                answer = {v: a for v, a in zip(variables, answer) if a is not None}
            out.append(answer)
            if copies > 1:
                out.extend(dict(answer) for _ in range(copies - 1))
        return out

    def bindings_table(
        self,
        pattern: Atom,
        value_hook=None,
        symbols: dict[str, Atom] | None = None,
        wanted: set[Variable] | None = None,
    ) -> tuple[list[Variable], list[list]]:
        """The answers of `bindings` as columns: for each of the pattern's variables (in order
        of first occurrence) its value in every answer, None where it stays unbound. When the
        kernels decide every candidate, each distinct value is decoded once for all answers.
        `symbols`, when given, replaces a value that is one symbol named by one of its keys;
        `value_hook`, when given, maps every other value (once per distinct decoded value);
        both must give the same atom for the same value every time. `wanted`, when given, names
        the variables whose values the caller uses: a large table leaves the other columns None
        throughout instead of decoding them."""
        with self._lock:
            self._check_open()
            encoded = self._encoded(pattern)
            rows = None
            if encoded is not None and encoded.plain and not self._working.delta:
                variables = list(encoded.variables)
                found = self._generation.matched_rows(encoded.path)
                if found is not None:
                    return variables, self._prefix_columns(pattern, variables, value_hook, symbols, *found)
                matched = self._generation.matched(encoded.key)
                status = matched[4]
                if len(status) > BULK_DECODE_AFTER and not (status == MAYBE).any():
                    with collector_paused():
                        needed = [wanted is None or v in wanted for v in variables]
                        columns = self._decided_columns(encoded.key, needed, value_hook, symbols, *matched)
                    return variables, columns
                rows = self._snapshot_rows(pattern, encoded.key, len(variables), *matched)
        if rows is None:
            variables, rows = self._answer_rows(pattern)
        columns: list[list] = [[] for _ in variables]
        replace = None if value_hook is None and symbols is None else _replacer(value_hook, symbols)
        for answer, copies in rows:
            if type(answer) is not tuple:
                answer = tuple(substitute(v, answer) if v in answer else None for v in variables)
            if replace is not None:
                answer = tuple(None if a is None else replace(a) for a in answer)
            for column, value in zip(columns, answer):
                column.extend([value] * copies)
        return variables, columns

    def _encoded(self, pattern: Atom) -> EncodedPattern | None:
        """The pattern's encoding (None when it has none), kept per pattern: a warm query pays
        for a dictionary lookup instead of the encoder. An encoding may hold ids of the term
        store, which only grows: the kept ones are dropped when it has grown or been replaced."""
        terms = self._terms
        if self._patterns_for is not terms or self._patterns_size != len(terms):
            self._patterns = {}
            self._patterns_for, self._patterns_size = terms, len(terms)
        try:
            encoded = self._patterns.get(pattern)
        except TypeError:  # a grounded value that cannot be hashed
            encoded = None
        if encoded is None:
            try:
                key, names = encode(pattern, QueryTerms(terms), intern=False, handles=HandleTable())
            except CodecError:
                return None
            plain = probe_patterns(pattern)[0] is pattern
            encoded = EncodedPattern(key, np.frombuffer(key, dtype=np.uint8), [Variable(n) for n in names], plain)
            if plain:  # a pattern with a grounded object is encoded with this call's handles
                if len(self._patterns) >= KEPT_PATTERNS:
                    self._patterns.clear()
                with contextlib.suppress(TypeError):
                    self._patterns[pattern] = encoded
        return encoded

    def _prefix_columns(self, pattern, variables, value_hook, symbols, rows, data, single) -> list[list]:
        """The columns of bindings_table from the rows of Generation.matched_rows. Values
        are decoded and replaced once per byte string and kept for the next query (with the
        same replacements)."""
        replace = _replacer(value_hook, symbols)
        seen = self._final_values(value_hook, symbols)
        get = seen.get

        def value_of(raw: bytes) -> Atom | None:
            if not raw:
                return None  # an empty span: the variable stays unbound
            value = get(raw)
            if value is None:
                value = seen[raw] = replace(self._value(raw))
            return value

        starts = range(ROW_FIRST_VALUE, ROW_FIRST_VALUE + 2 * len(variables), 2)
        if single:
            # The common case, a column at a time. (`or` asks value_of only on a miss, for an
            # unbound variable, or for an atom that is false, such as `()`.)
            return [[get(raw := data[row[at] : row[at + 1]]) or value_of(raw) for row in rows] for at in starts]
        columns: list[list] = [[] for _ in variables]
        for row in rows:
            if row[ROW_STATUS] == YES:
                answers = [([value_of(data[row[at] : row[at + 1]]) for at in starts], row[ROW_COPIES])]
            else:
                answers = [
                    ([replace(substitute(v, b)) if v in b else None for v in variables], 1)
                    for b in self._unified_row(pattern, row, data)
                ]
            for values, n in answers:
                for column, value in zip(columns, values):
                    column.extend([value] * n)
        return columns

    def _final_values(self, value_hook, symbols) -> dict:
        """The cache of decoded values (by their bytes) after these replacements: kept while
        the same hook and table come back, as a space passes them every query."""
        if value_hook is None and symbols is None:
            cache = self._decoded
        elif self._replaced_for == (value_hook, symbols):
            cache = self._replaced
        else:
            cache = self._replaced = {}
            self._replaced_for = (value_hook, symbols)
        if len(cache) > 100_000:
            cache.clear()
        return cache

    def _decided_columns(
        self, key, needed, value_hook, symbols, counts, name_ids, data, offsets, status, spans, sides
    ) -> list[list]:
        kept = np.flatnonzero(status == YES)
        copies = counts[kept]
        repeat = bool(len(copies)) and int(copies.max()) > 1
        # One buffer for both places a value may lie: the paths, then the pattern (only when
        # some value lies there: copying the paths costs as much as decoding a column).
        from_pattern = bool((sides[kept] == SIDE_PATTERN).any())
        buf = np.concatenate([data, np.frombuffer(key, dtype=np.uint8)]) if from_pattern else data
        columns = []
        for j, wanted in enumerate(needed):
            if not wanted:
                columns.append([None] * (int(copies.sum()) if repeat else len(kept)))
                continue
            side = sides[kept, j]
            starts = spans[kept, 2 * j]
            ends = spans[kept, 2 * j + 1]
            if from_pattern:
                shift = np.where(side == SIDE_PATTERN, len(data), 0)
                starts += shift
                ends += shift
            unbound = side == SIDE_UNBOUND
            starts[unbound] = 0
            ends[unbound] = 0  # an unbound variable: the empty span, its own group
            groups, representatives = group_spans(buf, starts, ends)
            values = self._values(buf, starts[representatives], ends[representatives], value_hook, symbols)
            if len(representatives) == len(groups) and not repeat:
                columns.append(values)  # every value differs: groups run 0, 1, 2, ...
                continue
            if repeat:
                groups = np.repeat(groups, copies)
            columns.append([values[g] for g in groups.tolist()])
        return columns

    def _values(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, value_hook=None, symbols=None) -> list:
        """The atoms of buf's spans (None for an empty one), replaced as bindings_table says.
        Short symbols, the commonest values, are decoded together: their names are gathered
        and split in one go (and looked up in `symbols` by name)."""
        blob, is_symbol = short_symbol_names(buf, starts, ends)
        try:
            names = blob.tobytes().decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise CorruptSnapshotError("a stored symbol name is not UTF-8", self.directory) from None
        names.pop()  # after the last newline
        if len(names) == len(starts):
            if symbols is not None and not symbols.keys().isdisjoint(names):
                get = symbols.get
                return [Symbol(name) if (token := get(name)) is None else token for name in names]
            values = list(map(Symbol, names))
            if symbols is not None:
                return values
            return values if value_hook is None else list(map(value_hook, values))
        replace = _replacer(value_hook, symbols)
        names = iter(names)
        out = []
        for symbol, start, end in zip(is_symbol.tolist(), starts.tolist(), ends.tolist()):
            value = Symbol(next(names)) if symbol else self._value(buf[start:end].tobytes())
            out.append(None if value is None else replace(value))
        return out

    def _value(self, raw: bytes) -> Atom | None:
        if not raw:
            return None
        value = _short_symbol(raw)
        if value is None:
            try:
                value = decode(raw, self._terms, [])
            except CodecError as err:
                raise CorruptSnapshotError(f"stored value does not decode: {err}", self.directory) from None
        return value

    def _answer_rows(self, pattern: Atom) -> tuple[list[Variable], list[tuple]]:
        """(pattern variables, [(values tuple or bindings dict, copies)]) of every match."""
        with self._lock:
            self._check_open()
            encoded = self._encoded(pattern)  # kept per pattern: a warm query skips the encoder
            if encoded is None or not encoded.plain:
                probes = probe_patterns(pattern)
                if probes[0] is not pattern:
                    found = unified_counted(pattern, self._probed(probes))
                    return variables_of(pattern), [(b, 1) for b in found]
                found = unified_counted(pattern, self._all_atoms())  # the codec cannot encode it
                return variables_of(pattern), [(b, 1) for b in found]
            key, variables = encoded.key, list(encoded.variables)
            working = self._working
            if not working.delta:
                found = self._generation.matched_rows(encoded.path)
                if found is not None:
                    return variables, self._matched_answers(pattern, len(variables), *found[:2])
            rows = self._snapshot_rows(pattern, key, len(variables), *self._generation.matched(key))
            if working.delta:
                found = (
                    (self._decode(p, working.names.get(p, ())), working.delta[p]) for p in working.candidates(key)
                )
                rows.extend((b, 1) for b in unified_counted(pattern, found))
            return variables, rows

    def _matched_answers(self, pattern, n_vars: int, rows: list[list[int]], data: bytes) -> list[tuple]:
        """The answers of `_answer_rows` from the rows of Generation.matched_rows."""
        seen = self._final_values(None, None)
        starts = range(ROW_FIRST_VALUE, ROW_FIRST_VALUE + 2 * n_vars, 2)
        out: list[tuple] = []
        for row in rows:
            if row[ROW_STATUS] == YES:
                values = []
                for at in starts:
                    raw = data[row[at] : row[at + 1]]
                    value = seen.get(raw)
                    if value is None and raw:  # an empty span: the variable stays unbound
                        value = seen[raw] = self._value(raw)
                    values.append(value)
                out.append((tuple(values), row[ROW_COPIES]))
            else:
                out.extend((b, 1) for b in self._unified_row(pattern, row, data))
        return out

    def _row_atoms(self, rows: list[list[int]], data: bytes):
        """(stored atom, copies) of each row of Generation.matched_rows."""
        for row in rows:
            names = self._snapshot_names(self._generation.name_id(row[ROW_RANK]))
            yield self._decode(data[row[ROW_PATH] : row[ROW_PATH + 1]], names), row[ROW_COPIES]

    def _unified_row(self, pattern, row: list[int], data: bytes) -> list:
        """The bindings of every copy of a MAYBE row of Generation.matched_rows: its path
        decoded and unified with the pattern."""
        return unified_counted(pattern, self._row_atoms([row], data))

    def _snapshot_rows(
        self, pattern, key, n_vars, counts, name_ids, data, offsets, status, spans, sides
    ) -> list[tuple]:
        decode, delta = self._decode, self._working.delta
        data, offsets, counts = data.tobytes(), offsets.tolist(), counts.tolist()
        # A value may lie in the path or in the pattern (bound there through a stored variable);
        # side -1 leaves the pattern's variable unbound.
        buffers = (key, data)
        # Ground values decode alike wherever they lie; the KB's cache of decoded paths serves
        # them across small queries, a large answer set keeps its own.
        seen = self._decoded if len(status) < 10_000 else {}
        if len(seen) > 100_000:
            seen.clear()
        out: list[tuple] = []
        if len(status) <= 64:
            # A few candidates: plain lists cost less than selecting with arrays.
            every = enumerate(zip(status.tolist(), spans.tolist(), sides.tolist()))
            rows = ((i, state, row, side) for i, (state, row, side) in every if state != NO)
        else:
            kept = np.flatnonzero(status != NO)
            rows = zip(kept.tolist(), status[kept].tolist(), spans[kept].tolist(), sides[kept].tolist())
        for i, state, row, side in rows:
            copies = counts[i] + (min(0, delta.get(data[offsets[i] : offsets[i + 1]], 0)) if delta else 0)
            if copies <= 0:
                continue
            if state == YES:
                values = []
                for j in range(n_vars):
                    if side[j] < 0:
                        values.append(None)
                        continue
                    raw = buffers[side[j]][row[2 * j] : row[2 * j + 1]]
                    value = seen.get(raw)
                    if value is None:
                        value = seen[raw] = self._value(raw)
                    values.append(value)
                out.append((tuple(values), copies))
            else:
                atom = decode(data[offsets[i] : offsets[i + 1]], self._snapshot_names(int(name_ids[i])))
                out.extend((b, 1) for b in unified_counted(pattern, [(atom, copies)]))
        return out
