"""The immutable array trie (DESIGN.md section 4): bulk build, lookups, pattern matching with
variables on both sides, multiset merge and difference, and merkleizing into a DAG.

`Trie` is the Python face; the kernels live in the submodules and take arrays only.
"""

from metta_numba.trie.errors import CorruptTrieError
from metta_numba.trie.layout import ARRAY_DTYPES, ARRAY_NAMES
from metta_numba.trie.trie import ABSENT_TERM_ID, Trie

__all__ = ["ABSENT_TERM_ID", "ARRAY_DTYPES", "ARRAY_NAMES", "CorruptTrieError", "Trie"]
