"""CRC-32C (Castagnoli) for the store's small records.

The `crc32c` library computes it in C, but importing it costs 20-40 ms (it reads its own
package metadata), which every process that opens a KB would pay for a checksum of a few
bytes: CURRENT and the log's header, which `crc32c_small` computes with a table. The
library is imported on the first call of `crc32c` (log records: a log that is empty, as
after a checkpoint, never needs it).
"""

from __future__ import annotations

_POLY = 0x82F63B78  # the reflected Castagnoli polynomial


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()
_library = None


def crc32c(data: bytes) -> int:
    """The CRC-32C of `data`, by the `crc32c` library (imported on first use)."""
    global _library
    if _library is None:
        import crc32c as library

        _library = library
    return _library.crc32c(data)


def crc32c_small(data: bytes) -> int:
    """The CRC-32C of a few bytes, without the library (about 0.1 us per byte)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
