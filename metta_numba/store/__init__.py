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
    LockedError,
    SnapshotError,
    UnsupportedFormatError,
    WalCorruptError,
)
from metta_numba.store.kb import PersistentKB
from metta_numba.store.paths_io import PathsFormatError, export_paths, import_paths, paths_batch
from metta_numba.store.snapshot import (
    build_snapshot,
    describe_sources,
    snapshot_compact,
    snapshot_info,
    snapshot_verify,
)

__all__ = [
    "CorruptSnapshotError",
    "LockedError",
    "PathsFormatError",
    "PersistentKB",
    "SnapshotError",
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
