"""ParseError: a syntax error with the file, line and column a person needs to fix it."""

from __future__ import annotations


class ParseError(Exception):
    """A MeTTa syntax error. `str(err)` is `file:line:col: message` (1-based line and column)."""

    def __init__(self, message: str, filename: str, line: int, col: int, offset: int = -1) -> None:
        super().__init__(message)
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.col}: {self.message}"

    @classmethod
    def at(cls, text: str, offset: int, message: str, filename: str = "<string>") -> ParseError:
        """Build the error for character `offset` of `text`, computing line and column."""
        line = text.count("\n", 0, offset) + 1
        line_start = text.rfind("\n", 0, offset) + 1
        return cls(message, filename, line, offset - line_start + 1, offset)

    @classmethod
    def at_byte(cls, data: bytes, byte_offset: int, message: str, filename: str = "<string>") -> ParseError:
        """Build the error for byte `byte_offset` of UTF-8 `data`; the column counts characters."""
        line = data.count(b"\n", 0, byte_offset) + 1
        line_start = data.rfind(b"\n", 0, byte_offset) + 1
        col = len(data[line_start:byte_offset].decode("utf-8", errors="replace")) + 1
        return cls(message, filename, line, col, byte_offset)
