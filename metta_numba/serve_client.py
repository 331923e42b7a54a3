"""The thin client of `metta-numba serve`: `metta-numba query --server PATH ...` and `run
--server PATH --load-snapshot KB ...` (or METTA_NUMBA_SERVER=PATH) send their command line to
the server and copy its answer to stdout and stderr.

Only the standard library is imported here: a client process that loaded NumPy and Numba would
spend more on imports than the server spends answering.
"""

from __future__ import annotations

import os
import socket
import stat
import sys

from metta_numba.cli import EXIT_NO_SERVER, EXIT_USAGE
from metta_numba.serve_protocol import EXIT, STDERR, STDOUT, ProtocolError, receive_frame, send_request

SERVER_VARIABLE = "METTA_NUMBA_SERVER"


class NoServerError(Exception):
    """The server cannot be reached, or its answer was cut short (exit code 4)."""


def server_for(args) -> str | None:
    """The socket this command goes to: --server, else $METTA_NUMBA_SERVER for the commands a
    server answers (`query`, and `run` over a KB), else None (run the command here)."""
    explicit = getattr(args, "server", None)
    if explicit:
        return explicit
    variable = os.environ.get(SERVER_VARIABLE)
    if not variable or args.command not in ("query", "run"):
        return None
    if args.command == "run" and not args.load_snapshot:
        return None  # a program without a KB: nothing of the server's to use
    return variable


def _reads_stdin(args) -> bool:
    if args.command == "run":
        return args.file == "-"
    return args.command == "query" and args.patterns == "-"


def _connect(path: str) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except FileNotFoundError:
        conn.close()
        raise NoServerError(
            f"no server at {path}: the socket does not exist (start one with `metta-numba serve KB --socket {path}`)"
        ) from None
    except ConnectionRefusedError:
        conn.close()
        try:
            is_socket = stat.S_ISSOCK(os.lstat(path).st_mode)
        except OSError:
            is_socket = True
        if not is_socket:
            raise NoServerError(f"{path} is not a socket") from None
        raise NoServerError(
            f"no server at {path}: the socket is stale (its server stopped without removing it); "
            "`metta-numba serve KB --socket PATH` replaces it"
        ) from None
    except PermissionError:
        conn.close()
        raise NoServerError(f"{path}: permission denied (the socket is another user's)") from None
    except OSError as err:
        conn.close()
        raise NoServerError(f"{path}: {err.strerror or err}") from None
    return conn


def forward(path: str, argv: list[str], args) -> int:
    """Send the command line to the server at `path` and relay its answer; its exit code."""
    if args.command == "run" and not args.load_snapshot:
        print(
            "metta-numba: --server runs programs against the server's KB: give --load-snapshot KB",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stdin = sys.stdin.buffer.read() if _reads_stdin(args) else b""
    try:
        conn = _connect(path)
        with conn:
            send_request(conn, argv, os.getcwd(), stdin)
            return _relay(conn, path)
    except NoServerError as err:
        print(f"metta-numba: {err}", file=sys.stderr)
        return EXIT_NO_SERVER


def _relay(conn: socket.socket, path: str) -> int:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        while True:
            received = receive_frame(conn)
            if received is None:
                break
            kind, payload = received
            if kind == STDOUT:
                out.write(payload)
                out.flush()  # answers stream, as they do from the command itself
            elif kind == STDERR:
                err.write(payload)
                err.flush()
            elif kind == EXIT:
                return int(payload)
    except (ProtocolError, ValueError, ConnectionResetError) as error:
        raise NoServerError(f"the answer of the server at {path} is cut short or malformed ({error})") from None
    raise NoServerError(f"the server at {path} closed the connection before its answer was complete")
