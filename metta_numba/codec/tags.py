"""Tag bytes of the path encoding (DESIGN.md section 3).

The first four kinds are MORK's expression encoding, so a path made of symbols, variables and
expressions is byte-identical to MORK's:

    00aaaaaa          expression of arity a (0..63); its a children follow in prefix order
    11000000  (0xC0)  a new variable (its first occurrence in this atom)
    10iiiiii          a reference to variable i (numbered by first occurrence, from 0)
    11ssssss          a symbol whose UTF-8 name is the next s bytes (s = 1..63)

Our extension uses the otherwise unused 01xxxxxx range. Every multi-byte payload is big-endian
so that byte order is numeric order:

    0x40 + 8 bytes   int64, sign bit flipped (order-preserving)
    0x41 + 8 bytes   float64, order-preserving transform of the IEEE bits
    0x42 + 8 bytes   string: u64 id in the term store
    0x43 + 8 bytes   symbol with a name longer than 63 bytes: u64 term id
    0x44 + 4 bytes   expression of arity above 63: u32 arity, children follow
    0x45 + 1 byte    Bool: 0x00 False, 0x01 True
    0x46 + 4 bytes   reference to variable i >= 64: u32 i
    0x47 + 8 bytes   in-process object handle (a space, a state): never written to disk
"""

ARITY_SHORT_MAX = 63
SYMBOL_SHORT_MAX = 63
VAR_REF_SHORT_MAX = 63

TAG_NEW_VAR = 0xC0
TAG_VAR_REF = 0x80
TAG_SYMBOL = 0xC0

TAG_INT = 0x40
TAG_FLOAT = 0x41
TAG_STRING = 0x42
TAG_LONG_SYMBOL = 0x43
TAG_BIG_ARITY = 0x44
TAG_BOOL = 0x45
TAG_BIG_VAR_REF = 0x46
TAG_HANDLE = 0x47

# Payload sizes of the extension tags, indexed by tag - 0x40.
EXT_PAYLOAD = (8, 8, 8, 8, 4, 1, 4, 8)
EXT_FIRST = 0x40
EXT_LAST = 0x47

SIGN_BIT = 1 << 63
U64_MASK = (1 << 64) - 1


def int_to_key(value: int) -> int:
    """Order-preserving u64 key of an int64."""
    return (value + SIGN_BIT) & U64_MASK


def key_to_int(key: int) -> int:
    return key - SIGN_BIT


def float_bits_to_key(bits: int) -> int:
    """Order-preserving u64 key of a float64 given its IEEE bits (negatives: all bits flipped)."""
    return (bits ^ U64_MASK) if bits & SIGN_BIT else (bits | SIGN_BIT)


def key_to_float_bits(key: int) -> int:
    return (key ^ SIGN_BIT) if key & SIGN_BIT else (key ^ U64_MASK)
