"""`metta-numba serve KB --socket PATH`: a resident process that keeps one KB open read-only
(through the store's reader protocol) and its kernels loaded, and answers the `query` and
`run` commands its thin client (serve_client) sends, so that such a command costs a Python
start and a round trip instead of imports, kernel loads and an open.

A request is answered as the command would answer it in a process of its own: the same code
runs with the request's command line, working folder and stdin, and its stdout and stderr go
back to the client as they are written, then the exit code. Before each request the KB takes in
what writers committed since (`PersistentKB.refresh`). A program's changes to `&self` stay in
that request's memory; `--save-snapshot` saves through a writer, as without a server.

Requests are answered one at a time, in the order they connect (the working folder is the
process's, and programs may use it); others wait in the socket's queue. A client that sends
nothing for REQUEST_TIMEOUT seconds, or stops reading the answer for ANSWER_TIMEOUT seconds, is
dropped. SIGTERM or SIGINT stop the server between requests (a second one aborts the request
in progress) and remove its socket.

Trust: whoever can connect to the socket runs programs as the server's user. The socket is
created with mode 0600 (only this user, and root, may connect), in a folder that others may not
replace it in.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import stat
import sys
import traceback
from pathlib import Path

from metta_numba import cli
from metta_numba.cli import EXIT_FAILED, EXIT_NO_SERVER, EXIT_USAGE, CommandError
from metta_numba.serve_protocol import EXIT, STDERR, STDOUT, NoRequest, ProtocolError, frame, receive_request

REQUEST_TIMEOUT = 30.0
ANSWER_TIMEOUT = 120.0
SERVED_COMMANDS = ("query", "run")


class _Stop(BaseException):
    """Raised by the signal handler to leave the accept loop (or abort a request)."""


class _ClientGone(BrokenPipeError):
    """The client closed its end or stopped reading: the command stops writing (the CLI takes a
    BrokenPipeError as a reader that went away)."""


class _FrameSink(io.RawIOBase):
    """A binary stream whose writes go to the client as frames of one kind. After the client
    is gone, the first write raises _ClientGone and later ones are dropped."""

    def __init__(self, conn: socket.socket, kind: bytes) -> None:
        self.conn, self.kind, self.broken = conn, kind, False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = len(data)
        if self.broken or not size:
            return size
        try:
            self.conn.sendall(frame(self.kind, bytes(data)))
        except OSError:  # reset, broken pipe, or the answer timeout
            self.broken = True
            raise _ClientGone("the client went away") from None
        return size


def _text_stream(conn: socket.socket, kind: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BufferedWriter(_FrameSink(conn, kind), 1 << 16), encoding="utf-8", newline="\n")


def claim_socket(path: Path) -> tuple[socket.socket, int]:
    """Listen on `path`, created 0600; (the socket, the file's inode). Refuses (CommandError,
    exit 4) a path that exists and is not a socket, another user's socket, a socket a server is
    listening on, and a folder others may write to without the sticky bit (they could replace
    the socket). A socket nobody listens on any more (its server was killed) is replaced."""
    folder = path.parent
    try:
        folder_info = os.stat(folder)
    except OSError as err:
        raise CommandError(f"--socket {path}: its folder: {err.strerror}", EXIT_NO_SERVER) from None
    if folder_info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder_info.st_mode & stat.S_ISVTX:
        raise CommandError(
            f"--socket {path}: others may write to {folder} (and replace the socket): use a private folder",
            EXIT_NO_SERVER,
        )
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise CommandError(f"--socket {path}: {err.strerror}", EXIT_NO_SERVER) from None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise CommandError(f"--socket {path}: exists and is not a socket; not replacing it", EXIT_NO_SERVER)
        if info.st_uid != os.getuid():
            raise CommandError(f"--socket {path}: another user's socket; not replacing it", EXIT_NO_SERVER)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            os.unlink(path)  # stale: its server is gone
        except OSError as err:
            raise CommandError(f"--socket {path}: {err.strerror or err}", EXIT_NO_SERVER) from None
        else:
            raise CommandError(f"--socket {path}: a server is already listening on it", EXIT_NO_SERVER)
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o177)  # the socket file is born 0600: no moment where others may connect
    try:
        listener.bind(str(path))
    except OSError as err:
        listener.close()
        raise CommandError(f"--socket {path}: cannot listen there: {err.strerror or err}", EXIT_NO_SERVER) from None
    finally:
        os.umask(mask)
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener, os.stat(path).st_ino


class Server:
    """One open KB and a listening socket; `serve_forever` answers requests until stopped."""

    def __init__(self, kb, kb_path: Path, listener: socket.socket, socket_path: Path, inode: int) -> None:
        self.kb, self.kb_path = kb, kb_path
        self.listener, self.socket_path, self.inode = listener, socket_path, inode
        self.home = os.getcwd()
        self.busy = False
        self.stop_requested = False
        self.log = sys.stderr

    def _on_signal(self, signum, frame) -> None:
        if self.busy and not self.stop_requested:
            self.stop_requested = True  # finish this request first
            return
        raise _Stop

    def serve_forever(self, warm=None) -> None:
        """Answer requests until a signal stops the server; `warm(kb)` runs first."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        try:
            if warm is not None:
                self._warm(warm)
            self._note(f"serving {self.kb_path} on {self.socket_path} (pid {os.getpid()})")
            while not self.stop_requested:
                conn, _ = self.listener.accept()
                self.busy = True
                try:
                    with conn:
                        self.handle(conn)
                except Exception:  # noqa: BLE001 (a bug of ours: this request fails, the server goes on)
                    self._note(f"a request failed:\n{traceback.format_exc()}")
                finally:
                    self.busy = False
        except _Stop:
            pass
        finally:
            self.close()

    def _warm(self, warm) -> None:
        self.busy = True  # a signal now stops the server once warming is done
        try:
            warm(self.kb)
        except Exception as err:  # noqa: BLE001 (warming is an optimisation: the server still answers)
            self._note(f"warming the kernels failed ({err}); the first request loads them")
        finally:
            self.busy = False

    def close(self) -> None:
        self.listener.close()
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self.inode:  # still ours, not a successor's
                os.unlink(self.socket_path)
        self.kb.close()

    def handle(self, conn: socket.socket) -> None:
        """Answer one connection; nothing a client does ends the server."""
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            argv, cwd, stdin = receive_request(conn)
        except (ProtocolError, OSError) as err:
            if not isinstance(err, NoRequest):
                self._note(f"dropped a malformed request: {err}")
            with contextlib.suppress(OSError):
                message = f"metta-numba: the server could not read the request: {err}\n".encode()
                conn.sendall(frame(STDERR, message) + frame(EXIT, str(EXIT_USAGE).encode()))
            return
        conn.settimeout(ANSWER_TIMEOUT)
        out, err = _text_stream(conn, STDOUT), _text_stream(conn, STDERR)
        try:
            code = self._run(argv, cwd, stdin, out, err)
            for stream in (out, err):
                stream.flush()
            conn.sendall(frame(EXIT, str(code).encode()))
        except OSError:
            self._note(f"the client left before the end of its answer ({' '.join(argv[:1])})")
        finally:
            for stream in (out, err):
                stream.buffer.raw.broken = True  # what is left unsent is dropped, not retried
                with contextlib.suppress(OSError, ValueError):
                    stream.close()

    def _run(self, argv: list[str], cwd: str, stdin: bytes, out, err) -> int:
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        sys.stdout, sys.stderr = out, err
        try:
            return self._command(argv, cwd)
        except _ClientGone:
            return EXIT_FAILED
        except Exception:  # a bug: the command alone would have died with this traceback
            text = traceback.format_exc()
            self._note(f"request failed:\n{text}")
            with contextlib.suppress(OSError):
                err.write(f"metta-numba: internal error in the server:\n{text}")
            return EXIT_FAILED
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            os.chdir(self.home)

    def _command(self, argv: list[str], cwd: str) -> int:
        try:
            _, args = cli.parse_command_line(argv)
        except SystemExit as stop:  # argparse printed the usage error to (our) stderr
            return stop.code if isinstance(stop.code, int) else EXIT_USAGE
        if args.command not in SERVED_COMMANDS:
            served = " and ".join(SERVED_COMMANDS)
            print(f"metta-numba: the server answers {served}, not {args.command}", file=sys.stderr)
            return EXIT_USAGE
        try:
            os.chdir(cwd)
        except OSError as error:
            print(f"metta-numba: the server cannot work in {cwd}: {error.strerror}", file=sys.stderr)
            return EXIT_USAGE
        asked = args.kb if args.command == "query" else args.load_snapshot
        if asked is None or Path(asked).resolve() != self.kb_path:
            print(f"metta-numba: the server at {self.socket_path} serves {self.kb_path}, not {asked}", file=sys.stderr)
            return EXIT_USAGE
        args.served_kb = self.kb
        args.prefetch = False  # the server's pages are warm already
        try:
            self.kb.refresh()  # what writers committed since the last request
        except Exception as error:  # noqa: BLE001 (a store error: reported as the command would)
            from metta_numba.store.errors import SnapshotError

            if not isinstance(error, SnapshotError):
                raise
            print(f"metta-numba: {error}", file=sys.stderr)
            return cli.EXIT_BAD_KB
        return cli.dispatch(args)

    def _note(self, message: str) -> None:
        print(f"metta-numba serve: {message}", file=self.log, flush=True)


WARM_PATTERNS = (
    "(= (metta-numba-serve-warm $x) $y)",  # a ground head: the trie walk
    "(metta-numba-serve-warm $x 1)",  # a ground later argument: the argument index
    "($f metta-numba-serve-warm)",  # a variable head
    "(, (metta-numba-serve-warm $x) ($x $y))",  # a conjunction: the join
)
WARM_PROGRAM = (
    "!(metta-numba-serve-warm 1)\n"
    "!(match &self (metta-numba-serve-warm $x 1) $x)\n"
    "!(match &self ($f metta-numba-serve-warm) $f)\n"
)


def _warm(kb) -> None:
    """Load the modules and kernels that queries and programs of the common shapes use (with a
    symbol no KB holds), so that the first request does not pay for them. Output is dropped."""
    from metta_numba.interp.runner import MeTTa
    from metta_numba.space import SnapshotSpace
    from metta_numba.space.query_answers import answers, count_answers
    from metta_numba.syntax.parser import parse_atom

    for text in WARM_PATTERNS:
        pattern = parse_atom(text, "<warm>")
        count_answers(kb, pattern)
        for _ in answers(kb, pattern, 1):
            pass
    MeTTa(space=SnapshotSpace(kb)).run_program(WARM_PROGRAM, filename="<warm>")


def serve_kb(args) -> int:
    """The `serve` command: open the KB, claim the socket, answer until SIGTERM."""
    from metta_numba.dist.manifest import is_sharded
    from metta_numba.store import PersistentKB
    from metta_numba.store.errors import SnapshotError

    kb_path = Path(args.kb).resolve()
    if is_sharded(kb_path):
        raise CommandError(f"{args.kb}: serve takes a plain KB, not a sharded one", EXIT_USAGE)
    try:
        kb = PersistentKB.open(kb_path, readonly=True, verify=args.verify)
    except SnapshotError as err:
        raise CommandError(str(err), cli.EXIT_BAD_KB) from None
    try:
        socket_path = Path(os.path.abspath(args.socket))
        listener, inode = claim_socket(socket_path)
    except BaseException:
        kb.close()
        raise
    Server(kb, kb_path, listener, socket_path, inode).serve_forever(warm=_warm)
    return cli.EXIT_OK
