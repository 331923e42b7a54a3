"""Crash test: a child process changes the KB with sync per change and reports every change
it has been acknowledged; the parent kills it with SIGKILL at random moments, including in
the middle of checkpoints. After each kill the KB must open, verify, and hold exactly the
acknowledged changes, plus possibly the one change in flight when the child died.

The child is a fork of the test process, so a trial costs milliseconds, not an interpreter
start."""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections import Counter

import pytest

from metta_numba.store.kb import PersistentKB
from metta_numba.syntax import format_atom, parse_atom


def atom_text(i: int) -> str:
    # Strings and variables exercise the term overlay and the variable-name lists.
    return f'(item {i} "text {i}")' if i % 2 == 0 else f"(rule {i} $x (f $x))"


def _child(path, write_fd: int, seed: int, first_id: int) -> None:
    out = os.fdopen(write_fd, "w", buffering=1)
    try:
        kb = PersistentKB.open(path, sync="always", checkpoint_every=None)
        present = sorted(int(format_atom(a).split()[1]) for a in kb.atoms())
        rng = random.Random(seed)
        next_id = first_id
        while True:
            roll = rng.random()
            if roll < 0.1:
                out.write("B checkpoint\n")
                kb.checkpoint()
            elif roll < 0.3 and present:
                victim = present.pop(rng.randrange(len(present)))
                out.write(f"B remove {victim}\n")
                assert kb.remove(parse_atom(atom_text(victim)))
            else:
                out.write(f"B add {next_id}\n")
                kb.add(parse_atom(atom_text(next_id)))
                present.append(next_id)
                next_id += 1
            out.write("A\n")
    except BaseException:
        out.write("E " + traceback.format_exc().replace("\n", " | ") + "\n")
        out.flush()
        os._exit(1)


def _run_trial(path, rng: random.Random, trial: int) -> tuple[list[tuple[str, int]], tuple[str, int] | None]:
    """Fork a writer, kill it at a random moment; return its acknowledged changes and the
    change it had started but not acknowledged (if any)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_fd)
        try:
            _child(path, write_fd, seed=trial, first_id=trial * 1000)
        finally:
            os._exit(0)
    os.close(write_fd)
    lines = []
    target_acks = rng.randint(0, 20)
    kill_in_checkpoint = rng.random() < 0.5
    with os.fdopen(read_fd, "r") as reader:
        acks = 0
        for line in reader:
            lines.append(line.rstrip("\n"))
            if line.startswith("E "):
                break
            if line == "A\n":
                acks += 1
            if acks >= target_acks or (kill_in_checkpoint and line == "B checkpoint\n"):
                time.sleep(rng.random() * (0.02 if line == "B checkpoint\n" else 0.002))
                os.kill(pid, signal.SIGKILL)
                break
        lines.extend(rest.rstrip("\n") for rest in reader)
    os.waitpid(pid, 0)
    errors = [line for line in lines if line.startswith("E ")]
    assert not errors, errors[0]
    acknowledged: list[tuple[str, int]] = []
    in_flight = None
    for line in lines:
        if line.startswith("B "):
            parts = line.split()
            in_flight = (parts[1], int(parts[2]) if len(parts) > 2 else -1)
        elif line == "A":
            acknowledged.append(in_flight)
            in_flight = None
    return acknowledged, in_flight


def _apply(model: Counter, change: tuple[str, int]) -> None:
    op, item = change
    if op == "add":
        model[atom_text(item)] += 1
    elif op == "remove":
        model[atom_text(item)] -= 1
        if not model[atom_text(item)]:
            del model[atom_text(item)]


def run_crash_trials(tmp_path, trials: int, seed: int) -> dict:
    path = tmp_path / "kb"
    PersistentKB.create(path).close()
    rng = random.Random(seed)
    model: Counter = Counter()
    in_flight_applied = killed_in_checkpoint = 0
    for trial in range(trials):
        acknowledged, in_flight = _run_trial(path, rng, trial)
        for change in acknowledged:
            _apply(model, change)
        with PersistentKB.open(path) as kb:
            kb.verify()
            got = Counter(format_atom(a) for a in kb.atoms())
        if got != model and in_flight is not None:
            with_in_flight = model.copy()
            _apply(with_in_flight, in_flight)
            if got == with_in_flight:
                model = with_in_flight
                in_flight_applied += 1
        assert got == model, f"trial {trial}: lost or invented changes (in flight: {in_flight})"
        if in_flight is not None and in_flight[0] == "checkpoint":
            killed_in_checkpoint += 1
    return {
        "in_flight_applied": in_flight_applied,
        "killed_in_checkpoint": killed_in_checkpoint,
        "atoms": sum(model.values()),
    }


def test_crash_trials(tmp_path):
    stats = run_crash_trials(tmp_path, trials=30, seed=1)
    assert stats["atoms"] > 0


@pytest.mark.slow
def test_crash_trials_many(tmp_path):
    stats = run_crash_trials(tmp_path, trials=500, seed=2)
    # With this many trials, kills land inside checkpoints and inside appends.
    assert stats["killed_in_checkpoint"] > 0
    assert stats["in_flight_applied"] > 0
