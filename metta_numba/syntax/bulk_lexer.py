"""Byte-level pieces of the bulk reader, as small Numba functions: whitespace and comments,
token ends, number tokens, string literals (UTF-8 validation is `codec.kernels`').

They follow `syntax.parser` exactly, down to its notion of whitespace: Python's `str.isspace`,
which the parser's `\\s` uses, including the multi-byte Unicode spaces.
"""

from __future__ import annotations

import numpy as np
from numba import types

from metta_numba.jit import njit

# Error codes of the bulk reader; the wrapper in syntax.bulk words the messages.
ERR_NONE = 0
ERR_UNCLOSED_PAREN = 1
ERR_UNEXPECTED_CLOSE = 2
ERR_TOO_DEEP = 3
ERR_UNCLOSED_STRING = 4
ERR_BAD_HEX_ESCAPE = 5
ERR_BAD_UNICODE_ESCAPE = 6
ERR_BAD_ESCAPE = 7
ERR_INT_OVERFLOW = 8
NEED_ROOM = -1  # not an error: a buffer is full, grow it and resume

# Byte classes for the tokenizer.
ORDINARY, SPACE, OPEN, CLOSE, SEMICOLON, MAYBE_SPACE_LEAD = range(6)


WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The characters that Python's `str.isspace` and the parser's `\\s` accept, listed: finding
them among all code points at import cost some 60 ms per process (tests/test_parallel_read.py
checks the list against both)."""


def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """Classify bytes by Python's own notion of whitespace, which the parser's `\\s` uses."""
    classes = np.zeros(256, np.uint8)
    multibyte = []
    for char in WHITESPACE:
        code = ord(char)
        if code < 0x80:
            classes[code] = SPACE
        else:
            multibyte.append(code)
            classes[char.encode("utf-8")[0]] = MAYBE_SPACE_LEAD
    classes[ord("(")] = OPEN
    classes[ord(")")] = CLOSE
    classes[ord(";")] = SEMICOLON
    return classes, np.array(multibyte, np.int64)


BYTE_CLASS, MULTIBYTE_SPACES = _byte_classes()

_POW10 = np.array([10.0**k for k in range(23)], np.float64)  # exact up to 1e22
_FAST_MANTISSA_MAX = 1 << 53

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_SIGN = np.uint64(1 << 63)
_U8 = np.uint64(0xFF)

SRC_T = types.Array(types.uint8, 1, "C", readonly=True)
U8_T = types.Array(types.uint8, 1, "C")
I64_T = types.Array(types.int64, 1, "C")
U64_T = types.Array(types.uint64, 1, "C")
BOOL_T = types.Array(types.boolean, 1, "C")
INT_T = types.int64


@njit(INT_T(SRC_T, INT_T), cache=True, nogil=True, inline="always")
def space_length(src, pos):
    """Byte length of the whitespace character at `pos`, 0 when it is not whitespace."""
    if pos >= src.size:
        return 0
    lead = src[pos]
    kind = BYTE_CLASS[lead]
    if kind == SPACE:
        return 1
    if kind != MAYBE_SPACE_LEAD:
        return 0
    if lead < 0xE0:
        if pos + 1 >= src.size:
            return 0
        code = ((lead & 0x1F) << 6) | (src[pos + 1] & 0x3F)
        size = 2
    else:
        if pos + 2 >= src.size:
            return 0
        code = ((lead & 0x0F) << 12) | ((src[pos + 1] & 0x3F) << 6) | (src[pos + 2] & 0x3F)
        size = 3
    for space in MULTIBYTE_SPACES:
        if space == code:
            return size
    return 0


@njit(INT_T(SRC_T, INT_T), cache=True, nogil=True, inline="always")
def skip_space(src, pos):
    """Skip whitespace and `;` comments (a comment ends after its newline)."""
    n = src.size
    while pos < n:
        kind = BYTE_CLASS[src[pos]]
        if kind == SPACE:
            pos += 1
        elif kind == SEMICOLON:
            pos += 1
            while pos < n and src[pos] != 10:
                pos += 1
            if pos < n:
                pos += 1
        elif kind == MAYBE_SPACE_LEAD:
            size = space_length(src, pos)
            if size == 0:
                return pos
            pos += size
        else:
            return pos
    return pos


@njit(INT_T(SRC_T, INT_T, types.boolean), cache=True, nogil=True, inline="always")
def token_end(src, pos, stop_at_semicolon):
    """End of a bare token: whitespace and parentheses end it, `;` too unless it is a variable."""
    n = src.size
    while pos < n:
        kind = BYTE_CLASS[src[pos]]
        if kind == ORDINARY:
            pos += 1
        elif kind == SEMICOLON and not stop_at_semicolon:
            pos += 1
        elif kind == MAYBE_SPACE_LEAD and space_length(src, pos) == 0:
            pos += 1
        else:
            return pos
    return pos


@njit(types.uint64(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def hash_bytes(buf, start, length):
    """FNV-1a hash of buf[start:start+length] (writable arrays are accepted too)."""
    h = _FNV_OFFSET
    for k in range(start, start + length):
        h = (h ^ np.uint64(buf[k])) * _FNV_PRIME
    return h


@njit([array_t(array_t, INT_T) for array_t in (U8_T, I64_T, U64_T, BOOL_T)], cache=True, nogil=True)
def grown(array, needed):
    """A copy of `array` with room for at least `needed` items (capacity doubles)."""
    capacity = max(2 * array.size, needed, 16)
    bigger = np.empty(capacity, array.dtype)
    bigger[: array.size] = array
    return bigger


@njit(types.void(U8_T, INT_T, types.uint64, INT_T), cache=True, nogil=True, inline="always")
def put_big_endian(out, pos, value, size):
    for k in range(size):
        out[pos + k] = np.uint8((value >> np.uint64(8 * (size - 1 - k))) & _U8)


@njit(INT_T(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def _after_sign(src, pos, end):
    """Skip one `+` or `-` at pos, if there is one before end."""
    if pos < end and (src[pos] == 43 or src[pos] == 45):
        return pos + 1
    return pos


@njit(INT_T(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def _after_digits(src, pos, end):
    """Skip the ASCII digits from pos, up to end."""
    while pos < end and 48 <= src[pos] <= 57:
        pos += 1
    return pos


@njit(INT_T(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def classify_number(src, start, end):
    """0: not a number, 1: integer `[+-]?[0-9]+`, 2: float (the parser's float pattern)."""
    digits_start = _after_sign(src, start, end)
    pos = _after_digits(src, digits_start, end)
    if pos == digits_start:
        return 0
    if pos == end:
        return 1
    if src[pos] == 46:  # .
        fraction_end = _after_digits(src, pos + 1, end)
        if fraction_end == pos + 1:
            return 0
        pos = fraction_end
        if pos == end:
            return 2
    if src[pos] != 101 and src[pos] != 69:  # e E
        return 0
    exponent_start = _after_sign(src, pos + 1, end)
    exponent_end = _after_digits(src, exponent_start, end)
    return 2 if exponent_start < exponent_end == end else 0


@njit(
    types.Tuple((types.boolean, types.uint64))(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always"
)
def int_key(src, start, end):
    """(fits, order-preserving key) of an integer token; fits is False beyond int64."""
    negative = src[start] == 45
    pos = _after_sign(src, start, end)
    magnitude = np.uint64(0)
    limit = _SIGN if negative else _SIGN - np.uint64(1)
    for k in range(pos, end):
        digit = np.uint64(src[k] - 48)
        if magnitude > (limit - digit) // np.uint64(10):
            return False, np.uint64(0)
        magnitude = magnitude * np.uint64(10) + digit
    if negative:
        return True, _SIGN - magnitude
    return True, _SIGN + magnitude


@njit(
    types.Tuple((types.boolean, types.float64))(SRC_T, INT_T, INT_T), cache=True, nogil=True, inline="always"
)
def fast_float(src, start, end):
    """Convert a float token exactly when one IEEE operation suffices (Clinger's fast path):
    a mantissa below 2**53 and a power of ten up to 1e22. (False, 0.0) otherwise."""
    negative = src[start] == 45
    pos = _after_sign(src, start, end)
    mantissa = 0
    scale = 0
    seen_dot = False
    while pos < end:
        byte = src[pos]
        if byte == 46:
            seen_dot = True
        elif 48 <= byte <= 57:
            digit = byte - 48
            if mantissa > (_FAST_MANTISSA_MAX - digit) // 10:
                return False, 0.0
            mantissa = mantissa * 10 + digit
            if seen_dot:
                scale -= 1
        else:
            break
        pos += 1
    if pos < end:  # an exponent follows
        exponent_negative = src[pos + 1] == 45
        pos = _after_sign(src, pos + 1, end)
        exponent = 0
        while pos < end:
            exponent = exponent * 10 + (src[pos] - 48)
            if exponent > 100000:
                return False, 0.0
            pos += 1
        scale += -exponent if exponent_negative else exponent
    if mantissa == 0:
        value = 0.0
    elif 0 <= scale <= 22:
        value = mantissa * _POW10[scale]
    elif -22 <= scale < 0:
        value = mantissa / _POW10[-scale]
    else:
        return False, 0.0
    return True, -value if negative else value


@njit(types.uint64(types.float64, U64_T), cache=True, nogil=True, inline="always")
def float_key(value, scratch):
    """Order-preserving key of a float64 (tags.float_bits_to_key)."""
    scratch.view(np.float64)[0] = value
    bits = scratch[0]
    if bits & _SIGN:
        return ~bits
    return bits | _SIGN


@njit(INT_T(SRC_T, INT_T, INT_T), cache=True, nogil=True)
def _hex_value(src, start, end):
    """Value of the ASCII hex digits src[start:end]; -1 if any is not one or the range is short."""
    if end > src.size:
        return -1
    value = 0
    for pos in range(start, end):
        byte = src[pos]
        if 48 <= byte <= 57:
            digit = byte - 48
        elif 97 <= byte <= 102:
            digit = byte - 87
        elif 65 <= byte <= 70:
            digit = byte - 55
        else:
            return -1
        value = value * 16 + digit
    return value


@njit(INT_T(U8_T, INT_T, INT_T), cache=True, nogil=True)
def _put_utf8(out, pos, code):
    """Write code point `code` as UTF-8 at `pos` (room for 4 bytes is the caller's); returns its size."""
    if code < 0x80:
        out[pos] = code
        return 1
    if code < 0x800:
        out[pos] = 0xC0 | (code >> 6)
        out[pos + 1] = 0x80 | (code & 0x3F)
        return 2
    if code < 0x10000:
        out[pos] = 0xE0 | (code >> 12)
        out[pos + 1] = 0x80 | ((code >> 6) & 0x3F)
        out[pos + 2] = 0x80 | (code & 0x3F)
        return 3
    out[pos] = 0xF0 | (code >> 18)
    out[pos + 1] = 0x80 | ((code >> 12) & 0x3F)
    out[pos + 2] = 0x80 | ((code >> 6) & 0x3F)
    out[pos + 3] = 0x80 | (code & 0x3F)
    return 4


@njit(types.boolean(SRC_T, INT_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def same_source_bytes(src, first, second, length):
    for k in range(length):
        if src[first + k] != src[second + k]:
            return False
    return True


@njit(types.boolean(SRC_T, INT_T, INT_T, INT_T, INT_T, INT_T, INT_T), cache=True, nogil=True, inline="always")
def is_word(src, start, b0, b1, b2, b3, b4):
    """Whether src[start:] begins with the bytes b0.. (b4 == 0 means a 4-byte word)."""
    if src[start] != b0 or src[start + 1] != b1 or src[start + 2] != b2 or src[start + 3] != b3:
        return False
    return b4 == 0 or src[start + 4] == b4


@njit(types.Tuple((INT_T, INT_T, INT_T))(SRC_T, INT_T, INT_T, U8_T, INT_T), cache=True, nogil=True)
def read_string(src, quote, last_quote, side, tail):
    """Unescape the string literal opening at `quote` into `side` from `tail`.

    Returns (status, position after the literal or the error offset, text length). The status
    NEED_ROOM asks for a bigger `side` (the length slot then holds the size needed so far).
    As in the parser, an escape is only examined while a `"` still follows somewhere."""
    n = src.size
    if last_quote <= quote:
        return ERR_UNCLOSED_STRING, quote, 0
    pos = quote + 1
    write = tail
    while True:
        if pos >= n:
            return ERR_UNCLOSED_STRING, quote, 0
        if write + 4 > side.size:
            return NEED_ROOM, quote, write + 4
        byte = src[pos]
        if byte == 34:  # "
            return ERR_NONE, pos + 1, write - tail
        if byte != 92:  # not a backslash
            side[write] = byte
            write += 1
            pos += 1
            continue
        if last_quote <= pos or pos + 1 >= n:
            return ERR_UNCLOSED_STRING, quote, 0
        kind = src[pos + 1]
        if kind == 34 or kind == 92 or kind == 39:  # " \ '
            side[write] = kind
        elif kind == 110:  # n
            side[write] = 10
        elif kind == 116:  # t
            side[write] = 9
        elif kind == 114:  # r
            side[write] = 13
        elif kind == 48:  # 0
            side[write] = 0
        elif kind == 120:  # x
            code = _hex_value(src, pos + 2, pos + 4)
            if code < 0 or code > 0x7F:
                return ERR_BAD_HEX_ESCAPE, pos, 0
            side[write] = code
            write += 1
            pos += 4
            continue
        elif kind == 117 and pos + 2 < n and src[pos + 2] == 123:  # u{
            digits_end = pos + 3
            while digits_end < min(n, pos + 10) and _hex_value(src, digits_end, digits_end + 1) >= 0:
                digits_end += 1
            count = digits_end - (pos + 3)
            if count < 1 or count > 6 or digits_end >= n or src[digits_end] != 125:  # }
                return ERR_BAD_UNICODE_ESCAPE, pos, 0
            code = _hex_value(src, pos + 3, digits_end)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                return ERR_BAD_UNICODE_ESCAPE, pos, 0
            write += _put_utf8(side, write, code)
            pos = digits_end + 1
            continue
        else:
            return ERR_BAD_ESCAPE, pos, 0
        write += 1
        pos += 2
