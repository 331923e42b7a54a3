"""`metta-numba repl`: an interactive session over one MeTTa runner.

Input is read until its parentheses and strings are balanced, so an expression may span lines.
Each `!` prints its result line as soon as it has run; other atoms are added to `&self`.
Ctrl-C while evaluating cancels that evaluation only; Ctrl-C at the prompt drops the pending
input; Ctrl-D (or `:quit`) ends the session. History is kept in ~/.metta_numba_history.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from metta_numba.syntax.errors import ParseError
from metta_numba.syntax.parser import MSG_UNCLOSED_PAREN, MSG_UNCLOSED_STRING, iter_program

PROMPT = "metta> "
CONTINUATION = "  ...> "
HISTORY_FILE = os.path.join(os.path.expanduser("~"), ".metta_numba_history")
_INCOMPLETE = (MSG_UNCLOSED_PAREN, MSG_UNCLOSED_STRING, "unclosed string literal")


def needs_more_input(text: str) -> bool:
    """True when `text` is a prefix of valid input: an expression or a string is still open."""
    try:
        for _ in iter_program(text, "<repl>"):
            pass
    except ParseError as err:
        return err.message.startswith(_INCOMPLETE)
    return False


class Repl:
    """The read-eval-print loop. `space` (e.g. a SnapshotSpace over a KB) becomes `&self`."""

    def __init__(self, space=None, stdin=None, stdout=None, sandbox: bool = False) -> None:
        from metta_numba.interp.runner import MeTTa

        self.metta = MeTTa(space=space, sandbox=sandbox)
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty()
        self._readline = None

    def _setup_history(self) -> None:
        if not self.interactive:
            return
        try:
            import readline
        except ImportError:
            return
        self._readline = readline
        try:
            readline.read_history_file(HISTORY_FILE)
        except OSError:
            pass
        readline.set_history_length(2000)

    def _save_history(self) -> None:
        if self._readline is not None:
            try:
                self._readline.write_history_file(HISTORY_FILE)
            except OSError:
                pass

    def _read_line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = self.stdin.readline()
        return None if line == "" else line.rstrip("\n")

    def read_input(self) -> str | None:
        """One complete input (possibly several lines); None at end of input."""
        lines: list[str] = []
        while True:
            line = self._read_line(CONTINUATION if lines else PROMPT)
            if line is None:
                return "\n".join(lines) if lines else None
            lines.append(line)
            text = "\n".join(lines)
            if not needs_more_input(text):
                return text

    def evaluate(self, text: str) -> None:
        from metta_numba.syntax.printer import format_results

        outcome = self.metta.run_program(text, "<repl>")
        for results in outcome.results:
            self.stdout.write(format_results(results) + "\n")
        if outcome.parse_error is not None:
            self.stdout.write(f"{outcome.parse_error}\n")
        self.stdout.flush()

    def loop(self) -> int:
        _take_ctrl_c()
        self._setup_history()
        if self.interactive:
            self.stdout.write("metta-numba REPL. `!(expr)` evaluates, other atoms are added to &self. "
                              "Ctrl-C cancels, Ctrl-D quits.\n")
        try:
            while True:
                try:
                    text = self.read_input()
                except KeyboardInterrupt:
                    self.stdout.write("\n(input dropped)\n")
                    continue
                if text is None:
                    break
                if text.strip() in (":quit", ":q", ":exit"):
                    break
                if not text.strip():
                    continue
                try:
                    self.evaluate(text)
                except KeyboardInterrupt:
                    self.stdout.write("\n(evaluation cancelled)\n")
                    self.stdout.flush()
        finally:
            self._save_history()
            if self.interactive:
                self.stdout.write("\n")
        return 0


def _take_ctrl_c() -> None:
    """Have Ctrl-C raise KeyboardInterrupt, which cancels an evaluation. A process started
    with SIGINT ignored (a job a script runs in the background, such as a test harness under
    `nohup ... &`) inherits that, and Python then leaves it ignored."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
