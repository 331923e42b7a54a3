"""Modules: MeTTa files loaded by `import!`, `include`, `mod-space!` and `register-module!`,
and the built-in modules (`random`, `fileio`, `json`).

A module file is found relative to the file that imports it (`a:b` means `a/b.metta`), or
under a directory registered with `register-module!`. It runs once, in its own space named
`top:<module>`; `import!` into `&self` makes it a dependency of the program's space (its rules,
types and atoms are seen by evaluation and `match`, but not listed by `get-atoms &self`),
while `(import! &m mod)` binds `&m` to the module's space. `include` runs a file straight in
the program's space every time and yields the results of its last `!`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from metta_numba.atoms import Atom, Grounded, Symbol
from metta_numba.interp import stdlib_io, stdlib_random
from metta_numba.interp.core import SpaceAtom
from metta_numba.interp.grounded import ExecError
from metta_numba.interp.sandbox import check_inside
from metta_numba.space import GroundingSpace, Space

if TYPE_CHECKING:
    from metta_numba.interp.runner import MeTTa

BUILTIN_MODULES = {
    "random": (stdlib_random.registry, stdlib_random.default_tokens),
    "fileio": (stdlib_io.fileio_registry, dict),
    "json": (stdlib_io.json_registry, dict),
}


def module_name(atom: Atom) -> str:
    if type(atom) is Symbol:
        return atom.name
    if type(atom) is Grounded and type(atom.value) is str:
        return atom.value
    raise ExecError(f"a module name is expected, got {atom!r}")


class Modules:
    """The modules of one program run, shared by the runners of the modules it loads."""

    def __init__(self) -> None:
        self.spaces: dict[str, Space] = {}  # module name as written -> its space
        self.by_path: dict[str, Space] = {}
        self.registered: dict[str, str] = {}  # registered module name -> its directory
        self.paths: dict[str, str] = {}  # module name -> its file, given by load_module_at_path
        self.sandbox_root: str | None = None  # set: files only inside it (interp.sandbox)

    def resolve(self, module: str, base_dir: str) -> str:
        found = self._find(module, base_dir, (".metta", "", os.sep + "module.metta"))
        if found is None or found.endswith(".py"):
            raise ExecError(f"Failed to resolve module top:{module}")
        return found

    def python_file(self, module: str, base_dir: str) -> str | None:
        """The `.py` file (or package `__init__.py`) of a module that has no MeTTa file."""
        endings = ("",) if module.endswith(".py") else (".py", os.sep + "__init__.py")
        found = self._find(module, base_dir, endings)
        return found if found is not None and found.endswith(".py") else None

    def _find(self, module: str, base_dir: str, endings: tuple[str, ...]) -> str | None:
        alias = self.paths.get(module)
        if alias is not None:
            return alias
        parts = module.split(":")
        roots = [base_dir]
        if parts[0] in self.registered:
            roots.insert(0, os.path.dirname(self.registered[parts[0]]))
        relative = os.path.join(*parts)
        for root in roots:
            for ending in endings:
                path = os.path.join(root, relative + ending)
                if os.path.isfile(path):
                    check_inside(self.sandbox_root, path, "module")
                    return os.path.abspath(path)
        return None

    def load(self, runner: MeTTa, module: str) -> Space:
        """The space of a module file, running the file the first time."""
        path = self.resolve(module, runner.current_dir)
        space = self.by_path.get(path)
        if space is None:
            from metta_numba.interp.runner import MeTTa

            space = GroundingSpace(name=f"top:{module}")
            child = MeTTa(space, cwd=os.path.dirname(path), modules=self)
            if getattr(runner, "sandbox", False):
                child.sandbox = True  # a module's own `!`s may not reach Python either
            self.by_path[path] = space
            outcome = child.run_file(path)
            if outcome.parse_error is not None:
                raise ExecError(str(outcome.parse_error))
        self.spaces.setdefault(module, space)
        return space

    def import_into(self, runner: MeTTa, target: Atom, name: Atom) -> None:
        module = module_name(name)
        builtin = BUILTIN_MODULES.get(module)
        if builtin is not None:
            registry, tokens = builtin
            runner.ev.ops.update(registry.ops)
            for token, value in tokens().items():
                runner.tokens.setdefault(token, value)
            return
        python_file = None
        if module not in self.spaces:
            try:
                self.resolve(module, runner.current_dir)
            except ExecError:
                python_file = self.python_file(module, runner.current_dir)
        if python_file is not None:
            self._import_python(runner, target, module, python_file)
            return
        space = self.load(runner, module)
        if type(target) is Symbol:
            runner.tokens[target.name] = SpaceAtom(space)
            return
        if not isinstance(target, SpaceAtom):
            raise ExecError(f"import! expects &self or a token, got {target!r}")
        if space is not target.obj and all(dep is not space for dep in target.obj.dependencies):
            target.obj.dependencies.append(space)

    def _import_python(self, runner: MeTTa, target: Atom, module: str, path: str) -> None:
        """Register the atoms and tokens of a Python module (hyperon's `register_atoms` and
        `register_tokens` functions) in the importing runner; `&name` gets an empty space."""
        from metta_numba.hyperon.pymodules import import_python_module  # the hyperon-style API

        import_python_module(runner, path, module)
        if type(target) is Symbol:
            runner.tokens[target.name] = SpaceAtom(self.spaces.setdefault(module, GroundingSpace(name=f"top:{module}")))

    def include(self, runner: MeTTa, name: Atom) -> list[Atom]:
        path = self.resolve(module_name(name), runner.current_dir)
        outcome = runner.run_file(path)
        if outcome.parse_error is not None:
            raise ExecError(str(outcome.parse_error))
        return outcome.results[-1] if outcome.results else []

    def space_of(self, runner: MeTTa, name: Atom) -> Space:
        module = module_name(name)
        if module in ("top", "self"):
            return runner.space
        found = self.spaces.get(module)
        return found if found is not None else self.load(runner, module)

    def register(self, runner: MeTTa, path_atom: Atom) -> None:
        path = os.path.abspath(os.path.join(runner.current_dir, module_name(path_atom)))
        check_inside(self.sandbox_root, path, "module folder")
        if not os.path.exists(path):
            raise ExecError(f"no module at {path}")
        self.registered[os.path.basename(path.rstrip(os.sep))] = path
