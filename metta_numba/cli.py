"""The `metta-numba` command (also `python -m metta_numba`).

    metta-numba FILE.metta [--load-snapshot KB] [--save-snapshot KB] [--no-merkleize] [--verify] [--sandbox]
    metta-numba run FILE.metta ...                  (the same; FILE may be - for stdin)
    metta-numba repl [--load-snapshot KB] [--save-snapshot KB] [--verify] [--sandbox]
    metta-numba snapshot build SRC.metta... -o KB [--no-merkleize] [--no-index]
                [--index-positions 1,2,1.1] [--index-heads edge,=] [--index-max-mb N]
                [--memory-budget SIZE] [--jobs N] [--shards N [--workers N | --scheduler ADDRESS]]
    metta-numba snapshot info|verify|compact KB
    metta-numba query KB 'PATTERN' ['TEMPLATE'] [--format text|json|jsonl] [--limit N | --count] [--verify]
    metta-numba query KB --patterns FILE [--format text|json|jsonl] [--limit N | --count]
    metta-numba batch KB QUERIES.metta [--workers N | --scheduler ADDRESS] [-o FILE [--resume]]
                [--timeout SECONDS] [--max-results N] [--chunk-size N]
    metta-numba warmup                               (compile every kernel into the cache)
    metta-numba serve KB --socket PATH [--verify]    (a resident process answering query and run)
    metta-numba query|run ... --server PATH          (ask that process; or METTA_NUMBA_SERVER=PATH)

Exit codes: 0 success; 1 parse error or failed assertion; 2 usage error (a query pattern or
--patterns file that does not parse too); 3 bad or corrupt KB; 4 no server at the socket (or a
socket `serve` may not take).
Heavy modules (NumPy, Numba, h5py) are imported inside the commands, so `--help` is instant,
and a command sent to a server imports none of them.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_KB = 3
EXIT_NO_SERVER = 4

SUBCOMMANDS = ("run", "repl", "snapshot", "query", "batch", "demo", "warmup", "serve")


class CommandError(Exception):
    """An error the command reports on stderr before exiting with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _count(text: str) -> int:
    """An argparse type: a whole number >= 0 (argparse turns the ValueError into exit 2)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a torn log tail kept aside, a kernel cache moved) as one line on stderr."""
    print(f"metta-numba: warning: {message}", file=sys.stderr if file is None else file)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the .metta program to run, or - to read it from stdin")
    parser.add_argument("--load-snapshot", metavar="KB", help="run with this snapshot KB as &self")
    parser.add_argument("--save-snapshot", metavar="KB", help="after the run, save &self as a new generation of KB")
    parser.add_argument("--no-merkleize", action="store_true", help="do not merkleize the saved snapshot (faster save)")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="run every function in the plain evaluator (no compiled tiers; for debugging)",
    )
    _add_verify_argument(parser)
    _add_prefetch_argument(parser)
    _add_sandbox_argument(parser)
    _add_server_argument(parser)


def _add_server_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="PATH",
        help="send the command to `metta-numba serve` listening on this socket (default: $METTA_NUMBA_SERVER)",
    )


def _add_sandbox_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="an untrusted program: file I/O, include and import! only inside the program's folder",
    )


def _add_prefetch_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefetch",
        action="store_true",
        help="ask the kernel to read the KB's query sections into the page cache in the background",
    )


def _add_verify_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every checksum of the KB before the first answer (reads the whole KB once)",
    )


def _add_run(commands) -> None:
    run = commands.add_parser("run", help="run a .metta program and print one line per `!`")
    _add_run_arguments(run)


def _add_repl(commands) -> None:
    repl = commands.add_parser("repl", help="an interactive session")
    repl.add_argument("--load-snapshot", metavar="KB", help="start with this snapshot KB as &self")
    repl.add_argument(
        "--save-snapshot", metavar="KB", help="when the session ends, save &self as a new generation of KB"
    )
    repl.add_argument("--no-merkleize", action="store_true", help="do not merkleize the saved snapshot (faster save)")
    _add_verify_argument(repl)
    _add_prefetch_argument(repl)
    _add_sandbox_argument(repl)


def _add_snapshot(commands) -> None:
    snapshot = commands.add_parser("snapshot", help="build, inspect, verify or compact a KB snapshot")
    actions = snapshot.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="compile .metta sources into a KB snapshot")
    build.add_argument("sources", nargs="+", metavar="SRC.metta", help="source files (atoms only, no `!`)")
    build.add_argument("-o", "--output", required=True, metavar="KB", help="the KB directory to write")
    build.add_argument("--no-merkleize", action="store_true", help="skip merkleizing (faster, larger)")
    build.add_argument("--no-index", action="store_true", help="no argument index (a lookup by a later argument scans)")
    build.add_argument(
        "--index-positions",
        metavar="LIST",
        help="argument positions to index, e.g. 1,2,1.1 (1.1: first argument of the first argument); default: all",
    )
    build.add_argument("--index-heads", metavar="LIST", help="index only atoms with these heads, e.g. edge,=")
    build.add_argument(
        "--index-max-mb", type=float, metavar="N", help="size cap of the index (default: the trie's own size)"
    )
    build.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="memory the build may use, e.g. 4G or 512M (default: half the machine's RAM); "
        "sources are read in chunks and sorted runs spill to a folder inside KB",
    )
    build.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="threads reading and sorting chunks (default: all cores)"
    )
    build.add_argument("--shards", type=int, default=None, metavar="N", help="write N shard KBs under KB/shards.json")
    build_where = build.add_mutually_exclusive_group()
    build_where.add_argument(
        "--workers", type=int, default=None, metavar="N", help="build the shards on a LocalCluster of N Dask workers"
    )
    build_where.add_argument("--scheduler", metavar="ADDRESS", help="build the shards on a running Dask cluster")
    for name, text in (
        ("info", "print counts, sizes, format, generation and sources"),
        ("verify", "check every checksum of the live generation and the log"),
        ("compact", "fold the delta log into a new generation (a checkpoint)"),
        ("upgrade", "convert a KB of an older store format into the current one, as a new generation"),
        ("warm", "read the sections queries touch into the page cache, and say what was read"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("kb", metavar="KB", help="the KB directory")


def _add_query(commands) -> None:
    query = commands.add_parser(
        "query", help="match a pattern, a conjunction (, p1 p2 ...) or a file of patterns against a KB"
    )
    query.add_argument("kb", metavar="KB", help="the KB directory")
    query.add_argument(
        "pattern",
        metavar="PATTERN",
        nargs="?",
        help="a MeTTa pattern, e.g. '(edge n_5 $y)' or '(, (edge $a $b) (edge $b $c))'",
    )
    query.add_argument(
        "template", metavar="TEMPLATE", nargs="?", help="what to print per answer (default: the pattern)"
    )
    query.add_argument("--format", choices=("text", "json", "jsonl"), default="text", help="output format")
    query.add_argument("--limit", type=_count, default=None, metavar="N", help="print at most N answers (per pattern)")
    query.add_argument("--count", action="store_true", help="print the number of answers only (not with --limit)")
    query.add_argument(
        "--patterns",
        metavar="FILE",
        default=None,
        help="answer every pattern of FILE (one atom per pattern; - for stdin)",
    )
    _add_verify_argument(query)
    _add_prefetch_argument(query)
    _add_server_argument(query)


def _add_batch(commands) -> None:
    batch = commands.add_parser("batch", help="run many `!` queries against a KB on a Dask cluster")
    batch.add_argument("kb", metavar="KB", help="the KB directory")
    batch.add_argument("queries", metavar="QUERIES.metta", help="a file of `!` queries")
    where = batch.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N", help="LocalCluster workers (default: cores)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    batch.add_argument("-o", "--output", metavar="FILE", help="write the result lines to FILE (default: stdout)")
    batch.add_argument(
        "--resume", action="store_true", help="keep the complete lines already in --output FILE, run the rest"
    )
    batch.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="time limit per query")
    batch.add_argument("--max-results", type=int, default=None, metavar="N", help="print at most N results per query")
    batch.add_argument("--chunk-size", type=int, default=None, metavar="N", help="queries per task (default: auto)")


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="build a generated KB into a snapshot and query it, twice, with timings")
    demo.add_argument("--facts", type=int, default=200_000, metavar="N", help="edge facts in the KB (default 200000)")
    demo.add_argument("--dir", metavar="DIR", help="work directory, kept afterwards (default: a temporary one)")
    demo.add_argument("--keep", action="store_true", help="keep the temporary work directory")


def _add_warmup(commands) -> None:
    warmup = commands.add_parser(
        "warmup",
        help="compile every kernel into the cache, so that later commands start fast "
        "(set NUMBA_CPU_NAME=generic for a cache that serves other CPUs too)",
    )
    warmup.add_argument(
        "--background",
        action="store_true",
        help="quiet and at low priority, and only one at a time (what a command started on an "
        "empty cache runs)",
    )


def _add_serve(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="keep a KB open and its kernels loaded, answering `query` and `run` sent with --server",
    )
    serve.add_argument("kb", metavar="KB", help="the KB directory (opened read-only)")
    serve.add_argument(
        "--socket", required=True, metavar="PATH", help="the Unix socket to listen on (created with mode 0600)"
    )
    _add_verify_argument(serve)

_SUBCOMMAND_PARSERS = {
    "run": _add_run,
    "repl": _add_repl,
    "snapshot": _add_snapshot,
    "query": _add_query,
    "batch": _add_batch,
    "demo": _add_demo,
    "warmup": _add_warmup,
    "serve": _add_serve,
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `only`, that subcommand's alone (building all of them
    costs some milliseconds, which a short command, such as a server's client, notices)."""
    parser = argparse.ArgumentParser(
        prog="metta-numba",
        description="Run MeTTa programs and query compiled knowledge-base snapshots.",
        epilog="`metta-numba FILE.metta` is short for `metta-numba run FILE.metta`. "
        "Exit codes: 0 ok, 1 parse error or failed assertion, 2 usage error, 3 bad or corrupt KB, "
        "4 no server at --server's socket.",
    )
    from metta_numba import __version__

    parser.add_argument("--version", action="version", version=f"metta-numba {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in _SUBCOMMAND_PARSERS.items():
        if only is None or only == name:
            add(commands)
    return parser


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """`metta-numba FILE ...` means `metta-numba run FILE ...`."""
    argv = list(argv)
    for arg in argv:
        if arg in ("-h", "--help", "--version"):
            return argv
        if arg.startswith("-") and arg != "-":
            continue
        if arg not in SUBCOMMANDS:
            return ["run", *argv]
        return argv
    return argv


def _demo(args) -> int:
    from metta_numba.demo import run_demo

    if args.facts < 1:
        raise CommandError("--facts must be at least 1", EXIT_USAGE)
    return run_demo(args.facts, args.dir, args.keep)


def parse_command_line(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """(parser, parsed arguments); a usage error exits (SystemExit 2) as argparse does."""
    normalized = normalize_argv(argv)
    first = normalized[0] if normalized else None
    parser = build_parser(first if first in SUBCOMMANDS else None)
    if first != "query":
        return parser, parser.parse_args(normalized)
    # argparse gives up optional positionals that follow an option (`query KB --limit 2 P`):
    # the pattern and template then come back unrecognized, and are put in place here.
    args, rest = parser.parse_known_args(normalized)
    for name in ("pattern", "template"):
        if rest and not rest[0].startswith("--") and getattr(args, name) is None:
            setattr(args, name, rest.pop(0))
    if rest:
        parser.error("unrecognized arguments: " + " ".join(rest))
    return parser, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, args = parse_command_line(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command in ("query", "run") and (args.server or os.environ.get("METTA_NUMBA_SERVER")):
        from metta_numba import serve_client

        server = serve_client.server_for(args)
        if server is not None:
            try:
                return serve_client.forward(server, argv, args)
            except BrokenPipeError:
                return EXIT_OK
            except KeyboardInterrupt:
                print("metta-numba: interrupted", file=sys.stderr)
                return 130
    import warnings

    warnings.showwarning = _one_line_warning
    return dispatch(args)


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command here (in this process, or in a server for its client); its exit
    code, with CommandError reported on stderr."""
    from metta_numba import commands

    handler = {
        "run": commands.run_file,
        "repl": commands.run_repl,
        "snapshot": commands.snapshot,
        "query": commands.query,
        "batch": commands.batch,
        "demo": _demo,
        "warmup": commands.warmup,
        "serve": commands.serve,
    }[args.command]
    if args.command != "run":
        start_up_done()
    try:
        return handler(args)
    except CommandError as err:
        print(f"metta-numba: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("metta-numba: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`); that is not an error of ours.
        return EXIT_OK
    finally:
        start_up_done()


_gc_paused: list[bool] = []


def _pause_gc_for_start_up() -> None:
    """Python's cyclic garbage collector off while a command starts. Importing NumPy and Numba
    makes some half a million objects, which each collection in the meantime walks again
    (about 45 ms of a `run` in all, finding next to nothing to free): start_up_done turns it
    back on, with the objects made so far set aside for good (gc.freeze)."""
    gc.disable()
    _gc_paused.append(True)


def start_up_done() -> None:
    """The command's modules are imported and its set-up made: the collector runs again, over
    what is made from now on (no-op unless entry() paused it)."""
    if _gc_paused:
        _gc_paused.clear()
        gc.freeze()
        gc.enable()


def prepare_process() -> None:
    """What the command's process sets before it imports NumPy: also for a harness that runs
    main() in a process of its own (bench.startup's phase timers)."""
    # NumPy's BLAS (OpenBLAS) starts a thread per core and its buffers when NumPy is imported,
    # unless told otherwise: 40-50 ms of CPU and up to 0.1 s of a command's start-up, for a
    # library no command uses (the kernels are Numba's own code). A value the user set stays.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _pause_gc_for_start_up()


def entry() -> None:
    """The `metta-numba` process: main(), then exit without the interpreter's teardown.

    Freeing every module, the loaded kernels and Numba's compiler state at exit takes about
    70 ms, a tenth of a query's whole process, and nothing of ours needs it: KBs are closed and
    output is flushed here. `batch` exits normally, as Dask may still have clean-up to run."""
    argv = sys.argv[1:]
    prepare_process()
    code = main(argv)
    if "batch" in normalize_argv(argv)[:1]:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass  # the reader went away: nothing more to say
    os._exit(code)


if __name__ == "__main__":
    entry()
