"""A program run is one transaction on the KB it saves to: killed at any moment, the KB holds
all of the run's changes or none. The API's `PersistentKB.add` stays durable per call, and
`repl --load-snapshot` leaves the KB alone unless --save-snapshot names it.

The kill trials fork the test process (kernels already loaded), run `metta-numba
--load-snapshot KB --save-snapshot KB program.metta` in the child and SIGKILL it after a
random delay, spread over the whole run including its commit."""

from __future__ import annotations

import argparse
import os
import random
import signal
import time

import pytest
from test_cli import cli, write

from metta_numba.store import layout
from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import format_atom, parse_atom

ITEMS_PER_RUN = 400


def program_text(trial: int, items: int) -> str:
    """Adds `items` atoms (top-level ones and through add-atom) and removes the trial's seed."""
    lines = [f"(item {trial} {i})" for i in range(0, items, 2)]
    lines += [f"!(add-atom &self (item {trial} {i}))" for i in range(1, items, 2)]
    lines.append(f"!(remove-atom &self (seed {trial}))")
    return "\n".join(lines) + "\n"


def kb_state(path, trial: int) -> tuple[int, int]:
    """(items of the trial, seeds of the trial) in the KB, opened as a writer (which cleans up
    after a killed one) and verified."""
    with PersistentKB.open(path) as kb:
        kb.verify()
        items = len(kb.query(parse_atom(f"(item {trial} $i)")))
        seeds = kb.count(parse_atom(f"(seed {trial})"))
    return items, seeds


def run_in_child(path, program) -> int:
    """Fork a child that runs the program against the KB, saving to it; return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            from metta_numba import commands

            args = argparse.Namespace(
                file=str(program),
                load_snapshot=str(path),
                save_snapshot=str(path),
                no_merkleize=True,
                verify=False,
                sandbox=False,
            )
            code = commands.run_file(args)
        finally:
            os._exit(code)
    return pid


def run_kill_trials(tmp_path, trials: int, items: int, seed: int) -> dict:
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        kb.add(parse_atom("(base fact)"))
        for trial in range(trials + 1):
            kb.add(parse_atom(f"(seed {trial})"))
        kb.checkpoint()
    rng = random.Random(seed)
    # A run left to finish tells how long a whole run takes, commit included.
    program = write(tmp_path / "calibrate.metta", program_text(trials, items))
    started = time.perf_counter()
    pid = run_in_child(path, program)
    _, status = os.waitpid(pid, 0)
    full_run = time.perf_counter() - started
    assert os.waitstatus_to_exitcode(status) == 0
    assert kb_state(path, trials) == (items, 0)
    stats = {"committed": 0, "dropped": 0, "killed_in_commit": 0, "full_run_seconds": full_run}
    committed_trials = []
    for trial in range(trials):
        program = write(tmp_path / f"t{trial}.metta", program_text(trial, items))
        pid = run_in_child(path, program)
        time.sleep(rng.uniform(0, 1.1 * full_run))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        current = layout.read_current(path)
        if any(number > current for number in layout.generations_on_disk(path)):
            stats["killed_in_commit"] += 1  # files of the next generation, not made current
        state = kb_state(path, trial)
        assert state in ((items, 0), (0, 1)), f"trial {trial}: {state[0]} of {items} items, seed {state[1]}"
        if state == (items, 0):
            stats["committed"] += 1
            committed_trials.append(trial)
        else:
            stats["dropped"] += 1
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.count(parse_atom("(base fact)")) == 1
        for trial in committed_trials:  # later runs did not undo earlier commits
            assert len(kb.query(parse_atom(f"(item {trial} $i)"))) == items
    return stats


def test_killed_save_snapshot_runs_leave_all_or_nothing(tmp_path):
    stats = run_kill_trials(tmp_path, trials=30, items=ITEMS_PER_RUN, seed=11)
    assert stats["committed"] + stats["dropped"] == 30
    assert stats["dropped"] > 0, stats  # kills do land before the commit


@pytest.mark.slow
def test_killed_save_snapshot_runs_leave_all_or_nothing_many(tmp_path):
    stats = run_kill_trials(tmp_path, trials=500, items=5000, seed=12)
    assert stats["committed"] > 0 and stats["dropped"] > 0, stats
    assert stats["killed_in_commit"] > 0, stats


# --- the transaction through the API ---------------------------------------------------------------


def test_transaction_commits_at_the_end_and_drops_on_an_exception(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path, checkpoint_every=3) as kb:
        kb.add(parse_atom("(kept 0)"))
        generation = kb.generation
        with kb.transaction():
            for i in range(10):  # more than checkpoint_every: no automatic checkpoint inside
                kb.add(parse_atom(f"(in tx {i})"))
            assert kb.generation == generation
            with PersistentKB.open(path, readonly=True) as reader:
                assert reader.count(parse_atom("(in tx 0)")) == 0  # nothing is in the log yet
        assert kb.generation == generation + 1
        with pytest.raises(RuntimeError), kb.transaction():
            kb.add(parse_atom("(dropped)"))
            assert kb.remove(parse_atom("(kept 0)"))
            raise RuntimeError("the run failed")
        assert kb.count(parse_atom("(dropped)")) == 0 and kb.count(parse_atom("(kept 0)")) == 1
        kb.add(parse_atom("(durable per call)"))
    with PersistentKB.open(path, readonly=True) as kb:
        texts = sorted(format_atom(a) for a in kb.atoms())
    assert texts == sorted(["(durable per call)", "(kept 0)"] + [f"(in tx {i})" for i in range(10)])


def test_api_add_is_durable_per_call_when_killed(tmp_path):
    path = tmp_path / "kb"
    PersistentKB.create(path).close()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            kb = PersistentKB.open(path)
            kb.add(parse_atom("(acknowledged)"))
            os.write(write_fd, b"A")
            time.sleep(60)
        finally:
            os._exit(0)
    assert os.read(read_fd, 1) == b"A"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.count(parse_atom("(acknowledged)")) == 1


# --- repl ------------------------------------------------------------------------------------------


def test_repl_over_a_kb_keeps_changes_in_memory_unless_saving(tmp_path):
    path = tmp_path / "kb"
    with PersistentKB.create(path) as kb:
        kb.add(parse_atom("(edge a b)"))
        kb.checkpoint()
    session = "!(add-atom &self (edge b c))\n!(match &self (edge $x $y) $x)\n"
    proc = cli("repl", "--load-snapshot", str(path), stdin=session)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()[-1].strip("[]").split(", ")) == ["a", "b"]
    with PersistentKB.open(path) as kb:  # the repl held no writer lock and wrote nothing
        assert kb.count(parse_atom("(edge b c)")) == 0 and kb.pending_changes == 0
    proc = cli("repl", "--load-snapshot", str(path), "--save-snapshot", str(path), stdin=session)
    assert proc.returncode == 0, proc.stderr
    with PersistentKB.open(path, readonly=True) as kb:
        assert kb.count(parse_atom("(edge b c)")) == 1


def test_saving_in_place_refuses_a_python_value_and_reports_states(tmp_path):
    # Atoms holding objects stay in the process beside the KB: an in-place save judges them as
    # a fresh save does, instead of dropping them silently.
    kb_path = tmp_path / "kb"
    with PersistentKB.create(kb_path) as kb:
        kb.add(parse_atom("(seed 1)"))
        kb.checkpoint()
    program = write(
        tmp_path / "objects.metta",
        "!(add-atom &self (plain fact))\n!(let $l (py-list (1 2)) (add-atom &self (holds $l)))\n",
    )
    proc = cli("--load-snapshot", str(kb_path), "--save-snapshot", str(kb_path), str(program))
    assert proc.returncode == 1 and "(holds [1, 2])" in proc.stderr
    with PersistentKB.open(kb_path, readonly=True) as kb:
        assert [format_atom(a) for a in kb.atoms()] == ["(seed 1)"]  # nothing of the run committed
    states = write(tmp_path / "states.metta", "!(bind! &st (new-state 5))\n!(add-atom &self (cell &st))\n"
                   "!(add-atom &self (plain fact))\n")
    proc = cli("--load-snapshot", str(kb_path), "--save-snapshot", str(kb_path), str(states))
    assert proc.returncode == 0 and "1 atoms of &self hold a space or a state" in proc.stderr
    with PersistentKB.open(kb_path, readonly=True) as kb:
        assert sorted(format_atom(a) for a in kb.atoms()) == ["(plain fact)", "(seed 1)"]
