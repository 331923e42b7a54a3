"""metta-numba: a MeTTa engine for large knowledge bases.

A KB is compiled once into a snapshot of flat arrays, opened in O(1) with np.memmap, and
queried by Numba kernels. The language and the results follow hyperon.
"""

__version__ = "0.1.0"
