"""The package's metadata is in pyproject.toml; this file adds one build step: the compiled
kernels bundled into a built package (metta_numba/kernel_bundle.py), so that a fresh install
does not compile them at its first big run.

The step compiles every kernel for the generic CPU in a process of its own (a minute or two of
CPU). It is skipped for editable installs (`pip install -e`: `metta-numba warmup` fills the
cache of a source checkout, as ./run.sh and ./test.sh do when they install) and when
METTA_NUMBA_BUNDLE_KERNELS=0. A failure to compile leaves a package without the bundle and a
warning: the kernels then compile at first use, as before."""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False) or os.environ.get("METTA_NUMBA_BUNDLE_KERNELS") == "0":
            return
        # kernel_bundle sets up its own kernel cache; no bytecode is written into the build.
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join([os.path.abspath(self.build_lib), os.environ.get("PYTHONPATH", "")]))
        print("compiling the kernels to bundle (generic CPU; METTA_NUMBA_BUNDLE_KERNELS=0 skips it)")
        proc = subprocess.run(
            [sys.executable, "-m", "metta_numba.kernel_bundle", os.path.abspath(self.build_lib)],
            env=env,
            cwd=self.build_lib,
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            print(proc.stdout.strip())
        else:
            self.warn("no compiled kernels bundled (they compile at first use):\n" + proc.stderr[-2000:])


setup(cmdclass={"build_py": BuildPyWithKernels})
