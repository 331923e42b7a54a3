"""The wire format between `metta-numba serve` and its thin client (standard library only: the
client imports this and nothing heavier).

A connection carries one request and its answer:

    client -> server   4-byte big-endian length N, then N bytes of fields, each ended by NUL
                       (which no path or argument holds), in the file system's encoding:
                       REQUEST_MAGIC, the working folder (absolute), K in decimal, then the
                       command line's arguments; then K bytes: the client's stdin, when the
                       command reads it (`run -`, `query --patterns -`), else K = 0
    server -> client   frames: one kind byte, a 4-byte big-endian length, the payload
                       b"o" bytes for stdout, b"e" bytes for stderr (any number, in order),
                       b"x" the exit code as ASCII digits: the last frame
"""

from __future__ import annotations

import os
import socket
import struct

REQUEST_MAGIC = b"metta-numba-request-1"
MAX_HEADER_BYTES = 1 << 20
MAX_STDIN_BYTES = 1 << 30
STDOUT, STDERR, EXIT = b"o", b"e", b"x"
_LENGTH = struct.Struct(">I")
_FRAME = struct.Struct(">cI")


class ProtocolError(Exception):
    """A request or an answer that does not follow the wire format."""


class NoRequest(ProtocolError):
    """A connection closed before its first byte (a client probing whether a server listens)."""


def receive_exactly(conn: socket.socket, size: int) -> bytes:
    """`size` bytes from `conn`; ProtocolError when the peer closes first."""
    parts, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            raise ProtocolError(f"the connection closed {left} bytes before the end of a message")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def send_request(conn: socket.socket, argv: list[str], cwd: str, stdin: bytes = b"") -> None:
    fields = [REQUEST_MAGIC, os.fsencode(cwd), str(len(stdin)).encode(), *(os.fsencode(arg) for arg in argv)]
    header = b"".join(field + b"\0" for field in fields)
    conn.sendall(_LENGTH.pack(len(header)) + header)
    if stdin:
        conn.sendall(stdin)


def receive_request(conn: socket.socket) -> tuple[list[str], str, bytes]:
    """(argv, cwd, stdin) of a request, checked; ProtocolError for anything malformed."""
    first = conn.recv(_LENGTH.size)
    if not first:
        raise NoRequest("the client closed the connection without sending a request")
    (size,) = _LENGTH.unpack(first + receive_exactly(conn, _LENGTH.size - len(first)))
    if size > MAX_HEADER_BYTES:
        raise ProtocolError(f"a request header of {size:,} bytes (at most {MAX_HEADER_BYTES:,})")
    header = receive_exactly(conn, size)
    if not header.endswith(b"\0"):
        raise ProtocolError("a request header not ended by NUL")
    fields = header[:-1].split(b"\0")
    if len(fields) < 3 or fields[0] != REQUEST_MAGIC:
        raise ProtocolError("not a metta-numba request (or one of another version)")
    cwd, argv = os.fsdecode(fields[1]), [os.fsdecode(field) for field in fields[3:]]
    if not cwd.startswith("/"):
        raise ProtocolError("the request's working folder is not an absolute path")
    if not fields[2].isdigit() or len(fields[2]) > 12 or int(fields[2]) > MAX_STDIN_BYTES:
        raise ProtocolError("the request's stdin size is not a size")
    stdin_bytes = int(fields[2])
    return argv, cwd, receive_exactly(conn, stdin_bytes)


def frame(kind: bytes, payload: bytes) -> bytes:
    return _FRAME.pack(kind, len(payload)) + payload


def receive_frame(conn: socket.socket) -> tuple[bytes, bytes] | None:
    """(kind, payload) of the next frame, or None when the connection closed between frames."""
    head = b""
    while len(head) < _FRAME.size:
        chunk = conn.recv(_FRAME.size - len(head))
        if not chunk:
            if head:
                raise ProtocolError("the connection closed inside a frame")
            return None
        head += chunk
    kind, size = _FRAME.unpack(head)
    if kind not in (STDOUT, STDERR, EXIT):
        raise ProtocolError(f"an answer frame of unknown kind {kind!r}")
    return kind, receive_exactly(conn, size)
