"""The one exception of the trie package."""


class CorruptTrieError(ValueError):
    """Trie arrays that are inconsistent: an index or offset out of bounds, a cycle, counts that
    disagree, a missing or mis-shaped array. Raised at open (validation) or by a query kernel
    that meets such an array; never a crash."""
