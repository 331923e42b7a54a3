"""The `metta-numba` subcommands on sharded KBs (commands.py hands them over when the KB holds
a shards.json, or when `snapshot build` gets --shards)."""

from __future__ import annotations

import sys
from pathlib import Path

from metta_numba.cli import EXIT_BAD_KB, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from metta_numba.dist import manifest as mf


def snapshot_build(args) -> int:
    from metta_numba.commands import _index_options, _parse_error_exit
    from metta_numba.dist.cluster import DaskMissingError, dask_client
    from metta_numba.dist.shard_build import BuildOptions, ShardBuildError, build_sharded
    from metta_numba.syntax.errors import ParseError

    if args.shards is None:
        raise CommandError("--workers and --scheduler build shards: give --shards N too", EXIT_USAGE)
    shards = args.shards
    if shards < 1:
        raise CommandError("--shards must be at least 1", EXIT_USAGE)
    for source in args.sources:
        if not Path(source).is_file():
            raise CommandError(f"{source}: no such file", EXIT_FAILED)
    options = BuildOptions(merkleize=not args.no_merkleize, argindex=not args.no_index, index_options=_index_options(args))
    distributed = args.workers is not None or args.scheduler is not None
    try:
        if distributed:
            with dask_client(args.workers, args.scheduler) as client:
                report = build_sharded(args.sources, args.output, shards, options, client=client)
        else:
            report = build_sharded(args.sources, args.output, shards, options)
    except DaskMissingError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    except ParseError as err:
        raise _parse_error_exit(err) from None
    except ShardBuildError as err:
        raise CommandError(str(err), EXIT_FAILED) from None
    print(
        f"{report['path']}: {report['shards']} shards, {report['atoms']:,} atoms "
        f"(per shard: {', '.join(f'{c:,}' for c in report['atoms_per_shard'])}), {report['bytes']:,} bytes, "
        f"{report['ranges']} source ranges on {report['workers']} worker(s), {report['total_seconds']:.2f} s"
    )
    return EXIT_OK


def snapshot_action(args) -> int:
    """info, verify, compact, upgrade and warm over every shard."""
    import time

    from metta_numba.commands import _print_info
    from metta_numba.dist.sharded_kb import ShardedKB

    if args.action in ("upgrade", "warm"):
        from metta_numba.store import snapshot as ops

        manifest = mf.read_manifest(args.kb)
        for index in range(manifest.shards):
            shard = mf.check_shard(manifest, index)
            if args.action == "upgrade":
                report = ops.snapshot_upgrade(shard)
                print(f"shard {index}: generation {report['previous_generation']} -> {report['generation']}")
            else:
                report = ops.snapshot_warm(shard)
                print(f"shard {index}: read {report['bytes']:,} bytes in {report['seconds'] * 1e3:.1f} ms")
        return EXIT_OK
    if args.action == "compact":
        from metta_numba.store import snapshot as ops

        manifest = mf.read_manifest(args.kb)
        with ShardedKB.open(args.kb):
            pass  # checks every shard and finishes a half-switched save before compacting
        for index in range(manifest.shards):
            report = ops.snapshot_compact(mf.check_shard(manifest, index))
            print(
                f"shard {index}: generation {report['previous_generation']} -> {report['generation']}, "
                f"{report['changes_folded']} changes folded"
            )
        return EXIT_OK
    started = time.perf_counter()
    with ShardedKB.open(args.kb) as kb:
        if args.action == "info":
            _print_info(kb.info())
        else:
            kb.verify()
            info = kb.info()
            print(
                f"{info['path']}: {info['shards']} shards ok, {info['bytes']:,} bytes checked, "
                f"{info['pending_changes']} pending changes in the logs ({time.perf_counter() - started:.2f} s)"
            )
    return EXIT_OK


def run_file(args, text: str, name: str):
    """Run a program over a sharded KB; with --save-snapshot to the same KB, its changes are
    committed to the shards all or nothing after the run. Returns the run's outcome."""
    from metta_numba.commands import _parse_error_exit
    from metta_numba.dist.sharded_kb import ShardedKB, ShardedSpace, commit_changes
    from metta_numba.interp.runner import MeTTa
    from metta_numba.syntax.printer import format_results

    source = args.load_snapshot
    target = args.save_snapshot
    same = bool(source and target) and Path(target).resolve() == Path(source).resolve()
    if target and not same and (mf.is_sharded(target) or not source):
        raise CommandError(
            f"--save-snapshot {target}: a sharded KB is saved into only by a run that loads it "
            "(use --load-snapshot and --save-snapshot with the same KB)",
            EXIT_USAGE,
        )
    with ShardedKB.open(source) as kb:
        space = ShardedSpace(kb)
        metta = MeTTa(space=space, compile=not getattr(args, "no_compile", False), sandbox=getattr(args, "sandbox", False))
        outcome = metta.run_program(text, filename=name)
        if outcome.parse_error is not None:
            raise _parse_error_exit(outcome.parse_error)
        for results in outcome.results:
            sys.stdout.write(format_results(results) + "\n")
        sys.stdout.flush()
        added, removed = space.changes()
        if target and not same:
            from metta_numba.commands import _save_space

            _save_space(metta, None, target, merkleize=not args.no_merkleize)  # a plain KB of &self
    if target and same:
        commit_changes(source, added, removed)
    return outcome


def run_repl(path: str) -> int:
    """A REPL over a sharded KB; its changes stay in the session."""
    from metta_numba.dist.sharded_kb import ShardedKB, ShardedSpace
    from metta_numba.repl import Repl

    with ShardedKB.open(path) as kb:
        return Repl(space=ShardedSpace(kb)).loop()


def check_kb(path: str) -> None:
    """Fail fast (exit 3) on a bad sharded KB, before a cluster is started."""
    from metta_numba.dist.sharded_kb import ShardedKB

    try:
        ShardedKB.open(path).close()
    except FileNotFoundError as err:
        raise CommandError(f"{path}: {err}", EXIT_BAD_KB) from None


def _resume_point(output: Path) -> int:
    """Keep the complete lines of a partial output (drop a last line cut short by a kill) and
    return how many there are: the queries already answered."""
    if not output.exists():
        return 0
    with open(output, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            f.truncate(keep)
    return data.count(b"\n", 0, keep)


def batch(args) -> int:
    """`metta-numba batch`: run a file of queries on Dask, lines streamed in file order."""
    from metta_numba.commands import _kb_errors, _progress_enabled, _read_program
    from metta_numba.dist.batch import BatchOptions, run_batch, split_queries
    from metta_numba.dist.cluster import DaskMissingError, dask_client

    if args.resume and not args.output:
        raise CommandError("--resume needs --output FILE (the partial output to continue)", EXIT_USAGE)
    for flag, value in (("--timeout", args.timeout), ("--max-results", args.max_results), ("--chunk-size", args.chunk_size)):
        if value is not None and value <= 0:
            raise CommandError(f"{flag} must be positive", EXIT_USAGE)
    text, name = _read_program(args.queries)
    try:
        queries = split_queries(text, name)
    except ValueError as err:
        raise CommandError(str(err), EXIT_FAILED) from None
    if not Path(args.kb).is_dir():
        raise CommandError(f"{args.kb}: no such KB directory", EXIT_BAD_KB)
    with _kb_errors():  # fail fast, before starting a cluster
        if mf.is_sharded(args.kb):
            check_kb(args.kb)
        else:
            from metta_numba.store import PersistentKB

            PersistentKB.open(args.kb, readonly=True).close()
    start = 0
    if args.output:
        output = Path(args.output)
        start = _resume_point(output) if args.resume else 0
        if start > len(queries):
            raise CommandError(f"{output}: holds {start} lines, the batch has {len(queries)} queries", EXIT_USAGE)
        out = open(output, "a" if args.resume else "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    else:
        out = sys.stdout
    show = _progress_enabled()

    def emit(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\rqueries {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    options = BatchOptions(timeout=args.timeout, max_results=args.max_results, chunk_size=args.chunk_size)
    try:
        with _kb_errors(), dask_client(args.workers, args.scheduler) as client:
            run_batch(client, args.kb, queries, emit, options=options, start=start, progress=progress)
    except DaskMissingError as err:
        raise CommandError(str(err), EXIT_FAILED) from None
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK
