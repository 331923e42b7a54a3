"""metta-numba: a MeTTa engine for large knowledge bases.

A KB is compiled once into a snapshot of flat arrays, opened in O(1) with np.memmap, and
queried by Numba kernels. The language and the results follow hyperon.
"""

from metta_numba import kernel_cache, lazy_imports

__version__ = "0.1.0"

# Before any kernel module imports Numba: a folder the compiled kernels can be cached in, and
# the modules Numba imports without needing them on our path made lazy.
kernel_cache.configure()
lazy_imports.defer_unused_imports()

__all__ = ["MeTTa"]


def __getattr__(name: str):
    # Imported on first use, so that `import metta_numba` stays cheap for the store and CLI.
    if name == "MeTTa":
        from metta_numba.interp.runner import MeTTa

        return MeTTa
    raise AttributeError(name)
