"""The wire format between `metta-numba serve` and its thin client (standard library only: the
client imports this and nothing heavier).

A connection carries one request and its answer:

    client -> server   4-byte big-endian length N, then N bytes of JSON:
                       {"protocol": 1, "argv": [...the command line...], "cwd": "/abs/dir",
                        "stdin_bytes": K}
                       then K bytes: the client's stdin, when the command reads it (`run -`,
                       `query --patterns -`), else K = 0
    server -> client   frames: one kind byte, a 4-byte big-endian length, the payload
                       b"o" bytes for stdout, b"e" bytes for stderr (any number, in order),
                       b"x" the exit code as ASCII digits: the last frame
"""

from __future__ import annotations

import json
import socket
import struct

PROTOCOL = 1
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
    header = json.dumps({"protocol": PROTOCOL, "argv": argv, "cwd": cwd, "stdin_bytes": len(stdin)}).encode()
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
    try:
        header = json.loads(receive_exactly(conn, size))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ProtocolError(f"the request header is not JSON ({err})") from None
    if not isinstance(header, dict) or header.get("protocol") != PROTOCOL:
        raise ProtocolError(f"not a request of protocol {PROTOCOL}")
    argv, cwd, stdin_bytes = header.get("argv"), header.get("cwd"), header.get("stdin_bytes", 0)
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        raise ProtocolError("the request's argv is not a list of strings")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ProtocolError("the request's cwd is not an absolute path")
    if type(stdin_bytes) is not int or not 0 <= stdin_bytes <= MAX_STDIN_BYTES:
        raise ProtocolError("the request's stdin_bytes is not a size")
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
