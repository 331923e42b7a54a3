"""Numba kernels of the bulk reader: MeTTa source bytes -> encoded paths in one pass.

The grammar is the one of `syntax.parser` and the bytes are those of `codec.atom_codec`; the
wrapper in `syntax.bulk` owns the Python side (term interning, slow floats, error messages).

What the kernel cannot finish on its own it leaves as provisional data:
- strings, long symbols and variable-name lists are deduplicated in a kernel hash table and
  numbered in order of first occurrence; the path holds that provisional number as its 8-byte
  id, and `text_patch` lists where, so the wrapper can rewrite them with term-store ids;
- a float that the exact fast path cannot convert gets 8 zero bytes and a `float_patch` entry
  (out position, token start, token end) for the wrapper to convert with Python's `float`.

The hot loop (`encode_span`) never reallocates: when a buffer is full it rolls back to the
start of the atom it was reading and stops, and `encode_kernel` grows that buffer and resumes.
Keeping reallocation out of the loop keeps reference counting out of it, which triples speed.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.codec import tags
from metta_numba.jit import njit
from metta_numba.syntax.bulk_lexer import (
    BOOL_T,
    BYTE_CLASS,
    CLOSE,
    ERR_INT_OVERFLOW,
    ERR_NONE,
    ERR_TOO_DEEP,
    ERR_UNCLOSED_PAREN,
    ERR_UNEXPECTED_CLOSE,
    I64_T,
    INT_T,
    NEED_ROOM,
    OPEN,
    SEMICOLON,
    SRC_T,
    U8_T,
    U64_T,
    classify_number,
    fast_float,
    float_key,
    grown,
    hash_bytes,
    int_key,
    is_word,
    put_big_endian,
    read_string,
    same_source_bytes,
    skip_space,
    space_length,
    token_end,
)

# Fields of the `state` array that `encode_span` resumes from and reports into.
POS, OUT_POS, N_ATOMS, SIDE_TAIL, N_TEXTS, N_TEXT_PATCH, N_FLOAT_PATCH = range(7)
STATUS, ERR_POS, ERR_END, NEED, NEED_SIZE = range(7, 12)
STATE_SIZE = 12

# Which buffer a NEED_ROOM stop asks to grow (state[NEED]); state[NEED_SIZE] is the size needed.
ROOM_OUT, ROOM_ATOMS, ROOM_SIDE, ROOM_TEXTS, ROOM_TEXT_PATCH, ROOM_FLOAT_PATCH, ROOM_VARS = range(7)

# Room reserved in the output before each token: the longest one is a 63-byte symbol.
_TOKEN_ROOM = 1 + tags.SYMBOL_SHORT_MAX + 8


@njit(INT_T(U8_T, INT_T, I64_T, I64_T, U64_T, I64_T, I64_T), cache=True, nogil=True, inline="always")
def intern_text(side, length, text_start, text_length, text_hash, slots, state):
    """Id of the text of `length` bytes at the tail of `side` (state[SIDE_TAIL]). A new text
    gets the next id and the tail moves past it; a known one leaves the tail where it is.
    -1 when the table is too full to add one (grow it and retry)."""
    count = state[N_TEXTS]
    tail = state[SIDE_TAIL]
    if count + 1 > text_start.size or 2 * (count + 1) > slots.size:
        return -1
    text_hash_value = hash_bytes(side, tail, length)
    mask = slots.size - 1
    slot = np.int64(text_hash_value & np.uint64(mask))
    while slots[slot] >= 0:
        found = slots[slot]
        if text_hash[found] == text_hash_value and text_length[found] == length:
            other = text_start[found]
            same = True
            for k in range(length):
                if side[other + k] != side[tail + k]:
                    same = False
                    break
            if same:
                return found
        slot = (slot + 1) & mask
    slots[slot] = count
    text_start[count] = tail
    text_length[count] = length
    text_hash[count] = text_hash_value
    state[N_TEXTS] = count + 1
    state[SIDE_TAIL] = tail + length
    return count


@njit(I64_T(U64_T, INT_T, INT_T), cache=True, nogil=True)
def rehashed(hashes, count, capacity):
    """A fresh open-addressing slot table of `capacity` (a power of two) for the first `count` hashes."""
    slots = np.full(capacity, -1, np.int64)
    mask = capacity - 1
    for item in range(count):
        slot = np.int64(hashes[item] & np.uint64(mask))
        while slots[slot] >= 0:
            slot = (slot + 1) & mask
        slots[slot] = item
    return slots


_SPAN_ARGS = (SRC_T, INT_T, INT_T, I64_T, U8_T, I64_T, BOOL_T, I64_T, U8_T, I64_T, I64_T, U64_T, I64_T)
_SPAN_ARGS += (I64_T, I64_T, I64_T, I64_T, U64_T, I64_T, I64_T, I64_T, I64_T, I64_T, U64_T)


# `_nrt=False` compiles the loop without reference counting: it allocates nothing, and the
# inlined helpers would otherwise pay an atomic increment and decrement per call on `src`.
@njit(types.void(*_SPAN_ARGS), cache=True, nogil=True, _nrt=False)
def encode_span(
    src, max_depth, last_quote, state, out, offsets, is_query, names, side,
    text_start, text_length, text_hash, text_slots, text_patch, float_patch,
    var_start, var_length, var_hash, var_slot, var_slots, header_at, child_count, opened_at, scratch,
):  # fmt: skip
    """Encode top-level atoms from state[POS] on, until the end, an error or a full buffer."""
    n = src.size
    pos = state[POS]
    out_pos = state[OUT_POS]
    n_atoms = state[N_ATOMS]
    n_text_patch = state[N_TEXT_PATCH]
    n_float_patch = state[N_FLOAT_PATCH]
    n_vars = 0
    depth = 0
    status = ERR_NONE
    err_pos = 0
    err_end = 0
    need = -1
    need_size = 0
    # Where the atom being read began, to roll back to when a buffer is full.
    atom_pos = pos
    atom_out = out_pos
    atom_text_patch = n_text_patch
    atom_float_patch = n_float_patch
    while True:
        pos = skip_space(src, pos)
        if pos >= n:
            if depth > 0:
                status = ERR_UNCLOSED_PAREN
                err_pos = opened_at[depth - 1]
            break
        byte = src[pos]
        if depth == 0:
            atom_pos = pos
            atom_out = out_pos
            atom_text_patch = n_text_patch
            atom_float_patch = n_float_patch
            # A `!` standing alone (before a parenthesis, `;`, space or the end) marks a query.
            query = False
            if byte == 33:
                if pos + 1 >= n:
                    query = True
                else:
                    follower = BYTE_CLASS[src[pos + 1]]
                    query = follower == OPEN or follower == CLOSE or follower == SEMICOLON
                    query = query or space_length(src, pos + 1) > 0
                if query:
                    pos = skip_space(src, pos + 1)
                    if pos >= n:
                        break
                    byte = src[pos]
            if byte == 41:  # )
                status = ERR_UNEXPECTED_CLOSE
                err_pos = pos
                break
            if n_atoms + 1 >= is_query.size or n_atoms + 2 > offsets.size or n_atoms + 1 > names.size:
                need = ROOM_ATOMS
                need_size = n_atoms + 2
                break
            is_query[n_atoms] = query
        if out_pos + _TOKEN_ROOM > out.size:
            need = ROOM_OUT
            need_size = out_pos + _TOKEN_ROOM
            break
        if byte == 40:  # (
            if depth >= max_depth:
                status = ERR_TOO_DEEP
                err_pos = pos
                break
            if depth > 0:
                child_count[depth - 1] += 1
            header_at[depth] = out_pos
            child_count[depth] = 0
            opened_at[depth] = pos
            out_pos += 1
            depth += 1
            pos += 1
            continue
        if byte == 41:  # ) closing an open expression
            depth -= 1
            pos += 1
            arity = child_count[depth]
            header = header_at[depth]
            if arity <= tags.ARITY_SHORT_MAX:
                out[header] = arity
            else:
                # Rare: the header grows to 5 bytes, so the children move right by 4.
                for k in range(out_pos - 1, header, -1):
                    out[k + 4] = out[k]
                out[header] = tags.TAG_BIG_ARITY
                put_big_endian(out, header + 1, np.uint64(arity), 4)
                out_pos += 4
                k = n_text_patch - 1
                while k >= atom_text_patch and text_patch[k] > header:
                    text_patch[k] += 4
                    k -= 1
                k = n_float_patch - 1
                while k >= atom_float_patch and float_patch[3 * k] > header:
                    float_patch[3 * k] += 4
                    k -= 1
        else:
            if depth > 0:
                child_count[depth - 1] += 1
            text_length_now = -1  # a string or long symbol: the length of its text in `side`
            if byte == 34:  # "
                status, after, length = read_string(src, pos, last_quote, side, state[SIDE_TAIL])
                if status == NEED_ROOM:
                    status = ERR_NONE
                    need = ROOM_SIDE
                    need_size = length
                    break
                if status != ERR_NONE:
                    err_pos = after
                    break
                pos = after
                text_length_now = length
                out[out_pos] = tags.TAG_STRING
            elif byte == 36:  # $
                name_start = pos + 1
                pos = token_end(src, name_start, False)
                length = pos - name_start
                name_hash = hash_bytes(src, name_start, length)
                mask = var_slots.size - 1
                slot = np.int64(name_hash & np.uint64(mask))
                index = -1
                while var_slots[slot] >= 0:
                    other = var_slots[slot]
                    if var_hash[other] == name_hash and var_length[other] == length:
                        if same_source_bytes(src, var_start[other], name_start, length):
                            index = other
                            break
                    slot = (slot + 1) & mask
                if index < 0:
                    if n_vars + 1 > var_start.size or 2 * (n_vars + 1) > var_slots.size:
                        need = ROOM_VARS
                        need_size = n_vars + 1
                        break
                    var_slots[slot] = n_vars
                    var_start[n_vars] = name_start
                    var_length[n_vars] = length
                    var_hash[n_vars] = name_hash
                    var_slot[n_vars] = slot
                    n_vars += 1
                    out[out_pos] = tags.TAG_NEW_VAR
                    out_pos += 1
                elif index <= tags.VAR_REF_SHORT_MAX:
                    out[out_pos] = tags.TAG_VAR_REF | index
                    out_pos += 1
                else:
                    out[out_pos] = tags.TAG_BIG_VAR_REF
                    put_big_endian(out, out_pos + 1, np.uint64(index), 4)
                    out_pos += 5
            else:
                start = pos
                pos = token_end(src, start, True)
                length = pos - start
                kind = classify_number(src, start, pos)
                if kind == 1:
                    fits, key = int_key(src, start, pos)
                    if not fits:
                        status = ERR_INT_OVERFLOW
                        err_pos = start
                        err_end = pos
                        break
                    out[out_pos] = tags.TAG_INT
                    put_big_endian(out, out_pos + 1, key, 8)
                    out_pos += 9
                elif kind == 2:
                    exact, value = fast_float(src, start, pos)
                    if exact:
                        put_big_endian(out, out_pos + 1, float_key(value, scratch), 8)
                    else:
                        if 3 * (n_float_patch + 1) > float_patch.size:
                            need = ROOM_FLOAT_PATCH
                            need_size = 3 * (n_float_patch + 1)
                            break
                        float_patch[3 * n_float_patch] = out_pos + 1
                        float_patch[3 * n_float_patch + 1] = start
                        float_patch[3 * n_float_patch + 2] = pos
                        n_float_patch += 1
                        put_big_endian(out, out_pos + 1, np.uint64(0), 8)
                    out[out_pos] = tags.TAG_FLOAT
                    out_pos += 9
                elif length == 4 and is_word(src, start, 84, 114, 117, 101, 0):  # True
                    out[out_pos] = tags.TAG_BOOL
                    out[out_pos + 1] = 1
                    out_pos += 2
                elif length == 5 and is_word(src, start, 70, 97, 108, 115, 101):  # False
                    out[out_pos] = tags.TAG_BOOL
                    out[out_pos + 1] = 0
                    out_pos += 2
                elif length <= tags.SYMBOL_SHORT_MAX:
                    out[out_pos] = tags.TAG_SYMBOL | length
                    for k in range(length):
                        out[out_pos + 1 + k] = src[start + k]
                    out_pos += 1 + length
                else:
                    tail = state[SIDE_TAIL]
                    if tail + length > side.size:
                        need = ROOM_SIDE
                        need_size = tail + length
                        break
                    for k in range(length):
                        side[tail + k] = src[start + k]
                    text_length_now = length
                    out[out_pos] = tags.TAG_LONG_SYMBOL
            if text_length_now >= 0:
                # The path holds the text's provisional id; the wrapper maps it to a term id.
                if n_text_patch + 1 > text_patch.size:
                    need = ROOM_TEXT_PATCH
                    need_size = n_text_patch + 1
                    break
                text_id = intern_text(
                    side, text_length_now, text_start, text_length, text_hash, text_slots, state
                )
                if text_id < 0:
                    need = ROOM_TEXTS
                    need_size = state[N_TEXTS] + 1
                    break
                text_patch[n_text_patch] = out_pos + 1
                n_text_patch += 1
                put_big_endian(out, out_pos + 1, np.uint64(text_id), 8)
                out_pos += 9
        if depth == 0:
            # The top-level atom is complete: its variable names, joined by spaces, are a text.
            text_id = -1
            if n_vars > 0:
                total = n_vars - 1
                for k in range(n_vars):
                    total += var_length[k]
                write = state[SIDE_TAIL]
                if write + total > side.size:
                    need = ROOM_SIDE
                    need_size = write + total
                    break
                for k in range(n_vars):
                    if k > 0:
                        side[write] = 32
                        write += 1
                    for j in range(var_length[k]):
                        side[write + j] = src[var_start[k] + j]
                    write += var_length[k]
                text_id = intern_text(side, total, text_start, text_length, text_hash, text_slots, state)
                if text_id < 0:
                    need = ROOM_TEXTS
                    need_size = state[N_TEXTS] + 1
                    break
                for k in range(n_vars):
                    var_slots[var_slot[k]] = -1
                n_vars = 0
            names[n_atoms] = text_id
            n_atoms += 1
            offsets[n_atoms] = out_pos
    if need >= 0:
        # Roll back to the start of the unfinished atom; texts it added stay (the retry finds them).
        for k in range(n_vars):
            var_slots[var_slot[k]] = -1
        pos = atom_pos
        out_pos = atom_out
        n_text_patch = atom_text_patch
        n_float_patch = atom_float_patch
        status = NEED_ROOM
    state[POS] = pos
    state[OUT_POS] = out_pos
    state[N_ATOMS] = n_atoms
    state[N_TEXT_PATCH] = n_text_patch
    state[N_FLOAT_PATCH] = n_float_patch
    state[STATUS] = status
    state[ERR_POS] = err_pos
    state[ERR_END] = err_end
    state[NEED] = need
    state[NEED_SIZE] = need_size


_OUT_T = types.Tuple((I64_T, U8_T, I64_T, BOOL_T, I64_T, U8_T, I64_T, I64_T, I64_T, I64_T))


@njit(_OUT_T(SRC_T, INT_T, INT_T), cache=True, nogil=True)
def encode_kernel(src, max_depth, last_quote):
    """Encode every top-level atom of `src` (valid UTF-8) into one buffer of paths.

    `last_quote` is the offset of the last `"` byte in src (-1 if none). Returns (state, out,
    offsets, is_query, names, side, text_start, text_length, text_patch, float_patch); the
    counts in `state` say how much of each array is filled. `names` holds provisional text ids
    (or -1), as do the 8 bytes at each `text_patch` position of `out`."""
    n = src.size
    state = np.zeros(STATE_SIZE, np.int64)
    out = np.empty(n + 64, np.uint8)
    atom_capacity = max(1024, n // 32)
    offsets = np.zeros(atom_capacity + 1, np.int64)
    is_query = np.zeros(atom_capacity, np.bool_)
    names = np.full(atom_capacity, -1, np.int64)
    side = np.empty(1024, np.uint8)
    text_start = np.empty(64, np.int64)
    text_length = np.empty(64, np.int64)
    text_hash = np.empty(64, np.uint64)
    text_slots = np.full(128, -1, np.int64)
    text_patch = np.empty(64, np.int64)
    float_patch = np.empty(3 * 64, np.int64)
    var_start = np.empty(16, np.int64)
    var_length = np.empty(16, np.int64)
    var_hash = np.empty(16, np.uint64)
    var_slot = np.empty(16, np.int64)
    var_slots = np.full(64, -1, np.int64)
    header_at = np.empty(max_depth + 1, np.int64)
    child_count = np.empty(max_depth + 1, np.int64)
    opened_at = np.empty(max_depth + 1, np.int64)
    scratch = np.empty(1, np.uint64)
    while True:
        encode_span(
            src, max_depth, last_quote, state, out, offsets, is_query, names, side,
            text_start, text_length, text_hash, text_slots, text_patch, float_patch,
            var_start, var_length, var_hash, var_slot, var_slots, header_at, child_count, opened_at, scratch,
        )  # fmt: skip
        if state[STATUS] != NEED_ROOM:
            break
        need = state[NEED]
        size = state[NEED_SIZE]
        if need == ROOM_OUT:
            out = grown(out, size)
        elif need == ROOM_ATOMS:
            offsets = grown(offsets, size)
            is_query = grown(is_query, size)
            names = grown(names, size)
        elif need == ROOM_SIDE:
            side = grown(side, size)
        elif need == ROOM_TEXT_PATCH:
            text_patch = grown(text_patch, size)
        elif need == ROOM_FLOAT_PATCH:
            float_patch = grown(float_patch, size)
        elif need == ROOM_TEXTS:
            if size > text_start.size:
                text_start = grown(text_start, size)
                text_length = grown(text_length, size)
                text_hash = grown(text_hash, size)
            if 2 * size > text_slots.size:
                text_slots = rehashed(text_hash, state[N_TEXTS], 2 * text_slots.size)
        else:
            if size > var_start.size:
                var_start = grown(var_start, size)
                var_length = grown(var_length, size)
                var_hash = grown(var_hash, size)
                var_slot = grown(var_slot, size)
            if 2 * size > var_slots.size:
                var_slots = np.full(2 * var_slots.size, -1, np.int64)
    return state, out, offsets, is_query, names, side, text_start, text_length, text_patch, float_patch


@njit(types.void(U8_T, I64_T, I64_T), cache=True, nogil=True)
def remap_text_ids(out, patch_positions, term_of_text):
    """Replace each provisional 8-byte text id at `patch_positions` by `term_of_text[id]`."""
    for pos in patch_positions:
        provisional = 0
        for k in range(8):
            provisional = (provisional << 8) | out[pos + k]
        put_big_endian(out, pos, np.uint64(term_of_text[provisional]), 8)


@njit(types.void(U8_T, I64_T, U64_T), cache=True, nogil=True)
def put_keys(out, positions, keys):
    """Write each 8-byte key at its position."""
    for k in range(positions.size):
        put_big_endian(out, positions[k], keys[k], 8)
