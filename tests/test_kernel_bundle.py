"""Compiled kernels that travel: the generic CPU by default, cache folders named after the
package's modules rather than the sources' absolute path, and a bundle in the package copied
into an empty cache (metta_numba.kernel_bundle)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metta_numba import kernel_bundle, kernel_cache

PACKAGE = kernel_cache.PACKAGE_DIR
# One kernel with a declared signature and no callees: cheap to compile.
CALL_KERNEL = (
    "import numpy as np\n"
    "from metta_numba.codec.kernels import first_invalid_utf8\n"
    "print(first_invalid_utf8(np.frombuffer(b'ab\\xffc', np.uint8), 0, 4))\n"
)


def _python(code: str, pythonpath: Path, env: dict) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "METTA_NUMBA_"))}
    environ.update(env, PYTHONPATH=str(pythonpath))
    # Run from `pythonpath`: `-c` puts the working folder first on sys.path.
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, cwd=pythonpath, capture_output=True, text=True, timeout=300
    )


def _copy_package(root: Path) -> Path:
    shutil.copytree(PACKAGE, root / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__", "_kernels"))
    return root


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "generic"), ({"METTA_NUMBA_CPU": "host"}, "None"), ({"NUMBA_CPU_NAME": "haswell"}, "haswell")],
)
def test_kernels_compile_for_the_generic_cpu_unless_the_user_chose(env, expected):
    code = "import metta_numba\nfrom numba.core import config\nprint(config.CPU_NAME)\n"
    proc = _python(code, PACKAGE.parent, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_choose_cpu_leaves_numba_settings_of_the_user_alone():
    environ = {"NUMBA_CPU_FEATURES": "+avx2"}
    assert kernel_cache.choose_cpu(environ) == "user"
    assert environ == {"NUMBA_CPU_FEATURES": "+avx2"}


def test_a_cache_filled_by_one_copy_of_the_package_serves_another_through_its_bundle(tmp_path):
    first = _copy_package(tmp_path / "first")
    cache = tmp_path / "cache"
    filled = _python(CALL_KERNEL, first, {"NUMBA_CACHE_DIR": str(cache), "METTA_NUMBA_COLD": "compile"})
    assert filled.returncode == 0, filled.stderr
    assert filled.stdout.strip() == "2"
    [keyed] = cache.glob("kernels-*")
    files = kernel_bundle.bundle_files(keyed)
    assert any(p.parent.name == "metta_numba.codec" and p.suffix == ".nbi" for p in files)
    # Another copy (another absolute path, new file times) with those files as its bundle.
    second = _copy_package(tmp_path / "second")
    bundle = second / PACKAGE.name / "_kernels" / keyed.name
    for path in files:
        (bundle / path.relative_to(keyed)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, bundle / path.relative_to(keyed))
    empty = tmp_path / "empty-cache"
    quiet = {"METTA_NUMBA_COLD": "compile", "NUMBA_DEBUG_CACHE": "1"}  # an uncached kernel compiles
    used = _python(CALL_KERNEL, second, {"NUMBA_CACHE_DIR": str(empty), **quiet})
    assert used.returncode == 0, used.stderr
    assert used.stdout.splitlines()[-1] == "2"
    assert "data loaded" in used.stdout and "data saved" not in used.stdout  # nothing compiled
    assert (empty / keyed.name / kernel_bundle.SEEDED_MARK).exists()
    # With the host's CPU the generic bundle does not apply: the kernel compiles.
    host = _python(CALL_KERNEL, second, {"NUMBA_CACHE_DIR": str(tmp_path / "host"), "METTA_NUMBA_CPU": "host", **quiet})
    assert host.returncode == 0, host.stderr
    assert "data saved" in host.stdout


def _bundle(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "bundle"
    folder = root / "kernels-0123456789abcdef" / "metta_numba.trie"
    folder.mkdir(parents=True)
    for name in ("walk.a-1.py311", "walk.b-9.py311"):
        (folder / f"{name}.nbi").write_bytes(b"index " + name.encode())
        (folder / f"{name}.1.nbc").write_bytes(b"data " + name.encode())
    (root / "kernels-0123456789abcdef" / "nrt-1.nrtlib").write_bytes(b"runtime")
    keyed = tmp_path / "cache" / "kernels-0123456789abcdef"
    keyed.mkdir(parents=True)
    return root, keyed


def test_seeding_copies_only_kernels_the_cache_has_no_index_for(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_bundle, "_generic_cpu", lambda: True)
    root, keyed = _bundle(tmp_path)
    own = keyed / "metta_numba.trie"
    own.mkdir()
    # The cache compiled walk.a itself: its index and data stay. walk.b left a data file
    # without index (a process died between the two writes): the bundle's replaces it.
    (own / "walk.a-1.py311.nbi").write_bytes(b"own index")
    (own / "walk.a-1.py311.1.nbc").write_bytes(b"own data")
    (own / "walk.b-9.py311.1.nbc").write_bytes(b"torn")
    assert kernel_bundle.seed_from_bundle(keyed, root) == 1
    assert (own / "walk.a-1.py311.nbi").read_bytes() == b"own index"
    assert (own / "walk.a-1.py311.1.nbc").read_bytes() == b"own data"
    assert (own / "walk.b-9.py311.nbi").read_bytes() == b"index walk.b-9.py311"
    assert (own / "walk.b-9.py311.1.nbc").read_bytes() == b"data walk.b-9.py311"
    assert (keyed / "nrt-1.nrtlib").read_bytes() == b"runtime"
    assert not list(keyed.rglob("*.partial"))
    # Once seeded, a start looks at the mark only.
    (own / "walk.b-9.py311.nbi").unlink()
    assert kernel_bundle.seed_from_bundle(keyed, root) == 0
    assert not (own / "walk.b-9.py311.nbi").exists()


def test_no_seeding_without_a_bundle_of_these_sources_or_for_another_cpu(tmp_path, monkeypatch):
    root, keyed = _bundle(tmp_path)
    monkeypatch.setattr(kernel_bundle, "_generic_cpu", lambda: False)
    assert kernel_bundle.seed_from_bundle(keyed, root) == 0
    assert list(keyed.iterdir()) == []
    monkeypatch.setattr(kernel_bundle, "_generic_cpu", lambda: True)
    other = keyed.parent / "kernels-fedcba9876543210"
    other.mkdir()
    assert kernel_bundle.seed_from_bundle(other, root) == 0
    assert list(other.iterdir()) == []


@pytest.mark.slow
def test_the_build_step_bundles_every_kernel(tmp_path):
    build_lib = _copy_package(tmp_path / "build")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_CPU_NAME": "generic", "METTA_NUMBA_COLD": "compile"}
    code = f"import sys\nfrom metta_numba.kernel_bundle import main\nsys.exit(main([{str(build_lib)!r}]))\n"
    proc = _python(code, build_lib, env)
    assert proc.returncode == 0, proc.stderr
    [bundle] = (build_lib / PACKAGE.name / "_kernels").glob("kernels-*")
    names = {p.parent.name for p in bundle.rglob("*.nbi")}
    assert {"metta_numba.trie", "metta_numba.codec", "metta_numba.syntax", "metta_numba.space"} <= names
    indexes = list(bundle.rglob("*.nbi"))
    assert f"bundled {len(indexes)} kernels" in proc.stdout
    assert len(indexes) > 150  # every declared kernel (about 200) and the specialised ones
    for index in indexes:  # each index with its data
        assert list(index.parent.glob(index.name[: -len(".nbi")] + ".*.nbc")), index


def test_a_copy_that_fails_leaves_no_partial_file_and_no_mark(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_bundle, "_generic_cpu", lambda: True)
    root, keyed = _bundle(tmp_path)
    copied = []
    copyfile = shutil.copyfile

    def failing_copy(source, target):
        if len(copied) == 2:  # the third file: the disk is full
            Path(target).write_bytes(b"half")
            raise OSError(28, "No space left on device")
        copied.append(target)
        return copyfile(source, target)

    monkeypatch.setattr(kernel_bundle.shutil, "copyfile", failing_copy)
    assert kernel_bundle.seed_from_bundle(keyed, root) <= 1
    assert not list(keyed.rglob("*.partial"))
    assert not (keyed / kernel_bundle.SEEDED_MARK).exists()  # the next start tries again
    # Whatever index was copied has its data.
    for index in keyed.rglob("*.nbi"):
        assert list(index.parent.glob(index.name[: -len(".nbi")] + ".*.nbc"))
