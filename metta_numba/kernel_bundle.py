"""Compiled kernels that ship with a built package, so that a new install answers its first
big run at cached speed instead of compiling.

An empty kernel cache costs a command every kernel it needs: 0.4-0.5 s each of Numba's own
work, 25 s for a run that loads 400K rules from text. Kernels are compiled for the generic CPU
(kernel_cache.choose_cpu) into cache folders named after the package's modules, so a cache
filled anywhere serves any machine of the same architecture with the same Python and Numba.
Building the package (setup.py's build step) therefore fills a cache and puts it into the
package as `_kernels/kernels-<digest>`; at start-up, `seed_from_bundle` copies it into the
user's cache folder when that one does not hold these kernels yet. Numba checks every entry as
it loads it (the source text's hash, Numba's and Python's versions, the CPU): a bundle made by
another version is never used, and the kernels then compile as without one.

    python -m metta_numba.kernel_bundle BUILD_LIB   # what the build step runs (a few minutes)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from metta_numba.kernel_cache import PACKAGE_DIR, compiled_cpu

BUNDLE_FOLDER = PACKAGE_DIR / "_kernels"
SEEDED_MARK = "bundle-seeded"
"""Written into a cache folder once the bundle is copied into it: later starts check only it."""


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk, say: leave no half copy behind
        raise


def _generic_cpu() -> bool:
    return compiled_cpu() == "generic"


def seed_from_bundle(keyed: Path, bundle_root: Path = BUNDLE_FOLDER) -> int:
    """Copy the bundled kernels of these sources (`bundle_root/<keyed's name>`) into the cache
    folder `keyed`, where it has none of its own yet. Returns the number of kernels copied.

    A kernel's entries are its index file (`<name>.nbi`) and the data files it names
    (`<name>.<n>.nbc`); Numba writes the data first and the index last. So a kernel is copied
    only when `keyed` has no index for it, data before index, each file whole (written aside and
    renamed): a process that reads the cache meanwhile sees no index, or an index whose data
    are there. Costs a stat or two per start once done, or when there is no bundle."""
    bundle = bundle_root / keyed.name
    if (keyed / SEEDED_MARK).exists() or not bundle.is_dir() or not _generic_cpu():
        return 0
    copied = 0
    try:
        for entry in bundle.iterdir():
            if entry.is_file() and entry.suffix == ".nrtlib" and not (keyed / entry.name).exists():
                _copy_atomically(entry, keyed / entry.name)
            if not entry.is_dir():
                continue
            target_folder = keyed / entry.name
            target_folder.mkdir(exist_ok=True)
            for index in entry.glob("*.nbi"):
                if (target_folder / index.name).exists():
                    continue
                for data in entry.glob(f"{index.name[: -len('.nbi')]}.*.nbc"):
                    _copy_atomically(data, target_folder / data.name)
                _copy_atomically(index, target_folder / index.name)
                copied += 1
        (keyed / SEEDED_MARK).touch()
    except OSError:
        pass  # a cache folder we cannot fill: the kernels compile as without a bundle
    return copied


def fill_cache(progress=None) -> int:
    """Compile (or load) every kernel into the current cache folder: each declared signature,
    then the kernels that specialise on their arguments' types, by running the paths that call
    them (a program long enough for the bulk load, then a match). Returns the number of
    declared kernels."""
    from metta_numba.bench.kbgen import generate_kb
    from metta_numba.interp.bulk_load import BULK_MIN_CHARS
    from metta_numba.interp.runner import MeTTa
    from metta_numba.jit import compile_all

    count = compile_all(progress)
    n = 4
    while len(generate_kb(n)) < 2 * BULK_MIN_CHARS:
        n *= 2
    MeTTa().run(generate_kb(n) + "\n!(match &self (= (and1 $a $b) $r) ($a $b $r))\n")
    return count


def bundle_files(keyed: Path) -> list[Path]:
    """The files of a filled cache folder that belong in a bundle: this package's kernels and
    Numba's runtime library; not the tests' or generated code's kernels, locks or memos."""
    found = [p for p in keyed.glob("*.nrtlib") if p.is_file()]
    for folder in keyed.iterdir():
        if folder.is_dir() and (folder.name == PACKAGE_DIR.name or folder.name.startswith(PACKAGE_DIR.name + ".")):
            found.extend(p for p in folder.iterdir() if p.suffix in (".nbi", ".nbc"))
    return sorted(found)


def build_bundle(package_dir: Path) -> Path:
    """Fill the (fresh) cache folder with every kernel for the generic CPU and copy it to
    `package_dir/_kernels`. Runs in the process `main` starts with such a cache."""
    from metta_numba import cold_start
    from metta_numba.kernel_cache import use_source_keyed_folder

    if not _generic_cpu():
        raise RuntimeError("a bundle must hold kernels for the generic CPU (NUMBA_CPU_NAME=generic)")
    cold_start.set_mode("compile")
    keyed = use_source_keyed_folder()
    if keyed is None:
        raise RuntimeError("no kernel cache folder to fill")
    fill_cache()
    target = package_dir / BUNDLE_FOLDER.name / keyed.name
    shutil.rmtree(package_dir / BUNDLE_FOLDER.name, ignore_errors=True)
    for path in bundle_files(keyed):
        destination = target / path.relative_to(keyed)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    return target


_IN_FRESH_CACHE = "METTA_NUMBA_BUNDLE_CACHE_READY"
"""Set in the environment of the process `main` starts, which builds the bundle."""


def _in_fresh_cache(argv: list[str]) -> int:
    """Run `main` again in a process of its own, with an empty kernel cache in a temporary
    folder, the generic CPU, every kernel compiled (no Python twins, no background warmup) and
    no bytecode written into the package being bundled."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="metta-numba-bundle-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_CPU_NAME="generic", METTA_NUMBA_COLD="compile",
                   PYTHONDONTWRITEBYTECODE="1", **{_IN_FRESH_CACHE: "1"})  # fmt: skip
        for name in ("NUMBA_CPU_FEATURES", "METTA_NUMBA_CPU"):
            env.pop(name, None)
        return subprocess.run([sys.executable, "-m", "metta_numba.kernel_bundle", *argv], env=env, cwd=cache).returncode


def main(argv: list[str]) -> int:
    """`python -m metta_numba.kernel_bundle OUT`: bundle the kernels of the package found
    first on sys.path (the build's copy) into OUT/metta_numba/_kernels."""
    if len(argv) != 1:
        print("usage: python -m metta_numba.kernel_bundle BUILD_LIB", file=sys.stderr)
        return 2
    if os.environ.get(_IN_FRESH_CACHE) != "1":
        return _in_fresh_cache(argv)
    target = build_bundle(Path(argv[0]) / PACKAGE_DIR.name)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"bundled {sum(1 for _ in target.rglob('*.nbi'))} kernels ({size / 2**20:.1f} MiB) in {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
