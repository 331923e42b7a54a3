"""The in-memory space: multiset semantics, insertion order, two-sided queries and indexes.

The property tests compare `GroundingSpace.query` with a reference model: a plain list of the
stored atoms, scanned in order, each unified with the pattern after renaming it apart.
"""

from hypothesis import given
from hypothesis import strategies as st

from metta_numba.atoms import E, Expression, G, S, V, Variable, alpha_equal
from metta_numba.space import GroundingSpace, Rule
from metta_numba.syntax.parser import parse_atom
from metta_numba.unify import rename_apart, substitute, unify


def atom(text):
    return parse_atom(text)


def results(space, pattern_text, template_text=None):
    pattern = atom(pattern_text)
    template = atom(template_text) if template_text else pattern
    return [repr(substitute(template, b)) for b in space.query(pattern)]


# -- multiset and order -----------------------------------------------------------------------------


def test_adding_twice_keeps_two_copies_and_remove_drops_one():
    space = GroundingSpace()
    space.add(atom("(fact a)"))
    space.add(atom("(fact a)"))
    assert space.count() == 2
    assert results(space, "(fact $x)", "$x") == ["a", "a"]
    assert space.remove(atom("(fact a)")) is True
    assert results(space, "(fact $x)", "$x") == ["a"]
    assert space.remove(atom("(fact a)")) is True
    assert space.remove(atom("(fact a)")) is False
    assert space.count() == 0


def test_remove_takes_the_earliest_copy_and_keeps_order_of_the_rest():
    space = GroundingSpace([atom("(p 1)"), atom("(q 1)"), atom("(p 1)"), atom("(r 1)")])
    space.remove(atom("(p 1)"))
    assert [repr(a) for a in space.atoms()] == ["(q 1)", "(p 1)", "(r 1)"]


def test_remove_needs_an_equal_atom_not_a_unifying_one():
    space = GroundingSpace([atom("(p $x)")])
    assert space.remove(atom("(p a)")) is False
    assert space.remove(atom("(p $y)")) is False
    assert space.remove(atom("(p $x)")) is True


def test_atoms_in_insertion_order():
    texts = ["(b 1)", "a", "(a 2)", '"s"', "(b 0)", "$v", "(c (d e))"]
    space = GroundingSpace([atom(t) for t in texts])
    assert [repr(a) for a in space.atoms()] == texts


def test_answers_share_leading_parts_in_first_insertion_order():
    space = GroundingSpace([atom(t) for t in ["(edge a b)", "(edge b c)", "(edge a d)", "(edge $x e)"]])
    # A constant in the pattern: its exact child first, then stored variables.
    assert results(space, "(edge a $y)", "$y") == ["b", "d", "e"]
    # A variable in the pattern: stored variables first, then the other tokens in the order
    # they first appeared; atoms sharing a prefix come together.
    assert results(space, "(edge $x $y)", "($x $y)") == ["($x e)", "(a b)", "(a d)", "(b c)"]
    assert [repr(a) for a in space.listing()] == ["(edge $x e)", "(edge a b)", "(edge a d)", "(edge b c)"]


def test_flat_and_nested_answers_sort_together():
    texts = ["(edge (f) c)", "(edge a b)", "(edge $v e)", "(edge a d)", "(edge (g 1) h)"]
    space = GroundingSpace([atom(t) for t in texts])
    # Expressions share one opening token, so (f) and (g 1) come together (as in hyperon 0.2.6).
    assert results(space, "(edge $x $y)", "($x $y)") == ["($x e)", "((f) c)", "((g 1) h)", "(a b)", "(a d)"]
    assert results(space, "(edge a $y)", "$y") == ["b", "d", "e"]


def test_strings_are_keyed_like_symbols():
    # Orders printed by hyperon 0.2.10 for this space (0.2.6 put strings beside the variables).
    texts = ['(h "x" 1)', "(h a 2)", "(h $v 3)", '(h "y" 4)', '(e 5 1)', "(e a 2)", '(e "s" 3)', "(e 2 4)"]
    space = GroundingSpace([atom(t) for t in texts])
    assert results(space, "(h a $n)", "$n") == ["2", "3"]
    assert results(space, "(e $k $n)", "$n") == ["1", "2", "3", "4"]
    assert results(space, '(h "y" $n)', "$n") == ["4", "3"]
    more = GroundingSpace([atom(t) for t in ['(h "x" 1)', "(h $v 3)", '(h "x" 5)']])
    assert results(more, '(h "x" $n)', "$n") == ["1", "5", "3"]


def test_a_removed_group_comes_back_last_a_thinned_one_keeps_its_place():
    space = GroundingSpace([atom(t) for t in ["(x 1)", "(x 2)", "(x 1)"]])
    assert results(space, "(x $v)", "$v") == ["1", "1", "2"]
    space.remove(atom("(x 1)"))
    space.add(atom("(x 1)"))
    assert results(space, "(x $v)", "$v") == ["1", "1", "2"]
    space.remove(atom("(x 1)"))
    space.remove(atom("(x 1)"))
    space.add(atom("(x 1)"))
    assert results(space, "(x $v)", "$v") == ["2", "1"]


# -- two-sided unification ----------------------------------------------------------------------------


def test_stored_variables_match_and_are_renamed_apart():
    space = GroundingSpace([atom("(= (h $x $y) ($x $y))")])
    found = space.query(atom("(= (h $y 1) $r)"))
    assert len(found) == 1
    value = substitute(V("r"), found[0])
    # The query's own $y keeps its name; the stored $y was renamed, so they do not clash.
    assert repr(value) == "($y 1)"


def test_query_variable_meeting_stored_variable_keeps_the_query_name():
    space = GroundingSpace([atom("(foo $a)"), atom("(foo b)")])
    assert results(space, "(foo $x)", "$x") == ["$x", "b"]


def test_repeated_variables_constrain_both_sides():
    space = GroundingSpace([atom("(same $z $z)"), atom("(pair 1 2)"), atom("(pair 3 3)")])
    assert results(space, "(pair $q $q)", "$q") == ["3"]
    assert results(space, "(same 1 $w)", "$w") == ["1"]
    assert results(space, "(same 1 2)") == []


def test_grounded_values_match_by_value_numbers_across_int_and_float():
    space = GroundingSpace([E("n", G(1)), E("n", G(1.0)), E("n", G(True)), E("n", G("1")), E("n", G(2.5))])
    # An integer and a float of one value are the same number (hyperon); a Bool or a String
    # of the same text is not.
    assert len(space.query(atom("(n 1)"))) == 2
    assert len(space.query(atom("(n 1.0)"))) == 2
    assert len(space.query(atom('(n "1")'))) == 1
    assert len(space.query(atom("(n True)"))) == 1
    assert len(space.query(atom("(n 2.5)"))) == 1
    assert space.query(atom("(n 2)")) == []
    assert sorted(results(space, "(n $x)", "$x")) == ['"1"', "1", "1.0", "2.5", "True"]


def test_a_stored_bare_variable_matches_every_pattern():
    space = GroundingSpace([atom("(p 1)"), V("any"), atom("q")])
    assert len(space.query(atom("(p 1)"))) == 2
    assert len(space.query(atom("q"))) == 2
    assert len(space.query(atom("(r 2 3)"))) == 1


def test_empty_expression_and_symbols():
    space = GroundingSpace([atom("()"), atom("(())"), atom("x")])
    assert results(space, "()") == ["()"]
    assert results(space, "(())") == ["(())"]
    assert results(space, "x") == ["x"]
    assert results(space, "y") == []


def test_occurs_check_rejects_cyclic_bindings():
    space = GroundingSpace([atom("(loop $x $x)")])
    assert results(space, "(loop $y (f $y))") == []


# -- indexes ------------------------------------------------------------------------------------------


def test_ground_argument_queries_look_only_at_their_posting_list():
    space = GroundingSpace()
    for i in range(2000):
        space.add(E("edge", S(f"n{i % 50}"), S(f"n{i}")))
    space.add(atom("(edge $any target)"))
    # The index narrows to the atoms that share a ground argument (and stored variables there).
    assert len(space._ids_for(atom("(edge n7 $y)"))) == 40 + 1
    assert len(space._ids_for(atom("(edge $x n1234)"))) == 1 + 0
    assert len(space._ids_for(atom("(edge $x target)"))) == 1
    assert results(space, "(edge $x n1234)", "$x") == ["n34"]


def test_expression_arguments_are_indexed_by_head_and_arity():
    space = GroundingSpace(
        [atom("(= (fib $n) body)"), atom("(= (fact $n) other)"), atom("(= (fib 0 1) two)"), atom("(: fib T)")]
    )
    assert len(space._ids_for(atom("(= (fib 5) $r)"))) == 1
    assert results(space, "(= (fib 5) $r)", "$r") == ["body"]


def test_compaction_after_many_removals_keeps_answers():
    space = GroundingSpace()
    for i in range(3000):
        space.add(E("k", G(i % 7), G(i)))
    for i in range(2500):
        assert space.remove(E("k", G(i % 7), G(i)))
    assert space.count() == 500
    assert results(space, "(k 3 $v)", "$v") == [str(i) for i in range(2500, 3000) if i % 7 == 3]


# -- rules and types ------------------------------------------------------------------------------------


def test_rules_candidates_by_call_shape_and_cache_invalidation():
    space = GroundingSpace([atom("(= (f $x) one)"), atom("(= (g $x) two)"), atom("(= $any three)")])
    rules = space.rules_candidates(atom("(f 1)"))
    assert [repr(r.rhs) for r in rules] == ["one", "three"]
    space.add(atom("(= (f 2) four)"))
    assert [repr(r.rhs) for r in space.rules_candidates(atom("(f 1)"))] == ["one", "three", "four"]
    space.remove(atom("(= (f $x) one)"))
    assert [repr(r.rhs) for r in space.rules_candidates(atom("(f 1)"))] == ["three", "four"]


def test_rule_knows_its_variables():
    rule = Rule(atom("(= (mk $x) (pair $x $fresh))"))
    assert not rule.lhs_ground
    assert rule.rhs_only == [V("fresh")]


def test_declared_types_and_supertypes_with_invalidation():
    space = GroundingSpace([atom("(: x A)"), atom("(:< A B)")])
    assert space.declared_types(S("x")) == [S("A")]
    assert space.supertypes(S("A")) == [S("B")]
    space.add(atom("(: x C)"))
    assert space.declared_types(S("x")) == [S("A"), S("C")]
    space.remove(atom("(: x A)"))
    assert space.declared_types(S("x")) == [S("C")]


# -- property: the indexed query equals a reference trie walk ------------------------------------------
#
# The reference model keeps hyperon's trie literally: nested dicts, one per prefix, children in
# insertion order, variables and strings apart from the other tokens, emptied children deleted.
# An expression is an opening token, its elements and a closing token. A query walks the trie as
# hyperon does, yielding stored atoms in answer order; those that really unify with the pattern
# are the expected answers.

_OPEN = ("(",)
_CLOSE = (")",)


def _tokens(a):
    if type(a) is Expression:
        out = [_OPEN]
        for child in a.children:
            out.extend(_tokens(child))
        return out + [_CLOSE]
    return [a]


def _by_unification(token):
    return type(token) is Variable  # strings are keyed by value, as in hyperon 0.2.10


def _node():
    return {"var": {}, "eq": {}, "count": 0, "leaf": 0}


class ReferenceTrie:
    def __init__(self):
        self.root = _node()

    def add(self, a):
        node = self.root
        for token in _tokens(a):
            group = node["var" if _by_unification(token) else "eq"]
            child = group.setdefault(token, _node())
            child["count"] += 1
            node = child
        node["leaf"] += 1

    def remove(self, a):
        node = self.root
        for token in _tokens(a):
            group = node["var" if _by_unification(token) else "eq"]
            child = group[token]
            child["count"] -= 1
            if child["count"] == 0:
                del group[token]
            node = child
        node["leaf"] -= 1

    @staticmethod
    def _subterms(node, depth=0):
        """(tokens, node after them) of each complete subterm below node, depth first,
        the unification group before the other tokens."""
        for group in ("var", "eq"):
            for token, child in node[group].items():
                inner = depth + (1 if token == _OPEN else -1 if token == _CLOSE else 0)
                if inner == 0:
                    yield [token], child
                else:
                    for rest, end in ReferenceTrie._subterms(child, inner):
                        yield [token] + rest, end

    def _walk(self, node, query, i):
        if i == len(query):
            yield [], node
            return
        wanted = query[i]
        if _by_unification(wanted):
            for tokens, end in self._subterms(node):
                for rest, last in self._walk(end, query, i + 1):
                    yield tokens + rest, last
            return
        child = node["eq"].get(wanted)
        if child is not None:
            for rest, last in self._walk(child, query, i + 1):
                yield [wanted] + rest, last
        if wanted == _CLOSE:
            return
        skip = _subterm_end(query, i)  # a stored variable takes the whole pattern subterm
        for token, child in node["var"].items():
            for rest, last in self._walk(child, query, skip):
                yield [token] + rest, last

    def answers(self, pattern):
        out = []
        for tokens, end in self._walk(self.root, _tokens(pattern), 0):
            out.extend([_rebuild(tokens)] * end["leaf"])
        return out


def _subterm_end(tokens, i):
    depth = 0
    while True:
        token = tokens[i]
        depth += 1 if token == _OPEN else -1 if token == _CLOSE else 0
        i += 1
        if depth == 0:
            return i


def _rebuild(tokens):
    stack = [[]]
    for token in tokens:
        if token == _OPEN:
            stack.append([])
        elif token == _CLOSE:
            done = Expression(stack.pop())
            stack[-1].append(done)
        else:
            stack[-1].append(token)
    return stack[0][0]


_names = st.sampled_from(["a", "b", "c", "f", "g"])
_vars = st.sampled_from(["x", "y", "z"]).map(V)
_leaf = st.one_of(_names.map(S), _vars, st.integers(0, 2).map(G), st.sampled_from(["s", "t"]).map(G))
_atoms = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, min_size=0, max_size=3).map(Expression),
    max_leaves=8,
)


@given(st.lists(_atoms, max_size=25), _atoms, st.lists(st.integers(0, 30), max_size=6))
def test_indexed_query_matches_the_reference_trie(stored, pattern, removals):
    space = GroundingSpace(stored)
    model = list(stored)
    trie = ReferenceTrie()
    for a in stored:
        trie.add(a)
    for index in removals:
        if model:
            victim = model[index % len(model)]
            assert space.remove(victim)
            model.remove(victim)  # list.remove drops the first equal item, as the space does
            trie.remove(victim)
    expected = []
    for candidate in trie.answers(pattern):
        bindings = unify(rename_apart(candidate), pattern)
        if bindings is not None:
            expected.append(substitute(pattern, bindings))
    found = [substitute(pattern, b) for b in space.query(pattern)]
    assert len(found) == len(expected)
    for got, want in zip(found, expected):
        assert alpha_equal(got, want)
    assert sorted(map(repr, space.atoms())) == sorted(map(repr, model))
