"""The persistence layer (DESIGN.md section 5): snapshots on disk, the delta log, PersistentKB.

    kb/CURRENT          the live generation          store.layout
    kb/gen-N.act        the trie's arrays            store.actfile
    kb/gen-N.h5         term store and metadata      store.termfile
    kb/wal-N.log        changes since generation N   store.wal
    kb/LOCK             the writer's lock            store.layout

Public API: PersistentKB (store.kb), build_snapshot / snapshot_info / snapshot_verify /
snapshot_compact (store.snapshot), the `.paths` exchange with MORK (store.paths_io), and the
errors of store.errors.
"""

from metta_numba.store.errors import (
    CorruptSnapshotError,
    KBAccessError,
    LockedError,
    LockUnsupportedError,
    SnapshotError,
    StoreWarning,
    UnsupportedFormatError,
    WalCorruptError,
)

# The rest is imported on first use: `import metta_numba.store` for a reader must not load
# the build, merge and export code (and their Numba kernels) at start-up.
_LAZY = {
    "PersistentKB": "metta_numba.store.kb",
    "PathsFormatError": "metta_numba.store.paths_io",
    "export_paths": "metta_numba.store.paths_io",
    "import_paths": "metta_numba.store.paths_io",
    "paths_batch": "metta_numba.store.paths_io",
    "build_snapshot": "metta_numba.store.snapshot",
    "describe_sources": "metta_numba.store.snapshot",
    "snapshot_compact": "metta_numba.store.snapshot",
    "snapshot_info": "metta_numba.store.snapshot",
    "snapshot_verify": "metta_numba.store.snapshot",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'metta_numba.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CorruptSnapshotError",
    "KBAccessError",
    "LockUnsupportedError",
    "LockedError",
    "PathsFormatError",
    "PersistentKB",
    "SnapshotError",
    "StoreWarning",
    "UnsupportedFormatError",
    "WalCorruptError",
    "build_snapshot",
    "describe_sources",
    "export_paths",
    "import_paths",
    "paths_batch",
    "snapshot_compact",
    "snapshot_info",
    "snapshot_verify",
]
