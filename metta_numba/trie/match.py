"""Pattern matching: walk an encoded pattern and the trie together, with variables on both
sides, and collect the ranks of the candidate leaves.

At each term boundary the pattern's next token decides:
- a new pattern variable takes one whole term of the trie: the walk fans out over every edge
  until that term is complete, and records where the binding starts and ends in the path;
- a repeated pattern variable replays the bytes of its first binding as if they were pattern
  bytes. When that binding holds a stored variable, the replay would be wrong (a stored `$a`
  and a later reference to it differ in bytes yet unify), so the reference then takes any
  term instead: a filter, never a loss;
- a ground token is compared byte by byte with the trie, and also meets every stored variable
  at that point: a stored variable takes the whole pattern term (`(f $x)` is found by `(f 3)`).
  Stored references are not tied to their first occurrence here, which is why the result is a
  superset; exact unification of the candidates runs afterwards, in Python.

The walk is one state machine that moves one byte (or takes one decision) per step; the state
is a small int64 array, and a fan-out pushes copies of it on an explicit stack, each with the
edge it is to enter next.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec.kernels import path_error, subterm_end
from metta_numba.jit import njit
from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import StructureType, i64_2d, i64_arr, u8_arr, u8_ro, u64_ro
from metta_numba.trie.scan import (
    TAG_BIG_VAR_REF,
    TAG_NEW_VAR,
    VAR_REF_FIRST,
    count_new_variables,
    is_reference_tag,
    is_variable_tag,
    read_u32,
    scan_step,
    token_payload,
)
from metta_numba.trie.walk import (
    edge_child,
    edge_rank,
    find_edge,
    grown,
    grown_rows,
    lower_bound_edge,
    node_edges,
    node_label,
    trie_bounds,
)

Int = types.int64

STEP_HELPER = dict(cache=True, nogil=True, inline="always")
"""Options of the helpers the walk calls per byte or token. Inlined into the walk, they cost
no call; not inlined, Numba would count a reference to every array they take, per call, which
costs more than their work."""

# State fields.
MODE = 0
NODE = 1  # trie position: a node, its label's place in `labels`, and bytes of it consumed
LABEL_AT = 2
LABEL_LEN = 3
USED = 4
ENTER_EDGE = 5  # an edge of NODE to move along before the next step, or -1
RANK = 6  # rank of the first leaf under NODE
PATH_LEN = 7  # bytes of the trie path so far (kept in `path`, where bindings are read back)
FROM_BINDING = 8  # 1 while replaying a binding instead of reading the pattern
POS = 9  # next source byte (in the pattern, or in `path` when replaying)
BINDING_END = 10
RETURN_POS = 11  # pattern position to resume after a replay
COMPARE_LEFT = 12  # bytes of the current ground token still to compare
OWED = 13  # a trie-term skip: terms still owed, payload bytes left, big arity being read
PAYLOAD_LEFT = 14
BIG_ARITY = 15
SAW_VARIABLE = 16  # the skipped trie term held a stored variable
BIND_VAR = 17  # pattern variable the skip binds, or -1
N_VARS = 18  # pattern variables met so far
N_FIELDS = 19

# Modes.
AT_TERM = 0
COMPARE = 1
SKIP_TERM = 2
ABSORB = 3  # a stored variable takes the source term

# Columns of `bindings`, one row per pattern variable.
START, END, GROUND = 0, 1, 2

# `counters`: saved branches, ranks found, the size a buffer must grow to, and the bytes of
# the found paths written so far (when the walk collects them).
N_FRAMES, N_FOUND, NEEDED, N_OUT = 0, 1, 2, 3

# Why `match_steps` returned.
FINISHED, GROW_PATH, GROW_FRAMES, GROW_FOUND, GROW_OUT = 0, 1, 2, 3, 4
MAX_FAN_OUT = 257
"""Most branches one step saves: one per edge, and a node has at most 256."""

BoundsType = types.UniTuple(types.int64, 3)

# What `source_token` found.
NEXT_STEP = 0
PATTERN_DONE = 1
GROUND_TOKEN = 2


@njit(types.void(i64_arr, Int), **STEP_HELPER)
def start_skip(state, bind_var):
    state[MODE] = SKIP_TERM
    state[OWED] = 1
    state[PAYLOAD_LEFT] = 0
    state[BIG_ARITY] = -1
    state[SAW_VARIABLE] = 0
    state[BIND_VAR] = bind_var


@njit(Int(u8_ro, i64_arr, u8_arr, i64_2d), **STEP_HELPER)
def source_token(pattern, state, path, bindings):
    """At a term boundary, act on the source's next token. Variables of the pattern start a
    skip (binding) or a replay; a ground token is left for the caller to compare."""
    if state[FROM_BINDING] == 1:
        if state[POS] == state[BINDING_END]:
            state[FROM_BINDING] = 0
            state[POS] = state[RETURN_POS]
            return NEXT_STEP
        state[COMPARE_LEFT] = 1 + token_payload(path[state[POS]])
        return GROUND_TOKEN
    if state[POS] == pattern.shape[0]:
        return PATTERN_DONE
    tag = pattern[state[POS]]
    if tag == TAG_NEW_VAR:
        var = state[N_VARS]
        state[N_VARS] += 1
        bindings[var, START] = state[PATH_LEN]
        state[POS] += 1
        start_skip(state, var)
        return NEXT_STEP
    if is_reference_tag(tag):
        if tag == TAG_BIG_VAR_REF:
            var = read_u32(pattern, state[POS] + 1, pattern.shape[0])
        else:
            var = tag - VAR_REF_FIRST
        state[POS] += 1 + token_payload(tag)
        if bindings[var, GROUND] == 1:
            state[RETURN_POS] = state[POS]
            state[FROM_BINDING] = 1
            state[POS] = bindings[var, START]
            state[BINDING_END] = bindings[var, END]
        else:
            start_skip(state, -1)
        return NEXT_STEP
    state[COMPARE_LEFT] = 1 + token_payload(tag)
    return GROUND_TOKEN


@njit(types.void(u8_ro, i64_arr, u8_arr, i64_2d), **STEP_HELPER)
def absorb_source_term(pattern, state, path, bindings):
    """A stored variable faces the source term: pass over the whole term (its new pattern
    variables get no usable binding), then skip the variable's token in the trie."""
    if state[FROM_BINDING] == 1:
        end = subterm_end(path, state[POS], state[BINDING_END])
    else:
        end = subterm_end(pattern, state[POS], pattern.shape[0])
    if end < 0:
        raise CorruptTrieError("a stored term is not well formed")
    if state[FROM_BINDING] == 0:
        n_new = count_new_variables(pattern, state[POS], end)
        for var in range(state[N_VARS], state[N_VARS] + n_new):
            bindings[var, GROUND] = 0
        state[N_VARS] += n_new
    state[POS] = end
    start_skip(state, -1)


@njit(types.void(i64_arr, i64_2d), **STEP_HELPER)
def finish_skip(state, bindings):
    var = state[BIND_VAR]
    if var >= 0:
        bindings[var, END] = state[PATH_LEN]
        bindings[var, GROUND] = 1 - state[SAW_VARIABLE]
    state[MODE] = AT_TERM


@njit(types.boolean(u8_ro, u8_ro, i64_arr, u8_arr, Int), **STEP_HELPER)
def compare_run(labels, source, state, path, n_labels):
    """Match the ground token's bytes in `source` (the pattern, or `path` itself during a
    replay) against the rest of the current label, as far as both go; False on a difference.
    `path` must have room for the label's rest."""
    at = state[LABEL_AT] + state[USED]
    count = min(state[COMPARE_LEFT], state[LABEL_LEN] - state[USED])
    start = state[PATH_LEN]
    if start + count > n_labels:
        raise CorruptTrieError("path longer than all labels")
    pos = state[POS]
    for i in range(count):
        byte = labels[at + i]
        if byte != source[pos + i]:
            return False
        path[start + i] = byte
    state[PATH_LEN] = start + count
    state[USED] += count
    state[POS] = pos + count
    state[COMPARE_LEFT] -= count
    if state[COMPARE_LEFT] == 0:
        state[MODE] = AT_TERM
    return True


@njit(types.boolean(u8_ro, i64_arr, u8_arr, Int), **STEP_HELPER)
def skip_run(labels, state, path, n_labels):
    """Feed the rest of the current label to the trie-term skip, stopping where the term
    ends; False on a byte that is no tag. `path` must have room for the label's rest."""
    at = state[LABEL_AT]
    used = state[USED]
    length = state[LABEL_LEN]
    path_len = state[PATH_LEN]
    if path_len + length - used > n_labels:
        raise CorruptTrieError("path longer than all labels")
    owed = state[OWED]
    payload_left = state[PAYLOAD_LEFT]
    big_arity = state[BIG_ARITY]
    ok = True
    while used < length and (owed > 0 or payload_left > 0):
        byte = labels[at + used]
        path[path_len] = byte
        path_len += 1
        used += 1
        owed, payload_left, big_arity, was_variable, ok = scan_step(byte, owed, payload_left, big_arity)
        if not ok:
            break
        if was_variable:
            state[SAW_VARIABLE] = 1
    state[USED] = used
    state[PATH_LEN] = path_len
    state[OWED] = owed
    state[PAYLOAD_LEFT] = payload_left
    state[BIG_ARITY] = big_arity
    return ok


@njit(types.void(i64_2d, Int, i64_arr, Int, Int), **STEP_HELPER)
def save_branch(frames, n_frames, state, edge, mode):
    """Store a copy of `state` that will move along `edge`, then continue in `mode`."""
    for field in range(N_FIELDS):
        frames[n_frames, field] = state[field]
    frames[n_frames, ENTER_EDGE] = edge
    frames[n_frames, MODE] = mode


@njit(types.void(i64_2d, Int, i64_arr), **STEP_HELPER)
def restore_branch(frames, n_frames, state):
    for field in range(N_FIELDS):
        state[field] = frames[n_frames, field]


@njit(types.UniTuple(Int, 3)(u8_ro, Int, Int), **STEP_HELPER)
def variable_edges(first_byte, first, end):
    """(edge starting with a big reference or -1, lo, hi): the edges in [first, end) whose
    label starts a stored variable. References 0x80..0xBF and the new-variable tag 0xC0 make
    one run [lo, hi) of first bytes."""
    big_ref = find_edge(first_byte, first, end, TAG_BIG_VAR_REF)
    lo = lower_bound_edge(first_byte, first, end, VAR_REF_FIRST)
    hi = lower_bound_edge(first_byte, lo, end, TAG_NEW_VAR + 1)
    return big_ref, lo, hi


@njit(types.UniTuple(Int, 2)(u64_ro, Int, Int, Int), **STEP_HELPER)
def fan_out_edges(child_start, n_nodes, n_edges, node):
    """`node_edges`, for a step that saves a branch per edge: the frames hold MAX_FAN_OUT
    more, and a sound node has at most 256 edges (distinct first bytes)."""
    first, end = node_edges(child_start, n_nodes, n_edges, node)
    if end - first >= MAX_FAN_OUT:
        raise CorruptTrieError("a node with more than 256 edges")
    return first, end


@njit(Int(i64_arr, Int, Int, Int, Int), cache=True, nogil=True)
def need(counters, n_frames, n_found, what, size):
    counters[N_FRAMES] = n_frames
    counters[N_FOUND] = n_found
    counters[NEEDED] = size
    return what


@njit(
    Int(
        *(u8_ro, u64_ro, u8_ro, u64_ro, u64_ro, u8_ro, u64_ro, BoundsType, Int),
        *(u8_ro, i64_arr, i64_2d, i64_2d, u8_arr, i64_arr, i64_arr, u8_arr, i64_arr, types.boolean),
    ),
    cache=True,
    nogil=True,
)
def match_steps(
    labels, label_off, label_len, child_start, children, first_byte, rank_offset, bounds, n_leaves,
    pattern, state, bindings, frames, path, found, counters, out, ends, collect,
):
    """Run the walk until it ends or a buffer is full; returns FINISHED or what to grow. With
    `collect`, each found leaf's path (in `path` when the walk reaches it) is appended to
    `out`, and `ends` gets where it ends there.

    No array is reassigned in here: Numba would count references to a reassigned array on
    every turn of the loop, which costs more than the step itself. `match_walk` grows the
    buffers and calls again; the step that asked for room then runs from the start."""
    n_nodes, n_edges, n_labels = bounds
    n_frames = counters[N_FRAMES]
    n_found = counters[N_FOUND]
    while True:
        # A step saves at most one branch per edge, yields at most one rank and consumes at
        # most the rest of the current label: make room before the step changes anything.
        if n_frames + MAX_FAN_OUT > frames.shape[0]:
            return need(counters, n_frames, n_found, GROW_FRAMES, n_frames + MAX_FAN_OUT)
        if n_found == found.shape[0] or (collect and n_found == ends.shape[0]):
            return need(counters, n_frames, n_found, GROW_FOUND, n_found + 1)
        alive = True
        edge = state[ENTER_EDGE]
        if edge >= 0:
            child = edge_child(children, n_nodes, state[NODE], edge)
            state[RANK] += edge_rank(rank_offset, edge)
            state[LABEL_AT], state[LABEL_LEN] = node_label(label_off, label_len, n_nodes, n_labels, child)
            state[NODE] = child
            state[USED] = 0
            state[ENTER_EDGE] = -1
        room = state[PATH_LEN] + state[LABEL_LEN] - state[USED] + 1
        if room > path.shape[0]:
            return need(counters, n_frames, n_found, GROW_PATH, room)
        in_label = state[USED] < state[LABEL_LEN]
        mode = state[MODE]

        if mode == COMPARE:
            from_binding = state[FROM_BINDING] == 1
            if in_label:
                if from_binding:
                    alive = compare_run(labels, path, state, path, n_labels)
                else:
                    alive = compare_run(labels, pattern, state, path, n_labels)
            else:
                wanted = path[state[POS]] if from_binding else pattern[state[POS]]
                first, end = node_edges(child_start, n_nodes, n_edges, state[NODE])
                state[ENTER_EDGE] = find_edge(first_byte, first, end, wanted)
                alive = state[ENTER_EDGE] >= 0

        elif mode == SKIP_TERM:
            if state[OWED] == 0 and state[PAYLOAD_LEFT] == 0:
                finish_skip(state, bindings)
            elif in_label:
                alive = skip_run(labels, state, path, n_labels)
            else:
                # Every edge continues the term; saved last-first so they run in byte order.
                first, end = fan_out_edges(child_start, n_nodes, n_edges, state[NODE])
                for other in range(end - 1, first, -1):
                    save_branch(frames, n_frames, state, other, SKIP_TERM)
                    n_frames += 1
                state[ENTER_EDGE] = first if first < end else -1
                alive = first < end

        elif mode == AT_TERM:
            found_token = source_token(pattern, state, path, bindings)
            if found_token == PATTERN_DONE:
                first, end = node_edges(child_start, n_nodes, n_edges, state[NODE])
                if not in_label and first == end:
                    # Distinct branches follow distinct root-to-leaf paths, so a sound trie
                    # yields each rank once: more results than leaves means corrupt arrays.
                    if state[RANK] >= n_leaves or n_found >= n_leaves:
                        raise CorruptTrieError("rank offsets disagree with the leaves")
                    if collect:
                        start = counters[N_OUT]
                        length = state[PATH_LEN]
                        if start + length > out.shape[0]:
                            return need(counters, n_frames, n_found, GROW_OUT, start + length)
                        out[start : start + length] = path[:length]
                        counters[N_OUT] = start + length
                        ends[n_found] = start + length
                    found[n_found] = state[RANK]
                    n_found += 1
                alive = False
            elif found_token == GROUND_TOKEN:
                if in_label:
                    next_byte = labels[state[LABEL_AT] + state[USED]]
                    state[MODE] = ABSORB if is_variable_tag(next_byte) else COMPARE
                else:
                    # Stored variables below this node take the whole source term.
                    first, end = fan_out_edges(child_start, n_nodes, n_edges, state[NODE])
                    big_ref, lo, hi = variable_edges(first_byte, first, end)
                    if big_ref >= 0:
                        save_branch(frames, n_frames, state, big_ref, ABSORB)
                        n_frames += 1
                    for edge in range(lo, hi):
                        save_branch(frames, n_frames, state, edge, ABSORB)
                        n_frames += 1
                    state[MODE] = COMPARE

        else:  # ABSORB
            absorb_source_term(pattern, state, path, bindings)

        if not alive:
            if n_frames == 0:
                return need(counters, n_frames, n_found, FINISHED, 0)
            n_frames -= 1
            restore_branch(frames, n_frames, state)


@njit(types.Tuple((i64_arr, u8_arr, i64_arr))(StructureType, u8_ro, Int, types.boolean), cache=True, nogil=True)
def match_walk(trie, pattern, n_leaves, collect):
    """The walk over the whole trie: (ranks of the stored paths that may unify with the encoded
    `pattern`, unordered; empty data and offsets). With `collect`: (those ranks in ascending
    order, their paths as one batch data, offsets), read as the walk passes each leaf."""
    labels, label_off, label_len, child_start, children, first_byte, rank_offset = trie
    bounds = trie_bounds(trie)
    n_nodes, n_edges, n_labels = bounds
    if path_error(pattern, 0, pattern.shape[0]) >= 0:
        raise ValueError("the pattern is not one well-formed encoded atom")
    bindings = np.zeros((count_new_variables(pattern, 0, pattern.shape[0]), 3), np.int64)
    state = np.zeros(N_FIELDS, np.int64)
    state[BIG_ARITY] = -1
    state[BIND_VAR] = -1
    state[ENTER_EDGE] = -1
    state[LABEL_AT], state[LABEL_LEN] = node_label(label_off, label_len, n_nodes, n_labels, 0)
    frames = np.empty((2 * MAX_FAN_OUT, N_FIELDS), np.int64)
    path = np.empty(256, np.uint8)
    found = np.empty(16, np.int64)
    out = np.empty(1024 if collect else 0, np.uint8)
    ends = np.empty(16 if collect else 0, np.int64)
    counters = np.zeros(4, np.int64)
    while True:
        grow = match_steps(
            labels, label_off, label_len, child_start, children, first_byte, rank_offset, bounds, n_leaves,
            pattern, state, bindings, frames, path, found, counters, out, ends, collect,
        )
        if grow == FINISHED:
            break
        if grow == GROW_PATH:
            path = grown(path, counters[NEEDED])
        elif grow == GROW_FRAMES:
            frames = grown_rows(frames, counters[NEEDED])
        elif grow == GROW_OUT:
            out = grown(out, counters[NEEDED])
        else:
            found = grown(found, counters[NEEDED])
            if collect:
                ends = grown(ends, counters[NEEDED])
    n = counters[N_FOUND]
    if not collect:
        return found[:n].copy(), out, ends
    # The paths in rank order: usually the walk's own order already.
    offsets = np.zeros(n + 1, np.int64)
    offsets[1:] = ends[:n]
    ascending = True
    for i in range(1, n):
        if found[i] < found[i - 1]:
            ascending = False
            break
    if ascending:
        return found[:n].copy(), out[: offsets[n]].copy(), offsets
    order = np.argsort(found[:n], kind="mergesort")
    data = np.empty(offsets[n], np.uint8)
    sorted_offsets = np.zeros(n + 1, np.int64)
    at = 0
    for k in range(n):
        i = order[k]
        length = offsets[i + 1] - offsets[i]
        data[at : at + length] = out[offsets[i] : offsets[i + 1]]
        at += length
        sorted_offsets[k + 1] = at
    return found[order], data, sorted_offsets


def match_ranks(trie: tuple, pattern: np.ndarray, n_leaves: int) -> np.ndarray:
    """Ranks of the stored paths that may unify with the encoded `pattern` (unordered)."""
    return match_walk(trie, pattern, n_leaves, False)[0]


def match_paths(trie: tuple, pattern: np.ndarray, n_leaves: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ranks ascending, data, offsets) of the stored paths that may unify with `pattern`."""
    return match_walk(trie, pattern, n_leaves, True)
