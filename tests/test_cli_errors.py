"""The command's answers to bad paths and bad arguments: a one-line message and the promised
exit code (3 for anything wrong with a KB path, 2 for usage), never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import unprivileged
from test_cli import FACTS, cli, write


def assert_one_line_error(proc, code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metta-numba: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def built_kb(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kb")
    source = write(folder / "facts.metta", FACTS)
    out = folder / "facts.kb"
    proc = cli("snapshot", "build", str(source), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_file_where_a_kb_is_expected_exits_3(tmp_path):
    program = write(tmp_path / "p.metta", "!(+ 1 1)\n")
    cases = [
        (["query", "/etc/passwd", "(a $x)"], "/etc/passwd"),
        (["--load-snapshot", str(program), str(program)], str(program)),
        (["snapshot", "info", "/dev/null"], "/dev/null"),
        (["snapshot", "verify", "/etc/passwd"], "/etc/passwd"),
        (["query", "/etc/passwd/inside", "(a $x)"], "/etc/passwd/inside"),
    ]
    for args, named in cases:
        assert_one_line_error(cli(*args), 3, named)


def test_negative_limit_is_a_usage_error(built_kb):
    proc = cli("query", str(built_kb), "(edge $x $y)", "--limit", "-5")
    assert proc.returncode == 2
    assert "--limit" in proc.stderr and "Traceback" not in proc.stderr
    limited = cli("query", str(built_kb), "(edge $x $y)", "--limit", "3")
    assert limited.returncode == 0 and len(limited.stdout.splitlines()) == 3


def test_query_options_may_come_before_the_pattern(built_kb):
    after = cli("query", str(built_kb), "(edge $x $y)", "$x", "--limit", "3")
    before = cli("query", str(built_kb), "--limit", "3", "(edge $x $y)", "$x")
    assert after.returncode == before.returncode == 0, before.stderr
    assert before.stdout == after.stdout and len(after.stdout.splitlines()) == 3
    counted = cli("query", "--count", str(built_kb), "(edge $x $y)")
    assert counted.returncode == 0 and int(counted.stdout) >= 3
    for extra in (["(edge $x $y)", "$x", "surplus"], ["--limt", "3", "(edge $x $y)"]):
        proc = cli("query", str(built_kb), *extra)
        assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr, proc.stderr


def test_nul_in_a_program_is_a_parse_error(tmp_path):
    source = tmp_path / "nul.metta"
    source.write_bytes(b"(a b)\n(sym\x00bol c)\n")
    proc = cli(str(source))
    assert proc.returncode == 1
    assert f"{source}:2:5:" in proc.stderr and "NUL" in proc.stderr
    built = cli("snapshot", "build", str(source), "-o", str(tmp_path / "x.kb"))
    assert built.returncode == 1 and f"{source}:2:5:" in built.stderr


# --- as a user without the rights (needs root to switch user) ------------------------------------


@pytest.fixture
def shared_kb(built_kb):
    """A copy of the KB in a folder every user can reach."""
    folder = unprivileged.world_readable_dir("kbcopy-")
    copy = folder / "facts.kb"
    shutil.copytree(built_kb, copy)
    for path in [copy, *copy.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    program = folder / "p.metta"
    program.write_text("!(add-atom &self (edge new1 new2))\n!(match &self (edge new1 $y) $y)\n")
    program.chmod(0o644)
    yield copy
    shutil.rmtree(folder)


def test_unreadable_kb_files_exit_3_for_an_unprivileged_user(shared_kb):
    unprivileged.require()
    # The KB is owned by root and read-only to others: reading works, writing does not.
    proc = unprivileged.run_as_nobody(["query", str(shared_kb), "(edge n1 $y)", "$y"])
    assert proc.returncode == 0 and proc.stdout == "n10\n", proc.stderr
    program = shared_kb.parent / "p.metta"
    save = ["--load-snapshot", str(shared_kb), "--save-snapshot", str(shared_kb), str(program)]
    proc = unprivileged.run_as_nobody(save)
    assert_one_line_error(proc, 3, str(shared_kb), "ermission denied")
    act = next(shared_kb.glob("gen-*.act"))
    act.chmod(0o600)
    proc = unprivileged.run_as_nobody(["query", str(shared_kb), "(edge n1 $y)"])
    assert_one_line_error(proc, 3, act.name, "ermission denied")
    shared_kb.chmod(0o700)
    for args in (["query", str(shared_kb), "(edge n1 $y)"], ["snapshot", "info", str(shared_kb)]):
        assert_one_line_error(unprivileged.run_as_nobody(args), 3, str(shared_kb), "ermission denied")


@pytest.mark.skipif(os.getuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_kb_file_exits_3_for_this_user(built_kb, tmp_path):
    copy = tmp_path / "copy.kb"
    shutil.copytree(built_kb, copy)
    act = next(copy.glob("gen-*.act"))
    act.chmod(0)
    assert_one_line_error(cli("query", str(copy), "(edge n1 $y)"), 3, act.name)


def test_verify_reports_a_torn_log_and_a_writer_warns_in_one_line(tmp_path):
    from metta_numba.store import layout
    from metta_numba.store.kb import PersistentKB
    from metta_numba.store.wal import scan_wal
    from metta_numba.syntax import parse_atom

    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        for i in range(5):
            kb.add(parse_atom(f"(logged {i})"))
        wal = path / layout.wal_name(kb.generation)
    os.truncate(wal, wal.stat().st_size - 3)
    torn_at = scan_wal(wal, 1).end
    proc = cli("snapshot", "verify", str(path))
    assert proc.returncode == 0, proc.stderr
    assert f"torn tail at offset {torn_at:,} ({wal.stat().st_size - torn_at:,} bytes)" in proc.stdout
    proc = cli("snapshot", "compact", str(path))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("metta-numba: warning: ")]
    assert len(warnings) == 1 and "torn tail" in warnings[0] and proc.stderr.count("\n") == 1
    proc = cli("snapshot", "verify", str(path))
    assert "torn tail cut from the log earlier" in proc.stdout and "torn tail at offset" not in proc.stdout


def test_warmup_fills_the_kernel_cache_and_prunes_older_kernel_folders():
    from metta_numba import kernel_cache

    cache = Path(os.environ["NUMBA_CACHE_DIR"])
    current = cache / f"kernels-{kernel_cache.kernel_source_digest()}"
    older = cache / "kernels-00000000deadbeef"  # what an edit of a kernel module leaves behind
    (older / "sub").mkdir(parents=True, exist_ok=True)
    (older / "sub" / "f.nbi").write_bytes(b"stale")
    os.utime(older, (1_000_000, 1_000_000))
    proc = cli("warmup")
    assert proc.returncode == 0, proc.stderr
    count = int(proc.stdout.split()[0])
    assert count >= 100 and os.environ["NUMBA_CACHE_DIR"] in proc.stdout
    assert not older.exists() and "kernels-00000000deadbeef" in proc.stdout
    assert current.is_dir() and any(current.rglob("*.nbi"))
