"""The sandbox of `metta-numba --sandbox` and `MeTTa(sandbox=True)`: a program may open files
(`fileio`), `include`, `import!` and `register-module!` only inside its own folder.

The folder is the program file's (the working directory for a program read from stdin or
given as text). Paths are compared after resolving symbolic links, so a link inside the
folder that points out of it is refused too. This confines what a program names; it is not
an operating-system sandbox (a file swapped for a link between the check and the open, or
Python operations added by other code, are outside its reach).
"""

from __future__ import annotations

import os

from metta_numba.atoms import Grounded
from metta_numba.interp.grounded import ExecError


def sandbox_root(folder: str) -> str:
    """The canonical form of a sandbox folder."""
    return os.path.realpath(folder)


def check_inside(root: str | None, path: str, what: str) -> None:
    """Raise ExecError when a sandbox is set (`root`) and `path` resolves outside it."""
    if root is None:
        return
    resolved = os.path.realpath(path)
    if resolved != root and not resolved.startswith(root.rstrip(os.sep) + os.sep):
        raise ExecError(Grounded(f"sandbox: {what} {path} is outside the program's folder {root}"))
