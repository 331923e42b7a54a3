"""What each `metta-numba` subcommand does. `cli.py` parses the arguments and calls these;
each returns the exit code, or raises cli.CommandError with a message and an exit code."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

from metta_numba.cli import EXIT_BAD_KB, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, start_up_done


def _progress_enabled() -> bool:
    """Progress goes to a terminal or a Jupyter kernel (called from a notebook); piped or
    redirected runs stay quiet."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


@contextmanager
def _stage(name: str, enabled: bool):
    """Report a long step on stderr: its name, then how long it took."""
    start = time.perf_counter()
    if enabled:
        print(f"{name}...", end="", file=sys.stderr, flush=True)
    yield
    if enabled:
        print(f" {time.perf_counter() - start:.2f} s", file=sys.stderr, flush=True)


@contextmanager
def _kb_errors():
    """Turn store errors into exit code 3 with the store's message (which names the file)."""
    from metta_numba.store.errors import SnapshotError

    try:
        yield
    except SnapshotError as err:
        raise CommandError(str(err), EXIT_BAD_KB) from None


def _parse_error_exit(err) -> CommandError:
    return CommandError(str(err), EXIT_FAILED)


# --- run -------------------------------------------------------------------------------------


def _read_program(file: str) -> tuple[str, str]:
    text, _, name = _read_program_bytes(file)
    return text, name


def _read_program_bytes(file: str) -> tuple[str, bytes, str]:
    """(text, the bytes it was decoded from, name) of a program file, or of stdin for `-`."""
    from metta_numba.syntax.errors import ParseError
    from metta_numba.syntax.parser import decode_source

    if file == "-":
        data, name = sys.stdin.buffer.read(), "<stdin>"
    else:
        try:
            data, name = Path(file).read_bytes(), file
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file", EXIT_FAILED) from None
        except IsADirectoryError:
            raise CommandError(f"{file}: is a directory, not a .metta file", EXIT_USAGE) from None
        except OSError as err:
            raise CommandError(f"{file}: {err.strerror}", EXIT_FAILED) from None
    try:
        return decode_source(data, name), data, name
    except ParseError as err:
        raise _parse_error_exit(err) from None


EARLY_SCAN_MIN_CHARS = 1 << 20
"""A program whose first run of plain atoms is this long starts its scan early (the bulk
loader takes runs of at least interp.bulk_load.BULK_MIN_CHARS)."""


def _give_back_large_frees() -> None:
    """Have glibc's malloc hand every large block (128 KiB or more) straight back to the system
    when it is freed. By default it raises that threshold to the largest block freed so far,
    after which the bulk loader's temporary arrays (sort orders, scan buffers), freed in
    several threads' arenas, stay in the process: some 15-20 MB of peak memory for 400K
    rules. Elsewhere than glibc this does nothing."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(ctypes.c_int(-3), ctypes.c_int(128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def run_file(args) -> int:
    """Run a program and print one line per `!`, after the whole run, as hyperon does."""
    text, data, name = _read_program_bytes(args.file)
    if getattr(args, "load_snapshot", None) is None and len(text) >= EARLY_SCAN_MIN_CHARS:
        # The bulk loader will read the opening run of a big program: it is scanned while
        # the interpreter is set up (syntax.bulk_parallel).
        from metta_numba.syntax.bulk_parallel import start_early_scan

        _give_back_large_frees()
        if start_early_scan(text, name, EARLY_SCAN_MIN_CHARS, data):
            from metta_numba.space.segment import load_kernels_in_background

            load_kernels_in_background()
    del data  # (the early scan holds it while it needs it)
    from metta_numba.interp.runner import MeTTa
    from metta_numba.syntax.printer import format_results

    if _sharded(args.load_snapshot) or _sharded(args.save_snapshot):
        from metta_numba.dist.sharded_commands import run_file as run_sharded

        with _kb_errors():
            outcome = run_sharded(args, text, name)
        return _run_exit(outcome, name)
    with _kb_errors(), _program_space(args) as (space, kb):
        # The sandbox is the program's folder (the working directory for stdin).
        folder = str(Path(name).resolve().parent) if args.sandbox and name != "<stdin>" else None
        compile = not getattr(args, "no_compile", False)
        metta = MeTTa(space=space, cwd=folder, sandbox=args.sandbox, compile=compile)
        start_up_done()
        outcome = metta.run_program(text, filename=name)
        if outcome.parse_error is not None:
            # hyperon prints no result line at all when the program has a syntax error.
            raise _parse_error_exit(outcome.parse_error)
        out = sys.stdout
        for results in outcome.results:
            out.write(format_results(results) + "\n")
        out.flush()
        if args.save_snapshot and not _saves_in_place(kb, args.save_snapshot):
            _save_space(metta, args.save_snapshot, merkleize=not args.no_merkleize)
        elif args.save_snapshot:
            _check_in_place_save(space)
    return _run_exit(outcome, name)


def _sharded(path) -> bool:
    if path is None:
        return False  # (importing the manifest module costs several milliseconds)
    from metta_numba.dist.manifest import is_sharded

    return is_sharded(path)


def _run_exit(outcome, name: str) -> int:
    from metta_numba.syntax.printer import format_atom

    failed = _failed_assertion(outcome)
    if failed is not None:
        print(f"{name}: assertion failed: {format_atom(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


@contextmanager
def _program_space(args):
    """(&self's space, the KB under it) for `run` and `repl`: (None, None) without
    --load-snapshot. The KB is opened read-only, so the program's changes stay in memory,
    unless --save-snapshot names the same KB: then it is opened for writing and the whole
    session is one transaction, committed when the block ends without an exception (a
    crash, a kill or an error before that leaves the KB as it was).
    In a server (`served_kb`: the KB it keeps open read-only), the program runs over that
    KB, unless it saves in place: that goes through a writer opened here, as without a server."""
    if not args.load_snapshot:
        yield None, None
        return
    from metta_numba.space import SnapshotSpace
    from metta_numba.store import PersistentKB

    target = getattr(args, "save_snapshot", None)
    in_place = bool(target) and Path(target).resolve() == Path(args.load_snapshot).resolve()
    served = getattr(args, "served_kb", None)
    if served is not None and not in_place:
        if args.verify:
            served.verify()
        yield SnapshotSpace(served), served
        return
    with PersistentKB.open(
        args.load_snapshot, readonly=not in_place, verify=args.verify, prefetch=getattr(args, "prefetch", False)
    ) as kb:
        if in_place:
            with kb.transaction():
                yield SnapshotSpace(kb), kb
        else:
            yield SnapshotSpace(kb), kb


def _saves_in_place(kb, target: str) -> bool:
    return kb is not None and not kb.readonly and Path(kb.directory).resolve() == Path(target).resolve()


def _failed_assertion(outcome):
    """The Error atom that ended the run, when an assert (`assertEqual` and family) made it."""
    from metta_numba.atoms import Expression, Symbol

    if not outcome.stopped_on_error or not outcome.results:
        return None
    for atom in outcome.results[-1]:
        if type(atom) is Expression and len(atom.children) == 3 and atom.children[0] == Symbol("Error"):
            culprit = atom.children[1]
            head = culprit.children[0] if type(culprit) is Expression and culprit.children else None
            if type(head) is Symbol and head.name.startswith("assert"):
                return atom
    return None


def _save_space(metta, target: str, merkleize: bool) -> None:
    """Save &self as a fresh build at `target`, a new generation that replaces its content in
    one switch of CURRENT (saving into the loaded KB itself is its transaction's commit)."""
    from metta_numba.codec import CodecError
    from metta_numba.store.snapshot import save_atoms, save_paths

    space = metta.space
    try:
        if getattr(space, "_segment", None) is not None:
            # A bulk-loaded space: its segment's paths are saved as they are, not re-encoded.
            from metta_numba.space.segment import space_paths

            data, offsets, names, skipped = space_paths(space, space._segment.terms)
            report = save_paths(data, offsets, names, space._segment.terms, target, merkleize=merkleize)
            report["skipped"] = skipped
        else:
            report = save_atoms(space.atoms(), target, merkleize=merkleize)
    except CodecError as err:
        raise CommandError(f"--save-snapshot: {err}", EXIT_FAILED) from None
    _report_skipped(report["skipped"])


def _report_skipped(skipped: int) -> None:
    if skipped:
        print(
            f"metta-numba: {skipped} atoms of &self hold a space or a state and were not saved "
            "(they have no on-disk form)",
            file=sys.stderr,
        )


def _check_in_place_save(space) -> None:
    """Saving into the loaded KB commits its own log. Atoms the program added that hold
    objects never went there (they stay in this process: SnapshotSpace.local), so they are
    judged as a fresh save judges them: a Python value is refused before anything is committed,
    states and spaces are reported as not saved."""
    local = getattr(space, "local", None)
    if local is None or not local.count():
        return
    from metta_numba.codec import CodecError, TermStore, encode_atoms

    try:
        *_, skipped = encode_atoms(local.atoms(), TermStore())
    except CodecError as err:
        raise CommandError(f"--save-snapshot: {err}", EXIT_FAILED) from None
    _report_skipped(skipped)


# --- repl --------------------------------------------------------------------------------------


def run_repl(args) -> int:
    """An interactive session. Over a KB, as `run`: changes stay in memory unless
    --save-snapshot is given, which saves the session's &self when it ends."""
    from metta_numba.repl import Repl

    if _sharded(args.load_snapshot):
        from metta_numba.dist.sharded_commands import run_repl as run_sharded_repl

        with _kb_errors():
            return run_sharded_repl(args.load_snapshot)
    with _kb_errors(), _program_space(args) as (space, kb):
        repl = Repl(space=space, sandbox=args.sandbox)
        code = repl.loop()
        if args.save_snapshot and not _saves_in_place(kb, args.save_snapshot):
            _save_space(repl.metta, args.save_snapshot, merkleize=not args.no_merkleize)
        elif args.save_snapshot:
            _check_in_place_save(space)
    return code


# --- snapshot -------------------------------------------------------------------------------------


def snapshot(args) -> int:
    with _kb_errors():
        if args.action == "build" and (args.shards is not None or args.workers is not None or args.scheduler):
            from metta_numba.dist.sharded_commands import snapshot_build

            return snapshot_build(args)
        if args.action == "build":
            return _snapshot_build(args)
        if _sharded(args.kb):
            from metta_numba.dist.sharded_commands import snapshot_action

            return snapshot_action(args)
        from metta_numba.store import snapshot as ops

        if args.action == "info":
            _print_info(ops.snapshot_info(args.kb))
        elif args.action == "verify":
            report = ops.snapshot_verify(args.kb)
            print(
                f"{report['path']}: generation {report['generation']} ok, "
                f"{report['bytes_checked']:,} bytes checked, {report['pending_changes']} pending changes "
                f"in the log ({report['seconds']:.2f} s)"
            )
            _print_log_notes(report)
        elif args.action == "compact":
            report = ops.snapshot_compact(args.kb)
            print(
                f"{report['path']}: generation {report['previous_generation']} -> {report['generation']}, "
                f"{report['changes_folded']} changes folded, "
                f"{report['bytes_before']:,} -> {report['bytes_after']:,} bytes"
            )
        elif args.action == "upgrade":
            report = ops.snapshot_upgrade(args.kb)
            if report["generation"] == report["previous_generation"]:
                print(f"{report['path']}: already in store format {report['format']} ({report['generation']})")
            else:
                print(
                    f"{report['path']}: generation {report['previous_generation']} (store format "
                    f"{report['previous_format']}) -> {report['generation']} (store format {report['format']}), "
                    f"{report['changes_folded']} changes folded, "
                    f"{report['bytes_before']:,} -> {report['bytes_after']:,} bytes"
                )
        elif args.action == "warm":
            report = ops.snapshot_warm(args.kb)
            for item in report["sections"]:
                print(f"  {item['section']}: {item['bytes']:,} bytes")
            print(
                f"{report['path']}: generation {report['generation']}, read {report['bytes']:,} bytes "
                f"into the page cache in {report['seconds'] * 1e3:.1f} ms"
            )
    return EXIT_OK


def _print_log_notes(report: dict) -> None:
    """What verify found in the log that is not damage: a torn tail, tails kept aside."""
    if report["torn_tail"] is not None:
        offset, size = report["torn_tail"]
        print(
            f"{report['path']}: the log ends in a torn tail at offset {offset:,} ({size:,} bytes): its last "
            "append was cut short (a crash) or the file lost its end; the records before it replay, "
            "and the next writer cuts the tail off into a side file"
        )
    for name in report["torn_copies"]:
        print(f"{report['path']}: {name} holds a torn tail cut from the log earlier")


def _snapshot_build(args) -> int:
    from metta_numba.store.chunked_build import QueriesInSourceError, build_from_sources
    from metta_numba.syntax.errors import ParseError

    budget, jobs = _build_resources(args)
    for source in args.sources:
        try:
            with open(source, "rb"):
                pass
        except OSError as err:
            raise CommandError(f"{source}: {err.strerror}", EXIT_FAILED) from None
    bars = _BuildBars(sum(Path(s).stat().st_size for s in args.sources), _progress_enabled())
    try:
        report = build_from_sources(
            args.sources,
            args.output,
            memory_budget=budget,
            jobs=jobs,
            merkleize=not args.no_merkleize,
            argindex=not args.no_index,
            index_options=_index_options(args),
            on_read=bars.read,
            on_merge=bars.merge,
            on_index=bars.index,
        )
    except ParseError as err:
        raise _parse_error_exit(err) from None
    except QueriesInSourceError as err:
        raise CommandError(str(err), EXIT_FAILED) from None
    finally:
        bars.close()
    counts = report["counts"]
    size = sum(report["files"].values())
    print(
        f"{report['path']}: generation {report['generation']}, {counts.get('atoms', 0):,} atoms "
        f"({counts.get('paths', 0):,} distinct), {size:,} bytes, "
        f"{'merkleized' if report['merkleized'] else 'not merkleized'}, {report['total_seconds']:.2f} s"
    )
    if report.get("class_table_sweeps"):
        print(
            "note: the table of shared subtries filled up within the memory budget "
            f"({report['class_table_sweeps']:,} times), so some are stored more than once; "
            "a larger --memory-budget makes a smaller snapshot",
            file=sys.stderr,
        )
    return EXIT_OK


def _build_resources(args) -> tuple[int | None, int | None]:
    """--memory-budget in bytes and --jobs, checked (None: the defaults)."""
    from metta_numba.store.chunked_build import parse_memory_budget

    budget = None
    if args.memory_budget is not None:
        try:
            budget = parse_memory_budget(args.memory_budget)
        except ValueError as err:
            raise CommandError(f"--memory-budget: {err}", EXIT_USAGE) from None
    if args.jobs is not None and args.jobs < 1:
        raise CommandError(f"--jobs: {args.jobs} is not a number of threads: give 1 or more", EXIT_USAGE)
    return budget, args.jobs


class _BuildBars:
    """Progress of a build on stderr: bytes read, input paths of the runs merged, then the
    argument index's entries merged (its runs are read twice: to count, then to write)."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.enabled = enabled
        self.reading = self.merging = self.indexing = None
        if enabled:
            from tqdm.auto import tqdm  # a widget in a notebook, text on a terminal

            self._tqdm = tqdm
            self.reading = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="parse+encode", file=sys.stderr)

    def read(self, size: int) -> None:
        if self.reading is not None:
            self.reading.update(size)

    def merge(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.merging is None:
            if self.reading is not None:
                self.reading.close()
            self.merging = self._tqdm(total=total, unit=" paths", unit_scale=True, desc="merge runs", file=sys.stderr)
        self.merging.update(done - self.merging.n)

    def index(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.indexing is None:
            for bar in (self.reading, self.merging):
                if bar is not None:
                    bar.close()
            self.indexing = self._tqdm(total=total, unit=" entries", unit_scale=True, desc="index", file=sys.stderr)
        self.indexing.update(done - self.indexing.n)

    def close(self) -> None:
        for bar in (self.reading, self.merging, self.indexing):
            if bar is not None:
                bar.close()


def _index_options(args):
    """IndexOptions from `snapshot build`'s --index-* flags."""
    from metta_numba.trie.argindex import IndexOptions, parse_position

    try:
        positions = None
        if args.index_positions:
            positions = [parse_position(text.strip()) for text in args.index_positions.split(",") if text.strip()]
    except ValueError as err:
        raise CommandError(f"--index-positions: {err}", EXIT_USAGE) from None
    heads = [h.strip() for h in args.index_heads.split(",") if h.strip()] if args.index_heads else None
    if args.index_max_mb is not None:
        return IndexOptions(positions, heads, max_bytes=int(args.index_max_mb * 1e6), max_ratio=None)
    return IndexOptions(positions, heads)


def _print_info(info: dict, indent: str = "") -> None:
    for key, value in info.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_info(value, indent + "  ")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{indent}{key}:")
            for item in value:
                print(f"{indent}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            print(f"{indent}{key}: {value}")


# --- query ----------------------------------------------------------------------------------------


def query(args) -> int:
    """`metta-numba query`: see query_command."""
    from metta_numba.query_command import check_options, parsed_pattern, run_query
    from metta_numba.store import PersistentKB

    check_options(args)
    if args.pattern is not None:
        parsed_pattern(args)  # a bad pattern is reported before the KB is opened
    served = getattr(args, "served_kb", None)
    if served is not None:  # in a server: the KB it keeps open (see serve.py)
        with _kb_errors():
            if args.verify:
                served.verify()
            return run_query(args, served)
    if _sharded(args.kb):
        from metta_numba.dist.sharded_kb import ShardedKB

        with _kb_errors(), ShardedKB.open(args.kb) as kb:
            return run_query(args, kb)
    with _kb_errors(), PersistentKB.open(
        args.kb, readonly=True, verify=args.verify, prefetch=getattr(args, "prefetch", False)
    ) as kb:
        return run_query(args, kb)


# --- batch ----------------------------------------------------------------------------------------


def batch(args) -> int:
    from metta_numba.dist.sharded_commands import batch as run_batch_command

    return run_batch_command(args)


# --- serve ----------------------------------------------------------------------------------------


def serve(args) -> int:
    from metta_numba.serve import serve_kb

    return serve_kb(args)


# --- warmup ---------------------------------------------------------------------------------------


def warmup(args) -> int:
    """Compile (or load) every kernel, so that the cache holds them all. With --background
    (started by a command that met an empty cache): at low priority, silent, and only when no
    other warmup holds the lock."""
    import os

    from metta_numba import cold_start
    from metta_numba.kernel_bundle import fill_cache

    lock = None
    if args.background:
        path = cold_start.warmup_lock_path()
        lock = cold_start.try_lock(path) if path is not None else None
        if lock is None:
            return EXIT_OK  # another warmup is filling the cache
        os.nice(10)
    cold_start.set_mode("compile")
    show = _progress_enabled() and not args.background

    def progress(done: int, total: int, name: str) -> None:
        if show:
            print(f"\rkernels {done}/{total} {name:<30}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    started = time.perf_counter()
    count = fill_cache(progress)
    from numba.core import config

    from metta_numba import kernel_cache

    current = kernel_cache.use_source_keyed_folder()
    pruned = kernel_cache.prune_older_folders(current) if current is not None else []
    where = config.CACHE_DIR or "next to the package's sources"
    cpu = os.environ.get("NUMBA_CPU_NAME") or "this machine's CPU"
    if not args.background:
        print(f"{count} kernels cached in {where} for {cpu} ({time.perf_counter() - started:.1f} s)")
        if pruned:
            print(f"removed {len(pruned)} kernel folder(s) of older sources: {', '.join(p.name for p in pruned)}")
    return EXIT_OK

