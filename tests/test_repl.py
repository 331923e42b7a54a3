"""The REPL driven through a pseudo-terminal, as a person would use it."""

import os
import signal
import sys

import pytest

pexpect = pytest.importorskip("pexpect")

PROMPT = "metta> "


@pytest.fixture
def repl(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), TERM="dumb")
    child = pexpect.spawn(
        sys.executable, ["-m", "metta_numba", "repl"], env=env, encoding="utf-8", timeout=60, echo=False
    )
    child.expect_exact(PROMPT)
    yield child
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()


def _ignoring_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_cancels_even_when_the_repl_starts_with_it_ignored(tmp_path):
    # A job a script starts in the background inherits SIGINT ignored, and Python then leaves
    # it so: the REPL takes it back, or Ctrl-C would do nothing.
    env = dict(os.environ, HOME=str(tmp_path), TERM="dumb")
    child = pexpect.spawn(
        sys.executable, ["-m", "metta_numba", "repl"], env=env, encoding="utf-8", timeout=60, echo=False,
        preexec_fn=_ignoring_ctrl_c,
    )  # fmt: skip
    try:
        child.expect_exact(PROMPT)
        with open(f"/proc/{child.pid}/status") as status:
            ignored = next(int(line.split()[1], 16) for line in status if line.startswith("SigIgn:"))
        assert not ignored & (1 << (signal.SIGINT - 1)), "the REPL takes Ctrl-C back"
        child.sendline("!(let $x (superpose (1 2 3)) (collapse (match &self ($x) $x)))")
        child.expect_exact(PROMPT)
        child.sendintr()  # at the prompt: the line is dropped, the session goes on
        child.expect_exact(PROMPT)
        assert "[3]" in _ask(child, "!(+ 1 2)")
    finally:
        child.close(force=True)


def _ask(child, line: str) -> str:
    child.sendline(line)
    child.expect_exact(PROMPT)
    return child.before


def test_define_query_interrupt_and_query_again(repl):
    assert _ask(repl, "(= (double $x) (* 2 $x))").strip() == ""
    assert "[42]" in _ask(repl, "!(double 21)")
    # Multi-line input: the query is read until its parentheses balance.
    repl.sendline("!(double")
    repl.expect_exact("...> ")
    repl.sendline("  5)")
    repl.expect_exact(PROMPT)
    assert "[10]" in repl.before

    # An evaluation that would run for minutes: Ctrl-C cancels it, the session survives.
    _ask(repl, "(= (slow-fib $n) (if (< $n 2) $n (+ (slow-fib (- $n 1)) (slow-fib (- $n 2)))))")
    repl.sendline("!(slow-fib 60)")
    with pytest.raises(pexpect.TIMEOUT):
        repl.expect_exact(PROMPT, timeout=1.5)
    repl.sendintr()
    repl.expect_exact(PROMPT, timeout=30)
    assert "cancelled" in repl.before

    # Definitions made before the interrupt are still there.
    assert "[14]" in _ask(repl, "!(double 7)")


def test_parse_error_is_reported_and_session_goes_on(repl):
    out = _ask(repl, '!(foo "bad \\q escape")')
    assert "<repl>:1:" in out and "invalid escape" in out
    assert "[3]" in _ask(repl, "!(+ 1 2)")


def test_history_is_saved(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), TERM="dumb")
    child = pexpect.spawn(sys.executable, ["-m", "metta_numba", "repl"], env=env, encoding="utf-8", timeout=60)
    child.expect_exact(PROMPT)
    child.sendline("!(+ 40 2)")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    history = (tmp_path / ".metta_numba_history").read_text()
    assert "!(+ 40 2)" in history
