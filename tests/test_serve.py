"""`metta-numba serve` and its thin client: a server in a subprocess over a temporary KB answers
as the command does without it, keeps a program's changes per request, survives bad clients,
and stops cleanly; the client reports an absent or stale server and imports no NumPy."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_cli import FACTS, cli, write

from metta_numba.serve_protocol import EXIT, STDOUT, ProtocolError, frame, receive_frame, send_request

MANY = 20_000  # facts of the wide KB: an answer far larger than the socket's buffers


@pytest.fixture(scope="module")
def folder():
    # Short: a Unix socket's path must fit in 108 bytes, which pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="mn-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def kb(folder) -> Path:
    source = FACTS + "".join(f"(wide w{i} v{i % 7})\n" for i in range(MANY))
    out = folder / "facts.kb"
    proc = cli("snapshot", "build", str(write(folder / "facts.metta", source)), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def start_server(kb: Path, sock: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:  # a file, not a pipe nobody reads
        server = subprocess.Popen(
            [sys.executable, "-m", "metta_numba", "serve", str(kb), "--socket", str(sock)], stderr=err
        )
    deadline = time.monotonic() + 120
    while "serving" not in log.read_text():
        if server.poll() is not None:
            raise AssertionError(f"the server exited with {server.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("the server did not start")
        time.sleep(0.05)
    return server


@contextmanager
def running(kb: Path, folder: Path, name: str = "s.sock"):
    sock = folder / name
    server = start_server(kb, sock, folder / f"{name}.log")
    try:
        yield sock
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


@pytest.fixture(scope="module")
def server(kb, folder):
    with running(kb, folder) as sock:
        yield sock


def same_as_direct(server: Path, *args: str, stdin: str | None = None, cwd: Path | None = None) -> None:
    direct = cli(*args, stdin=stdin, cwd=cwd)
    served = cli(*args, "--server", str(server), stdin=stdin, cwd=cwd)
    assert (served.returncode, served.stdout, served.stderr) == (direct.returncode, direct.stdout, direct.stderr)


def test_query_answers_equal_the_direct_command(server, kb, folder):
    kb_arg = str(kb)
    same_as_direct(server, "query", kb_arg, "(edge n1 $y)")
    same_as_direct(server, "query", kb_arg, "(edge $x $y)", "($y from $x)", "--format", "json")
    same_as_direct(server, "query", kb_arg, "(, (edge n1 $y) (edge $y $z))", "--format", "jsonl")
    same_as_direct(server, "query", kb_arg, "(wide $w v3)", "--count")
    same_as_direct(server, "query", kb_arg, "(wide $w $v)", "--limit", "7")
    # relative paths are the client's: its KB argument and its --patterns file
    write(folder / "patterns.metta", "(edge n2 $y)\n(label $n $t)\n(f $x)\n")
    same_as_direct(server, "query", "facts.kb", "--patterns", "patterns.metta", cwd=folder)
    same_as_direct(server, "query", kb_arg, "--patterns", "-", "--format", "json", stdin="(edge $x n3)\n(nothing)\n")
    proc = cli("query", kb_arg, "(edge n1 $y)", "--server", str(server))
    assert proc.returncode == 0 and proc.stdout.strip()  # not two empty outputs compared


def test_query_errors_equal_the_direct_command(server, kb):
    same_as_direct(server, "query", str(kb), "(edge n1 $y")  # parse error: exit 2
    same_as_direct(server, "query", str(kb), "--patterns", "/no/such/file")
    proc = cli("query", str(kb), "(edge n1", "--server", str(server))
    assert proc.returncode == 2 and "<pattern>:1:1" in proc.stderr


def test_run_equals_the_direct_command(server, kb, folder):
    program = '!(match &self (edge n1 $y) $y)\n!(println! "printed while running")\n!(f 3)\n!(+ 1 2)\n'
    write(folder / "prog.metta", program)
    same_as_direct(server, "run", "--load-snapshot", "facts.kb", "prog.metta", cwd=folder)
    same_as_direct(server, "run", "--load-snapshot", str(kb), "-", stdin=program)
    same_as_direct(server, "run", "--load-snapshot", str(kb), "-", stdin="!(assertEqual (f 1) (g 2))\n")
    same_as_direct(server, "run", "--load-snapshot", str(kb), "-", stdin="!(f (g 1)\n")  # parse error


def test_run_changes_stay_in_the_request_unless_saved(kb, folder):
    target = folder / "mutable.kb"
    shutil.copytree(kb, target)
    add = "!(add-atom &self (edge n99 n100))\n!(match &self (edge n99 $y) $y)\n"
    look = "!(match &self (edge n99 $y) $y)\n"
    with running(target, folder, "m.sock") as sock:
        server = ("--server", str(sock))
        first = cli("run", "--load-snapshot", str(target), "-", *server, stdin=add)
        assert first.returncode == 0 and first.stdout == "[()]\n[n100]\n", first.stderr
        again = cli("run", "--load-snapshot", str(target), "-", *server, stdin=look)
        assert again.stdout == "[]\n"
        saved = cli("run", "--load-snapshot", str(target), "--save-snapshot", str(target), "-", *server, stdin=add)
        assert saved.returncode == 0, saved.stderr
        # the server's reader takes in the writer's commit; so does a direct command
        assert cli("run", "--load-snapshot", str(target), "-", *server, stdin=look).stdout == "[n100]\n"
        assert cli("query", str(target), "(edge n99 $y)", *server).stdout == "(edge n99 n100)\n"
    assert cli("query", str(target), "(edge n99 $y)").stdout == "(edge n99 n100)\n"


def test_environment_variable_names_the_server(server, kb):
    env = dict(os.environ, METTA_NUMBA_SERVER=str(server))
    proc = subprocess.run(
        [sys.executable, "-m", "metta_numba", "query", str(kb), "(label $n $t)"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, '(label n1 "one")\n')
    # A program without a KB has nothing to ask the server for: it runs here.
    proc = subprocess.run(
        [sys.executable, "-m", "metta_numba", "run", "-"], input="!(+ 2 3)\n",
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert (proc.returncode, proc.stdout) == (0, "[5]\n")


def test_another_kb_is_refused(server, folder):
    proc = cli("query", str(folder / "other.kb"), "(a $x)", "--server", str(server))
    assert proc.returncode == 2 and "serves" in proc.stderr and "other.kb" in proc.stderr


def test_absent_server_stale_socket_and_not_a_socket(folder, kb):
    missing = cli("query", str(kb), "(a $x)", "--server", str(folder / "none.sock"))
    assert missing.returncode == 4 and "does not exist" in missing.stderr
    stale = folder / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens: a killed server's socket
    proc = cli("query", str(kb), "(a $x)", "--server", str(stale))
    assert proc.returncode == 4 and "stale" in proc.stderr
    plain = write(folder / "plain-file", "keep me")
    proc = cli("query", str(kb), "(a $x)", "--server", str(plain))
    assert proc.returncode == 4 and "not a socket" in proc.stderr
    proc = cli("run", "-", "--server", str(stale), stdin="!(+ 1 1)\n")
    assert proc.returncode == 2 and "--load-snapshot" in proc.stderr
    # serve replaces a stale socket, refuses a file that is no socket
    proc = cli("serve", str(kb), "--socket", str(plain))
    assert proc.returncode == 4 and "not a socket" in proc.stderr and plain.read_text() == "keep me"
    with running(kb, folder, "stale.sock") as sock:
        assert cli("query", str(kb), "(label $n $t)", "--server", str(sock)).returncode == 0


def test_socket_is_private_and_not_taken_twice(server, kb, folder):
    assert stat.S_IMODE(os.stat(server).st_mode) == 0o600
    proc = cli("serve", str(kb), "--socket", str(server))
    assert proc.returncode == 4 and "already listening" in proc.stderr
    assert cli("query", str(kb), "(label $n $t)", "--server", str(server)).returncode == 0
    shared = folder / "shared"
    shared.mkdir(exist_ok=True)
    shared.chmod(0o777)  # others could replace the socket in it
    proc = cli("serve", str(kb), "--socket", str(shared / "s.sock"))
    assert proc.returncode == 4 and "others may write" in proc.stderr
    proc = cli("serve", str(kb), "--socket", str(folder / ("x" * 120)))  # longer than a socket path may be
    assert proc.returncode == 4 and "cannot listen there" in proc.stderr
    proc = cli("serve", str(folder / "no.kb"), "--socket", str(folder / "x.sock"))
    assert proc.returncode == 3 and not (folder / "x.sock").exists()


def length_prefixed(header: bytes) -> bytes:
    return struct.pack(">I", len(header)) + header


def raw_request(sock: Path, payload: bytes) -> list[tuple[bytes, bytes]]:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(60)
        conn.connect(str(sock))
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        frames = []
        while (received := receive_frame(conn)) is not None:
            frames.append(received)
        return frames


def test_malformed_requests_and_vanishing_clients_leave_the_server_answering(server, kb):
    for payload in (
        b"",
        b"\x00\x00",
        struct.pack(">I", 5) + b"{nope",
        struct.pack(">I", 1 << 30),
        struct.pack(">I", 2) + b"[]",
        length_prefixed(b"[" * 200_000),
        length_prefixed(b"metta-numba-request-1\0/\x000\0query"),  # the last field not ended
        length_prefixed(b"metta-numba-request-1\0relative\x000\0query\0"),
        length_prefixed(b"metta-numba-request-1\0/\0-1\0query\0"),
        length_prefixed(b"metta-numba-request-9\0/\x000\0query\0"),
        length_prefixed(b"metta-numba-request-1\0/\x0010\0query\0"),  # 10 bytes of stdin never come
    ):
        frames = raw_request(server, payload)
        assert frames == [] or frames[-1] == (EXIT, b"2")
    # a command the server does not run, and a command line that does not parse
    for argv in (["snapshot", "info", str(kb)], ["query", str(kb), "--limit", "-3", "(a $x)"]):
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(server))
            send_request(conn, argv, "/")
            frames = []
            while (received := receive_frame(conn)) is not None:
                frames.append(received)
        assert frames[-1] == (EXIT, b"2")
    # a client that reads the first bytes of a wide answer, then goes away
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(server))
        send_request(conn, ["query", str(kb), "(wide $w $v)"], "/")
        kind, first = receive_frame(conn)
        assert kind == STDOUT and first.startswith(b"(wide ")
    proc = cli("query", str(kb), "(wide $w v1)", "--count", "--server", str(server))
    assert (proc.returncode, proc.stdout) == (0, f"{len(range(1, MANY, 7))}\n")


def test_concurrent_clients_each_get_their_answer(server, kb):
    expected = {n: cli("query", str(kb), f"(edge n{n} $y)").stdout for n in range(8)}
    results: dict[int, subprocess.CompletedProcess] = {}

    def ask(n: int) -> None:
        results[n] = cli("query", str(kb), f"(edge n{n} $y)", "--server", str(server))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {n: (p.returncode, p.stdout) for n, p in results.items()} == {n: (0, t) for n, t in expected.items()}


def test_sigterm_stops_the_server_and_removes_its_socket(kb, folder):
    sock = folder / "t.sock"
    server = start_server(kb, sock, folder / "t.log")
    assert sock.exists()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    assert not sock.exists()


def test_client_imports_only_the_standard_library(server, kb):
    script = (
        "import sys\n"
        "from metta_numba import cli\n"
        f"code = cli.main(['query', {str(kb)!r}, '(label $n $t)', '--server', {str(server)!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba', 'llvmlite', 'h5py'))\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.stdout == '(label n1 "one")\n'
    assert proc.stderr.strip() == "0 []"


def test_a_cut_answer_is_an_error_not_an_end():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(frame(STDOUT, b"x" * 100)[:10])
        a.close()
        with pytest.raises(ProtocolError, match="closed"):
            receive_frame(b)
