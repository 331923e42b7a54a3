"""Concurrency test: four reader processes query in a loop while the writer adds, removes and
checkpoints. The writer's changes follow a fixed schedule, so every state the KB passes
through is known: a reader's view must always be one of them (one generation plus a prefix of
its log, never a mix), must never go back in time, and no reader may see an error."""

from __future__ import annotations

import json
import os
import time
import traceback

from metta_numba.atoms import E, G, S, V
from metta_numba.store import layout
from metta_numba.store.kb import PersistentKB

STEPS = 240
CHECKPOINT_EVERY = 25
READERS = 4


def schedule() -> list[tuple[str, int]]:
    """The writer's changes: add item s at step s; at every third step also remove s - 2."""
    ops = []
    for step in range(STEPS):
        ops.append(("add", step))
        if step % 3 == 2:
            ops.append(("remove", step - 2))
    return ops


def states() -> dict[frozenset, int]:
    """Each state the schedule passes through -> the number of changes it took."""
    current: set[int] = set()
    out = {frozenset(): 0}
    for done, (op, item) in enumerate(schedule(), start=1):
        if op == "add":
            current.add(item)
        else:
            current.discard(item)
        out[frozenset(current)] = done
    return out


def item(i: int):
    return E(S("item"), G(i), G(f"text {i}"))


def _reader(path, write_fd: int, deadline: float) -> None:
    known = states()
    report = {"checks": 0, "refreshes": 0, "generations": set(), "error": None}
    try:
        kb = PersistentKB.open(path, readonly=True)
        last = -1
        while time.monotonic() < deadline:
            if kb.refresh():
                report["refreshes"] += 1
            results = kb.query(E(S("item"), V("i"), V("text")))
            seen = frozenset(values[V("i")].value for _, values in results)
            if len(seen) != len(results):
                raise AssertionError("an item appears twice")
            for _, values in results:
                if values[V("text")].value != f"text {values[V('i')].value}":
                    raise AssertionError("an item lost its string")
            progress = known.get(seen)
            if progress is None:
                raise AssertionError(f"inconsistent view: {sorted(seen)}")
            if progress < last:
                raise AssertionError(f"went back in time: {progress} < {last}")
            if len(kb) != len(seen):
                raise AssertionError("len() disagrees with the query")
            # The generation a reader holds stays on disk (what a reader on NFS relies on).
            for name in layout.generation_files(kb.generation):
                if not (path / name).exists():
                    raise AssertionError(f"{name} was deleted while a reader held it")
            last = progress
            report["checks"] += 1
            report["generations"].add(kb.generation)
            if last == len(schedule()):
                break
        kb.close()
    except BaseException:
        report["error"] = traceback.format_exc()
    report["generations"] = sorted(report["generations"])
    with os.fdopen(write_fd, "w") as out:
        out.write(json.dumps(report))


def test_readers_see_consistent_generations_while_the_writer_works(tmp_path):
    path = tmp_path / "kb"
    writer = PersistentKB.create(path, sync="never", checkpoint_every=None)
    deadline = time.monotonic() + 30
    children = []
    for _ in range(READERS):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_fd)
            try:
                _reader(path, write_fd, deadline)
            finally:
                os._exit(0)
        os.close(write_fd)
        children.append((pid, read_fd))
    for done, (op, i) in enumerate(schedule(), start=1):
        if op == "add":
            writer.add(item(i))
        else:
            assert writer.remove(item(i))
        if done % CHECKPOINT_EVERY == 0:
            writer.checkpoint()
        time.sleep(0.0005)
    writer.checkpoint()
    final_generation = writer.generation
    reports = []
    for pid, read_fd in children:
        with os.fdopen(read_fd) as pipe:
            reports.append(json.loads(pipe.read()))
        os.waitpid(pid, 0)
    writer.close()
    for report in reports:
        assert report["error"] is None, report["error"]
        assert report["checks"] > 0
    # The readers did follow the writer through several generations.
    assert max(len(r["generations"]) for r in reports) > 1
    assert max(max(r["generations"]) for r in reports) <= final_generation
    # Every generation but the last was deleted once its readers let go of it.
    with PersistentKB.open(path) as kb:
        assert len(kb) == len(max(states(), key=states().get))
    leftover = sorted(name for name in os.listdir(path) if name.endswith(".act"))
    assert leftover == [f"gen-{final_generation:06d}.act"]
