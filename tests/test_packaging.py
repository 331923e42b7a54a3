"""The packaging is checked: the conda recipe, pyproject.toml and environment.yml declare the
same dependencies, and the wheel and sdist build with the oldest build tools pyproject.toml
allows, then install into a fresh venv and run.

Run with `scripts/check_packaging.sh` (installs the `packaging` extra, then
`pytest -m packaging`). The build test downloads the runtime dependencies from PyPI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

pytestmark = [pytest.mark.packaging, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# conda-forge names of the PyPI distributions whose names differ there.
CONDA_NAME = {"xxhash": "python-xxhash", "matplotlib": "matplotlib-base", "duckdb": "python-duckdb"}
# Extras that conda users install with pip, not from environment.yml.
PIP_ONLY_EXTRAS = {"oracle", "packaging"}


def _requirement(text: str) -> tuple[str, str]:
    """("name", "spec") of `name[extra]>=1.0` or `name >=1.0`, the name in conda's spelling."""
    found = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*?)\s*", text)
    assert found, text
    name = found.group(1).lower()
    return CONDA_NAME.get(name, name), found.group(3).replace(" ", "")


def _pyproject_requirements(group: list[str]) -> set[tuple[str, str]]:
    out = set()
    for text in group:
        name, spec = _requirement(text)
        out.add((name, spec))
        if "[distributed]" in text:  # dask[distributed] is two conda packages
            out.add(("distributed", spec))
    return out


def _environment_requirements() -> set[tuple[str, str]]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:")
    return {_requirement(line.strip()[2:]) for line in lines[start + 1 :] if line.strip().startswith("- ")}


def _rendered_recipe():
    rattler_build = pytest.importorskip("rattler_build")
    variants = rattler_build.Stage0Recipe.from_file(str(ROOT / "recipe" / "recipe.yaml")).render()
    assert len(variants) == 1
    return variants[0].recipe.to_dict()


def test_recipe_requirements_agree_with_pyproject():
    recipe = _rendered_recipe()
    project = PYPROJECT["project"]
    assert recipe["package"]["version"] == project["version"]
    run = {_requirement(r) for r in recipe["requirements"]["run"]}
    assert ("python", project["requires-python"]) in run
    assert run - {("python", project["requires-python"])} == _pyproject_requirements(project["dependencies"])
    constraints = {_requirement(r) for r in recipe["requirements"]["run_constraints"]}
    assert constraints == _pyproject_requirements(project["optional-dependencies"]["dist"])
    host = {_requirement(r) for r in recipe["requirements"]["host"]}
    assert _pyproject_requirements(PYPROJECT["build-system"]["requires"]) <= host


def test_environment_holds_every_dependency_with_the_same_bounds():
    project = PYPROJECT["project"]
    environment = _environment_requirements()
    assert ("python", project["requires-python"]) in environment
    wanted = _pyproject_requirements(project["dependencies"])
    for extra, group in project["optional-dependencies"].items():
        if extra not in PIP_ONLY_EXTRAS:
            wanted |= _pyproject_requirements(group)
    assert wanted - environment == set()


def _minimum_pins(requirements: list[str]) -> list[str]:
    """`name==X` for each `name>=X` (the oldest version allowed), others as they are."""
    return [re.sub(r">=", "==", r) if ">=" in r else r for r in requirements]


def _run(*command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _venv(path: Path) -> Path:
    _run(sys.executable, "-m", "venv", str(path))
    return path / "bin"


def test_wheel_and_sdist_build_with_the_declared_minimum_tools_and_the_wheel_runs(tmp_path):
    pytest.importorskip("build")
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".numba_cache", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
            ".pytest_cache", ".ruff_cache",
        ),
    )  # fmt: skip
    builder = _venv(tmp_path / "builder")
    _run(builder / "pip", "install", "-q", "build", *_minimum_pins(PYPROJECT["build-system"]["requires"]))
    _run(builder / "python", "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(tmp_path / "dist"),
         str(source))  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert len(list((tmp_path / "dist").glob("*.tar.gz"))) == 1
    names = zipfile.ZipFile(wheel).namelist()
    assert "metta_numba/interp/prelude.metta" in names and "metta_numba/hyperon/__init__.py" in names

    user = _venv(tmp_path / "user")
    _run(user / "pip", "install", "-q", str(wheel))
    version = _run(user / "metta-numba", "--version").stdout.strip()
    assert version == f"metta-numba {PYPROJECT['project']['version']}"
    answer = _run(user / "metta-numba", "-", input="(= (sq $x) (* $x $x))\n!(sq 12)\n", cwd=tmp_path).stdout
    assert answer.strip() == "[144]"
