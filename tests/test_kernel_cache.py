"""Where compiled kernels are cached (metta_numba.kernel_cache): the choice between Numba's
own places, a per-user folder, a private temp folder and no cache; and the command run by a
user with no writable home from an install it cannot write to."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import unprivileged
from test_cli import FACTS, cli, write

from metta_numba import kernel_cache

UNWRITABLE = "/proc/no-such-folder"  # mkdir there fails, even for root


@pytest.fixture
def read_only_package(monkeypatch, tmp_path):
    """Pretend the package's folder cannot be written (as for an install owned by root)."""
    monkeypatch.setattr(kernel_cache, "PACKAGE_DIR", Path(UNWRITABLE))


def test_numba_cache_dir_wins(tmp_path):
    assert kernel_cache.choose_cache_folder({"NUMBA_CACHE_DIR": str(tmp_path)}) == ("numba", tmp_path)


def test_per_user_folder_from_xdg_then_home(read_only_package, tmp_path):
    xdg, home = tmp_path / "xdg", tmp_path / "home"
    assert kernel_cache.choose_cache_folder({"XDG_CACHE_HOME": str(xdg), "HOME": str(home)}) == (
        "user",
        xdg / "metta-numba",
    )
    assert kernel_cache.choose_cache_folder({"XDG_CACHE_HOME": UNWRITABLE, "HOME": str(home)}) == (
        "user",
        home / ".cache" / "metta-numba",
    )


def test_temp_folder_must_be_private(read_only_package, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    environ = {"HOME": UNWRITABLE}
    how, folder = kernel_cache.choose_cache_folder(environ)
    assert how == "temp" and folder == tmp_path / f"metta-numba-{os.getuid()}"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # A folder others may write to is refused: Numba's cache files are pickles.
    folder.chmod(0o777)
    assert kernel_cache.choose_cache_folder(environ) == ("none", None)


def test_no_writable_place_means_uncached_kernels_and_one_warning(tmp_path):
    # In a fresh interpreter: the choice is applied before Numba compiles anything.
    script = textwrap.dedent(
        f"""
        import importlib.util, pathlib, sys, tempfile, warnings
        spec = importlib.util.spec_from_file_location("kc", {str(Path(kernel_cache.__file__))!r})
        kc = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(kc)
        kc.PACKAGE_DIR = pathlib.Path({UNWRITABLE!r})
        tempfile.tempdir = {UNWRITABLE!r}
        assert kc.configure() == "none"
        sys.path.insert(0, {str(tmp_path)!r})
        import kernel_module
        print(kernel_module.double(21))
        """
    )
    kernel = "from numba import njit\n\n@njit(cache=True)\ndef double(x):\n    return 2 * x\n"
    write(tmp_path / "kernel_module.py", kernel)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["HOME"] = UNWRITABLE
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "42\n"
    warning_lines = [line for line in proc.stderr.splitlines() if "KernelCacheWarning" in line]
    assert len(warning_lines) == 1 and "NUMBA_CACHE_DIR" in warning_lines[0]
    assert not list(tmp_path.rglob("*.nbi")), "nothing was cached"


# --- the whole command, as `nobody` -------------------------------------------------------------


def seed_cache(folder: Path, mode: int = 0o755) -> None:
    """A copy of our warm kernel cache for `nobody`, minus one module's kernels: a run must
    read the copy and write the missing ones there (a cold cache would take a minute)."""
    shutil.copytree(os.environ["NUMBA_CACHE_DIR"], folder)
    for path in folder.rglob("*"):
        if path.is_file() and path.name.startswith("walk."):
            path.unlink()
    subprocess.run(["chown", "-R", f"{unprivileged.NOBODY}:{unprivileged.NOBODY}", str(folder)], check=True)
    folder.chmod(mode)


def walk_kernels_cached(folder: Path) -> bool:
    return any(p.name.startswith("walk.") and p.suffix == ".nbi" for p in folder.rglob("*"))


def test_unprivileged_user_without_home_runs_from_a_read_only_install(tmp_path):
    unprivileged.require()
    shared = unprivileged.world_readable_dir("nobody-")
    try:
        kb = shared / "facts.kb"
        assert cli("snapshot", "build", str(write(tmp_path / "facts.metta", FACTS)), "-o", str(kb)).returncode == 0
        for path in [kb, *kb.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        query = ["query", str(kb), "(edge n1 $y)", "$y"]
        # $XDG_CACHE_HOME/metta-numba.
        cache_home = shared / "cache"
        cache_home.mkdir()
        cache_home.chmod(0o777)
        seed_cache(cache_home / "metta-numba")
        proc = unprivileged.run_as_nobody(query, env={"XDG_CACHE_HOME": str(cache_home)})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "n10\n" and proc.stderr == ""
        assert walk_kernels_cached(cache_home / "metta-numba")
        # No XDG_CACHE_HOME and no home: the private folder in the temp folder.
        tmpdir = shared / "tmp"
        tmpdir.mkdir()
        tmpdir.chmod(0o1777)
        private = tmpdir / f"metta-numba-{unprivileged.NOBODY}"
        seed_cache(private, mode=0o700)
        proc = unprivileged.run_as_nobody(query, env={"TMPDIR": str(tmpdir)})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "n10\n" and proc.stderr == ""
        assert walk_kernels_cached(private)
    finally:
        shutil.rmtree(shared)


def test_kernel_folder_follows_every_kernel_module(tmp_path, monkeypatch):
    # A kernel compiled into its caller's cached code: editing the callee's module alone must
    # lead to another cache folder, or the caller would load stale machine code.
    package = tmp_path / "pkg"
    (package / "trie").mkdir(parents=True)
    (package / "trie" / "callee.py").write_text("@njit\ndef f(x):\n    return x + 1\n")
    (package / "caller.py").write_text("@njit\ndef g(x):\n    return f(x)\n")
    (package / "cli.py").write_text("print('no kernels here')\n")
    monkeypatch.setattr(kernel_cache, "PACKAGE_DIR", package)
    first = kernel_cache.kernel_source_digest()
    (package / "cli.py").write_text("print('still no kernels')\n")
    assert kernel_cache.kernel_source_digest() == first
    (package / "trie" / "callee.py").write_text("@njit\ndef f(x):\n    return x + 2\n")
    assert kernel_cache.kernel_source_digest() != first


def test_kernels_are_cached_in_the_folder_of_these_sources():
    from numba.core import config

    import metta_numba.jit  # noqa: F401 (importing it chooses the folder)

    assert Path(config.CACHE_DIR).name == f"kernels-{kernel_cache.kernel_source_digest()}"


def test_prune_removes_only_our_older_kernel_folders(tmp_path):
    def folder(name: str, mtime: float) -> Path:
        path = tmp_path / name
        (path / "inner").mkdir(parents=True)
        (path / "inner" / "k.nbc").write_bytes(b"x")
        os.utime(path, (mtime, mtime))
        return path

    current = folder("kernels-1111111111111111", 2_000_000)
    older = folder("kernels-2222222222222222", 1_000_000)
    newer = folder("kernels-3333333333333333", 3_000_000)  # another install's, still in use
    foreign = folder("kernels-not-a-digest", 1_000_000)
    other = folder("numba-things", 1_000_000)
    link = tmp_path / "kernels-4444444444444444"
    link.symlink_to(foreign)
    assert kernel_cache.prune_older_folders(current) == [older]
    assert not older.exists()
    for kept in (current, newer, foreign, other, link):
        assert kept.exists()
    assert (current / "inner" / "k.nbc").exists()
    assert kernel_cache.prune_older_folders(current) == []
    assert kernel_cache.prune_older_folders(tmp_path / "kernels-missing") == []


def test_source_digest_memo_is_trusted_only_while_the_sources_stamp_holds(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    (package / "__pycache__" / "kernels-x").mkdir(parents=True)
    (package / "__pycache__" / "kernels-x" / "stray.py").write_text("@njit\ndef cached(): pass\n")
    (package / "k.py").write_text("@njit\ndef f(x):\n    return x + 1\n")
    monkeypatch.setattr(kernel_cache, "PACKAGE_DIR", package)
    memo_folder = tmp_path / "cache"
    memo_folder.mkdir()
    digest = kernel_cache.kernel_source_digest(memo_folder)
    assert digest == kernel_cache.kernel_source_digest()  # the same as computed without a memo
    stamp, kept = (memo_folder / "kernel-source-digest").read_text().split()
    assert kept == digest
    # While the stamp holds the memo answers (a planted digest proves it is read) ...
    (memo_folder / "kernel-source-digest").write_text(f"{stamp} 0123456789abcdef\n")
    assert kernel_cache.kernel_source_digest(memo_folder) == "0123456789abcdef"
    # ... and an edited source (another size and time) is hashed again.
    (package / "k.py").write_text("@njit\ndef f(x):\n    return x + 22\n")
    os.utime(package / "k.py", ns=(1, 1))
    fresh = kernel_cache.kernel_source_digest(memo_folder)
    assert fresh not in (digest, "0123456789abcdef") and fresh == kernel_cache.kernel_source_digest()
    # The __pycache__ folder is not part of the sources.
    (package / "__pycache__" / "kernels-x" / "stray.py").write_text("changed")
    assert kernel_cache.kernel_source_digest() == fresh
