"""Conjunctions over a KB as a worst-case-optimal join: `PersistentKB.join(patterns)`.

`JoinQueries` is the part of PersistentKB (store.kb) that answers `(, p1 p2 ...)` with the
leapfrog kernel (trie.leapfrog) over the views of store.join_views, into a `JoinTable`: one
int64 array of value ids per variable, one entry per answer (copies repeated), decoded to
atoms only when asked.

A pattern joins in the kernel when it is `(head a1 ... ak)` with a ground head, each argument
a variable or a ground atom (no whole float or NaN in it), over a joinable relation that the
working set does not touch (no unsaved add or remove of that head and arity, nor an unsaved
atom with a variable head). Every other pattern (a nested pattern with variables, a variable
head, a stored atom with variables, unsaved changes) is answered by the step-by-step planner
(space.conjunction) from the kernel's rows: the answers are the same multiset either way.

Answers come grouped by the values of the variables in the join's order (each value's rows
together, values in id order); that is not the planner's order, which the interpreter keeps.
A conjunction whose variables split apart once a few are bound (store.join_split) is joined
part by part (trie.splitrows): its rows come grouped by the values of the split's prefix, and
within one prefix binding in the order its first part is walked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metta_numba.atoms import Atom, Expression, Grounded, GroundedObject, Variable, is_ground, variables_of
from metta_numba.codec import CodecError, HandleTable, encode
from metta_numba.space.conjunction import conjuncts, match_conjunction
from metta_numba.store.join_views import NO_VALUE, JoinViews, Relation
from metta_numba.store.overlay import QueryTerms

__all__ = ["JoinQueries", "JoinTable"]

# The kernels (trie.leapfrog, trie.splitrows, store.join_split) and the thread pool are
# imported when a join runs: every command opening a KB imports this module.

PARALLEL_FROM = 50_000
"""A join runs on several threads only when each of its relations has this many rows."""
SLICES_PER_THREAD = 8
PLANS_KEPT = 256
"""Conjunctions whose kernel arguments an open KB keeps (see JoinQueries._join_prepared)."""

Bindings = dict[Variable, Atom]


class JoinTable:
    """The answers of a join: `ids[name]` is an int64 array of value ids per variable (NO_VALUE,
    -1, where an answer leaves it unbound), one entry per answer. `column(name)` decodes one
    column to atoms; `columns()` gives all of them in the shape of `bindings_table`."""

    def __init__(self, variables: list[Variable], ids: dict[str, np.ndarray], decoder, rows: int) -> None:
        self.variables = variables
        self.ids = ids
        self._decoder = decoder
        self._rows = rows

    def __len__(self) -> int:
        return self._rows

    def column(self, name: str, value_hook=None) -> list[Atom | None]:
        """The values of variable `name` in every answer (None where it stays unbound);
        `value_hook` maps each distinct value once."""
        ids = self.ids[name]
        distinct, inverse = np.unique(ids, return_inverse=True)
        values = self._decoder(distinct.tolist())
        if value_hook is not None:
            values = [None if v is None else value_hook(v) for v in values]
        return [values[i] for i in inverse.tolist()]

    def columns(self, value_hook=None) -> tuple[list[Variable], list[list]]:
        """(variables, a column of values per variable), as AnswerTables.bindings_table."""
        return self.variables, [self.column(v.name, value_hook) for v in self.variables]

    def bindings(self, value_hook=None) -> list[Bindings]:
        """One dict of bindings per answer (unbound variables left out)."""
        variables, columns = self.columns(value_hook)
        out = []
        for values in zip(*columns) if columns else [()] * len(self):
            out.append({v: a for v, a in zip(variables, values) if a is not None})
        return out


def _empty_table(variables: list[Variable], decoder) -> JoinTable:
    return JoinTable(variables, {v.name: np.zeros(0, np.int64) for v in variables}, decoder, 0)


class _Planned:
    """One pattern the kernel joins: its relation, its columns' constants (value ids) and
    variables, and its size once the constants narrow it."""

    __slots__ = ("relation", "constants", "variables", "size")

    def __init__(self, relation: Relation, constants: dict[int, int], variables: dict[int, Variable]) -> None:
        self.relation = relation
        self.constants = constants
        self.variables = variables
        self.size = len(relation)


class _KBSource:
    """The KB as the planner's space (space.conjunction.Source)."""

    def __init__(self, kb) -> None:
        self.query = kb.bindings
        self.estimate = kb.estimate
        self.candidates = kb.candidates


def _ambiguous_number(atom: Atom) -> bool:
    """A whole float or NaN (see trie.relation_cells), or an object: no faithful bytes."""
    stack = [atom]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is Expression:
            stack.extend(item.children)
        elif t is Grounded and type(item.value) is float:
            if item.value != item.value or item.value.is_integer():
                return True
        elif isinstance(item, GroundedObject):
            return True
    return False


class JoinQueries:
    """Conjunctions as a worst-case-optimal join (see the module docstring)."""

    def join(self, patterns: Atom | Sequence[Atom], *, limit: int | None = None,
             order: Sequence[str] | None = None, threads: int = 1) -> JoinTable:
        """The answers of the conjunction `patterns` (`(, p1 p2 ...)`, or the patterns as a
        list) as a JoinTable. `limit` stops after that many answers; `order` forces the order
        in which the kernel binds the variables (names; by default it is chosen from sizes);
        `threads` above 1 splits a large join by its first variable's values (the answers
        come in the same order)."""
        with self._lock:
            self._check_open()
            parts = self._join_parts(patterns)
            decoder = self._join_decoder()
            if not parts:
                return JoinTable([], {}, decoder, 1)  # `(,)`: one answer, binding nothing
            variables, args, var_order, rest = self._join_prepared(parts, order)
            if args is None:
                return self._join_fallback(variables, rest, [{}], limit, decoder) if rest else _empty_table(
                    variables, decoder)
            split = self._join_split_prepared(parts) if not rest and order is None else None
            if split is not None and (not limit or split[3]):
                _, columns, answers = self._split_execute(split, threads, limit, True)
                return JoinTable(variables, dict(zip((v.name for v in variables), columns)), decoder, answers)
            # The planner's part may drop rows: the kernel stops early only when it answers all.
            kernel_limit = None if rest else limit
            total, rows, mult = self._join_execute(args, kernel_limit, True, threads)
            if kernel_limit is not None and kernel_limit > 0 and int(mult.sum()) > limit:
                keep = np.searchsorted(np.cumsum(mult), limit) + 1
                rows, mult = rows[:keep], mult[:keep].copy()
                mult[-1] -= int(mult.sum()) - limit
            repeat = bool(len(mult)) and int(mult.max()) > 1
            columns = {}
            for j, v in enumerate(var_order):
                column = np.ascontiguousarray(rows[:, j])
                columns[v.name] = np.repeat(column, mult) if repeat else column
            answers = int(mult.sum()) if var_order else int(total)
            if kernel_limit is not None and kernel_limit > 0:
                answers = min(answers, kernel_limit)
            if not rest:
                return JoinTable(variables, {v.name: columns[v.name] for v in variables}, decoder, answers)
            joined = JoinTable(var_order, columns, decoder, answers)
            return self._join_fallback(variables, rest, joined.bindings(), limit, decoder)

    def join_count(self, patterns: Atom | Sequence[Atom], *, limit: int | None = None, threads: int = 1) -> int:
        """How many answers `join(patterns)` has (up to `limit`), counted without building or
        decoding the rows when every pattern joins in the kernel (`threads`: as for join).
        A conjunction whose variables split apart is counted part by part (store.join_split);
        with a limit, only when the split has a prefix to stop after."""
        with self._lock:
            self._check_open()
            parts = self._join_parts(patterns)
            if not parts:
                return 1
            _, args, _, rest = self._join_prepared(parts, None)
            if args is None and not rest:
                return 0
            if args is not None and not rest:
                split = self._join_split_prepared(parts)
                if split is not None and (not limit or split[3]):
                    total = self._split_execute(split, threads, limit, False)[0]
                    return int(total if limit is None else min(total, limit))
                total = self._join_execute(args, limit, False, threads)[0]
                return int(total if limit is None else min(total, limit))
        return len(self.join(parts, limit=limit))

    def _join_prepared(self, parts: list[Atom], order: Sequence[str] | None):
        """(the variables, the kernel's arguments or None, the kernel's variable order, the
        patterns left to the planner). No kernel arguments and no pattern left: no answer; no
        kernel arguments and patterns left: the planner answers all of them. Kept per
        conjunction while the working set is empty (the views do not change then)."""
        views = self._join_views()
        key = (tuple(parts), None if order is None else tuple(order))
        cacheable = not self._working.delta
        found = views.plans.get(key) if cacheable else None
        if found is None:
            variables = variables_of(Expression(parts)) if parts else []
            planned, rest = self._join_plan(parts)
            if planned is None:
                found = (variables, None, [], [])
            elif not planned:
                found = (variables, None, [], parts)
            else:
                var_order = self._join_order(planned, order)
                found = (variables, self._join_args(planned, var_order), var_order, rest)
            if cacheable:
                if len(views.plans) > PLANS_KEPT:
                    views.plans.clear()
                views.plans[key] = found
        return found

    def _join_split_prepared(self, parts: list[Atom]):
        """For a conjunction the kernel joins whole and whose variables split (see
        store.join_split): (the split join's arguments, its columns, whether threads may share
        it, whether it has a prefix, after which a limit can stop); None otherwise. Kept as
        _join_prepared's."""
        views = self._join_views()
        key = ("split", tuple(parts))
        cacheable = not self._working.delta
        if cacheable and key in views.plans:
            return views.plans[key]
        planned, rest = self._join_plan(parts)
        found = None
        if planned and not rest:
            from metta_numba.store.join_split import find_split, split_args

            var_order = self._join_order(planned, None)
            split = find_split(planned, var_order)
            if split is not None:
                smallest = min(len(s.relation) for s in planned)
                columns = variables_of(Expression(parts))
                found = (split_args(views, planned, split, columns), len(columns),
                         bool(split.prefix) and smallest >= PARALLEL_FROM, bool(split.prefix))
        if cacheable:
            if len(views.plans) > PLANS_KEPT:
                views.plans.clear()
            views.plans[key] = found
        return found

    # ---- planning --------------------------------------------------------------------------

    @staticmethod
    def _join_parts(patterns: Atom | Sequence[Atom]) -> list[Atom]:
        if isinstance(patterns, Atom):
            parts = conjuncts(patterns)
            return [patterns] if parts is None else parts
        return list(patterns)

    def _join_views(self) -> JoinViews:
        views = getattr(self, "_views_cache", None)
        if views is None or views.trie is not self._generation.trie:
            views = self._views_cache = JoinViews(self._generation.trie)
        return views

    def _join_plan(self, parts: list[Atom]) -> tuple[list[_Planned] | None, list[Atom]]:
        """(the patterns the kernel joins, the others); None for the first when one of them
        cannot match at all (a constant no row holds), so the conjunction has no answer."""
        views = self._join_views()
        terms = QueryTerms(self._terms)
        touched = self._touched_prefixes()
        planned: list[_Planned] = []
        rest: list[Atom] = []
        for part in parts:
            step = self._plan_pattern(part, views, terms, touched)
            if step is None:
                rest.append(part)
            elif step is False:
                return None, []
            else:
                planned.append(step)
        return planned, rest

    def _plan_pattern(self, part: Atom, views: JoinViews, terms, touched):
        """A _Planned, False when it has no match for sure, None when the planner must answer."""
        if type(part) is not Expression or len(part.children) < 2 or not is_ground(part.children[0]):
            return None
        if _ambiguous_number(part):
            return None
        try:
            head = encode(part.children[0], terms, intern=False, handles=HandleTable())[0]
        except CodecError:
            return None
        arity = len(part.children)
        if touched is not None:
            bare, keys, variable_heads = touched
            prefix = bytes([arity]) + head
            if bare or arity in variable_heads or any(key.startswith(prefix) for key in keys):
                return None
        relation = views.relation(head, arity)
        if relation is None:
            return None
        constants: dict[int, int] = {}
        variables: dict[int, Variable] = {}
        for column, arg in enumerate(part.children[1:]):
            if type(arg) is Variable:
                variables[column] = arg
            elif is_ground(arg):
                try:
                    raw = encode(arg, terms, intern=False, handles=HandleTable())[0]
                except CodecError:
                    return None
                value = views.value_id(raw)
                if value == NO_VALUE:
                    return False
                constants[column] = value
            else:
                return None  # a nested pattern with variables
        return _Planned(relation, constants, variables)

    def _touched_prefixes(self):
        """None when the working set is empty, else (an unsaved bare variable, the unsaved
        paths, the arities of unsaved atoms with a variable head)."""
        delta = self._working.delta
        if not delta:
            return None
        bare = False
        variable_heads = set()
        for key, change in delta.items():
            if change > 0 and key[:1] == b"\xc0":
                bare = True
            elif change > 0 and len(key) > 1 and key[0] < 0x40 and key[1] == 0xC0:
                variable_heads.add(key[0])
        return bare, list(delta), variable_heads

    def _join_order(self, planned: list[_Planned], order: Sequence[str] | None) -> list[Variable]:
        """The variables in the order the kernel binds them: `order` when given, else greedily
        the one in the smallest pattern (constants narrow a pattern), then, among variables
        sharing a pattern with those already bound, the one with most patterns to intersect."""
        every: list[Variable] = []
        for step in planned:
            for v in step.variables.values():
                if v not in every:
                    every.append(v)
        if order is not None:
            rank = {name: i for i, name in enumerate(order)}
            return sorted(every, key=lambda v: (rank.get(v.name, len(rank)), every.index(v)))
        views = self._join_views()
        for step in planned:
            if step.constants:
                step.size = self._narrowed_size(views, step)
        chosen: list[Variable] = []
        while len(chosen) < len(every):
            best, best_key = None, None
            for v in every:
                if v in chosen:
                    continue
                holders = [s for s in planned if v in s.variables.values()]
                linked = sum(1 for s in holders if any(u in chosen for u in s.variables.values()))
                key = (-min(linked, 1), -linked, min(s.size for s in holders), -len(holders))
                if best_key is None or key < best_key:
                    best, best_key = v, key
            chosen.append(best)
        return chosen

    @staticmethod
    def _narrowed_size(views: JoinViews, step: _Planned) -> int:
        columns = tuple(sorted(step.constants)) + tuple(c for c in range(step.relation.cells.shape[1])
                                                        if c not in step.constants)
        offset, n = views.view(step.relation, columns)[:2]
        arena = views.arena
        lo, hi = 0, n
        for level, column in enumerate(sorted(step.constants)):
            level_values = arena[offset + level * n + lo : offset + level * n + hi]
            value = step.constants[column]
            a, b = np.searchsorted(level_values, [value, value + 1])
            lo, hi = lo + int(a), lo + int(b)
        return hi - lo

    # ---- the kernel ------------------------------------------------------------------------

    def _join_args(self, planned: list[_Planned], var_order: list[Variable]) -> tuple:
        """What the kernel is told about the views and the variables (see trie.leapfrog)."""
        from metta_numba.store.join_split import describe

        position = {v: i for i, v in enumerate(var_order)}
        described = describe(self._join_views(), planned, lambda p, v: position[v], len(var_order))
        smallest = min(len(s.relation) for s in planned)
        return (*described, bool(var_order) and smallest >= PARALLEL_FROM)

    @staticmethod
    def _slices(known: int, threads: int) -> tuple[list[int], list[int]]:
        """Bounds of the first variable's values for each part of a join on several threads:
        more slices than threads even out hubs (the last slice is open-ended)."""
        from metta_numba.trie.leapfrog import BEYOND

        bounds = np.linspace(0, known, threads * SLICES_PER_THREAD + 1).astype(np.int64).tolist()
        bounds[-1] = BEYOND
        return bounds[:-1], bounds[1:]

    def _join_execute(self, args: tuple, limit, want_rows: bool, threads: int):
        from concurrent.futures import ThreadPoolExecutor

        from metta_numba.trie.leapfrog import BEYOND, leapfrog_join

        views = self._join_views()
        arena = views.arena
        *kernel_args, counted, splittable = args

        def run(first_from: int, first_to: int):
            return leapfrog_join(arena, *kernel_args, int(limit or 0), int(want_rows), counted, first_from, first_to)

        known = len(views.values)
        if threads <= 1 or limit or not splittable:
            return run(0, BEYOND)
        # The kernel releases the GIL: threads take slices of the first variable's values.
        with ThreadPoolExecutor(threads) as pool:
            parts_found = list(pool.map(run, *self._slices(known, threads)))
        total = sum(int(found[0]) for found in parts_found)
        rows = np.concatenate([found[1] for found in parts_found])
        mult = np.concatenate([found[2] for found in parts_found])
        return total, rows, mult

    def _split_execute(self, split: tuple, threads: int, limit, want_rows: bool):
        """(answers, a column of value ids per variable of the table, rows) of a split join."""
        from concurrent.futures import ThreadPoolExecutor

        from metta_numba.trie.leapfrog import BEYOND
        from metta_numba.trie.splitrows import split_join

        views = self._join_views()
        arena = views.arena
        kernel_args, n_columns, splittable, _ = split
        known = len(views.values)

        def run(first_from: int, first_to: int):
            return split_join(arena, *kernel_args, known, n_columns, int(want_rows), int(limit or 0), first_from,
                              first_to)

        if threads <= 1 or limit or not splittable:
            total, out, n = run(0, BEYOND)
            return int(total), [out[j, :n] for j in range(n_columns)], int(n)
        with ThreadPoolExecutor(threads) as pool:
            parts_found = list(pool.map(run, *self._slices(known, threads)))
        total = sum(int(found[0]) for found in parts_found)
        if not want_rows:
            return total, [], 0
        columns = [np.concatenate([out[j, :n] for _, out, n in parts_found]) for j in range(n_columns)]
        return total, columns, sum(int(n) for _, _, n in parts_found)

    # ---- decoding and the planner's part ---------------------------------------------------

    def _join_decoder(self):
        views = self._join_views()
        cache = getattr(self, "_join_atoms", None)
        if cache is None or cache[0] is not views:
            cache = self._join_atoms = (views, {})
        atoms = cache[1]

        def decode(ids: list[int]) -> list[Atom | None]:
            out = []
            for i in ids:
                atom = atoms.get(i)
                if atom is None and i != NO_VALUE:
                    atom = atoms[i] = self._value(views.values[i])
                out.append(atom)
            return out

        return decode

    def _join_fallback(self, variables, parts, rows, limit, decoder) -> JoinTable:
        """The rest of the conjunction by the planner, from `rows`, into a table whose values
        are numbered as the KB's (new ones get new ids)."""
        found = match_conjunction(_KBSource(self), parts, rows=rows) if parts else rows
        if limit is not None and limit > 0:
            found = found[:limit]
        views = self._join_views()
        atoms = self._join_atoms[1]
        terms = QueryTerms(self._terms)
        ids = {}
        for v in variables:
            column = np.empty(len(found), np.int64)
            for i, bindings in enumerate(found):
                value = bindings.get(v)
                column[i] = NO_VALUE if value is None else self._intern_atom(views, atoms, terms, value)
            ids[v.name] = column
        return JoinTable(variables, ids, decoder, len(found))

    @staticmethod
    def _intern_atom(views: JoinViews, atoms: dict, terms, value: Atom) -> int:
        try:
            key = encode(value, terms, intern=False, handles=HandleTable())[0]
        except CodecError:
            key = b"\xff" + repr(value).encode()  # no path spells it: a key of its own
        if not is_ground(value):
            key = b"\xfe" + repr(value).encode()  # variable names are part of such a value
        number = views.intern(key)
        atoms.setdefault(number, value)
        return number
